"""Equivalence with PyTorch given the same weights (skipped without torch)."""
import numpy as np
import pytest

from crnn import RNNClassifier, RNNRegressor

torch = pytest.importorskip("torch")
nn = torch.nn
from torch_nets import TorchNet  # noqa: E402


def _numpy_sd(net):
    return {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}


def _data(seed, N, T, D):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, T, D)).astype(np.float32), rng


ARCHS = [
    dict(L=1, nonlinearity="tanh", bidirectional=False, cell="rnn"),
    dict(L=2, nonlinearity="relu", bidirectional=False, cell="rnn"),
    dict(L=2, nonlinearity="tanh", bidirectional=True, cell="rnn"),
    dict(L=3, nonlinearity="relu", bidirectional=True, cell="rnn"),
    dict(L=1, nonlinearity="tanh", bidirectional=False, cell="gru"),
    dict(L=2, nonlinearity="tanh", bidirectional=True, cell="gru"),
    dict(L=1, nonlinearity="tanh", bidirectional=False, cell="lstm"),
    dict(L=2, nonlinearity="tanh", bidirectional=True, cell="lstm"),
]
ARCH_IDS = [f"{a['cell']}-{a['nonlinearity']}-L{a['L']}{'-bi' if a['bidirectional'] else ''}"
            for a in ARCHS]


def _net(arch, D, H, O, seq):
    return TorchNet(D, H, arch["L"], O, arch["nonlinearity"], arch["bidirectional"], seq,
                    arch["cell"])


def _est(cls, arch, H, seq, **kw):
    return cls(cell=arch["cell"], hidden_size=H, num_layers=arch["L"],
               nonlinearity=arch["nonlinearity"], bidirectional=arch["bidirectional"],
               return_sequences=seq, **kw)


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_regressor_predict_matches_torch(arch, seq, n_jobs):
    torch.manual_seed(0)
    D, H, O, N, T = 4, 16, 3, 37, 12
    net = _net(arch, D, H, O, seq)
    X, _ = _data(0, N, T, D)
    est = _est(RNNRegressor, arch, H, seq, n_jobs=n_jobs)
    est.load_state_dict(_numpy_sd(net))
    with torch.no_grad():
        want = net(torch.from_numpy(X)).numpy()
    got = est.predict(X)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # and back: the estimator's state_dict loads into torch strictly
    net2 = _net(arch, D, H, O, seq)
    net2.load_state_dict({k: torch.from_numpy(v) for k, v in est.state_dict().items()})
    with torch.no_grad():
        np.testing.assert_allclose(net2(torch.from_numpy(X)).numpy(), want, rtol=0, atol=0)


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
@pytest.mark.parametrize("seq", [False, True])
def test_classifier_proba_matches_torch(arch, seq):
    torch.manual_seed(1)
    D, H, C, N, T = 3, 8, 5, 20, 9
    net = _net(arch, D, H, C, seq)
    X, _ = _data(1, N, T, D)
    clf = _est(RNNClassifier, arch, H, seq)
    clf.load_state_dict(_numpy_sd(net), classes=np.array([10, 20, 30, 40, 50]))
    with torch.no_grad():
        logits = net(torch.from_numpy(X))
        want = torch.softmax(logits, -1).numpy()
    np.testing.assert_allclose(clf.predict_proba(X), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X),
                                  np.array([10, 20, 30, 40, 50])[logits.argmax(-1).numpy()])


def _assert_same_weights(est, net, tol):
    sd = est.state_dict()
    for k, v in net.state_dict().items():
        np.testing.assert_allclose(sd[k], v.detach().numpy(), rtol=tol, atol=tol, err_msg=k)


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
@pytest.mark.parametrize("seq", [False, True])
def test_one_sgd_step_matches_torch(arch, seq):
    """Full batch, momentum 0, no clipping: one partial_fit == one torch SGD step."""
    torch.manual_seed(2)
    D, H, O, N, T = 3, 12, 2, 25, 10
    net = _net(arch, D, H, O, seq)
    X, rng = _data(2, N, T, D)
    y = rng.normal(size=(N, T, O) if seq else (N, O)).astype(np.float32)
    est = _est(RNNRegressor, arch, H, seq, solver="sgd", momentum=0.0, learning_rate_init=0.5,
               batch_size=N, clip_norm=None, shuffle=False, n_jobs=2)
    est.load_state_dict(_numpy_sd(net))
    est.partial_fit(X, y)

    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.0)
    loss = nn.MSELoss()(net(torch.from_numpy(X)), torch.from_numpy(y))
    opt.zero_grad()
    loss.backward()
    opt.step()
    _assert_same_weights(est, net, 2e-5)
    assert est.loss_curve_[0] == pytest.approx(loss.item(), rel=1e-5)


@pytest.mark.parametrize("seq", [False, True])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_classifier_sgd_step_matches_torch(seq, cell):
    torch.manual_seed(3)
    D, H, C, N, T = 4, 10, 3, 30, 8
    net = TorchNet(D, H, 2, C, "tanh", True, seq, cell)
    X, rng = _data(3, N, T, D)
    y = rng.integers(0, C, size=(N, T) if seq else N)
    clf = RNNClassifier(cell=cell, hidden_size=H, num_layers=2, bidirectional=True,
                        return_sequences=seq, solver="sgd", momentum=0.0,
                        learning_rate_init=1.0, batch_size=N, clip_norm=None, shuffle=False)
    clf.load_state_dict(_numpy_sd(net))
    clf.partial_fit(X, y, classes=np.arange(C))
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    logits = net(torch.from_numpy(X))
    loss = nn.CrossEntropyLoss()(logits.reshape(-1, C), torch.from_numpy(y).reshape(-1))
    opt.zero_grad()
    loss.backward()
    opt.step()
    _assert_same_weights(clf, net, 2e-5)


@pytest.mark.parametrize("solver", ["adam", "sgd"])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_several_steps_with_clipping_and_weight_decay_match_torch(solver, cell):
    """Mini-batches in order (the last one smaller), Adam or Nesterov SGD,
    global-norm clipping and an L2 penalty on the weight matrices: alpha as
    scikit-learn's MLP, alpha / 2 * ||W||^2 over the batch size, i.e. torch
    weight_decay = alpha / batch_size on the weights only."""
    torch.manual_seed(4)
    D, H, O, N, T, batch = 3, 16, 2, 35, 15, 10
    net = TorchNet(D, H, 2, O, "tanh", False, False, cell)
    X, rng = _data(4, N, T, D)
    y = (3 * rng.normal(size=(N, O))).astype(np.float32)
    alpha, clip = 0.2, 0.1
    est = RNNRegressor(cell=cell, hidden_size=H, num_layers=2, solver=solver,
                       learning_rate_init=0.01,
                       batch_size=batch, clip_norm=clip, alpha=alpha, shuffle=False,
                       momentum=0.9, nesterovs_momentum=True)
    est.load_state_dict(_numpy_sd(net))
    est.partial_fit(X, y)
    est.partial_fit(X, y)

    weights = [p for n_, p in net.named_parameters() if "weight" in n_]
    biases = [p for n_, p in net.named_parameters() if "bias" in n_]
    groups = [dict(params=weights, weight_decay=alpha), dict(params=biases, weight_decay=0.0)]
    if solver == "adam":
        opt = torch.optim.Adam(groups, lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True)
    for _ in range(2):
        for s in range(0, N, batch):
            opt.param_groups[0]["weight_decay"] = alpha / len(X[s:s + batch])
            loss = nn.MSELoss()(net(torch.from_numpy(X[s:s + batch])),
                                torch.from_numpy(y[s:s + batch]))
            opt.zero_grad()
            loss.backward()
            norm = nn.utils.clip_grad_norm_(net.parameters(), clip)
            assert norm > clip        # clipping is really exercised
            opt.step()
    _assert_same_weights(est, net, 1e-4)
    assert est._opt_step == 8


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_initial_and_final_states_match_torch(arch):
    torch.manual_seed(5)
    D, H, O, N, T = 3, 12, 2, 9, 7
    net = _net(arch, D, H, O, True)
    X, rng = _data(5, N, T, D)
    ndir = 2 if arch["bidirectional"] else 1
    shape = (arch["L"] * ndir, N, H)
    h0 = rng.normal(size=shape).astype(np.float32)
    c0 = rng.normal(size=shape).astype(np.float32)
    est = _est(RNNRegressor, arch, H, True)
    est.load_state_dict(_numpy_sd(net))
    lstm = arch["cell"] == "lstm"
    start = (h0, c0) if lstm else h0
    pred, state = est.predict(X, initial_state=start, return_state=True)
    with torch.no_grad():
        tstart = (torch.from_numpy(h0), torch.from_numpy(c0)) if lstm else torch.from_numpy(h0)
        out, tstate = net.rnn(torch.from_numpy(X), tstart)
        want = net.head(out).numpy()
    np.testing.assert_allclose(pred, want, rtol=1e-5, atol=1e-5)
    if lstm:
        np.testing.assert_allclose(state[0], tstate[0].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state[1], tstate[1].numpy(), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(state, tstate.numpy(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# variable-length sequences against packed sequences

from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence  # noqa: E402


def _ragged_data(seed, lens, D):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(t, D)).astype(np.float32) for t in lens], rng


def _packed_forward(net, X, seq):
    packed = pack_sequence([torch.from_numpy(x) for x in X], enforce_sorted=False)
    out, h_n = net.rnn(packed)
    if isinstance(h_n, tuple):
        h_n = h_n[0]
    if seq:
        return net.head(out.data), out       # packed rows
    last = torch.cat([h_n[-2], h_n[-1]], 1) if net.bidirectional else h_n[-1]
    return net.head(last), out


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
@pytest.mark.parametrize("seq", [False, True])
def test_ragged_predict_matches_packed_sequences(arch, seq):
    torch.manual_seed(6)
    D, H, O = 3, 10, 2
    lens = [9, 1, 5, 12, 5, 3]
    net = _net(arch, D, H, O, seq)
    X, _ = _ragged_data(6, lens, D)
    est = _est(RNNRegressor, arch, H, seq)
    est.load_state_dict(_numpy_sd(net))
    got = est.predict(X)      # (n, O) many-to-one; a list of (T_i, O) per step
    with torch.no_grad():
        if seq:
            packed = pack_sequence([torch.from_numpy(x) for x in X], enforce_sorted=False)
            out, _ = net.rnn(packed)
            padded, _ = pad_packed_sequence(out, batch_first=True)
            want = [net.head(padded[i, :t]).numpy() for i, t in enumerate(lens)]
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
        else:
            want, _ = _packed_forward(net, X, False)
            np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)
    # final states: h_n of the packed run
    _, state = est.predict(X, return_state=True)
    with torch.no_grad():
        _, h_n = net.rnn(pack_sequence([torch.from_numpy(x) for x in X], enforce_sorted=False))
    if arch["cell"] == "lstm":
        np.testing.assert_allclose(state[0], h_n[0].numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(state[1], h_n[1].numpy(), rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_allclose(state, h_n.numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
@pytest.mark.parametrize("seq", [False, True])
def test_ragged_sgd_step_matches_packed_sequences(arch, seq):
    torch.manual_seed(7)
    D, H, O = 3, 8, 2
    lens = [7, 2, 11, 4, 7, 1, 9]
    net = _net(arch, D, H, O, seq)
    X, rng = _ragged_data(7, lens, D)
    if seq:
        y = [rng.normal(size=(t, O)).astype(np.float32) for t in lens]
    else:
        y = rng.normal(size=(len(lens), O)).astype(np.float32)
    est = _est(RNNRegressor, arch, H, seq, solver="sgd", momentum=0.0, learning_rate_init=0.5,
               batch_size=len(lens), clip_norm=None, shuffle=False, n_jobs=2)
    est.load_state_dict(_numpy_sd(net))
    est.partial_fit(X, y)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    pred, _ = _packed_forward(net, X, seq)
    if seq:
        target = pack_sequence([torch.from_numpy(a) for a in y], enforce_sorted=False).data
    else:
        target = torch.from_numpy(y)
    loss = nn.MSELoss()(pred, target)
    opt.zero_grad()
    loss.backward()
    opt.step()
    _assert_same_weights(est, net, 2e-5)
    assert est.loss_curve_[0] == pytest.approx(loss.item(), rel=1e-5)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_token_ids_match_torch_on_one_hot_input(cell, bidirectional):
    """Token-id input in the kernels (float32) against PyTorch's recurrent
    layer on F.one_hot input, given the same weights: per-step cross-entropy
    and every gradient."""
    from kernel_helpers import kernel_loss_grad, make_layout

    V, H, L, O, N, T = 13, 16, 2, 13, 6, 9
    torch.manual_seed(0)
    net = TorchNet(V, H, L, O, bidirectional=bidirectional, seq=True, cell=cell).float()
    rng = np.random.default_rng(3)
    ids = rng.integers(0, V, size=(N, T))
    nxt = rng.integers(0, O, size=(N, T))
    logits = net(nn.functional.one_hot(torch.from_numpy(ids), V).float())
    loss = nn.functional.cross_entropy(logits.reshape(-1, O), torch.from_numpy(nxt).reshape(-1))
    loss.backward()
    layout = make_layout(n_features=V, hidden=H, n_outputs=O, num_layers=L,
                         bidirectional=bidirectional, nonlinearity="tanh", cell=cell)
    params = {k: v.detach().numpy().astype(np.float64) for k, v in net.state_dict().items()}
    got_loss, got = kernel_loss_grad(layout, params, ids[:, :, None].astype(np.float32), nxt,
                                     np.arange(N), loss="xent", seq=True, dtype=np.float32,
                                     n_threads=2, tokens=True)
    assert got_loss == pytest.approx(loss.item(), rel=1e-5)
    for name, p in net.named_parameters():
        np.testing.assert_allclose(got[name], p.grad.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_embedding_matches_torch(cell):
    """Token ids through an embedding (float32) against nn.Embedding + the
    recurrent layer + nn.Linear given the same weights: the per-step
    cross-entropy and every gradient, the embedding's included."""
    from kernel_helpers import kernel_loss_grad
    from crnn._nn.layout import Layout

    V, E, H, L, N, T = 17, 7, 16, 2, 6, 9

    class EmbNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, E)
            self.net = TorchNet(E, H, L, V, seq=True, cell=cell)

        def forward(self, ids):
            return self.net(self.embedding(ids))

    torch.manual_seed(1)
    net = EmbNet().float()
    rng = np.random.default_rng(4)
    ids = rng.integers(0, V, size=(N, T))
    nxt = rng.integers(0, V, size=(N, T))
    logits = net(torch.from_numpy(ids))
    loss = nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(nxt).reshape(-1))
    loss.backward()
    layout = Layout(cell, "tanh", L, 1, H, V, V, tokens=True, embedding_dim=E)
    names = {k: k.replace("net.", "") for k, _ in net.named_parameters()}
    params = {names[k]: v.detach().numpy().astype(np.float64)
              for k, v in net.state_dict().items()}
    got_loss, got = kernel_loss_grad(layout, params, ids[:, :, None].astype(np.float32), nxt,
                                     np.arange(N), loss="xent", seq=True, dtype=np.float32,
                                     n_threads=2)
    assert got_loss == pytest.approx(loss.item(), rel=1e-5)
    for name, p in net.named_parameters():
        np.testing.assert_allclose(got[names[name]], p.grad.numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=name)
