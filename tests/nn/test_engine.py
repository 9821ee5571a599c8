"""The kernel-interface layer: data packing, sharding, workspace sizes, the
thread plan and thread counts."""
import numpy as np
import pytest

from crnn import _kernels
from crnn._nn.data import from_array, from_list, shard_batch
from crnn._nn.engine import (CORE_CACHE_BYTES, STEP_TEAM_BYTES, Engine, ThreadPlan, plan_threads,
                          sample_rows)
from crnn._nn.layout import LOSS_MSE, LOSS_XENT, Layout
from crnn._nn.threads import effective_n_threads, max_n_threads


def lay(H, cell="rnn", D=8, L=1):
    return Layout(cell, "tanh", L, 1, H, D, 1)


def test_thread_plan():
    assert plan_threads(lay(256), 1, 1, 4) == ThreadPlan(False, 1)     # one thread
    assert plan_threads(lay(256), 1, 2, 4) == ThreadPlan(True, 2)      # streaming: B < threads
    assert plan_threads(lay(32), 1, 2, 4) == ThreadPlan(False, 1)      # slices too thin
    assert plan_threads(lay(512), 64, 2, 4) == ThreadPlan(True, 2)     # W_hh 1 MB
    assert plan_threads(lay(128), 64, 2, 4) == ThreadPlan(False, 2)    # W_hh in cache
    assert plan_threads(lay(256), 3, 8, 4) == ThreadPlan(True, 8)      # 3 rows, 8 threads
    assert plan_threads(lay(128), 3, 8, 4) == ThreadPlan(False, 3)     # 16 units a thread: too few
    assert plan_threads(lay(16), 3, 8, 4) == ThreadPlan(False, 3)      # no idle shards
    # gates count: a GRU of 128 units has 384 gate units and a 192 KB W_hh
    assert plan_threads(lay(128, "gru"), 64, 4, 4) == ThreadPlan(False, 4)
    assert plan_threads(lay(256, "gru"), 64, 2, 4) == ThreadPlan(True, 2)   # 768 KB
    # the threshold is the cache size, in bytes of the dtype
    H = int(np.sqrt(CORE_CACHE_BYTES / 8)) + 1
    assert plan_threads(lay(H), 64, 2, 8).hidden_split
    assert not plan_threads(lay(H), 64, 2, 4).hidden_split


def test_stepper_thread_plan():
    small = lay(64)
    assert plan_threads(small, 1, 8, 4, streaming=True) == ThreadPlan(True, 1)
    big = lay(512, "lstm", D=64, L=2)          # ~9 MB of weights
    assert big.gates * 512 * (512 + 64) * 2 * 4 > STEP_TEAM_BYTES
    assert plan_threads(big, 1, 1, 4, streaming=True) == ThreadPlan(True, 1)
    assert plan_threads(big, 1, 4, 4, streaming=True) == ThreadPlan(True, 4)
    # at most one packed panel (32 floats) of units per thread
    assert plan_threads(big, 1, 64, 4, streaming=True) == ThreadPlan(True, 512 // 32)


def test_shard_batch_balances_lengths_and_sorts_each_shard():
    rng = np.random.default_rng(0)
    lens = rng.integers(1, 50, size=40).astype(np.intp)
    batch = rng.permutation(40)[:23].astype(np.intp)
    idx, bounds = shard_batch(batch, lens, 4, False)
    assert sorted(idx) == sorted(batch) and bounds[0] == 0 and bounds[-1] == 23
    sizes = np.diff(bounds)
    assert sizes.max() - sizes.min() <= 1
    loads = [lens[idx[a:b]].sum() for a, b in zip(bounds[:-1], bounds[1:])]
    assert max(loads) - min(loads) <= lens.max()
    for a, b in zip(bounds[:-1], bounds[1:]):
        assert np.all(np.diff(lens[idx[a:b]]) <= 0)
    # equal lengths: the batch in order, cut evenly
    idx, bounds = shard_batch(batch, np.full(40, 5, np.intp), 3, True)
    np.testing.assert_array_equal(idx, batch)
    np.testing.assert_array_equal(bounds, [0, 7, 15, 23])


def test_sequence_data_and_rows():
    X = [np.ones((3, 2)), np.zeros((1, 2)), np.full((2, 2), 2.0)]
    data = from_list(X, np.float64)
    assert data.rows.shape == (6, 2) and list(data.start) == [0, 3, 4] and not data.uniform
    assert list(data.order()) == [0, 2, 1]
    assert list(sample_rows(data, [2, 0])) == [4, 5, 0, 1, 2]
    assert len(sample_rows(data, [])) == 0
    A = np.arange(24.0).reshape(2, 3, 4)
    d2 = from_array(A)
    assert np.shares_memory(d2.rows, A) and d2.uniform and d2.max_len == 3


@pytest.mark.parametrize("train", [False, True])
def test_workspace_sizes_grow_with_rows_and_steps(train):
    cfg = Engine(lay(16, "lstm", L=2), True, LOSS_MSE, None).cfg
    a = cfg.workspace_size(4, 10, train)
    assert cfg.workspace_size(5, 10, train) > a and cfg.workspace_size(4, 11, train) > a
    assert cfg.index_workspace_size(10) == 21          # bs[0..9], off[0..10]


def test_engine_predict_equals_the_kernel_call_and_any_thread_plan(monkeypatch):
    """engine.predict on a ragged set equals each sequence run alone, with
    the batch split, the hidden split and several thread counts."""
    import crnn._nn.engine as engine_mod
    rng = np.random.default_rng(0)
    layout = Layout("gru", "tanh", 2, 2, 40, 3, 2)
    theta = layout.init_params(np.random.RandomState(0), np.float64)
    engine = Engine(layout, True, LOSS_XENT)
    X = [rng.normal(size=(n, 3)) for n in (5, 1, 9, 3, 7)]
    data = from_list(X, np.float64)
    alone = [engine.predict(theta, from_list([x], np.float64), 1) for x in X]
    for forced in (None, False, True):
        if forced is not None:
            monkeypatch.setattr(engine_mod, "plan_threads",
                                lambda lay_, n, t, i, streaming=False, f=forced:
                                ThreadPlan(f, t if f else max(1, min(t, n))))
        for nt in (1, 2, 3):
            out = engine.predict(theta, data, nt)
            for x, a, part in zip(X, alone, data.split_rows(out)):
                np.testing.assert_allclose(part, a, rtol=1e-12, atol=1e-13)


def test_train_batch_gradient_does_not_depend_on_the_thread_plan():
    rng = np.random.default_rng(1)
    layout = Layout("lstm", "tanh", 1, 1, 64, 3, 1)
    theta = layout.init_params(np.random.RandomState(0), np.float64)
    engine = Engine(layout, False, LOSS_MSE)
    data = from_array(rng.normal(size=(12, 6, 3)))
    y = rng.normal(size=(12, 1))
    results = []
    for nt in (1, 2, 4):
        work = engine.trainer(data, y, 12, nt, np.dtype(np.float64))
        loss = work.train_batch(theta, np.arange(12, dtype=np.intp))
        results.append((loss, work.grads.sum(axis=0), work.plan))
    assert results[0][2] == ThreadPlan(False, 1) and results[2][2] == ThreadPlan(True, 4)
    for loss, g, _ in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-12)
        np.testing.assert_allclose(g, results[0][1], rtol=1e-10, atol=1e-13)


def test_train_batch_from_states_under_every_thread_plan():
    """States in and out through the engine: the same loss, gradient and
    final states for the batch split and the hidden split, and different
    from the stateless call (the states are used)."""
    rng = np.random.default_rng(2)
    layout = Layout("lstm", "tanh", 2, 1, 64, 3, 1)
    theta = layout.init_params(np.random.RandomState(0), np.float64)
    engine = Engine(layout, True, LOSS_MSE)
    data = from_array(rng.normal(size=(12, 6, 3)))
    y = rng.normal(size=(72, 1))
    h0, c0 = rng.normal(size=(2, 2, 12, 64)) * 0.5
    batch = np.array([7, 1, 4, 10, 0], dtype=np.intp)
    results = []
    for nt in (1, 2, 4):
        work = engine.trainer(data, y, 5, nt, np.dtype(np.float64))
        hN, cN = np.zeros_like(h0), np.zeros_like(c0)
        loss = work.train_batch(theta, batch, states=(h0, c0, hN, cN))
        results.append((loss, work.grads.sum(axis=0), hN[:, batch], cN[:, batch], work.plan))
        plain = work.train_batch(theta, batch)
    assert results[0][4] == ThreadPlan(False, 1) and results[2][4].hidden_split
    assert plain != pytest.approx(results[0][0])
    for loss, g, hN, cN, _ in results[1:]:
        assert loss == pytest.approx(results[0][0], rel=1e-12)
        np.testing.assert_allclose(g, results[0][1], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(hN, results[0][2], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(cN, results[0][3], rtol=1e-12, atol=1e-14)


def test_codes_are_shared_with_the_kernels():
    assert set(_kernels.CELL_CODES.values()) == {0, 1, 2, 3}
    assert Layout("rnn", "relu", 1, 1, 4, 1, 1).cell_code == _kernels.CELL_CODES[("rnn", "relu")]
    assert Layout("lstm", "tanh", 1, 1, 4, 1, 1).cell_code == _kernels.CELL_CODES[("lstm", None)]
    assert (LOSS_MSE, LOSS_XENT) == (_kernels.LOSS_CODES["mse"], _kernels.LOSS_CODES["xent"])
    with pytest.raises(ValueError, match="unknown cell code"):
        _kernels.Config(7, 1, 1, 4, 1, 1, False, 0, -1, np.zeros(6, np.intp), 10)


# ---------------------------------------------------------------------------
# thread counts


def test_effective_n_threads_follows_scikit_learn(monkeypatch):
    import crnn._nn.threads as th
    if not th.openmp_enabled():
        pytest.skip("built without OpenMP")
    monkeypatch.setattr(th, "cpu_count", lambda: 6)
    monkeypatch.setattr(th, "omp_max_threads", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert max_n_threads() == 6                        # capped by the usable cores
    assert effective_n_threads(None) == 6
    assert effective_n_threads(-1) == 6
    assert effective_n_threads(-2) == 5
    assert effective_n_threads(-10) == 1
    assert effective_n_threads(3) == 3
    assert effective_n_threads(20) == 20                # explicit: the user's word
    monkeypatch.setenv("OMP_NUM_THREADS", "12")
    assert max_n_threads() == 16                       # omp_get_max_threads, uncapped
    assert effective_n_threads(-1) == 16 and effective_n_threads(-4) == 13
    with pytest.raises(ValueError, match="n_jobs == 0"):
        effective_n_threads(0)


def test_cpu_count_respects_affinity_and_quotas():
    import os
    from crnn._nn.threads import cpu_count
    n = cpu_count()
    assert 1 <= n <= len(os.sched_getaffinity(0))


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_every_simd_level_gives_the_same_results(cell):
    """The SIMD level is part of the Config, not global state: predict and
    the step kernel at each level the CPU has (0: BLAS) agree, in one
    process, without resetting anything."""
    rng = np.random.default_rng(0)
    layout = Layout(cell, "tanh", 2, 1, 40, 3, 2)
    theta = layout.init_params(np.random.RandomState(0), np.float64)
    data = from_array(rng.normal(size=(5, 7, 3)))
    x = rng.normal(size=(5, 3))
    results = {}
    for level in range(_kernels.simd_level() + 1):
        engine = Engine(layout, True, LOSS_MSE, None, simd=level)
        assert engine.cfg.simd == level
        assert (engine.packed_size(False, theta.dtype) > 0) == (level > 0)
        step = engine.step_kernel(theta, 5, False, 2)
        results[level] = (engine.predict(theta, data, 2), step.step(x)[0])
    for level, (pred, out) in results.items():
        np.testing.assert_allclose(pred, results[0][0], rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(out, results[0][1], rtol=1e-12, atol=1e-13)
    # a level above the CPU's is capped at the CPU's
    assert Engine(layout, True, LOSS_MSE, None, simd=9).cfg.simd == _kernels.simd_level()


def test_show_config_and_info():
    """crnn.show_config() and `python -m crnn --info`: the build's compiler
    and OpenMP, the threads, the SIMD level and the BLAS, one version source."""
    import io
    import subprocess
    import sys
    from importlib.metadata import version

    import crnn
    buf = io.StringIO()
    info = crnn.show_config(file=buf)
    text = buf.getvalue()
    assert info["crnn"] == crnn.__version__ == version("crnn")
    assert info["simd"]["level"] == _kernels.isa_level()
    assert min(info["simd"]["level"], 2) == _kernels.simd_level()
    assert info["threads"]["n_jobs=None"] == effective_n_threads(None)
    assert info["openmp"]["enabled"] == (info["openmp"]["spec"] != "-")
    assert info["compiler"] and info["blas"]
    for key in ("crnn:", "compiler:", "OpenMP:", "threads:", "SIMD level:", "BLAS:"):
        assert key in text
    out = subprocess.run([sys.executable, "-m", "crnn", "--info"], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "SIMD level:" in out.stdout, out.stderr


# ---- partial_fit keeps its training buffers for the next call --------------

def _scratch(est):
    return est.__dict__["_engine_cache"]._scratch


def _data(n=12, T=7, D=3, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, T, D)).astype(np.float32),
            rng.normal(size=n).astype(np.float32))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_partial_fit_reuses_its_buffers_and_fit_drops_them(cell):
    from crnn import RNNRegressor
    X, y = _data()
    est = RNNRegressor(cell=cell, hidden_size=40, batch_size=12, n_jobs=2, random_state=0)
    est.partial_fit(X, y)
    kept = dict(_scratch(est))
    assert {"ws", "iws", "grads", "wpack"} <= set(kept)
    est.partial_fit(X, y)
    for name, arr in kept.items():
        assert _scratch(est)[name] is arr, name       # the same memory, not a new one
    est.fit(X, y)
    assert _scratch(est) == {}                          # fit holds nothing after it


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_reused_buffers_are_never_read_before_written(n_jobs):
    """Kept buffers poisoned with NaN between calls, different batch shapes
    in between: every partial_fit gives bit for bit the weights of a run
    that allocates fresh buffers each time."""
    from crnn import RNNRegressor
    batches = [_data(12, 7, seed=1), _data(12, 7, seed=2), _data(5, 9, seed=3),
               _data(12, 7, seed=4), _data(12, 7, seed=5)]
    make = lambda: RNNRegressor(cell="lstm", hidden_size=24, batch_size=12, n_jobs=n_jobs,  # noqa: E731
                                random_state=0)
    kept, fresh = make(), make()
    for X, y in batches:
        kept.partial_fit(X, y)
        for arr in _scratch(kept).values():
            if arr.dtype.kind == "f":
                arr.fill(np.nan)
            else:
                arr.fill(-1)
        fresh.partial_fit(X, y)
        _scratch(fresh).clear()
        np.testing.assert_array_equal(kept._theta, fresh._theta)
    assert np.all(np.isfinite(kept._theta))


def test_estimators_sharing_an_engine_train_at_once_on_their_own_buffers():
    """Copies get engines of their own (the engine is not part of an
    estimator's state); were two estimators to share one (and so its
    scratch), partial_fit on both from two threads at once still gives each
    the weights of a sequential run."""
    import copy
    import threading

    from crnn import RNNRegressor
    X, y = _data(32, 60, seed=7)
    base = RNNRegressor(cell="gru", hidden_size=64, batch_size=32, n_jobs=1, random_state=0)
    base.partial_fit(X, y)
    ref = copy.deepcopy(base)
    for _ in range(20):
        ref.partial_fit(X, y)
    a, b = copy.copy(base), copy.copy(base)
    a._engine(a._layout)
    b._engine(b._layout)
    assert a.__dict__["_engine_cache"] is not b.__dict__["_engine_cache"]
    # deep copies: a shallow one would share base's RandomState, whose draws
    # (the batch order) would then depend on the threads' interleaving
    a, b = copy.deepcopy(base), copy.deepcopy(base)
    a._engine(a._layout)
    b.__dict__["_engine_cache"] = a.__dict__["_engine_cache"]     # the worst case
    errors = []

    def train(est):
        try:
            for _ in range(20):
                est.partial_fit(X, y)
        except Exception as e:          # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=train, args=(e,)) for e in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    np.testing.assert_array_equal(a._theta, ref._theta)
    np.testing.assert_array_equal(b._theta, ref._theta)


def test_language_model_partial_fit_reuses_its_buffers():
    from crnn import RNNLanguageModel
    text = "the quick brown fox jumps over the lazy dog. " * 20
    lm = RNNLanguageModel(hidden_size=16, seq_length=10, batch_size=4, random_state=0)
    lm.partial_fit(text)
    ws = _scratch(lm)["ws"]
    lm.partial_fit(text)
    assert _scratch(lm)["ws"] is ws
    lm.fit(text)
    assert _scratch(lm) == {}


def test_engine_pickles_without_its_scratch():
    import pickle

    from crnn import RNNRegressor
    X, y = _data()
    est = RNNRegressor(hidden_size=8, batch_size=12, random_state=0).partial_fit(X, y)
    eng = est.__dict__["_engine_cache"]
    assert eng._scratch
    assert pickle.loads(pickle.dumps(eng))._scratch == {}
    assert pickle.loads(pickle.dumps(est)).__dict__.get("_engine_cache", eng)._scratch in (
        {}, eng._scratch)
    loaded = pickle.loads(pickle.dumps(est))
    if "_engine_cache" in loaded.__dict__:      # rebuilt on load, with nothing kept
        assert _scratch(loaded) == {}


def test_scratch_is_taken_exclusively():
    """A buffer handed out is no longer in the scratch (a second taker gets
    None and allocates its own); one of another shape or dtype is dropped."""
    layout = Layout("lstm", "tanh", 1, 1, 8, 3, 1)
    eng = Engine(layout, False, LOSS_MSE)
    a = np.empty((2, 5), np.float32)
    eng.keep_scratch({"ws": a})
    assert eng.take_scratch("ws", (2, 5), np.dtype(np.float32)) is a
    assert eng.take_scratch("ws", (2, 5), np.dtype(np.float32)) is None
    eng.keep_scratch({"ws": a})
    assert eng.take_scratch("ws", (2, 6), np.dtype(np.float32)) is None
    assert eng.take_scratch("ws", (2, 5), np.dtype(np.float32)) is None     # dropped
    eng.keep_scratch({"ws": a})
    assert eng.take_scratch("ws", (2, 5), np.dtype(np.float64)) is None
    eng.keep_scratch({"ws": a, "grads": a})
    eng.clear_scratch()
    assert eng._scratch == {}


def test_a_failed_partial_fit_leaves_the_weights_and_the_buffers():
    """A partial_fit that diverges leaves the weights as they were (with
    shuffle=False, where it draws nothing from the RandomState, the next call
    equals a copy's that never saw the failure); one refused after the
    workspace was made gives the kept buffers back."""
    import copy
    import warnings

    from crnn import RNNClassifier, RNNRegressor
    X, y = _data(12, 6, seed=3)
    est = RNNRegressor(cell="lstm", hidden_size=24, batch_size=4, n_jobs=2, random_state=0,
                       shuffle=False)
    est.partial_fit(X, y)
    ref = copy.deepcopy(est)
    est.set_params(learning_rate_init=1e30)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="non-finite"):
            est.partial_fit(X, y * 1e30)
    est.set_params(learning_rate_init=1e-3)
    np.testing.assert_array_equal(est._theta, ref._theta)
    est.partial_fit(X, y)
    ref.partial_fit(X, y)
    np.testing.assert_array_equal(est._theta, ref._theta)

    yc = np.array([0, 1] * 6)
    clf = RNNClassifier(hidden_size=40, batch_size=12, random_state=0,
                        class_weight={0: 1.0, 1: 0.0})
    clf.partial_fit(X, yc, classes=[0, 1])
    kept = dict(_scratch(clf))
    with pytest.raises(ValueError, match="weights are all zero"):
        clf.partial_fit(X[1::2], yc[1::2])
    assert set(_scratch(clf)) == set(kept)


def test_a_child_forked_while_the_scratch_lock_is_held_trains():
    """os.fork while another thread holds the scratch lock: the child gets a
    new lock and its partial_fit finishes (it waited forever before)."""
    import os
    import time

    from crnn._nn import engine as _engine
    if not hasattr(os, "fork"):
        pytest.skip("no fork")
    X, y = _data(8, 5, seed=4)
    with _engine._SCRATCH_LOCK:
        pid = os.fork()
        if pid == 0:                                    # pragma: no cover - the child
            code = 1
            try:
                import warnings

                from crnn import RNNRegressor
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")      # the fork's single-thread warning
                    est = RNNRegressor(hidden_size=8, batch_size=8, random_state=0)
                    est.partial_fit(X, y)
                    est.partial_fit(X, y)
                code = 0
            finally:
                os._exit(code)
    deadline = time.monotonic() + 60
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung in partial_fit")
        time.sleep(0.05)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
