"""Thread counts and BLAS thread limits."""
import os
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from ._openmp import omp_max_threads, openmp_enabled

_CONTROLLER = None


def threadpool_controller():
    """One ThreadpoolController per process: building one scans the loaded
    libraries (0.2-1 ms); its limit() is then cheap."""
    global _CONTROLLER
    if _CONTROLLER is None:
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


_BLAS_LIBS = None


@contextmanager
def blas_single_threaded():
    """Keep BLAS to one thread while the kernels run (they call it from inside
    their own OpenMP threads).

    Equivalent to ``controller.limit(limits=1, user_api="blas")`` on a cached
    controller, but it talks to the BLAS libraries' controllers directly and
    only sets what differs: 4 us instead of 16 us per call, which matters for
    predict on small inputs.
    """
    global _BLAS_LIBS
    if _BLAS_LIBS is None:
        _BLAS_LIBS = threadpool_controller().select(user_api="blas").lib_controllers
    changed = []
    for lib in _BLAS_LIBS:
        n = lib.get_num_threads()
        if n != 1:
            lib.set_num_threads(1)
            changed.append((lib, n))
    try:
        yield
    finally:
        for lib, n in changed:
            lib.set_num_threads(n)


_CPU_COUNT = None


def cpu_count():
    """Usable cores: CPU affinity and container CPU quotas (cgroups) taken
    into account, as joblib (and so scikit-learn) counts them.  Cached."""
    global _CPU_COUNT
    if _CPU_COUNT is None:
        from joblib import cpu_count as joblib_cpu_count
        _CPU_COUNT = max(1, int(joblib_cpu_count(only_physical_cores=False)))
    return _CPU_COUNT


def max_n_threads():
    """The most threads the kernels use: omp_get_max_threads() when
    OMP_NUM_THREADS is set (the user's word, even above the core count),
    else that capped by the usable cores (scikit-learn's rule)."""
    if not openmp_enabled():
        return 1
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, omp_max_threads())
    return max(1, min(omp_max_threads(), cpu_count()))


def effective_n_threads(n_jobs):
    """Threads for the kernels from an ``n_jobs`` value, as scikit-learn's
    ``_openmp_effective_n_threads``: None: max_n_threads(); k > 0: k;
    k < 0: max_n_threads() + 1 + k (-1: all of them), at least 1.  Always 1
    without OpenMP."""
    if n_jobs is not None and int(n_jobs) == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive or a negative int.")
    if not openmp_enabled():
        return 1
    if n_jobs is None:
        return max_n_threads()
    n_jobs = int(n_jobs)
    if n_jobs > 0:
        return n_jobs
    return max(1, max_n_threads() + 1 + n_jobs)
