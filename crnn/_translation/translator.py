"""RNNTranslator: sequence-to-sequence translation with attention.

Sentences become token ids (crnn._text.tokens's tokenizers and vocabularies), an
encoder (the library's recurrent layers over a source embedding) reads each
source sentence, and a decoder cell with attention over the encoder's
outputs emits the target sentence one token at a time; training (teacher
forcing), greedy decoding and the steps of beam search run in the kernels
(src/_seq2seq.pxi).  The training loop, solvers, model files and parameter
checks are the other estimators'.
"""
import re

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._nn import seq2seq as _seq2seq

from .._nn import threads as _threads
from .._base.docstrings import document_parameters
from .._base.callbacks import with_callbacks
from .._base.estimator import _BaseRNN, _check_model_size
from .._base.params import INT_MAX, Interval, Options, store_params, without
from .._nn.layout import LOSS_XENT
from .._nn.seq2seq import Pairs, Seq2SeqLayout, Seq2SeqWork
from .._text.tokens import (EOS, UNK, WORD_PATTERN, Vocabulary, check_vocabulary, token_ids,
                    tokenizer_function)
from .._base.fitting import FitPlan, run_fit
from .._nn.threads import effective_n_threads
from .._nn.training import TrainState

BOS = "<bos>"
# "word" tokens that follow the previous token without a space carry this
# mark (OpenNMT Tokenizer's joiner), so translations are detokenized exactly:
# "quarante-trois" -> ["quarante", JOINER + "-", JOINER + "trois"]
JOINER = "\uffed"
_WORD = re.compile(WORD_PATTERN)
# the longest translation max_output_length may ask for
MAX_OUTPUT_LENGTH = 2**20
# greedy decoding runs the sentences in groups of at most about this many
# output tokens (its output buffer: sentences x their longest limit)
_GREEDY_OUT_CELLS = 2**24


def word_tokens(text):
    """The "word" tokens of text, a token that touches the previous one (no
    space between them) marked with JOINER in front."""
    out, end = [], None
    for m in _WORD.finditer(text):
        tok = m.group()
        out.append(tok if end is None or m.start() > end else JOINER + tok)
        end = m.end()
    return out


def _tokenizer(tokenizer):
    return word_tokens if tokenizer == "word" else tokenizer_function(tokenizer)


def corpus_bleu(hypotheses, references):
    """Corpus BLEU (0-100) with sacrebleu's defaults: sacrebleu's own when it
    is installed, else crnn._translation.bleu (the same numbers, tested against
    sacrebleu)."""
    try:
        import sacrebleu
    except ImportError:
        from .bleu import corpus_bleu as bleu
        return float(bleu(list(hypotheses), list(references)))
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def detokenize(tokens, tokenizer):
    """Tokens -> text: "char" joins them; "word" puts a space before every
    token but those marked with JOINER (word_tokens' inverse, up to runs of
    spaces); a callable tokenizer's tokens are joined by single spaces."""
    if tokenizer == "char":
        return "".join(tokens)
    if tokenizer != "word":
        return " ".join(tokens)
    out = []
    for t in tokens:
        if t.startswith(JOINER):
            out.append(t[len(JOINER):])
        else:
            if out:
                out.append(" ")
            out.append(t)
    return "".join(out)


@document_parameters
class RNNTranslator(_BaseRNN):
    """Sequence-to-sequence translation: an encoder-decoder with attention.

    The model of the classic tutorials (Bahdanau et al. 2015; Luong et al.
    2015), as one scikit-learn estimator.  A source sentence's tokens go
    through an embedding and a GRU or LSTM encoder (``num_layers`` layers,
    bidirectional by default); the top layer's final states, concatenated,
    start the decoder through ``s_0 = tanh(W e + b)``.  The decoder is one
    cell of the same kind over the target embedding; at every step it
    attends over the encoder's outputs (a softmax over the sentence's own
    source tokens):

    - "bahdanau" (additive): ``score_j = v . tanh(W_q s_{k-1} + W_k h_j)``;
      the context ``c_k = sum_j alpha_j h_j`` joins the cell's input, and
      ``[s_k; c_k]`` feeds the output layer;
    - "luong" (multiplicative, "general"): ``score_j = s_k . (W h_j)`` after
      the cell; ``tanh(W_c [c_k; s_k] + b_c)`` feeds the output layer;
    - None: no attention, ``s_k`` feeds the output layer.

    A softmax over the target vocabulary gives the next token.  Training
    minimises the cross-entropy of every target token and of the end token,
    feeding the true previous token (teacher forcing); sentences of
    different lengths cost only their own steps on both sides (no padding).
    Translation feeds back the model's own tokens: greedy (``beam_size=1``,
    every sentence of a chunk stepped together in the kernel, each stopping
    at its end token) or beam search with length normalisation.

    Parameters
    ----------
    src_tokenizer, tgt_tokenizer : {"word", "char"} or callable, default="word"
        How sentences are cut into tokens (a callable returning anything
        but a list of strings is a TypeError).  "word": the regex
        ``\\w+(?:'\\w+)*|[^\\w\\s]`` (words with inner apostrophes, and every
        other non-space character alone), a token that touches the previous
        one marked as joined (OpenNMT's joiner, U+FFED), so translations come
        back with their own spacing ("quarante-trois", "Open File...").
        "char": characters.  A callable takes a string and returns a list of
        strings (translations joined by single spaces).  Case is kept.
    cell : {"gru", "lstm"}, default="gru"
        The encoder's and the decoder's cell: GRU (gates r, z, n) or LSTM
        (gates i, f, g, o), as torch.nn.GRU / LSTM.
    hidden_size : int, default=128
        Units of the decoder and of each encoder direction.
    num_layers : int, default=1
        Encoder layers (the decoder is one cell).
    bidirectional_encoder : bool, default=True
        Run the encoder's layers in both directions (the decoder reads each
        source token's two states concatenated).
    attention : {"bahdanau", "luong"} or None, default="bahdanau"
        The decoder's attention over the encoder's outputs (see above);
        None: none, the decoder starts from the encoder's final states only.
    attention_dim : int or None, default=None
        Width of Bahdanau's scoring layer (None: hidden_size).
    embedding_dim : int, default=64
        Width of the source and target embeddings.
    max_vocab : int or None, default=None
        Keep at most this many tokens in each vocabulary (special tokens
        included), the most frequent first.
    min_count : int, default=1
        Keep tokens seen at least this often in the first fit's sentences.
    max_output_length : int or None, default=None
        Most tokens a translation has, at most 2**20 (None: twice the source
        sentence's tokens plus 10).
    beam_size : int, default=1
        1: greedy decoding; more (at most 65536): beam search keeping that
        many hypotheses per sentence.  Translation first estimates the
        memory its buffers need (beam search: about ``beam_size`` times a
        sentence's, and 48 bytes per hypothesis and target token each step)
        and refuses, with a ValueError, what this machine's memory cannot
        hold.
    length_penalty : float, default=1.0
        Beam search ranks finished hypotheses by total log-probability /
        length ** length_penalty (the end token counted; 0: raw
        log-probability, which favours short translations).
    dropout : float in [0, 1), default=0.0
        Dropout between the encoder's layers, in training only (no effect
        with one layer).
    forget_bias : float, default=0.0
        Added to the LSTM forget gates' input bias at initialisation (0:
        PyTorch's initialisation); the GRU ignores it.
    batch_size : int, default=32
        Sentence pairs per update.  The loss is the mean over the batch's
        target tokens.
    max_iter : int, default=10
        Epochs over the pairs.  They are a budget: running out of them
        raises no ConvergenceWarning.
    alpha : float, default=0.0
        L2 penalty on the weight matrices (not the biases), ``alpha / 2 *
        ||W||^2`` divided by the batch's number of target tokens.
    early_stopping : bool, default=False
        Hold out a random ``validation_fraction`` of the pairs (or score
        fit's ``X_val``, ``y_val``) after every epoch: the validation score
        is its BLEU (greedy decoding), the validation loss its mean token
        cross-entropy; stop when the score has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and keep the best epoch's weights.

    Attributes
    ----------
    src_vocab_, tgt_vocab_ : list
        The token of each id.  Source: ``"<unk>"`` (id 0, every token not
        kept), ``"<eos>"`` (id 1, unused), then the kept tokens by decreasing
        count; target: ``"<unk>"``, ``"<eos>"`` (the end of a sentence),
        ``"<bos>"`` (the decoder's first input), then the kept tokens.  Each
        holds at least one token besides its special ones (fit refuses data
        that would give fewer).  For sentences given as integer arrays the
        tokens are those integers, token ids in [0, 2**63 - 1] (so that the
        -1 of predict's unknown token is no token id).
    n_features_in_, n_outputs_ : int
        The source and target vocabulary sizes.
    loss_curve_, validation_scores_, validation_loss_curve_, best_loss_,
    best_validation_score_, n_iter_, t_, loss_, learning_rate_curve_
        As in RNNClassifier (losses in nats per target token).

    Notes
    -----
    ``score`` is corpus BLEU on the 0-100 scale, computed by sacrebleu
    (``sacrebleu.corpus_bleu`` with its defaults: 13a tokenization, no
    smoothing beyond its default exponential one) when it is installed, and
    otherwise by crnn's own implementation of the same definition, tested
    to give the same numbers.  An empty source sentence (no tokens)
    translates to an empty sentence; fit refuses them.  Unknown source
    tokens at translation time are read as ``"<unk>"``; the model may emit
    ``"<unk>"`` too.

    Examples
    --------
    >>> import numpy as np
    >>> from crnn import RNNTranslator
    >>> words = "zero one two three four five six seven eight nine".split()
    >>> rng = np.random.default_rng(0)
    >>> digits = [rng.integers(0, 10, size=rng.integers(4, 7)) for _ in range(100)]
    >>> X = [" ".join(str(d) for d in ds) for ds in digits]
    >>> y = [" ".join(words[d] for d in ds) for ds in digits]
    >>> X[0], y[0]
    ('6 5 2 3 0 0', 'six five two three zero zero')
    >>> tr = RNNTranslator(hidden_size=32, embedding_dim=16, batch_size=16, max_iter=80,
    ...                    random_state=0).fit(X, y)
    >>> tr.predict(["4 2 8 1", "7 0 1 5 5"])
    array(['four two eight one', 'seven zero one five five'], dtype=object)
    >>> bool(tr.score(X, y) > 90)            # corpus BLEU, 0-100
    True
    """

    _loss_code = LOSS_XENT
    # what a translator fixes, as the shared engine reads it (_BaseRNN._engine,
    # _fitted_seq); its own _make_layout builds the encoder-decoder
    return_sequences = True
    bptt_truncate = None
    _FITTED_ATTRIBUTES = _BaseRNN._FITTED_ATTRIBUTES | {"src_vocab_", "tgt_vocab_"}
    _parameter_constraints = without(
        _BaseRNN._parameter_constraints, "nonlinearity", "bidirectional", "return_sequences",
        "bptt_truncate", "compute_dtype") | {
        "src_tokenizer": [Options({"char", "word"}), callable],
        "tgt_tokenizer": [Options({"char", "word"}), callable],
        "cell": [Options({"gru", "lstm"})],
        "bidirectional_encoder": ["boolean"],
        "attention": [Options({"bahdanau", "luong"}), None],
        "attention_dim": [Interval("int", 1, 2**20), None],
        "embedding_dim": [Interval("int", 1, 2**20)],
        "max_vocab": [Interval("int", 4, INT_MAX), None],
        "min_count": [Interval("int", 1, INT_MAX)],
        "max_output_length": [Interval("int", 1, MAX_OUTPUT_LENGTH), None],
        "beam_size": [Interval("int", 1, 2**16)],
        "length_penalty": [Interval("real", 0, np.inf, closed="left")],
    }
    _layout_class = Seq2SeqLayout

    def __init__(
        self,
        *,
        src_tokenizer="word",
        tgt_tokenizer="word",
        cell="gru",
        hidden_size=128,
        num_layers=1,
        bidirectional_encoder=True,
        attention="bahdanau",
        attention_dim=None,
        embedding_dim=64,
        max_vocab=None,
        min_count=1,
        max_output_length=None,
        beam_size=1,
        length_penalty=1.0,
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
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        n_jobs=None,
        dtype=np.float32,
    ):
        store_params(self, locals())

    # ------------------------------------------------------------------
    # parameters, sentences, vocabularies

    def _simd(self, check_cpu=True):
        """No compute_dtype here: the encoder-decoder kernels compute in
        ``dtype`` (bfloat16 products cover the RNN estimators only)."""
        return -1

    def _make_layout(self, src_vocab, tgt_vocab):
        att = self.attention
        layout = Seq2SeqLayout(
            self.cell, int(self.num_layers), 2 if self.bidirectional_encoder else 1,
            int(self.hidden_size), int(src_vocab), int(tgt_vocab), int(self.embedding_dim),
            att, int(self.attention_dim or self.hidden_size) if att == "bahdanau" else 0)
        _check_model_size(layout, self._dtype(), f"These parameters ({self._describe(layout)})")
        return layout

    @staticmethod
    def _describe(layout):
        return (f"{layout.num_layers} encoder layer(s) of {layout.hidden} {layout.cell.upper()}"
                f" units{' per direction, bidirectional' if layout.ndir == 2 else ''}, "
                f"{layout.attention or 'no'} attention, vocabularies of {layout.src_vocab} and "
                f"{layout.tgt_vocab} tokens")

    @staticmethod
    def _layout_io_shape(layout):
        return layout.src_vocab, layout.tgt_vocab

    def _sentences(self, X, name, tokenizer, allow_empty=False):
        """X -> ("text" or "ids", list of token lists)."""
        if isinstance(X, str) or (isinstance(X, np.ndarray) and X.ndim == 1
                                  and X.dtype.kind in "iu"):
            raise TypeError(f"{name} must be a list of sentences (strings, or 1D integer "
                            f"arrays of token ids), not a single {type(X).__name__}.")
        if not isinstance(X, (list, tuple)) and not (isinstance(X, np.ndarray)
                                                    and X.ndim == 1):
            raise TypeError(f"{name} must be a list of sentences (strings, or 1D integer "
                            f"arrays of token ids); got {type(X).__name__}.")
        X = list(X)
        if all(isinstance(s, str) for s in X):
            tokenize = _tokenizer(tokenizer)
            out = "text", [tokenize(s) for s in X]
        else:
            sents = []
            for i, s in enumerate(X):
                if isinstance(s, str):
                    raise TypeError(f"{name} mixes strings and other values ({name}[{i}] is a "
                                    "string, others are not).")
                sents.append(token_ids(s, f"{name}[{i}]"))
            out = "ids", sents
        if not allow_empty:
            for i, s in enumerate(out[1]):
                if not s:
                    raise ValueError(f"{name}[{i}] is empty: every source sentence needs at "
                                     "least one token.")
        return out

    def _vocabularies(self):
        cached = self.__dict__.get("_vocab_cache")
        if cached is None or cached[0] is not self.src_vocab_ or cached[1] is not self.tgt_vocab_:
            cached = (self.src_vocab_, self.tgt_vocab_, Vocabulary.from_tokens(self.src_vocab_),
                      Vocabulary.from_tokens(self.tgt_vocab_))
            self.__dict__["_vocab_cache"] = cached
        return cached[2], cached[3]

    def _kinds(self):
        def kind(vocab, first):
            return "ids" if len(vocab) > first and type(vocab[first]) is int else "text"
        return kind(self.src_vocab_, 2), kind(self.tgt_vocab_, 3)

    def _new_vocabularies(self, src, tgt):
        sv = Vocabulary(src, self.max_vocab, self.min_count)
        tv = Vocabulary(tgt, None if self.max_vocab is None else self.max_vocab - 1,
                        self.min_count)
        tv = Vocabulary.from_tokens([UNK, EOS, BOS] + [t for t in tv.tokens[2:] if t != BOS])
        # a vocabulary of the special tokens only: nothing to learn, and a
        # model whose kind (text or token ids) is unknown
        if len(sv) < 3:
            raise ValueError(f"X has no token seen at least min_count={self.min_count} times: "
                             "the source vocabulary would hold only the special tokens.")
        if len(tv) < 4:
            raise ValueError("y has no token seen at least min_count="
                             f"{self.min_count} times (or every target sentence is empty): "
                             "the target vocabulary would hold only the special tokens.")
        return sv, tv

    # ------------------------------------------------------------------
    # training

    @with_callbacks
    def fit(self, X, y, *, X_val=None, y_val=None):
        """Train on sentence pairs for max_iter epochs (or until early stopping).

        Parameters
        ----------
        X : list of str, or list of 1D integer arrays
            Source sentences (each with at least one token).
        y : list of str, or list of 1D integer arrays
            Their translations (may be empty: the model then learns to end
            at once).
        X_val, y_val : same types, optional
            Held-out pairs for early stopping (early_stopping=True).

        Returns
        -------
        self : RNNTranslator
        """
        return run_fit(self, X, y, False, X_val=X_val, y_val=y_val)

    @with_callbacks
    def partial_fit(self, X, y):
        """One epoch over the pairs (X, y); the vocabularies are built at the
        first call, later calls read tokens they lack as unknown.

        Parameters
        ----------
        X : list of str, or list of 1D integer arrays
        y : list of str, or list of 1D integer arrays

        Returns
        -------
        self : RNNTranslator
        """
        return run_fit(self, X, y, True, y_val=None)

    def _encode_pairs(self, X, y, names):
        sk, src = self._sentences(X, names[0], self.src_tokenizer)
        tk, tgt = self._sentences(y, names[1], self.tgt_tokenizer, allow_empty=True)
        if len(src) != len(tgt):
            raise ValueError(f"{names[0]} and {names[1]} hold different numbers of sentences: "
                             f"{len(src)} and {len(tgt)}.")
        return sk, tk, src, tgt

    def _plan_fit(self, ctx, X, y, *, X_val=None, y_val=None):
        """The sentence pairs of a fit (see crnn._base.fitting): the vocabularies
        (built, or the fitted ones when training continues), and held-out
        pairs (a random validation_fraction of them, or X_val, y_val) scored
        by greedy BLEU for early stopping."""
        dtype = ctx.dtype
        sk, tk, src, tgt = self._encode_pairs(X, y, ("X", "y"))
        if not src:
            raise ValueError("X is empty: it holds no sentence pair.")
        continue_from_fitted = ctx.continue_from_fitted
        if continue_from_fitted:
            if (sk, tk) != self._kinds():
                raise ValueError("X and y must hold the same kinds of sentences (text or "
                                 "token ids) as the data the model was fitted on.")
            sv, tv = self._vocabularies()
        else:
            sv, tv = self._new_vocabularies(src, tgt)
        if len(sv) >= 2**24 and dtype == np.float32:
            raise ValueError(f"a source vocabulary of {len(sv)} tokens is too large for "
                             "float32 token ids (at most 2**24); use dtype=numpy.float64.")
        src_ids = [sv.encode(s) for s in src]
        tgt_ids = [tv.encode(t) for t in tgt]
        layout = self._make_layout(len(sv), len(tv))
        _, rng = ctx.start(layout)
        n_threads = ctx.n_threads
        val = None
        if X_val is not None:
            vsk, vtk, vsrc, vtgt = self._encode_pairs(X_val, y_val, ("X_val", "y_val"))
            if not vsrc:
                raise ValueError("X_val is empty: it holds no sentence pair.")
            if (vsk, vtk) != (sk, tk):
                raise ValueError("X_val, y_val must hold the same kinds of sentences as X, y.")
            val = ([sv.encode(s) for s in vsrc], [tv.encode(t) for t in vtgt], vtgt)
        elif ctx.early_stopping:
            n_val = int(round(len(src) * self.validation_fraction))
            if n_val < 1 or len(src) - n_val < 1:
                raise ValueError(f"The validation set is too small: {len(src)} pairs cannot "
                                 f"give validation_fraction={self.validation_fraction} of "
                                 "them (at least 1) and keep one for training.")
            perm = rng.permutation(len(src))
            held = np.sort(perm[:n_val])
            keep = np.sort(perm[n_val:])
            val = ([src_ids[i] for i in held], [tgt_ids[i] for i in held],
                   [tgt[i] for i in held])
            src_ids = [src_ids[i] for i in keep]
            tgt_ids = [tgt_ids[i] for i in keep]
        pairs = Pairs(src_ids, tgt_ids, dtype)

        validate = None
        if val is not None:
            refs = [self._detok(t, tv, tk) for t in val[2]]

            def validate_pairs(theta):
                losses, _ = _seq2seq.token_losses(layout, theta, val[0], val[1], n_threads)
                hyp = self._translate_ids(layout, theta, val[0], n_threads, beam_size=1)
                bleu = corpus_bleu([self._detok(h, tv, tk, ids=True) for h in hyp], refs)
                return bleu, float(np.mean(np.concatenate(losses)))

            validate = validate_pairs

        return FitPlan(
            lambda: Seq2SeqWork(layout, pairs, int(self.batch_size), n_threads, dtype,
                                dropout=float(self.dropout)),
            np.arange(pairs.n, dtype=np.intp),
            dict(n_features_in_=len(sv), n_outputs_=len(tv),
                 src_vocab_=self.src_vocab_ if continue_from_fitted else list(sv.tokens),
                 tgt_vocab_=self.tgt_vocab_ if continue_from_fitted else list(tv.tokens),
                 _return_sequences=True),
            validate=validate, shuffle=bool(self.shuffle),
            warn_max_iter=False)     # epochs over a corpus are a budget: no ConvergenceWarning

    # ------------------------------------------------------------------
    # translation

    def _detok(self, ids_or_tokens, tv, kind, ids=False):
        """A target sentence (ids with ids=True, else tokens) -> output:
        text, or an int64 array for models of token ids."""
        toks = [tv.tokens[i] for i in ids_or_tokens] if ids else list(ids_or_tokens)
        if kind == "ids":
            return " ".join(str(t) for t in toks)
        return detokenize([str(t) for t in toks], self.tgt_tokenizer)

    def _max_lengths(self, src_ids):
        if self.max_output_length is not None:
            return np.full(len(src_ids), int(self.max_output_length), dtype=np.intp)
        return np.array([2 * len(s) + 10 for s in src_ids], dtype=np.intp)

    def _check_decoding_memory(self, layout, theta, src, maxlen, beam_size, n_threads):
        """A ValueError, before any work, when decoding src would need more
        memory than this machine has: greedy decoding's output buffer and
        workspaces (per group of sentences), beam search's workspace of
        beam_size hypotheses per sentence of a chunk, its candidates (about
        48 bytes per hypothesis and target token at each step) and its
        hypotheses, for as many chunks as run at once."""
        budget = _threads.physical_memory()
        if budget is None:
            return
        cfg = layout.config()
        itemsize = theta.dtype.itemsize
        n = len(src)
        T = max(len(s) for s in src)
        M = max(1, int(maxlen.max()))
        V = layout.tgt_vocab
        n_threads = max(1, int(n_threads))
        if beam_size == 1:
            k = min(n, max(1, _GREEDY_OUT_CELLS // M))      # one group
            B = min(_seq2seq._GREEDY_CHUNK, max(16, -(-k // (2 * n_threads))), k)
            nt = min(n_threads, -(-k // B))
            need = k * M * 4 + nt * (cfg.workspace_size(B, T, 1, False) * itemsize
                                     + cfg.index_workspace_size(B, T, 1, False) * 8)
        else:
            per = max(1, _seq2seq._CHUNK // beam_size)
            nc = min(n, per)
            R = nc * beam_size
            chunk = (cfg.workspace_size(R, T, 1, False) * itemsize
                     + cfg.index_workspace_size(R, T, 1, False) * 8
                     + 48 * R * V + 16 * R * M + 8 * nc * M)
            need = min(n_threads, -(-n // per)) * chunk
        if need > budget:
            raise ValueError(
                f"translating these sentences with beam_size={beam_size} would need about "
                f"{need / 2**30:.1f} GiB of memory (the longest source sentence has {T} "
                f"tokens, translations may have up to {M}), more than this machine's "
                f"{budget / 2**30:.1f} GiB. Use a smaller beam_size or max_output_length, "
                "or translate the longest sentences apart.")

    def _translate_ids(self, layout, theta, src_ids, n_threads, beam_size=None):
        """Target id arrays (without the end token) of the source id arrays;
        empty sources give empty translations.  The memory decoding needs is
        checked first; greedy decoding runs in groups of sentences (of
        similar limits) whose output buffer holds at most about
        _GREEDY_OUT_CELLS tokens (each sentence's translation is the same
        whatever the group)."""
        beam_size = int(self.beam_size if beam_size is None else beam_size)
        out = [np.zeros(0, np.int64)] * len(src_ids)
        keep = [i for i, s in enumerate(src_ids) if len(s)]
        if not keep:
            return out
        src = [src_ids[i] for i in keep]
        maxlen = self._max_lengths(src)
        self._check_decoding_memory(layout, theta, src, maxlen, beam_size, n_threads)
        if beam_size == 1:
            if len(src) * int(maxlen.max()) <= _GREEDY_OUT_CELLS:
                res = _seq2seq.greedy(layout, theta, src, maxlen, n_threads)
            else:
                res = [None] * len(src)
                order = np.argsort(-maxlen, kind="stable")
                g0 = 0
                while g0 < len(order):
                    group = order[g0:g0 + max(1, _GREEDY_OUT_CELLS // int(maxlen[order[g0]]))]
                    got = _seq2seq.greedy(layout, theta, [src[i] for i in group],
                                          maxlen[group], n_threads)
                    for i, r in zip(group, got):
                        res[i] = r
                    g0 += len(group)
        else:
            res = _seq2seq.beam(layout, theta, src, maxlen, beam_size,
                                float(self.length_penalty), n_threads)
        for i, r in zip(keep, res):
            out[i] = r
        return out

    def predict(self, X):
        """Translate sentences.

        Parameters
        ----------
        X : list of str, or list of 1D integer arrays
            Source sentences; tokens outside the source vocabulary are read
            as unknown.

        Returns
        -------
        translations : ndarray of object, shape (n_sentences,)
            Strings (models fitted on text) or 1D int64 arrays of target
            tokens (models fitted on token ids; the unknown token as -1),
            without the end token.
        """
        check_is_fitted(self, "_theta")
        self._validate_hyperparams()
        sk, tk = self._kinds()
        kind, src = self._sentences(X, "X", self.src_tokenizer, allow_empty=True)
        if src and kind != sk:
            raise ValueError(f"X holds {'strings' if kind == 'text' else 'token ids'}, but "
                             f"the model was fitted on "
                             f"{'text' if sk == 'text' else 'token ids'}.")
        sv, tv = self._vocabularies()
        ids = self._translate_ids(self._layout, self._theta, [sv.encode(s) for s in src],
                                  effective_n_threads(self.n_jobs))
        out = np.empty(len(ids), dtype=object)
        for i, t in enumerate(ids):
            out[i] = (np.array([tv.tokens[j] if j > 2 else -1 for j in t], dtype=np.int64)
                      if tk == "ids" else self._detok(t, tv, tk, ids=True))
        return out

    def score(self, X, y):
        """Corpus BLEU (0-100) of the translations of X against the references y.

        sacrebleu's ``corpus_bleu`` with its defaults when sacrebleu is
        installed, else crnn's implementation of the same definition (equal
        to it).  Models of token ids are scored on the ids written as words.

        Parameters
        ----------
        X : list of str, or list of 1D integer arrays
        y : list of str, or list of 1D integer arrays
            One reference translation per sentence.

        Returns
        -------
        score : float
        """
        check_is_fitted(self, "_theta")
        if len(X) != len(y):
            raise ValueError(f"X and y hold different numbers of sentences: {len(X)} and "
                             f"{len(y)}.")
        if len(X) == 0:
            raise ValueError("X and y are empty: there is no sentence to score.")
        _, tk = self._kinds()
        ky, ref_tokens = self._sentences(y, "y", self.tgt_tokenizer, allow_empty=True)
        if ky != tk and any(len(r) for r in ref_tokens):
            raise ValueError(f"y holds {'strings' if ky == 'text' else 'token ids'}, but the "
                             f"model's translations are "
                             f"{'text' if tk == 'text' else 'token ids'}.")
        hyp = self.predict(X)
        if tk == "ids":
            hyp = [" ".join(str(int(t)) for t in h) for h in hyp]
            refs = [" ".join(str(t) for t in r) for r in ref_tokens]
        else:
            refs = list(y) if ky == "text" else [""] * len(ref_tokens)
        return corpus_bleu(list(hyp), refs)

    def attention_weights(self, x, y=None):
        """The attention weights of one sentence pair (teacher forcing).

        Parameters
        ----------
        x : str or 1D integer array
            A source sentence.
        y : str, 1D integer array or None, default=None
            Its translation (None: the model's own, ``predict([x])[0]``).

        Returns
        -------
        weights : ndarray of shape (n_target_tokens + 1, n_source_tokens)
            Row k: the weights over the source tokens when the decoder
            predicts target token k (the last row: the end token); rows sum
            to 1.
        source_tokens, target_tokens : list
            The tokens labelling the columns and rows (unknown tokens as
            "<unk>", the end token as "<eos>").
        """
        check_is_fitted(self, "_theta")
        if self._layout.attention is None:
            raise ValueError("this model has no attention (attention=None).")
        sk, tk = self._kinds()
        kind, src = self._sentences([x], "x", self.src_tokenizer)
        if kind != sk:
            raise ValueError(f"x holds {'a string' if kind == 'text' else 'token ids'}, but "
                             f"the model was fitted on {'text' if sk == 'text' else 'token ids'}.")
        sv, tv = self._vocabularies()
        s_ids = sv.encode(src[0])
        if y is None:           # the model's own translation, as predict([x]) has it
            t_ids = self._translate_ids(self._layout, self._theta, [s_ids], 1)[0]
        else:
            kind, tgt = self._sentences([y], "y", self.tgt_tokenizer, allow_empty=True)
            if kind != tk and len(tgt[0]):
                raise ValueError(f"y holds {'a string' if kind == 'text' else 'token ids'}, "
                                 f"but the model's translations are "
                                 f"{'text' if tk == 'text' else 'token ids'}.")
            t_ids = tv.encode(tgt[0])
        _, weights = _seq2seq.token_losses(self._layout, self._theta, [s_ids], [t_ids], 1,
                                           attention=True)
        return (weights[0], [sv.tokens[i] for i in s_ids],
                [tv.tokens[i] for i in t_ids] + [EOS])

    def plot_attention(self, x, y=None, *, ax=None):
        """Plot the attention weights of a sentence pair (matplotlib).

        Parameters
        ----------
        x : str or 1D integer array
        y : str, 1D integer array or None, default=None
            As in attention_weights.
        ax : matplotlib Axes, optional

        Returns
        -------
        ax : matplotlib Axes
        """
        from ..plotting import plot_attention
        weights, src, tgt = self.attention_weights(x, y)
        return plot_attention(weights, src, tgt, ax=ax)

    # ------------------------------------------------------------------
    # weights and model files

    def load_state_dict(self, state_dict, src_vocab=None, tgt_vocab=None):
        """Set the weights from a PyTorch-style state dict and the vocabularies.

        Parameters
        ----------
        state_dict : dict of str to array
            As state_dict() returns it (see crnn/_nn/seq2seq.py for the names).
        src_vocab, tgt_vocab : list
            The token of each id, as ``src_vocab_`` and ``tgt_vocab_`` (their special
            tokens first, then at least one other; ValueError otherwise).

        Returns
        -------
        self : RNNTranslator
        """
        if src_vocab is None or tgt_vocab is None:
            raise ValueError("a translator's weights need their vocabularies: "
                             "load_state_dict(state_dict, src_vocab=..., tgt_vocab=...).")
        vocabs = []
        for name, vocab in (("src_vocab", src_vocab), ("tgt_vocab", tgt_vocab)):
            if isinstance(vocab, (str, bytes)):
                raise TypeError(f"{name} is the list of tokens, not a string.")
            vocabs.append([t.item() if isinstance(t, np.generic) else t for t in vocab])
        dtype = self._validate_hyperparams()
        self._check_vocabularies(*vocabs, ("src_vocab", "tgt_vocab"), dtype)
        sv, tv = Vocabulary.from_tokens(vocabs[0]), Vocabulary.from_tokens(vocabs[1])
        layout = self._make_layout(len(sv), len(tv))
        theta = self._theta_from_state_dict(state_dict, layout)
        attrs = TrainState.new(layout, theta).attributes(early_stopping=False)
        attrs.update(n_features_in_=len(sv), n_outputs_=len(tv), src_vocab_=list(sv.tokens),
                     tgt_vocab_=list(tv.tokens), best_loss_=None,
                     _random_state=check_random_state(self.random_state),
                     _return_sequences=True)
        self.__dict__.update(attrs)
        return self

    def _check_vocabularies(self, src_vocab, tgt_vocab, names, dtype):
        """Source and target vocabularies (of a model file, or given to
        load_state_dict): "<unk>", "<eos>" (and "<bos>" for the target), then
        at least one token, all distinct, strings (single characters for a
        "char" tokenizer) or token ids in [0, 2**63 - 1]; ValueError
        otherwise."""
        for vocab, name, specials, tokenizer in (
                (src_vocab, names[0], (UNK, EOS), self.src_tokenizer),
                (tgt_vocab, names[1], (UNK, EOS, BOS), self.tgt_tokenizer)):
            check_vocabulary(vocab, name, specials,
                             tokenizer if isinstance(tokenizer, str) else None)
        if dtype == np.float32 and len(src_vocab) >= 2**24:
            raise ValueError(f"{names[0]} has {len(src_vocab)} tokens, too many for float32 "
                             "token ids (at most 2**24).")

    def _check_fitted_targets(self, attrs):
        layout = attrs["_layout"]
        for name, size in (("src_vocab_", layout.src_vocab), ("tgt_vocab_", layout.tgt_vocab)):
            vocab = attrs[name]
            if not isinstance(vocab, list) or len(vocab) != size:
                raise ValueError(f"{name} is not a list of the network's {size} tokens.")
        self._check_vocabularies(attrs["src_vocab_"], attrs["tgt_vocab_"],
                                 ("src_vocab_", "tgt_vocab_"), attrs["_theta"].dtype)
        if not attrs["_return_sequences"]:
            raise ValueError("a translator has an output per target token "
                             "(_return_sequences).")

    def _derived_attributes(self, attrs):
        pass                                  # nothing cached from the weights

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("_vocab_cache", None)
        return state

    def __setstate__(self, state):
        super(_BaseRNN, self).__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = False
        tags.input_tags.two_d_array = False
        tags.input_tags.string = True
        return tags


__all__ = ["RNNTranslator", "corpus_bleu", "detokenize"]
