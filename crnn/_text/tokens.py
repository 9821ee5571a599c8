"""Text for the language model: tokenizers, the vocabulary, stateful
stream batches, and next-token sampling.

Everything here is plain numpy; the network runs in the kernels (token-id
input, stateful training, the token step kernel).
"""
import numbers
import re
from collections import Counter
from collections.abc import Iterable

import numpy as np

# "word": runs of letters/digits (with inner apostrophes: don't, o'er), or any
# single other non-space character (punctuation is its own token); spaces and
# newlines are not tokens, and decode joins words with single spaces
WORD_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"
UNK, EOS = "<unk>", "<eos>"
# token ids given as integers (documents or sentences already cut into
# tokens) are integers in [0, MAX_TOKEN_ID]: they fit an int64, and never
# meet the -1 that generated and translated id sequences use as a marker
# (the end of a document, the unknown token)
MAX_TOKEN_ID = 2**63 - 1


def tokenizer_function(tokenizer):
    """tokenizer ("char", "word" or a callable str -> list of str) -> callable."""
    if tokenizer == "char":
        return list
    if tokenizer == "word":
        pattern = re.compile(WORD_PATTERN)
        return pattern.findall
    if callable(tokenizer):
        def call(text):
            tokens = tokenizer(text)
            # a str or bytes is iterable but is not a list of tokens; any
            # other iterable (a generator too) is read once, into a list
            if isinstance(tokens, (str, bytes)) or not isinstance(tokens, Iterable):
                raise TypeError("the tokenizer callable must return a list of strings; got "
                                f"{type(tokens).__name__}.")
            tokens = list(tokens)
            for t in tokens:
                if not isinstance(t, str):
                    raise TypeError("the tokenizer callable must return a list of strings; "
                                    f"it returned a list holding a {type(t).__name__} "
                                    f"({t!r}).")
            return tokens
        return call
    raise ValueError(f"tokenizer must be 'char', 'word' or a callable; got {tokenizer!r}.")


def token_ids(seq, where):
    """A document or sentence of integer token ids (a 1D integer array, or a
    sequence of ints) -> list of int.  TypeError for anything else (a
    string, floats, a nested sequence); ValueError for an id outside
    [0, MAX_TOKEN_ID] (a negative id, or a uint64 id of 2**63 or more, which
    an int64 cannot hold)."""
    if isinstance(seq, (str, bytes)):
        raise TypeError(f"{where} is a {type(seq).__name__}, not a 1D array of integer "
                        "token ids (text and token ids cannot be mixed).")
    if isinstance(seq, (list, tuple)) and any(isinstance(v, (bool, np.bool_)) for v in seq):
        # numpy would turn [True, 1] into [1, 1]
        raise TypeError(f"{where} holds a bool, not an integer token id.")
    try:
        a = np.asarray(seq)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where} is not a 1D array of integer token ids ({exc}).") from None
    if a.ndim != 1:
        raise TypeError(f"{where} is not a 1D array of integer token ids (it has "
                        f"{a.ndim} dimensions).")
    if a.size == 0:
        return []
    if a.dtype.kind in "iu":
        lo, hi = int(a.min()), int(a.max())
        ids = None
    elif a.dtype == object and all(isinstance(v, numbers.Integral) and
                                   not isinstance(v, (bool, np.bool_)) for v in a.tolist()):
        ids = [int(v) for v in a.tolist()]         # Python ints beyond int64/uint64
        lo, hi = min(ids), max(ids)
    else:
        raise TypeError(f"{where} holds {a.dtype} values, not integer token ids.")
    if lo < 0 or hi > MAX_TOKEN_ID:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{where} holds the token id {bad}; token ids are integers in "
                         "[0, 2**63 - 1].")
    return a.astype(np.int64).tolist() if ids is None else ids


def check_vocabulary(tokens, name, specials=(UNK, EOS), tokenizer=None):
    """Check a fitted vocabulary (read from a model file, or given to
    load_state_dict): a list of the special tokens, then at least one other
    token, all distinct and of one kind: strings (single characters for the
    "char" tokenizer, non-empty ones for "word") or ints in [0,
    MAX_TOKEN_ID].  Returns its kind, "text" or "ids"; ValueError naming
    the problem otherwise."""
    if type(tokens) is not list:
        raise ValueError(f"{name} is not a list of tokens.")
    n = len(specials)
    if len(tokens) < n or any(type(t) is not str or t != s
                              for t, s in zip(tokens, specials)):
        raise ValueError(f"{name} does not start with the special tokens "
                         f"{', '.join(map(repr, specials))}.")
    rest = tokens[n:]
    if not rest:
        raise ValueError(f"{name} holds only the special tokens "
                         f"{', '.join(map(repr, specials))}; a vocabulary needs at least "
                         "one other token.")
    kinds = {type(t) for t in rest}
    if kinds == {str}:
        kind = "text"
        if tokenizer == "char" and any(len(t) != 1 for t in rest):
            raise ValueError(f"{name} holds tokens that are not single characters, but the "
                             "tokenizer is 'char'.")
        if tokenizer == "word" and any(not t for t in rest):
            raise ValueError(f"{name} holds an empty token, which the 'word' tokenizer "
                             "never makes.")
    elif kinds == {int}:
        kind = "ids"
        if not all(0 <= t <= MAX_TOKEN_ID for t in rest):
            raise ValueError(f"{name} holds token ids outside [0, 2**63 - 1].")
    else:
        raise ValueError(f"{name} must hold strings only or integers only after its "
                         f"special tokens; it holds {sorted(k.__name__ for k in kinds)}.")
    if len(set(tokens)) != len(tokens):
        raise ValueError(f"{name} repeats a token.")
    return kind


class Vocabulary:
    """Token <-> id.  Id 0 is the unknown token, id 1 the end of a document;
    then the kept tokens by decreasing count (ties: first seen first).
    Tokens are strings, or integers for documents given as token ids.

    Parameters
    ----------
    documents : iterable of lists of str
        The tokenized training documents.
    max_vocab : int, optional
        Keep at most this many tokens (the two special ones included).
    min_count : int, default=1
        Keep tokens seen at least this often.
    """

    def __init__(self, documents, max_vocab=None, min_count=1):
        if max_vocab is not None and (isinstance(max_vocab, bool) or
                                      not isinstance(max_vocab, numbers.Integral) or
                                      max_vocab < 3):
            raise ValueError(f"max_vocab must be an integer >= 3 or None; got {max_vocab!r}.")
        if isinstance(min_count, bool) or not isinstance(min_count, numbers.Integral) or \
                min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1; got {min_count!r}.")
        counts = Counter()
        for doc in documents:
            counts.update(doc)
        for special in (UNK, EOS):
            counts.pop(special, None)          # a literal "<unk>" in the text is unknown
        # most_common keeps first-seen order among equal counts
        kept = [t for t, c in counts.most_common() if c >= min_count]
        if max_vocab is not None:
            kept = kept[:max_vocab - 2]
        self.tokens = [UNK, EOS] + kept
        self.index = {t: i for i, t in enumerate(self.tokens)}

    @classmethod
    def from_tokens(cls, tokens):
        """The vocabulary whose id i is tokens[i] (as saved by .tokens)."""
        tokens = list(tokens)
        if tokens[:2] != [UNK, EOS] or len(set(tokens)) != len(tokens) or \
                not all(type(t) in (str, int) for t in tokens[2:]):
            raise ValueError("a vocabulary is a list of distinct tokens (strings or "
                             f"integers) starting with {UNK!r}, {EOS!r}.")
        vocab = cls.__new__(cls)
        vocab.tokens = tokens
        vocab.index = {t: i for i, t in enumerate(tokens)}
        return vocab

    def __len__(self):
        return len(self.tokens)

    def encode(self, tokens, end=False):
        """Token ids (unknown tokens -> 0), plus the end id if end."""
        get = self.index.get
        ids = [get(t, 0) for t in tokens]
        if end:
            ids.append(1)
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids, sep=""):
        """The tokens of ids joined by sep (the end token as a newline)."""
        out = []
        for i in np.asarray(ids, dtype=np.int64).ravel():
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"token id {i} is outside the vocabulary of "
                                 f"{len(self.tokens)}.")
            out.append("\n" if i == 1 else self.tokens[i])
        return sep.join(out)


def stream_batches(ids, batch_size, seq_length):
    """Cut one long token stream into `batch_size` parallel streams and walk
    them in consecutive chunks, as char-rnn trains: chunk k of stream b is
    followed by chunk k + 1 of stream b, so a state carried from one batch to
    the next sees context longer than a chunk.

    Returns (inputs, targets), each (n_chunks, batch_size, seq_length) int64:
    targets are the inputs shifted by one token.  The stream's tail that
    does not fill a whole chunk of every stream is dropped.
    """
    ids = np.asarray(ids, dtype=np.int64).ravel()
    for name, v in (("batch_size", batch_size), ("seq_length", seq_length)):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a positive integer; got {v!r}.")
    per_stream = (len(ids) - 1) // batch_size
    n_chunks = per_stream // seq_length
    if n_chunks == 0:
        raise ValueError(f"{len(ids)} tokens are too few for batch_size={batch_size} streams "
                         f"of seq_length={seq_length} (at least "
                         f"{batch_size * seq_length + 1} are needed).")
    span = n_chunks * seq_length
    x = ids[:batch_size * per_stream].reshape(batch_size, per_stream)[:, :span]
    y = ids[1:batch_size * per_stream + 1].reshape(batch_size, per_stream)[:, :span]
    shape = (batch_size, n_chunks, seq_length)
    return (np.ascontiguousarray(x.reshape(shape).transpose(1, 0, 2)),
            np.ascontiguousarray(y.reshape(shape).transpose(1, 0, 2)))


def check_sampling(temperature, top_k, top_p):
    """Validate sampling parameters (clear errors)."""
    if not isinstance(temperature, numbers.Real) or isinstance(temperature, bool) or \
            not np.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0: greedy); got "
                         f"{temperature!r}.")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral)
                              or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None; got {top_k!r}.")
    if top_p is not None and (not isinstance(top_p, numbers.Real) or isinstance(top_p, bool)
                              or not 0 < top_p <= 1):
        raise ValueError(f"top_p must be in (0, 1] or None; got {top_p!r}.")


def sample_next(logits, temperature, top_k, top_p, rng):
    """One token id per row of logits (n_streams, V).

    temperature 0: the most likely token (the first of ties).  Otherwise
    softmax(logits / temperature), restricted to the top_k most likely tokens
    and then to the smallest set whose probability reaches top_p (nucleus
    sampling), renormalised, and one draw from rng per row.
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim == 1:
        logits = logits[None]
    if temperature == 0:
        return logits.argmax(axis=1)
    # shifted before the division: a tiny temperature gives -inf and 0, never
    # inf - inf
    z = (logits - logits.max(axis=1, keepdims=True)) / temperature
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    V = p.shape[1]
    if top_k is not None and top_k < V:
        # the top_k most likely (ties: the lower ids first)
        order = np.argsort(-p, axis=1, kind="stable")
        keep = np.zeros_like(p, dtype=bool)
        np.put_along_axis(keep, order[:, :top_k], True, axis=1)
        p = np.where(keep, p, 0.0)
    if top_p is not None and top_p < 1:
        order = np.argsort(-p, axis=1, kind="stable")
        sp = np.take_along_axis(p, order, axis=1)
        cum = np.cumsum(sp, axis=1) / sp.sum(axis=1, keepdims=True)
        # keep every token up to and including the one that reaches top_p
        n_keep = (cum < top_p).sum(axis=1) + 1
        keep_sorted = np.arange(V)[None, :] < n_keep[:, None]
        keep = np.zeros_like(keep_sorted)
        np.put_along_axis(keep, order, keep_sorted, axis=1)
        p = np.where(keep, p, 0.0)
    # the first token whose cumulative probability passes u * total: always
    # one with p > 0 (the cumulative sum only grows there), even for u = 0 or
    # a total rounded below 1
    c = np.cumsum(p, axis=1)
    u = rng.random((p.shape[0], 1)) * c[:, -1:]
    return (c <= u).sum(axis=1)
