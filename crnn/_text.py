"""Text for the language model: tokenizers, the vocabulary, stateful
stream batches, and next-token sampling.

Everything here is plain numpy; the network runs in the kernels (token-id
input, stateful training, the token step kernel).
"""
import numbers
import re
from collections import Counter

import numpy as np

# "word": runs of letters/digits (with inner apostrophes: don't, o'er), or any
# single other non-space character (punctuation is its own token); spaces and
# newlines are not tokens, and decode joins words with single spaces
WORD_PATTERN = r"\w+(?:'\w+)*|[^\w\s]"
UNK, EOS = "<unk>", "<eos>"


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
            if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
                raise TypeError("the tokenizer callable must return a list of strings; got "
                                f"{type(tokens).__name__}.")
            return list(tokens)
        return call
    raise ValueError(f"tokenizer must be 'char', 'word' or a callable; got {tokenizer!r}.")


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
