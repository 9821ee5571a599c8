"""Thread counts and BLAS thread limits."""
import os
import warnings
from contextlib import contextmanager

from threadpoolctl import ThreadpoolController

from .._openmp import omp_max_threads, openmp_enabled

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

# GNU OpenMP cannot start a team in a child made by fork() once the parent has
# run one: the child's first parallel region waits forever for threads that
# were not copied.  A child forked after crnn ran several threads therefore
# runs its kernels single-threaded (a team of one never touches the pool).
_OMP_TEAMS_RUN = False
_FORKED_AFTER_TEAMS = False
_FORK_WARNED = False


def _after_fork_in_child():
    global _FORKED_AFTER_TEAMS, _FORK_WARNED
    _FORKED_AFTER_TEAMS = _FORKED_AFTER_TEAMS or _OMP_TEAMS_RUN
    _FORK_WARNED = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def fork_limited():
    """True in a process forked after crnn ran OpenMP threads (its kernels
    then run single-threaded)."""
    return _FORKED_AFTER_TEAMS


def _fork_cap(n):
    """n threads, or 1 (with a one-time warning) in a fork-limited child;
    notes that OpenMP teams are in use."""
    global _OMP_TEAMS_RUN, _FORK_WARNED
    if n <= 1:
        return n
    if _FORKED_AFTER_TEAMS:
        if not _FORK_WARNED:
            _FORK_WARNED = True
            warnings.warn(
                "crnn runs single-threaded in this process: it was forked after crnn "
                "had used OpenMP threads, and GNU OpenMP cannot start threads in such a "
                "child (it would hang). For parallel worker processes use the 'spawn' or "
                "'forkserver' start method, or joblib's default loky backend.",
                RuntimeWarning, stacklevel=3)
        return 1
    _OMP_TEAMS_RUN = True
    return n


def cpu_count():
    """Usable cores: CPU affinity and container CPU quotas (cgroups) taken
    into account, as joblib (and so scikit-learn) counts them.  Cached."""
    global _CPU_COUNT
    if _CPU_COUNT is None:
        from joblib import cpu_count as joblib_cpu_count
        _CPU_COUNT = max(1, int(joblib_cpu_count(only_physical_cores=False)))
    return _CPU_COUNT


def physical_memory():
    """Bytes of memory of this machine (None where it cannot be read): what
    requests whose buffers are sized before they run (long forecasts,
    translation) are checked against before any allocation."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):       # not POSIX
        return None


def max_n_threads():
    """The most threads the kernels use: omp_get_max_threads() when
    OMP_NUM_THREADS is set (the user's word, even above the core count),
    else that capped by the usable cores (scikit-learn's rule)."""
    if not openmp_enabled():
        return 1
    if os.environ.get("OMP_NUM_THREADS"):
        return max(1, omp_max_threads())
    return max(1, min(omp_max_threads(), cpu_count()))


def thread_ceiling():
    """The most threads an explicit n_jobs gets: 4x the usable cores and at
    least 64.  Oversubscription on request stays possible, but not the
    hundred thousand threads that crashed the process (each thread's stack
    and workspace)."""
    return max(64, 4 * cpu_count())


def effective_n_threads(n_jobs):
    """Threads for the kernels from an ``n_jobs`` value, as scikit-learn's
    ``_openmp_effective_n_threads``: None: max_n_threads(); k > 0: k, up to
    thread_ceiling(); k < 0: max_n_threads() + 1 + k (-1: all of them), at
    least 1.  Always 1 without OpenMP."""
    if n_jobs is not None and int(n_jobs) == 0:
        raise ValueError("n_jobs == 0 has no meaning; use None, a positive or a negative int.")
    if not openmp_enabled():
        return 1
    if n_jobs is None:
        return _fork_cap(max_n_threads())
    n_jobs = int(n_jobs)
    if n_jobs > 0:
        return _fork_cap(min(n_jobs, thread_ceiling()))
    return _fork_cap(max(1, max_n_threads() + 1 + n_jobs))
