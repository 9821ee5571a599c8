"""
===================================
A quick speed check against PyTorch
===================================

A live, small timing of crnn against ``torch.nn.GRU`` and ``torch.nn.LSTM``
on the machine that builds this page: one training step (forward pass,
backpropagation through time and an Adam update on one batch) and one
inference call, at the same shapes, in float32, with the same number of
threads.

These are *tiny* shapes, timed for a few seconds on whatever machine built
the documentation, next to whatever else it was running: read the ratios
as an illustration, not as a benchmark.  The measured numbers, at larger
shapes, per SIMD level and thread count, with the methodology, are in the
performance reference (:doc:`/performance`), and ``benches/report.py``
reproduces them.
"""

# %%
# The machine
# -----------
# :func:`crnn.show_config` reports, among other things, the threads crnn
# uses and the SIMD level its kernels dispatched to (the best the CPU runs,
# capped by ``CRNN_MAX_SIMD``).  The CPU's model name comes from the
# operating system.
import io
import platform
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

import crnn
from crnn import RNNRegressor


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


info = crnn.show_config(file=io.StringIO())      # the facts, as a dict
threads = info["threads"]["n_jobs=None"]
torch.set_num_threads(threads)
print("CPU:       ", cpu_model())
print("crnn SIMD: ", info["simd"]["name"], f"(CPU supports: {info['simd']['cpu']})")
print("threads:   ", threads, "for crnn (n_jobs) and for torch (set_num_threads)")
print("versions:  ", f"crnn {crnn.__version__}, torch {torch.__version__}")

# %%
# The work
# --------
# A many-to-one network with one recurrent layer and a linear head, trained
# with a mean-squared-error loss.  crnn: ``partial_fit`` on one batch (the
# public API's cost of one step, input checks included) and ``predict``.
# PyTorch: the module, ``MSELoss``, ``backward`` and ``Adam.step``, and the
# forward pass under ``torch.inference_mode``.  Shapes are (features D,
# hidden units H, batch B, time steps T).
SHAPES = {"D8 H32 B32 T50": (8, 32, 32, 50), "D32 H128 B64 T100": (32, 128, 64, 100)}
CELLS = {"gru": torch.nn.GRU, "lstm": torch.nn.LSTM}


def crnn_calls(cell, D, H, B, T, X, y):
    model = RNNRegressor(cell=cell, hidden_size=H, batch_size=B, n_jobs=threads,
                         random_state=0)
    model.partial_fit(X, y)
    return {"train": lambda: model.partial_fit(X, y), "infer": lambda: model.predict(X)}


def torch_calls(cell, D, H, B, T, X, y):
    torch.manual_seed(0)
    rnn = CELLS[cell](D, H, batch_first=True)
    head = torch.nn.Linear(H, 1)
    opt = torch.optim.Adam([*rnn.parameters(), *head.parameters()], lr=1e-3)
    loss_fn = torch.nn.MSELoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y[:, None])

    def forward():
        _, h_n = rnn(Xt)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n      # LSTM: (h_n, c_n)
        return head(h_n[-1])

    def train():
        loss = loss_fn(forward(), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def infer():
        with torch.inference_mode():
            return forward()

    return {"train": train, "infer": infer}


def best_times(fns, rounds=10, budget=0.005, pause=0.01, deadline=0.75):
    """Best over `rounds` of the mean time per call in a block of calls
    lasting about `budget` seconds, for each function; the functions take
    turns in every round, after a short pause that lets the previous
    library's threads go idle.  After three rounds, stop at `deadline`
    seconds (a busy machine)."""
    start = time.perf_counter()
    reps = []
    for fn in fns:
        fn()                                     # warm up
        t0 = time.perf_counter()
        fn()
        reps.append(max(1, int(budget / max(time.perf_counter() - t0, 1e-6))))
    best = [np.inf] * len(fns)
    for r in range(rounds):
        if r >= 3 and time.perf_counter() - start > deadline:
            break
        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
        for i in order:
            time.sleep(pause)
            t0 = time.perf_counter()
            for _ in range(reps[i]):
                fns[i]()
            best[i] = min(best[i], (time.perf_counter() - t0) / reps[i])
    return best


# %%
# Timing
# ------
# Each call is timed in short blocks, crnn and PyTorch taking turns, and
# the best block counts (the minimum is the least disturbed by other work
# on the machine).  The ratio is PyTorch's time over crnn's: above 1, crnn is
# faster.
rng = np.random.default_rng(0)
rows = []
for shape_name, (D, H, B, T) in SHAPES.items():
    X = rng.normal(size=(B, T, D)).astype(np.float32)
    y = rng.normal(size=B).astype(np.float32)
    for cell in CELLS:
        ours = crnn_calls(cell, D, H, B, T, X, y)
        theirs = torch_calls(cell, D, H, B, T, X, y)
        for mode in ("train", "infer"):
            t_crnn, t_torch = best_times([ours[mode], theirs[mode]])
            rows.append((shape_name, cell, mode, t_crnn, t_torch))

print(f"{'shape':<19}{'cell':<6}{'mode':<7}{'crnn ms':>9}{'torch ms':>10}{'ratio':>7}")
for shape_name, cell, mode, t_crnn, t_torch in rows:
    print(f"{shape_name:<19}{cell:<6}{mode:<7}{t_crnn * 1e3:9.3f}{t_torch * 1e3:10.3f}"
          f"{t_torch / t_crnn:7.2f}")

# %%
# The ratios
# ----------
# At small shapes much of PyTorch's time is a fixed cost per time step
# (operator dispatch, autograd bookkeeping) that crnn's compiled time loop
# does not pay; as the matrices grow, both spend their time in matrix
# products and the ratios shrink.  On the reference machine of
# :doc:`/performance` (2 cores, AVX-512) a GRU training step at the
# smaller shape here is about 13 times faster in crnn, at the larger about
# 4 times, and the LSTM's ratios are lower (about 3 and 2).  On a busy
# machine any bar of this chart can be off by a large factor (the scale
# is logarithmic).
fig, ax = plt.subplots(figsize=(9, 4))
labels = [f"{cell} {mode}\n{shape.split(' T')[0]}" for shape, cell, mode, _, _ in rows]
ratios = [t_torch / t_crnn for _, _, _, t_crnn, t_torch in rows]
colors = ["tab:blue" if mode == "train" else "tab:orange" for _, _, mode, _, _ in rows]
ax.bar(np.arange(len(rows)), ratios, color=colors)
ax.axhline(1, color="black", lw=1)
ax.set_yscale("log")
ax.set_xticks(np.arange(len(rows)))
ax.set_xticklabels(labels, fontsize="small")
ax.set_ylabel("torch time / crnn time")
ax.set_title(f"{threads} thread(s), float32, {info['simd']['name']}; "
             "blue: training step, orange: inference")
for i, r in enumerate(ratios):
    ax.text(i, r, f"{r:.1f}", ha="center", va="bottom", fontsize="small")
fig.tight_layout()
plt.show()
