"""RNNTranscriber: the CTC estimator end to end on a generated transcription
task (each symbol speaks 1-3 noisy frames of its own pattern, silences
between), its decoders, bad input, files and scikit-learn interplay."""
import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import cross_val_score

import crnn
from crnn._speech import ctc as _ctc
from speech_data import ALPHA, speak

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    return speak(500, 0), speak(150, 1)


@pytest.fixture(scope="module")
def fitted(data):
    (X, y), _ = data
    m = crnn.RNNTranscriber(hidden_size=24, num_layers=1, max_iter=12, batch_size=16,
                            learning_rate_init=1e-2, random_state=0)
    m.fit(X, y)
    return m


def test_learns_to_transcribe_held_out_utterances(fitted, data):
    _, (Xt, yt) = data
    assert fitted.alphabet_ == list(ALPHA)
    assert fitted.n_outputs_ == len(ALPHA) + 1
    assert fitted.loss_curve_[-1] < 0.25 * fitted.loss_curve_[0]
    pred = fitted.predict(Xt)
    assert pred.dtype == object and all(isinstance(p, str) for p in pred)
    score = fitted.score(Xt, yt)
    assert score > 0.95
    cer = _ctc.character_error_rate(yt, list(pred))
    assert score == pytest.approx(1 - cer)
    assert np.mean([p == t for p, t in zip(pred, yt)]) > 0.8


def test_beam_search_decodes_at_least_as_well(fitted, data):
    _, (Xt, yt) = data
    greedy = fitted.score(Xt, yt)
    beam = clone(fitted).set_params(beam_size=8)
    beam.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")
                          or k.startswith("_")})
    assert beam.score(Xt, yt) >= greedy - 0.005
    # beam_size=1 is the best path: per frame argmax, merged, blanks out
    proba = fitted.predict_proba(Xt[:20])
    for p, got in zip(proba, fitted.transcribe(Xt[:20], beam_size=1)):
        path = p.argmax(axis=1)
        want = "".join(ALPHA[c - 1] for k, c in enumerate(path)
                       if c != 0 and (k == 0 or c != path[k - 1]))
        assert got == want
    # a beam returns labelings at least as probable as the best path's
    logp = fitted.predict_log_proba(Xt[:20])
    for lp, g, b in zip(logp, fitted.transcribe(Xt[:20]), fitted.transcribe(Xt[:20], 16)):
        lab = lambda s: np.array([ALPHA.index(ch) + 1 for ch in s], np.int32)  # noqa: E731
        from ctc_reference import ctc_loss
        assert -ctc_loss(lp, lab(b)) >= -ctc_loss(lp, lab(g)) - 1e-6


def test_probabilities(fitted, data):
    _, (Xt, _) = data
    proba = fitted.predict_proba(Xt[:5])
    assert isinstance(proba, list) and len(proba) == 5
    for p, x in zip(proba, Xt[:5]):
        assert p.shape == (len(x), len(ALPHA) + 1)
        np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-12)
    assert fitted.classes_ == ["<blank>"] + list(ALPHA)
    # a 3D array gives a 3D array
    X3 = np.stack([x[:4] for x in Xt if len(x) >= 4][:3])
    assert fitted.predict_proba(X3).shape == (3, 4, len(ALPHA) + 1)


def test_integer_labels_and_given_alphabet():
    X, y = speak(300, 2, alphabet="abc")
    yi = [np.array(["abc".index(c) * 10 + 7 for c in t]) for t in y]
    m = crnn.RNNTranscriber(hidden_size=16, num_layers=1, max_iter=8, learning_rate_init=1e-2,
                            random_state=0, alphabet=[7, 17, 27, 37])
    m.fit(X, yi)
    assert m.alphabet_ == [7, 17, 27, 37]
    pred = m.predict(X[:30])
    assert all(p.dtype == np.int64 for p in pred)
    assert m.score(X, yi) > 0.9


def test_bad_input():
    X, y = speak(20, 3)
    m = crnn.RNNTranscriber(hidden_size=4, num_layers=1, max_iter=1)
    with pytest.raises(ValueError, match="different numbers of samples"):
        m.fit(X, y[:-1])
    with pytest.raises(ValueError, match="not in the alphabet"):
        clone(m).set_params(alphabet="abcd").fit(X, [t.replace("e", "a") for t in y[:-1]]
                                                  + ["xyz"])
    with pytest.raises(ValueError, match="mixes strings"):
        m.fit(X, y[:-1] + [np.array([1, 2])])
    with pytest.raises(ValueError, match="0 time steps"):
        m.fit(X[:-1] + [np.zeros((0, 8), np.float32)], y)
    with pytest.raises(ValueError, match="alphabet"):
        clone(m).set_params(alphabet="aab").fit(X, y)
    with pytest.raises(ValueError, match="beam_size"):
        clone(m).set_params(beam_size=0).fit(X, y)
    with pytest.raises(ValueError, match="no symbols"):
        m.fit(X, [""] * len(X))
    # a transcript too long for its input
    short = list(X)
    short[4] = X[4][:2]
    y_long = list(y)
    y_long[4] = "abca"
    with pytest.raises(ValueError, match="sample 4: its transcript of 4 symbols needs at least 4"):
        m.fit(short, y_long)
    y_long[4] = "aa"
    with pytest.raises(ValueError, match="needs at least 3 frames"):
        m.fit(short, y_long)
    # with zero_infinity they count for nothing
    m2 = clone(m).set_params(zero_infinity=True).fit(short, y_long)
    assert np.isfinite(m2.loss_curve_[-1])


def test_zero_infinity_sample_contributes_nothing():
    """Under zero_infinity a sample too short for its transcript adds
    nothing: what it holds does not change the trained weights."""
    X, y = speak(40, 4)
    kw = dict(hidden_size=6, num_layers=1, max_iter=2, random_state=0, batch_size=8,
              shuffle=False, zero_infinity=True, dtype=np.float64)
    rng = np.random.default_rng(0)
    a = crnn.RNNTranscriber(**kw).fit([X[0][:1]] + X[1:], ["abcd"] + y[1:])
    b = crnn.RNNTranscriber(**kw).fit([rng.normal(size=(1, 8))] + X[1:], ["ee"] + y[1:])
    np.testing.assert_allclose(a._theta, b._theta, rtol=1e-10, atol=1e-12)
    c = crnn.RNNTranscriber(**kw).fit([X[0][:1]] + X[1:], ["a"] + y[1:])   # feasible
    assert np.max(np.abs(a._theta - c._theta)) > 1e-4


def test_empty_transcripts_are_learned_as_silence():
    X, y = speak(200, 5)
    rng = np.random.default_rng(0)
    protos = np.random.default_rng(123).normal(0, 1, (len(ALPHA) + 1, 8))
    silent = [(protos[-1] + rng.normal(0, 0.3, (rng.integers(2, 8), 8))).astype(np.float32)
              for _ in range(60)]
    m = crnn.RNNTranscriber(hidden_size=16, num_layers=1, max_iter=10, learning_rate_init=1e-2,
                            random_state=0)
    m.fit(X + silent, y + [""] * len(silent))
    assert np.mean(m.predict(silent) == "") > 0.9


def test_save_load_and_state_dict(fitted, data, tmp_path):
    _, (Xt, yt) = data
    path = tmp_path / "m.crnn"
    fitted.save(path)
    back = crnn.load(path)
    assert isinstance(back, crnn.RNNTranscriber)
    assert back.alphabet_ == fitted.alphabet_
    assert list(back.predict(Xt)) == list(fitted.predict(Xt))
    assert list(pickle.loads(pickle.dumps(fitted)).predict(Xt[:10])) == \
        list(fitted.predict(Xt[:10]))
    other = crnn.RNNTranscriber(hidden_size=24, num_layers=1).load_state_dict(
        fitted.state_dict(), alphabet=ALPHA)
    np.testing.assert_array_equal(other.predict_proba(Xt[:3])[1],
                                  fitted.predict_proba(Xt[:3])[1])
    with pytest.raises(ValueError, match="alphabet"):
        crnn.RNNTranscriber(hidden_size=24, num_layers=1).load_state_dict(fitted.state_dict())
    with pytest.raises(ValueError, match="plus the blank"):
        crnn.RNNTranscriber(hidden_size=24, num_layers=1).load_state_dict(
            fitted.state_dict(), alphabet="abc")


def test_matches_a_torch_model_with_the_same_weights(fitted, data):
    torch = pytest.importorskip("torch")
    _, (Xt, _) = data
    sd = fitted.state_dict()
    rnn = torch.nn.LSTM(8, 24, 1, batch_first=True, bidirectional=True)
    head = torch.nn.Linear(48, len(ALPHA) + 1)
    with torch.no_grad():
        for k, v in sd.items():
            mod, attr = (rnn, k[4:]) if k.startswith("rnn.") else (head, k[5:])
            getattr(mod, attr).copy_(torch.tensor(v))
        for x, p in zip(Xt[:5], fitted.predict_log_proba(Xt[:5])):
            out, _ = rnn(torch.tensor(x)[None])
            want = torch.log_softmax(head(out), -1)[0].numpy()
            np.testing.assert_allclose(p, want, atol=2e-5)


def test_partial_fit_and_early_stopping(data):
    (X, y), (Xt, yt) = data
    m = crnn.RNNTranscriber(hidden_size=16, num_layers=1, learning_rate_init=1e-2,
                            random_state=0)
    for _ in range(3):
        m.partial_fit(X, y)
    assert m.n_iter_ == 3 and len(m.loss_curve_) == 3
    with pytest.raises(ValueError, match="not in the alphabet"):
        m.partial_fit(X[:2], ["abz", "a"])
    es = crnn.RNNTranscriber(hidden_size=16, num_layers=1, learning_rate_init=1e-2,
                             random_state=0, early_stopping=True, max_iter=6,
                             n_iter_no_change=2)
    es.fit(X, y, X_val=Xt, y_val=yt)
    assert len(es.validation_scores_) == es.n_iter_ == len(es.validation_loss_curve_)
    # the kept weights are the best epoch's: their score on the validation
    # set is the best validation score, 1 - CER of greedy transcripts
    assert es.best_validation_score_ == max(es.validation_scores_)
    assert es.score(Xt, yt) == pytest.approx(es.best_validation_score_, abs=1e-12)
    assert es.validation_loss_curve_[-1] < es.validation_loss_curve_[0]
    # a random split of X when no X_val is given
    es2 = clone(es).set_params(max_iter=2).fit(X, y)
    assert len(es2.validation_scores_) == 2


def test_sklearn_interplay(data):
    (X, y), _ = data
    m = crnn.RNNTranscriber(hidden_size=8, num_layers=1, max_iter=2, random_state=0)
    assert clone(m).get_params() == m.get_params()
    scores = cross_val_score(m, X[:120], y[:120], cv=2)
    assert scores.shape == (2,) and np.all(scores <= 1)


def test_edit_distance_and_cer():
    assert _ctc.edit_distance("kitten", "sitting") == 3
    assert _ctc.edit_distance("", "abc") == 3
    assert _ctc.edit_distance([1, 2, 3], [1, 3]) == 1
    assert _ctc.edit_distance("abc", "abc") == 0
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = rng.integers(0, 3, rng.integers(0, 7)).tolist()
        b = rng.integers(0, 3, rng.integers(0, 7)).tolist()
        # plain dynamic programming
        d = np.arange(len(b) + 1)
        for i, x in enumerate(a, 1):
            prev, d = d, np.zeros_like(d)
            d[0] = i
            for j, yv in enumerate(b, 1):
                d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (x != yv))
        assert _ctc.edit_distance(a, b) == d[-1]
    assert _ctc.character_error_rate(["abcd", "ef"], ["abxd", "e"]) == pytest.approx(2 / 6)
    assert _ctc.character_error_rate([""], [""]) == 0


def test_weighted_score_is_the_weighted_cer(fitted, data):
    _, (Xt, yt) = data
    pred = list(fitted.predict(Xt[:40]))
    w = np.random.default_rng(0).integers(0, 3, 40).astype(float)
    # an integer weight counts as repeating the sample
    rep_refs = [r for r, k in zip(yt[:40], w) for _ in range(int(k))]
    rep_hyps = [h for h, k in zip(pred, w) for _ in range(int(k))]
    want = 1 - _ctc.character_error_rate(rep_refs, rep_hyps)
    assert fitted.score(Xt[:40], yt[:40], sample_weight=w) == pytest.approx(want, rel=1e-12)
    with pytest.raises(ValueError, match="sample_weight"):
        fitted.score(Xt[:40], yt[:40], sample_weight=-w)
