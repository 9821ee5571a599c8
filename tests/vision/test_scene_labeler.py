"""RNNSceneLabeler: predictions against the same model in torch (Conv2d,
max_pool2d, bidirectional GRU/LSTM/RNN sweeps, Linear, softmax, bilinear
interpolate), a training step against torch's gradient, model files, the
state dict, and the input checks."""
import warnings

import numpy as np
import pytest

import crnn
from file_edits import rewrite_manifest
from crnn import ModelFileError, RNNSceneLabeler
from crnn._vision.scene import grid_labels, mean_iou, upsample_bilinear

CONV = [{"filters": 4, "kernel": 3, "padding": 1, "pool": 2}, (5, 3, 1)]


def _data(n=6, H=12, W=10, C=2, K=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, H, W, C))
    # regions: a label per quadrant-ish block, so neighbours agree
    y = (rng.integers(0, K, size=(n, 3, 3)).repeat(-(-H // 3), 1).repeat(-(-W // 3), 2)
         [:, :H, :W])
    y[0, 0, 0], y[1, 0, 0], y[2, 0, 0] = 0, 1, K - 1        # every class present
    return X, y


def _model(**kw):
    kw = {"conv": CONV, "hidden_size": 3, "projection_size": 4, "max_iter": 2,
          "random_state": 0, "dtype": np.float64, **kw}
    return RNNSceneLabeler(**kw)


def _fit(m, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # ConvergenceWarning at max_iter
        return m.fit(X, y, **kw)


def _torch_twin(torch, m):
    """The module state_dict() describes (tests/support/torch_nets.py), with
    m's weights."""
    from torch_nets import SceneTwin
    lay = m._layout
    model = SceneTwin(lay.layers, lay.channels, lay.cell, lay.hidden, lay.hidden,
                      lay.projection, lay.n_classes, lay.nonlinearity).double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    return model


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_probabilities_match_torch(cell):
    torch = pytest.importorskip("torch")
    X, y = _data()
    m = _fit(_model(cell=cell), X, y)
    Xs = (X - m.input_mean_) / m.input_scale_
    with torch.no_grad():
        z = _torch_twin(torch, m)(torch.from_numpy(Xs))
        p = torch.softmax(z, -1).permute(0, 3, 1, 2)
        want = torch.nn.functional.interpolate(p, size=X.shape[1:3], mode="bilinear",
                                               align_corners=False).permute(0, 2, 3, 1).numpy()
    got = m.predict_proba(X)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-12)
    assert np.array_equal(m.predict(X), m.classes_[want.argmax(-1)])


def test_a_training_step_is_torchs_gradient_step():
    """partial_fit from loaded weights with plain SGD on one batch moves the
    weights by -lr * torch's gradient of the mean cross-entropy at the grid
    positions (each labelled with the pixel at its centre)."""
    torch = pytest.importorskip("torch")
    X, y = _data(n=5)
    src = _fit(_model(), X, y)
    lr = 0.05
    m = _model(solver="sgd", momentum=0.0, learning_rate_init=lr, clip_norm=None,
               batch_size=5, shuffle=False)
    m.load_state_dict(src.state_dict(), classes=src.classes_)     # no standardisation
    twin = _torch_twin(torch, m)
    z = twin(torch.from_numpy(X))
    lab = grid_labels(np.searchsorted(m.classes_, y), z.shape[1:3])
    loss = torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]),
                                             torch.from_numpy(lab.reshape(-1).astype(np.int64)))
    loss.backward()
    want = {k: v.detach().numpy() - lr * dict(twin.named_parameters())[k].grad.numpy()
            for k, v in twin.state_dict().items()}
    m.partial_fit(X, y)
    assert m.loss_curve_[-1] == pytest.approx(loss.item(), rel=1e-10)
    for k, v in m.state_dict().items():
        np.testing.assert_allclose(v, want[k], rtol=1e-8, atol=1e-12, err_msg=k)


def test_upsampling_is_torchs_bilinear():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for h, w, H, W in [(3, 4, 12, 16), (5, 5, 17, 13), (1, 2, 4, 7), (4, 4, 4, 4)]:
        p = rng.random((2, h, w, 3))
        want = torch.nn.functional.interpolate(torch.from_numpy(p).permute(0, 3, 1, 2),
                                               size=(H, W), mode="bilinear",
                                               align_corners=False)
        np.testing.assert_allclose(upsample_bilinear(p, H, W),
                                   want.permute(0, 2, 3, 1).numpy(), rtol=1e-12)


def test_mean_iou_is_the_macro_jaccard_index():
    from sklearn.metrics import jaccard_score
    rng = np.random.default_rng(2)
    t, p = rng.integers(0, 4, (3, 9, 9)), rng.integers(0, 4, (3, 9, 9))
    assert mean_iou(t, p, range(4)) == pytest.approx(
        jaccard_score(t.ravel(), p.ravel(), average="macro"))
    assert mean_iou(t, t, range(6)) == 1.0                 # absent classes left out


def test_labels_strings_sizes_and_score():
    X, y = _data(n=8, C=1, K=2)
    names = np.array(["road", "sky"])[y]
    m = _fit(_model(dtype=np.float32), X[..., 0], names)            # (n, H, W) images
    assert list(m.classes_) == ["road", "sky"] and m.n_features_in_ == 1
    pred = m.predict(X)
    assert pred.shape == y.shape and set(np.unique(pred)) <= {"road", "sky"}
    assert m.predict_proba(X).dtype == np.float32
    assert m.score(X, names) == pytest.approx(mean_iou(names, pred, ["road", "sky"]))
    # images of other sizes, one by one or mixed in a list
    big, small = np.random.default_rng(3).normal(size=(2, 20, 16, 1))[:, :, :, :]
    small = small[:9, :7]
    out = m.predict([big, small])
    assert [o.shape for o in out] == [(20, 16), (9, 7)]
    assert np.array_equal(out[1], m.predict(small[None])[0])
    with pytest.raises(ValueError, match="leaves no pixel"):
        m.predict(np.zeros((1, 3, 3, 1)))


def test_model_file_round_trip_and_continued_training(tmp_path):
    X, y = _data()
    m = _fit(_model(early_stopping=True, validation_fraction=0.34, max_iter=3), X, y)
    assert len(m.validation_scores_) == 3 and m.best_validation_score_ is not None
    path = tmp_path / "scene.crnn"
    m.save(path)
    m2 = crnn.load(path)
    assert isinstance(m2, RNNSceneLabeler) and m2.get_params() == m.get_params()
    assert np.array_equal(m2.predict_proba(X), m.predict_proba(X))
    m.set_params(early_stopping=False)
    m2.set_params(early_stopping=False)
    m.partial_fit(X, y)
    m2.partial_fit(X, y)
    assert np.array_equal(m2._theta, m._theta)


def _labels(*items):
    return {"$": "object_array", "shape": [len(items)], "items": list(items)}


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["attributes"]["_layout"].update(hidden=7), "weights are not"),
    (lambda m: m["attributes"]["_layout"]["conv"][0].__setitem__(0, -1), "front-end"),
    (lambda m: m["attributes"]["_layout"]["conv"][0].__setitem__(7, 0), "front-end"),
    (lambda m: m["attributes"]["_layout"].update(conv=[]), "front-end"),
    (lambda m: m["attributes"]["_layout"]["conv"][0].append(1), "front-end"),
    (lambda m: m["attributes"]["_layout"].update(cell="tcn"), "scene-labelling network"),
    (lambda m: m["attributes"]["_layout"].update(channels=2**40), "scene-labelling"),
    (lambda m: m["attributes"]["_layout"].pop("projection"), "with fields"),
    (lambda m: m["attributes"]["_layout"].update({"$": "Layout"}), "network description"),
    (lambda m: m["attributes"].__setitem__("classes_", _labels("c", "b", "a")),
     "increasing order"),
    (lambda m: m["attributes"].__setitem__("classes_", _labels("a", "b")), "classes_"),
    (lambda m: m["attributes"].__setitem__("classes_", _labels("a", 1, "c")), "increasing"),
    (lambda m: m["attributes"].__setitem__("n_outputs_", 2), "does not match"),
    (lambda m: m["attributes"].__setitem__("_return_sequences", True), "per-step"),
])
def test_altered_files_are_refused(tmp_path, edit, message):
    X, y = _data()
    m = _fit(_model(), X, np.array(["a", "b", "c"])[y])
    path = tmp_path / "s.crnn"
    m.save(path)
    bad = rewrite_manifest(path, tmp_path / "bad.crnn", edit)
    with pytest.raises(ModelFileError, match=message):
        crnn.load(bad)


def test_state_dict_round_trip_and_refusals():
    X, y = _data()
    m = _fit(_model(), X, y)
    sd = m.state_dict()
    assert sd["conv.0.weight"].shape == (4, 2, 3, 3) and sd["col.head.weight"].shape == (3, 6)
    m2 = _model().load_state_dict(sd, classes=m.classes_, input_mean=m.input_mean_,
                                  input_scale=m.input_scale_)
    assert np.array_equal(m2.predict_proba(X), m.predict_proba(X))
    with pytest.raises(ValueError, match="missing keys"):
        _model().load_state_dict({k: v for k, v in sd.items() if k != "row.head.bias"})
    with pytest.raises(ValueError, match="has shape"):
        _model(conv=[(4, 5, 1), (5, 3, 1)]).load_state_dict(sd)
    with pytest.raises(ValueError, match="NaN"):
        _model().load_state_dict({**sd, "row.head.bias": np.full(4, np.nan)})
    with pytest.raises(ValueError, match="increasing"):
        _model().load_state_dict(sd, classes=[2, 1, 0])
    with pytest.raises(ValueError, match="input_scale_"):
        _model().load_state_dict(sd, input_scale=[1.0, 0.0])


@pytest.mark.parametrize("call,message", [
    (lambda m, X, y: m.fit(X, y[:, :-1]), "a label per pixel"),
    (lambda m, X, y: m.fit(X, np.zeros_like(y)), "one class"),
    (lambda m, X, y: m.fit(np.where(X > 2, np.nan, X), y), "NaN"),
    (lambda m, X, y: m.fit(X[:, :, :, :, None], y), "must be images"),
    (lambda m, X, y: m.fit([X[0], X[1, :-1]], y[:2]), "different shapes"),
    (lambda m, X, y: m.fit(X.astype(complex), y), "real numbers"),
    (lambda m, X, y: m.fit(X, y.astype(float) + 0.5 * np.nan), "class labels"),
    (lambda m, X, y: m.fit(X[:, :2, :2], y[:, :2, :2]), "leaves no pixel"),
    (lambda m, X, y: m.set_params(conv=[(4, 0, 1)]).fit(X, y), "kernel"),
    (lambda m, X, y: m.set_params(conv="big").fit(X, y), "'conv' parameter"),
    (lambda m, X, y: m.fit(X[:0], y[:0]), "empty"),
])
def test_bad_input_is_refused_and_nothing_is_fitted(call, message):
    X, y = _data()
    m = _model()
    with pytest.raises((ValueError, TypeError), match=message):
        call(m, X, y)
    assert not hasattr(m, "_theta")


def test_fitted_model_refuses_mismatched_input_and_stays_unchanged():
    X, y = _data()
    m = _fit(_model(), X, y)
    theta = m._theta.copy()
    with pytest.raises(ValueError, match="channel"):
        m.predict(X[..., :1])
    with pytest.raises(ValueError, match="not fitted with"):
        m.partial_fit(X, y + 5)
    with pytest.raises(ValueError, match="channel"):
        m.partial_fit(X[..., :1], y)
    assert np.array_equal(m._theta, theta)


def test_threads_give_the_same_predictions():
    X, y = _data()
    m = _fit(_model(), X, y)
    p1 = m.set_params(n_jobs=1).predict_proba(X)
    assert np.array_equal(m.set_params(n_jobs=3).predict_proba(X), p1)
    a = _fit(_model(n_jobs=1), X, y)._theta
    b = _fit(_model(n_jobs=2), X, y)._theta
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_learns_textures_context_helps():
    """A small real task: two textures of scikit-image's photographs in
    Voronoi layouts, test on the other half of each photograph."""
    pytest.importorskip("skimage")
    from crnn.datasets import make_texture_mosaics
    X, y = make_texture_mosaics(60, 32, textures=["brick", "grass"], random_state=0)
    Xt, yt = make_texture_mosaics(20, 32, textures=["brick", "grass"], half="test",
                                  random_state=0)
    m = RNNSceneLabeler(hidden_size=8, max_iter=8, random_state=0)
    _fit(m, X, y)
    assert m.loss_curve_[-1] < m.loss_curve_[0]
    assert m.score(Xt, yt) > 0.6            # chance (one texture everywhere) is about 0.3


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_onnx_graph_matches_predict_at_any_image_size(cell):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    X, y = _data()
    m = _fit(_model(cell=cell, dtype=np.float32), X, np.array(["a", "b", "c"])[y])
    session = ort.InferenceSession(crnn.to_onnx(m).SerializeToString())
    rng = np.random.default_rng(4)
    # the training size, another, and one whose feature grid is one column wide
    for Xe in (X, rng.normal(size=(2, 21, 9, 2)), rng.normal(size=(1, 16, 6, 2))):
        label, proba = session.run(None, {"X": Xe.astype(np.float32)})
        np.testing.assert_allclose(proba, m.predict_proba(Xe), atol=2e-6)
        assert np.array_equal(label.astype(str), m.predict(Xe))
    with pytest.raises(ValueError, match="sequence_lens"):
        crnn.to_onnx(m, sequence_lens=True)


def test_what_a_hostile_probe_found_is_refused_cleanly():
    X, y = _data()
    # a network too large for memory: a ValueError naming it (was AttributeError)
    with pytest.raises(ValueError, match="These parameters .* make a network of"):
        _model(hidden_size=2**19).fit(X, y)
    # values whose spread overflows, or that the dtype cannot hold
    with pytest.raises(ValueError, match="too large to standardise"):
        _model().fit(X * 1e300, y)
    with pytest.raises(ValueError, match="beyond the range of float32"):
        _model(standardize=False, dtype=np.float32).fit(X * 1e300, y)
    # classes: numbers that are labels, and fixed after the first call
    for bad in ([0, 1, np.nan], [0, 1, None]):
        with pytest.raises(ValueError, match="classes"):
            _model().partial_fit(X, y, classes=bad)
    m = _model().partial_fit(X, y, classes=[0, 1, 2, 3])
    assert list(m.classes_) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="not the same as at the first call"):
        m.partial_fit(X, y, classes=[0, 1, 2, 3, 4])
    # labels of another kind than the model's
    with pytest.raises(ValueError, match="strings but the model's classes_ are numbers"):
        m.score(X, np.array(["a", "b", "c"])[y])
    # state dicts that describe no labeller
    with pytest.raises(TypeError, match="dict of arrays"):
        _model().load_state_dict([("conv.0.weight", np.zeros((4, 2, 3, 3)))])
    sd = m.state_dict()
    with pytest.raises(ValueError, match="at least one channel and two classes"):
        _model().load_state_dict({**sd, "col.head.weight": np.zeros((1, 6)),
                                  "col.head.bias": np.zeros(1)})


def test_onnx_matches_where_the_grid_is_longer_than_the_image():
    """Padding can make the feature grid longer than a one-pixel-high image:
    ONNX's pytorch_half_pixel would differ there; half_pixel is crnn's."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    X, y = _data(H=6, W=6)
    m = _fit(_model(conv=[{"filters": 3, "kernel": 1, "padding": 1}], dtype=np.float32), X, y)
    session = ort.InferenceSession(crnn.to_onnx(m).SerializeToString())
    for shape in ((2, 1, 5, 2), (1, 4, 1, 2), (1, 1, 1, 2)):
        Xe = np.random.default_rng(5).normal(size=shape)
        _, proba = session.run(None, {"X": Xe.astype(np.float32)})
        np.testing.assert_allclose(proba, m.predict_proba(Xe), atol=2e-6)
