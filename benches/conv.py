"""crnn's convolution and pooling kernels (crnn._conv) against PyTorch's
(oneDNN), layer by layer, at one SIMD level per run.

    python benches/conv.py                          # the CPU's best level
    python benches/conv.py --isa avx2 --threads 1 2 # both libraries at AVX2

Each row is one layer on a batch, float32, channels-last on both sides
(torch's modules and inputs in torch.channels_last):
- fwd: ReLU(conv(x) + b), torch under no_grad;
- train: the forward pass and the backward pass (weight, bias and, except
  for a first layer, input gradients), torch through autograd.
The two libraries run in interleaved rounds (report.time_interleaved);
the ratio is torch / crnn (above 1: crnn is faster).  GFLOP/s counts
2 N HO WO F KH KW C per forward pass.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import isa  # noqa: E402

isa.from_argv()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from crnn import _conv  # noqa: E402
from crnn._nn.threads import blas_single_threaded  # noqa: E402
from report import cpu_name, time_interleaved  # noqa: E402

# name: (N, H, W, C, F, kernel, stride, padding, first layer)
LAYERS = {
    "steer-1 96x96x3 5x5/2 24": (64, 96, 96, 3, 24, 5, 2, 0, True),
    "steer-2 46x46x24 5x5/2 36": (64, 46, 46, 24, 36, 5, 2, 0, False),
    "steer-3 21x21x36 3x3/2 48": (64, 21, 21, 36, 48, 3, 2, 0, False),
    "scene-1 64x64x1 3x3 32": (32, 64, 64, 1, 32, 3, 1, 1, True),
    "scene-2 32x32x32 3x3 64": (32, 32, 32, 32, 64, 3, 1, 1, False),
}


def _layer(name, nt, rounds):
    N, H, W, C, F, k, s, p, first = LAYERS[name]
    rng = np.random.default_rng(0)
    X = rng.random((N, H, W, C), dtype=np.float32)
    Wt = (rng.standard_normal((k, k, C, F)) / np.sqrt(k * k * C)).astype(np.float32)
    b = np.zeros(F, np.float32)
    with blas_single_threaded():          # level 0 calls BLAS from the kernels' threads
        Y = _conv.conv2d_forward(X, Wt, b, s, p, True, -1, nt)
    dY = rng.standard_normal(Y.shape).astype(np.float32)

    conv = torch.nn.Conv2d(C, F, k, s, p).to(memory_format=torch.channels_last)
    xt = torch.from_numpy(X).permute(0, 3, 1, 2).requires_grad_(not first)
    gt = torch.from_numpy(dY).permute(0, 3, 1, 2)

    def crnn_fwd():
        with blas_single_threaded():
            _conv.conv2d_forward(X, Wt, b, s, p, True, -1, nt)

    def crnn_train():
        with blas_single_threaded():
            Yc = _conv.conv2d_forward(X, Wt, b, s, p, True, -1, nt)
            _conv.conv2d_backward(X, Wt, Yc, dY, s, p, True, not first, -1, nt)

    def torch_fwd():
        with torch.no_grad():
            torch.relu(conv(xt))

    def torch_train():
        conv.zero_grad(set_to_none=True)
        torch.relu(conv(xt)).backward(gt)

    flops = 2.0 * N * Y.shape[1] * Y.shape[2] * F * k * k * C
    out = {}
    for mode, fns in (("fwd", {"crnn": crnn_fwd, "torch": torch_fwd}),
                      ("train", {"crnn": crnn_train, "torch": torch_train})):
        t = time_interleaved(fns, rounds)
        out[mode] = (t["crnn"], t["torch"], flops / t["crnn"] / 1e9)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isa", default=None, help="none, avx2, avx512 (benches/isa.py)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--layers", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    args = ap.parse_args()
    print(f"{cpu_name()}; {isa.describe()}; crnn._conv level {_conv.simd_level()}; "
          f"torch {torch.__version__}")
    print("| layer | threads | fwd crnn ms | fwd torch ms | fwd torch/crnn | crnn GFLOP/s "
          "| train crnn ms | train torch ms | train torch/crnn |")
    print("|---|---|---|---|---|---|---|---|---|")
    for nt in args.threads:
        torch.set_num_threads(nt)
        for name in args.layers:
            r = _layer(name, nt, args.rounds)
            (fc, ft, gf), (tc, tt, _) = r["fwd"], r["train"]
            print(f"| {name} | {nt} | {fc * 1e3:.2f} | {ft * 1e3:.2f} | {ft / fc:.2f} | {gf:.0f} "
                  f"| {tc * 1e3:.2f} | {tt * 1e3:.2f} | {tt / tc:.2f} |", flush=True)


if __name__ == "__main__":
    main()
