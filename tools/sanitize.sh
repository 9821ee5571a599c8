#!/usr/bin/env bash
# Build crnn's extensions with AddressSanitizer + UndefinedBehaviorSanitizer
# (and, with CRNN_BOUNDSCHECK=1, Cython's bounds checks and NaN-poisoned
# workspaces), in a copy of this tree, and run the tests that reach the
# kernels under them.  Any sanitizer report fails the run.
#
#   tools/sanitize.sh                 # ASan + UBSan + bounds checks, kernel tests
#   tools/sanitize.sh tests/          # the whole suite (slower)
#
# Needs gcc with libasan/libubsan (Debian: gcc); uses the python3 on PATH,
# which must have the build and test requirements (numpy, scipy, Cython,
# scikit-learn, threadpoolctl, joblib, pytest, hypothesis).
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git -C "$src" ls-files -z | (cd "$src" && xargs -0 cp --parents -t "$work")
cd "$work"

san="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined"
CRNN_BOUNDSCHECK=1 CFLAGS="$san" LDFLAGS="$san" \
    python3 setup.py -q build_ext --inplace >build.log 2>&1 || { tail -40 build.log; exit 1; }

libasan="$(gcc -print-file-name=libasan.so)"
# Python itself is not built with ASan: its allocations are not tracked for
# leaks (detect_leaks=0), everything else is checked.
export LD_PRELOAD="$libasan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$work" CRNN_SANITIZE=1
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=(tests/kernels/test_kernels.py tests/nn/test_engine.py tests/nn/test_streaming.py
           tests/nn/test_varlen.py tests/base/test_reliability.py tests/nn/test_training.py
           "tests/kernels/test_isa.py::test_capped_process_runs_the_capped_kernels[avx2]"
           tests/kernels/test_seq2seq_kernels.py tests/kernels/test_ctc_kernels.py tests/forecasting/test_ets.py
           tests/kernels/test_bf16.py::test_rounding_is_the_hardware_rounding
           tests/kernels/test_bf16.py::test_general_product_matches_numpy
           tests/kernels/test_bf16.py::test_packed_product_matches_numpy
           tests/kernels/test_bf16.py::test_row_blocks_of_every_size)
fi
# the kernels' tests also call the test-only crnn._kernel_hooks: built here too
python3 -c "import crnn._kernels as k, crnn._kernel_hooks; assert k.debug_build(), 'not the debug build'"
python3 -m pytest -q -p no:cacheprovider -x "${tests[@]}"
