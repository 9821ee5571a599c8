# OpenMP helpers with no-op stand-ins when the extension is built without
# OpenMP, and the flush-to-zero switch used by every worker thread.

cdef extern from *:
    """
    #ifdef _OPENMP
        #include <omp.h>
        #define CRNN_OPENMP_ENABLED 1
        /* orphaned barrier: binds to the enclosing parallel region */
        #if defined(_MSC_VER) && !defined(__clang__)
        static __inline void crnn_barrier(void) { __pragma(omp barrier) }
        #else
        static inline void crnn_barrier(void) {
            _Pragma("omp barrier")
        }
        #endif
    #else
        #define CRNN_OPENMP_ENABLED 0
        #define omp_get_thread_num() 0
        #define omp_get_num_threads() 1
        #define omp_get_max_threads() 1
        static inline void crnn_barrier(void) {}
    #endif

    /* Denormal floats make the hidden-state recurrence many times slower when
       activations decay towards zero.  Each kernel turns flush-to-zero and
       denormals-are-zero on for its thread and restores the caller's mode
       after, so nothing leaks into the user's own numpy code. */
    #if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
        #include <xmmintrin.h>
        static inline unsigned int crnn_ftz_enter(void) {
            unsigned int old = _mm_getcsr();
            _mm_setcsr(old | 0x8040u);
            return old;
        }
        static inline void crnn_ftz_leave(unsigned int old) { _mm_setcsr(old); }
    #else
        static inline unsigned int crnn_ftz_enter(void) { return 0u; }
        static inline void crnn_ftz_leave(unsigned int old) { (void)old; }
    #endif
    """
    bint CRNN_OPENMP_ENABLED
    int omp_get_thread_num() noexcept nogil
    int omp_get_num_threads() noexcept nogil
    void crnn_barrier() noexcept nogil
    int omp_get_max_threads() noexcept nogil
    unsigned int crnn_ftz_enter() noexcept nogil
    void crnn_ftz_leave(unsigned int old) noexcept nogil
