"""The adding problem (Hochreiter & Schmidhuber): does a cell carry
information across T = 100 steps?

    python benches/adding_problem.py            # rnn, gru, lstm

Each sequence has two channels: values uniform in [0, 1], and a marker that
is 1 at one position in the first half and one in the second half.  The
target is the sum of the two marked values.  Always predicting 1 gives a
mean squared error of about 0.167; solving it means an MSE near 0.  Trains
with partial_fit epoch by epoch until the test MSE drops below 0.01 or the
epoch/time budget runs out, and prints the curve.
"""
import argparse
import sys
import time

import numpy as np


def run(cell, T=100, hidden=32, n_train=10000, n_test=2000, lr=1e-2, max_epochs=40,
        budget_s=120, seed=0, target=0.01, verbose=True):
    from crnn import RNNRegressor
    from crnn.datasets import make_adding_problem

    Xtr, ytr = make_adding_problem(n_train, T, random_state=seed)
    Xte, yte = make_adding_problem(n_test, T, random_state=seed + 1)
    reg = RNNRegressor(cell=cell, hidden_size=hidden, batch_size=64, learning_rate_init=lr,
                       random_state=seed)
    t0 = time.perf_counter()
    curve = []
    for epoch in range(max_epochs):
        reg.partial_fit(Xtr, ytr)
        mse = float(np.mean((reg.predict(Xte) - yte) ** 2))
        curve.append(mse)
        if verbose:
            print(f"  {cell} epoch {epoch + 1}: test MSE {mse:.4f} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
        if mse < target or time.perf_counter() - t0 > budget_s:
            break
    return curve, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cells", nargs="*", default=["rnn", "gru", "lstm"])
    ap.add_argument("--T", type=int, default=100)
    args = ap.parse_args(argv)
    rows = []
    for cell in args.cells:
        curve, secs = run(cell, T=args.T)
        rows.append((cell, len(curve), min(curve), curve[-1], secs))
    print(f"\nadding problem, T = {args.T} (predicting 1: MSE about 0.167)")
    print("| cell | epochs | best test MSE | last test MSE | seconds |")
    print("|---|---|---|---|---|")
    for cell, n, best, last, secs in rows:
        print(f"| {cell} | {n} | {best:.4f} | {last:.4f} | {secs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
