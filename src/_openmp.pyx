"""What the build knows about OpenMP and the compiler."""
from crnn_omp cimport CRNN_OPENMP_ENABLED, omp_get_max_threads

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


def build_info():
    """The compiler the extensions were built with, and the OpenMP
    specification date it implements (_OPENMP; 0: built without OpenMP)."""
    return {"compiler": CRNN_COMPILER.decode("utf-8", "replace").strip(),
            "openmp_spec": int(CRNN_OPENMP_SPEC)}
