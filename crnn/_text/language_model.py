"""RNNLanguageModel: next-token prediction and text generation.

Text becomes token ids (crnn._text.tokens), the kernels read them as one column of
ids (a one-hot input never materialised, or an embedding), training walks
the text as parallel streams carrying the recurrent state from one batch to
the next (char-rnn's truncated BPTT), and generation runs on the step
kernel, one token at a time.  The training loop, solvers, model files and
parameter checks are the other estimators'.
"""
import math
import numbers

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._base.docstrings import document_parameters
from .._base.callbacks import with_callbacks
from .._nn.data import SeqData
from .._base.estimator import _BaseRNN, _check_model_size
from .._base.params import INT_MAX, Interval, Options, store_params, without
from .._nn.layout import LOSS_XENT, Layout
from .tokens import (EOS, UNK, Vocabulary, check_sampling, check_vocabulary, sample_next,
                    stream_batches, token_ids, tokenizer_function)
from .._base.fitting import FitPlan, run_fit
from .._nn.threads import effective_n_threads
from .._nn.training import TrainState

# evaluation (score, validation, prompts) runs the network over at most
# about this many logits at once
_EVAL_LOGITS = 8 * 2**20
# the most tokens one generate call writes (its work arrays take about 25
# bytes a token before the sample is returned: some 400 MiB at this bound)
MAX_GENERATE = 2**24


@document_parameters
class RNNLanguageModel(_BaseRNN):
    """Recurrent language model: next-token prediction and text generation.

    The model of char-rnn: tokens (characters, words, or the tokens of a
    callable) are read one at a time by stacked Elman, GRU or LSTM layers,
    ``o_t = softmax(V s_t)`` gives the distribution of the next token, and
    training minimises the cross-entropy of every next token.  Layer 0 reads
    a token through an embedding of ``embedding_dim`` columns (by default as
    wide as the hidden layers, PyTorch's usual recipe), or as a one-hot
    vector without ever building it (its input projection is a column of
    ``W_ih``).

    Training cuts the text (the documents joined, each followed by an
    end-of-document token) into at most ``batch_size`` parallel streams and
    walks them in consecutive chunks of ``seq_length`` tokens; the recurrent
    state is carried from one chunk to the next, so the model sees context
    longer than a chunk while gradients flow back ``seq_length`` steps
    (truncated backpropagation through time, as char-rnn).  An epoch is one
    pass over the text.  When the text is too short for ``batch_size``
    streams of ``seq_length + 1`` tokens, fewer streams are used.

    Documents can also be given already cut into tokens, as 1D arrays (or
    lists) of integer token ids: the ids are integers in [0, 2**63 - 1]
    (an int64 holds them, and -1 is free to mark the end of a document in
    what ``generate`` returns); negative ids, and uint64 ids of 2**63 or
    more, are refused.  The vocabulary is then made of those integers.

    Parameters
    ----------
    tokenizer : {"char", "word"} or callable, default="char"
        "char": every character is a token.  "word": the regex
        ``\\w+(?:'\\w+)*|[^\\w\\s]`` (runs of letters and digits with inner
        apostrophes, or any single other non-space character); spaces and
        line breaks are not tokens, and generated words are joined by single
        spaces.  A callable takes a string and returns a list of strings
        (generated tokens are joined by single spaces; anything else it
        returns is a TypeError).  A model with a
        callable tokenizer cannot be saved to a model file (it would have to
        run code when loaded).
    cell : {"rnn", "gru", "lstm"}, default="lstm"
    hidden_size : int, default=128
    num_layers : int, default=2
    seq_length : int, default=100
        Tokens per chunk: the steps of truncated BPTT.
    embedding_dim : int, "auto" or None, default="auto"
        Width of an embedding between the tokens and layer 0 (as
        ``nn.Embedding``, initialised N(0, 1)); "auto": ``hidden_size``.
        None: layer 0 reads one-hot tokens directly (each token's input is a
        column of ``W_ih``, initialised at +-1/sqrt(hidden_size), ten times
        weaker than an embedding's, so that it learns slowly: 2.20 against
        1.75 nats/char on the standard library's docstrings after 10 epochs,
        see docs/performance.md).
    max_vocab : int or None, default=None
        Keep at most this many tokens in the vocabulary (the unknown and
        end-of-document tokens included), the most frequent first.
    min_count : int, default=1
        Keep tokens seen at least this often in the first fit's text.
    forget_bias : float, default=0.0
        Added to the LSTM's forget-gate bias at initialisation.  0 is
        PyTorch's initialisation: on tinyshakespeare a forget bias of 1 (the
        classifier's and regressor's default) learned more slowly
        (validation 2.658 against 2.579 nats/char after two epochs of
        300,000 characters, 2x128 LSTM).
    learning_rate_init : float, default=1e-3
        The initial step size, PyTorch's usual recipe's (Adam at 1e-3).  On
        five corpora of benches/lm_defaults.py it keeps the default within
        0.04 nats/char of PyTorch's same model; 2e-3 did better on four and
        0.134 worse on the fifth, a held-out text of another kind.
    batch_size : int, default=32
        The number of parallel streams the text is cut into (fewer when the
        text is too short); batches run in the order of the text, with no
        shuffling, since the state is carried from one chunk to the next.
    max_iter : int, default=10
        Epochs: passes over the text.  They are a budget: running out of
        them raises no ConvergenceWarning.
    random_state : int, RandomState or None, default=None
        Weight initialisation and dropout masks (the text is walked in
        order and its tail held out: nothing else is random).  A given
        random_state and n_jobs give the same model bit for bit.
    early_stopping : bool, default=False
        Hold out the last ``validation_fraction`` of the tokens (or score
        fit's ``X_val``) after every epoch, stop when its mean
        log-likelihood per token has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and keep the best epoch's weights.

    Attributes
    ----------
    vocab_ : list
        The token of each id: ``"<unk>"`` (id 0, every token not kept), the
        end-of-document token ``"<eos>"`` (id 1), then the kept tokens by
        decreasing count; besides the two special tokens there is at least
        one.  For documents given as integer arrays, the tokens are those
        integers (in [0, 2**63 - 1]).
    n_features_in_, n_outputs_ : int
        The vocabulary size.
    loss_curve_, validation_scores_, validation_loss_curve_, best_loss_,
    best_validation_score_, n_iter_, t_, loss_, learning_rate_curve_
        As in RNNClassifier: the training loss and validation loss in nats
        per token; validation scores are mean log-likelihoods (higher is
        better).

    Notes
    -----
    ``score``, ``perplexity``, ``bits_per_token``, ``predict_proba`` and
    ``generate`` run every document from a zero state with the
    end-of-document token as its first input (the training stream puts one
    before every document but the first), and score the end of each
    document as one more token.  The validation of early stopping scores
    the held-out text as ``batch_size`` contiguous streams, as char-rnn
    does.

    Examples
    --------
    >>> from crnn import RNNLanguageModel
    >>> text = "the cat sat on the mat. " * 20
    >>> lm = RNNLanguageModel(hidden_size=32, num_layers=1, seq_length=20, batch_size=4,
    ...                       max_iter=60, random_state=0).fit(text)
    >>> lm.vocab_[:2], len(lm.vocab_)        # the special tokens, then 11 characters
    (['<unk>', '<eos>'], 13)
    >>> lm.predict("the c")
    'a'
    >>> lm.predict_proba(["the c", "the m"]).shape
    (2, 13)
    >>> bool(lm.perplexity(text) < 2)
    True
    >>> len(lm.generate(30, prompt="the ", random_state=0))
    30
    """

    _loss_code = LOSS_XENT
    # what a language model fixes, as the shared engine reads it (_BaseRNN._engine,
    # _fitted_seq): an output per step, truncation by chunks.  It has no
    # bidirectional or shuffle: its own _make_layout runs one direction
    # (generation steps forward) and its _plan_fit walks the text in order.
    return_sequences = True
    bptt_truncate = None
    _FITTED_ATTRIBUTES = _BaseRNN._FITTED_ATTRIBUTES | {"vocab_"}
    _parameter_constraints = without(_BaseRNN._parameter_constraints, "bidirectional",
                                     "return_sequences", "bptt_truncate", "shuffle") | {
        "tokenizer": [Options({"char", "word"}), callable],
        "seq_length": [Interval("int", 1, INT_MAX)],
        "embedding_dim": [Interval("int", 1, 2**20), Options({"auto"}), None],
        "max_vocab": [Interval("int", 3, INT_MAX), None],
        "min_count": [Interval("int", 1, INT_MAX)],
    }

    def __init__(
        self,
        *,
        tokenizer="char",
        cell="lstm",
        hidden_size=128,
        num_layers=2,
        seq_length=100,
        embedding_dim="auto",
        max_vocab=None,
        min_count=1,
        nonlinearity="tanh",
        dropout=0.0,
        forget_bias=0.0,
        solver="adam",
        learning_rate="constant",
        learning_rate_init=1e-3,
        power_t=0.5,
        batch_size=32,
        max_iter=10,
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
        random_state=None,
        verbose=0,
        warm_start=False,
        n_jobs=None,
        dtype=np.float32,
        compute_dtype=None,
    ):
        store_params(self, locals())

    # ------------------------------------------------------------------
    # parameters and text

    def _embedding_width(self):
        """The embedding's width (0: one-hot)."""
        if isinstance(self.embedding_dim, str):          # "auto"
            return int(self.hidden_size)
        return int(self.embedding_dim or 0)

    def _make_layout(self, n_features, n_outputs=None):
        layout = Layout(self.cell, self.nonlinearity, int(self.num_layers), 1,
                        int(self.hidden_size), int(n_features), int(n_features), tokens=True,
                        embedding_dim=self._embedding_width())
        _check_model_size(layout, self._dtype())
        return layout

    def _documents(self, X, name):
        """X -> ("text" or "ids", list of token lists)."""
        if isinstance(X, str):
            X = [X]
        if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind in "iu":
            X = [X]                    # one document of token ids
        if not isinstance(X, (list, tuple)) and not (isinstance(X, np.ndarray)
                                                    and X.dtype == object):
            raise TypeError(f"{name} must be a string, a list of strings (documents) or a "
                            f"list of 1D integer arrays of token ids; got "
                            f"{type(X).__name__}.")
        X = list(X)
        if not X:
            raise ValueError(f"{name} is empty: it holds no document.")
        if all(isinstance(d, str) for d in X):
            tokenize = tokenizer_function(self.tokenizer)
            return "text", [tokenize(d) for d in X]
        docs = []
        for i, d in enumerate(X):
            if isinstance(d, str):
                raise TypeError(f"{name} mixes strings and other values (document {i} is a "
                                "string, others are not).")
            docs.append(token_ids(d, f"{name}: document {i}"))
        return "ids", docs

    def _vocabulary(self):
        """The fitted vocabulary (cached while vocab_ is the same object)."""
        cached = self.__dict__.get("_vocab_cache")
        if cached is None or cached[0] is not self.vocab_:
            cached = (self.vocab_, Vocabulary.from_tokens(self.vocab_))
            self.__dict__["_vocab_cache"] = cached
        return cached[1]

    def _kind(self):
        return "ids" if type(self.vocab_[2]) is int else "text"

    def _encode(self, X, name, end=True):
        """X (as fit takes it) -> list of id arrays in the fitted vocabulary."""
        kind, docs = self._documents(X, name)
        if kind != self._kind():
            raise ValueError(f"{name} holds {'strings' if kind == 'text' else 'token ids'}, "
                             f"but the model was fitted on "
                             f"{'text' if self._kind() == 'text' else 'token ids'}.")
        vocab = self._vocabulary()
        return [vocab.encode(d, end=end) for d in docs]

    # ------------------------------------------------------------------
    # training

    @with_callbacks
    def fit(self, X, y=None, *, X_val=None):
        """Train on text for max_iter epochs (or until early stopping).

        Parameters
        ----------
        X : str, list of str, or list of 1D integer arrays
            One text, documents, or documents already cut into tokens given
            as integers.  The vocabulary is built from it (unless
            warm_start continues a fitted model).
        y : None
            Ignored (the targets are the next tokens).
        X_val : same types as X, optional
            Held-out text for early stopping (early_stopping=True), instead
            of the tail of X.

        Returns
        -------
        self : RNNLanguageModel
        """
        return run_fit(self, X, None, False, X_val=X_val)

    @with_callbacks
    def partial_fit(self, X, y=None):
        """One epoch over X (the vocabulary is built at the first call;
        later calls read tokens it lacks as unknown).

        Parameters
        ----------
        X : str, list of str, or list of 1D integer arrays
        y : None
            Ignored.

        Returns
        -------
        self : RNNLanguageModel
        """
        return run_fit(self, X, None, True)

    def _plan_fit(self, ctx, X, y, *, X_val=None):
        """The text of a fit (see crnn._base.fitting): the vocabulary (built, or
        the fitted one when training continues), the streams of chunks, and
        the held-out tail of X or X_val for early stopping."""
        dtype, continue_from_fitted = ctx.dtype, ctx.continue_from_fitted
        if continue_from_fitted:
            ids = self._encode(X, "X")
            vocab = self._vocabulary()
        else:
            kind, docs = self._documents(X, "X")
            if not any(len(d) for d in docs):
                raise ValueError("X holds no tokens: the text is empty.")
            vocab = Vocabulary(docs, self.max_vocab, self.min_count)
            if len(vocab) < 3:
                raise ValueError(f"X has no token seen at least min_count={self.min_count} "
                                 "times: the vocabulary would hold only the unknown and "
                                 "end-of-document tokens.")
            ids = [vocab.encode(d, end=True) for d in docs]
        ids = np.concatenate(ids)
        if len(vocab) >= 2**24 and dtype == np.float32:
            raise ValueError(f"a vocabulary of {len(vocab)} tokens is too large for float32 "
                             "token ids (at most 2**24); use dtype=numpy.float64.")
        layout = self._make_layout(len(vocab))
        ctx.start(layout)
        L = int(self.seq_length)
        val_ids = None
        if X_val is not None:
            if continue_from_fitted:
                val_ids = np.concatenate(self._encode(X_val, "X_val"))
            else:
                vkind, vdocs = self._documents(X_val, "X_val")
                if vkind != kind:
                    raise ValueError("X_val and X must both be text or both token ids.")
                val_ids = np.concatenate([vocab.encode(d, end=True) for d in vdocs])
            if len(val_ids) < 2:
                raise ValueError("X_val holds no tokens: its text is empty (at least one "
                                 "token is needed to score it).")
        elif ctx.early_stopping:
            n_val = int(round(len(ids) * self.validation_fraction))
            if n_val < 2 or len(ids) - n_val < L + 1:
                raise ValueError(
                    f"The validation set is too small: {len(ids)} tokens cannot give "
                    f"validation_fraction={self.validation_fraction} of them (at least 2) and "
                    f"keep seq_length + 1 = {L + 1} for training. Pass X_val, or more text.")
            ids, val_ids = ids[:-n_val], ids[-n_val:]
        n_streams = min(int(self.batch_size), (len(ids) - 1) // L)
        if n_streams < 1:
            raise ValueError(f"X has {len(ids)} tokens (end-of-document tokens included): "
                             f"too few for one chunk of seq_length={L} (at least {L + 1}).")
        x, t = stream_batches(ids, n_streams, L)
        n_chunks = x.shape[0]
        rows = x.reshape(-1, 1).astype(dtype)
        target = t.reshape(-1).astype(np.int32)
        starts = np.arange(n_chunks * n_streams, dtype=np.intp) * L
        lens = np.full(n_streams, L, dtype=np.intp)

        def chunk(k):
            data = SeqData(rows, starts[k * n_streams:(k + 1) * n_streams], lens, False)
            data.__dict__.update(max_len=L, uniform=True)
            return data

        engine = self._engine(layout, True)
        n_threads = ctx.n_threads
        shape = (layout.num_layers, n_streams, layout.hidden)
        lstm = layout.cell == "lstm"

        def batches(pool, batch, rng):
            # every epoch starts from zero states; each chunk from the last's
            h0, hN = np.zeros(shape, dtype), np.empty(shape, dtype)
            c0, cN = (np.zeros(shape, dtype), np.empty(shape, dtype)) if lstm else (None, None)
            samples = np.arange(n_streams, dtype=np.intp)
            for k in range(n_chunks):
                yield samples, {"data": chunk(k), "states": (h0, c0, hN, cN)}
                h0, hN, c0, cN = hN, h0, cN, c0

        validate = None
        if val_ids is not None:
            seqs = _segments(val_ids, n_streams)

            def validate_streams(theta):
                nll, count = self._walk(layout, theta, seqs, n_threads)[:2]
                return -nll / count, nll / count

            validate = validate_streams

        return FitPlan(
            lambda: engine.trainer(chunk(0), target, n_streams, n_threads, dtype,
                                   keep=ctx.incremental),
            np.arange(n_chunks * n_streams, dtype=np.intp),
            dict(n_features_in_=len(vocab), n_outputs_=len(vocab),
                 vocab_=self.vocab_ if continue_from_fitted else list(vocab.tokens),
                 _return_sequences=True),
            validate=validate, batches=batches, shuffle=False,
            warn_max_iter=False,     # epochs over a text are a budget: no ConvergenceWarning
            engine=engine)

    # ------------------------------------------------------------------
    # evaluation

    def _walk(self, layout, theta, seqs, n_threads, want_last=False):
        """Run every sequence of ids in `seqs` from a zero state: each is a
        pair (inputs, targets or None).  Returns (sum of -log p(target),
        number of targets, logits after each sequence's last input (or
        None), final states (h, c) in the step kernel's layout (or None)).

        Long sequences run in pieces with the state carried, in groups, so
        that at most about _EVAL_LOGITS logits exist at once."""
        engine = self._engine(layout, True)
        owner, wpack = self.__dict__.get("_wpack", (None, None))
        if owner is not theta:
            wpack = engine.packed_weights(theta)
        V, H, nl = layout.n_outputs, layout.hidden, layout.num_layers
        lstm = layout.cell == "lstm"
        dtype = theta.dtype
        N = len(seqs)
        lens = np.array([len(s[0]) for s in seqs], dtype=np.intp)
        rows_cap = max(64, _EVAL_LOGITS // V)
        group = max(1, min(N, rows_cap // 32))
        piece = max(1, rows_cap // group)
        nll, count = 0.0, 0
        last = np.empty((N, V), dtype) if want_last else None
        h_all = np.zeros((nl, N, H), dtype) if want_last else None
        c_all = np.zeros((nl, N, H), dtype) if (want_last and lstm) else None
        for g0 in range(0, N, group):
            members = np.arange(g0, min(N, g0 + group))
            h = np.zeros((nl, len(members), H), dtype)
            c = np.zeros_like(h) if lstm else None
            for p0 in range(0, int(lens[members].max()), piece):
                run = np.flatnonzero(lens[members] > p0)
                segs = [seqs[members[i]][0][p0:p0 + piece] for i in run]
                seg_lens = np.array([len(s) for s in segs], dtype=np.intp)
                start = np.concatenate([[0], np.cumsum(seg_lens)[:-1]]).astype(np.intp)
                data = SeqData(np.concatenate(segs).astype(dtype)[:, None], start, seg_lens,
                               True)
                h0 = np.ascontiguousarray(h[:, run])
                c0 = np.ascontiguousarray(c[:, run]) if lstm else None
                hN = np.empty_like(h0)
                cN = np.empty_like(c0) if lstm else None
                logits = engine.predict(theta, data, n_threads, wpack, (h0, c0, hN, cN))
                h[:, run] = hN
                if lstm:
                    c[:, run] = cN
                tg = [seqs[members[i]][1] for i in run]
                if tg[0] is not None:
                    tgt = np.concatenate([t[p0:p0 + piece] for t in tg])
                    z = logits.astype(np.float64)
                    mx = z.max(axis=1)
                    lse = mx + np.log(np.exp(z - mx[:, None]).sum(axis=1))
                    nll += float(np.sum(lse - z[np.arange(len(tgt)), tgt]))
                    count += len(tgt)
                if want_last:
                    ends = members[run][lens[members[run]] <= p0 + piece]
                    for i in ends:
                        k = int(np.flatnonzero(members[run] == i)[0])
                        last[i] = logits[start[k] + seg_lens[k] - 1]
            if want_last:
                h_all[:, members] = h
                if lstm:
                    c_all[:, members] = c
        if not math.isfinite(nll):
            raise FloatingPointError("the model's log-likelihood overflowed (non-finite "
                                     "logits).")
        return nll, count, last, ((h_all, c_all) if want_last else None)

    def _documents_nll(self, X):
        check_is_fitted(self, "_theta")
        seqs = [(np.concatenate([[1], d[:-1]]), d) for d in self._encode(X, "X")]
        nll, count = self._walk(self._layout, self._theta, seqs,
                                effective_n_threads(self.n_jobs))[:2]
        return nll / count

    def score(self, X, y=None):
        """Mean log-likelihood per token, in nats (higher is better).

        Every document runs from a zero state with the end-of-document token
        as its first input; its tokens and its end are scored.  Tokens not
        in the vocabulary are read and scored as the unknown token.

        Parameters
        ----------
        X : str, list of str, or list of 1D integer arrays
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        return -self._documents_nll(X)

    def perplexity(self, X):
        """exp(-score(X)): the perplexity per token.

        Parameters
        ----------
        X : str, list of str, or list of 1D integer arrays
            Documents, as score takes them.

        Returns
        -------
        perplexity : float
        """
        return float(np.exp(self._documents_nll(X)))

    def bits_per_token(self, X):
        """-score(X) / ln 2: bits per token (bits per character for "char").

        Parameters
        ----------
        X : str, list of str, or list of 1D integer arrays
            Documents, as score takes them.

        Returns
        -------
        bits : float
        """
        return self._documents_nll(X) / math.log(2.0)

    def _prefix_states(self, prefixes):
        """(logits after each prefix, (h, c)) for a list of prefixes."""
        seqs = [(np.concatenate([[1], d[:-1]]), None) for d in prefixes]
        _, _, last, states = self._walk(self._layout, self._theta, seqs,
                                        effective_n_threads(self.n_jobs), want_last=True)
        return last, states

    def _prefixes(self, prefix, name="prefix"):
        """prefix(es) -> (list of id arrays without the end token, single).
        For a model of token ids, "" (the start of a document) is the empty
        prefix too."""
        check_is_fitted(self, "_theta")
        single = isinstance(prefix, str) or (isinstance(prefix, np.ndarray) and prefix.ndim == 1
                                             and (prefix.dtype.kind in "iu" or prefix.size == 0))
        if not single and isinstance(prefix, (list, tuple)) and len(prefix) == 0:
            raise ValueError(f"{name} is an empty list; pass a string (\"\" for the start of "
                             "a document) or a list of them.")
        prefixes = [prefix] if single else prefix
        if self._kind() == "ids" and isinstance(prefixes, (list, tuple)):
            prefixes = [np.zeros(0, np.int64) if isinstance(p, str) and p == "" else p
                        for p in prefixes]
        # each ends with the end token, which _prefix_states does not read
        return self._encode(prefixes, name), single

    def predict_proba(self, prefix):
        """The distribution of the token that follows each prefix.

        Parameters
        ----------
        prefix : str, list of str (or, for a model fitted on token ids, a 1D
            integer array or a list of them)
            Text at the start of a document ("" for its first token, also
            for a model of token ids).

        Returns
        -------
        proba : ndarray of shape (n_tokens,) for one prefix, or
            (n_prefixes, n_tokens); column i is the probability of ``vocab_[i]``.
        """
        prefixes, single = self._prefixes(prefix)
        last, _ = self._prefix_states(prefixes)
        z = last.astype(np.float64)
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        return p[0] if single else p

    def predict(self, prefix):
        """The most likely next token after each prefix (an entry of
        ``vocab_``; "<eos>" when the document most likely ends).

        Parameters
        ----------
        prefix : str or list of str (token-id models: 1D integer arrays)

        Returns
        -------
        token : str (or int) for one prefix, or a list of them
            (``"<unk>"`` and ``"<eos>"`` for a model of token ids too)
        """
        p = self.predict_proba(prefix)
        if p.ndim == 1:
            return self.vocab_[int(p.argmax())]
        return [self.vocab_[int(i)] for i in p.argmax(axis=1)]

    def generate(self, n_tokens, prompt="", temperature=1.0, top_k=None, top_p=None,
                 random_state=None):
        """Sample a continuation of the prompt, one token at a time.

        The prompt is read once (as the start of a document); then each
        step feeds the last sampled token to the step kernel: O(1) work per
        token.  The unknown token is never sampled; an end-of-document token
        is generated as a line break (token-id models: -1, which no token id
        is) and the text goes on as a new document.

        Parameters
        ----------
        n_tokens : int
            Tokens to generate, from 0 (none) to MAX_GENERATE = 2**24; a
            longer text takes several calls, each continuing the last
            (``prompt=`` its tail).
        prompt : str (token-id models: 1D integer array, or ""), default=""
            The start of the document ("": a new document, for token-id
            models too); tokens outside the vocabulary are read as the
            unknown token.
        temperature : float, default=1.0
            Sample from softmax(logits / temperature); 0 takes the most
            likely token every time (greedy, deterministic).
        top_k : int, optional
            Sample among the top_k most likely tokens only.
        top_p : float in (0, 1], optional
            Sample among the smallest set of most likely tokens whose
            probability reaches top_p (nucleus sampling; after top_k).
        random_state : int, RandomState or None
            The draws; an int reproduces the sample.

        Returns
        -------
        text : str (joined without separator for "char", with single spaces
            otherwise; the prompt is not repeated), or for a token-id model
            an int64 array of n_tokens token ids, -1 where a document ends
        """
        if isinstance(n_tokens, bool) or not isinstance(n_tokens, numbers.Integral) or \
                not 0 <= n_tokens <= MAX_GENERATE:
            raise ValueError(f"n_tokens must be an integer in [0, {MAX_GENERATE}] (2**24; "
                             f"generate a longer text in several calls); got {n_tokens!r}.")
        n_tokens = int(n_tokens)
        check_sampling(temperature, top_k, top_p)
        rng = check_random_state(random_state)
        check_is_fitted(self, "_theta")
        if not (isinstance(prompt, str) or (isinstance(prompt, np.ndarray) and prompt.ndim == 1)
                or (self._kind() == "ids" and isinstance(prompt, (list, tuple)))):
            raise TypeError("generate takes one prompt: a string"
                            f"{' or a 1D array of token ids' if self._kind() == 'ids' else ''}"
                            f"; got {type(prompt).__name__}.")
        if isinstance(prompt, (list, tuple)):
            prompt = np.asarray(token_ids(prompt, "prompt"), dtype=np.int64)
        prefixes, single = self._prefixes(prompt, "prompt")
        if not single:
            raise ValueError("generate takes one prompt (a string).")
        theta = self._theta
        logits, (h, c) = self._prefix_states(prefixes)
        if n_tokens == 0:
            return self._decode(np.zeros(0, dtype=np.int64))
        kernel = self._engine(self._layout, True).step_kernel(
            theta, 1, False, effective_n_threads(self.n_jobs))
        if top_k is None and top_p is None:
            # the whole loop in the kernel: the draws are the ones the loop
            # below would take from rng, one per token
            u = rng.random_sample(n_tokens) if temperature > 0 else np.zeros(n_tokens)
            return self._decode(kernel.sample(logits, h, c, u, float(temperature)))
        out = np.empty(n_tokens, dtype=np.int64)
        x = np.empty((1, 1), dtype=theta.dtype)
        for i in range(n_tokens):
            logits[:, 0] = -np.inf                    # never the unknown token
            out[i] = sample_next(logits, temperature, top_k, top_p, rng)[0]
            if i + 1 < n_tokens:
                x[0, 0] = out[i]
                logits, h, c = kernel.step(x, h, c)
        return self._decode(out)

    def _decode(self, ids):
        """Sampled ids (never 0) -> text, or token ids with -1 for the end
        of a document."""
        vocab = self.vocab_
        if self._kind() == "ids":
            table = np.array([0, -1] + vocab[2:], dtype=np.int64)
            return table[np.asarray(ids, dtype=np.intp)]
        sep = "" if self.tokenizer == "char" else " "
        return sep.join("\n" if i == 1 else vocab[i] for i in ids.tolist())

    # ------------------------------------------------------------------
    # weights and model files

    def load_state_dict(self, state_dict, vocab=None):
        """Set the weights from a PyTorch-style state dict and the vocabulary.

        Parameters
        ----------
        state_dict : dict of str to array
            As state_dict() returns it: ``embedding.weight`` (with
            embedding_dim), ``rnn.*`` and ``head.*``.
        vocab : list
            The token of each id, as ``vocab_`` (starting "<unk>", "<eos>", then
            at least one token; ValueError otherwise).

        Returns
        -------
        self : RNNLanguageModel
        """
        if vocab is None:
            raise ValueError("a language model's weights need their vocabulary: "
                             "load_state_dict(state_dict, vocab=...).")
        if isinstance(vocab, (str, bytes)):
            raise TypeError("vocab is the list of tokens, not a string.")
        vocab = [t.item() if isinstance(t, np.generic) else t for t in vocab]
        dtype = self._validate_hyperparams()
        self._check_vocab(vocab, "vocab", dtype)
        vocab = Vocabulary.from_tokens(vocab)
        layout = self._make_layout(len(vocab))
        theta = self._theta_from_state_dict(state_dict, layout)
        attrs = TrainState.new(layout, theta).attributes(early_stopping=False)
        attrs.update(n_features_in_=len(vocab), n_outputs_=len(vocab), vocab_=list(vocab.tokens),
                     best_loss_=None, _random_state=check_random_state(self.random_state),
                     _wpack=(theta, self._engine(layout, True).packed_weights(theta)),
                     _return_sequences=True)
        self.__dict__.update(attrs)
        return self

    def _check_vocab(self, vocab, name, dtype):
        """A vocabulary (vocab_ of a model file, or load_state_dict's vocab):
        "<unk>", "<eos>", then at least one token, all distinct, strings
        (single characters for tokenizer="char") or token ids in [0, 2**63 -
        1]; ValueError otherwise."""
        tokenizer = self.tokenizer if isinstance(self.tokenizer, str) else None
        check_vocabulary(vocab, name, (UNK, EOS), tokenizer)
        if dtype == np.float32 and len(vocab) >= 2**24:
            raise ValueError(f"{name} has {len(vocab)} tokens, too many for float32 token ids "
                             "(at most 2**24).")

    def _check_fitted_targets(self, attrs):
        vocab = attrs["vocab_"]
        self._check_vocab(vocab, "vocab_", attrs["_theta"].dtype)
        layout = attrs["_layout"]
        if not layout.tokens or layout.ndir != 1 or len(vocab) != layout.n_features or \
                layout.n_outputs != layout.n_features:
            raise ValueError(f"the network ({self._describe(layout)}) is not a language "
                             f"model over the {len(vocab)} tokens of vocab_.")
        if not attrs["_return_sequences"]:
            raise ValueError("a language model has an output per token (_return_sequences).")

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_vocab_cache", None)
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = False
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        tags.target_tags.required = False
        return tags


def _segments(ids, n):
    """The stream cut into at most n contiguous segments of (inputs,
    targets): each segment continues the stream (char-rnn's evaluation)."""
    ids = np.asarray(ids, dtype=np.int64)
    n = max(1, min(n, len(ids) - 1))
    bounds = np.linspace(0, len(ids) - 1, n + 1).astype(np.intp)
    return [(ids[a:b], ids[a + 1:b + 1]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


__all__ = ["RNNLanguageModel", "EOS", "UNK"]
