"""Scene labelling on texture mosaics: does the recurrence help?

    python benches/scene_labelling.py                 # defaults below
    python benches/scene_labelling.py --epochs 30 --train 400

Trains, on make_texture_mosaics(half="train") and scored on
make_texture_mosaics(half="test") (the other half of every photograph,
other layouts), by mean intersection over union at full resolution:
- recurrent: crnn/_nn/conv.py's SceneNet, the convolutional front-end,
  then bidirectional GRU sweeps over the feature map's rows and columns,
  a per-position classifier;
- CNN only: the same front-end and a per-position linear classifier on
  its features (no context beyond the convolutions' receptive field);
- torch: the recurrent model in PyTorch (Conv2d, max_pool2d, nn.GRU,
  nn.Linear, torch.optim.Adam), from the same initial weights.
Both are trained the same way: Adam (lr 3e-3), mini-batches of 16,
float32, labels on the feature grid (each cell's centre pixel), and
predictions upsampled to the image by nearest neighbour.

This is the model-level experiment under crnn.RNNSceneLabeler (which adds
standardisation and bilinear upsampling; benches/scene_labeler.py runs it
at its defaults); docs/performance.md section 4.7 has its table.
"""
import argparse
import time

import numpy as np

from crnn._nn.conv import ConvNet, SceneNet
from crnn.datasets import make_texture_mosaics

CONV = [dict(filters=16, kernel=5, padding=2, pool=2), dict(filters=32, kernel=3, padding=1,
                                                            pool=2)]


def grid_labels(y, grid):
    """Each feature-grid cell's centre pixel's label."""
    n, H, W = y.shape
    h, w = grid
    iy = ((np.arange(h) + 0.5) * H / h).astype(int)
    ix = ((np.arange(w) + 0.5) * W / w).astype(int)
    return np.ascontiguousarray(y[:, iy][:, :, ix], np.int32)


def upsample(z, H, W):
    """Nearest-neighbour upsampling of (n, h, w, K) to (n, H, W, K)."""
    n, h, w, _ = z.shape
    iy = (np.arange(H) * h // H)
    ix = (np.arange(W) * w // W)
    return z[:, iy][:, :, ix]


def mean_iou(y, pred, K):
    ious = []
    for k in range(K):
        inter = np.sum((y == k) & (pred == k))
        union = np.sum((y == k) | (pred == k))
        if union:
            ious.append(inter / union)
    return float(np.mean(ious))


class TorchScene:
    """SceneNet's twin in PyTorch, started from the same weights."""

    def __init__(self, net, theta, nt):
        import torch
        from torch import nn

        torch.set_num_threads(nt)
        self.torch = torch
        self.net = net
        self.grid = net.grid
        c = net.conv.shapes[-1][2]
        layers = net.conv.layers

        class Sweep(nn.Module):
            def __init__(self, D, H, O):
                super().__init__()
                self.rnn = nn.GRU(D, H, batch_first=True, bidirectional=True)
                self.head = nn.Linear(2 * H, O)

            def forward(self, x):
                return self.head(self.rnn(x)[0])

        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.ModuleList(nn.Conv2d(net.conv.shapes[i][2], ly.filters,
                                                    ly.kernel, ly.stride, ly.padding)
                                          for i, ly in enumerate(layers))
                self.row = Sweep(c, net.row_layout.hidden, net.row_layout.n_outputs)
                self.col = Sweep(net.row_layout.n_outputs, net.col_layout.hidden,
                                 net.n_classes)

            def forward(self, images):
                h = images.permute(0, 3, 1, 2)
                for ly, conv in zip(layers, self.conv):
                    h = torch.relu(conv(h))
                    if ly.pool is not None:
                        h = nn.functional.max_pool2d(h, ly.pool)
                n, _, gh, gw = h.shape
                rows = self.row(h.permute(0, 2, 3, 1).reshape(n * gh, gw, -1))
                cols = rows.reshape(n, gh, gw, -1).permute(0, 2, 1, 3).reshape(n * gw, gh, -1)
                return self.col(cols).reshape(n, gw, gh, -1).permute(0, 2, 1, 3)

        self.model = Model()
        tc, tr, tk = net.split(theta)
        sd = dict(net.conv.state_dict(tc))
        for prefix, layout, t in (("row.", net.row_layout, tr), ("col.", net.col_layout, tk)):
            sd.update({prefix + k: v for k, v in layout.views(t).items()})
        self.model.load_state_dict({k: torch.from_numpy(np.array(v, np.float32))
                                    for k, v in sd.items()})

    def fit(self, X, lab, epochs, rng, lr=3e-3, batch=16):
        torch = self.torch
        opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        Xt, Lt = torch.from_numpy(X), torch.from_numpy(lab.astype(np.int64))
        for _ in range(epochs):
            order = rng.permutation(len(X))
            for i in range(0, len(X), batch):
                b = torch.from_numpy(order[i:i + batch])
                opt.zero_grad()
                z = self.model(Xt[b])
                torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]),
                                                  Lt[b].reshape(-1)).backward()
                opt.step()

    def logits(self, theta, X, nt):
        with self.torch.no_grad():
            return self.model(self.torch.from_numpy(X)).numpy()


class Adam:
    def __init__(self, n, lr):
        self.m = np.zeros(n)
        self.v = np.zeros(n)
        self.t = 0
        self.lr = lr

    def step(self, theta, g):
        self.t += 1
        self.m = 0.9 * self.m + 0.1 * g
        self.v = 0.999 * self.v + 0.001 * g * g
        mh = self.m / (1 - 0.9 ** self.t)
        vh = self.v / (1 - 0.999 ** self.t)
        theta -= (self.lr * mh / (np.sqrt(vh) + 1e-8)).astype(theta.dtype)


class CNNOnly:
    """The front-end and a per-position linear classifier (softmax
    cross-entropy over the grid's positions)."""

    def __init__(self, image_shape, K):
        self.conv = ConvNet(CONV, image_shape)
        self.grid = self.conv.shapes[-1][:2]
        self.c = self.conv.shapes[-1][2]
        self.K = K
        self.n_params = self.conv.n_params + self.c * K + K

    def init(self, rng):
        bound = 1 / np.sqrt(self.c)
        return np.concatenate([self.conv.init(rng),
                               rng.uniform(-bound, bound, self.c * self.K + self.K)
                               ]).astype(np.float32)

    def _split(self, theta):
        a = self.conv.n_params
        return theta[:a], theta[a:a + self.c * self.K].reshape(self.c, self.K), \
            theta[a + self.c * self.K:]

    def logits(self, theta, X, nt):
        tc, W, b = self._split(theta)
        f, _ = self.conv.forward(tc, X, nt)
        return (f.reshape(-1, self.c) @ W + b).reshape(len(X), *self.grid, self.K)

    def loss_grad(self, theta, X, lab, nt):
        tc, W, b = self._split(theta)
        f, cache = self.conv.forward(tc, X, nt)
        F = f.reshape(-1, self.c)
        z = F @ W + b
        z -= z.max(1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(1, keepdims=True)
        y = lab.reshape(-1)
        m = len(y)
        loss = -np.mean(np.log(p[np.arange(m), y] + 1e-30))
        dz = p
        dz[np.arange(m), y] -= 1
        dz /= m
        g = np.empty_like(theta)
        a = self.conv.n_params
        g[a:a + self.c * self.K] = (F.T @ dz).ravel()
        g[a + self.c * self.K:] = dz.sum(0)
        g[:a] = self.conv.backward(tc, cache, (dz @ W.T).reshape(len(X), -1).astype(
            theta.dtype), nt)
        return loss, g


def train(model, theta, X, lab, epochs, nt, rng, lr=3e-3, batch=16):
    opt = Adam(len(theta), lr)
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for i in range(0, len(X), batch):
            b = order[i:i + batch]
            _, g = model.loss_grad(theta, X[b], lab[b], nt)
            opt.step(theta, g.astype(np.float64))
    return theta


def evaluate(model, theta, X, y, K, nt):
    z = model.logits(theta, X, nt)
    pred = upsample(z, X.shape[1], X.shape[2]).argmax(-1)
    return mean_iou(y, pred, K), float(np.mean(pred == y))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--models", nargs="+", default=["recurrent", "cnn-only", "torch"],
                    choices=["recurrent", "cnn-only", "torch"])
    args = ap.parse_args()
    Xtr, ytr = make_texture_mosaics(args.train, args.size, random_state=1)
    Xte, yte = make_texture_mosaics(args.test, args.size, half="test", random_state=2)
    K = int(max(ytr.max(), yte.max())) + 1
    print("| model | seed | mIoU | pixel accuracy | train s |")
    print("|---|---|---|---|---|")
    for seed in args.seeds:
        for name in args.models:
            rng = np.random.default_rng(seed)
            if name in ("recurrent", "torch"):
                model = SceneNet(CONV, Xtr.shape[1:], K, hidden=(32, 32))
                theta = np.concatenate([model.conv.init(rng),
                                        (rng.uniform(-1, 1, model.n_params - model.conv.n_params)
                                         / np.sqrt(32))]).astype(np.float32)
                lf = model.loss_grad
                model.loss_grad = lambda th, X, lab, nt, f=lf: f(th, X, lab, nt)
            else:
                model = CNNOnly(Xtr.shape[1:], K)
                theta = model.init(rng)
            if name == "torch":
                model = TorchScene(model, theta, args.threads)
            lab = grid_labels(ytr, model.grid)
            t0 = time.perf_counter()
            if name == "torch":
                model.fit(Xtr, lab, args.epochs, rng)
            else:
                theta = train(model, theta, Xtr, lab, args.epochs, args.threads, rng)
            dt = time.perf_counter() - t0
            miou, acc = evaluate(model, theta, Xte, yte, K, args.threads)
            print(f"| {name} | {seed} | {100 * miou:.1f} | {100 * acc:.1f} | {dt:.0f} |",
                  flush=True)


if __name__ == "__main__":
    main()
