"""The encoder-decoder kernels (crnn._kernels.s2s_*) against the independent
references of tests/support/seq2seq_reference.py: the numpy float64 model (loss,
every gradient, per-token losses, attention weights, greedy decoding),
finite differences (a two-layer encoder, which the reference does not
have), and the PyTorch model in float32 (loss, gradients, one SGD step)."""
import numpy as np
import pytest

import seq2seq_reference as ref
from crnn import _kernels
from crnn._nn.seq2seq import Pairs, Seq2SeqLayout

ARCHS = [(cell, bidir, att) for cell in ("gru", "lstm") for bidir in (False, True)
         for att in (None, "bahdanau", "luong")]
IDS = [f"{c}-{'bi' if b else 'uni'}-{a}" for c, b, a in ARCHS]
SIZES = dict(Vs=7, Vt=9, E=5, H=6, A=4)
BOS, EOS = 1, 2


def _layout(cell, bidir, att, num_layers=1, sizes=SIZES):
    return Seq2SeqLayout(cell, num_layers, 2 if bidir else 1, sizes["H"], sizes["Vs"],
                         sizes["Vt"], sizes["E"], att, sizes["A"] if att == "bahdanau" else 0)


def _theta(layout, params, dtype=np.float64):
    theta = np.zeros(layout.n_params, dtype=dtype)
    views = layout.views(theta)
    assert set(views) == set(params)
    for k, v in views.items():
        v[...] = params[k]
    return theta


def _data(rng, n, Vs=SIZES["Vs"], Vt=SIZES["Vt"], max_src=6, max_tgt=5):
    src = [rng.integers(0, Vs, rng.integers(1, max_src + 1)) for _ in range(n)]
    tgt = [rng.integers(0, Vt, rng.integers(0, max_tgt + 1)) for _ in range(n)]
    return src, tgt


def _train(layout, theta, src, tgt, n_shards=1, n_threads=1, dtype=np.float64, dropout=0.0,
           seed=0):
    cfg = layout.config(dropout=dropout)
    pr = Pairs(src, tgt, dtype)
    idx, didx, dec_enc, off = pr.shards(np.arange(len(src)), n_shards)
    T, K, B = int(pr.lens.max()), int(pr.klen.max()), int(np.diff(off).max())
    S = len(off) - 1
    ws = np.zeros((S, cfg.workspace_size(B, T, K, True)), dtype)
    iws = np.zeros((S, cfg.index_workspace_size(B, T, K, True)), np.intp)
    grads = np.zeros((S, layout.n_params), dtype)
    loss = _kernels.s2s_train_step(cfg, theta.astype(dtype), grads, pr.X, pr.start, pr.lens,
                                   pr.tgt, pr.tstart, pr.klen, idx, didx, dec_enc, off, BOS,
                                   EOS, ws, iws, T, K, B, n_threads, seed=seed)
    return loss, grads.sum(axis=0)


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
@pytest.mark.parametrize("n_shards,n_threads", [(1, 1), (3, 2)])
def test_loss_and_gradients_match_numpy_reference(arch, n_shards, n_threads):
    cell, bidir, att = arch
    rng = np.random.default_rng(0)
    params = ref.init_params(rng, cell=cell, bidirectional=bidir, attention=att, **SIZES)
    src, tgt = _data(rng, 7)
    layout = _layout(*arch)
    loss, grad = _train(layout, _theta(layout, params), src, tgt, n_shards, n_threads)
    loss_ref, g_ref = ref.loss_and_grads(params, src, tgt, cell=cell, bidirectional=bidir,
                                         attention=att, bos=BOS, eos=EOS)
    assert loss == pytest.approx(loss_ref, rel=1e-12)
    for name, g in layout.views(grad).items():
        np.testing.assert_allclose(g, g_ref[name], rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("att", [None, "bahdanau", "luong"])
def test_two_layer_encoder_matches_finite_differences(cell, att):
    rng = np.random.default_rng(3)
    layout = _layout(cell, True, att, num_layers=2)
    theta = layout.init_params(rng, np.float64)
    src, tgt = _data(rng, 4)
    _, grad = _train(layout, theta, src, tgt, n_shards=2)
    eps = 1e-6
    for name, off, shape, _ in layout.tensors():
        size = int(np.prod(shape))
        for i in rng.choice(size, min(size, 3), replace=False):
            t = theta.copy()
            t[off + i] += eps
            up, _ = _train(layout, t, src, tgt)
            t[off + i] -= 2 * eps
            down, _ = _train(layout, t, src, tgt)
            fd = (up - down) / (2 * eps)
            assert grad[off + i] == pytest.approx(fd, rel=1e-5, abs=1e-8), (name, i)


def test_gradient_is_the_sum_over_shards_and_independent_of_threads():
    rng = np.random.default_rng(5)
    layout = _layout("lstm", True, "bahdanau")
    theta = layout.init_params(rng, np.float64)
    src, tgt = _data(rng, 11)
    l1, g1 = _train(layout, theta, src, tgt, 1, 1)
    for shards, threads in ((2, 2), (4, 2), (11, 2)):
        l2, g2 = _train(layout, theta, src, tgt, shards, threads)
        assert l2 == pytest.approx(l1, rel=1e-12)
        np.testing.assert_allclose(g2, g1, rtol=1e-10, atol=1e-14)


def _forward(layout, theta, src, tgt, n_shards=2, dtype=np.float64):
    cfg = layout.config()
    pr = Pairs(src, tgt, dtype)
    idx, didx, dec_enc, off = pr.shards(np.arange(len(src)), n_shards)
    T, K, B = int(pr.lens.max()), int(pr.klen.max()), int(np.diff(off).max())
    ostart = np.concatenate([[0], np.cumsum(pr.klen)[:-1]]).astype(np.intp)
    tok = np.zeros(int(pr.klen.sum()), dtype)
    att = np.full((len(tok), T), -1.0, dtype)
    ws = np.zeros((2, cfg.workspace_size(B, T, K, True)), dtype)
    iws = np.zeros((2, cfg.index_workspace_size(B, T, K, True)), np.intp)
    total = _kernels.s2s_forward(cfg, theta.astype(dtype), pr.X, pr.start, pr.lens, pr.tgt,
                                 pr.tstart, pr.klen, idx, didx, dec_enc, off, BOS, EOS, ostart,
                                 tok, att, ws, iws, T, K, B, 2)
    return total, tok, att, ostart, pr


@pytest.mark.parametrize("att", [None, "bahdanau", "luong"])
def test_forward_token_losses_and_attention_weights(att):
    rng = np.random.default_rng(7)
    params = ref.init_params(rng, cell="gru", bidirectional=True, attention=att, **SIZES)
    src, tgt = _data(rng, 6)
    layout = _layout("gru", True, att)
    total, tok, weights, ostart, pr = _forward(layout, _theta(layout, params), src, tgt)
    _, cache = ref.forward(params, src, tgt, cell="gru", bidirectional=True, attention=att,
                           bos=BOS, eos=EOS)
    for s in range(len(src)):
        rows = slice(ostart[s], ostart[s] + pr.klen[s])
        np.testing.assert_allclose(tok[rows], cache["token_losses"][s], rtol=1e-12)
        if att is None:
            assert (weights[rows] == -1).all()
        else:
            np.testing.assert_allclose(weights[rows, :len(src[s])], cache["attention"][s],
                                       rtol=1e-12, atol=1e-15)
            assert (weights[rows, len(src[s]):] == -1).all()      # untouched past the source
    assert total == pytest.approx(sum(t.sum() for t in cache["token_losses"]), rel=1e-12)


def _greedy(layout, theta, src, maxlen, chunk=5, n_threads=2, dtype=np.float64):
    cfg = layout.config()
    pr = Pairs(src, None, dtype)
    n = len(src)
    idx = np.arange(n)
    parts = [idx[i:i + chunk] for i in range(0, n, chunk)]
    idx = np.concatenate([p[np.argsort(-pr.lens[p], kind="stable")] for p in parts])
    offs = np.array([0] + [min(i + chunk, n) for i in range(0, n, chunk)], dtype=np.intp)
    T = int(pr.lens.max())
    maxlen = np.broadcast_to(np.asarray(maxlen, dtype=np.intp), (n,)).copy()
    ws = np.zeros((n_threads, cfg.workspace_size(chunk, T, 1, False)), dtype)
    iws = np.zeros((n_threads, cfg.index_workspace_size(chunk, T, 1, False)), np.intp)
    out = np.full((n, max(1, int(maxlen.max()))), -1, np.int32)
    outlen = np.zeros(n, np.intp)
    _kernels.s2s_greedy(cfg, theta.astype(dtype), pr.X, pr.start, pr.lens, idx, offs, BOS,
                        EOS, maxlen, out, outlen, ws, iws, T, chunk, n_threads)
    return [out[i, :outlen[i]] for i in range(n)]


def _varied_decoder(arch, n=23):
    """Reference parameters (and sources) whose greedy translations stop at
    several different steps: random weights mostly give all-EOS or never-EOS
    decoders, so the scale and the EOS bias are searched."""
    cell, bidir, att = arch
    best = None
    for seed in (11, 12, 13):
        for scale in (0.6, 1.0, 1.5):
            rng = np.random.default_rng(seed)
            params = ref.init_params(rng, cell=cell, bidirectional=bidir, attention=att,
                                     scale=scale, **SIZES)
            src, _ = _data(rng, n, max_src=8)
            eos_bias = params["head.bias"][EOS]
            for shift in np.linspace(-2, 3, 11):
                params["head.bias"][EOS] = eos_bias + shift
                want = ref.greedy_decode(params, src, cell=cell, bidirectional=bidir,
                                         attention=att, bos=BOS, eos=EOS, max_len=7)
                kinds = len({len(w) for w in want})
                if best is None or kinds > best[0]:
                    best = (kinds, {k: v.copy() for k, v in params.items()}, src, want)
                if kinds >= 3:
                    return best[1:]
    return best[1:]


@pytest.mark.parametrize("arch", ARCHS, ids=IDS)
def test_greedy_decoding_matches_reference(arch):
    params, src, want = _varied_decoder(arch)
    assert len({len(w) for w in want}) >= 2
    layout = _layout(*arch)
    got = _greedy(layout, _theta(layout, params), src, 7)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_greedy_per_sentence_limits_and_thread_independence():
    rng = np.random.default_rng(12)
    layout = _layout("lstm", True, "luong")
    theta = layout.init_params(rng, np.float64)
    src, _ = _data(rng, 17, max_src=8)
    maxlen = rng.integers(0, 6, 17)
    a = _greedy(layout, theta, src, maxlen, chunk=4, n_threads=1)
    b = _greedy(layout, theta, src, maxlen, chunk=17, n_threads=2)
    full = _greedy(layout, theta, src, 6)
    for x, y, f, m in zip(a, b, full, maxlen):
        np.testing.assert_array_equal(x, y)
        assert len(x) <= m
        np.testing.assert_array_equal(x, f[:len(x)])   # a prefix of the unlimited run
        if len(x) < m:
            assert len(f) == len(x)                     # stopped at EOS, not at the limit


@pytest.mark.parametrize("arch", [("gru", True, "bahdanau"), ("lstm", False, "luong"),
                                  ("lstm", True, None)], ids=str)
def test_float32_matches_torch_and_one_sgd_step(arch):
    torch = pytest.importorskip("torch")
    cell, bidir, att = arch
    rng = np.random.default_rng(13)
    layout = _layout(cell, bidir, att)
    theta = layout.init_params(rng, np.float32)
    params = {k: v.astype(np.float64) for k, v in layout.views(theta).items()}
    src, tgt = _data(rng, 9)
    model = ref.TorchSeq2Seq(cell=cell, bidirectional=bidir, attention=att, **SIZES)
    model.load_numpy(params).float()
    loss_t = model.loss(src, tgt, BOS, EOS)
    loss_t.backward()
    loss, grad = _train(layout, theta, src, tgt, n_shards=2, n_threads=2, dtype=np.float32)
    assert loss == pytest.approx(loss_t.item(), rel=1e-5)
    g_t = {k: p.grad.numpy() for k, p in model.named_parameters()}
    for name, g in layout.views(grad).items():
        scale = np.abs(g_t[name]).max() + 1e-6
        np.testing.assert_allclose(g / scale, g_t[name] / scale, atol=2e-5, err_msg=name)
    # one SGD step on both sides, then the loss again
    lr = 0.5
    with torch.no_grad():
        for p in model.parameters():
            p -= lr * p.grad
    theta2 = theta - np.float32(lr) * grad
    loss2, _ = _train(layout, theta2, src, tgt, dtype=np.float32)
    assert loss2 == pytest.approx(model.loss(src, tgt, BOS, EOS).item(), rel=1e-5)
    assert loss2 < loss


def test_bad_batches_are_refused():
    rng = np.random.default_rng(17)
    layout = _layout("gru", True, "bahdanau")
    theta = layout.init_params(rng, np.float64)
    cfg = layout.config()
    src, tgt = _data(rng, 4)
    pr = Pairs(src, tgt, np.float64)
    idx, didx, dec_enc, off = pr.shards(np.arange(4), 1)
    T, K, B = int(pr.lens.max()), int(pr.klen.max()), 4
    ws = np.zeros((1, cfg.workspace_size(B, T, K, True)))
    iws = np.zeros((1, cfg.index_workspace_size(B, T, K, True)), np.intp)
    grads = np.zeros((1, layout.n_params))

    def call(X=pr.X, tgt_=pr.tgt, idx_=idx, didx_=didx, de=dec_enc, K_=K, bos=BOS, ws_=ws):
        return _kernels.s2s_train_step(cfg, theta, grads, X, pr.start, pr.lens, tgt_,
                                       pr.tstart, pr.klen, idx_, didx_, de, off, bos,
                                       EOS, ws_, iws, T, K_, B, 1)

    call()
    with pytest.raises(ValueError, match="token id"):
        call(X=np.where(np.arange(len(pr.X))[:, None] == 0, 99.0, pr.X))
    bad = pr.tgt.copy()
    bad[0] = 50
    if pr.klen[0] > 1:
        with pytest.raises(ValueError, match="target token id 50"):
            call(tgt_=bad)
    if len(set(pr.lens)) > 1:
        with pytest.raises(ValueError, match="sorted by decreasing length"):
            call(idx_=idx[::-1].copy(), de=(B - 1 - dec_enc).astype(np.intp))
    with pytest.raises(ValueError, match="decoder order"):
        call(didx_=np.roll(didx, 1))
    with pytest.raises(ValueError, match="workspace"):
        call(K_=K - 1 if K > 1 else 0)
    with pytest.raises(ValueError, match="BOS / EOS"):
        call(bos=9)
    with pytest.raises(ValueError, match="workspace too small"):
        call(ws_=ws[:, :10].copy())


@pytest.mark.parametrize("arch", [("gru", True, "bahdanau"), ("lstm", False, "luong"),
                                  ("lstm", True, None)], ids=str)
def test_step_kernel_follows_the_training_forward_pass(arch):
    """s2s_encode + s2s_step (beam search's kernels), stepping rows that
    reorder and duplicate their parents, give the probabilities the
    teacher-forced forward pass gives along the same target sentences."""
    rng = np.random.default_rng(19)
    layout = _layout(*arch)
    theta = layout.init_params(rng, np.float64)
    src, tgt = _data(rng, 5)
    total, tok, _, ostart, pr = _forward(layout, theta, src, tgt)
    cfg = layout.config()
    order = np.argsort(-pr.lens, kind="stable").astype(np.intp)
    T, n, beam = int(pr.lens.max()), len(src), 3
    R = n * beam
    ws = np.zeros(cfg.workspace_size(R, T, 1, False))
    iws = np.zeros(cfg.index_workspace_size(R, T, 1, False), np.intp)
    _kernels.s2s_encode(cfg, theta, pr.X, pr.start, pr.lens, order, ws, iws, T, R)
    # every sentence as `beam` copies (rows of sentence order[i] are i*beam..),
    # reversed at each step so that parents really move rows around
    rows = np.repeat(np.arange(n), beam)                    # memory row of each row
    parents = rows.copy()
    n_prev, first = n, True
    K = int(pr.klen.max())
    for k in range(K):
        sent = order[rows]
        tokens = np.array([BOS if k == 0 else (tgt[s][k - 1] if k - 1 < len(tgt[s]) else 0)
                           for s in sent], dtype=np.intp)
        logp = np.empty((R, SIZES["Vt"]))
        _kernels.s2s_step(cfg, theta, ws, iws, T, R, n_prev, first, tokens,
                          parents.astype(np.intp), logp)
        for r, s in enumerate(sent):
            if k < pr.klen[s]:
                want = tgt[s][k] if k < len(tgt[s]) else EOS
                assert -logp[r, want] == pytest.approx(tok[ostart[s] + k], rel=1e-10)
        np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-12)
        perm = np.arange(R)[::-1]                           # next rows: reversed
        parents, rows = perm, rows[perm]
        n_prev, first = R, False
    with pytest.raises(IndexError, match="parent"):
        _kernels.s2s_step(cfg, theta, ws, iws, T, R, 2, False, np.zeros(3, np.intp),
                          np.array([0, 1, 2], np.intp), np.empty((3, SIZES["Vt"])))
