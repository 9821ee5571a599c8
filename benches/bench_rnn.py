"""crnn vs PyTorch vs numpy, with pytest-benchmark.

    pytest benches/ --benchmark-only
    pytest benches/ --benchmark-only --benchmark-save=mine      # keep the results
    pytest benches/ --benchmark-only --benchmark-compare        # against the last saved
    pytest benches/ --benchmark-only -k "small and train"       # a part

Benchmarks are grouped by mode, case and thread count, so each group's table
compares the three implementations.  The torch ones skip without torch.
``python benches/report.py`` prints the summary table with ratios and GFLOP/s.
"""
import time

import pytest

from impls import CASES, IMPLS, MODES, thread_counts, torch_available


@pytest.mark.parametrize("threads", thread_counts(), ids=lambda t: f"{t}t")
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", list(IMPLS))
def test_rnn(benchmark, impl, mode, case, threads):
    if impl == "torch" and not torch_available():
        pytest.skip("torch is not installed (pip install torch==2.13.0)")
    benchmark.group = f"{mode}-{case}-{threads}t"
    D, H, B, T = CASES[case]
    benchmark.extra_info.update(D=D, H=H, B=B, T=T, threads=threads)
    fn = IMPLS[impl](case, threads)[mode]
    fn()
    time.sleep(0.25)   # let the previous benchmark's thread pools go idle (see report.py)
    benchmark(fn)
