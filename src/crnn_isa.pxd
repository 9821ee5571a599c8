# crnn_isa.h: the SIMD level the kernels run at and its cap, CRNN_MAX_SIMD
# (read once by crnn._isa).  Every kernel module calls isa_init() when it
# loads and exposes isa_ran() for the tests.
cdef extern from "crnn_isa.h" nogil:
    int crnn_isa_cpu()
    int crnn_isa_level()
    void crnn_isa_set_cap(int cap)
    int crnn_isa_ran_mask(int family)
    int crnn_isa_vec
    int CRNN_MULTIVERSION
    int CRNN_RAN_PRODUCTS
    int CRNN_RAN_BF16
    int CRNN_RAN_VECTOR


cdef inline void isa_init() except *:
    """Cap this module's kernels at crnn._isa.CAP (CRNN_MAX_SIMD)."""
    from crnn._isa import CAP
    crnn_isa_set_cap(CAP)


cdef inline dict isa_ran_levels():
    """The SIMD levels each family of kernels of this module has run at
    since it loaded: {"products": [...], "bf16": [...], "vector": [...]}."""
    cdef dict out = {}
    cdef int level, mask
    for name, fam in (("products", CRNN_RAN_PRODUCTS), ("bf16", CRNN_RAN_BF16),
                      ("vector", CRNN_RAN_VECTOR)):
        mask = crnn_isa_ran_mask(fam)
        out[name] = [level for level in range(4) if mask & (1 << level)]
    return out
