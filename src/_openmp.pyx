"""What the build knows about OpenMP and the compiler."""
from cython.parallel cimport parallel

from crnn_omp cimport (CRNN_OPENMP_ENABLED, omp_get_max_threads, omp_get_num_threads,
                       omp_get_thread_num)

cdef extern from *:
    """
    #if defined(__clang__)
        #define CRNN_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
        #define CRNN_COMPILER "gcc " __VERSION__
    #elif defined(_MSC_VER)
        #define CRNN_STR2(x) #x
        #define CRNN_STR(x) CRNN_STR2(x)
        #define CRNN_COMPILER "msvc " CRNN_STR(_MSC_VER)
    #else
        #define CRNN_COMPILER "unknown"
    #endif
    #ifdef _OPENMP
        #define CRNN_OPENMP_SPEC _OPENMP
    #else
        #define CRNN_OPENMP_SPEC 0
    #endif
    """
    const char* CRNN_COMPILER
    int CRNN_OPENMP_SPEC


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(CRNN_OPENMP_ENABLED)


def omp_max_threads():
    """omp_get_max_threads() (honours OMP_NUM_THREADS); 1 without OpenMP."""
    return omp_get_max_threads()


def omp_team_size(int n_threads):
    """The size of the team OpenMP forms for a parallel region asked for
    ``n_threads`` threads in this process, as the kernels ask (the runtime
    may grant fewer: OMP_THREAD_LIMIT, or a child forked after a team); 1
    without OpenMP."""
    cdef int size[1]        # an array element: shared in the region, not private
    size[0] = 1
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1; got {n_threads}.")
    with nogil, parallel(num_threads=n_threads):
        if omp_get_thread_num() == 0:
            size[0] = omp_get_num_threads()
    return size[0]


def build_info():
    """The compiler the extensions were built with, and the OpenMP
    specification date it implements (_OPENMP; 0: built without OpenMP)."""
    return {"compiler": CRNN_COMPILER.decode("utf-8", "replace").strip(),
            "openmp_spec": int(CRNN_OPENMP_SPEC)}
