"""The SIMD level crnn's kernels may use: CRNN_MAX_SIMD, read once.

``CRNN_MAX_SIMD`` caps the instruction set the kernels dispatch to, as
oneDNN's ``ONEDNN_MAX_CPU_ISA`` does for PyTorch: ``none`` (baseline x86-64
code, recurrent products through BLAS), ``avx2`` (AVX2 + FMA), ``avx512``
(AVX-512 F/BW/DQ/VL/CD) or ``avx512_bf16`` (the default: everything the CPU
has, bfloat16 products included).  A cap above the CPU changes nothing; the
kernels run at the lower of the two.  It is read when crnn is imported (every
kernel module takes it when it loads); changing the variable later has no
effect, as with OMP_NUM_THREADS.  An unknown value is refused at import
with a message naming the variable and the accepted values.
"""
import os

ENV = "CRNN_MAX_SIMD"
LEVELS = {"none": 0, "avx2": 1, "avx512": 2, "avx512_bf16": 3}
NAMES = {0: "none (baseline x86-64; recurrent products through BLAS)", 1: "AVX2 + FMA",
         2: "AVX-512", 3: "AVX-512 + BF16"}


def parse(value):
    """The level a CRNN_MAX_SIMD value names (None or empty: no cap)."""
    if value is None or not value.strip():
        return LEVELS["avx512_bf16"]
    key = value.strip().lower()
    if key not in LEVELS:
        raise ValueError(
            f"{ENV}={value!r} is not a SIMD level crnn knows; use one of "
            f"{', '.join(LEVELS)} (or leave it unset for the CPU's best)")
    return LEVELS[key]


RAW = os.environ.get(ENV)
CAP = parse(RAW)
VALUE = None if RAW is None else RAW.strip()      # as shown (show_config, messages)
