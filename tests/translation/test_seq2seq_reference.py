"""The numpy encoder-decoder reference (tests/support/seq2seq_reference.py) is right:
its hand-written gradients match finite differences and PyTorch's autograd,
its loss matches PyTorch's, and each sentence is computed as if alone."""
import itertools

import numpy as np
import pytest

import seq2seq_reference as ref

DIMS = dict(Vs=7, Vt=9, E=4, H=5, A=3)
BOS, EOS = 1, 2
ARCHS = [dict(cell=c, bidirectional=b, attention=a) for c, b, a in
         itertools.product(["gru", "lstm"], [False, True], ["bahdanau", "luong", None])]
ARCH_IDS = [f"{a['cell']}-{'bi' if a['bidirectional'] else 'uni'}-{a['attention']}"
            for a in ARCHS]


def _batch(seed=0):
    """Ragged sentences: a source of length 1, an empty target."""
    rng = np.random.default_rng(seed)
    src = [rng.integers(0, DIMS["Vs"], n) for n in (1, 5, 3, 2)]
    tgt = [rng.integers(0, DIMS["Vt"], n) for n in (3, 0, 5, 2)]
    return src, tgt


def _params(arch, seed=1):
    return ref.init_params(np.random.default_rng(seed), **DIMS, **arch, scale=0.5)


def _kw(arch):
    return dict(arch, bos=BOS, eos=EOS)


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_backward_matches_finite_differences(arch):
    src, tgt = _batch()
    params = _params(arch)
    _, grads = ref.loss_and_grads(params, src, tgt, **_kw(arch))
    assert grads.keys() == params.keys()
    eps = 1e-5      # central differences: error ~5e-11 here (1e-6: ~5e-10, roundoff)
    for name, p in params.items():
        assert grads[name].shape == p.shape
        fd = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = ref.forward(params, src, tgt, **_kw(arch))[0]
            p[i] = old - eps
            down = ref.forward(params, src, tgt, **_kw(arch))[0]
            p[i] = old
            fd[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[name], fd, rtol=1e-6, atol=5e-10, err_msg=name)


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_torch_matches_reference(arch):
    torch = pytest.importorskip("torch")
    src, tgt = _batch()
    params = _params(arch)
    loss, cache = ref.forward(params, src, tgt, **_kw(arch))
    grads = ref.backward(params, cache)
    net = ref.TorchSeq2Seq(**DIMS, **arch).load_numpy(params)
    tloss = net.loss(src, tgt, BOS, EOS)
    tloss.backward()
    np.testing.assert_allclose(tloss.item(), loss, rtol=1e-10)
    tgrads = {k: v.grad.numpy() for k, v in net.named_parameters()}
    assert tgrads.keys() == grads.keys()
    for k in grads:
        np.testing.assert_allclose(grads[k], tgrads[k], rtol=1e-8, atol=1e-12, err_msg=k)
    with torch.no_grad():
        logits, targets, mask, _ = net(src, tgt, BOS, EOS)
    for b, y in enumerate(tgt):
        n = len(y) + 1
        assert mask[b].sum() == n
        np.testing.assert_array_equal(targets[b, :n].numpy(), cache["targets"][b])
        np.testing.assert_allclose(logits[b, :n].numpy(), cache["logits"][b], rtol=1e-10,
                                   atol=1e-12)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_attention_weights_masked_and_normalized(attention, bidirectional):
    torch = pytest.importorskip("torch")
    arch = dict(cell="gru", bidirectional=bidirectional, attention=attention)
    src, tgt = _batch()
    params = _params(arch)
    _, cache = ref.forward(params, src, tgt, **_kw(arch))
    with torch.no_grad():
        padded = ref.TorchSeq2Seq(**DIMS, **arch).load_numpy(params)(
            src, tgt, BOS, EOS)[3].numpy()
    assert padded.shape == (len(src), max(map(len, tgt)) + 1, max(map(len, src)))
    for b, (x, y) in enumerate(zip(src, tgt)):
        alpha = cache["attention"][b]
        assert alpha.shape == (len(y) + 1, len(x))
        assert np.all(alpha > 0)
        np.testing.assert_allclose(alpha.sum(axis=1), 1, rtol=1e-14)
        # PyTorch's padded batch: the same weights, exact zeros on the padding
        np.testing.assert_allclose(padded[b, :len(y) + 1, :len(x)], alpha, rtol=1e-10)
        assert np.all(padded[b, :, len(x):] == 0)
    plain_arch = arch | dict(attention=None)
    _, plain = ref.forward(_params(plain_arch), src, tgt, **_kw(plain_arch))
    assert plain["attention"] == [None] * len(src)


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_sentence_independent_of_batch(arch):
    src, tgt = _batch()
    params = _params(arch)
    _, cache = ref.forward(params, src, tgt, **_kw(arch))
    g_batch = ref.backward(params, cache)
    total = {k: np.zeros_like(v) for k, v in params.items()}
    for b in range(len(src)):
        loss, alone = ref.forward(params, [src[b]], [tgt[b]], **_kw(arch))
        np.testing.assert_allclose(alone["token_losses"][0], cache["token_losses"][b],
                                   rtol=1e-14)
        np.testing.assert_allclose(alone["logits"][0], cache["logits"][b], rtol=1e-14)
        assert loss == pytest.approx(alone["token_losses"][0].mean(), rel=1e-14)
        for k, g in ref.backward(params, alone).items():
            total[k] += g * alone["N"]
    # the batch's gradient: the token-weighted mean of the sentences' gradients
    for k in params:
        np.testing.assert_allclose(g_batch[k] * cache["N"], total[k], rtol=1e-10, atol=1e-14)
    # and the same sentences in another order and company
    order = [2, 0, 3, 1]
    _, other = ref.forward(params, [src[i] for i in order] + src[:1],
                           [tgt[i] for i in order] + tgt[:1], **_kw(arch))
    for j, i in enumerate(order):
        np.testing.assert_allclose(other["token_losses"][j], cache["token_losses"][i],
                                   rtol=1e-14)


@pytest.mark.parametrize("arch", ARCHS, ids=ARCH_IDS)
def test_greedy_decode_stops_at_eos_and_respects_max_len(arch):
    src = [np.array([3]), np.array([5, 6, 4]), np.array([0, 1])]
    tgt = [np.array([4, 5, 3]), np.array([6]), np.array([7, 7, 8, 0])]
    params = _params(arch, seed=4)
    kw = dict(_kw(arch), max_len=6)
    # EOS always wins: every sentence stops at once; EOS never wins: max_len
    # tokens each (none of them EOS)
    for eos_bias, lengths in [(50, [0, 0, 0]), (-50, [6, 6, 6])]:
        biased = params | {"head.bias": params["head.bias"].copy()}
        biased["head.bias"][EOS] = eos_bias
        outs = ref.greedy_decode(biased, src, **kw)
        assert [len(o) for o in outs] == lengths and not any(EOS in o for o in outs)
        assert [len(o) for o in ref.greedy_decode(biased, src, **(kw | dict(max_len=2)))] \
            == [min(n, 2) for n in lengths]
    assert all(len(o) == 0 for o in ref.greedy_decode(biased, src, **(kw | dict(max_len=0))))
    # taught the pairs by gradient descent on the reference's own gradients, it
    # emits each target and stops at EOS, in the middle of the max_len steps
    for it in range(400):
        _, grads = ref.loss_and_grads(params, src, tgt, **_kw(arch))
        for k in params:
            params[k] -= grads[k]
        outs = ref.greedy_decode(params, src, **kw)
        if all(np.array_equal(o, y) for o, y in zip(outs, tgt)):
            break
    for o, y in zip(outs, tgt):
        np.testing.assert_array_equal(o, y)
    for o, y in zip(ref.greedy_decode(params, src, **(kw | dict(max_len=2))), tgt):
        np.testing.assert_array_equal(o, y[:2])
    # each emitted token is the argmax of the teacher-forced logits, and EOS
    # the argmax after the last one
    _, cache = ref.forward(params, src, outs, **_kw(arch))
    for o, logits in zip(outs, cache["logits"]):
        np.testing.assert_array_equal(np.argmax(logits, axis=1), np.append(o, EOS))
