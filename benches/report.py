"""Print the crnn / torch / numpy table of the benchmark cases.

    python benches/report.py                 # every case, 1 thread and all cores
    python benches/report.py --cases small mid --threads 2 --rounds 9
    python benches/report.py --isa avx2      # crnn and torch both at AVX2 (benches/isa.py)

Within a case the three implementations run in interleaved rounds (crnn,
torch, numpy, crnn, torch, ...), so a noisy shared machine slows them alike;
each time is the median over rounds of the mean time per call in a round
(after a pause that lets the previous library's threads go idle).
Ratios are other / crnn (above 1: crnn is faster).  crnn's GFLOP/s counts
2*B*T*(D*H + H*H) for the forward pass and three times that for a training
step (times 3 or 4 for the GRU's or LSTM's gates); it is shown next to the
float32 GEMM rate of the same BLAS at the same thread count, measured in the
same run.
"""
import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from impls import CASES, IMPLS, MODES, flops, sgemm_gflops, thread_counts, torch_available  # noqa: E402
import isa  # noqa: E402


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_interleaved(fns, rounds, target=0.05, cooldown=0.25):
    """Median seconds per call of each fn, measured in interleaved rounds.

    Before each block the previous library's thread pool gets `cooldown`
    seconds to go idle: OpenBLAS's worker threads (numpy's loop) keep
    spinning for ~0.1 s after a call and would slow whatever runs next."""
    reps = {}
    for name, fn in fns.items():
        fn()                                   # warm up
        t0 = time.perf_counter()
        fn()
        one = max(time.perf_counter() - t0, 1e-6)
        reps[name] = max(1, int(target / one))
    samples = {name: [] for name in fns}
    for r in range(rounds):
        names = list(fns)
        names = names[r % len(names):] + names[:r % len(names)]
        for name in names:
            fn = fns[name]
            time.sleep(cooldown)
            fn()
            t0 = time.perf_counter()
            for _ in range(reps[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / reps[name])
    return {name: float(np.median(s)) for name, s in samples.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    ap.add_argument("--threads", nargs="*", type=int, default=list(thread_counts()))
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--no-numpy", action="store_true", help="skip the (slow) numpy loop")
    ap.add_argument("--cell", default="rnn", choices=["rnn", "gru", "lstm"],
                    help="recurrent cell (the numpy loop exists for the Elman rnn only)")
    ap.add_argument("--isa", choices=list(isa.ISAS), default=None,
                    help="pin crnn and torch to this SIMD level (default: each its best)")
    args = ap.parse_args(argv)
    isa.pin(args.isa)

    import crnn
    impls = ["crnn"] + (["torch"] if torch_available() else []) + \
        ([] if args.no_numpy or args.cell != "rnn" else ["numpy"])
    if torch_available():
        import torch
        tv = torch.__version__
    else:
        tv = "not installed"
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; crnn {crnn.__version__}, "
          f"torch {tv}, numpy {np.__version__}; {args.rounds} interleaved rounds, float32; "
          f"cell {args.cell}")
    print(f"SIMD: {isa.describe()}\n")

    sgemm = {t: sgemm_gflops(t) for t in args.threads}
    head = ("| case (D, H, B, T) | thr | mode | crnn ms | torch ms | numpy ms | torch/crnn "
            "| numpy/crnn | crnn GFLOP/s | torch GFLOP/s | sgemm GFLOP/s |")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for case in args.cases:
        for threads in args.threads:
            fns = {impl: IMPLS[impl](case, threads, args.cell) for impl in impls}
            for mode in args.modes:
                t = time_interleaved({impl: fns[impl][mode] for impl in impls}, args.rounds)
                c = t["crnn"]
                row = [f"{case} {CASES[case]}", str(threads), mode, f"{1e3 * c:.3f}"]
                for other in ("torch", "numpy"):
                    row.append(f"{1e3 * t[other]:.3f}" if other in t else "-")
                for other in ("torch", "numpy"):
                    row.append(f"{t[other] / c:.1f}x" if other in t else "-")
                row.append(f"{flops(mode, case, args.cell) / c / 1e9:.1f}")
                row.append(f"{flops(mode, case, args.cell) / t['torch'] / 1e9:.1f}"
                           if "torch" in t else "-")
                row.append(f"{sgemm[threads]:.0f}")
                print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
