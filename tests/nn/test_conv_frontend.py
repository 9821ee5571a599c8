"""The convolutional front-end (crnn/_nn/conv.py) and the joint training
step of convolutions, recurrent network and head: against torch's
Conv2d / MaxPool2d + GRU/LSTM/RNN + Linear with the same weights (the loss
and every gradient), and against central finite differences."""
import numpy as np
import pytest

import reference as ref
from kernel_helpers import make_layout, pack
from crnn import _kernels
from crnn._nn.conv import ConvNet, ConvRNN, parse_layers
from crnn._nn.engine import Engine


def test_layer_descriptions():
    layers = parse_layers([(24, 5, 2), (36, (5, 3), (2, 1)),
                           dict(filters=8, kernel=3, padding=1, pool=2)])
    assert layers[0].kernel == (5, 5) and layers[0].stride == (2, 2)
    assert layers[1].kernel == (5, 3) and layers[1].stride == (2, 1)
    assert layers[2].padding == (1, 1) and layers[2].pool == (2, 2)
    for bad, msg in (([], "at least one layer"), ("abc", "a list of layers"),
                     ([(0, 3)], "filters must be a positive int"),
                     ([(4, 3, 0)], "stride must be an int >= 1"),
                     ([dict(filters=4)], "needs the keys"),
                     ([dict(filters=4, kernel=3, dilation=2)], "needs the keys"),
                     ([(4, 3, 1, 1)], r"\(filters, kernel, stride\)")):
        with pytest.raises(ValueError, match=msg):
            parse_layers(bad)
    with pytest.raises(ValueError, match="leaves no pixel"):
        ConvNet([(4, 5, 2), (4, 5, 2)], (9, 9, 1))
    net = ConvNet([(24, 5, 2), (36, 5, 2), (48, 3, 2)], (96, 96, 3))
    assert net.shapes[1:] == [(46, 46, 24), (21, 21, 36), (10, 10, 48)]
    assert net.n_features == 4800


def _torch_model(torch, net, layers, cell, D, H, O, seq, bidirectional):
    nn = torch.nn
    from torch_nets import TorchNet

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.ModuleList(nn.Conv2d(net.shapes[i][2], ly.filters, ly.kernel,
                                                ly.stride, ly.padding)
                                      for i, ly in enumerate(layers))
            self.seqnet = TorchNet(D, H, 1, O, "tanh", bidirectional, seq, cell)

        def forward(self, frames, N, T):
            h = frames.permute(0, 3, 1, 2)
            for ly, conv in zip(layers, self.conv):
                h = torch.relu(conv(h))
                if ly.pool is not None:
                    h = nn.functional.max_pool2d(h, ly.pool)
            feats = h.permute(0, 2, 3, 1).reshape(N, T, -1)     # channels-last features
            return self.seqnet(feats)

    return Model().double()


CASES = [("gru", False, True), ("lstm", True, False), ("rnn", False, False)]


@pytest.mark.parametrize("n_threads", [1, 3])
@pytest.mark.parametrize("cell,seq,bidirectional", CASES)
def test_joint_step_matches_torch(cell, seq, bidirectional, n_threads):
    torch = pytest.importorskip("torch")
    torch.manual_seed(5)
    conv = [(6, 3, 2), dict(filters=5, kernel=3, padding=1, pool=2)]
    net = ConvNet(conv, (13, 11, 2))
    layers = net.layers
    H, O, N, T = 7, 3, 4, 5
    D = net.n_features
    model = _torch_model(torch, net, layers, cell, D, H, O, seq, bidirectional)
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}
    theta_conv = net.load_state_dict(sd, np.float64)
    layout = make_layout(n_features=D, hidden=H, n_outputs=O, num_layers=1,
                         bidirectional=bidirectional, nonlinearity="tanh", cell=cell)
    rnn_sd = {k[len("seqnet."):]: v for k, v in sd.items() if k.startswith("seqnet.")}
    theta_rnn = pack(layout, rnn_sd, np.float64)
    theta = np.concatenate([theta_conv, theta_rnn])
    eng = Engine(layout, seq, _kernels.LOSS_CODES["mse"])
    step = ConvRNN(net, eng)
    rng = np.random.default_rng(6)
    frames = rng.normal(size=(N * T, 13, 11, 2))
    y = rng.normal(size=(N * T, O) if seq else (N, O))
    loss, grad = step.loss_grad(theta, frames, np.full(N, T), yreg=y, n_threads=n_threads)

    out = model(torch.tensor(frames), N, T)
    want = torch.mean((out - torch.tensor(y.reshape(out.shape))) ** 2)
    want.backward()
    assert loss == pytest.approx(want.item(), rel=1e-10)
    tg = {k: p.grad.numpy() for k, p in model.named_parameters()}
    got_conv = net.state_dict(grad[:net.n_params])
    for k, v in got_conv.items():
        np.testing.assert_allclose(v, tg[k], rtol=1e-8, atol=1e-11, err_msg=k)
    got_rnn = layout.views(grad[net.n_params:])
    for k, v in got_rnn.items():
        np.testing.assert_allclose(v, tg["seqnet." + k], rtol=1e-8, atol=1e-11, err_msg=k)


def test_joint_step_matches_finite_differences_on_ragged_sequences():
    """Ragged lengths and per-frame class targets, float64: central
    differences on a sample of the front-end's parameters."""
    net = ConvNet([(3, 3, 1), dict(filters=2, kernel=(2, 3), stride=(1, 2), pool=2)],
                  (8, 9, 1))
    H, O = 4, 3
    layout = make_layout(n_features=net.n_features, hidden=H, n_outputs=O, num_layers=1,
                         bidirectional=True, nonlinearity="tanh", cell="gru")
    rng = np.random.default_rng(7)
    params = ref.init_params(rng, n_features=net.n_features, hidden=H, n_outputs=O,
                             num_layers=1, bidirectional=True, dtype=np.float64, scale=0.6,
                             cell="gru")
    theta = np.concatenate([net.init(rng, np.float64),
                            pack(layout, params, np.float64)])
    lens = np.array([4, 2, 3])
    frames = rng.normal(size=(lens.sum(), 8, 9, 1))
    ylab = rng.integers(0, O, size=lens.sum()).astype(np.int32)
    step = ConvRNN(net, Engine(layout, True, _kernels.LOSS_CODES["xent"]))
    _, grad = step.loss_grad(theta, frames, lens, ylab=ylab, n_threads=2)
    eps = 1e-6
    for i in rng.choice(net.n_params, size=25, replace=False):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += eps
        tm[i] -= eps
        lp, _ = step.loss_grad(tp, frames, lens, ylab=ylab)
        lm, _ = step.loss_grad(tm, frames, lens, ylab=ylab)
        assert abs((lp - lm) / (2 * eps) - grad[i]) < 1e-7 * max(1.0, abs(grad[i])), i


def test_state_dict_round_trip():
    net = ConvNet([(4, 3, 1), (5, (3, 2), 2)], (10, 9, 3))
    theta = net.init(np.random.default_rng(0))
    sd = net.state_dict(theta)
    assert sd["conv.0.weight"].shape == (4, 3, 3, 3) and sd["conv.1.weight"].shape == (5, 4, 3, 2)
    np.testing.assert_array_equal(net.load_state_dict(sd), theta)
    sd["conv.1.weight"] = sd["conv.1.weight"][:, :3]
    with pytest.raises(ValueError, match="conv.1.weight and .bias have shapes"):
        net.load_state_dict(sd)


# ---------------------------------------------------------------------------
# scene labelling: front-end, a bidirectional sweep over rows, another over
# columns, a per-position classifier (SceneNet)

def _torch_scene(torch, net, layers, cell, H1, H2, P, K):
    from torch_nets import SceneTwin
    return SceneTwin(layers, net.conv.shapes[0][2], cell, H1, H2, P, K).double()


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_scene_step_matches_torch(cell, n_threads):
    torch = pytest.importorskip("torch")
    from crnn._nn.conv import SceneNet

    torch.manual_seed(8)
    conv = [dict(filters=4, kernel=3, padding=1, pool=2), (5, 3, 1)]
    H1, H2, P, K = 5, 4, 6, 3
    net = SceneNet(conv, (14, 12, 1), K, cell=cell, hidden=(H1, H2), projection=P)
    assert net.grid == (5, 4)
    model = _torch_scene(torch, net, net.conv.layers, cell, H1, H2, P, K)
    sd = {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}

    def sub(prefix):
        return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}

    theta = np.concatenate([net.conv.load_state_dict(sd, np.float64),
                            pack(net.row_layout, sub("row."), np.float64),
                            pack(net.col_layout, sub("col."), np.float64)])
    rng = np.random.default_rng(9)
    images = rng.random((3, 14, 12, 1))
    labels = rng.integers(0, K, size=(3, 5, 4)).astype(np.int32)
    loss, grad = net.loss_grad(theta, images, labels, n_threads)
    z = net.logits(theta, images, n_threads)

    zt = model(torch.tensor(images))
    np.testing.assert_allclose(z, zt.detach().numpy(), rtol=1e-10, atol=1e-12)
    want = torch.nn.functional.cross_entropy(zt.reshape(-1, K),
                                             torch.tensor(labels.reshape(-1)).long())
    want.backward()
    assert loss == pytest.approx(want.item(), rel=1e-10)
    tg = {k: p.grad.numpy() for k, p in model.named_parameters()}
    tc, tr, tk = net.split(grad)
    for k, v in net.conv.state_dict(tc).items():
        np.testing.assert_allclose(v, tg[k], rtol=1e-8, atol=1e-11, err_msg=k)
    for prefix, layout, g in (("row.", net.row_layout, tr), ("col.", net.col_layout, tk)):
        for k, v in layout.views(g).items():
            np.testing.assert_allclose(v, tg[prefix + k], rtol=1e-8, atol=1e-11,
                                       err_msg=prefix + k)


def test_given_output_gradient_is_the_chain_rule():
    """The 'given' loss: train_step back-propagates the gradient it is given
    at the head's outputs; its value is sum(outputs * gradient)."""
    from crnn._nn.conv import RNNStage
    from crnn._nn.layout import Layout

    rng = np.random.default_rng(10)
    layout = Layout("gru", None, 1, 2, 4, 3, 2)
    params = ref.init_params(rng, n_features=3, hidden=4, n_outputs=2, num_layers=1,
                             bidirectional=True, dtype=np.float64, scale=0.6, cell="gru")
    theta = pack(layout, params, np.float64)
    stage = RNNStage(Engine(layout, True, _kernels.LOSS_CODES["given"]))
    rows = rng.normal(size=(11, 3))
    lens = np.array([5, 6])
    G = rng.normal(size=(11, 2))
    value, grad, drows = stage.train(theta, rows, lens, yreg=G)
    out = stage.outputs(theta, rows, lens)
    assert value == pytest.approx(float(np.sum(out * G)), rel=1e-12)
    eps = 1e-6
    for i in rng.choice(layout.n_params, 12, replace=False):
        tp, tm = theta.copy(), theta.copy()
        tp[i] += eps
        tm[i] -= eps
        fd = (np.sum(stage.outputs(tp, rows, lens) * G)
              - np.sum(stage.outputs(tm, rows, lens) * G)) / (2 * eps)
        assert abs(fd - grad[i]) < 1e-7 * max(1, abs(fd)), i
    for r, j in ((0, 0), (7, 2), (10, 1)):
        rp, rm = rows.copy(), rows.copy()
        rp[r, j] += eps
        rm[r, j] -= eps
        fd = (np.sum(stage.outputs(theta, rp, lens) * G)
              - np.sum(stage.outputs(theta, rm, lens) * G)) / (2 * eps)
        assert abs(fd - drows[r, j]) < 1e-7 * max(1, abs(fd))
    with pytest.raises(ValueError, match="no sample weights"):
        _kernels.train_step(stage.engine.cfg, theta, np.zeros((1, layout.n_params)), rows,
                            np.array([0, 5], np.intp), lens.astype(np.intp), G,
                            np.zeros(0, np.int32), np.array([1, 0], np.intp),
                            np.array([0, 2], np.intp),
                            np.zeros((1, stage.engine.cfg.workspace_size(2, 6, True, True))),
                            np.zeros((1, stage.engine.cfg.index_workspace_size(6)), np.intp),
                            6, 2, True, 1, False, None, np.ones(11))


def test_shapes_and_lengths_are_checked():
    """Found by a review of the first version: frames outside every
    sequence, images or labels of the wrong shape, a generator of layers,
    dropout masks always drawn with one seed."""
    from crnn._nn.conv import RNNStage, SceneNet

    net = ConvNet((spec for spec in [(3, 3, 1), (2, 3, 1)]), (8, 7, 1))
    assert len(net.layers) == 2
    with pytest.raises(ValueError, match="at least one layer"):
        ConvNet([], (8, 7, 1))
    theta = net.init(np.random.default_rng(0), np.float64)
    with pytest.raises(ValueError, match=r"shape \(n, 8, 7, 1\)"):
        net.forward(theta, np.zeros((2, 7, 8, 1)))
    sd = net.state_dict(theta)
    sd["conv.1.bias"] = np.float64(0.5)
    with pytest.raises(ValueError, match="bias have shapes"):
        net.load_state_dict(sd)
    layout = make_layout(n_features=net.n_features, hidden=3, n_outputs=1, num_layers=2,
                         bidirectional=False, nonlinearity="tanh")
    eng = Engine(layout, True, _kernels.LOSS_CODES["mse"], dropout=0.4)
    step = ConvRNN(net, eng)
    rng = np.random.default_rng(1)
    full = np.concatenate([theta, rng.normal(size=layout.n_params) * 0.3])
    frames = rng.normal(size=(8, 8, 7, 1))
    with pytest.raises(ValueError, match="add up to 6 frames; 8 were given"):
        step.loss_grad(full, frames, [3, 3], yreg=np.zeros((6, 1)))
    with pytest.raises(ValueError, match="add up to the 8 rows"):
        RNNStage(eng).train(full[net.n_params:], np.zeros((8, net.n_features)), [3, 3],
                            yreg=np.zeros((6, 1)))
    y = rng.normal(size=(8, 1))
    losses = {seed: step.loss_grad(full, frames, [4, 4], yreg=y, seed=seed)[0]
              for seed in (0, 1, 2)}
    assert len(set(losses.values())) == 3                    # the seed reaches the masks
    scene = SceneNet([(2, 3, 1)], (5, 7, 1), 3, hidden=(2, 2))
    t = np.zeros(scene.n_params)
    with pytest.raises(ValueError, match=r"labels must have the shape \(n, 3, 5\)"):
        scene.loss_grad(t, np.zeros((2, 5, 7, 1)), np.zeros((2, 5, 3), np.int32))
