"""What the build knows about OpenMP."""
from crnn_omp cimport CRNN_OPENMP_ENABLED, omp_get_max_threads


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return bool(CRNN_OPENMP_ENABLED)


def omp_max_threads():
    """omp_get_max_threads() (honours OMP_NUM_THREADS); 1 without OpenMP."""
    return omp_get_max_threads()
