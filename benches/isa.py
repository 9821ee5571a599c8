"""Pin crnn and PyTorch to the same SIMD level for a benchmark: --isa.

    python benches/report.py --isa avx2      # both libraries at AVX2

Sets, before either library is imported (they read them once, at load):

- ``CRNN_MAX_SIMD``: crnn's kernels (crnn/_isa.py);
- ``ONEDNN_MAX_CPU_ISA``: oneDNN, torch's LSTM/GRU primitives and matmuls;
- ``ATEN_CPU_CAPABILITY``: ATen's own vectorized kernels (element-wise,
  activations);
- ``MKL_ENABLE_INSTRUCTIONS``: MKL's sgemm, which torch's CPU build calls
  for the products of its native (non-oneDNN) RNN loops.

``describe()`` reports what each library then says it runs, so a table is
never labelled with a level that did not apply.
"""
import os
import sys

# --isa value: (CRNN_MAX_SIMD, ONEDNN_MAX_CPU_ISA, ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS)
ISAS = {
    "none": ("none", "SSE41", "default", "SSE4_2"),
    "avx2": ("avx2", "AVX2", "avx2", "AVX2"),
    "avx512": ("avx512", "AVX512_CORE", "avx512", "AVX512"),
    "avx512_bf16": ("avx512_bf16", "AVX512_CORE_BF16", "avx512", "AVX512"),
}
VARS = ("CRNN_MAX_SIMD", "ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def pin(isa):
    """Set the four variables for `isa` (None: leave the environment alone)."""
    if isa is None:
        return
    if isa not in ISAS:
        raise SystemExit(f"--isa {isa!r}: use one of {', '.join(ISAS)}")
    loaded = [m for m in ("crnn", "torch") if m in sys.modules]
    if loaded:
        raise RuntimeError(f"--isa must be applied before {' and '.join(loaded)} is imported")
    for var, value in zip(VARS, ISAS[isa]):
        os.environ[var] = value


def from_argv(argv=None):
    """pin() the value of an --isa option of argv (sys.argv), for scripts
    that import crnn at the top; returns it."""
    argv = sys.argv[1:] if argv is None else argv
    isa = None
    for i, a in enumerate(argv):
        if a == "--isa" and i + 1 < len(argv):
            isa = argv[i + 1]
        elif a.startswith("--isa="):
            isa = a.split("=", 1)[1]
    pin(isa)
    return isa


def describe():
    """One line: the level each library runs at, as it reports it."""
    from crnn import _isa, _kernels

    parts = [f"crnn {_isa.NAMES[_kernels.isa_level()]} "
             f"(CPU {_isa.NAMES[_kernels.cpu_isa_level()]})"]
    try:
        import torch

        parts.append(f"torch ATen {torch.backends.cpu.get_cpu_capability()}")
    except ImportError:
        pass
    env = ", ".join(f"{v}={os.environ[v]}" for v in VARS if v in os.environ)
    return "; ".join(parts) + (f"; {env}" if env else "; no ISA variables set")
