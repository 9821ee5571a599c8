"""Hostile use (issue 8): fork after threads, a Stepper shared by threads,
divergence on the last batch, values that overflow float32, parameters
changed after fit, two threads training one model, undefined behaviour in
the vector math."""
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from crnn import RNNClassifier, RNNRegressor


def _data(n=40, T=6, D=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, D)).astype(np.float32)
    return X, X[:, :, 0].sum(axis=1)


# ---------------------------------------------------------------------------
# fork after a multi-threaded call


_FORK_PRELUDE = """
import os, pickle, sys, warnings
import numpy as np
from crnn import RNNRegressor
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 20, 4)).astype(np.float32); y = X[:, 0, 0]
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    m = RNNRegressor(hidden_size=64, max_iter=2, n_jobs=2, random_state=0).fit(X, y)
expected = m.predict(X)            # the parent ran OpenMP teams of 2 threads

def child_work(_=None):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        got = m.predict(X)
        # a worker may run several tasks: train a copy, keep m as the parent's
        pickle.loads(pickle.dumps(m)).partial_fit(X, y)
        step = m.stepper().step(X[0, 0])
    assert np.array_equal(got, expected)
    from crnn._openmp import openmp_enabled
    warned = any("single-threaded" in str(x.message) for x in w) or not openmp_enabled()
    return os.getpid(), warned

def each_worker_warned(results):
    # the warning comes once per process, and a worker may run several tasks
    pids = {pid for pid, _ in results}
    return all(any(w for p, w in results if p == pid) for pid in pids)
"""

_FORK_WAYS = {
    "os.fork": """
pid = os.fork()
if pid == 0:
    ok = child_work()[1]
    os._exit(0 if ok else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
""",
    "multiprocessing": """
import multiprocessing as mp
with mp.get_context("fork").Pool(2) as pool:
    assert each_worker_warned(pool.map(child_work, range(4)))
""",
    "joblib": """
from joblib import Parallel, delayed
assert each_worker_warned(
    Parallel(n_jobs=2, backend="multiprocessing")(delayed(child_work)(i) for i in range(4)))
""",
}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize("way", list(_FORK_WAYS))
def test_a_child_forked_after_threads_runs_single_threaded_and_never_hangs(way):
    """GNU OpenMP cannot start a team in such a child (it used to hang
    forever): the child's kernels run single-threaded, with one warning, and
    give the parent's results."""
    code = _FORK_PRELUDE + textwrap.dedent(_FORK_WAYS[way]) + "\nprint('done')\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "done" in out.stdout, out.stderr[-2000:]


# ---------------------------------------------------------------------------
# a Stepper shared by threads


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
def test_a_stepper_shared_by_8_threads_matches_the_sequential_results(cell):
    X, y = _data(n=32, D=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = RNNRegressor(cell=cell, hidden_size=128, max_iter=1, random_state=0).fit(X, y)
    stepper = m.stepper(n_streams=4)
    rng = np.random.default_rng(1)
    streams = [rng.normal(size=(50, 4, 5)).astype(np.float32) for _ in range(8)]

    def run(xs):
        state, outs = None, []
        for x in xs:
            out, state = stepper.step(x, state)
            outs.append(out)
        return np.array(outs)

    expected = [run(xs) for xs in streams]
    got = [None] * 8
    barrier = threading.Barrier(8)

    def worker(i):
        barrier.wait()
        got[i] = run(streams[i])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(g, e)


# ---------------------------------------------------------------------------
# divergence, overflow, bad dtype


def test_divergence_on_the_last_batch_is_never_committed():
    """One epoch, one batch, an absurd learning rate: the loss and gradient
    of that batch are finite, the update overflows.  Nothing is committed."""
    X, y = _data()
    y = y * 1e30
    kw = dict(solver="sgd", momentum=0.0, learning_rate_init=1e30, clip_norm=None,
              batch_size=1000, max_iter=1)
    with pytest.raises(ValueError, match="non-finite weight"):
        RNNRegressor(**kw).fit(X, y)
    reg = RNNRegressor(**dict(kw, learning_rate_init=1e-3)).fit(X, y / 1e30)
    before = {k: v.copy() for k, v in reg.state_dict().items()}
    reg.set_params(learning_rate_init=1e30)
    with pytest.raises(ValueError, match="non-finite weight"):
        reg.partial_fit(X, y)
    for k, v in reg.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
    assert np.all(np.isfinite(reg.predict(X)))
    reg.set_params(learning_rate_init=1e-3).partial_fit(X, y / 1e30)   # still trainable


def test_load_state_dict_refuses_values_that_overflow_float32():
    X, y = _data()
    sd = RNNRegressor(max_iter=1).fit(X, y).state_dict()
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    sd["rnn.weight_hh_l0"][0, 0] = 1e39
    with pytest.raises(ValueError, match="beyond the range of float32"):
        RNNRegressor().load_state_dict(sd)
    RNNRegressor(dtype=np.float64).load_state_dict(sd)          # fine in float64


@pytest.mark.parametrize("bad", ["abc", "int32", None, 3])
def test_a_bad_dtype_is_rejected_everywhere(bad):
    X, y = _data()
    with pytest.raises(ValueError, match="'dtype' parameter"):
        RNNRegressor(dtype=bad, max_iter=1).fit(X, y)
    sd = RNNRegressor(max_iter=1).fit(X, y).state_dict()
    with pytest.raises(ValueError, match="'dtype' parameter"):
        RNNRegressor(dtype=bad).load_state_dict(sd)


# ---------------------------------------------------------------------------
# parameters changed after fit


def test_set_params_after_fit_does_not_change_what_predict_returns():
    X, y = _data()
    m = RNNRegressor(max_iter=2, random_state=0).fit(X, y)
    before = m.predict(X)
    m.set_params(return_sequences=True, dropout=0.5, bptt_truncate=2)
    np.testing.assert_array_equal(m.predict(X), before)
    from sklearn.metrics import r2_score
    assert m.score(X, y) == pytest.approx(r2_score(y, before))
    with pytest.raises(ValueError, match="return_sequences=True differs"):
        m.partial_fit(X, np.repeat(y[:, None], 6, axis=1))
    # the next fit takes the new parameters
    m.fit(X, np.repeat(y[:, None], 6, axis=1))
    assert m.predict(X).shape == (40, 6)
    c = RNNClassifier(max_iter=1).fit(X, (y > 0).astype(int))
    c.set_params(return_sequences=True)
    assert c.predict(X).shape == (40,) and c.predict_proba(X).shape == (40, 2)


# ---------------------------------------------------------------------------
# two threads training one model


def test_two_threads_training_one_model_lose_no_update():
    X, y = _data(n=64)
    reg = RNNRegressor(hidden_size=16, batch_size=16, random_state=0).partial_fit(X, y)
    barrier = threading.Barrier(2)

    def train():
        barrier.wait()
        for _ in range(5):
            reg.partial_fit(X, y)

    threads = [threading.Thread(target=train) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # every call's epoch is there: 1 + 2 x 5 epochs of 4 batches
    assert reg.n_iter_ == 11 and len(reg.loss_curve_) == 11
    assert reg._opt_step == 44 and reg.t_ == 11 * 64


# ---------------------------------------------------------------------------
# undefined behaviour in the vector math


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")
def test_vector_math_is_defined_for_nan_inf_and_huge_values(tmp_path):
    """The float32 tanh / sigmoid kernels under UBSan with every special
    input (it used to halt on a shift of a negative int for NaN)."""
    src = tmp_path / "ub.c"
    src.write_text(textwrap.dedent("""
        #include <math.h>
        #include <stdio.h>
        #include <stdint.h>
        #include <string.h>
        #include "crnn_fast.h"
        int main(void) {
            float v[] = {NAN, -NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 1e10f, -1e10f,
                         88.f, -88.f, 0.f, -0.f, 1e-40f, 0.5f, -0.5f, 20.f};
            enum { N = sizeof v / sizeof v[0] };
            float a[N], b[N];
            memcpy(a, v, sizeof v); memcpy(b, v, sizeof v);
            crnn_tanh_array_f32(a, N);
            crnn_sigmoid_array_f32(b, N);
            for (int i = 0; i < N; i++) printf("%g %g\\n", a[i], b[i]);
            return 0;
        }
    """))
    exe = tmp_path / "ub"
    src_dir = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    if not os.path.exists(os.path.join(src_dir, "crnn_fast.h")):
        pytest.skip("needs the source tree's src/crnn_fast.h (tests run from an installed wheel)")
    cc = subprocess.run(["gcc", "-O1", "-fsanitize=undefined", "-fno-sanitize-recover=all",
                         "-I", src_dir, str(src), "-o", str(exe), "-lm"],
                        capture_output=True, text=True)
    if cc.returncode != 0:
        pytest.skip(f"cannot build with UBSan here: {cc.stderr[-300:]}")
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    rows = [list(map(float, line.split())) for line in run.stdout.split("\n") if line]
    assert np.isnan(rows[0]).all() and np.isnan(rows[1]).all()
    assert rows[2] == [1.0, 1.0] and rows[3] == [-1.0, 0.0]
    assert rows[10] == [0.0, 0.5]


# ---------------------------------------------------------------------------
# clear errors, the same rules everywhere


def test_errors_name_the_problem():
    X, y = _data(10)
    cases = [
        (lambda: RNNRegressor(max_iter=1).fit(X, 3.0), "scalar"),
        (lambda: RNNClassifier(max_iter=1).fit(X, 3), "scalar"),
        (lambda: RNNRegressor(bptt_truncate=2**31).fit(X, y), r"'bptt_truncate'.*2147483647"),
        (lambda: RNNRegressor(tol=np.inf).fit(X, y), r"'tol'.*\[0, inf\)"),
        (lambda: RNNRegressor(hidden_size=2**40).fit(X, y), "'hidden_size'"),
        # (on Windows, where C long is 32 bits, the C-long limit comes first)
        (lambda: RNNRegressor(hidden_size=2**19).fit(X, y), "more than this machine|C longs"),
        (lambda: RNNRegressor(batch_size=2**40).fit(X, y), "'batch_size'"),
        (lambda: RNNRegressor().fit(np.zeros((10, 6, 3), "datetime64[s]"), y), "dates or times"),
        (lambda: RNNRegressor().fit([np.zeros((4, 3), "timedelta64[s]")] * 10, y), "durations"),
    ]
    for call, match in cases:
        with pytest.raises((ValueError, TypeError), match=match):
            call()


def test_a_network_beyond_the_platforms_c_long_is_refused(monkeypatch):
    """Windows' 32-bit C long: sizes past it would wrap in the kernels."""
    import crnn._base.estimator as est
    X, y = _data(10)
    monkeypatch.setattr(est, "_MAX_PARAMS", 1000)
    with pytest.raises(ValueError, match="parameters; the kernels' sizes are C longs"):
        RNNRegressor(hidden_size=32).fit(X, y)
    RNNRegressor(hidden_size=4, max_iter=1).fit(X, y)      # 61 parameters: fine


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_states_inputs_and_weights_follow_one_rule(cell):
    """NaN and complex values are refused the same way by predict's states,
    the Stepper and load_state_dict, as they are in X."""
    X, y = _data(10)
    m = RNNRegressor(cell=cell, hidden_size=8, max_iter=1).fit(X, y)
    shape = (1, 10, 8)
    state = np.zeros(shape)
    bad_states = {"nan": np.full(shape, np.nan), "complex": state + 1j}
    for kind, bad in bad_states.items():
        arg = (bad, state) if cell == "lstm" else bad
        with pytest.raises(ValueError, match="NaN|complex"):
            m.predict(X, initial_state=arg)
        one = bad[:, :1]
        step_state = (one, np.zeros((1, 1, 8))) if cell == "lstm" else one
        with pytest.raises(ValueError, match="NaN|complex"):
            m.stepper().step(X[0, 0], step_state)
    with pytest.raises(ValueError, match="complex"):
        m.stepper().step(X[0, 0] + 1j)
    sd = m.state_dict()
    sd["head.bias"] = sd["head.bias"] + 1j
    with pytest.raises(ValueError, match="complex"):
        RNNRegressor(cell=cell, hidden_size=8).load_state_dict(sd)


def test_predict_warns_when_its_outputs_are_not_finite():
    X, y = _data(10)
    m = RNNRegressor(nonlinearity="relu", hidden_size=8, max_iter=1, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m.predict(X)
    sd = m.state_dict()
    sd["rnn.weight_ih_l0"][:] = 1e30          # finite weights, finite inputs ...
    m.load_state_dict(sd)
    with pytest.warns(RuntimeWarning, match="NaN or infinity"):
        m.predict(X * np.float32(1e20))       # ... whose products overflow float32


# ---------------------------------------------------------------------------
# no leak


@pytest.mark.skipif(bool(os.environ.get("CRNN_SANITIZE")),
                    reason="AddressSanitizer quarantines freed memory: RSS grows by design")
def test_memory_stays_flat_over_thousands_of_calls():
    """RSS after 3000 predict + partial_fit calls (and steps) is within a
    loose bound of RSS after the first 300: nothing per call is kept."""
    import resource
    if sys.platform != "linux":
        pytest.skip("reads /proc/self/statm")
    X, y = _data(32, T=10)
    m = RNNRegressor(cell="lstm", hidden_size=16, random_state=0).partial_fit(X, y)
    step = m.stepper()

    def rss():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize()

    def work(n):
        for _ in range(n):
            m.predict(X)
            m.partial_fit(X, y)
            step.step(X[0, 0])

    work(300)
    base = rss()
    work(3000)
    grown = rss() - base
    # 3000 epochs of history are ~50 KB; a leak of one batch's arrays per call
    # would be tens of MB
    assert grown < 8 * 2**20, grown


# ---------------------------------------------------------------------------
# batch invariance


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("bidirectional,seq", [(False, False), (True, True)])
def test_a_samples_prediction_does_not_depend_on_the_batch(monkeypatch, dtype, cell,
                                                           bidirectional, seq):
    """Bit for bit: alone, in a batch, at any position, in any chunking, at
    any thread count, with the batch split or the hidden-unit split."""
    import crnn._nn.engine as engine_mod
    rng = np.random.default_rng(0)
    X = rng.normal(size=(13, 7, 3)).astype(dtype)
    y = rng.normal(size=(13, 7) if seq else 13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        m = RNNRegressor(cell=cell, hidden_size=64, num_layers=2, bidirectional=bidirectional,
                         return_sequences=seq, max_iter=1, dtype=dtype, random_state=0).fit(X, y)
    alone = np.stack([m.predict(X[i:i + 1])[0] for i in range(13)])
    perm = rng.permutation(13)
    real_plan = engine_mod.plan_threads
    for split in (None, False, True):
        if split is not None:
            monkeypatch.setattr(engine_mod, "plan_threads",
                                lambda lay, n, t, i, streaming=False, f=split:
                                engine_mod.ThreadPlan(f, t if f else max(1, min(t, n))))
        for n_jobs in (1, 2, 3):
            m.set_params(n_jobs=n_jobs)
            np.testing.assert_array_equal(m.predict(X), alone)
            np.testing.assert_array_equal(m.predict(X[perm]), alone[perm])
            np.testing.assert_array_equal(m.predict(np.concatenate([X, X[:5]]))[:13], alone)
    monkeypatch.setattr(engine_mod, "plan_threads", real_plan)


def test_predict_while_another_thread_trains_sees_one_model_at_a_time():
    """Every prediction made while partial_fit commits new weights from
    another thread is the prediction of one of the committed models, never a
    mix of two (the packed weights record the weights they came from)."""
    X, y = _data(n=32)
    m = RNNRegressor(cell="gru", hidden_size=32, learning_rate_init=0.05,
                     random_state=0).partial_fit(X, y)
    committed, seen = [], []
    stop = threading.Event()

    def train():
        for _ in range(30):
            m.partial_fit(X, y)
            committed.append(m._theta)
        stop.set()

    t = threading.Thread(target=train)
    committed.append(m._theta)
    t.start()
    while not stop.is_set():
        seen.append(m.predict(X[:4]))
    t.join()
    from crnn._nn.engine import Engine
    from crnn._nn.data import from_array
    engine = Engine(m._layout, False, m._loss_code)
    truths = [engine.predict(th, from_array(X[:4]), 1) for th in committed]
    for p in seen:
        assert any(np.array_equal(p, tr[:, 0].astype(np.float64)) for tr in truths)


@pytest.mark.parametrize("lr", [10.0, 1000.0])
def test_weights_whose_predictions_overflow_are_never_committed(lr):
    """An absurd SGD learning rate on an Elman ReLU network left finite
    weights whose every prediction was inf, with no warning (issue 24): the
    last update passed the per-batch checks, which run before each update."""
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(16, 60, 3)) * 10).astype(np.float32)
    y = X.sum(axis=(1, 2))
    m = RNNRegressor(cell="rnn", nonlinearity="relu", solver="sgd", learning_rate_init=1e-4,
                     max_iter=1, hidden_size=8, random_state=0, batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, y)
    before = m._theta.copy()
    assert np.all(np.isfinite(m.predict(X)))
    m.set_params(learning_rate_init=lr, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="non-finite prediction at the final weights"):
            m.fit(X, y)
    np.testing.assert_array_equal(m._theta, before)          # left as it was
    fresh = RNNRegressor(cell="rnn", nonlinearity="relu", solver="sgd",
                         learning_rate_init=lr, max_iter=1, hidden_size=8, random_state=0,
                         batch_size=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="non-finite"):
            fresh.fit(X, y)
    assert not hasattr(fresh, "_theta")
