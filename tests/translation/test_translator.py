"""RNNTranslator end to end: it learns the generated sets (number phrases
English -> French with num2words, dates in many formats and languages -> ISO)
well enough to translate held-out sentences it never saw exactly, and it
behaves as a scikit-learn estimator (parameters, errors, pickling, model
files, partial_fit, early stopping, state dicts)."""
import os
import pickle

import numpy as np
import pytest
from sklearn.base import clone

import crnn
from crnn import RNNTranslator
from crnn._nn import seq2seq as _seq2seq
from crnn._translation.translator import JOINER, corpus_bleu, detokenize, word_tokens

num2words = pytest.importorskip("num2words").num2words


def _numbers(seed=0, n=6000, high=100_000, n_test=300):
    from crnn.datasets import make_number_phrases
    rng = np.random.RandomState(seed)
    held = rng.choice(high, n_test, replace=False)
    en, fr = make_number_phrases(n, 0, high, random_state=seed, exclude=held)
    test_en = [num2words(int(x), lang="en") for x in held]
    test_fr = [num2words(int(x), lang="fr") for x in held]
    return en, fr, test_en, test_fr


@pytest.fixture(scope="module")
def numbers():
    return _numbers()


@pytest.fixture(scope="module")
def number_model(numbers):
    en, fr, _, _ = numbers
    return RNNTranslator(hidden_size=64, embedding_dim=32, max_iter=10, batch_size=32,
                         learning_rate_init=3e-3, random_state=0).fit(en, fr)


def test_number_phrases_held_out_exact(numbers, number_model):
    _, _, test_en, test_fr = numbers
    pred = number_model.predict(test_en)
    exact = np.mean([p == t for p, t in zip(pred, test_fr)])
    assert exact >= 0.99, [(e, p, t) for e, p, t in zip(test_en, pred, test_fr) if p != t]
    assert number_model.score(test_en, test_fr) >= 98.0


def test_dates_held_out_exact():
    pytest.importorskip("babel")
    from crnn.datasets import make_dates
    X, y = make_dates(6500, random_state=0)
    seen = set(y[:6000])
    test = [(a, b) for a, b in zip(X[6000:], y[6000:]) if b not in seen]
    assert len(test) > 400
    model = RNNTranslator(cell="lstm", attention="luong", forget_bias=1.0, hidden_size=64,
                          embedding_dim=32, max_iter=10, learning_rate_init=3e-3,
                          random_state=0)
    model.fit(X[:6000], y[:6000])
    pred = model.predict([a for a, _ in test])
    exact = np.mean([p == b for p, (_, b) in zip(pred, test)])
    assert exact >= 0.99, [(a, p, b) for p, (a, b) in zip(pred, test) if p != b][:5]


def test_beam_search_matches_or_beats_greedy_score(numbers, number_model):
    _, _, test_en, test_fr = numbers
    greedy = number_model.predict(test_en[:100])
    beam = clone(number_model).set_params(beam_size=4)
    beam.__dict__.update({k: v for k, v in number_model.__dict__.items() if k.endswith("_")
                          or k.startswith("_")})
    out = beam.predict(test_en[:100])
    assert np.mean([p == t for p, t in zip(out, test_fr[:100])]) >= \
        np.mean([p == t for p, t in zip(greedy, test_fr[:100])]) - 0.02


def test_beam_of_one_is_the_greedy_kernel(number_model, numbers):
    m = number_model
    sv, _ = m._vocabularies()
    src = [sv.encode(word_tokens(s)) for s in numbers[2][:60]]
    maxlen = m._max_lengths(src)
    a = _seq2seq.greedy(m._layout, m._theta, src, maxlen, 2)
    b = _seq2seq.beam(m._layout, m._theta, src, maxlen, 1, 1.0, 2)
    for x, z in zip(a, b):
        np.testing.assert_array_equal(x, z)


def test_stepper_log_probs_equal_teacher_forced_losses(number_model, numbers):
    """The step kernel of beam search and the training forward pass give the
    same probabilities along a given translation."""
    m = number_model
    sv, tv = m._vocabularies()
    src = [sv.encode(word_tokens(s)) for s in numbers[2][:7]]
    tgt = [tv.encode(word_tokens(s)) for s in numbers[3][:7]]
    losses, _ = _seq2seq.token_losses(m._layout, m._theta, src, tgt, 1)
    step = _seq2seq._Stepper(m._layout, m._theta, src, 1)
    K = max(len(t) for t in tgt) + 1
    tokens = np.full(len(src), _seq2seq.BOS_ID)
    parents = np.arange(len(src))
    for k in range(K):
        logp = step(tokens, parents)
        for i, t in enumerate(tgt):
            if k <= len(t):
                want = t[k] if k < len(t) else _seq2seq.EOS_ID
                assert -logp[i, want] == pytest.approx(losses[i][k], rel=2e-4, abs=1e-5)
        tokens = np.array([t[k] if k < len(t) else 0 for t in tgt])


def test_attention_weights_and_plot(number_model):
    w, src, tgt = number_model.attention_weights("three hundred and twelve")
    assert w.shape == (len(tgt), len(src))
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-5)
    assert src == ["three", "hundred", "and", "twelve"]
    assert tgt[-1] == "<eos>"
    assert detokenize(tgt[:-1], "word") == number_model.predict(["three hundred and twelve"])[0]
    w2, _, tgt2 = number_model.attention_weights("three hundred and twelve", "trois cent douze")
    assert tgt2 == ["trois", "cent", "douze", "<eos>"] and w2.shape == (4, 4)


@pytest.mark.skipif(bool(os.environ.get("CRNN_SANITIZE")),
                    reason="matplotlib's extensions abort under the sanitizer build")
def test_plot_attention(number_model):
    pytest.importorskip("matplotlib")
    ax = number_model.plot_attention("three hundred and twelve")
    assert len(ax.get_xticklabels()) == 4
    import matplotlib.pyplot as plt
    plt.close(ax.figure)


def test_no_attention_model_refuses_attention_weights():
    m = RNNTranslator(attention=None, hidden_size=8, embedding_dim=4, max_iter=1,
                      random_state=0).fit(["a b", "b a"], ["x", "y"])
    with pytest.raises(ValueError, match="no attention"):
        m.attention_weights("a b")
    assert len(m.predict(["a b"])) == 1


def test_unknown_tokens_and_empty_sentences():
    X, y = ["one two", "two one", "one"], ["un deux", "deux un", "un"]
    m = RNNTranslator(hidden_size=8, embedding_dim=4, max_iter=2, random_state=0).fit(X, y)
    out = m.predict(["one zebra", "", "   "])
    assert isinstance(out[0], str) and out[1] == "" and out[2] == ""
    with pytest.raises(ValueError, match=r"X\[1\] is empty"):
        m.fit(["a", ""], ["b", "c"])
    with pytest.raises(ValueError, match="different numbers of sentences"):
        m.fit(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="different numbers of sentences"):
        m.score(["a", "b"], ["c"])
    with pytest.raises(TypeError, match="list of sentences"):
        m.fit("one two", "un deux")
    with pytest.raises(ValueError, match="beam_size"):
        RNNTranslator(beam_size=0).fit(X, y)
    with pytest.raises(ValueError, match="cell"):
        RNNTranslator(cell="rnn").fit(X, y)
    with pytest.raises(ValueError, match="attention"):
        RNNTranslator(attention="dot").fit(X, y)
    with pytest.raises(ValueError, match="length_penalty"):
        RNNTranslator(length_penalty=-1.0).fit(X, y)
    # an empty target is a sentence that ends at once
    m2 = RNNTranslator(hidden_size=8, embedding_dim=4, max_iter=30, learning_rate_init=0.05,
                       random_state=0).fit(["a", "b"], ["", "x"])
    assert list(m2.predict(["a", "b"])) == ["", "x"]


def test_token_id_sentences():
    rng = np.random.default_rng(0)
    X = [rng.integers(5, 12, rng.integers(1, 5)) for _ in range(300)]
    y = [np.sort(x)[::-1] for x in X]          # "translate" = sort descending
    m = RNNTranslator(hidden_size=32, embedding_dim=16, max_iter=15, learning_rate_init=5e-3,
                      random_state=0).fit(X, y)
    assert m.src_vocab_[:2] == ["<unk>", "<eos>"] and m.tgt_vocab_[:3] == ["<unk>", "<eos>",
                                                                           "<bos>"]
    pred = m.predict(X[:50])
    assert pred[0].dtype == np.int64
    assert np.mean([np.array_equal(p, t) for p, t in zip(pred, y[:50])]) > 0.8
    assert m.score(X[:50], y[:50]) > 50
    with pytest.raises(ValueError, match="fitted on token ids"):
        m.predict(["5 6"])


def test_sklearn_surface_pickle_and_model_file(tmp_path, number_model, numbers):
    test_en = numbers[2][:40]
    want = number_model.predict(test_en)
    params = number_model.get_params()
    assert params["attention"] == "bahdanau" and params["beam_size"] == 1
    c = clone(number_model)
    assert not hasattr(c, "_theta")
    m2 = pickle.loads(pickle.dumps(number_model))
    assert list(m2.predict(test_en)) == list(want)
    path = tmp_path / "m.crnn"
    number_model.save(path)
    m3 = crnn.load(path)
    assert isinstance(m3, RNNTranslator)
    assert list(m3.predict(test_en)) == list(want)
    assert m3.tgt_vocab_ == number_model.tgt_vocab_
    m4 = RNNTranslator.load(path)
    np.testing.assert_array_equal(m4._theta, number_model._theta)
    sd = number_model.state_dict()
    assert "attention.W_query" in sd and sd["head.weight"].shape[0] == len(
        number_model.tgt_vocab_)
    m5 = clone(number_model).load_state_dict(sd, src_vocab=number_model.src_vocab_,
                                             tgt_vocab=number_model.tgt_vocab_)
    assert list(m5.predict(test_en)) == list(want)
    with pytest.raises(ValueError, match="vocabularies"):
        clone(number_model).load_state_dict(sd)


def test_partial_fit_warm_start_and_early_stopping(numbers):
    en, fr, test_en, test_fr = numbers
    en, fr = en[:600], fr[:600]
    m = RNNTranslator(hidden_size=16, embedding_dim=8, random_state=0)
    m.partial_fit(en, fr)
    m.partial_fit(en, fr)
    assert m.n_iter_ == 2 and len(m.loss_curve_) == 2 and m.loss_curve_[1] < m.loss_curve_[0]
    vocab = m.tgt_vocab_
    m.partial_fit(["one million"], ["un million"])      # unseen tokens: unknown
    assert m.tgt_vocab_ is vocab and m.n_iter_ == 3
    w = RNNTranslator(hidden_size=16, embedding_dim=8, max_iter=2, random_state=0,
                      warm_start=True).fit(en, fr)
    theta = w._theta.copy()
    w.fit(en, fr)
    assert w.n_iter_ == 4 and not np.array_equal(theta, w._theta)
    es = RNNTranslator(hidden_size=16, embedding_dim=8, max_iter=4, random_state=0,
                       early_stopping=True, n_iter_no_change=1).fit(en, fr)
    assert len(es.validation_scores_) == len(es.validation_loss_curve_) == es.n_iter_
    assert all(0 <= s <= 100 for s in es.validation_scores_)
    assert es.best_validation_score_ == max(es.validation_scores_)
    es2 = clone(es).fit(en, fr, X_val=test_en[:30], y_val=test_fr[:30])
    assert len(es2.validation_scores_) >= 1
    with pytest.raises(ValueError, match="early_stopping"):
        es.partial_fit(en, fr)


def test_float64_and_threads_agree(numbers):
    en, fr = numbers[0][:200], numbers[1][:200]
    kw = dict(hidden_size=16, embedding_dim=8, max_iter=2, random_state=0, dtype=np.float64,
              batch_size=16)
    a = RNNTranslator(n_jobs=1, **kw).fit(en, fr)
    b = RNNTranslator(n_jobs=2, **kw).fit(en, fr)
    np.testing.assert_allclose(a._theta, b._theta, rtol=1e-8, atol=1e-10)


def test_word_tokens_round_trip():
    for text in ["quarante-trois", "Open File...", "l'homme, c'est fou !", "(a) b [c]",
                 "2021-03-03", "Hello   world"]:
        toks = word_tokens(text)
        assert detokenize(toks, "word") == " ".join(text.split())
    assert word_tokens("a-b") == ["a", JOINER + "-", JOINER + "b"]


def test_corpus_bleu_is_sacrebleu_or_the_same_without_it(monkeypatch):
    sacrebleu = pytest.importorskip("sacrebleu")
    hyp = ["the cat sat on the mat", "a dog", "un deux trois"]
    ref = ["the cat sat on a mat", "the dog", "un deux trois"]
    with_it = corpus_bleu(hyp, ref)
    assert with_it == pytest.approx(sacrebleu.corpus_bleu(hyp, [ref]).score)
    monkeypatch.setitem(__import__("sys").modules, "sacrebleu", None)    # not installed
    assert corpus_bleu(hyp, ref) == pytest.approx(with_it, rel=1e-12)


def test_model_selection_with_scikit_learn():
    from sklearn.model_selection import GridSearchCV, cross_val_score
    en, fr, _, _ = _numbers(n=120, high=1000, n_test=10)
    scores = cross_val_score(RNNTranslator(hidden_size=8, embedding_dim=4, max_iter=1,
                                           random_state=0), en, fr, cv=2)
    assert scores.shape == (2,) and np.all((0 <= scores) & (scores <= 100))
    search = GridSearchCV(RNNTranslator(embedding_dim=4, max_iter=1, random_state=0),
                          {"hidden_size": [4, 8]}, cv=2).fit(en, fr)
    assert search.best_params_["hidden_size"] in (4, 8)
    assert len(search.predict(en[:3])) == 3


def test_a_network_too_large_for_memory_is_a_value_error_naming_it():
    """The size check named layout.n_features, which an encoder-decoder lacks
    (an AttributeError before)."""
    m = RNNTranslator(hidden_size=2**20, embedding_dim=2**20)
    with pytest.raises(ValueError, match=r"These parameters \(1 encoder layer"):
        m.fit(["a b c"] * 3, ["c d e"] * 3)
    assert not hasattr(m, "_theta")
