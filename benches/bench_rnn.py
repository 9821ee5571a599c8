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

from impls import CASES, IMPLS, MODES, all_cores, thread_counts, torch_available


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


@pytest.mark.parametrize("H", [64, 256])
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("impl", ["crnn", "torch"])
def test_step(benchmark, impl, cell, H):
    """One streaming step (see step_latency.py), all cores."""
    from step_latency import crnn_step, torch_step

    if impl == "torch":
        if not torch_available():
            pytest.skip("torch is not installed (pip install torch==2.13.0)")
        import torch
        torch.set_num_threads(all_cores())
    benchmark.group = f"step-{cell}-H{H}"
    fn = (crnn_step if impl == "crnn" else torch_step)(cell, H, all_cores())
    fn()
    time.sleep(0.25)
    benchmark(fn)


@pytest.mark.parametrize("threads", thread_counts(), ids=lambda t: f"{t}t")
@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("impl", ["crnn", "torch-packed", "torch-padded"])
def test_ragged(benchmark, impl, mode, cell, threads):
    """Variable-length batch (see ragged.py)."""
    from impls import RAGGED_IMPLS

    if impl.startswith("torch") and not torch_available():
        pytest.skip("torch is not installed (pip install torch==2.13.0)")
    benchmark.group = f"ragged-{mode}-{cell}-{threads}t"
    fn = RAGGED_IMPLS[impl](cell, threads)[mode]
    fn()
    time.sleep(0.25)
    benchmark(fn)
