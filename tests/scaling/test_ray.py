"""crnn on a local Ray cluster (num_cpus=2): model search under Ray's joblib
backend and the thread budget crnn's kernels get inside Ray tasks and actors.

What Ray does, as measured with Ray 2.60: it sets ``os.environ["OMP_NUM_THREADS"]``
to each task's ``num_cpus`` (1 by default) before the task runs, in the task's
worker process, every task anew.  The OpenMP runtime, though, reads that
variable once, when it is loaded (the first ``import crnn`` in that process),
and crnn's budget is the runtime's: a worker that ran a 1-CPU task first
keeps a budget of 1 thread when Ray later reuses it for a ``num_cpus=2`` task
(and the other way round).  Only the behaviour that does not depend on which
worker Ray picks is tested here: a fresh process (an actor, or a task with its
own ``runtime_env``) gets its ``num_cpus`` as budget, and an explicit
``n_jobs`` is always honoured.

Ray sets OMP_NUM_THREADS only where the driver has not: the fixture runs Ray
with the variable unset (a dask LocalCluster started earlier in this process
leaves it at 1).

The workers cannot import this test module, so its functions travel by value.
"""
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed")
ray_joblib = pytest.importorskip("ray.util.joblib", reason="Ray is not installed")

import joblib  # noqa: E402
from numpy.testing import assert_array_equal  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

from crnn import RNNClassifier  # noqa: E402

# the functions this module runs on Ray workers travel by value
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def ray_cluster():
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("OMP_NUM_THREADS", raising=False)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 ignore_reinit_error=True)
        ray_joblib.register_ray()
        try:
            yield
        finally:
            ray.shutdown()


def _thread_info():
    """Runs in a Ray worker: the environment Ray set and crnn's thread budget."""
    import os

    import crnn._show
    import crnn._nn.threads
    return {
        "pid": os.getpid(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "config_threads": crnn._show.config_info()["threads"],
        "n_jobs=None": crnn._nn.threads.effective_n_threads(None),
        "n_jobs=2": crnn._nn.threads.effective_n_threads(2),
    }


# ---------------------------------------------------------------------------
# the thread budget: first, while the cluster's task workers are still fresh

def test_default_task_gets_one_thread(ray_cluster):
    info = ray.get(ray.remote(_thread_info).remote())
    assert info["OMP_NUM_THREADS"] == "1"
    assert info["n_jobs=None"] == 1
    assert info["config_threads"]["n_jobs=None"] == 1
    # an explicit n_jobs is the user's word, whatever Ray set
    assert info["n_jobs=2"] == 2


def test_two_cpu_task_env_is_set_per_task(ray_cluster):
    # Ray sets OMP_NUM_THREADS for every task, but a reused worker keeps the
    # OpenMP budget of the first task it ran (here typically 1): only assert
    # what holds whichever worker runs it.
    probe = ray.remote(_thread_info)
    first = ray.get(probe.remote())
    info = ray.get(probe.options(num_cpus=2).remote())
    assert info["OMP_NUM_THREADS"] == "2"
    assert info["n_jobs=None"] in (1, 2)
    if info["pid"] == first["pid"]:  # the same worker: its budget did not move
        assert info["n_jobs=None"] == first["n_jobs=None"]
    assert info["n_jobs=2"] == 2
    print("default task:", first, "\nnum_cpus=2 task:", info)


def test_two_cpu_task_with_own_runtime_env_gets_two_threads(ray_cluster):
    # its own runtime_env gives the task its own worker process, started with
    # OMP_NUM_THREADS=2, so the OpenMP runtime is loaded with that value
    probe = ray.remote(_thread_info).options(
        num_cpus=2, runtime_env={"env_vars": {"OMP_NUM_THREADS": "2"}})
    info = ray.get(probe.remote())
    assert info["OMP_NUM_THREADS"] == "2"
    assert info["n_jobs=None"] == 2


def test_two_cpu_actor_gets_two_threads(ray_cluster):
    # an actor is a dedicated, fresh worker process (1-CPU actors: the joblib
    # backend's pool below)
    num_cpus = 2

    @ray.remote
    class Probe:
        def info(self):
            return _thread_info()

    actor = Probe.options(num_cpus=num_cpus).remote()
    try:
        info = ray.get(actor.info.remote())
    finally:
        ray.kill(actor)
    assert info["OMP_NUM_THREADS"] == str(num_cpus)
    assert info["n_jobs=None"] == num_cpus


def test_joblib_backend_workers_get_one_thread(ray_cluster):
    with joblib.parallel_config(backend="ray"):
        infos = joblib.Parallel(n_jobs=-1)(joblib.delayed(_thread_info)() for _ in range(4))
    assert [i["OMP_NUM_THREADS"] for i in infos] == ["1"] * 4
    assert [i["n_jobs=None"] for i in infos] == [1] * 4


# ---------------------------------------------------------------------------
# model search

def test_grid_search_on_ray_matches_local(ray_cluster):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(160, 10, 3)).astype(np.float32)
    y = np.where(X[:, :, 0].mean(1) > 0, "up", "down")

    def search():
        return GridSearchCV(
            RNNClassifier(hidden_size=6, max_iter=4, batch_size=32, random_state=0, n_jobs=1),
            {"hidden_size": [4, 8], "learning_rate_init": [1e-2, 3e-3]}, cv=3, n_jobs=-1)

    with joblib.parallel_config(backend="ray"):
        on_ray = search().fit(X, y)
    local = search().fit(X, y)

    assert_array_equal(on_ray.cv_results_["mean_test_score"],
                       local.cv_results_["mean_test_score"])
    assert on_ray.best_params_ == local.best_params_
    assert_array_equal(on_ray.predict_proba(X), local.predict_proba(X))
