"""Corpus-level BLEU and chrF, as sacrebleu computes them by default.

Pure Python: the scores of ``sacrebleu.corpus_bleu`` (``BLEU()``: the "13a"
tokenizer, "exp" smoothing, the brevity penalty and the geometric mean of
clipped n-gram precisions summed over the whole corpus) and of
``sacrebleu.corpus_chrf`` (``CHRF()``: character 6-grams, beta=2, whitespace
ignored, the averaged precision and recall over the n-gram orders seen), with
no dependency on sacrebleu.  Both take ``references[i]`` as the reference (a
string) or the references (a list of strings) of ``hypotheses[i]``; sacrebleu
takes reference *streams* instead (``[[ref_0, ref_1, ...], [alt_0, ...]]``),
the transpose.
"""
import math
import numbers
import re
from collections import Counter

from .._base.params import check_int_arg

# sacrebleu.metrics.bleu.BLEU.SMOOTH_DEFAULTS (Chen & Cherry, WMT 2014)
SMOOTH_DEFAULTS = {"none": None, "floor": 0.1, "add-k": 1, "exp": None}

# sacrebleu.tokenizers.tokenizer_re.TokenizerRegexp (mteval-v13a.pl)
_13A_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),   # punctuation, symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),     # period and comma unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),     # ... unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),          # dash after a digit
]
# sacrebleu.metrics.chrf.CHRF._PUNCTS (string.punctuation)
_PUNCTS = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def tokenize_13a(line):
    """The "13a" tokenizer of sacrebleu (mteval-v13a.pl, as used by WMT):
    str -> str of space-separated tokens."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&")
        line = line.replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, repl in _13A_RULES:
        line = pattern.sub(repl, line)
    return " ".join(line.split())


_TOKENIZERS = {"13a": tokenize_13a, "none": lambda line: line,
               "char": lambda line: " ".join(line)}


def _check_corpus(hypotheses, references):
    """-> (list of str, list of non-empty lists of str), one entry each per segment."""
    for name, value in (("hypotheses", hypotheses), ("references", references)):
        if isinstance(value, str) or not hasattr(value, "__len__"):
            raise TypeError(f"{name} must be a list with an item per segment; got "
                            f"{type(value).__name__}.")
    hypotheses = list(hypotheses)
    if not hypotheses:
        raise ValueError("hypotheses is empty: the corpus holds no segment.")
    if len(references) != len(hypotheses):
        raise ValueError(f"references has {len(references)} items and hypotheses "
                         f"{len(hypotheses)}: pass one item per hypothesis (a string, or "
                         "a list of strings for several references; note that sacrebleu "
                         "takes the transposed layout, a list of reference streams).")
    for i, hyp in enumerate(hypotheses):
        if not isinstance(hyp, str):
            raise TypeError(f"hypotheses[{i}] must be a string; got {type(hyp).__name__}.")
    refs = []
    for i, ref in enumerate(references):
        ref = [ref] if isinstance(ref, str) else list(ref)
        if not ref or not all(isinstance(r, str) for r in ref):
            raise ValueError(f"references[{i}] must be a string or a non-empty list of "
                             f"strings; got {references[i]!r}.")
        refs.append(ref)
    return hypotheses, refs


def _word_ngrams(tokens, max_n):
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_n + 1)
                   for i in range(len(tokens) - n + 1))


def _log(x):
    return math.log(x) if x != 0.0 else -9999999999      # sacrebleu.utils.my_log


def corpus_bleu(hypotheses, references, max_n=4, smooth=None, tokenize="13a",
                smooth_value=None):
    """Corpus-level BLEU in [0, 100], as ``sacrebleu.corpus_bleu`` computes it.

    Clipped n-gram matches and n-gram counts are summed over the whole corpus
    (n = 1..max_n), then BLEU = BP * exp(mean of log precisions), with the
    brevity penalty BP = exp(1 - r / c) when the hypotheses' length c is
    below the references' r (per segment, the reference length closest to
    the hypothesis length, the shorter one on ties).  With several references
    an n-gram is clipped at its largest count in any of them.

    Parameters
    ----------
    hypotheses : list of str
        The system outputs, one per segment (detokenized text).
    references : list of str or list of lists of str
        ``references[i]``: the reference of ``hypotheses[i]``, or a non-empty
        list of its references.
    max_n : int, default=4
        The largest n-gram order.
    smooth : {None, "exp", "none", "floor", "add-k"}, default=None
        The smoothing of zero precisions.  None means "exp", sacrebleu's
        default (NIST's geometric smoothing, as mteval-v13a.pl: the k-th order
        with no match counts 1 / (2**k * n-gram count) instead of 0).  "none":
        any order without a match gives 0; "floor": a zero count becomes
        ``smooth_value`` (default 0.1); "add-k": ``smooth_value`` (default 1)
        is added to the matches and counts of orders 2 and above.  Whatever the
        smoothing, a corpus without a single matching unigram scores 0.
    tokenize : {"13a", "char", "none"}, default="13a"
        How segments split into words: sacrebleu's "13a" (mteval-v13a:
        punctuation and symbols become tokens), "char" (every character a
        token) or "none" (split on whitespace only).
    smooth_value : float, optional
        The value of the "floor" and "add-k" smoothing.

    Returns
    -------
    float
        BLEU in [0, 100].

    Examples
    --------
    >>> from crnn.metrics import corpus_bleu
    >>> hypotheses = ["the cat sat on the mat", "a dog barked at the postman"]
    >>> references = ["the cat sat on the mat", "the dog barked at the postman"]
    >>> round(corpus_bleu(hypotheses, references), 1)
    88.1
    >>> several = [["the cat sat on the mat"],        # one or more references per segment
    ...            ["the dog barked at the postman", "a dog barked at the postman"]]
    >>> round(corpus_bleu(hypotheses, several), 1)
    100.0
    """
    hypotheses, references = _check_corpus(hypotheses, references)
    max_n = check_int_arg(max_n, "max_n", 1)
    smooth = "exp" if smooth is None else smooth
    if smooth not in SMOOTH_DEFAULTS:
        raise ValueError("smooth must be None, 'exp', 'none', 'floor' or 'add-k'; got "
                         f"{smooth!r}.")
    if smooth_value is None:
        smooth_value = SMOOTH_DEFAULTS[smooth]
    elif smooth in ("floor", "add-k") and not (
            isinstance(smooth_value, numbers.Real) and smooth_value > 0):
        raise ValueError(f"smooth_value must be a number > 0; got {smooth_value!r}.")
    if tokenize not in _TOKENIZERS:
        raise ValueError(f"tokenize must be '13a', 'char' or 'none'; got {tokenize!r}.")
    tok = _TOKENIZERS[tokenize]

    sys_len = ref_len = 0
    correct, total = [0] * max_n, [0] * max_n
    for hyp, refs in zip(hypotheses, references):
        ref_ngrams, ref_lens = Counter(), []
        for ref in refs:
            words = tok(ref.rstrip()).split()
            ref_lens.append(len(words))
            for ngram, count in _word_ngrams(words, max_n).items():
                ref_ngrams[ngram] = max(ref_ngrams[ngram], count)
        words = tok(hyp.rstrip()).split()
        sys_len += len(words)
        ref_len += min(ref_lens, key=lambda r: (abs(len(words) - r), r))
        for ngram, count in _word_ngrams(words, max_n).items():
            total[len(ngram) - 1] += count
            correct[len(ngram) - 1] += min(count, ref_ngrams.get(ngram, 0))

    # sacrebleu.metrics.bleu.BLEU.compute_bleu
    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    if not any(correct):
        return 0.0
    precisions = [0.0] * max_n
    smooth_mteval = 1.0
    for n in range(max_n):
        if smooth == "add-k" and n > 0:
            correct[n] += smooth_value
            total[n] += smooth_value
        if total[n] == 0:
            break                       # no hypothesis this long: the score is 0
        if correct[n] == 0:
            if smooth == "exp":
                smooth_mteval *= 2
                precisions[n] = 100.0 / (smooth_mteval * total[n])
            elif smooth == "floor":
                precisions[n] = 100.0 * smooth_value / total[n]
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    return bp * math.exp(sum(_log(p) for p in precisions) / max_n)


def _char_ngrams(line, char_order):
    line = "".join(line.split())                 # whitespace is not part of the n-grams
    return [Counter(line[i:i + n] for i in range(len(line) - n + 1))
            for n in range(1, char_order + 1)]


def _chrf_words(sent):
    """sacrebleu's CHRF._remove_punctuation: split one leading or trailing
    punctuation mark off each word."""
    words = []
    for w in sent.split():
        if len(w) > 1 and w[-1] in _PUNCTS:
            words += [w[:-1], w[-1]]
        elif len(w) > 1 and w[0] in _PUNCTS:
            words += [w[0], w[1:]]
        else:
            words.append(w)
    return words


def _chrf_ngrams(sent, char_order, word_order):
    ngrams = _char_ngrams(sent, char_order)
    if word_order:
        words = _chrf_words(sent)
        ngrams += [Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
                   for n in range(1, word_order + 1)]
    return ngrams


def _f_score(stats, beta):
    """sacrebleu's CHRF._compute_f_score without eps smoothing: F-beta of the
    precision and recall averaged over the orders with hypothesis and
    reference n-grams."""
    factor = beta ** 2
    avg_prec = avg_rec = 0.0
    effective_order = 0
    for n_hyp, n_ref, n_match in stats:
        if n_hyp > 0 and n_ref > 0:
            avg_prec += n_match / n_hyp
            avg_rec += n_match / n_ref
            effective_order += 1
    if effective_order == 0:
        return 0.0
    avg_prec /= effective_order
    avg_rec /= effective_order
    if not avg_prec + avg_rec:
        return 0.0
    return 100 * ((1 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec))


def corpus_chrf(hypotheses, references, char_order=6, word_order=0, beta=2):
    """Corpus-level chrF in [0, 100], as ``sacrebleu.corpus_chrf`` computes it.

    Character n-grams (n = 1..char_order, whitespace removed) and, for
    chrF++, word n-grams (n = 1..word_order, a leading or trailing
    punctuation mark split off each word) are matched per segment; hypothesis,
    reference and matched counts are summed over the corpus, then the
    precision and recall averaged over the orders that occur give
    F-beta = (1 + beta²) P R / (beta² P + R).  With several references, each
    segment uses the one with the best segment-level score (the first on ties).

    Parameters
    ----------
    hypotheses : list of str
        The system outputs, one per segment.
    references : list of str or list of lists of str
        ``references[i]``: the reference of ``hypotheses[i]``, or a non-empty
        list of its references.
    char_order : int, default=6
        The largest character n-gram order.
    word_order : int, default=0
        The largest word n-gram order (2 gives chrF++).
    beta : float, default=2
        The weight of recall relative to precision.

    Returns
    -------
    float
        chrF in [0, 100].

    Examples
    --------
    >>> from crnn.metrics import corpus_chrf
    >>> hypotheses = ["the cat sat on the mat", "a dog barked at the postman"]
    >>> references = ["the cat sat on the mat", "the dog barked at the postman"]
    >>> round(corpus_chrf(hypotheses, references), 1)
    92.6
    >>> round(corpus_chrf(hypotheses, references, word_order=2), 1)     # chrF++
    92.2
    """
    hypotheses, references = _check_corpus(hypotheses, references)
    char_order = check_int_arg(char_order, "char_order", 1)
    word_order = check_int_arg(word_order, "word_order", 0)
    if isinstance(beta, bool) or not isinstance(beta, numbers.Real) or not beta > 0:
        raise ValueError(f"beta must be a number > 0; got {beta!r}.")

    totals = [[0, 0, 0] for _ in range(char_order + word_order)]
    for hyp, refs in zip(hypotheses, references):
        hyp_ngrams = _chrf_ngrams(hyp, char_order, word_order)
        best, best_score = None, -1.0
        for ref in refs:
            stats = []
            for h, r in zip(hyp_ngrams, _chrf_ngrams(ref, char_order, word_order)):
                match = sum(min(c, r[g]) for g, c in h.items() if g in r)
                # no hypothesis n-grams count where the reference has none of that order
                stats.append((sum(h.values()) if r else 0, sum(r.values()), match))
            score = _f_score(stats, beta)
            if score > best_score:
                best, best_score = stats, score
        for acc, s in zip(totals, best):
            for k in range(3):
                acc[k] += s[k]
    return _f_score(totals, beta)
