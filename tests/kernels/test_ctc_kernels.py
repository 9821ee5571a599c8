"""The CTC kernels (src/_ctc.pxi): the loss and gradient against the numpy
reference (tests/support/ctc_reference.py), torch.nn.CTCLoss and finite differences;
the loss fused into a network's training step against the numpy network
reference; prefix beam search against the reference and exhaustive search."""
import itertools

import numpy as np
import pytest

import ctc_reference as cref
import reference as ref
from crnn import _kernels
from crnn._nn.layout import Layout
from kernel_helpers import SIMD_IDS, SIMD_LEVELS, config, flatten, pack, shard, simd

LOSS_CTC = _kernels.LOSS_CODES["ctc"]


def _cases(rng, specs, C, n_labels=None, scale=1.5):
    """[(logits (T, C), labels)] for (T, L) specs; labels from n_labels
    classes 1.. (few: repeats are frequent)."""
    alphabet = np.arange(1, C if n_labels is None else n_labels + 1)
    return [(rng.normal(0, scale, (T, C)), rng.choice(alphabet, L).astype(np.int32))
            for T, L in specs]


def _flat(cases, dtype=np.float64):
    z = np.ascontiguousarray(np.concatenate([c[0] for c in cases] + [np.zeros((0, cases[0][0]
                                            .shape[1]))]), dtype=dtype)
    lens = np.array([c[0].shape[0] for c in cases], dtype=np.intp)
    start = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.intp)
    llen = np.array([len(c[1]) for c in cases], dtype=np.intp)
    lstart = np.concatenate([[0], np.cumsum(llen)[:-1]]).astype(np.intp)
    labels = np.concatenate([c[1] for c in cases] + [np.zeros(0, np.int32)]).astype(np.int32)
    return z, start, lens, labels, lstart, llen


def _kernel_ctc(cases, dtype=np.float64, zero_infinity=False, n_threads=1, readonly=False):
    z, start, lens, labels, lstart, llen = _flat(cases, dtype)
    grad = np.full_like(z, 7.0)
    if readonly:
        for a in (z, start, lens, labels, lstart, llen):
            a.setflags(write=False)
    losses = _kernels.ctc_loss(z, start, lens, labels, lstart, llen, grad, 0, zero_infinity,
                               n_threads)
    return losses, [grad[s:s + n] for s, n in zip(start, lens)]


SPECS = [(7, 3), (1, 0), (1, 1), (12, 5), (4, 4), (30, 2), (3, 2), (9, 4), (2, 0), (16, 8)]


# ---------------------------------------------------------------- loss alone

@pytest.mark.parametrize("n_threads", [1, 2, 3])
@pytest.mark.parametrize("readonly", [False, True])
def test_loss_and_gradient_match_numpy_reference(n_threads, readonly):
    rng = np.random.default_rng(0)
    for n_labels in (2, None):              # many repeats, then few
        cases = _cases(rng, SPECS, 6, n_labels)
        losses, grads = _kernel_ctc(cases, n_threads=n_threads, readonly=readonly)
        for (z, lab), got_l, got_g in zip(cases, losses, grads):
            want_l, want_g = cref.ctc_loss_and_grad(z, lab)
            if np.isinf(want_l):
                assert np.isinf(got_l) and np.all(np.isnan(got_g))
                continue
            assert got_l == pytest.approx(want_l, rel=1e-12, abs=1e-12)
            np.testing.assert_allclose(got_g, want_g, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(got_g.sum(axis=1), 0, atol=1e-9)


def test_repeated_labels_need_blanks_between():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 4))
    for lab, feasible in (([2, 2, 2], True), ([2, 2, 2, 2], False), ([1, 2, 1, 2, 1], True),
                          ([3, 3, 1, 1], False)):
        losses, _ = _kernel_ctc([(z, np.array(lab, np.int32))])
        assert np.isfinite(losses[0]) == feasible, lab
        if feasible:
            assert losses[0] == pytest.approx(cref.brute_force_ctc_loss(z, lab), rel=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("zero_infinity", [False, True])
def test_matches_torch_ctcloss(dtype, zero_infinity):
    """Losses and gradients against torch.nn.CTCLoss(reduction='none') in
    the same precision, including infeasible sequences and T = 0."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    specs = SPECS + [(0, 0), (0, 2), (3, 5), (40, 12), (25, 25)]
    cases = _cases(rng, specs, 8, 3)
    losses, grads = _kernel_ctc(cases, dtype, zero_infinity, n_threads=2)
    T = max(c[0].shape[0] for c in cases)
    N, C, Lm = len(cases), 8, max(len(c[1]) for c in cases)
    x = np.zeros((T, N, C))
    tg = np.ones((N, Lm), np.int64)
    for i, (z, lab) in enumerate(cases):
        x[:len(z), i] = z
        tg[i, :len(lab)] = lab
    tt = {np.float32: torch.float32, np.float64: torch.float64}[dtype]
    xt = torch.tensor(x, dtype=tt, requires_grad=True)
    lt = torch.nn.CTCLoss(blank=0, reduction="none", zero_infinity=zero_infinity)(
        torch.log_softmax(xt, -1), torch.tensor(tg), torch.tensor([len(c[0]) for c in cases]),
        torch.tensor([len(c[1]) for c in cases]))
    # the gradient of each sequence's own loss (a sum over finite ones: a
    # NaN of one sequence stays in its own frames)
    lt.backward(torch.ones(N, dtype=tt))
    tl, tgd = lt.detach().numpy(), xt.grad.numpy()
    tol = 1e-5 if dtype == np.float32 else 1e-10
    for i, (z, lab) in enumerate(cases):
        if np.isinf(tl[i]):
            assert np.isinf(losses[i]), i
            assert np.all(np.isnan(grads[i])) and np.all(np.isnan(tgd[:len(z), i])), i
            continue
        assert losses[i] == pytest.approx(tl[i], rel=tol, abs=tol), i
        np.testing.assert_allclose(grads[i], tgd[:len(z), i], rtol=tol * 10, atol=tol * 10)


def test_finite_differences():
    rng = np.random.default_rng(3)
    cases = _cases(rng, [(6, 3), (5, 2)], 4, 2)
    losses, grads = _kernel_ctc(cases)
    eps = 1e-6
    for (z, lab), g, loss in zip(cases, grads, losses):
        for t, k in itertools.product(range(z.shape[0]), range(z.shape[1])):
            zp, zm = z.copy(), z.copy()
            zp[t, k] += eps
            zm[t, k] -= eps
            fd = (_kernel_ctc([(zp, lab)])[0][0] - _kernel_ctc([(zm, lab)])[0][0]) / (2 * eps)
            assert g[t, k] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_long_inputs_stay_finite_and_exact():
    """T = 3000 frames and 200 labels: log space keeps the loss and the
    gradient exact (the reference is log space in float64 too)."""
    rng = np.random.default_rng(4)
    z = rng.normal(0, 3, (3000, 12))
    lab = rng.integers(1, 12, 200).astype(np.int32)
    losses, grads = _kernel_ctc([(z, lab)])
    want_l, want_g = cref.ctc_loss_and_grad(z, lab)
    assert np.isfinite(losses[0]) and losses[0] > 1000
    assert losses[0] == pytest.approx(want_l, rel=1e-12)
    np.testing.assert_allclose(grads[0], want_g, atol=1e-9)
    # float32 logits of the same: finite, and close
    l32, g32 = _kernel_ctc([(z, lab)], np.float32)
    assert l32[0] == pytest.approx(want_l, rel=1e-6)
    assert np.all(np.isfinite(g32[0]))


def test_zero_infinity_and_empty_inputs():
    rng = np.random.default_rng(5)
    z = rng.normal(size=(2, 4))
    cases = [(z, np.array([1, 2, 3], np.int32)), (np.zeros((0, 4)), np.zeros(0, np.int32)),
             (np.zeros((0, 4)), np.array([1], np.int32))]
    l0, g0 = _kernel_ctc(cases, zero_infinity=False)
    assert np.isinf(l0[0]) and np.all(np.isnan(g0[0]))
    assert l0[1] == 0 and np.isinf(l0[2])
    l1, g1 = _kernel_ctc(cases, zero_infinity=True)
    np.testing.assert_array_equal(l1, [0, 0, 0])
    np.testing.assert_array_equal(g1[0], 0)


def test_nan_logits_give_nan_not_zero():
    """NaN input is never mistaken for an infeasible labeling (which
    zero_infinity would silence)."""
    z = np.zeros((4, 3))
    z[2, 1] = np.nan
    losses, grads = _kernel_ctc([(z, np.array([1, 2], np.int32))], zero_infinity=True)
    assert np.isnan(losses[0])
    assert np.any(np.isnan(grads[0]))


def test_bad_arguments_are_refused():
    z = np.zeros((5, 4))
    s, n = np.array([0], np.intp), np.array([5], np.intp)
    ls, ll = np.array([0], np.intp), np.array([2], np.intp)
    for lab in ([0, 1], [1, 4], [-1, 2]):
        with pytest.raises(ValueError, match="not a class other than the blank"):
            _kernels.ctc_loss(z, s, n, np.array(lab, np.int32), ls, ll)
    with pytest.raises(ValueError, match="outside the label array"):
        _kernels.ctc_loss(z, s, n, np.array([1], np.int32), ls, ll)
    with pytest.raises(ValueError, match="outside the logits"):
        _kernels.ctc_loss(z, s, np.array([6], np.intp), np.array([1, 2], np.int32), ls, ll)
    with pytest.raises(ValueError, match="shape of logits"):
        _kernels.ctc_loss(z, s, n, np.array([1, 2], np.int32), ls, ll, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="blank"):
        _kernels.ctc_loss(z, s, n, np.array([1, 2], np.int32), ls, ll, None, 4)


# ---------------------------------------------------------------- decoding

@pytest.mark.parametrize("beam", [1, 2, 3, 8, 64])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_beam_search_matches_reference(beam, n_threads):
    rng = np.random.default_rng(6)
    for C, scale in ((3, 1.0), (5, 2.0), (12, 4.0)):
        cases = _cases(rng, [(T, 0) for T in (1, 2, 5, 9, 17, 40)], C, scale=scale)
        z, start, lens, *_ = _flat(cases)
        labels, offs, scores = _kernels.ctc_beam_search(z, start, lens, beam, 0, n_threads)
        for i, (zi, _) in enumerate(cases):
            want, want_score = cref.prefix_beam_search(zi, beam)
            np.testing.assert_array_equal(labels[offs[i]:offs[i + 1]], want)
            assert scores[i] == pytest.approx(want_score, rel=1e-12, abs=1e-12)


def test_wide_beam_finds_the_most_probable_labeling():
    """Without pruning, prefix beam search is exact: it returns the labeling
    of highest CTC probability (exhaustive search), which beats or ties the
    best path's."""
    rng = np.random.default_rng(7)
    for _ in range(12):
        z = rng.normal(0, 1.0, (5, 3))
        labels, offs, score = _kernels.ctc_beam_search(z, np.array([0], np.intp),
                                                       np.array([5], np.intp), 400)
        best, best_lp = cref.most_likely_labeling_brute_force(z, 5)
        assert -cref.ctc_loss(z, labels) == pytest.approx(best_lp, rel=1e-12)
        assert score[0] == pytest.approx(best_lp, rel=1e-12)
        greedy = cref.best_path_decode(z)
        assert -cref.ctc_loss(z, greedy) <= best_lp + 1e-12


def test_beam_search_arguments():
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match="beam_size"):
        _kernels.ctc_beam_search(z, np.array([0], np.intp), np.array([3], np.intp), 0)
    with pytest.raises(ValueError, match="outside the logits"):
        _kernels.ctc_beam_search(z, np.array([1], np.intp), np.array([3], np.intp), 2)
    labels, offs, _ = _kernels.ctc_beam_search(z, np.array([0, 3], np.intp),
                                               np.array([3, 0], np.intp), 2)
    assert offs.tolist()[-1] == len(labels)


# ---------------------------------------------------------------- in the network

D, H, C = 3, 5, 5
THREADING = [(1, False), (2, False), (2, True), (3, True)]
THREAD_IDS = ["1t", "2t-batch", "2t-hidden", "3t-hidden"]


def _network(seed, lens, label_lens, *, cell, num_layers, bidirectional):
    rng = np.random.default_rng(seed)
    layout = Layout(cell, "tanh", num_layers, 2 if bidirectional else 1, H, D, C)
    params = ref.init_params(rng, n_features=D, hidden=H, n_outputs=C, num_layers=num_layers,
                             bidirectional=bidirectional, dtype=np.float64, scale=0.5,
                             cell=cell)
    X = [rng.normal(size=(n, D)) for n in lens]
    y = [rng.integers(1, 3, L).astype(np.int32) for L in label_lens]   # labels 1, 2: repeats
    arch = dict(num_layers=num_layers, bidirectional=bidirectional, nonlinearity="tanh",
                return_sequences=True, cell=cell)
    return layout, params, X, y, arch


def _reference(params, X, y, idx, arch, weights=None, zero_infinity=False):
    """torch's "mean" (weighted): sum_i w_i loss_i / max(L_i, 1) / sum_i w_i,
    and its gradient, each sequence run alone through the numpy network."""
    total, grads = 0.0, None
    w = np.ones(len(X)) if weights is None else weights
    wsum = sum(w[i] for i in idx)
    for i in idx:
        if not w[i]:
            continue                         # a weight of 0: no term at all
        logits, cache = ref.forward(params, X[i][None], **arch)
        li, dz = cref.ctc_loss_and_grad(logits[0], y[i], 0, zero_infinity)
        scale = w[i] / max(len(y[i]), 1) / wsum
        total += li * scale
        gi = ref.backward(params, cache, (dz * scale)[None], **arch)
        grads = gi if grads is None else {k: grads[k] + gi[k] for k in gi}
    return total, grads


def _kernel(layout, params, X, y, idx, *, n_threads=1, hidden_split=False, packed=False,
            dtype=np.float64, weights=None, zero_infinity=False):
    theta = pack(layout, params, dtype)
    cfg = config(layout, True, LOSS_CTC, None)
    rows, start, lens = flatten(X)
    rows = np.ascontiguousarray(rows, dtype=dtype)
    llen = np.array([len(t) for t in y], np.intp)
    lstart = np.concatenate([[0], np.cumsum(llen)[:-1]]).astype(np.intp)
    labels = np.concatenate(y).astype(np.int32)
    S = 1 if hidden_split else max(1, min(n_threads, len(idx)))
    order, bounds = shard(idx, lens, S)
    T = int(lens.max())
    bmax = int(np.max(np.diff(bounds)))
    ws = np.zeros((S, cfg.workspace_size(bmax, T, True, True)), dtype)
    iws = np.zeros((S, cfg.index_workspace_size(T)), np.intp)
    grads = np.zeros((S, layout.n_params), dtype)
    wpack = np.full(cfg.packed_size(True, np.dtype(dtype).itemsize) if packed else 0, np.nan,
                    dtype)
    cws = np.full((max(S, n_threads), _kernels.ctc_work_size(T, int(llen.max()), C)), np.nan)
    value = _kernels.train_step(cfg, theta, grads, rows, start, lens, np.zeros((0, 0), dtype),
                                np.zeros(0, np.int32), order, bounds, ws, iws, T, bmax, True,
                                n_threads, hidden_split, wpack, weights, 0,
                                ctc_labels=labels, ctc_lstart=lstart, ctc_llen=llen,
                                ctc_ws=cws, zero_infinity=zero_infinity)
    g = grads.sum(axis=0)
    return value, layout.views(g)


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
@pytest.mark.parametrize("level", SIMD_LEVELS, ids=SIMD_IDS)
def test_train_step_matches_reference(cell, bidirectional, threading, level):
    n_threads, hidden_split = threading
    lens = [9, 3, 6, 9, 2, 7, 4]
    label_lens = [4, 1, 3, 0, 2, 3, 2]
    layout, params, X, y, arch = _network(10, lens, label_lens, cell=cell,
                                          num_layers=2 if bidirectional else 1,
                                          bidirectional=bidirectional)
    idx = [5, 0, 2, 6, 1, 3]                 # not all samples, not sorted
    want_loss, want = _reference(params, X, y, idx, arch)
    with simd(level) as packed:
        got_loss, got = _kernel(layout, params, X, y, idx, n_threads=n_threads,
                                hidden_split=hidden_split, packed=packed)
    assert got_loss == pytest.approx(want_loss, rel=1e-11)
    for name in want:
        assert _rel(got[name], want[name]) < 1e-9, name


@pytest.mark.parametrize("threading", THREADING, ids=THREAD_IDS)
def test_train_step_sample_weights_and_zero_infinity(threading):
    n_threads, hidden_split = threading
    lens = [6, 2, 5, 4]
    label_lens = [3, 3, 2, 1]                # sample 1 cannot emit 3 labels in 2 frames
    layout, params, X, y, arch = _network(11, lens, label_lens, cell="lstm", num_layers=1,
                                          bidirectional=True)
    idx = [0, 1, 2, 3]
    w = np.array([0.5, 2.0, 0.0, 1.5])
    want_loss, want = _reference(params, X, y, idx, arch, w, zero_infinity=True)
    got_loss, got = _kernel(layout, params, X, y, idx, n_threads=n_threads,
                            hidden_split=hidden_split, weights=w, zero_infinity=True)
    assert got_loss == pytest.approx(want_loss, rel=1e-11)
    for name in want:
        assert _rel(got[name], want[name]) < 1e-9, name
    # without zero_infinity: an infinite loss and NaN gradients, as torch
    got_loss, got = _kernel(layout, params, X, y, idx, n_threads=n_threads,
                            hidden_split=hidden_split, weights=w)
    assert np.isinf(got_loss)
    assert np.isnan(got["head.weight"]).any()
    # a zero weight silences even an infeasible sample
    w[1] = 0.0
    want_loss, want = _reference(params, X, y, idx, arch, w)
    got_loss, got = _kernel(layout, params, X, y, idx, n_threads=n_threads,
                            hidden_split=hidden_split, weights=w)
    assert got_loss == pytest.approx(want_loss, rel=1e-11)
    for name in want:
        assert _rel(got[name], want[name]) < 1e-9, name


def test_train_step_finite_differences():
    lens, label_lens = [6, 4, 5], [3, 2, 2]
    layout, params, X, y, arch = _network(12, lens, label_lens, cell="gru", num_layers=2,
                                          bidirectional=True)
    idx = [0, 1, 2]
    _, got = _kernel(layout, params, X, y, idx, n_threads=2)
    eps = 1e-6
    rng = np.random.default_rng(0)
    for name in ("rnn.weight_ih_l0", "rnn.weight_hh_l1_reverse", "head.weight", "head.bias"):
        for _ in range(4):
            j = tuple(rng.integers(0, s) for s in params[name].shape)
            p = {k: v.copy() for k, v in params.items()}
            p[name][j] += eps
            lp = _kernel(layout, p, X, y, idx)[0]
            p[name][j] -= 2 * eps
            lm = _kernel(layout, p, X, y, idx)[0]
            assert got[name][j] == pytest.approx((lp - lm) / (2 * eps), rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_train_step_matches_torch(dtype):
    """A bidirectional 2-layer LSTM + Linear + torch.nn.CTCLoss with the same
    weights: the same loss and gradients."""
    torch = pytest.importorskip("torch")
    lens, label_lens = [12, 5, 9, 7], [4, 2, 3, 0]
    layout, params, X, y, arch = _network(13, lens, label_lens, cell="lstm", num_layers=2,
                                          bidirectional=True)
    tt = torch.float32 if dtype == np.float32 else torch.float64
    rnn = torch.nn.LSTM(D, H, 2, batch_first=True, bidirectional=True).to(tt)
    head = torch.nn.Linear(2 * H, C).to(tt)
    with torch.no_grad():
        for k, v in params.items():
            mod, attr = (rnn, k[4:]) if k.startswith("rnn.") else (head, k[5:])
            getattr(mod, attr).copy_(torch.tensor(v))
    pad = torch.nn.utils.rnn.pad_sequence([torch.tensor(x, dtype=tt) for x in X],
                                          batch_first=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(pad, torch.tensor(lens), batch_first=True,
                                                     enforce_sorted=False)
    out, _ = rnn(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    logp = torch.log_softmax(head(out), -1).transpose(0, 1)
    tg = torch.nn.utils.rnn.pad_sequence([torch.tensor(t, dtype=torch.long) for t in y],
                                         batch_first=True, padding_value=1) \
        if max(label_lens) else torch.zeros(len(y), 1, dtype=torch.long)
    loss = torch.nn.CTCLoss()(logp, tg, torch.tensor(lens), torch.tensor(label_lens))
    loss.backward()
    got_loss, got = _kernel(layout, params, X, y, [0, 1, 2, 3], n_threads=2, dtype=dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-10
    assert got_loss == pytest.approx(loss.item(), rel=tol)
    for k in params:
        mod, attr = (rnn, k[4:]) if k.startswith("rnn.") else (head, k[5:])
        want = getattr(mod, attr).grad.numpy()
        assert _rel(got[k], want) < tol * 20, k


def test_train_step_refuses_bad_labelings():
    lens, label_lens = [5, 4], [2, 2]
    layout, params, X, y, arch = _network(14, lens, label_lens, cell="rnn", num_layers=1,
                                          bidirectional=False)
    y_bad = [np.array([1, C], np.int32), y[1]]
    with pytest.raises(ValueError, match="is not a class"):
        _kernel(layout, params, X, y_bad, [0, 1])
    y_blank = [np.array([0, 1], np.int32), y[1]]
    with pytest.raises(ValueError, match="other than the blank 0"):
        _kernel(layout, params, X, y_blank, [0, 1])
    with pytest.raises(ValueError, match="seq"):
        layout.config(False, LOSS_CTC, None)


def test_greedy_decoding_is_the_collapsed_most_probable_path():
    """crnn._speech.ctc.greedy_decode against a brute-force search over all C**T
    paths of tiny inputs: the single most probable path, collapsed."""
    from crnn._speech.ctc import greedy_decode
    rng = np.random.default_rng(8)
    cases = [rng.normal(0, 2, (T, 3)) for T in (1, 2, 4, 6, 6, 7)]
    z, start, lens, *_ = _flat([(c, np.zeros(0, np.int32)) for c in cases])
    labels, offs = greedy_decode(z, start, lens)
    for i, zi in enumerate(cases):
        logy = cref.log_softmax(zi)
        best = max(itertools.product(range(3), repeat=len(zi)),
                   key=lambda p: sum(logy[t, k] for t, k in enumerate(p)))
        assert tuple(labels[offs[i]:offs[i + 1]]) == cref.collapse(best), i
