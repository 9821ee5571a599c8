"""Text building blocks of the language model (issue 11): tokenizers, the
vocabulary, stateful stream batches, next-token sampling."""
import numpy as np
import pytest

from crnn._text.tokens import (EOS, UNK, Vocabulary, check_sampling, sample_next, stream_batches,
                        tokenizer_function)


def test_tokenizers():
    assert tokenizer_function("char")("ab c\n") == ["a", "b", " ", "c", "\n"]
    words = tokenizer_function("word")("Don't stop, ROMEO!\nO'er the hills... 42x")
    assert words == ["Don't", "stop", ",", "ROMEO", "!", "O'er", "the", "hills", ".", ".",
                     ".", "42x"]
    assert tokenizer_function(str.split)("a  b\tc") == ["a", "b", "c"]
    with pytest.raises(TypeError, match="list of strings"):
        tokenizer_function(lambda s: s.upper())("abc")
    with pytest.raises(ValueError, match="'char', 'word' or a callable"):
        tokenizer_function("bpe")


def test_vocabulary_order_limits_and_special_tokens():
    docs = [list("abracadabra"), list("cab<unk>")]
    v = Vocabulary(docs)
    # a: 6, b: 3, r: 2, c: 2 (r seen first), d: 1, then "<", "u", "n", "k", ">"
    assert v.tokens[:7] == [UNK, EOS, "a", "b", "r", "c", "d"]
    assert Vocabulary(docs, min_count=2).tokens == [UNK, EOS, "a", "b", "r", "c"]
    assert Vocabulary(docs, max_vocab=4).tokens == [UNK, EOS, "a", "b"]
    ids = v.encode(list("abz"), end=True)
    assert ids.tolist() == [2, 3, 0, 1] and ids.dtype == np.int64
    assert v.decode(ids) == "ab" + UNK + "\n"
    assert Vocabulary.from_tokens(v.tokens).index == v.index
    assert len(Vocabulary([list("<unk>")])) == 2 + 5        # no second "<unk>" entry
    with pytest.raises(ValueError, match="outside the vocabulary"):
        v.decode([len(v)])
    assert Vocabulary.from_tokens([UNK, EOS, 7, "a"]).index[7] == 2     # token-id documents
    for bad in ([EOS, UNK, "a"], [UNK, EOS, "a", "a"], ["a"], [UNK, EOS, 1.5], [UNK, EOS, True]):
        with pytest.raises(ValueError, match="distinct tokens"):
            Vocabulary.from_tokens(bad)
    for kw, match in (({"max_vocab": 2}, "max_vocab"), ({"min_count": 0}, "min_count"),
                      ({"max_vocab": 3.5}, "max_vocab")):
        with pytest.raises(ValueError, match=match):
            Vocabulary(docs, **kw)


def test_stream_batches_continue_each_stream_from_chunk_to_chunk():
    ids = np.arange(2 * 3 * 4 + 5)                # 29 tokens: 14 per stream, 3 chunks of 4
    x, y = stream_batches(ids, 2, 4)
    assert x.shape == y.shape == (3, 2, 4)
    np.testing.assert_array_equal(y, x + 1)       # next-token targets
    for b in range(2):
        stream = np.concatenate(list(x[:, b]))    # the chunks of stream b, in order
        np.testing.assert_array_equal(stream, np.arange(12) + 14 * b)
    with pytest.raises(ValueError, match="too few for batch_size=4"):
        stream_batches(np.arange(10), 4, 3)
    with pytest.raises(ValueError, match="seq_length must be a positive integer"):
        stream_batches(ids, 2, 0)


def test_sampling_greedy_top_k_top_p_and_frequencies():
    rng = np.random.default_rng(0)
    logits = np.log(np.array([[0.1, 0.2, 0.3, 0.4, 0.0 + 1e-300]]))
    logits = np.repeat(logits, 20000, axis=0)
    assert np.all(sample_next(logits, 0, None, None, rng) == 3)
    assert sample_next(np.array([[1.0, 3.0, 3.0]]), 0, None, None, rng).tolist() == [1]
    assert np.all(sample_next(logits, 1.0, 1, None, rng) == 3)
    freq = np.bincount(sample_next(logits, 1.0, None, None, rng), minlength=5) / 20000
    np.testing.assert_allclose(freq, [0.1, 0.2, 0.3, 0.4, 0.0], atol=0.012)
    # temperature 0.5 squares the probabilities before renormalising
    want = np.array([0.1, 0.2, 0.3, 0.4]) ** 2
    freq = np.bincount(sample_next(logits, 0.5, None, None, rng), minlength=5)[:4] / 20000
    np.testing.assert_allclose(freq, want / want.sum(), atol=0.012)
    # top_k=2: only the two most likely, in their ratio 3:4
    got = sample_next(logits, 1.0, 2, None, rng)
    assert set(got.tolist()) == {2, 3}
    assert np.mean(got == 3) == pytest.approx(4 / 7, abs=0.015)
    # top_p=0.5: 0.4 alone is below 0.5, so {3, 2}; top_p=0.4: {3} alone
    assert set(sample_next(logits, 1.0, None, 0.5, rng).tolist()) == {2, 3}
    assert set(sample_next(logits, 1.0, None, 0.4, rng).tolist()) == {3}
    # reproducible draws
    a = sample_next(logits[:50], 0.8, 3, 0.9, np.random.default_rng(7))
    b = sample_next(logits[:50], 0.8, 3, 0.9, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


class _ZeroRNG:
    def random(self, shape):
        return np.zeros(shape)


def test_a_zero_draw_never_picks_a_masked_token():
    logits = np.log(np.array([[0.5, 0.3, 0.2]]))
    assert sample_next(logits, 1.0, 1, None, _ZeroRNG()).tolist() == [0]
    assert sample_next(logits[:, ::-1], 1.0, 1, None, _ZeroRNG()).tolist() == [2]


@pytest.mark.parametrize("kw,match", [
    ({"temperature": -0.5}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"top_k": 0}, "top_k"), ({"top_k": 2.5}, "top_k"), ({"top_p": 0.0}, "top_p"),
    ({"top_p": 1.5}, "top_p"),
])
def test_bad_sampling_parameters(kw, match):
    args = {"temperature": 1.0, "top_k": None, "top_p": None, **kw}
    with pytest.raises(ValueError, match=match):
        check_sampling(**args)
