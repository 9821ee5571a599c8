"""crnn on a real dask.distributed LocalCluster (2 worker processes x 1 thread):
model search under joblib's dask backend, batch inference, out-of-core
training and many-series forecasts (crnn.dask), and the workers' thread budget."""
import os
import sys
import warnings

import numpy as np
import pytest

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed (pip install 'crnn[dask]')")
da = pytest.importorskip("dask.array")
db = pytest.importorskip("dask.bag")
dd = pytest.importorskip("dask.dataframe")
pd = pytest.importorskip("pandas")

import cloudpickle  # noqa: E402  (distributed depends on it)
import joblib  # noqa: E402
from sklearn.model_selection import (GridSearchCV, KFold, RandomizedSearchCV,  # noqa: E402
                                     cross_val_score)

import crnn  # noqa: E402
import crnn.dask as cdask  # noqa: E402
from crnn import RNNClassifier, RNNRegressor  # noqa: E402
from forecast_helpers import RNNForecaster  # noqa: E402

# the functions this module runs on the workers (client.run) travel by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


_THREADS_HERE = None


@pytest.fixture(scope="module")
def client():
    global _THREADS_HERE
    from crnn._nn.threads import effective_n_threads
    _THREADS_HERE = effective_n_threads(None)
    # the nanny sets OMP_NUM_THREADS & co. in this process too, for good:
    # put the environment back afterwards for the tests that follow
    saved = dict(os.environ)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    try:
        with distributed.Client(cluster) as c:
            yield c
        cluster.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_client_keeps_its_threads(client):
    # the LocalCluster left OMP_NUM_THREADS=1 in this process (distributed's
    # nanny does not restore it); crnn, imported before, keeps every core here
    # for the refit and fit_incremental
    from crnn._nn.threads import effective_n_threads
    assert effective_n_threads(None) == _THREADS_HERE


def _classification(n=160, T=10, F=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = np.where(X[:, :, 0].mean(1) + 0.5 * X[:, -3:, 1].mean(1) > 0, "up", "down")
    return X, y


def _regression(n=160, T=10, F=2, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, F)).astype(np.float32)
    y = np.cumsum(X[:, :, 0], axis=1)[:, -1] * 0.3 + 0.5 * X[:, -1, 1]
    return X, y


# ---------------------------------------------------------------------------
# the thread budget: runs first, while no worker has started an OpenMP team

def _threads_of_a_fit(n_jobs):
    """On a worker: the thread counts crnn handed its kernels during a fit and
    a predict (recorded where the estimator computes them), and the size of
    the team OpenMP forms in this process when asked for that many.  What
    the code was told and did, not which threads happened to be busy at an
    instant (a sampled count failed on a loaded machine)."""
    import crnn._base.estimator as est_module
    from crnn._openmp import omp_team_size

    given = []
    real = est_module.effective_n_threads

    def recording(n):
        given.append(real(n))
        return given[-1]

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 6, 3)).astype(np.float32)
    y = X.sum(axis=(1, 2))
    model = RNNRegressor(cell="lstm", hidden_size=8, batch_size=32, max_iter=1,
                         n_jobs=n_jobs, random_state=0)
    est_module.effective_n_threads = recording
    try:
        model.fit(X, y)
        model.predict(X)
    finally:
        est_module.effective_n_threads = real
    return {"given": sorted(set(given)), "team": omp_team_size(given[0]) if given else None,
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")}


def test_workers_keep_to_their_thread_budget(client):
    # n_jobs=None (every estimator's default) follows the nanny's
    # OMP_NUM_THREADS=1: the kernels are given one thread per worker and
    # OpenMP runs them in a team of one, so 2 workers x 1 thread never run
    # 4 threads
    for info in client.run(_threads_of_a_fit, None).values():
        assert info == {"given": [1], "team": 1, "OMP_NUM_THREADS": "1"}, info
    # an explicit n_jobs is obeyed as given, and OpenMP grants the team
    for info in client.run(_threads_of_a_fit, 2).values():
        assert info["given"] == [2] and info["team"] == 2, info
    # and crnn.show_config on a worker reports the budget
    for info in client.run(crnn._show.config_info).values():
        assert info["threads"]["n_jobs=None"] == 1
        assert all(lib["num_threads"] == 1 for lib in info["blas"])


# ---------------------------------------------------------------------------
# model search and cross-validation under joblib's dask backend

def _executed(dask_worker):
    return dask_worker.state.executed_count


def test_grid_search_on_the_cluster_equals_local(client):
    X, y = _classification()
    est = RNNClassifier(hidden_size=6, max_iter=4, batch_size=32, random_state=0, n_jobs=1)
    grid = {"hidden_size": [4, 8], "learning_rate_init": [1e-2, 3e-3]}
    local = GridSearchCV(est, grid, cv=3).fit(X, y)
    ran = client.run(_executed)
    with joblib.parallel_config(backend="dask"):
        remote = GridSearchCV(est, grid, cv=3, n_jobs=-1).fit(X, y)
    ran = {w: n - ran[w] for w, n in client.run(_executed).items()}
    assert len(ran) == 2 and all(n > 0 for n in ran.values()), ran     # both workers fitted
    for key in ("mean_test_score", "std_test_score", "split0_test_score", "rank_test_score"):
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key])
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote.predict_proba(X), local.predict_proba(X))


def test_randomized_search_and_cross_val_score_equal_local(client):
    X, y = _regression()
    est = RNNRegressor(hidden_size=6, max_iter=4, batch_size=32, random_state=3, n_jobs=1)
    dist = {"hidden_size": [4, 6, 8], "alpha": [0.0, 1e-3], "cell": ["gru", "lstm"]}
    cv = KFold(3, shuffle=True, random_state=0)
    local = RandomizedSearchCV(est, dist, n_iter=4, cv=cv, random_state=1).fit(X, y)
    local_cv = cross_val_score(est, X, y, cv=cv)
    with joblib.parallel_config(backend="dask"):
        remote = RandomizedSearchCV(est, dist, n_iter=4, cv=cv, random_state=1,
                                    n_jobs=-1).fit(X, y)
        remote_cv = cross_val_score(est, X, y, cv=cv, n_jobs=-1)
    np.testing.assert_array_equal(remote.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])
    assert remote.best_params_ == local.best_params_
    np.testing.assert_array_equal(remote_cv, local_cv)


def test_default_n_jobs_follows_the_budget_and_agrees_closely(client):
    # n_jobs=None: here the kernels use every core, on a worker one thread;
    # the batch shards follow the threads, so sums differ in the last bits
    X, y = _regression()
    est = RNNRegressor(hidden_size=8, max_iter=3, batch_size=32, random_state=0)
    local = cross_val_score(est, X, y, cv=2)
    with joblib.parallel_config(backend="dask"):
        remote = cross_val_score(est, X, y, cv=2, n_jobs=-1)
    np.testing.assert_allclose(remote, local, rtol=1e-3, atol=1e-4)


# ---------------------------------------------------------------------------
# batch inference

@pytest.fixture(scope="module")
def classifier():
    X, y = _classification()
    return RNNClassifier(hidden_size=8, max_iter=3, random_state=0, n_jobs=1).fit(X, y), X


@pytest.mark.parametrize("chunks", [(40, 10, 3), (25, 5, 2), (160, 10, 3)])
def test_predict_dask_array_equals_in_memory(client, classifier, chunks):
    clf, X = classifier
    dX = da.from_array(X, chunks=chunks)
    labels = cdask.predict(clf, dX)
    assert isinstance(labels, da.Array) and labels.chunks[0] == dX.chunks[0]
    assert labels.dtype == clf.predict(X[:1]).dtype
    np.testing.assert_array_equal(labels.compute(), clf.predict(X))
    proba = cdask.predict(clf, dX, method="predict_proba")
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.compute(), clf.predict_proba(X), rtol=1e-6, atol=1e-7)


def test_predict_sequence_outputs_and_2d_input(client, tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(90, 7)).astype(np.float32)          # univariate: (n, T)
    y = np.cumsum(X, axis=1)[:, :, None] * np.array([1.0, -0.5])
    reg = RNNRegressor(hidden_size=6, max_iter=2, return_sequences=True, random_state=0,
                       n_jobs=1).fit(X, y)
    # a memory-mapped file, as out-of-core data would be
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32,
                                   shape=X.shape)
    mm[:] = X
    out = cdask.predict(reg, da.from_array(mm, chunks=(20, 7)))
    assert out.shape == (90, 7, 2) and out.chunks[0] == (20, 20, 20, 20, 10)
    np.testing.assert_allclose(out.compute(), reg.predict(X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cdask.predict(reg, mm).compute(), reg.predict(X), rtol=1e-5,
                               atol=1e-6)


def test_predict_ragged_list_and_bag(client, classifier):
    clf, X = classifier
    rng = np.random.default_rng(5)
    seqs = [X[i, :rng.integers(2, 11)] for i in range(len(X))]
    expected = clf.predict(seqs)
    out = cdask.predict(clf, seqs)
    assert isinstance(out, list) and len(out) == len(seqs)
    np.testing.assert_array_equal(np.array(out), expected)
    np.testing.assert_array_equal(np.array(cdask.predict(clf, seqs, npartitions=50)), expected)
    bag = db.from_sequence(seqs, npartitions=6)
    lazy = cdask.predict(clf, bag, method="predict_proba")
    assert isinstance(lazy, db.Bag)
    np.testing.assert_allclose(np.array(lazy.compute()), clf.predict_proba(seqs),
                               rtol=1e-6, atol=1e-7)
    # an empty partition
    empty = db.from_sequence(seqs[:3], npartitions=3).filter(lambda s: len(s) > 100)
    assert cdask.predict(clf, empty).compute() == []


def test_the_plain_dask_recipe_of_the_readme(client, classifier):
    import dask
    clf, X = classifier
    dX = da.from_array(X, chunks=(40, 10, 3))
    model = dask.delayed(clf)
    labels = dX.map_blocks(lambda b, m: m.predict(b), model, drop_axis=[1, 2],
                           meta=np.array((), dtype=clf.classes_.dtype))
    np.testing.assert_array_equal(labels.compute(), clf.predict(X))
    scattered = client.scatter(clf, hash=False)      # a future in place of the Delayed
    labels = dX.map_blocks(lambda b, m: m.predict(b), scattered, drop_axis=[1, 2],
                           meta=np.array((), dtype=clf.classes_.dtype))
    np.testing.assert_array_equal(labels.compute(), clf.predict(X))


def _model_transfers(dask_worker):
    return sum(1 for e in dask_worker.transfer_incoming_log
               for k in e.get("keys", ()) if str(k).startswith("crnn-model-"))


def test_the_model_travels_once(client, classifier):
    clf, X = classifier
    client.restart()                      # clean transfer logs
    dX = da.from_array(np.repeat(X, 2, axis=0), chunks=(20, 10, 3))       # 16 blocks
    labels = cdask.predict(clf, dX)
    graph = dict(labels.__dask_graph__())
    model_keys = [k for k in graph if str(k).startswith("crnn-model-")]
    assert len(model_keys) == 1
    deps = labels.dask.get_all_dependencies()
    blocks = [k for k in labels.__dask_keys__()]
    assert all(model_keys[0] in deps[k] for k in blocks)
    labels.compute()
    # one task holds the model; each other worker fetched it once, not per block
    assert sum(client.run(_model_transfers).values()) <= len(client.scheduler_info()["workers"]) - 1


def test_predict_transcripts(client):
    # outputs of unknown string length (an object array) from a speech model
    rng = np.random.default_rng(0)
    X = rng.normal(size=(24, 12, 5)).astype(np.float32)
    words = ["".join(rng.choice(list("abc"), size=rng.integers(1, 4))) for _ in range(24)]
    model = crnn.RNNTranscriber(hidden_size=8, max_iter=2, random_state=0,
                                n_jobs=1).fit(X, words)
    out = cdask.predict(model, da.from_array(X, chunks=(5, 12, 5)))
    assert out.dtype == object
    assert list(out.compute()) == list(model.predict(X))


def test_predict_errors(client, classifier):
    clf, X = classifier
    with pytest.raises(ValueError, match="no method 'transform'"):
        cdask.predict(clf, da.from_array(X), method="transform")
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        cdask.predict(RNNClassifier(), da.from_array(X))
    with pytest.raises(TypeError, match="dask array"):
        cdask.predict(clf, "abc")
    with pytest.raises(ValueError, match="2-D or 3-D"):
        cdask.predict(clf, da.zeros((4, 3, 2, 1)))
    with pytest.raises(ValueError, match="return_state"):
        cdask.predict(clf, da.from_array(X), return_state=True)
    with pytest.raises(ValueError, match="empty list"):
        cdask.predict(clf, [])
    with pytest.raises(ValueError, match="initial_state"):
        cdask.predict(clf, da.from_array(X), initial_state=np.zeros((1, len(X), 8)))


def test_predict_without_a_cluster(classifier):
    # dask's local threaded scheduler: several threads call predict on one
    # estimator at once
    clf, X = classifier
    import dask
    with dask.config.set(scheduler="threads"):
        out = cdask.predict(clf, da.from_array(X, chunks=(16, 10, 3))).compute()
    np.testing.assert_array_equal(out, clf.predict(X))


# ---------------------------------------------------------------------------
# out-of-core training

class _Recorder(RNNRegressor):
    """Records what partial_fit is handed (runs here, not on the workers)."""

    def partial_fit(self, X, y, sample_weight=None):
        self.seen_ = getattr(self, "seen_", []) + [np.asarray(y).copy()]
        return super().partial_fit(X, y, sample_weight=sample_weight)


def test_fit_incremental_streams_chunks_in_shuffled_order(client, tmp_path):
    X, y = _regression(n=200)
    mm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32,
                                   shape=X.shape)
    mm[:] = X
    ids = np.arange(len(X), dtype=np.float64)           # y = the sample's index
    dX = da.from_array(mm, chunks=(40, 10, 2))
    rec = _Recorder(hidden_size=4, random_state=0, n_jobs=1)
    cdask.fit_incremental(rec, dX, da.from_array(ids, chunks=40), epochs=3, random_state=7)
    assert len(rec.seen_) == 15 and max(len(s) for s in rec.seen_) == 40
    epochs = [np.concatenate(rec.seen_[i:i + 5]) for i in range(0, 15, 5)]
    for e in epochs:                                     # every sample once per epoch
        np.testing.assert_array_equal(np.sort(e), ids)
    orders = [tuple(int(s[0]) for s in rec.seen_[i:i + 5]) for i in range(0, 15, 5)]
    assert len(set(orders)) > 1                          # chunk order reshuffled
    again = _Recorder(hidden_size=4, random_state=0, n_jobs=1)
    cdask.fit_incremental(again, dX, ids, epochs=3, random_state=7)   # numpy y: rechunked
    assert [int(s[0]) for s in again.seen_] == [int(s[0]) for s in rec.seen_]
    np.testing.assert_array_equal(again.predict(X), rec.predict(X))
    plain = _Recorder(hidden_size=4, random_state=0, n_jobs=1)
    cdask.fit_incremental(plain, dX, ids, epochs=2, shuffle=False)
    assert [int(s[0]) for s in plain.seen_] == [0, 40, 80, 120, 160] * 2


def test_fit_incremental_reaches_in_memory_quality(client):
    # chunked training differs from in-memory training as another seed would
    # (another order of the samples): compare the mean over three seeds
    X, y = _classification(n=600, seed=3)
    Xt, yt = _classification(n=300, seed=4)
    memory, chunked = [], []
    for seed in range(3):
        params = dict(hidden_size=16, batch_size=32, learning_rate_init=1e-2,
                      random_state=seed, n_jobs=1)
        memory.append(RNNClassifier(max_iter=8, n_iter_no_change=100, **params)
                      .fit(X, y).score(Xt, yt))
        model = cdask.fit_incremental(RNNClassifier(**params),
                                      da.from_array(X, chunks=(100, 10, 3)),
                                      da.from_array(y, chunks=100), epochs=8,
                                      random_state=seed)
        assert list(model.classes_) == ["down", "up"]       # read from y
        chunked.append(model.score(Xt, yt))
    assert min(memory) > 0.8 and min(chunked) > 0.8, (memory, chunked)
    assert abs(np.mean(chunked) - np.mean(memory)) < 0.03, (memory, chunked)


def test_fit_incremental_ragged_bag_and_weights(client):
    X, y = _classification(n=120, seed=6)
    rng = np.random.default_rng(0)
    seqs = [X[i, :rng.integers(4, 11)] for i in range(len(X))]
    clf = RNNClassifier(hidden_size=6, random_state=0, n_jobs=1)
    cdask.fit_incremental(clf, db.from_sequence(seqs, npartitions=4),
                          db.from_sequence(list(y), npartitions=4), epochs=2,
                          classes=["down", "up"])
    assert clf.n_iter_ == 8 and clf.predict(seqs).shape == (120,)
    w = np.ones(len(X))
    w[y == "up"] = 0.0                                   # weights reach partial_fit
    reg = RNNClassifier(hidden_size=6, random_state=0, n_jobs=1, learning_rate_init=0.05)
    cdask.fit_incremental(reg, da.from_array(X, chunks=40), da.from_array(y, chunks=40),
                          epochs=4, sample_weight=da.from_array(w, chunks=30))
    assert (reg.predict(X) == "down").mean() > 0.9


def _with_empty_chunks(a):
    """a as a dask array filtered by a mask that empties its 2nd and 4th
    chunks of 40, sizes then computed (the routine after a boolean filter)."""
    keep = np.ones(len(a), dtype=bool)
    keep[40:80] = keep[120:160] = False
    d = da.from_array(a, chunks=(40,) + a.shape[1:])[da.from_array(keep, chunks=40)]
    d.compute_chunk_sizes()
    assert d.chunks[0][1] == d.chunks[0][3] == 0 and d.chunks[0][0] == 40
    return d, keep


def test_predict_and_fit_incremental_skip_empty_chunks(client, classifier):
    """A zero-length chunk made predict (and fit_incremental) fail: the
    estimator refused a batch of no samples."""
    clf, X = classifier
    dX, keep = _with_empty_chunks(X)
    out = cdask.predict(clf, dX)
    assert out.chunks[0] == dX.chunks[0]
    np.testing.assert_array_equal(out.compute(), clf.predict(X[keep]))
    proba = cdask.predict(clf, dX, method="predict_proba").compute()
    np.testing.assert_allclose(proba, clf.predict_proba(X[keep]), rtol=1e-6, atol=1e-7)
    ids = np.arange(len(X), dtype=np.float64)
    rec = _Recorder(hidden_size=4, random_state=0, n_jobs=1)
    dids = da.from_array(ids, chunks=40)[da.from_array(keep, chunks=40)]
    dids.compute_chunk_sizes()
    cdask.fit_incremental(rec, dX, dids, epochs=2, random_state=0)
    full = sum(1 for c in dX.chunks[0] if c)
    assert len(rec.seen_) == 2 * full and all(len(s) for s in rec.seen_)
    np.testing.assert_array_equal(np.sort(np.concatenate(rec.seen_[:full])), ids[keep])
    # a bag with empty partitions (the first two of four), and no samples at all
    seqs = [X[i, :5] for i in range(12)]
    labels = list(clf.predict(seqs))
    index = db.from_sequence(list(range(12)), npartitions=4).filter(lambda i: i >= 6)
    fitted = RNNClassifier(hidden_size=4, random_state=0, n_jobs=1)
    cdask.fit_incremental(fitted, index.map(lambda i: seqs[i]),
                          index.map(lambda i: labels[i]), classes=["down", "up"])
    assert fitted.n_iter_ == 2                   # the two partitions that hold samples
    empty = db.from_sequence(list(range(12)), npartitions=4).filter(lambda i: False)
    with pytest.raises(ValueError, match="no samples"):
        cdask.fit_incremental(RNNClassifier(hidden_size=4, n_jobs=1),
                              empty.map(lambda i: seqs[i]), empty.map(lambda i: labels[i]),
                              classes=["down", "up"])
    with pytest.raises(ValueError, match="no samples"):       # classes read from y
        cdask.fit_incremental(RNNClassifier(hidden_size=4, n_jobs=1),
                              empty.map(lambda i: seqs[i]), empty.map(lambda i: labels[i]))
    none = da.from_array(X, chunks=(40, 10, 3))[da.from_array(np.zeros(len(X), bool),
                                                              chunks=40)]
    none.compute_chunk_sizes()
    with pytest.raises(ValueError, match="no samples"):
        cdask.fit_incremental(RNNRegressor(hidden_size=4, n_jobs=1), none, none[:, 0, 0])


def test_fit_incremental_failure_leaves_the_model_as_it_was(client):
    X, y = _regression(n=120)
    model = RNNRegressor(hidden_size=4, max_iter=2, random_state=0, n_jobs=1).fit(X, y)
    before = model.state_dict()
    pred = model.predict(X)
    bad = y.copy()
    bad[-1] = np.nan                                     # the last chunk fails to train
    with pytest.raises(ValueError):
        cdask.fit_incremental(model, da.from_array(X, chunks=40), bad, epochs=2,
                              shuffle=False)
    np.testing.assert_array_equal(model.predict(X), pred)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])
    assert model.n_iter_ == 2


class _Slow(RNNRegressor):
    def partial_fit(self, X, y, sample_weight=None):
        import time
        time.sleep(0.05)
        return super().partial_fit(X, y, sample_weight=sample_weight)


def test_fit_incremental_holds_the_fit_lock(client):
    # another thread's partial_fit during a stream that fails waits for it:
    # the failure's restore does not drop that thread's epoch
    import threading
    X, y = _regression(n=160)
    model = _Slow(hidden_size=4, random_state=0, n_jobs=1).fit(X, y)
    n0 = model.n_iter_
    bad = y.copy()
    bad[-1] = np.nan
    errors = []

    def stream():
        try:
            cdask.fit_incremental(model, da.from_array(X, chunks=40), bad, shuffle=False)
        except ValueError as exc:
            errors.append(exc)

    a = threading.Thread(target=stream)
    a.start()
    import time
    time.sleep(0.08)                                  # inside the stream
    model.partial_fit(X, y)                           # waits for the stream to end
    a.join()
    assert len(errors) == 1
    assert model.n_iter_ == n0 + 1


class _Interrupted(RNNRegressor):
    """partial_fit meets Ctrl-C on its third call: as crnn's own handler
    reports it (a warning; that call's batches so far are kept), or raised."""

    def __init__(self, raise_it=False, **kwargs):
        super().__init__(**kwargs)
        self.raise_it = raise_it

    def partial_fit(self, X, y, sample_weight=None):
        self.calls_ = getattr(self, "calls_", 0) + 1
        if self.calls_ == 3:
            if self.raise_it:
                raise KeyboardInterrupt
            warnings.warn("Training interrupted by user; the model keeps the weights after "
                          "the last completed batch.", UserWarning)
        return super().partial_fit(X, y, sample_weight=sample_weight)


@pytest.mark.parametrize("raise_it", [False, True])
def test_fit_incremental_ctrl_c_stops_and_keeps_the_progress(client, raise_it):
    X, y = _regression(n=200)
    model = _Interrupted(raise_it=raise_it, hidden_size=4, random_state=0, n_jobs=1)
    with pytest.warns(UserWarning, match="interrupted by user"):
        cdask.fit_incremental(model, da.from_array(X, chunks=40), y, epochs=2)
    assert model.calls_ == 3                        # the stream stopped there
    assert model.n_iter_ == (2 if raise_it else 3)  # what was trained is kept


def test_fit_incremental_errors(client):
    X, y = _regression(n=40)
    with pytest.raises(ValueError, match="epochs"):
        cdask.fit_incremental(RNNRegressor(), X, y, epochs=0)
    with pytest.raises(ValueError, match="y has 39 samples; X has 40"):
        cdask.fit_incremental(RNNRegressor(), X, y[:-1])
    with pytest.raises(TypeError, match="no partial_fit"):
        cdask.fit_incremental(RNNForecaster(), X, y)
    with pytest.raises(TypeError, match="not a dask bag"):
        cdask.fit_incremental(RNNRegressor(), X, db.from_sequence(list(y)))
    with pytest.raises(ValueError, match="same partitions"):
        cdask.fit_incremental(RNNRegressor(), db.from_sequence(list(X), npartitions=2), y)


# ---------------------------------------------------------------------------
# many series in a long dask dataframe

def _long_frame(n_series=6, seed=0, time="date"):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_series):
        n = int(rng.integers(50, 70))
        t = np.arange(n)
        v = 10 * s + np.sin(2 * np.pi * t / 7 + s) * (1 + s / 3) + rng.normal(0, 0.1, n)
        when = pd.date_range("2024-01-01", periods=n, freq="D") if time == "date" else t * 5
        rows.append(pd.DataFrame({"sid": f"s{s}", time: when, "value": v}))
    df = pd.concat(rows, ignore_index=True)
    return df.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # series span partitions


def test_forecaster_on_a_dask_dataframe(client):
    df = _long_frame()
    ddf = dd.from_pandas(df, npartitions=3)
    params = dict(window_length=8, hidden_size=8, max_iter=5, calibration_size=0,
                  random_state=0, n_jobs=1)
    series = cdask.collect_series(ddf, series_id="sid", target="value", time="date")
    assert list(series) == [f"s{s}" for s in range(6)]
    for key, s in series.items():
        ref = df[df.sid == key].sort_values("date")
        np.testing.assert_array_equal(s.to_numpy(), ref.value.to_numpy())
        assert s.index.freqstr == "D"
    fc = cdask.fit_forecaster(RNNForecaster(**params), ddf, series_id="sid", target="value",
                              time="date")
    local = RNNForecaster(**params).fit(list(series.values()))
    expected = local.predict(4)
    for a, b in zip(fc.predict(4), expected):
        pd.testing.assert_series_equal(a, b)
    lazy = cdask.forecast(fc, ddf, 4, series_id="sid", target="value", time="date")
    assert isinstance(lazy, dd.DataFrame) and list(lazy.columns) == ["sid", "date", "value"]
    out = lazy.compute().sort_values(["sid", "date"]).reset_index(drop=True)
    assert len(out) == 6 * 4
    for key, b in zip(series, expected):
        got = out[out.sid == key]
        np.testing.assert_allclose(got.value.to_numpy(), b.to_numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(got.date.to_numpy(), b.index.to_numpy())


def test_forecast_per_partition_without_time_and_several_columns(client):
    df = _long_frame(n_series=4, seed=1, time="t")
    df["other"] = df.value * 0.5 + 1
    # whole series per partition already: no shuffle needed
    ddf = dd.from_pandas(df.sort_values(["sid", "t"]).set_index("sid", drop=False),
                         npartitions=2, sort=True)
    ddf = ddf.reset_index(drop=True)
    fc = cdask.fit_forecaster(RNNForecaster(window_length=6, hidden_size=6, max_iter=3,
                                            calibration_size=0, random_state=0, n_jobs=1),
                              ddf, series_id="sid", target=["value", "other"], time="t")
    hist = cdask.collect_series(ddf, series_id="sid", target=["value", "other"], time="t")
    expected = fc.predict(3, y=list(hist.values()))
    for shuffle in (True, False):
        out = cdask.forecast(fc, ddf, 3, series_id="sid", target=["value", "other"],
                             time="t", shuffle=shuffle).compute()
        out = out.sort_values(["sid", "t"])
        for key, b in zip(hist, expected):
            got = out[out.sid == key]
            np.testing.assert_allclose(got[["value", "other"]].to_numpy(), b.to_numpy(),
                                       rtol=1e-5, atol=1e-6)
            np.testing.assert_array_equal(got.t.to_numpy(), b.index.to_numpy())
    # no time column: the frame's row order is each series' order, through the shuffle
    plain = [np.asarray(h) for h in hist.values()]
    expected = fc.predict(2, y=plain)
    for shuffle in (True, False):
        steps = cdask.forecast(fc, ddf.drop(columns="t"), 2, series_id="sid",
                               target=["value", "other"], shuffle=shuffle).compute()
        assert sorted(steps.columns) == ["other", "sid", "step", "value"]
        steps = steps.sort_values(["sid", "step"])
        for key, b in zip(hist, expected):
            got = steps[steps.sid == key]
            assert list(got.step) == [1, 2]
            np.testing.assert_allclose(got[["value", "other"]].to_numpy(), b, rtol=1e-5,
                                       atol=1e-6)


def test_forecast_errors(client):
    df = _long_frame(n_series=2)
    with pytest.raises(ValueError, match="no column"):
        cdask.collect_series(df, series_id="id", target="value")
    with pytest.raises(ValueError, match="repeated times"):
        cdask.collect_series(pd.concat([df, df.iloc[:1]]), series_id="sid", target="value",
                             time="date")
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        cdask.forecast(RNNForecaster(), df, 3, series_id="sid", target="value")
    fc = RNNForecaster(window_length=4, hidden_size=4, max_iter=1, calibration_size=0,
                       n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cdask.fit_forecaster(fc, df, series_id="sid", target="value", time="date")
    with pytest.raises(ValueError, match="steps"):
        cdask.forecast(fc, df, 0, series_id="sid", target="value")


def test_public_functions_have_numpydoc_sections():
    import inspect
    for name in cdask.__all__:
        doc = inspect.getdoc(getattr(cdask, name))
        assert "Parameters\n----------" in doc and "Returns\n-------" in doc, name
        for p in inspect.signature(getattr(cdask, name)).parameters:
            if p != "params":
                assert p in doc.split("Returns")[0], (name, p)


def test_forecast_without_time_keeps_the_frame_order_through_the_shuffle(client):
    df = _long_frame(n_series=5, seed=2).drop(columns="date")    # rows in random order
    ddf = dd.from_pandas(df, npartitions=4, sort=False)
    fc = RNNForecaster(window_length=6, hidden_size=6, max_iter=2, calibration_size=0,
                       random_state=0, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cdask.fit_forecaster(fc, ddf, series_id="sid", target="value")
    keys = sorted(df.sid.unique())
    expected = fc.predict(3)                     # the training series, frame order
    out = cdask.forecast(fc, ddf, 3, series_id="sid", target="value").compute()
    out = out.sort_values(["sid", "step"])
    for key, b in zip(keys, expected):
        np.testing.assert_allclose(out[out.sid == key].value.to_numpy(), b, rtol=1e-5,
                                   atol=1e-6)


def test_frames_predict_and_fit_incremental_on_the_cluster(client):
    """A model with a convolutional front-end takes 5-D (and 4-D, one
    channel) dask arrays of frames: predict equals the in-memory predict,
    and fit_incremental without shuffling equals partial_fit over the same
    chunks in order, here."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(24, 3, 9, 8, 2)).astype(np.float32)
    y = X[:, -1, 3:6, 3:6, 0].mean(axis=(1, 2))
    conv = [(3, 3, 1), {"filters": 4, "kernel": 3, "pool": 2}]

    def make():
        return RNNRegressor(conv=conv, hidden_size=5, random_state=0, n_jobs=1)

    dX = da.from_array(X, chunks=(8, 3, 9, 8, 2))
    m = cdask.fit_incremental(make(), dX, da.from_array(y, chunks=8), epochs=2, shuffle=False)
    ref = make()
    for _ in range(2):
        for a in range(0, 24, 8):
            ref.partial_fit(X[a:a + 8], y[a:a + 8])
    np.testing.assert_array_equal(m._theta, ref._theta)
    pred = cdask.predict(m, dX)
    assert pred.chunks == ((8, 8, 8),)
    np.testing.assert_allclose(pred.compute(), m.predict(X), rtol=1e-6, atol=1e-7)
    gray = make().fit(X[..., 0], y)                                # (n, T, H, W): 4-D
    np.testing.assert_allclose(cdask.predict(gray, da.from_array(X[..., 0], chunks=(12, 3, 9, 8))),
                               gray.predict(X[..., 0]), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="4-D or 5-D .*for a model with conv"):
        cdask.predict(m, da.zeros((4, 3, 2)))
    with pytest.raises(ValueError, match="4-D or 5-D"):
        cdask.fit_incremental(make(), da.zeros((4, 3, 2)), np.zeros(4))
    # the fitted network decides, as in the estimator: conv set after a fit on
    # feature vectors takes effect at the next fit
    plain = RNNRegressor(hidden_size=3, random_state=0, n_jobs=1).fit(X[:, :, 0, :4, 0], y)
    plain.set_params(conv=conv)
    Xf = da.from_array(X[:, :, 0, :4, 0], chunks=(8, 3, 4))
    np.testing.assert_array_equal(cdask.predict(plain, Xf).compute(),
                                  plain.predict(X[:, :, 0, :4, 0]))
    cdask.fit_incremental(plain, Xf, y)
    assert plain.n_features_in_ == 4


def test_scene_labeller_predict_on_the_cluster(client):
    """Images, 3-D (one channel) or 4-D, whatever the conv parameter."""
    from crnn import RNNSceneLabeler
    rng = np.random.default_rng(6)
    img, lab = rng.normal(size=(6, 8, 8)), rng.integers(0, 2, size=(6, 8, 8))
    for conv, X in (([(2, 3, 1)], img), (None, img[..., None])):
        m = RNNSceneLabeler(conv=conv, hidden_size=2, max_iter=1, random_state=0, n_jobs=1)
        m.fit(X, lab)
        dX = da.from_array(X, chunks=(3,) + X.shape[1:])
        np.testing.assert_array_equal(cdask.predict(m, dX).compute(), m.predict(X))
        np.testing.assert_allclose(cdask.predict(m, dX, method="predict_proba").compute(),
                                   m.predict_proba(X), rtol=1e-6, atol=1e-7)
        with pytest.raises(ValueError, match="3-D or 4-D images"):
            cdask.predict(m, da.zeros((2, 3, 8, 8, 1)))
