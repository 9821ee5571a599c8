"""Variable-length batches: crnn against torch packed and padded sequences.

    python benches/ragged.py                 # rnn, gru, lstm; 1 thread and all cores
    python benches/ragged.py --isa avx2      # crnn and torch both at AVX2 (benches/isa.py)

B = 64 sequences of T = 200 steps at most, lengths uniform in [T/4, T],
D = 32 features, H = 128, many-to-one regression, float32.  crnn takes the
list of sequences (``partial_fit`` = one training step, ``predict``); torch
runs ``pack_sequence(..., enforce_sorted=False)`` (packing included, as a
user's batch arrives as separate sequences) or the zero-padded batch
(computing on the padding and reading each sequence's last valid step).
GFLOP/s count only the sequences' own steps.  Medians of interleaved rounds,
as in report.py.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from impls import RAGGED, RAGGED_IMPLS, ragged_flops, thread_counts, torch_available  # noqa: E402
from report import time_interleaved  # noqa: E402
import isa  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="*", default=["rnn", "gru", "lstm"])
    ap.add_argument("--threads", nargs="*", type=int, default=list(thread_counts()))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--isa", choices=list(isa.ISAS), default=None,
                    help="pin crnn and torch to this SIMD level (default: each its best)")
    args = ap.parse_args(argv)
    isa.pin(args.isa)
    impls = list(RAGGED_IMPLS) if torch_available() else ["crnn"]
    print(f"ragged batch {RAGGED}, lengths U[T/4, T]; milliseconds")
    print(f"SIMD: {isa.describe()}\n")
    print("| cell | thr | mode | crnn ms | torch packed ms | torch padded ms | packed/crnn "
          "| padded/crnn | crnn GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cell in args.cells:
        for threads in args.threads:
            fns = {k: RAGGED_IMPLS[k](cell, threads) for k in impls}
            for mode in ("train", "infer"):
                t = time_interleaved({k: fns[k][mode] for k in impls}, args.rounds)
                c = t["crnn"]
                row = [cell, str(threads), mode, f"{1e3 * c:.2f}"]
                for k in ("torch-packed", "torch-padded"):
                    row.append(f"{1e3 * t[k]:.2f}" if k in t else "-")
                for k in ("torch-packed", "torch-padded"):
                    row.append(f"{t[k] / c:.1f}x" if k in t else "-")
                row.append(f"{ragged_flops(mode, cell) / c / 1e9:.1f}")
                print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
