"""compute_dtype="bfloat16": the bfloat16 products against numpy, the
network against the plain-numpy reference with bfloat16 products, and the
estimators (accuracy against float32, training, errors).  Skipped on CPUs
without AVX512-BF16, except the refusal tests."""
import itertools
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import reference as ref
from kernel_helpers import BF16, kernel_loss_grad, kernel_predict, make_layout, simd
from crnn import RNNClassifier, RNNRegressor, _kernel_hooks, _kernels

needs_bf16 = pytest.mark.skipif(not _kernels.bf16_supported(),
                                reason="this CPU has no AVX512-BF16")


def _bound(a, b):
    """|a| |b| with bfloat16 operands: the scale of a product's rounding."""
    return np.abs(ref.bf16(a).astype(np.float64)) @ np.abs(ref.bf16(b).astype(np.float64))


# ---------------------------------------------------------------------------
# the products


@needs_bf16
def test_rounding_is_the_hardware_rounding():
    """Every operand is rounded as vcvtneps2bf16 does (ties to even,
    subnormals to zero, NaN kept, overflow to infinity): x * 1 through the
    general product against the numpy model of the rounding."""
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, size=4000, dtype=np.uint64).astype(np.uint32)
    special = np.array([1.0, -1.0, 1 + 2**-8, 1 + 3 * 2**-8, 1 + 2**-8 + 2**-20, 1e-40,
                        -1e-40, 1.2e-38, np.inf, -np.inf, np.nan, 3.4e38, -3.4e38,
                        3.3895e38, 65504.0], np.float32)
    x = np.concatenate([bits.view(np.float32), special])
    out = np.zeros((x.size, 1), np.float32)
    _kernel_hooks.packed_gemm(BF16, False, False, x[:, None].copy(),
                              np.ones((1, 1), np.float32), out)
    want = ref.bf16(x)
    np.testing.assert_array_equal(out[:, 0], want + np.float32(0))   # -0 + 0 is +0
    w = want[bits.size:]
    assert w[2] == 1 and w[3] == 1 + 4 * 2**-8 and w[4] == 1 + 2**-7   # ties to even
    assert w[5] == 0 and np.isinf(w[11]) and w[13] < np.inf            # DAZ, overflow


@needs_bf16
@pytest.mark.parametrize("trans_a,trans_b", list(itertools.product([False, True], repeat=2)))
@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 7), (8, 32, 16), (17, 33, 31),
                                   (9, 70, 4100), (2, 1, 2), (40, 64, 0), (1, 50, 300),
                                   (130, 20, 9)])
@pytest.mark.parametrize("beta", [0.0, 1.0])
def test_general_product_matches_numpy(trans_a, trans_b, shape, beta):
    """C = op(A) op(B) + beta C: exact products of the rounded operands,
    summed in float32 (K = 4100 crosses two chunks of 2048; M = 1 is the
    transposed problem)."""
    M, N, K = shape
    rng = np.random.default_rng(M * 1000 + N + K)
    A = rng.standard_normal((K, M) if trans_a else (M, K)).astype(np.float32)
    B = rng.standard_normal((N, K) if trans_b else (K, N)).astype(np.float32)
    C0 = rng.standard_normal((M, N)).astype(np.float32)
    C = C0.copy()
    _kernel_hooks.packed_gemm(BF16, trans_a, trans_b, A, B, C, beta)
    a, b = (A.T if trans_a else A), (B.T if trans_b else B)
    want = ref.bf16_matmul(a, b) + beta * C0
    err = np.abs(C - want) / (_bound(a, b) + np.abs(C0) + 1e-30)
    assert err.max() < 1e-6 * max(1.0, np.sqrt(K))
    # the rounding matters: the float32 product is further away
    if K >= 16:
        assert np.abs(C - (a @ b + beta * C0)).max() > 10 * np.abs(C - want).max()
    with pytest.raises(ValueError, match="beta"):
        _kernel_hooks.packed_gemm(BF16, trans_a, trans_b, A, B, C, 0.5)


@needs_bf16
@pytest.mark.parametrize("M,G,Hs,K,u0,u1", [
    (1, 4, 64, 64, 0, 64), (1, 4, 70, 33, 32, 70), (1, 1, 200, 9, 0, 200),
    (5, 3, 40, 17, 0, 40), (9, 1, 100, 512, 32, 99), (16, 4, 96, 130, 0, 96),
    (3, 4, 32, 1, 0, 32)])
def test_packed_product_matches_numpy(M, G, Hs, K, u0, u1):
    """The time loop's packed product on its unit slice [u0, u1) of every
    gate: other columns untouched; beta0 false accumulates."""
    rng = np.random.default_rng(M + G + Hs + K)
    A = rng.standard_normal((M, K)).astype(np.float32)
    W = rng.standard_normal((G * Hs, K)).astype(np.float32)
    C = np.full((M, G * Hs), 7.0, np.float32)
    _kernel_hooks.bf16_rgemm(A, W, C, G, u0, u1, True)
    cols = np.concatenate([g * Hs + np.arange(u0, u1) for g in range(G)])
    others = np.setdiff1d(np.arange(G * Hs), cols)
    assert np.all(C[:, others] == 7.0)
    want = ref.bf16_matmul(A, W.T)
    err = np.abs(C - want)[:, cols] / _bound(A, W.T)[:, cols]
    assert err.max() < 1e-6 * max(1.0, np.sqrt(K))
    C2 = C.copy()
    _kernel_hooks.bf16_rgemm(A, W, C2, G, u0, u1, False)
    np.testing.assert_allclose(C2[:, cols], 2 * C[:, cols], rtol=1e-6)


@needs_bf16
@pytest.mark.parametrize("product", ["packed", "general", "general_at"])
def test_row_blocks_of_every_size(product):
    """Every number of rows from 2 to 29, at the start and at the end of a
    30-row problem: register blocks of 8 rows, tails of 6 to 11 (and the
    narrow ones below 6 rows), in the time loop's packed product and the
    general one (A as given or transposed).  The values match numpy on the
    rounded operands, and each row has the same bits whatever block it falls
    in."""
    rng = np.random.default_rng(30)
    R, K, G, Hs = 30, 71, 4, 40
    A = rng.standard_normal((R, K)).astype(np.float32)
    W = rng.standard_normal((G * Hs, K)).astype(np.float32)

    def run(a):
        C = np.zeros((a.shape[0], G * Hs), np.float32)
        if product == "packed":
            _kernel_hooks.bf16_rgemm(np.ascontiguousarray(a), W, C, G, 0, Hs, True)
        else:
            at = product == "general_at"
            _kernel_hooks.packed_gemm(BF16, at, True, np.ascontiguousarray(a.T if at else a), W, C)
        return C

    full = run(A)
    err = np.abs(full - ref.bf16_matmul(A, W.T)) / _bound(A, W.T)
    assert err.max() < 1e-6 * np.sqrt(K)
    for M in range(2, R):
        for s in (0, R - M):
            np.testing.assert_array_equal(run(A[s:s + M]), full[s:s + M],
                                          err_msg=f"rows {s}..{s + M}")


# ---------------------------------------------------------------------------
# the network against the reference with bfloat16 products

CELLS = [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]


def _problem(seed, cell, nonlinearity, num_layers, bidirectional, seq, loss, hidden, D=9,
             B=6, T=7, O=4):
    rng = np.random.default_rng(seed)
    layout = make_layout(n_features=D, hidden=hidden, n_outputs=O, num_layers=num_layers,
                         bidirectional=bidirectional, nonlinearity=nonlinearity, cell=cell)
    params = ref.init_params(rng, n_features=D, hidden=hidden, n_outputs=O,
                             num_layers=num_layers, bidirectional=bidirectional,
                             dtype=np.float32, scale=0.6, cell=cell)
    params = {k: v.astype(np.float32) for k, v in params.items()}
    X = rng.normal(size=(B + 2, T, D)).astype(np.float32)
    y = (rng.normal(size=(B + 2, T if seq else 1, O)) if loss == "mse"
         else rng.integers(0, O, size=(B + 2, T if seq else 1)))
    idx = rng.permutation(B + 2)[:B]
    arch = dict(num_layers=num_layers, bidirectional=bidirectional, nonlinearity=nonlinearity,
                return_sequences=seq, cell=cell)
    return layout, params, X, y, idx, arch


def _p64(params):
    return {k: v.astype(np.float64) for k, v in params.items()}


def _assert_bf16_match(got, want, exact, where=()):
    """got (float32 kernels) against want (the bfloat16-product reference in
    float64), with exact the float32/float64 network's values.

    Both round the same operands to bfloat16, but an operand computed a few
    float32 ulps differently can round to the neighbouring bfloat16 (2^-8
    relative) when it lies near a midpoint: rare per value, and it then
    moves what depends on it (later steps of that sequence) by about as much
    as bfloat16 moves the network.  So most values must match to float32
    rounding, and none may be further off than bfloat16 itself moves the
    network; a product left in float32, or rounded twice, moves nearly all
    of them by bfloat16's amount and fails."""
    scale = max(np.abs(want).max(), 1e-30)
    err = np.abs(np.asarray(got, np.float64) - want).ravel() / scale
    dev = np.abs(exact - want).ravel() / scale
    assert np.mean(err < 2e-6) >= 0.75, where + (np.median(err),)
    assert err.max() <= max(dev.max(), 1e-5), where
    assert np.median(dev) > 1e-5 or dev.max() > 1e-3, where     # bfloat16 really moves it


@needs_bf16
@pytest.mark.parametrize("hidden", [5, 40])
@pytest.mark.parametrize("threading", [(1, False), (2, False), (2, True)],
                         ids=["1t", "2t-batch", "2t-hidden"])
@pytest.mark.parametrize("packed", [True, False], ids=["packed", "unpacked"])
@pytest.mark.parametrize("cellnl", CELLS, ids=["tanh", "relu", "gru", "lstm"])
def test_forward_matches_reference_with_bf16_products(cellnl, packed, threading, hidden):
    """predict at compute_dtype="bfloat16" is the reference network whose
    every weight product rounds both operands to bfloat16 (to float32
    rounding of the sums and cells), and measurably not the float32 one."""
    cell, nl = cellnl
    n_threads, hidden_split = threading
    for seq, bidir, layers in [(False, False, 1), (True, True, 2)]:
        layout, params, X, _, _, arch = _problem(3, cell, nl, layers, bidir, seq, "mse", hidden)
        want, _ = ref.forward(_p64(params), X.astype(np.float64), mm=ref.bf16_matmul, **arch)
        exact, _ = ref.forward(_p64(params), X.astype(np.float64), **arch)
        with simd(BF16):
            got = kernel_predict(layout, params, X, seq=seq, n_threads=n_threads,
                                 dtype=np.float32, hidden_split=hidden_split, packed=packed)
        _assert_bf16_match(got.reshape(want.shape), want, exact, (seq, bidir))


@needs_bf16
@pytest.mark.parametrize("hidden", [5, 40])
@pytest.mark.parametrize("threading", [(1, False), (2, False), (2, True)],
                         ids=["1t", "2t-batch", "2t-hidden"])
@pytest.mark.parametrize("cellnl", CELLS, ids=["tanh", "relu", "gru", "lstm"])
def test_gradients_match_reference_with_bf16_products(cellnl, threading, hidden):
    """train_step's loss and every gradient: backpropagation through the
    bfloat16-product network, with its backward products (dh W_hh, dz^T h,
    dz W_ih, the head's) on bfloat16 operands too."""
    cell, nl = cellnl
    n_threads, hidden_split = threading
    for (seq, bidir, layers), loss in itertools.product(
            [(False, False, 1), (True, True, 2)], ["mse", "xent"]):
        layout, params, X, y, idx, arch = _problem(4, cell, nl, layers, bidir, seq, loss,
                                                   hidden)
        tgt = y[idx] if seq else y[idx][:, 0]
        want_loss, want = ref.loss_and_grads(_p64(params), X[idx].astype(np.float64), tgt,
                                             loss=loss, mm=ref.bf16_matmul, **arch)
        _, exact = ref.loss_and_grads(_p64(params), X[idx].astype(np.float64), tgt,
                                      loss=loss, **arch)
        with simd(BF16) as packed:
            got_loss, got = kernel_loss_grad(layout, params, X, y, idx, loss=loss, seq=seq,
                                             n_threads=n_threads, dtype=np.float32,
                                             hidden_split=hidden_split, packed=packed)
        assert got_loss == pytest.approx(want_loss, rel=1e-4)
        for name in want:
            # a gradient sums over every step and sample, so one operand
            # rounded the other way (see _assert_bf16_match) reaches many
            # of its entries: compared as a whole (measured: at most 6% of
            # bfloat16's own effect over this grid)
            dist = np.linalg.norm(got[name] - want[name])
            dev = np.linalg.norm(exact[name] - want[name])
            assert dist <= 0.2 * dev + 1e-6 * np.linalg.norm(want[name]), (name, seq, loss)
            assert dev > 1e-4 * np.linalg.norm(want[name]) or name.startswith("head.b")


# ---------------------------------------------------------------------------
# estimators


def _digits():
    from sklearn.datasets import load_digits
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 8, 8).astype(np.float32)
    return X[:1400], y[:1400], X[1400:], y[1400:]


@needs_bf16
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_bf16_predictions_are_close_to_float32_with_the_same_weights(cell):
    """The documented tolerance: probabilities within 0.02 of the float32
    model's, and the predicted class the same on at least 98% of samples;
    switching compute_dtype repacks the weights, back to float32 exactly."""
    Xtr, ytr, Xte, yte = _digits()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = RNNClassifier(cell=cell, hidden_size=64, max_iter=8, random_state=0).fit(Xtr, ytr)
    p32 = clf.predict_proba(Xte)
    clf.set_params(compute_dtype="bfloat16")
    p16 = clf.predict_proba(Xte)
    assert 0 < np.abs(p16 - p32).max() < 0.02
    assert np.mean(p16.argmax(1) == p32.argmax(1)) >= 0.98
    # the same as a bfloat16 estimator given these weights from the start
    other = RNNClassifier(cell=cell, hidden_size=64, compute_dtype="bfloat16")
    other.load_state_dict(clf.state_dict(), classes=clf.classes_)
    np.testing.assert_array_equal(other.predict_proba(Xte), p16)
    clf.set_params(compute_dtype=None)
    np.testing.assert_array_equal(clf.predict_proba(Xte), p32)


@needs_bf16
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_bf16_training_reaches_the_float32_score_on_digits(cell):
    """Mixed-precision training (float32 master weights and Adam state)
    scores like float32 training on held-out digits."""
    Xtr, ytr, Xte, yte = _digits()
    scores = {}
    for cd in (None, "bfloat16"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf = RNNClassifier(cell=cell, hidden_size=64, max_iter=25, random_state=0,
                                compute_dtype=cd).fit(Xtr, ytr)
        assert all(v.dtype == np.float32 for v in clf.state_dict().values())
        scores[cd] = clf.score(Xte, yte)
    assert scores["bfloat16"] > 0.75
    assert abs(scores["bfloat16"] - scores[None]) < 0.03, scores


@needs_bf16
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_bf16_stepper_and_pickle_agree_with_predict(cell):
    """Streaming (one step at a time) runs the same bfloat16 products as
    predict; a pickled or saved model keeps compute_dtype."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((5, 12, 3)).astype(np.float32)
    y = rng.standard_normal((5, 12, 2)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = RNNRegressor(cell=cell, hidden_size=40, num_layers=2, return_sequences=True,
                           max_iter=3, random_state=0, compute_dtype="bfloat16").fit(X, y)
    full = reg.predict(X)
    st = reg.stepper(n_streams=5)
    state = st.initial_state()
    steps = []
    for t in range(12):
        out, state = st.step(X[:, t], state)
        steps.append(out)
    np.testing.assert_allclose(np.stack(steps, axis=1), full, rtol=1e-5, atol=1e-6)
    back = pickle.loads(pickle.dumps(reg))
    assert back.compute_dtype == "bfloat16"
    np.testing.assert_array_equal(back.predict(X), full)


# why bfloat16 is refused: the CPU (or build) lacks AVX512-BF16, or it has it
# and CRNN_MAX_SIMD caps crnn below it (_kernels.bf16_unsupported_message)
_NO_BF16 = r"AVX512-BF16|which this CPU has, but CRNN_MAX_SIMD="


def test_compute_dtype_errors(monkeypatch):
    X = np.zeros((4, 3, 2), np.float32)
    y = np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="'compute_dtype' parameter.*'float16'"):
        RNNClassifier(compute_dtype="float16", max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="needs dtype=numpy.float32"):
        RNNClassifier(compute_dtype="bfloat16", dtype=np.float64, max_iter=1).fit(X, y)
    # a CPU without AVX512-BF16: fit refuses, predict of a fitted model too,
    # and the model stays usable in float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = RNNClassifier(max_iter=1, random_state=0).fit(X, y)
    monkeypatch.setattr(_kernels, "bf16_supported", lambda: False)
    with pytest.raises(ValueError, match=_NO_BF16):
        RNNClassifier(compute_dtype="bfloat16", max_iter=1).fit(X, y)
    clf.set_params(compute_dtype="bfloat16")
    with pytest.raises(ValueError, match=_NO_BF16):
        clf.predict(X)
    clf.set_params(compute_dtype=None)
    clf.predict(X)


def test_kernel_config_refuses_bf16_without_the_instructions():
    """The kernels check the CPU themselves (whatever Python checked)."""
    lay = make_layout(n_features=2, hidden=3, n_outputs=1, num_layers=1, bidirectional=False,
                      nonlinearity="tanh")
    if _kernels.bf16_supported():
        assert lay.config(False, 0, None, BF16).simd == BF16
    else:
        with pytest.raises(ValueError, match=_NO_BF16):
            lay.config(False, 0, None, BF16)


@needs_bf16
def test_bf16_in_the_language_model_transcriber_and_forecaster():
    """The estimators built on the same kernels train and predict in
    bfloat16: close to float32 with the same weights, and learning."""
    from speech_data import speak as _speak

    from crnn import RNNForecaster, RNNLanguageModel, RNNTranscriber
    text = "the cat sat on the mat. the dog sat on the log. " * 40
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        lm = RNNLanguageModel(cell="lstm", hidden_size=48, seq_length=25, max_iter=10,
                              learning_rate_init=1e-2, random_state=0,
                              compute_dtype="bfloat16").fit(text)
        ppl16 = lm.perplexity(text[:400])
        gen16 = lm.generate(60, prompt="the ", random_state=0)
        lm.set_params(compute_dtype=None)
        same_weights = lm.perplexity(text[:400])
        lm32 = RNNLanguageModel(cell="lstm", hidden_size=48, seq_length=25, max_iter=10,
                                learning_rate_init=1e-2, random_state=0).fit(text)
        ppl32 = lm32.perplexity(text[:400])
        assert abs(ppl16 - same_weights) < 0.02 * same_weights
        assert ppl16 < 0.9 * len(lm.vocab_) and abs(ppl16 - ppl32) < 0.05 * ppl32, (ppl16, ppl32)
        assert isinstance(gen16, str) and len(gen16) > 0

        (X, y), (Xt, yt) = _speak(300, 0), _speak(60, 1)
        tr = RNNTranscriber(hidden_size=24, max_iter=12, batch_size=16,
                            learning_rate_init=1e-2, random_state=0,
                            compute_dtype="bfloat16").fit(X, y)
        assert tr.score(Xt, yt) > 0.9
        p16 = tr.predict_proba(Xt[:5])
        tr.set_params(compute_dtype=None)
        p32 = tr.predict_proba(Xt[:5])
        assert max(np.abs(a - b).max() for a, b in zip(p16, p32)) < 0.02

        t = np.arange(300)
        series = np.sin(2 * np.pi * t / 25) + 0.05 * np.random.default_rng(0).normal(size=300)
        fc = RNNForecaster(window_length=25, hidden_size=32, max_iter=30, random_state=0,
                           difference=0, seasonal_period=None, baselines=False,
                           calibration_size=None, compute_dtype="bfloat16").fit(series)
        f16 = fc.predict(25)
        assert np.sqrt(np.mean((np.ravel(f16) - np.sin(2 * np.pi * np.arange(300, 325) / 25))
                               ** 2)) < 0.3


@needs_bf16
def test_a_bf16_model_loads_on_a_cpu_without_bf16(monkeypatch, tmp_path):
    """Pickles and model files of a compute_dtype="bfloat16" model open on a
    CPU without AVX512-BF16; predict says why it cannot run as set, and runs
    in float32 after set_params(compute_dtype=None)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 6, 3)).astype(np.float32)
    y = rng.integers(0, 2, 20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = RNNClassifier(cell="gru", max_iter=2, random_state=0,
                            compute_dtype="bfloat16").fit(X, y)
    blob = pickle.dumps(clf)
    clf.save(tmp_path / "m.crnn")
    want = clf.set_params(compute_dtype=None).predict_proba(X)
    monkeypatch.setattr(_kernels, "bf16_supported", lambda: False)
    for back in (pickle.loads(blob), RNNClassifier.load(tmp_path / "m.crnn")):
        assert back.compute_dtype == "bfloat16"
        with pytest.raises(ValueError, match="AVX512-BF16"):
            back.predict(X)
        np.testing.assert_array_equal(back.set_params(compute_dtype=None).predict_proba(X), want)
