"""The work the benchmarks time, three ways: crnn, PyTorch, plain numpy.

Every case is a many-to-one tanh RNN (one layer) with a linear head and a
mean-squared-error loss, in float32:

- ``train``: one training step on a batch of B sequences (forward, BPTT,
  Adam update).  crnn: ``RNNRegressor.partial_fit`` with ``batch_size=B``
  (one epoch of one batch: the public API's cost of one step, validation
  included).  torch: ``nn.RNN`` + ``nn.Linear``, ``MSELoss``, ``backward``,
  ``Adam.step``.  numpy: the tutorials' loop over time steps, batched.
- ``infer``: predictions for the batch.  crnn: ``predict``; torch: the
  forward pass under ``inference_mode``; numpy: the forward loop.

Thread counts: crnn ``n_jobs``, ``torch.set_num_threads`` and threadpoolctl's
BLAS limit for numpy are all set to the case's thread count.
"""
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

# name: (n_features D, hidden H, batch B, steps T)
CASES = {
    "small": (8, 32, 32, 50),
    "mid": (32, 128, 64, 100),
    "large": (128, 512, 64, 100),
    "streaming": (64, 256, 1, 100),
    "wide": (64, 256, 256, 50),
    "long": (16, 64, 16, 1000),
}
MODES = ("train", "infer")


def all_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def thread_counts():
    n = all_cores()
    return (1,) if n == 1 else (1, n)


def forward_flops(D, H, B, T):
    """Multiply-adds x 2 of the recurrent layer's forward pass."""
    return 2.0 * B * T * (D * H + H * H)


GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def flops(mode, case, cell="rnn"):
    f = GATES[cell] * forward_flops(*CASES[case])
    return 3 * f if mode == "train" else f


def make_data(case, seed=0):
    D, H, B, T = CASES[case]
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(B, T, D)).astype(np.float32)
    y = rng.normal(size=B).astype(np.float32)
    return X, y


# ---------------------------------------------------------------------------
# crnn


def crnn_fns(case, threads, cell="rnn", compute_dtype=None):
    from crnn import RNNRegressor

    D, H, B, T = CASES[case]
    X, y = make_data(case)
    est = RNNRegressor(cell=cell, hidden_size=H, batch_size=B, n_jobs=threads, random_state=0,
                       learning_rate_init=1e-3, compute_dtype=compute_dtype)
    est.partial_fit(X, y)
    return {"train": lambda: est.partial_fit(X, y), "infer": lambda: est.predict(X)}


# ---------------------------------------------------------------------------
# torch


def torch_available():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def torch_fns(case, threads, cell="rnn", bf16=None):
    """bf16: None (float32), "autocast" (float32 modules under
    torch.autocast("cpu", torch.bfloat16): mixed precision, as crnn's
    compute_dtype="bfloat16") or "modules" (modules, input and optimizer in
    bfloat16: no float32 master weights)."""
    import contextlib

    import torch

    D, H, B, T = CASES[case]
    X, y = make_data(case)
    torch.manual_seed(0)
    rnn = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell](
        D, H, batch_first=True)
    head = torch.nn.Linear(H, 1)
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y[:, None])
    if bf16 == "modules":
        rnn, head = rnn.to(torch.bfloat16), head.to(torch.bfloat16)
        Xt, yt = Xt.to(torch.bfloat16), yt.to(torch.bfloat16)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-3)
    loss_fn = torch.nn.MSELoss()

    def forward():
        ctx = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16 == "autocast"
               else contextlib.nullcontext())
        with ctx:
            _, h_n = rnn(Xt)
            return head((h_n[0] if isinstance(h_n, tuple) else h_n)[-1])

    return _torch_step_fns(forward, opt, loss_fn, yt, threads)


def _torch_step_fns(forward, opt, loss_fn, yt, threads):
    """A training step (loss, backward, optimizer step) and an inference
    call around a torch forward function, at `threads` threads."""
    import torch

    def train():
        torch.set_num_threads(threads)
        loss = loss_fn(forward().float(), yt.float())
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return forward()

    return {"train": train, "infer": infer}


# ---------------------------------------------------------------------------
# numpy: the "from scratch" loop of the tutorials, batched


class NumpyRNN:
    def __init__(self, D, H, seed=0):
        rng = np.random.default_rng(seed)
        k = 1 / np.sqrt(H)
        f = np.float32
        self.p = {
            "W_ih": rng.uniform(-k, k, (H, D)).astype(f),
            "W_hh": rng.uniform(-k, k, (H, H)).astype(f),
            "b_ih": rng.uniform(-k, k, H).astype(f),
            "b_hh": rng.uniform(-k, k, H).astype(f),
            "W_out": rng.uniform(-k, k, (1, H)).astype(f),
            "b_out": rng.uniform(-k, k, 1).astype(f),
        }
        self.m = {n: np.zeros_like(v) for n, v in self.p.items()}
        self.v = {n: np.zeros_like(v) for n, v in self.p.items()}
        self.step = 0

    def forward(self, X):
        p = self.p
        B, T, _ = X.shape
        hs = np.zeros((T + 1, B, p["W_hh"].shape[0]), np.float32)
        xp = X @ p["W_ih"].T + (p["b_ih"] + p["b_hh"])
        for t in range(T):
            hs[t + 1] = np.tanh(xp[:, t] + hs[t] @ p["W_hh"].T)
        return hs, hs[T] @ p["W_out"].T + p["b_out"]

    def train_step(self, X, y, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
        p = self.p
        B, T, _ = X.shape
        hs, out = self.forward(X)
        dout = 2 * (out - y[:, None]) / B
        g = {n: np.zeros_like(v) for n, v in p.items()}
        g["W_out"] = dout.T @ hs[T]
        g["b_out"] = dout.sum(0)
        dh = dout @ p["W_out"]
        for t in range(T - 1, -1, -1):
            dz = dh * (1 - hs[t + 1] ** 2)
            g["W_hh"] += dz.T @ hs[t]
            g["W_ih"] += dz.T @ X[:, t]
            g["b_ih"] += dz.sum(0)
            dh = dz @ p["W_hh"]
        g["b_hh"] = g["b_ih"].copy()
        self.step += 1
        for n in p:
            self.m[n] = b1 * self.m[n] + (1 - b1) * g[n]
            self.v[n] = b2 * self.v[n] + (1 - b2) * g[n] ** 2
            mh = self.m[n] / (1 - b1 ** self.step)
            vh = self.v[n] / (1 - b2 ** self.step)
            p[n] -= (lr * mh / (np.sqrt(vh) + eps)).astype(np.float32)


def numpy_fns(case, threads, cell="rnn"):
    if cell != "rnn":
        raise ValueError("the numpy loop is the Elman RNN only")
    D, H, B, T = CASES[case]
    X, y = make_data(case)
    net = NumpyRNN(D, H)

    def train():
        with threadpool_limits(threads, user_api="blas"):
            net.train_step(X, y)

    def infer():
        with threadpool_limits(threads, user_api="blas"):
            return net.forward(X)[1]

    return {"train": train, "infer": infer}


IMPLS = {"crnn": crnn_fns, "torch": torch_fns, "numpy": numpy_fns}


# ---------------------------------------------------------------------------
# the machine's sgemm rate, through the BLAS crnn's kernels call


def sgemm_gflops(threads, n=2048, min_time=0.5):
    """GFLOP/s of a square float32 GEMM through scipy.linalg.blas (the same
    OpenBLAS as scipy.linalg.cython_blas) with BLAS limited to `threads`."""
    from scipy.linalg import blas

    rng = np.random.default_rng(0)
    a = np.asfortranarray(rng.normal(size=(n, n)).astype(np.float32))
    b = np.asfortranarray(rng.normal(size=(n, n)).astype(np.float32))
    with threadpool_limits(threads, user_api="blas"):
        blas.sgemm(1.0, a, b)
        best, spent = np.inf, 0.0
        while spent < min_time:
            t0 = time.perf_counter()
            blas.sgemm(1.0, a, b)
            dt = time.perf_counter() - t0
            best = min(best, dt)
            spent += dt
    return 2.0 * n ** 3 / best / 1e9


# ---------------------------------------------------------------------------
# variable-length batches: T = 200, B = 64, H = 128, lengths U[T/4, T]

RAGGED = dict(D=32, H=128, B=64, T=200)


def ragged_data(seed=0):
    rng = np.random.default_rng(seed)
    T = RAGGED["T"]
    lens = rng.integers(T // 4, T + 1, size=RAGGED["B"])
    X = [rng.normal(size=(t, RAGGED["D"])).astype(np.float32) for t in lens]
    y = rng.normal(size=RAGGED["B"]).astype(np.float32)
    return X, y, lens


def ragged_flops(mode, cell):
    """Useful work: every sequence's own steps only."""
    _, _, lens = ragged_data()
    G = {"rnn": 1, "gru": 3, "lstm": 4}[cell]
    D, H = RAGGED["D"], RAGGED["H"]
    f = 2.0 * lens.sum() * G * (D * H + H * H)
    return 3 * f if mode == "train" else f


def crnn_ragged_fns(cell, threads):
    from crnn import RNNRegressor

    X, y, _ = ragged_data()
    est = RNNRegressor(cell=cell, hidden_size=RAGGED["H"], batch_size=RAGGED["B"],
                       n_jobs=threads, random_state=0)
    est.partial_fit(X, y)
    return {"train": lambda: est.partial_fit(X, y), "infer": lambda: est.predict(X)}


def torch_ragged_fns(cell, threads, packed):
    import torch
    from torch.nn.utils.rnn import pack_sequence, pad_sequence

    X, y, lens = ragged_data()
    torch.manual_seed(0)
    Mod = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[cell]
    rnn = Mod(RAGGED["D"], RAGGED["H"], batch_first=True)
    head = torch.nn.Linear(RAGGED["H"], 1)
    opt = torch.optim.Adam(list(rnn.parameters()) + list(head.parameters()), lr=1e-3)
    Xt = [torch.from_numpy(x) for x in X]
    yt = torch.from_numpy(y[:, None])
    last = torch.from_numpy(lens - 1)
    loss_fn = torch.nn.MSELoss()

    def forward():
        if packed:
            # a user's batch arrives as separate sequences: packing is part of the step
            _, h_n = rnn(pack_sequence(Xt, enforce_sorted=False))
            h = (h_n[0] if isinstance(h_n, tuple) else h_n)[-1]
        else:
            out, _ = rnn(pad_sequence(Xt, batch_first=True))
            h = out[torch.arange(len(Xt)), last]
        return head(h)

    return _torch_step_fns(forward, opt, loss_fn, yt, threads)


RAGGED_IMPLS = {
    "crnn": crnn_ragged_fns,
    "torch-packed": lambda cell, threads: torch_ragged_fns(cell, threads, True),
    "torch-padded": lambda cell, threads: torch_ragged_fns(cell, threads, False),
}
