"""ONNX export (issue 9): the exported graph, run by onnxruntime, computes
what predict / predict_proba compute."""
import itertools
import warnings

import numpy as np
import pytest

import crnn
from crnn import RNNClassifier, RNNRegressor

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

RTOL, ATOL = 1e-4, 1e-5


def _session(model):
    onnx.checker.check_model(model, full_check=True)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


def _ragged(rng, n, D, T_max):
    lens = rng.integers(1, T_max + 1, size=n)
    lens[0] = T_max
    return [rng.normal(size=(t, D)).astype(np.float32) for t in lens], lens


def _pad(seqs, T):
    out = np.zeros((len(seqs), T, seqs[0].shape[1]), np.float32)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


_CASES = list(itertools.product(["rnn", "gru", "lstm"], [1, 2], [False, True], [False, True]))


@pytest.mark.parametrize("cell,layers,bidir,seq", _CASES)
def test_the_classifier_graph_matches_predict_proba_on_ragged_batches(cell, layers, bidir, seq):
    rng = np.random.default_rng(layers * 10 + bidir)
    D, T = 3, 9
    seqs, lens = _ragged(rng, 30, D, T)
    if seq:
        y = [np.where(s[:, 0] > 0, "up", np.where(s[:, 1] > 0, "flat", "down")) for s in seqs]
    else:
        y = np.array(["down", "flat", "up"])[rng.integers(0, 3, size=len(seqs))]
    m = _fit(RNNClassifier(cell=cell, num_layers=layers, bidirectional=bidir,
                           return_sequences=seq, hidden_size=12, max_iter=3, random_state=0),
             seqs, y)
    sess = _session(crnn.to_onnx(m, sequence_lens=True))
    label, proba = sess.run(None, {"X": _pad(seqs, T), "sequence_lens": lens.astype(np.int32)})
    want_p, want_l = m.predict_proba(seqs), m.predict(seqs)
    if seq:
        for i, t in enumerate(lens):
            np.testing.assert_allclose(proba[i, :t], want_p[i], rtol=RTOL, atol=ATOL)
            assert list(label[i, :t]) == list(want_l[i])
    else:
        np.testing.assert_allclose(proba, want_p, rtol=RTOL, atol=ATOL)
        assert list(label) == list(want_l)


@pytest.mark.parametrize("cell,layers,bidir,seq", _CASES)
def test_the_regressor_graph_matches_predict(cell, layers, bidir, seq):
    rng = np.random.default_rng(7 + layers)
    X = rng.normal(size=(25, 6, 4)).astype(np.float32)
    y = X[:, :, :2].cumsum(axis=1) if seq else X[:, :, 0].sum(axis=1)
    m = _fit(RNNRegressor(cell=cell, num_layers=layers, bidirectional=bidir,
                          return_sequences=seq, hidden_size=10, max_iter=3, random_state=0),
             X, y)
    (pred,) = _session(crnn.to_onnx(m)).run(None, {"X": X})
    want = m.predict(X)
    assert pred.shape == want.shape
    np.testing.assert_allclose(pred, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("y_shape", ["1d", "2d-one", "2d-three"])
def test_the_regressor_output_has_predicts_shape(y_shape):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 5, 2)).astype(np.float32)
    y = {"1d": X[:, 0, 0], "2d-one": X[:, 0, :1], "2d-three": X[:, 0, :].repeat(2, 1)[:, :3]}
    m = _fit(RNNRegressor(cell="gru", hidden_size=6, max_iter=2, random_state=0), X,
             y[y_shape])
    (pred,) = _session(crnn.to_onnx(m)).run(None, {"X": X})
    assert pred.shape == m.predict(X).shape
    np.testing.assert_allclose(pred, m.predict(X), rtol=RTOL, atol=ATOL)


def test_relu_float64_and_dynamic_batch_and_time():
    """One graph serves any batch size and sequence length; a float64 model
    is exported in float32 (agreement at float32 precision)."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 8, 3))
    m = _fit(RNNRegressor(cell="rnn", nonlinearity="relu", num_layers=2, bidirectional=True,
                          hidden_size=8, max_iter=3, dtype=np.float64, random_state=0),
             X, X[:, :, 0].mean(axis=1))
    sess = _session(crnn.to_onnx(m))
    for n, T in [(1, 1), (7, 3), (30, 8), (4, 40)]:
        Xi = rng.normal(size=(n, T, 3))
        (pred,) = sess.run(None, {"X": Xi.astype(np.float32)})
        np.testing.assert_allclose(pred, m.predict(Xi), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("labels", [np.array([3, 10, 7] * 10), np.array([True, False] * 15),
                                    np.array([0.0, 1.5, -2.0] * 10)])
def test_numeric_and_boolean_labels(labels):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 4, 2)).astype(np.float32)
    if labels.dtype.kind == "f":
        labels = np.round(labels)           # class labels must be discrete
    m = _fit(RNNClassifier(cell="lstm", hidden_size=6, max_iter=2, random_state=0), X, labels)
    label, proba = _session(crnn.to_onnx(m)).run(None, {"X": X})
    assert label.dtype.kind == m.classes_.dtype.kind or m.classes_.dtype.kind in "iu"
    assert np.array_equal(label, m.predict(X))
    np.testing.assert_allclose(proba, m.predict_proba(X), rtol=RTOL, atol=ATOL)


def test_the_graph_names_its_inputs_and_outputs_and_opset():
    X = np.random.default_rng(0).normal(size=(10, 3, 2)).astype(np.float32)
    m = _fit(RNNClassifier(hidden_size=4, max_iter=1), X, np.array([0, 1] * 5))
    model = crnn.to_onnx(m, opset=15, name="mine", sequence_lens=True)
    assert [i.name for i in model.graph.input] == ["X", "sequence_lens"]
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    assert model.graph.name == "mine" and model.opset_import[0].version == 15
    assert model.producer_name == "crnn"
    dims = [d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim[:2]]
    assert dims == ["batch", "time"]


def test_bad_requests_are_refused():
    with pytest.raises(Exception, match="not fitted"):
        crnn.to_onnx(RNNRegressor())
    with pytest.raises(TypeError, match="exports RNNRegressor, RNNClassifier and RNNSceneLabeler, not object"):
        crnn.to_onnx(object())
    lm = crnn.RNNLanguageModel(hidden_size=4, num_layers=1, seq_length=5, max_iter=1)
    with pytest.raises(TypeError, match="not RNNLanguageModel"):        # token input
        crnn.to_onnx(lm.fit("abcab" * 10))
    X = np.random.default_rng(0).normal(size=(10, 3, 2)).astype(np.float32)
    m = _fit(RNNRegressor(hidden_size=4, max_iter=1), X, X[:, 0, 0])
    with pytest.raises(ValueError, match="opset must be 14"):
        crnn.to_onnx(m, opset=13)
    c = _fit(RNNClassifier(hidden_size=4, max_iter=1), X, np.array([0, 1] * 5))
    c.classes_ = np.array([1, "b"], dtype=object)
    with pytest.raises(TypeError, match="all strings or all numbers"):
        crnn.to_onnx(c)


# ---------------------------------------------------------------------------
# skl2onnx


@pytest.mark.parametrize("seq", [False, True])
def test_skl2onnx_converts_the_classifier_with_and_without_zipmap(seq):
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    crnn.register_skl2onnx()
    rng = np.random.default_rng(4)
    X = rng.normal(size=(24, 5, 3)).astype(np.float32)
    y = (np.array(["lo", "mid", "hi"])[(X[:, :, 0] > 0).astype(int) + (X[:, :, 1] > 0)]
         if seq else np.array(["lo", "mid", "hi"] * 8))
    m = _fit(RNNClassifier(cell="gru", bidirectional=True, return_sequences=seq,
                           hidden_size=8, max_iter=2, random_state=0), X, y)
    types = [("X", FloatTensorType([None, None, 3]))]
    onx = skl2onnx.convert_sklearn(m, initial_types=types, target_opset=17,
                                   options={id(m): {"zipmap": False}})
    label, proba = _session(onx).run(None, {"X": X})
    assert np.array_equal(label, m.predict(X))
    np.testing.assert_allclose(proba, m.predict_proba(X), rtol=RTOL, atol=ATOL)
    if not seq:             # the default: probabilities as one dict per sample
        onx = skl2onnx.convert_sklearn(m, initial_types=types, target_opset=17)
        label, dicts = _session(onx).run(None, {"X": X})
        got = np.array([[d[c] for c in m.classes_] for d in dicts])
        np.testing.assert_allclose(got, m.predict_proba(X), rtol=RTOL, atol=ATOL)


def test_skl2onnx_converts_the_regressor():
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType
    crnn.register_skl2onnx()
    X = np.random.default_rng(5).normal(size=(20, 6, 2)).astype(np.float32)
    m = _fit(RNNRegressor(cell="lstm", num_layers=2, hidden_size=8, max_iter=2,
                          random_state=0), X, X[:, :, 0].sum(axis=1))
    onx = skl2onnx.to_onnx(m, initial_types=[("X", FloatTensorType([None, None, 2]))],
                           target_opset=17)
    (pred,) = _session(onx).run(None, {"X": X})
    np.testing.assert_allclose(pred, m.predict(X), rtol=RTOL, atol=ATOL)
