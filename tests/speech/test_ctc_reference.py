"""The numpy CTC reference (tests/support/ctc_reference.py) is right: its forward
recursion matches the definition (a sum over all alignment paths), its loss
and gradient match torch.nn.CTCLoss and finite differences, it is stable on
long inputs, and its decoders agree with exhaustive search."""
import itertools

import numpy as np
import pytest

import ctc_reference as ref


def _random_case(rng, T, C, L, blank=0, n_labels=None):
    """Logits (T, C) and L labels drawn from ``n_labels`` non-blank classes
    (few, so that repeats are frequent)."""
    alphabet = [k for k in range(C) if k != blank][:n_labels]
    return rng.normal(0, 1.5, (T, C)), rng.choice(alphabet, L).astype(np.int64)


def _torch_ctc(logits_list, labels_list, blank, reduction, zero_infinity):
    """torch.nn.CTCLoss on the (T, N, C) padded batch, through log_softmax of
    the logits; returns the loss and the gradient of each sequence's logits
    (with the padded frames' gradient, which must be zero)."""
    torch = pytest.importorskip("torch")
    N, C = len(logits_list), logits_list[0].shape[1]
    T_max = max(1, max(z.shape[0] for z in logits_list))
    L_max = max(1, max(len(lab) for lab in labels_list))
    x = np.random.default_rng(99).normal(size=(T_max, N, C))     # padding: any value
    targets = np.full((N, L_max), 1 if blank != 1 else 0, dtype=np.int64)
    for i, (z, lab) in enumerate(zip(logits_list, labels_list)):
        x[:z.shape[0], i] = z
        targets[i, :len(lab)] = lab
    x = torch.tensor(x, requires_grad=True)
    loss = torch.nn.CTCLoss(blank=blank, reduction=reduction, zero_infinity=zero_infinity)(
        torch.log_softmax(x, dim=-1), torch.tensor(targets),
        torch.tensor([z.shape[0] for z in logits_list]),
        torch.tensor([len(lab) for lab in labels_list]))
    loss.sum().backward()
    g = x.grad.numpy()
    return loss.detach().numpy(), [g[:z.shape[0], i] for i, z in enumerate(logits_list)], \
        [g[z.shape[0]:, i] for i, z in enumerate(logits_list)]


# ------------------------------------------------------------ small helpers

def test_collapse_and_min_input_length():
    assert ref.collapse([1, 1, 0, 1, 2, 2, 0]) == (1, 1, 2)
    assert ref.collapse([0, 0, 0]) == ()
    assert ref.collapse([]) == ()
    assert ref.collapse([2, 0, 0, 1, 1], blank=1) == (2, 0)
    assert ref.min_input_length([]) == 0
    assert ref.min_input_length([1, 2, 3]) == 3
    assert ref.min_input_length([1, 1, 2, 2, 2, 1]) == 9
    np.testing.assert_array_equal(ref.extend_labels([3, 3], blank=0), [0, 3, 0, 3, 0])


def test_invalid_labels_rejected():
    z = np.zeros((3, 4))
    for bad in ([0], [4], [-1]):
        with pytest.raises(ValueError):
            ref.ctc_loss(z, bad)
    with pytest.raises(ValueError):
        ref.ctc_loss(z, [1], blank=4)
    with pytest.raises(ValueError):
        ref.ctc_loss_batch([z], [[1]], reduction="avg")


# ---------------------------------------------- recursion == the definition

@pytest.mark.parametrize("C", [2, 3, 4])
def test_recursion_matches_brute_force(C):
    rng = np.random.default_rng(C)
    n_checked = n_inf = 0
    for T in range(0, 7 if C < 4 else 6):
        for blank in sorted({0, C - 1}):
            z = rng.normal(0, 1.5, (T, C))
            dist = ref.brute_force_distribution(z, blank)
            # the distribution over labelings is a distribution
            assert np.logaddexp.reduce(list(dist.values())) == pytest.approx(0, abs=1e-12)
            alphabet = [k for k in range(C) if k != blank]
            for L in range(0, min(T + 2, 5)):
                for lab in itertools.product(alphabet, repeat=L):
                    lab = np.array(lab, dtype=np.int64)
                    loss = ref.ctc_loss(z, lab, blank)
                    expected = -dist.get(tuple(lab.tolist()), -np.inf)
                    if ref.min_input_length(lab) > T:
                        assert loss == np.inf and expected == np.inf
                        n_inf += 1
                    else:
                        assert np.isfinite(loss)
                        np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-13)
                    n_checked += 1
    assert n_checked >= 50 and n_inf >= 5
    # brute_force_ctc_loss is the same definition
    z = rng.normal(size=(4, C))
    lab = np.array([1] * min(2, C - 1), dtype=np.int64)
    assert ref.brute_force_ctc_loss(z, lab) == pytest.approx(ref.ctc_loss(z, lab), rel=1e-12)


def test_alpha_beta_identity():
    """sum_s alpha_t(s) beta_t(s) = p(l | x) at every frame t."""
    rng = np.random.default_rng(5)
    z, lab = _random_case(rng, 12, 5, 5, n_labels=2)
    logy = ref.log_softmax(z)
    ext = ref.extend_labels(lab)
    per_frame = np.logaddexp.reduce(ref.ctc_alpha(logy, ext) + ref.ctc_beta(logy, ext), axis=1)
    np.testing.assert_allclose(-per_frame, ref.ctc_loss(z, lab), rtol=1e-13)


# --------------------------------------------------------------- gradients

def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(7)
    eps = 1e-6
    for T, C, L, blank in [(1, 2, 0, 0), (1, 3, 1, 0), (4, 3, 2, 0), (5, 4, 3, 3),
                           (6, 3, 3, 1), (7, 5, 4, 0), (3, 2, 2, 1)]:
        z, lab = _random_case(rng, T, C, L, blank, n_labels=2)
        if ref.min_input_length(lab) > T:
            lab = lab[:1]
        loss, grad = ref.ctc_loss_and_grad(z, lab, blank)
        assert loss == pytest.approx(ref.ctc_loss(z, lab, blank), rel=1e-15)
        np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-14)
        fd = np.zeros_like(z)
        for i in np.ndindex(z.shape):
            zp, zm = z.copy(), z.copy()
            zp[i] += eps
            zm[i] -= eps
            fd[i] = (ref.ctc_loss(zp, lab, blank) - ref.ctc_loss(zm, lab, blank)) / (2 * eps)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8, err_msg=f"{T, C, L}")


def test_infinite_loss_gradient():
    z = np.random.default_rng(0).normal(size=(3, 4))
    loss, grad = ref.ctc_loss_and_grad(z, [1, 1, 2, 2])
    assert loss == np.inf and grad.shape == (3, 4) and np.all(np.isnan(grad))
    loss, grad = ref.ctc_loss_and_grad(z, [1, 1, 2, 2], zero_infinity=True)
    assert loss == 0 and np.all(grad == 0)
    # no frames: the empty labeling is certain, any other impossible
    assert ref.ctc_loss(np.zeros((0, 3)), []) == 0
    assert ref.ctc_loss(np.zeros((0, 3)), [2]) == np.inf


def test_batch_reductions():
    rng = np.random.default_rng(3)
    cases = [_random_case(rng, T, 4, L, n_labels=2) for T, L in [(6, 2), (5, 0), (8, 3)]]
    zs, labs = [c[0] for c in cases], [c[1] for c in cases]
    single = [ref.ctc_loss_and_grad(z, lab) for z, lab in zip(zs, labs)]
    losses, grads = ref.ctc_loss_batch(zs, labs, reduction="none")
    np.testing.assert_array_equal(losses, [s[0] for s in single])
    total, _ = ref.ctc_loss_batch(zs, labs, reduction="sum")
    assert total == pytest.approx(sum(s[0] for s in single), rel=1e-15)
    mean, mgrads = ref.ctc_loss_batch(zs, labs, reduction="mean")
    w = [1 / (2 * 3), 1 / (1 * 3), 1 / (3 * 3)]        # 1 / (max(L, 1) N)
    assert mean == pytest.approx(sum(wi * s[0] for wi, s in zip(w, single)), rel=1e-15)
    for g, mg, wi in zip(grads, mgrads, w):
        np.testing.assert_allclose(mg, wi * g, rtol=1e-15)


@pytest.mark.parametrize("zero_infinity", [False, True])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_matches_torch(reduction, zero_infinity):
    pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    for trial in range(6):
        C = int(rng.integers(2, 7))
        blank = int(rng.choice([0, C - 1]))
        N = int(rng.integers(1, 6))
        zs, labs = [], []
        for _ in range(N):
            T = int(rng.integers(0, 12))
            L = int(rng.integers(0, 7))
            z, lab = _random_case(rng, T, C, L, blank, n_labels=int(rng.integers(1, 3)))
            zs.append(z)
            labs.append(lab)
        if trial == 0:      # for sure: infeasible targets (inf), empty targets, T = 0
            label = 1 if blank == 0 else 0
            zs[0], labs[0] = rng.normal(size=(3, C)), np.array([label] * 3)
            labs[-1] = labs[-1][:0]
            zs += [np.zeros((0, C)), np.zeros((0, C))]
            labs += [np.zeros(0, np.int64), np.array([label])]
        loss, grads = ref.ctc_loss_batch(zs, labs, blank, reduction, zero_infinity)
        tloss, tgrads, tpad = _torch_ctc(zs, labs, blank, reduction, zero_infinity)
        np.testing.assert_allclose(loss, tloss, rtol=1e-10, atol=1e-13)
        if trial == 0:
            assert np.all(np.isfinite(loss)) == zero_infinity
            assert np.all(np.isnan(grads[0])) != zero_infinity
        for g, tg, pad in zip(grads, tgrads, tpad):
            np.testing.assert_allclose(g, tg, rtol=1e-8, atol=1e-12)   # NaN == NaN
            assert np.all(pad == 0)


def test_torch_infinite_loss_behaviour():
    """What the module docstring says torch does for an infeasible target."""
    pytest.importorskip("torch")
    z = np.random.default_rng(1).normal(size=(3, 4))
    ok_z, ok_lab = np.random.default_rng(2).normal(size=(3, 4)), np.array([1, 2])
    for zero_infinity in (False, True):
        tloss, tgrads, _ = _torch_ctc([z, ok_z], [np.array([1, 1, 2, 2]), ok_lab],
                                      0, "none", zero_infinity)
        assert np.all(np.isfinite(tgrads[1]))
        if zero_infinity:
            assert tloss[0] == 0 and np.all(tgrads[0] == 0)
        else:
            assert tloss[0] == np.inf and np.all(np.isnan(tgrads[0]))


def test_long_sequence_stable():
    """T = 2000 frames, 300 labels with repeats: p(l | x) ~ exp(-thousands)
    underflows in linear space, not in log space."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(2000)
    z, lab = _random_case(rng, 2000, 30, 300, n_labels=4)
    assert np.count_nonzero(lab[1:] == lab[:-1]) > 30
    loss, grad = ref.ctc_loss_and_grad(z, lab)
    assert np.isfinite(loss) and loss > 1000
    assert np.all(np.isfinite(grad))
    # rows sum to 1 - sum_s gamma_t(s) = 0 up to the roundoff of log p (~1e-15 relative)
    np.testing.assert_allclose(grad.sum(axis=1), 0, atol=1e-10)
    tloss, tgrads, _ = _torch_ctc([z], [lab], 0, "sum", False)
    np.testing.assert_allclose(loss, tloss, rtol=1e-9)
    np.testing.assert_allclose(grad, tgrads[0], rtol=1e-7, atol=1e-10)


# ----------------------------------------------------------------- decoding

def _one_hot_logits(path, C):
    z = np.zeros((len(path), C))
    z[np.arange(len(path)), path] = 5.0
    return z


@pytest.mark.parametrize("path, blank, expected", [
    ([1, 0, 1], 0, [1, 1]),                  # a blank separates two copies
    ([1, 1, 1], 0, [1]),                     # a run merges
    ([0, 0], 0, []),
    ([1, 1, 0, 2, 2, 0, 0, 2, 3], 0, [1, 2, 2, 3]),
    ([0, 3, 3, 0, 3, 1], 3, [0, 0, 1]),      # blank = 3: drops 3, keeps 0
    ([], 0, []),
])
def test_best_path_decode(path, blank, expected):
    out = ref.best_path_decode(_one_hot_logits(path, 4), blank)
    assert out.dtype == np.int64
    assert out.tolist() == expected


def test_best_path_decode_ties_take_first():
    assert ref.best_path_decode(np.array([[1.0, 1.0], [0.0, 2.0]])).tolist() == [1]


def test_prefix_beam_search_exhaustive_is_exact():
    rng = np.random.default_rng(17)
    n_nonempty = 0
    for trial in range(40):
        T, C = int(rng.integers(0, 6)), int(rng.integers(2, 4))
        blank = int(rng.choice([0, C - 1]))
        z = rng.normal(0, 2.0, (T, C))
        labels, lp = ref.prefix_beam_search(z, beam_size=1000, blank=blank)
        best, best_lp = ref.most_likely_labeling_brute_force(z, T, blank=blank)
        assert labels.tolist() == best.tolist()
        np.testing.assert_allclose(lp, best_lp, rtol=1e-12, atol=1e-13)
        assert lp == pytest.approx(-ref.ctc_loss(z, labels, blank), rel=1e-12, abs=1e-13)
        n_nonempty += len(labels) > 0
        narrow, narrow_lp = ref.prefix_beam_search(z, beam_size=1, blank=blank)
        assert blank not in labels.tolist() and blank not in narrow.tolist()
        assert narrow_lp <= best_lp + 1e-12
        # a pruned score is a lower bound of the labeling's probability
        assert narrow_lp <= -ref.ctc_loss(z, narrow, blank) + 1e-12
    assert n_nonempty > 10


def test_prefix_beam_search_beats_best_path():
    """The classic case: the best path is blank-blank (p = 0.36), but the
    labeling (1,) collects 0.64 over its paths 1-1, 1-b, b-1."""
    z = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert ref.best_path_decode(z).tolist() == []
    labels, lp = ref.prefix_beam_search(z, beam_size=2)
    assert labels.tolist() == [1]
    assert np.exp(lp) == pytest.approx(0.64, rel=1e-14)
    with pytest.raises(ValueError):
        ref.prefix_beam_search(z, beam_size=0)
