"""Sequence transcription with Connectionist Temporal Classification:
RNNTranscriber, e.g. speech to text from audio frames."""
import numbers

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import check_is_fitted

from . import ctc as _ctc

from .. import _kernels
from .._base.docstrings import document_parameters
from .._base.callbacks import with_callbacks
from .._nn.engine import CtcTargets
from .._base.estimator import _BaseRNN
from .._base.params import Interval, Satisfies, store_params, without
from .._nn.threads import effective_n_threads

LOSS_CTC = _kernels.LOSS_CODES["ctc"]


@document_parameters
class RNNTranscriber(_BaseRNN):
    """Recurrent network trained with the CTC loss: it reads a sequence of
    frames and writes a transcript, with no frame alignment needed.

    A (by default bidirectional LSTM) network gives every frame a softmax
    over the blank and the symbols of the alphabet; training minimises the
    Connectionist Temporal Classification loss (Graves et al., ICML 2006),
    the negative log-probability of the transcript summed over every
    alignment of it to the frames.  Transcribing picks the best path
    (``beam_size=1``: the most probable class per frame, repeats merged,
    blanks dropped) or runs CTC prefix beam search.  The loss, its gradient
    through the softmax and the beam search are compiled kernels; the
    network is the one of RNNClassifier, with an output per frame.

    Parameters
    ----------
    cell : {"lstm", "gru", "rnn"}, default="lstm"
    hidden_size : int, default=128
        Units per direction and layer.
    num_layers : int, default=2
    bidirectional : bool, default=True
        Each frame's output sees the frames before and after it.
    alphabet : str or sequence of symbols, default=None
        The symbols transcripts are written in (characters, or integer
        labels that an int64 holds); None: the sorted symbols of the
        training transcripts.
        Transcripts with symbols outside a given alphabet are refused.
    beam_size : int, default=1
        1: greedy (best-path) decoding; more: prefix beam search keeping
        that many prefixes.
    zero_infinity : bool, default=False
        A transcript needs at least one frame per symbol, plus one between
        each pair of equal neighbours.  False: fit refuses a sample whose
        input is too short for its transcript.  True: such a sample is kept
        and contributes a loss and gradient of zero, as
        ``torch.nn.CTCLoss(zero_infinity=True)``.
    early_stopping : bool, default=False
        Score ``validation_fraction`` of the samples held out (or fit's
        ``X_val``, ``y_val``) after every epoch: 1 - the character error
        rate of greedy decoding; stop when it has not improved by ``tol``
        for ``n_iter_no_change`` epochs, and keep the best epoch's weights.

    Attributes
    ----------
    alphabet_ : list
        The symbols; output column k + 1 is ``alphabet_[k]``, column 0 the
        blank.
    classes_ : list
        ``["<blank>"] + alphabet_``: the columns of predict_proba.
    n_outputs_ : int
        ``len(alphabet_) + 1``.
    loss_curve_, loss_, n_iter_, t_, best_loss_, validation_scores_, \
best_validation_score_, n_features_in_
        As in RNNClassifier; the loss is torch.nn.CTCLoss's "mean": each
        sample's loss divided by its transcript's length (at least 1), then
        averaged over the batch (weighted by sample_weight).

    Notes
    -----
    Inputs are a list of (n_frames_i, n_features) arrays (or a 3D array)
    of any lengths; no computation is spent on padding.  A sequence needs
    at least one frame.  An empty transcript is allowed: it teaches the
    model to emit only blanks.

    Examples
    --------
    >>> import numpy as np
    >>> from crnn import RNNTranscriber
    >>> rng = np.random.default_rng(0)
    >>> y = ["".join(rng.choice(list("abc"), size=rng.integers(2, 5))) for _ in range(60)]
    >>> def frames(word):        # each symbol: two frames of its pattern, then a pause
    ...     rows = [k for c in word for k in ("abc".index(c),) * 2 + (3,)]
    ...     return np.eye(4)[rows] + rng.normal(scale=0.1, size=(len(rows), 4))
    >>> X = [frames(w) for w in y]            # sequences of different lengths
    >>> ts = RNNTranscriber(hidden_size=16, num_layers=1, learning_rate_init=1e-2,
    ...                     batch_size=16, max_iter=40, random_state=0).fit(X, y)
    >>> ts.classes_
    ['<blank>', 'a', 'b', 'c']
    >>> ts.predict([frames("cab"), frames("bba")])
    array(['cab', 'bba'], dtype=object)
    >>> bool(ts.score(X, y) > 0.9)           # 1 - the character error rate
    True
    """

    _loss_code = LOSS_CTC
    return_sequences = True
    bptt_truncate = None
    _FITTED_ATTRIBUTES = _BaseRNN._FITTED_ATTRIBUTES | {"alphabet_"}
    _parameter_constraints = without(_BaseRNN._parameter_constraints,
                                     "return_sequences", "bptt_truncate") | {
        "alphabet": [None, Satisfies(lambda a: isinstance(a, str) or hasattr(a, "__len__"),
                                     "a str or a sequence of symbols")],
        "beam_size": [Interval("int", 1, 4096)],
        "zero_infinity": ["boolean"],
    }

    def __init__(
        self,
        *,
        cell="lstm",
        hidden_size=128,
        num_layers=2,
        bidirectional=True,
        alphabet=None,
        beam_size=1,
        zero_infinity=False,
        nonlinearity="tanh",
        dropout=0.0,
        forget_bias=1.0,
        solver="adam",
        learning_rate="constant",
        learning_rate_init=1e-3,
        power_t=0.5,
        batch_size=32,
        max_iter=20,
        alpha=0.0,
        clip_norm=5.0,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        n_jobs=None,
        dtype=np.float32,
        compute_dtype=None,
    ):
        store_params(self, locals())

    # ------------------------------------------------------------------
    # parameters and targets

    def _check_param_rules(self):
        if self.alphabet is not None:
            _ctc.check_alphabet(self.alphabet)

    def _check_targets(self, data, y, dtype, incremental, classes, continue_from_fitted):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target "
                             "y is None.")
        kind = _ctc.transcript_kind(y)
        if continue_from_fitted:
            alphabet = self.alphabet_
        elif self.alphabet is not None:
            alphabet = _ctc.check_alphabet(self.alphabet)[0]
        else:
            alphabet = sorted({s for t in y for s in _ctc.symbols_of(t, kind)})
            if not alphabet:
                raise ValueError("y holds no symbols (every transcript is empty), so there "
                                 "is no alphabet to learn; pass alphabet=.")
            if kind == "ids":
                _ctc.check_label_range(alphabet, "y")
        target = self._encode_targets(data, y, alphabet, kind)
        return target, {"n_outputs_": len(alphabet) + 1, "alphabet_": list(alphabet)}

    def _encode_targets(self, data, y, alphabet, kind, name="y"):
        """Transcripts of kind `kind` in `alphabet` -> CtcTargets, after
        checking that every input can emit its transcript."""
        akind = self._kind(alphabet)
        if len(y) != data.n_samples:
            raise ValueError(f"X and {name} have different numbers of samples: "
                             f"{data.n_samples} and {len(y)}.")
        if len(y) and akind != kind:
            raise ValueError(f"{name} holds {'strings' if kind == 'text' else 'label sequences'}"
                             f", but the alphabet is made of "
                             f"{'characters' if akind == 'text' else 'integers'}.")
        labels, lstart, llen = _ctc.encode(y, alphabet, akind, name)
        need = _ctc.min_frames(labels, lstart, llen)
        short = np.flatnonzero(data.lens < need)
        if short.size and not self.zero_infinity:
            i = int(short[0])
            raise ValueError(
                f"sample {i}: its transcript of {int(llen[i])} symbols needs at least "
                f"{int(need[i])} frames (one per symbol, and a blank between equal "
                f"neighbours), but it has {int(data.lens[i])} ({short.size} sample(s) of "
                f"{name} are too short). Remove them, or set zero_infinity=True to let them "
                "contribute nothing.")
        return CtcTargets(labels, lstart, llen, bool(self.zero_infinity))

    @staticmethod
    def _kind(alphabet):
        return "text" if alphabet and isinstance(alphabet[0], str) else "ids"

    def _target_weights(self, data, target, target_info, sample_weight, incremental):
        return self._check_sample_weight(data, sample_weight, False)

    @property
    def classes_(self):
        check_is_fitted(self, "_theta")
        return ["<blank>"] + list(self.alphabet_)

    # ------------------------------------------------------------------
    # validation (early stopping)

    def _val_score_and_loss(self, raw, data, target, samples, weights):
        """(1 - CER of greedy decoding, weighted CTC "mean" loss) of the
        given samples."""
        start, lens = data.start[samples], data.lens[samples]
        losses = _kernels.ctc_loss(raw, start, lens, target.labels, target.lstart[samples],
                                   target.llen[samples], None, _ctc.BLANK,
                                   target.zero_infinity, effective_n_threads(self.n_jobs))
        w = np.ones(len(samples)) if weights is None else weights[samples]
        loss = float(np.sum(w * losses / np.maximum(target.llen[samples], 1)) / np.sum(w))
        labels, offsets = _ctc.greedy_decode(raw, start, lens)
        refs = [target.labels[a:a + n] for a, n in zip(target.lstart[samples],
                                                       target.llen[samples])]
        hyps = [labels[offsets[i]:offsets[i + 1]] for i in range(len(samples))]
        return 1.0 - _ctc.character_error_rate(refs, hyps), loss

    def _holdout(self, engine, data, target, weights, rng, n_threads, early_stopping):
        if not early_stopping:
            return np.arange(data.n_samples, dtype=np.intp), None
        pool, val = train_test_split(np.arange(data.n_samples), random_state=rng,
                                     test_size=self.validation_fraction)
        if len(val) < 2:
            raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                             "or the size of your dataset.")
        val = np.sort(val).astype(np.intp)
        if weights is not None and not np.any(weights[val] > 0):
            raise ValueError("The validation split's sample weights are all zero; give some "
                             "of its samples a non-zero weight, or pass X_val.")

        def validate(theta):
            raw = engine.predict(theta, data, n_threads, idx=val)
            return self._val_score_and_loss(raw, data, target, val, weights)

        return np.asarray(pool, dtype=np.intp), validate

    def _validation_set(self, engine, X_val, y_val, sample_weight_val, dtype, target_info,
                        n_threads):
        data = self._check_X(X_val, dtype, reset=False, n_features=engine.layout.n_features,
                             name="X_val")
        target = self._encode_targets(data, y_val, target_info["alphabet_"],
                                      _ctc.transcript_kind(y_val, "y_val"), "y_val")
        weights = self._check_sample_weight(data, sample_weight_val, False,
                                            "sample_weight_val")
        every = np.arange(data.n_samples, dtype=np.intp)

        def validate(theta):
            raw = engine.predict(theta, data, n_threads)
            return self._val_score_and_loss(raw, data, target, every, weights)

        return validate

    # ------------------------------------------------------------------
    # fitting

    @with_callbacks
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None,
            sample_weight_val=None):
        """Train the network from scratch (or, with warm_start, from its
        current weights) for up to max_iter epochs.

        Parameters
        ----------
        X : list of arrays of shape (n_frames_i, n_features), or array of \
shape (n_samples, n_frames, n_features)
            Input frames (e.g. MFCCs), at least one per sequence.
        y : list of str, or list of 1D integer sequences
            The transcripts, one per sample (may be empty).
        sample_weight : array of shape (n_samples,), default=None
            Weight of each sample in the loss.
        X_val, y_val : validation set, default=None
            Used instead of a random split of X for early stopping
            (early_stopping must be True).
        sample_weight_val : array of shape (n_val_samples,), default=None

        Returns
        -------
        self : RNNTranscriber
        """
        return self._fit(X, y, False, sample_weight=sample_weight, X_val=X_val, y_val=y_val,
                         sample_weight_val=sample_weight_val)

    @with_callbacks
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing the weights and the optimizer
        state of the previous calls.  The first call fixes the alphabet
        (the alphabet parameter, or the symbols of its y): pass alphabet=
        when later batches may hold other symbols.

        Parameters
        ----------
        X : list of arrays
            As in fit.
        y : list of str or of 1D integer sequences
            As in fit.
        sample_weight : array of shape (n_samples,), default=None

        Returns
        -------
        self : RNNTranscriber
        """
        return self._fit(X, y, True, sample_weight=sample_weight)

    # ------------------------------------------------------------------
    # inference

    def predict_log_proba(self, X):
        """Per-frame log-posteriors of the blank and every symbol.

        Parameters
        ----------
        X : list of arrays or 3D array
            As in fit.

        Returns
        -------
        log_proba : list of ndarrays of shape (n_frames_i, ``n_outputs_``)
            Column 0 is the blank, column k + 1 ``alphabet_[k]`` (``classes_``); an
            array (n_samples, n_frames, ``n_outputs_``) for a 3D X.
        """
        raw, data, _ = self._forward(X)
        z = raw.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        z -= np.log(np.exp(z).sum(axis=1, keepdims=True))
        return data.split_rows(z)

    def predict_proba(self, X):
        """Per-frame posteriors of the blank and every symbol (each row sums
        to 1).

        Parameters
        ----------
        X : list of arrays or 3D array
            As in fit.

        Returns
        -------
        proba : list of ndarrays of shape (n_frames_i, ``n_outputs_``)
            Column 0 is the blank, column k + 1 ``alphabet_[k]`` (``classes_``); an
            array (n_samples, n_frames, ``n_outputs_``) for a 3D X.
        """
        logp = self.predict_log_proba(X)
        return [np.exp(p) for p in logp] if isinstance(logp, list) else np.exp(logp)

    def transcribe(self, X, beam_size=None):
        """Transcripts of X.

        Parameters
        ----------
        X : list of arrays or 3D array
            As in fit.
        beam_size : int, default=None
            Overrides the estimator's beam_size (1: greedy best path; more:
            prefix beam search).

        Returns
        -------
        transcripts : ndarray of object, shape (n_samples,)
            Strings (an alphabet of characters) or int64 arrays of symbols.
        """
        check_is_fitted(self, "_theta")
        self._validate_hyperparams()
        if beam_size is None:
            beam_size = self.beam_size
        elif not isinstance(beam_size, numbers.Integral) or isinstance(beam_size, bool) \
                or not 1 <= beam_size <= 4096:
            raise ValueError(f"beam_size must be an integer in [1, 4096]; got {beam_size!r}.")
        raw, data, _ = self._forward(X)
        if beam_size == 1:
            labels, offsets = _ctc.greedy_decode(raw, data.start, data.lens)
        else:
            labels, offsets = _ctc.beam_decode(raw, data.start, data.lens, beam_size,
                                               effective_n_threads(self.n_jobs))
        return _ctc.to_transcripts(labels, offsets, self.alphabet_, self._kind(self.alphabet_))

    def predict(self, X):
        """Transcripts of X, decoded greedily (beam_size=1) or by prefix
        beam search.

        Parameters
        ----------
        X : list of arrays or 3D array
            As in fit.

        Returns
        -------
        transcripts : ndarray of object, shape (n_samples,)
            Strings (an alphabet of characters) or int64 arrays of symbols.
        """
        return self.transcribe(X)

    def score(self, X, y, sample_weight=None):
        """1 - the character error rate of the transcripts of X.

        The character error rate is the total Levenshtein distance (symbol
        insertions, deletions and substitutions) from the predicted
        transcripts to the references y, divided by the total length of
        the references: 1.0 is perfect; it can be negative when the
        predictions are much longer than the references.  Sample weights
        weigh each sample's edits and length.

        Parameters
        ----------
        X : list of arrays or 3D array
        y : list of str or of 1D integer sequences
        sample_weight : array of shape (n_samples,), default=None

        Returns
        -------
        score : float
        """
        pred = self.predict(X)
        kind = self._kind(self.alphabet_)
        if _ctc.transcript_kind(y) != kind and len(y):
            raise ValueError("y and the model's alphabet differ in kind (strings vs label "
                             "sequences).")
        if len(y) != len(pred):
            raise ValueError(f"X and y have different numbers of samples: {len(pred)} and "
                             f"{len(y)}.")
        refs = [_ctc.symbols_of(t, kind) for t in y]
        hyps = [_ctc.symbols_of(t, kind) for t in pred]
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight, dtype=np.float64)
            if w.shape != (len(refs),) or not np.all(np.isfinite(w)) or np.any(w < 0):
                raise ValueError(f"sample_weight must be {len(refs)} finite non-negative "
                                 "numbers.")
        return 1.0 - _ctc.character_error_rate(refs, hyps, w)

    # ------------------------------------------------------------------
    # weights and model files

    def load_state_dict(self, state_dict, alphabet=None):
        """Set the weights from a PyTorch-style state dict and the alphabet.

        Parameters
        ----------
        state_dict : dict of str to array
            ``rnn.*`` (nn.LSTM / nn.GRU / nn.RNN, batch_first) and ``head.*``
            (nn.Linear to len(alphabet) + 1 outputs, blank first).
        alphabet : str or sequence of symbols
            The symbol of head rows 1, 2, ...

        Returns
        -------
        self : RNNTranscriber
        """
        return super().load_state_dict(state_dict, alphabet=alphabet)

    def _target_info_from_outputs(self, n_outputs, alphabet=None):
        if alphabet is None:
            raise ValueError("a transcriber's weights need their alphabet: "
                             "load_state_dict(state_dict, alphabet=...).")
        symbols, _ = _ctc.check_alphabet(alphabet)
        if len(symbols) + 1 != n_outputs:
            raise ValueError(f"the head has {n_outputs} outputs; it needs one per symbol of "
                             f"the alphabet ({len(symbols)}) plus the blank.")
        return {"n_outputs_": n_outputs, "alphabet_": symbols}

    def _check_fitted_targets(self, attrs):
        alphabet = attrs["alphabet_"]
        if not isinstance(alphabet, list):
            raise ValueError("alphabet_ is not a list.")
        if any(type(s) not in (str, int) for s in alphabet):
            raise ValueError("alphabet_ must hold single characters or integers only.")
        self._target_info_from_outputs(attrs["n_outputs_"], alphabet)
        if not attrs["_return_sequences"]:
            raise ValueError("a transcriber has an output per frame (_return_sequences).")

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


__all__ = ["RNNTranscriber"]
