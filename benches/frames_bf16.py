"""compute_dtype="bfloat16" behind a convolutional front-end: the steering
estimator's training throughput and streaming step, float32 against
bfloat16 products (AVX512-BF16 CPUs only).

    python benches/frames_bf16.py
    python benches/frames_bf16.py --hidden 64 256 --threads 2

RNNRegressor(conv=[(24, 5, 2), (36, 5, 2), (48, 3, 2)], cell="gru",
return_sequences=True, batch_size=8): one epoch on 64 windows of 16 random
frames of 84 x 96 x 3 (best of 3 fits, frames/s), and stepper().step on
one frame (best of 5 rounds of 200 steps).  The convolutions compute in
float32 either way; bfloat16 covers the recurrent network's products
(docs/performance.md, section 2.10).
"""
import argparse
import time
import warnings

import numpy as np

from crnn import RNNRegressor, _kernels

CONV = [(24, 5, 2), (36, 5, 2), (48, 3, 2)]


def run(X, y, hidden, compute_dtype, threads):
    fits = []
    for _ in range(3):
        m = RNNRegressor(conv=CONV, cell="gru", hidden_size=hidden, return_sequences=True,
                         batch_size=8, max_iter=1, random_state=0, n_jobs=threads,
                         compute_dtype=compute_dtype, early_stopping=False)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # ConvergenceWarning at max_iter
            m.fit(X, y)
        fits.append(time.perf_counter() - t0)
    stepper, state, frame = m.stepper(), None, X[0, 0]
    for _ in range(20):
        _, state = stepper.step(frame, state)
    steps = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(200):
            _, state = stepper.step(frame, state)
        steps.append((time.perf_counter() - t0) / 200)
    return X.shape[0] * X.shape[1] / min(fits), 1e6 * min(steps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hidden", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if not _kernels.bf16_supported():
        raise SystemExit(_kernels.bf16_unsupported_message())
    rng = np.random.default_rng(0)
    X = rng.random((64, 16, 84, 96, 3), dtype=np.float32)
    y = rng.normal(size=(64, 16)).astype(np.float32)
    print("| hidden | training frames/s, float32 | bfloat16 | ratio | step, float32 | bfloat16 "
          "| ratio |")
    print("|---|---|---|---|---|---|---|")
    for hidden in args.hidden:
        f32, b16 = (run(X, y, hidden, cd, args.threads) for cd in (None, "bfloat16"))
        print(f"| {hidden} | {f32[0]:.0f} | {b16[0]:.0f} | {b16[0] / f32[0]:.2f} | "
              f"{f32[1]:.0f} us | {b16[1]:.0f} us | {f32[1] / b16[1]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
