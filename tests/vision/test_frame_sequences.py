"""RNNRegressor and RNNClassifier with a convolutional front-end (conv=):
a training step against torch's gradient of the same model (Conv2d,
max_pool2d, GRU/LSTM/RNN, Linear), the stepper against predict, model files,
the state dict, and the input checks."""
import warnings

import numpy as np
import pytest

import crnn
from file_edits import rewrite_manifest
from crnn import ModelFileError, RNNClassifier, RNNRegressor

CONV = [(3, 3, 2), {"filters": 4, "kernel": 3, "padding": 1, "pool": 2}]
IMAGE = (11, 9, 2)


def _frames(n=5, T=4, seed=0):
    return np.random.default_rng(seed).normal(size=(n, T) + IMAGE)


def _fit(m, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # ConvergenceWarning at max_iter
        return m.fit(X, y, **kw)


def _torch_twin(torch, m):
    """The module state_dict() describes, with m's weights."""
    nn = torch.nn
    lay = m._layout
    rnn = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[lay.cell]
    kw = {"nonlinearity": lay.nonlinearity} if lay.cell == "rnn" else {}
    layers = lay.convnet().layers

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            c = [lay.image[2]] + [ly.filters for ly in layers]
            self.conv = nn.ModuleList(nn.Conv2d(c[i], ly.filters, ly.kernel, ly.stride,
                                                ly.padding) for i, ly in enumerate(layers))
            self.rnn = rnn(lay.n_features, lay.hidden, lay.num_layers, batch_first=True,
                           bidirectional=lay.ndir == 2, **kw)
            self.head = nn.Linear(lay.ndir * lay.hidden, lay.n_outputs)

        def features(self, frames):                  # (rows, H, W, C) -> (rows, D)
            h = frames.permute(0, 3, 1, 2)
            for ly, conv in zip(layers, self.conv):
                h = torch.relu(conv(h))
                if ly.pool is not None:
                    h = nn.functional.max_pool2d(h, ly.pool)
            return h.permute(0, 2, 3, 1).reshape(len(frames), -1)

        def forward(self, seq, per_step):            # one sequence (T, H, W, C)
            out, h = self.rnn(self.features(seq)[None])
            if per_step:
                return self.head(out[0])
            h = h[0] if lay.cell == "lstm" else h
            # the top layer's final states: forward, then backward (step 0)
            last = torch.cat([h[-2], h[-1]], -1) if lay.ndir == 2 else h[-1]
            return self.head(last)[0]

    model = Model().double()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict().items()})
    return model


def _sgd_step_matches_torch(torch, src, make, X, y, loss_of, sample_weight=None):
    """partial_fit with plain SGD on one batch, from src's weights, moves
    every weight by -lr * torch's gradient of the same loss."""
    lr = 0.05
    m = make(solver="sgd", momentum=0.0, learning_rate_init=lr, clip_norm=None,
             batch_size=len(X), shuffle=False)
    kw = {"classes": src.classes_} if hasattr(src, "classes_") else {}
    m.load_state_dict(src.state_dict(), image_shape=IMAGE, **kw)
    twin = _torch_twin(torch, m)
    loss = loss_of(twin)
    loss.backward()
    grads = dict(twin.named_parameters())
    want = {k: v.detach().numpy() - lr * grads[k].grad.numpy()
            for k, v in twin.state_dict().items()}
    m.partial_fit(X, y, sample_weight=sample_weight)
    assert m.loss_curve_[-1] == pytest.approx(loss.item(), rel=1e-10)
    for k, v in m.state_dict().items():
        np.testing.assert_allclose(v, want[k], rtol=1e-7, atol=1e-11, err_msg=k)


@pytest.mark.parametrize("n_jobs", [1, 2])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_per_frame_regression_step_matches_torch_on_ragged_sequences(cell, n_jobs):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(T,) + IMAGE) for T in (4, 2, 5, 3)]
    y = [rng.normal(size=(len(x), 2)) for x in X]

    def make(**kw):
        return RNNRegressor(conv=CONV, cell=cell, hidden_size=3, num_layers=2,
                            return_sequences=True, max_iter=2, random_state=0,
                            dtype=np.float64, n_jobs=n_jobs, **kw)

    src = _fit(make(), X, y)

    def loss_of(twin):
        out = torch.cat([twin(torch.from_numpy(x), True) for x in X])
        return torch.nn.functional.mse_loss(out, torch.from_numpy(np.concatenate(y)))

    _sgd_step_matches_torch(torch, src, make, X, y, loss_of)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_weighted_sequence_classification_step_matches_torch(cell):
    """Many-to-one, bidirectional, sample weights: the weighted mean
    cross-entropy (torch's per-sample losses, weighted)."""
    torch = pytest.importorskip("torch")
    X = _frames(n=6)
    y = np.array([0, 1, 2, 1, 0, 2])
    w = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 0.0])

    def make(**kw):
        return RNNClassifier(conv=CONV, cell=cell, hidden_size=3, bidirectional=True,
                             max_iter=2, random_state=0, dtype=np.float64, **kw)

    src = _fit(make(), X, y)

    def loss_of(twin):
        z = torch.stack([twin(torch.from_numpy(x), False) for x in X])
        each = torch.nn.functional.cross_entropy(z, torch.from_numpy(y), reduction="none")
        wt = torch.from_numpy(w)
        return (each * wt).sum() / wt.sum()

    _sgd_step_matches_torch(torch, src, make, X, y, loss_of, sample_weight=w)


def test_predictions_match_torch():
    torch = pytest.importorskip("torch")
    X = _frames()
    m = _fit(RNNClassifier(conv=CONV, cell="gru", hidden_size=4, max_iter=3,
                           random_state=0, dtype=np.float64), X, [0, 1, 0, 1, 1])
    twin = _torch_twin(torch, m)
    with torch.no_grad():
        z = torch.stack([twin(torch.from_numpy(x), False) for x in X])
        want = torch.softmax(z, -1).numpy()
    np.testing.assert_allclose(m.predict_proba(X), want, rtol=1e-10)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stepper_runs_frame_by_frame_as_predict(cell):
    X = _frames(n=3, T=6)
    y = X[:, :, 2:6, 2:6, 0].mean(axis=(2, 3))
    m = _fit(RNNRegressor(conv=CONV, cell=cell, hidden_size=5, return_sequences=True,
                          max_iter=3, random_state=0), X, y)
    want = m.predict(X)
    st = m.stepper()
    state, got = None, []
    for frame in X[1]:
        out, state = st.step(frame, state)
        got.append(out)
    np.testing.assert_allclose(got, want[1], rtol=1e-5, atol=1e-6)
    # three streams at once
    st3 = m.stepper(n_streams=3)
    state, got = None, []
    for t in range(6):
        out, state = st3.step(X[:, t], state)
        got.append(out)
    np.testing.assert_allclose(np.stack(got, 1), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="a frame of shape"):
        st.step(X[0, 0, :5])
    # the stepper keeps the weights it was made with
    first, _ = st.step(X[0, 0])
    m.partial_fit(X, y)
    assert np.array_equal(st.step(X[0, 0])[0], first)
    assert not np.array_equal(m.stepper().step(X[0, 0])[0], first)


def test_model_file_round_trip_and_continued_training(tmp_path):
    X = _frames()
    y = np.arange(5.0)
    m = _fit(RNNRegressor(conv=CONV, cell="lstm", hidden_size=4, max_iter=2,
                          random_state=0), X, y)
    path = tmp_path / "frames.crnn"
    m.save(path)
    m2 = crnn.load(path)
    assert m2.get_params() == m.get_params() and m2.n_features_in_ == IMAGE[2]
    assert np.array_equal(m2.predict(X), m.predict(X))
    m.partial_fit(X, y)
    m2.partial_fit(X, y)
    assert np.array_equal(m2._theta, m._theta)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["attributes"]["_layout"].update(image=[15, 9, 2]), "front-end's features"),
    (lambda m: m["attributes"]["_layout"].update(image=[11, 9, 3]), "does not match"),
    (lambda m: m["attributes"]["_layout"].update(image=[11, 9]), "frame shape"),
    (lambda m: m["attributes"]["_layout"].update(image=[1, 1, 2]), "leaves no pixel"),
    (lambda m: m["attributes"]["_layout"]["conv"][0].__setitem__(1, 0), "front-end"),
    (lambda m: m["attributes"]["_layout"].update(conv=[]), "front-end"),
    (lambda m: m["attributes"]["_layout"].update(hidden=0), "network description"),
    (lambda m: m["attributes"]["_layout"].pop("image"), "with fields"),
    (lambda m: m["attributes"].__setitem__("n_features_in_", 7), "does not match"),
])
def test_altered_files_are_refused(tmp_path, edit, message):
    m = _fit(RNNRegressor(conv=CONV, hidden_size=3, max_iter=1), _frames(), np.arange(5.0))
    path = tmp_path / "f.crnn"
    m.save(path)
    with pytest.raises(ModelFileError, match=message):
        crnn.load(rewrite_manifest(path, tmp_path / "bad.crnn", edit))


def test_state_dict_in_torchs_layout():
    X = _frames()
    m = _fit(RNNRegressor(conv=CONV, hidden_size=3, max_iter=1), X, np.arange(5.0))
    sd = m.state_dict()
    assert sd["conv.0.weight"].shape == (3, 2, 3, 3) and sd["conv.1.weight"].shape == (4, 3, 3, 3)
    assert sd["rnn.weight_ih_l0"].shape == (3, 4 * 2 * 2)     # 4 filters on a 2 x 2 grid
    back = RNNRegressor(conv=CONV, hidden_size=3).load_state_dict(sd, image_shape=IMAGE)
    assert np.array_equal(back.predict(X), m.predict(X))
    with pytest.raises(ValueError, match="image_shape"):
        RNNRegressor(conv=CONV, hidden_size=3).load_state_dict(sd)
    with pytest.raises(ValueError, match="front-end"):
        RNNRegressor(hidden_size=3).load_state_dict(sd, image_shape=IMAGE)
    with pytest.raises(ValueError, match="has shape"):
        RNNRegressor(conv=CONV, hidden_size=3).load_state_dict(sd, image_shape=(13, 9, 2))


@pytest.mark.parametrize("call,message", [
    (lambda X, y: RNNRegressor(conv=CONV).fit(X[:, :, 0, 0, :], y), "a frame per step"),
    (lambda X, y: RNNRegressor(conv=CONV).fit([X[0], X[1, :, :5]], y[:2]), "different shapes"),
    (lambda X, y: RNNRegressor(conv=CONV).fit(np.where(X > 2, np.nan, X), y), "NaN"),
    (lambda X, y: RNNRegressor(conv=CONV).fit(X.astype(complex), y), "Complex|real numbers"),
    (lambda X, y: RNNRegressor(conv=[(3, 20, 1)]).fit(X, y), "leaves no pixel"),
    (lambda X, y: RNNRegressor(conv=[(3, 0, 1)]).fit(X, y), "kernel"),
    (lambda X, y: RNNRegressor(conv="big").fit(X, y), "'conv' parameter"),
    (lambda X, y: RNNRegressor(conv=CONV).fit(X, y[:3]), "different numbers of samples"),
])
def test_bad_input_is_refused(call, message):
    X, y = _frames(), np.arange(5.0)
    with pytest.raises((ValueError, TypeError), match=message):
        call(X, y)


def test_a_fitted_model_reads_its_own_kind_of_input():
    X, y = _frames(), np.arange(5.0)
    m = _fit(RNNRegressor(conv=CONV, hidden_size=3, max_iter=1), X, y)
    theta = m._theta.copy()
    with pytest.raises(ValueError, match=r"fitted on frames of \(11, 9, 2\)"):
        m.predict(_frames()[:, :, :10])
    with pytest.raises(ValueError, match="fitted on frames"):
        m.partial_fit(X[:, :, :, :, :1], y)
    assert np.array_equal(m._theta, theta)
    # the parameter takes effect at the next fit; predict uses the fitted network
    m.set_params(conv=None)
    assert m.predict(X).shape == (5,)
    # a sequence model is unaffected
    plain = _fit(RNNRegressor(hidden_size=3, max_iter=1), X.reshape(5, 4, -1), y)
    with pytest.raises(ValueError, match="must be a 3D array"):
        plain.predict(X)


def test_learns_from_frames():
    """The target is the brightness of a square in the last frame, over
    noise: the front-end has to find it (held-out R^2 0.94-0.98 over seeds)."""
    rng = np.random.default_rng(3)
    X = 0.3 * rng.normal(size=(200, 2) + IMAGE)
    y = rng.uniform(-1, 1, 200)
    X[:, -1, 2:6, 2:6, 0] += y[:, None, None]
    m = _fit(RNNRegressor(conv=CONV, cell="gru", hidden_size=8, learning_rate_init=1e-2,
                          max_iter=30, random_state=0), X[:150], y[:150])
    assert m.loss_curve_[-1] < 0.1 * m.loss_curve_[0]
    assert m.score(X[150:], y[150:]) > 0.8


def test_what_a_hostile_probe_found():
    X, y = _frames(), np.arange(5.0)
    # X_val with conv: checked against the network being trained, on a new
    # estimator and on a refit with other frames
    m = RNNRegressor(conv=CONV, hidden_size=3, max_iter=2, early_stopping=True)
    _fit(m, X, y, X_val=_frames(n=3, seed=1), y_val=np.arange(3.0))
    assert len(m.validation_scores_) == 2
    X2 = np.random.default_rng(2).normal(size=(5, 4, 13, 9, 2))
    _fit(m, X2, y, X_val=X2[:3], y_val=y[:3])
    assert m._layout.image == (13, 9, 2)
    with pytest.raises(ValueError, match=r"fitting on frames of \(13, 9, 2\)"):
        _fit(m, X2, y, X_val=X[:3], y_val=y[:3])
    # a front-end whose feature maps would not fit: refused before allocating
    with pytest.raises(ValueError, match="a front-end may take"):
        RNNRegressor(conv=[{"filters": 1, "kernel": 1, "padding": 20000}]).fit(X, y)
    # image_shape: three positive ints
    sd = _fit(RNNRegressor(conv=CONV, hidden_size=3, max_iter=1), X, y).state_dict()
    for bad in ("1192", (11.5, 9, 2), (11, 9), (11, 9, 0), (11, 9, True)):
        with pytest.raises(ValueError, match="three positive ints"):
            RNNRegressor(conv=CONV, hidden_size=3).load_state_dict(sd, image_shape=bad)
    with pytest.raises(ValueError, match=r"Conv2d weight of shape \(3, 2, 3, 3\)"):
        RNNRegressor(conv=CONV, hidden_size=3).load_state_dict(
            {**sd, "conv.0.weight": sd["conv.0.weight"][:, :1]}, image_shape=IMAGE)
    # conv=None on a model fitted with a front-end: the message says so
    m = _fit(RNNRegressor(conv=CONV, hidden_size=3, max_iter=1), X, y).set_params(conv=None)
    with pytest.raises(ValueError, match="conv is None now"):
        m.partial_fit(X, y)


def test_a_crafted_front_end_that_would_exhaust_memory_is_refused(tmp_path):
    m = _fit(RNNRegressor(conv=[(2, 1, 1)], hidden_size=3, max_iter=1),
             np.zeros((2, 2, 1, 1, 1)), np.arange(2.0))
    path = tmp_path / "f.crnn"
    m.save(path)

    def edit(man):          # padding 40000 on 1 x 1 frames: 6.4e9 values per frame
        man["attributes"]["_layout"]["conv"][0][5:7] = [40000, 40000]
    with pytest.raises(ModelFileError, match="a front-end may take"):
        crnn.load(rewrite_manifest(path, tmp_path / "bad.crnn", edit))


def test_a_stepper_made_before_a_fork_steps_in_the_child():
    import multiprocessing as mp
    X = _frames(n=2)
    m = _fit(RNNRegressor(conv=CONV, hidden_size=3, return_sequences=True, max_iter=1,
                          n_jobs=2), X, np.zeros((2, 4)))
    st = m.stepper()
    want, _ = st.step(X[0, 0])          # the parent ran its teams
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=lambda: q.put(st.step(X[0, 0])[0]))
    p.start()
    p.join(60)
    if p.is_alive():                     # hung in OpenMP: the defect this guards
        p.kill()
    assert p.exitcode == 0, "the child did not finish"
    assert q.get(timeout=5) == want


@pytest.mark.parametrize("cell, kind", [("gru", "reg_seq"), ("lstm", "clf"), ("rnn", "reg")])
def test_onnx_graph_computes_predict(cell, kind):
    """to_onnx's graph (frames reshaped to images, Conv / Relu / MaxPool,
    the features flattened in (H, W, C) order, the recurrent layers, the
    head), run by onnxruntime, gives predict / predict_proba; with
    sequence_lens, on a zero-padded ragged batch too."""
    ort = pytest.importorskip("onnxruntime")
    rng = np.random.default_rng(6)
    X = [rng.normal(size=(T,) + IMAGE) for T in (4, 2, 5, 3)]
    kw = dict(conv=CONV, cell=cell, hidden_size=5, max_iter=2, random_state=0)
    if kind == "clf":
        m = _fit(RNNClassifier(bidirectional=True, num_layers=2, **kw), X,
                 np.array(["a", "b", "c", "a"]))
    else:
        y = [rng.normal(size=(len(x), 2)) for x in X] if kind == "reg_seq" else np.arange(4.)
        m = _fit(RNNRegressor(return_sequences=kind == "reg_seq", **kw), X, y)
    padded = np.zeros((4, 5) + IMAGE, np.float32)
    for i, x in enumerate(X):
        padded[i, :len(x)] = x
    lens = np.array([len(x) for x in X], np.int32)
    model = crnn.to_onnx(m, sequence_lens=True)
    assert [d.dim_param or d.dim_value for d in
            model.graph.input[0].type.tensor_type.shape.dim] == ["batch", "time", 11, 9, 2]
    run = ort.InferenceSession(model.SerializeToString()).run
    out = run(None, {"X": padded, "sequence_lens": lens})
    if kind == "clf":
        np.testing.assert_allclose(out[1], m.predict_proba(X), atol=2e-5)
        assert list(out[0].astype(str)) == list(m.predict(X))
    elif kind == "reg_seq":
        for i, p in enumerate(m.predict(X)):
            np.testing.assert_allclose(out[0][i, :lens[i]], p, atol=2e-5)
    else:
        np.testing.assert_allclose(out[0], m.predict(X), atol=2e-5)
    # equal lengths, without sequence_lens: a 5-D array
    Xe = rng.normal(size=(3, 4) + IMAGE)
    out = ort.InferenceSession(crnn.to_onnx(m).SerializeToString()).run(
        None, {"X": Xe.astype(np.float32)})
    ref = m.predict_proba(Xe) if kind == "clf" else m.predict(Xe)
    np.testing.assert_allclose(out[-1], ref, atol=2e-5)


def test_bfloat16_covers_the_network_behind_a_float32_front_end():
    """compute_dtype='bfloat16' with conv: the front-end computes in float32
    and the network's products take bfloat16 operands, so predict and one
    SGD step of the network's weights are those of a bfloat16 model without
    a front-end, fed the float32 front-end's features."""
    from crnn import _kernels
    if not _kernels.bf16_supported():
        pytest.skip("the CPU has no AVX512-BF16")
    X, y = _frames(n=6, seed=2), np.linspace(-1, 1, 6)
    src = _fit(RNNRegressor(conv=CONV, hidden_size=6, max_iter=2, random_state=0), X, y)
    sd = src.state_dict()
    lay = src._layout
    feats = lay.convnet().forward(src._theta[:lay.n_conv_params],
                                  np.ascontiguousarray(X.reshape((-1,) + IMAGE), np.float32))[0]
    feats = feats.reshape(6, 4, -1)
    kw = dict(hidden_size=6, solver="sgd", momentum=0.0, learning_rate_init=0.1,
              clip_norm=None, batch_size=6, shuffle=False, compute_dtype="bfloat16")
    conv = RNNRegressor(conv=CONV, **kw).load_state_dict(sd, image_shape=IMAGE)
    plain = RNNRegressor(**kw).load_state_dict(
        {k: v for k, v in sd.items() if not k.startswith("conv.")})
    p = conv.predict(X)
    np.testing.assert_allclose(p, plain.predict(feats), rtol=1e-6, atol=1e-7)
    # the products are bfloat16 ones: float32 ones give other predictions
    assert np.abs(p - src.predict(X)).max() > 1e-5
    f32 = RNNRegressor(conv=CONV, **{**kw, "compute_dtype": None}).load_state_dict(
        sd, image_shape=IMAGE)
    for m, data in ((conv, X), (plain, feats), (f32, X)):
        m.partial_fit(data, y)
    after, want, ref = conv.state_dict(), plain.state_dict(), f32.state_dict()
    for k, v in want.items():
        np.testing.assert_allclose(after[k], v, rtol=1e-5, atol=1e-7, err_msg=k)
    # the front-end learns from the bfloat16 network's gradient
    for k in ("conv.0.weight", "conv.1.bias"):
        step, step32 = after[k] - sd[k], ref[k] - sd[k]
        assert np.abs(step).max() > 0 and not np.array_equal(step, step32)
        np.testing.assert_allclose(step, step32, atol=0.05 * np.abs(step32).max())
