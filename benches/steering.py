"""Steering from camera frames, closed loop: a convolutional front-end under
a GRU, trained on the expert's driving, drives CarRacing-v3 on tracks it
never saw.

    python benches/steering.py                       # defaults below
    python benches/steering.py --episodes 30 --epochs 15 --tracks 10

Data: make_car_racing (steer_noise: the car is driven off the line and
labelled with the expert's correction, DART); frames cropped to the top 84
rows (the dashboard below shows the current steering, which a model would
copy) and cut into windows of --window frames.  Model: the steering model
of benches/conv_rnn.py (24@5x5/2, 36@5x5/2, 48@3x3/2, ReLU; GRU of 64; a
linear head per frame), trained with Adam on the MSE of the steering.
Closed loop: the model steers, frame by frame with its state carried (the
front-end's forward pass and one step of crnn.Stepper's kernel); speed
follows the expert's plan (gas and brake from CarRacingExpert), so the
table measures steering alone.  Reported per track: the share of tiles
visited and the reward, for the expert and for the model.  Open loop: the
steering MAE on the expert's own laps (no noise) of 3 other held-out
tracks.
--torch also trains the same model in PyTorch on the same data and batches
(the same order) from the same initial weights, and drives with it.
--estimator also trains crnn's estimator, RNNRegressor(conv=CONV,
cell="gru", hidden_size=64, return_sequences=True, batch_size=8,
max_iter=epochs), at its other defaults (Adam 1e-3, gradient clipping at 5,
its own initial weights and batch order), and drives with its stepper().
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scene_labelling import Adam  # noqa: E402

from crnn import _kernels, _step  # noqa: E402
from crnn._nn.conv import ConvNet, ConvRNN  # noqa: E402
from crnn._nn.engine import Engine  # noqa: E402
from crnn._nn.layout import Layout  # noqa: E402
from crnn.datasets import make_car_racing  # noqa: E402
from crnn.datasets._car_racing import INTRO_STEPS, CarRacingExpert  # noqa: E402

CONV = [(24, 5, 2), (36, 5, 2), (48, 3, 2)]
ROWS = 84           # the frame above the dashboard
HID = 64


def windows(X, y, T):
    """Episodes cut into windows of T frames: (n, T, ...) each."""
    n_ep, n_st = y.shape
    k = n_st // T
    Xw = X[:, :k * T].reshape(n_ep * k, T, *X.shape[2:])
    return Xw, y[:, :k * T].reshape(n_ep * k, T)


class Model:
    def __init__(self, rng):
        self.net = ConvNet(CONV, (ROWS, 96, 3))
        self.layout = Layout("gru", None, 1, 1, HID, self.net.n_features, 1)
        self.engine = Engine(self.layout, True, _kernels.LOSS_CODES["mse"])
        self.step = ConvRNN(self.net, self.engine)
        bound = 1 / np.sqrt(HID)
        self.theta = np.concatenate([
            self.net.init(rng), rng.uniform(-bound, bound, self.layout.n_params)]).astype(
            np.float32)

    def fit(self, Xw, yw, epochs, rng, nt, batch=8, lr=1e-3):
        opt = Adam(len(self.theta), lr)
        T = Xw.shape[1]
        losses = []
        for _ in range(epochs):
            order = rng.permutation(len(Xw))
            tot = 0.0
            for i in range(0, len(order), batch):
                b = order[i:i + batch]
                frames = (Xw[b].reshape(len(b) * T, ROWS, 96, 3) / np.float32(255))
                loss, g = self.step.loss_grad(self.theta, frames, np.full(len(b), T),
                                              yreg=yw[b].reshape(-1, 1), n_threads=nt)
                opt.step(self.theta, g.astype(np.float64))
                tot += loss * len(b)
            losses.append(tot / len(order))
        return losses

    def driver(self, nt):
        tc = self.theta[:self.net.n_params]
        kern = _step.StepKernel(self.engine.cfg, self.theta[self.net.n_params:], 1, False, 1)
        box = [None]

        def steer(obs):
            f, _ = self.net.forward(tc, (obs[None, :ROWS] / np.float32(255)), nt)
            out, box[0], _ = kern.step(f[0], box[0])
            return float(np.ravel(out)[0])
        return steer


class EstimatorModel:
    """The same model as crnn's estimator: RNNRegressor with conv."""

    def __init__(self, seed, nt):
        from crnn import RNNRegressor
        self.est = RNNRegressor(conv=CONV, cell="gru", hidden_size=HID, return_sequences=True,
                                batch_size=8, random_state=seed, n_jobs=nt)

    def fit(self, Xw, yw, epochs):
        self.est.set_params(max_iter=epochs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")          # ConvergenceWarning at max_iter
            self.est.fit(Xw / np.float32(255), yw)
        return self.est.loss_curve_

    def driver(self, nt):
        stepper = self.est.stepper()
        box = [None]

        def steer(obs):
            out, box[0] = stepper.step(obs[:ROWS] / np.float32(255), box[0])
            return out
        return steer


class TorchModel:
    """The same model in PyTorch (Conv2d in channels_last, nn.GRU, nn.Linear,
    torch.optim.Adam), from the crnn model's initial weights."""

    def __init__(self, model, nt):
        import torch

        torch.set_num_threads(nt)
        self.torch = torch
        net = model.net

        class M(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.ModuleList(
                    torch.nn.Conv2d(net.shapes[i][2], ly.filters, ly.kernel, ly.stride)
                    for i, ly in enumerate(net.layers))
                self.rnn = torch.nn.GRU(net.n_features, HID, batch_first=True)
                self.head = torch.nn.Linear(HID, 1)

            def features(self, frames):
                h = frames
                for conv in self.conv:
                    h = torch.relu(conv(h))
                return h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)

        self.m = M()
        sd = dict(net.state_dict(model.theta[:net.n_params]))
        sd.update(model.layout.views(model.theta[net.n_params:]))
        self.m.load_state_dict({k: torch.from_numpy(np.array(v, np.float32))
                                for k, v in sd.items()})
        self.m = self.m.to(memory_format=torch.channels_last)

    def fit(self, Xw, yw, epochs, rng, batch=8, lr=1e-3):
        torch = self.torch
        opt = torch.optim.Adam(self.m.parameters(), lr=lr)
        T = Xw.shape[1]
        for _ in range(epochs):
            order = rng.permutation(len(Xw))
            for i in range(0, len(order), batch):
                b = order[i:i + batch]
                frames = torch.from_numpy(Xw[b].reshape(len(b) * T, ROWS, 96, 3)
                                          / np.float32(255)).permute(0, 3, 1, 2)
                f = self.m.features(frames).reshape(len(b), T, -1)
                out = self.m.head(self.m.rnn(f)[0])
                loss = torch.mean((out - torch.from_numpy(yw[b]).reshape(len(b), T, 1)) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def driver(self, nt):
        torch = self.torch
        cell = torch.nn.GRUCell(self.m.rnn.input_size, HID)
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(cell, name).copy_(getattr(self.m.rnn, name + "_l0"))
        box = [torch.zeros(1, HID)]

        def steer(obs):
            with torch.inference_mode():
                x = torch.from_numpy(obs[None, :ROWS] / np.float32(255)).permute(0, 3, 1, 2)
                box[0] = cell(self.m.features(x), box[0])
                return float(self.m.head(box[0]))
        return steer


def drive(seed, steer=None, trace=None):
    """(tiles fraction, reward, steps) of one lap: the expert's, or with
    the model's steering and the expert's speed control.  trace: a list
    that gets (x, y, the expert's steering, the steering applied) per
    step."""
    import gymnasium as gym

    env = gym.make("CarRacing-v3")
    u = env.unwrapped
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs, _ = env.reset(seed=int(seed))
            ex = CarRacingExpert(env)
            total, steps = 0.0, 0
            while True:
                a = ex.action()
                expert = float(a[0])
                if steer is not None and steps >= INTRO_STEPS:
                    a[0] = np.clip(steer(obs), -1, 1)
                if trace is not None:
                    x, y = u.car.hull.position
                    trace.append((x, y, expert, float(a[0])))
                obs, r, term, trunc, _ = env.step(a)
                total += r
                steps += 1
                if term or trunc:
                    break
        if trace is not None:
            trace.track = np.array([(t[2], t[3]) for t in u.track])
        return u.tile_visited_count / len(u.track), total, steps
    finally:
        env.close()


class _Trace(list):
    track = None


def plot_lap(path, seed, models, nt):
    """A figure of one held-out track: the paths driven by the expert and
    by each model, and the steering over the lap (each model's, and the
    expert's for the state the model was in)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    laps = [("expert", _Trace())] + [(name, _Trace()) for name, _ in models]
    drive(seed, trace=laps[0][1])
    for (name, m), (_, tr) in zip(models, laps[1:]):
        drive(seed, m.driver(nt), trace=tr)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.6), width_ratios=[1, 1.5])
    track = np.vstack([laps[0][1].track, laps[0][1].track[:1]])
    ax.plot(track[:, 0], track[:, 1], color="0.8", lw=8, solid_capstyle="round",
            label="track")
    for name, tr in laps:
        a = np.array(tr)
        ax.plot(a[:, 0], a[:, 1], lw=1.2, label=name)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(f"track {seed}, never seen in training")
    ax.legend(loc="best", fontsize=8)
    a = np.array(laps[1][1])
    bx.plot(a[:, 2], color="0.6", lw=1.5, label="expert (at the model's state)")
    for name, tr in laps[1:]:
        bx.plot(np.array(tr)[:, 3], lw=1, label=f"{name} (applied)")
    bx.set_xlabel("step (50 per second)")
    bx.set_ylabel("steering")
    bx.set_ylim(-1.05, 1.05)
    bx.legend(loc="lower right", fontsize=8)
    bx.set_title("steering along the lap")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"figure: {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--noise", type=float, default=0.15)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--tracks", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch", action="store_true", help="also the same model in PyTorch")
    ap.add_argument("--estimator", action="store_true",
                    help="also crnn's RNNRegressor(conv=...) at its defaults")
    ap.add_argument("--plot", metavar="PNG",
                    help="draw the first held-out track's laps (path and steering) here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    X, y, _ = make_car_racing(args.episodes, args.steps, steer_noise=args.noise,
                              random_state=args.seed, dtype=np.uint8)
    X = np.ascontiguousarray(X[:, :, :ROWS])
    Xw, yw = windows(X, y, args.window)
    print(f"data: {len(Xw)} windows of {args.window} frames in {time.perf_counter() - t0:.0f} s")
    rng = np.random.default_rng(args.seed)
    model = Model(rng)
    tmodel = TorchModel(model, args.threads) if args.torch else None
    t0 = time.perf_counter()
    losses = model.fit(Xw, yw, args.epochs, np.random.default_rng(args.seed + 1), args.threads)
    print(f"crnn: {args.epochs} epochs in {time.perf_counter() - t0:.0f} s, training MSE "
          f"{losses[0]:.4f} -> {losses[-1]:.4f} (steering variance {yw.var():.4f})")
    if tmodel is not None:
        t0 = time.perf_counter()
        tmodel.fit(Xw, yw, args.epochs, np.random.default_rng(args.seed + 1))
        print(f"torch: {args.epochs} epochs in {time.perf_counter() - t0:.0f} s")
    emodel = EstimatorModel(args.seed, args.threads) if args.estimator else None
    if emodel is not None:
        t0 = time.perf_counter()
        elosses = emodel.fit(Xw, yw, args.epochs)
        print(f"estimator: {args.epochs} epochs in {time.perf_counter() - t0:.0f} s, "
              f"training MSE {elosses[0]:.4f} -> {elosses[-1]:.4f}")
    # open loop: the expert's own laps (no noise) on 3 held-out tracks, each
    # model's steering frame by frame with its state carried
    Xo, yo, _ = make_car_racing(3, args.steps, random_state=20_000 + args.seed,
                                dtype=np.uint8)
    models = [("crnn", model)] + ([("torch", tmodel)] if tmodel is not None else []) + (
        [("estimator", emodel)] if emodel is not None else [])
    for name, m in models:
        err = []
        for e in range(len(Xo)):
            steer = m.driver(args.threads)
            err.extend(abs(steer(frame) - label) for frame, label in zip(Xo[e], yo[e]))
        print(f"open loop, {name}: steering MAE {np.mean(err):.4f} on {len(err)} frames of 3 "
              f"held-out tracks (mean |steering| {np.abs(yo).mean():.4f})")
    test_seeds = np.random.RandomState(10_000 + args.seed).randint(0, 2**31 - 1, args.tracks)
    cols = ["expert"] + [name for name, _ in models]
    print("| track seed | " + " | ".join(f"{c} tiles | {c} reward" for c in cols) + " |")
    print("|---" * (1 + 2 * len(cols)) + "|")
    res = []
    for s in test_seeds:
        row = [drive(s)] + [drive(s, m.driver(args.threads)) for _, m in models]
        res.append([v for r in row for v in r[:2]])
        print(f"| {s} | " + " | ".join(f"{r[0]:.2f} | {r[1]:.0f}" for r in row) + " |",
              flush=True)
    if args.plot:
        plot_lap(args.plot, test_seeds[0], models, args.threads)
    res = np.array(res)
    print("| mean | " + " | ".join(f"{res[:, 2 * i].mean():.2f} | {res[:, 2 * i + 1].mean():.0f}"
                                   for i in range(len(cols))) + " |")


if __name__ == "__main__":
    main()
