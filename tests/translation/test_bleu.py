"""Corpus BLEU and chrF (crnn._translation.bleu): hand-checked values, and sacrebleu's
scores on random corpora."""
import math
import random

import pytest

from crnn._translation.bleu import corpus_bleu, corpus_chrf, tokenize_13a


def test_bleu_perfect_and_disjoint():
    refs = ["the cat sat on the mat", "a dog barked at the postman"]
    assert corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert corpus_bleu(refs, [[r, "something else"] for r in refs]) == pytest.approx(100.0)
    assert corpus_bleu(["x y z w v", "u t s r q"], refs) == 0.0
    assert corpus_bleu([""], ["nothing matches"]) == 0.0
    # no 4-gram in the whole corpus: BLEU-4 is 0 even for a perfect match (as sacrebleu)
    assert corpus_bleu(["the cat"], ["the cat"]) == 0.0
    assert corpus_bleu(["the cat"], ["the cat"], max_n=2) == pytest.approx(100.0)


def test_bleu_brevity_penalty_and_smoothing_by_hand():
    # 5 hypothesis words, all n-grams matched, 6 reference words: BP = exp(1 - 6/5)
    bleu = corpus_bleu(["the cat sat on the"], ["the cat sat on the mat"])
    assert bleu == pytest.approx(100 * math.exp(-0.2))             # 81.873...
    # a longer hypothesis has no penalty: precisions 6/7, 5/6, 4/5, 3/4
    bleu = corpus_bleu(["the cat sat on the mat ."], ["the cat sat on the mat"])
    assert bleu == pytest.approx(100 * (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25)
    # precisions 3/4, 2/3, 1/2 and no matching 4-gram out of 1
    hyp, ref = ["a b c d"], ["a b c e"]
    assert corpus_bleu(hyp, ref) == pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** 0.25)
    assert corpus_bleu(hyp, ref, smooth="exp") == corpus_bleu(hyp, ref)
    assert corpus_bleu(hyp, ref, smooth="none") == 0.0
    assert corpus_bleu(hyp, ref, smooth="floor") == \
        pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 0.1) ** 0.25)
    assert corpus_bleu(hyp, ref, smooth="add-k") == \
        pytest.approx(100 * (3 / 4 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)
    assert corpus_bleu(hyp, ref, smooth="floor", smooth_value=0.5) == \
        pytest.approx(100 * (3 / 4 * 2 / 3 * 1 / 2 * 0.5) ** 0.25)


def test_bleu_corpus_level_and_references():
    # statistics are summed over the corpus, not averaged over sentences
    hyps, refs = ["a b c d", "e f g h"], ["a b c d", "e f x y"]
    assert corpus_bleu(hyps, refs) == pytest.approx(
        100 * (6 / 8 * 4 / 6 * 2 / 4 * 1 / 2) ** 0.25)
    # clipping: "the" counts at most twice (its largest count in one reference)
    hyp = ["the the the the the"]
    assert corpus_bleu(hyp, [["the cat", "the the mat"]], max_n=1) == \
        pytest.approx(100 * 2 / 5)
    # the closest reference length sets the brevity penalty (the shorter on ties)
    assert corpus_bleu(["a b c"], [["a b c d e f g", "a b c d"]], max_n=1) == \
        pytest.approx(100 * math.exp(1 - 4 / 3))
    assert corpus_bleu(["a b c"], [["a b", "a b c d"]], max_n=1) == pytest.approx(100.0)


def test_13a_tokenizer():
    assert tokenize_13a("Hello, world! It's 3.5 (or 1,000) e-mail &amp; 12-3.") == \
        "Hello , world ! It's 3.5 ( or 1,000 ) e-mail & 12 - 3 ."
    assert corpus_bleu(["Hello, world!"], ["Hello , world !"]) == pytest.approx(100.0)
    assert corpus_bleu(["Hello, world!"], ["Hello , world !"], tokenize="none") == 0.0
    assert corpus_bleu(["abcde"], ["abcdf"], tokenize="char") == \
        pytest.approx(100 * (4 / 5 * 3 / 4 * 2 / 3 * 1 / 2) ** 0.25)


def test_chrf_by_hand():
    assert corpus_chrf(["the cat sat"], ["the cat sat"]) == pytest.approx(100.0)
    assert corpus_chrf(["xyz"], ["abc"]) == 0.0
    # "ab" vs "abc", orders 1-2: P = (2/2 + 1/1) / 2 = 1, R = (2/3 + 1/2) / 2 = 7/12
    p, r = 1.0, 7 / 12
    assert corpus_chrf(["ab"], ["abc"], char_order=2) == \
        pytest.approx(100 * 5 * p * r / (4 * p + r))
    assert corpus_chrf(["ab"], ["abc"], char_order=2, beta=1) == \
        pytest.approx(100 * 2 * p * r / (p + r))
    # whitespace is ignored; the best of several references is used
    assert corpus_chrf(["a b c"], ["abc"]) == pytest.approx(100.0)
    assert corpus_chrf(["abc"], [["xyz", "abc"]]) == pytest.approx(100.0)


@pytest.mark.parametrize("func", [corpus_bleu, corpus_chrf])
def test_errors(func):
    with pytest.raises(ValueError, match="hypotheses is empty"):
        func([], [])
    with pytest.raises(ValueError, match="references has 1 items and hypotheses 2"):
        func(["a", "b"], ["a"])
    with pytest.raises(TypeError, match="hypotheses must be a list"):
        func("a b c", ["a b c"])
    with pytest.raises(TypeError, match=r"hypotheses\[1\] must be a string"):
        func(["a", None], ["a", "b"])
    with pytest.raises(ValueError, match=r"references\[0\] must be a string or a non-empty"):
        func(["a"], [[]])
    with pytest.raises(ValueError, match=r"references\[0\] must be a string or a non-empty"):
        func(["a"], [[1]])


def test_parameter_errors():
    with pytest.raises(ValueError, match="max_n must be an integer >= 1"):
        corpus_bleu(["a"], ["a"], max_n=0)
    with pytest.raises(ValueError, match="smooth must be None, 'exp'"):
        corpus_bleu(["a"], ["a"], smooth="add-one")
    with pytest.raises(ValueError, match="smooth_value must be a number > 0"):
        corpus_bleu(["a"], ["a"], smooth="floor", smooth_value=-1)
    with pytest.raises(ValueError, match="tokenize must be '13a', 'char' or 'none'"):
        corpus_bleu(["a"], ["a"], tokenize="intl")
    with pytest.raises(ValueError, match="char_order must be an integer >= 1"):
        corpus_chrf(["a"], ["a"], char_order=0)
    with pytest.raises(ValueError, match="word_order must be an integer >= 0"):
        corpus_chrf(["a"], ["a"], word_order=-1)
    with pytest.raises(ValueError, match="beta must be a number > 0"):
        corpus_chrf(["a"], ["a"], beta=0)


WORDS = ("the a cat dog sat on mat , . ! ? ; 3.5 1,000 12-3 don't e-mail (hi) \"quoted\" "
         "&amp; &lt;b&gt; <skipped> le chat été naïve -- x-y 2021 C++ über").split()


def random_corpus(rng, n_refs):
    def sentence():
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 14)))
    n = rng.randint(1, 12)
    refs = [[sentence() for _ in range(n_refs)] for _ in range(n)]
    hyps = [sentence() if rng.random() < 0.5 else
            " ".join(w for w in refs[i][0].split() if rng.random() < 0.8) for i in range(n)]
    return hyps, refs


def test_bleu_matches_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = random.Random(0)
    for trial in range(150):
        hyps, refs = random_corpus(rng, n_refs=1 + trial % 3)
        streams = [list(s) for s in zip(*refs)]          # sacrebleu's layout
        expected = sacrebleu.corpus_bleu(hyps, streams).score
        assert corpus_bleu(hyps, refs) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        if trial % 3 == 0:
            assert corpus_bleu(hyps, [r[0] for r in refs]) == \
                pytest.approx(expected, rel=1e-12, abs=1e-12)
        smooth = ("exp", "none", "floor", "add-k")[trial % 4]
        tokenize = ("13a", "char", "none")[trial % 3]
        max_n = 1 + trial % 5
        expected = sacrebleu.BLEU(smooth_method=smooth, tokenize=tokenize,
                                  max_ngram_order=max_n).corpus_score(hyps, streams).score
        assert corpus_bleu(hyps, refs, max_n=max_n, smooth=smooth, tokenize=tokenize) == \
            pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_chrf_matches_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    rng = random.Random(1)
    for trial in range(150):
        hyps, refs = random_corpus(rng, n_refs=1 + trial % 3)
        streams = [list(s) for s in zip(*refs)]
        expected = sacrebleu.corpus_chrf(hyps, streams).score
        assert corpus_chrf(hyps, refs) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        char_order, word_order, beta = 1 + trial % 6, trial % 3, (1, 2, 3)[trial % 3]
        expected = sacrebleu.CHRF(char_order=char_order, word_order=word_order,
                                  beta=beta).corpus_score(hyps, streams).score
        assert corpus_chrf(hyps, refs, char_order, word_order, beta) == \
            pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_the_public_metrics_are_these_implementations():
    import crnn.metrics
    from crnn._translation import bleu
    assert crnn.metrics.corpus_bleu is bleu.corpus_bleu
    assert crnn.metrics.corpus_chrf is bleu.corpus_chrf
    s = "the cat sat on the mat today"
    assert crnn.metrics.corpus_bleu([s], [s]) == pytest.approx(100.0)
