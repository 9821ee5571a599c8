"""bfloat16 against float32, crnn against PyTorch (issue 15).

    python benches/bf16.py                      # mid, large, wide; LSTM; 1 thread and all
    python benches/bf16.py --cell gru --cases large --threads 2

Five implementations of one case run in interleaved rounds (report.py's
timing): crnn float32, crnn compute_dtype="bfloat16" (float32 weights,
bfloat16 products), torch float32, torch under
torch.autocast("cpu", dtype=torch.bfloat16) (mixed precision, the same
contract as crnn's) and torch with bfloat16 modules, input and Adam (no
float32 master weights).  Ratios: torch-bf16/crnn-bf16 uses the faster of
torch's two bfloat16 forms; crnn-fp32/crnn-bf16 is what bfloat16 buys crnn.
crnn needs a CPU with AVX512-BF16 for its bfloat16 rows.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from impls import CASES, MODES, crnn_fns, flops, thread_counts, torch_fns  # noqa: E402
from report import cpu_name, time_interleaved  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="*", default=["mid", "large", "wide"],
                    choices=list(CASES))
    ap.add_argument("--threads", nargs="*", type=int, default=list(thread_counts()))
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cell", default="lstm", choices=["rnn", "gru", "lstm"])
    args = ap.parse_args(argv)

    import torch

    import crnn
    from crnn import _kernels
    if not _kernels.bf16_supported():
        print(_kernels.BF16_UNSUPPORTED)
        return 1
    print(f"CPU: {cpu_name()}, {os.cpu_count()} logical cores; crnn {crnn.__version__}, "
          f"torch {torch.__version__}; {args.rounds} interleaved rounds; cell {args.cell}\n")
    head = ("| case (D, H, B, T) | thr | mode | crnn fp32 ms | crnn bf16 ms | torch fp32 ms "
            "| torch autocast ms | torch bf16 ms | crnn fp32/bf16 | torch bf16/crnn bf16 "
            "| torch fp32/crnn bf16 | crnn bf16 GFLOP/s |")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for case in args.cases:
        for threads in args.threads:
            fns = {
                "crnn32": crnn_fns(case, threads, args.cell),
                "crnn16": crnn_fns(case, threads, args.cell, compute_dtype="bfloat16"),
                "torch32": torch_fns(case, threads, args.cell),
                "autocast": torch_fns(case, threads, args.cell, bf16="autocast"),
                "torch16": torch_fns(case, threads, args.cell, bf16="modules"),
            }
            for mode in args.modes:
                t = time_interleaved({k: f[mode] for k, f in fns.items()}, args.rounds)
                c = t["crnn16"]
                tb = min(t["autocast"], t["torch16"])
                row = [f"{case} {CASES[case]}", str(threads), mode] + \
                    [f"{1e3 * t[k]:.2f}" for k in fns] + \
                    [f"{t['crnn32'] / c:.2f}x", f"{tb / c:.2f}x", f"{t['torch32'] / c:.2f}x",
                     f"{flops(mode, case, args.cell) / c / 1e9:.0f}"]
                print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
