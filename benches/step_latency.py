"""Latency of one streaming step: crnn's Stepper against torch's cells.

    python benches/step_latency.py               # H = 64 and 256, all cells
    python benches/step_latency.py --threads 1

One stream, one new observation (D = 16 features) in, one prediction out,
the state carried by the caller.  crnn: ``model.stepper().step(x, state)``.
torch: ``nn.RNNCell`` / ``GRUCell`` / ``LSTMCell`` plus the ``nn.Linear``
head, called step by step under ``inference_mode``.  Both at the same thread
count (crnn's n_jobs, torch.set_num_threads).  Medians of interleaved rounds.

Note: torch ships its own libgomp with the same soname as the system one,
so once torch is imported crnn's OpenMP regions run on it too; the thread
counts are set the same way for both, as a user running both would.
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from impls import all_cores  # noqa: E402

D = 16


def crnn_step(cell, H, threads):
    from crnn import RNNRegressor

    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reg = RNNRegressor(cell=cell, hidden_size=H, max_iter=1, random_state=0,
                           n_jobs=threads).fit(rng.normal(size=(8, 5, D)), rng.normal(size=8))
    s = reg.stepper()
    x = rng.normal(size=D).astype(np.float32)
    box = [s.initial_state()]

    def step():
        _, box[0] = s.step(x, box[0])
    return step


def torch_step(cell, H, threads):
    import torch

    torch.manual_seed(0)
    Cell = {"rnn": torch.nn.RNNCell, "gru": torch.nn.GRUCell, "lstm": torch.nn.LSTMCell}[cell]
    c = Cell(D, H)
    head = torch.nn.Linear(H, 1)
    x = torch.randn(1, D)
    box = [torch.zeros(1, H), torch.zeros(1, H)]

    def step():
        with torch.inference_mode():
            if cell == "lstm":
                box[0], box[1] = c(x, (box[0], box[1]))
            else:
                box[0] = c(x, box[0])
            return head(box[0])
    return step


def median_us(fns, rounds=7, n=3000):
    out = {k: [] for k in fns}
    for fn in fns.values():
        for _ in range(200):
            fn()
    for r in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            out[name].append((time.perf_counter() - t0) / n * 1e6)
    return {k: float(np.median(v)) for k, v in out.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=all_cores())
    ap.add_argument("--hidden", type=int, nargs="*", default=[64, 256])
    args = ap.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    print(f"{args.threads} thread(s), D = {D}, one stream; microseconds per step\n")
    print("| H | cell | crnn us | torch us | torch/crnn |")
    print("|---|---|---|---|---|")
    for H in args.hidden:
        for cell in ("rnn", "gru", "lstm"):
            t = median_us({"crnn": crnn_step(cell, H, args.threads),
                           "torch": torch_step(cell, H, args.threads)})
            print(f"| {H} | {cell} | {t['crnn']:.2f} | {t['torch']:.2f} | "
                  f"{t['torch'] / t['crnn']:.1f}x |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
