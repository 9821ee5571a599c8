"""CTC helpers of RNNTranscriber: alphabets, decoding and the character
error rate.  The loss, its gradient and prefix beam search are kernels
(src/_ctc.pxi)."""
import numbers

import numpy as np

from .. import _kernels

BLANK = 0


def transcript_kind(y, name="y"):
    """'text' (every transcript a str) or 'ids' (every transcript a 1D
    sequence of integers); anything else is an error."""
    if isinstance(y, (str, bytes)) or not hasattr(y, "__len__"):
        raise ValueError(f"{name} must be a list of transcripts (strings, or sequences of "
                         f"integer labels), one per sample; got {type(y).__name__}.")
    kinds = set()
    for i, t in enumerate(y):
        if isinstance(t, str):
            kinds.add("text")
        elif isinstance(t, (bytes, float)) or t is None or np.ndim(t) != 1:
            raise ValueError(f"{name}[{i}] is {t!r}: a transcript is a str or a 1D sequence "
                             "of integer labels.")
        else:
            arr = np.asarray(t)
            if arr.size and not (arr.dtype.kind in "iu" or all(
                    isinstance(v, numbers.Integral) and not isinstance(v, bool)
                    for v in arr.tolist())):
                raise ValueError(f"{name}[{i}] holds {arr.dtype} values; integer labels "
                                 "are expected.")
            kinds.add("ids")
        if len(kinds) > 1:
            raise ValueError(f"{name} mixes strings and label sequences.")
    return kinds.pop() if kinds else "text"


def symbols_of(t, kind):
    """A transcript as a list of symbols (characters, or int labels)."""
    return list(t) if kind == "text" else [int(v) for v in np.asarray(t).tolist()]


def check_label_range(symbols, where):
    """Integer labels come back from transcription as int64 arrays: a
    ValueError naming `where` for one outside [-2**63, 2**63 - 1]."""
    for v in symbols:
        if not -2**63 <= v < 2**63:
            raise ValueError(f"{where} holds the label {v}; integer labels are int64 values, "
                             "in [-2**63, 2**63 - 1].")


def check_alphabet(alphabet, name="alphabet"):
    """A user's alphabet (str, or sequence of distinct characters or ints
    that an int64 holds) -> (list of symbols, kind)."""
    if isinstance(alphabet, str):
        symbols = list(alphabet)
        kind = "text"
    else:
        try:
            symbols = list(alphabet)
        except TypeError:
            raise ValueError(f"The '{name}' parameter must be None, a string or a sequence of "
                             f"symbols; got {alphabet!r}.") from None
        if all(isinstance(s, str) and len(s) == 1 for s in symbols):
            kind = "text"
        elif all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in symbols):
            symbols = [int(s) for s in symbols]
            kind = "ids"
        else:
            raise ValueError(f"The '{name}' parameter must hold single characters or "
                             f"integers; got {alphabet!r}.")
    if not symbols:
        raise ValueError(f"The '{name}' parameter is empty; it needs at least one symbol.")
    if kind == "ids":
        check_label_range(symbols, f"The '{name}' parameter")
    if len(set(symbols)) != len(symbols):
        raise ValueError(f"The '{name}' parameter repeats a symbol: {alphabet!r}.")
    return symbols, kind


def encode(y, alphabet, kind, name="y"):
    """Transcripts -> (labels int32, lstart, llen): symbol alphabet[k] is
    class k + 1 (class 0 is the blank).  An unknown symbol is an error."""
    index = {s: k + 1 for k, s in enumerate(alphabet)}
    llen = np.zeros(len(y), dtype=np.intp)
    parts = []
    for i, t in enumerate(y):
        syms = symbols_of(t, kind)
        try:
            codes = [index[s] for s in syms]
        except KeyError as exc:
            raise ValueError(
                f"{name}[{i}] holds the symbol {exc.args[0]!r}, which is not in the "
                f"alphabet {''.join(alphabet) if kind == 'text' else alphabet!r} (pass "
                "alphabet= to fix it before fitting).") from None
        parts.append(codes)
        llen[i] = len(codes)
    lstart = np.zeros(len(y), dtype=np.intp)
    if len(y) > 1:
        np.cumsum(llen[:-1], out=lstart[1:])
    labels = np.fromiter((c for p in parts for c in p), dtype=np.int32, count=int(llen.sum()))
    return labels, lstart, llen


def min_frames(labels, lstart, llen):
    """The fewest frames that can emit each labeling: its length plus one
    blank between each pair of equal neighbours."""
    need = llen.copy()
    if labels.size:
        same = np.zeros(labels.size, dtype=bool)
        same[1:] = labels[1:] == labels[:-1]
        same[lstart[llen > 0]] = False          # a labeling's first label
        csum = np.concatenate([[0], np.cumsum(same)])
        need += csum[lstart + llen] - csum[lstart]
    return need


def greedy_decode(raw, start, lens):
    """Best-path decoding: per sequence, the argmax class of every frame,
    runs merged, blanks removed -> (labels, offsets).  Only the sequences'
    own rows of raw are read."""
    out, offsets = [], np.zeros(len(start) + 1, dtype=np.intp)
    for i, (s, n) in enumerate(zip(start, lens)):
        a = raw[s:s + n].argmax(axis=1)
        keep = a != BLANK
        keep[1:] &= a[1:] != a[:-1]
        out.append(a[keep])
        offsets[i + 1] = offsets[i] + out[-1].size
    labels = np.concatenate(out).astype(np.int32) if out else np.zeros(0, np.int32)
    return labels, offsets


def beam_decode(raw, start, lens, beam_size, n_threads):
    """Prefix beam search per sequence (the kernel) -> (labels, offsets)."""
    labels, offsets, _ = _kernels.ctc_beam_search(raw, start, lens, int(beam_size), BLANK,
                                                  n_threads)
    return labels, offsets


def to_transcripts(labels, offsets, alphabet, kind):
    """Class labels per sequence -> an object array of str (text) or int64
    arrays of symbols."""
    sym = np.array(alphabet, dtype=object)
    out = np.empty(len(offsets) - 1, dtype=object)
    for i in range(len(out)):
        codes = labels[offsets[i]:offsets[i + 1]]
        if kind == "text":
            out[i] = "".join(sym[codes - 1])
        else:
            out[i] = np.array(sym[codes - 1], dtype=np.int64) if codes.size else \
                np.zeros(0, dtype=np.int64)
    return out


def edit_distance(a, b):
    """Levenshtein distance between two sequences (insertions, deletions and
    substitutions of one symbol each cost 1)."""
    a, b = list(a), list(b)
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    index = {}
    ca = np.array([index.setdefault(s, len(index)) for s in a])
    cb = np.array([index.setdefault(s, len(index)) for s in b])
    cols = np.arange(len(cb) + 1)
    row = cols.copy()
    for i, s in enumerate(ca, 1):
        new = np.empty_like(row)
        new[0] = i
        # deletion (row[j] + 1) and substitution (row[j - 1] + (a_i != b_j))
        new[1:] = np.minimum(row[1:] + 1, row[:-1] + (cb != s))
        # insertion (new[j - 1] + 1), closed by a running minimum
        row = np.minimum.accumulate(new - cols) + cols
    return int(row[-1])


def character_error_rate(references, hypotheses, sample_weight=None):
    """Corpus character error rate: the total edit distance of the
    hypotheses to their references over the total length of the references
    (each sample's edits and length weighed by sample_weight).  When every
    reference is empty (or weighs 0) it is the number of edits (0 when every
    hypothesis is empty too)."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references and {len(hypotheses)} hypotheses.")
    w = np.ones(len(references)) if sample_weight is None else sample_weight
    edits = sum(wi * edit_distance(r, h) for wi, r, h in zip(w, references, hypotheses))
    total = sum(wi * len(r) for wi, r in zip(w, references))
    return float(edits / total if total else edits)
