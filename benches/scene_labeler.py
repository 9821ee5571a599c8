"""RNNSceneLabeler at its defaults against a U-Net trained in PyTorch, on
texture mosaics of several kinds.

    python benches/scene_labeler.py                       # every set, seeds 0 1
    python benches/scene_labeler.py --sets six --seeds 0 --threads 2

Each set is make_texture_mosaics(half="train") for training and
make_texture_mosaics(half="test") for scoring (the other half of every
photograph, other layouts), by mean intersection over union at full
resolution:
- six: the six textures, 64 x 64, 2-6 regions (the set benches/
  scene_labelling.py ran, where the estimator's settings come from);
- three-96: brick, gravel and moon, 96 x 96, 4-10 regions (more, smaller
  regions, larger images);
- pairs-48: grass, hubble_deep_field and immunohistochemistry, 48 x 48,
  2-3 regions (few large regions, small images);

Models:
- crnn: RNNSceneLabeler() at its defaults (random_state the seed);
- unet: the usual PyTorch recipe for segmentation, a two-level U-Net
  (3 x 3 convolutions 16-32-64 wide, two per level, max pooling, 2 x 2
  transposed convolutions, skip connections, a 1 x 1 classifier), on the
  same standardised images, per-pixel cross-entropy, Adam (lr 1e-3),
  mini-batches of 16, as many epochs as the estimator runs (its max_iter).

docs/performance.md section 4.7 has the table; --plot draws the labelled
mosaics of its figure (docs/img/scene_mosaics.png).
"""
import argparse
import time
import warnings

import numpy as np

from crnn import RNNSceneLabeler
from crnn._vision.scene import mean_iou
from crnn.datasets import make_texture_mosaics

SETS = {
    "six": dict(size=64, n_train=400, n_test=100),
    "three-96": dict(size=96, n_train=300, n_test=80, textures=["brick", "gravel", "moon"],
                     n_regions=(4, 10)),
    "pairs-48": dict(size=48, n_train=400, n_test=100,
                     textures=["grass", "hubble_deep_field", "immunohistochemistry"],
                     n_regions=(2, 3)),
}


def load(name, seed):
    spec = dict(SETS[name])
    size, ntr, nte = spec.pop("size"), spec.pop("n_train"), spec.pop("n_test")
    Xtr, ytr = make_texture_mosaics(ntr, size, random_state=100 + seed, **spec)
    Xte, yte = make_texture_mosaics(nte, size, half="test", random_state=200 + seed, **spec)
    return Xtr, ytr, Xte, yte


def unet(Xtr, ytr, Xte, K, epochs, seed, threads):
    import torch
    from torch import nn

    torch.manual_seed(seed)
    torch.set_num_threads(threads)

    def block(a, b):
        return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.ReLU(),
                             nn.Conv2d(b, b, 3, padding=1), nn.ReLU())

    class UNet(nn.Module):
        def __init__(self, C):
            super().__init__()
            self.e1, self.e2, self.b = block(C, 16), block(16, 32), block(32, 64)
            self.u2, self.d2 = nn.ConvTranspose2d(64, 32, 2, 2), block(64, 32)
            self.u1, self.d1 = nn.ConvTranspose2d(32, 16, 2, 2), block(32, 16)
            self.out = nn.Conv2d(16, K, 1)

        def forward(self, x):
            e1 = self.e1(x)
            e2 = self.e2(nn.functional.max_pool2d(e1, 2))
            b = self.b(nn.functional.max_pool2d(e2, 2))
            d2 = self.d2(torch.cat([self.u2(b), e2], 1))
            d1 = self.d1(torch.cat([self.u1(d2), e1], 1))
            return self.out(d1)

    mean, std = Xtr.mean(axis=(0, 1, 2)), Xtr.std(axis=(0, 1, 2))
    xt = torch.from_numpy(((Xtr - mean) / std).astype(np.float32)).permute(0, 3, 1, 2)
    xe = torch.from_numpy(((Xte - mean) / std).astype(np.float32)).permute(0, 3, 1, 2)
    yt = torch.from_numpy(ytr.astype(np.int64))
    model = UNet(Xtr.shape[3])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(epochs):
        order = rng.permutation(len(xt))
        for i in range(0, len(xt), 16):
            b = torch.from_numpy(order[i:i + 16])
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[b]), yt[b]).backward()
            opt.step()
    dt = time.perf_counter() - t0
    with torch.no_grad():
        pred = torch.cat([model(xe[i:i + 32]).argmax(1) for i in range(0, len(xe), 32)])
    return pred.numpy(), dt


def plot_mosaics(path, Xte, yte, preds, K, n=4):
    """The first n test mosaics: the image, the true labels and each
    model's labels (pixels labelled wrongly hatched in black)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("image", None), ("truth", yte)] + list(preds.items())
    fig, axes = plt.subplots(len(rows), n, figsize=(1.9 * n, 1.9 * len(rows)), squeeze=False)
    for j in range(n):
        img = Xte[j]
        img = (img - img.min()) / max(np.ptp(img), 1e-12)
        for i, (name, lab) in enumerate(rows):
            ax = axes[i, j]
            if lab is None:
                ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray")
            else:
                ax.imshow(lab[j], cmap="tab10", vmin=0, vmax=9, interpolation="nearest")
                if name != "truth":
                    wrong = np.ma.masked_where(lab[j] == yte[j], np.zeros(lab[j].shape))
                    ax.imshow(wrong, cmap="gray", vmin=0, vmax=1, alpha=0.75,
                              interpolation="nearest")
                    iou = 100 * mean_iou(yte[j:j + 1], lab[j:j + 1], range(K))
                    ax.set_title(f"{name}: mIoU {iou:.0f}", fontsize=8)
            if j == 0 and (lab is None or name == "truth"):
                ax.set_title(name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"figure: {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["crnn", "unet"], choices=["crnn", "unet"])
    ap.add_argument("--plot", metavar="PNG",
                    help="draw test mosaics of the first set and seed, labelled, here")
    args = ap.parse_args()
    print("| set | seed | model | mIoU | pixel accuracy | epochs | train s |")
    print("|---|---|---|---|---|---|---|")
    for name in args.sets:
        for seed in args.seeds:
            Xtr, ytr, Xte, yte = load(name, seed)
            K = int(max(ytr.max(), yte.max())) + 1
            epochs = RNNSceneLabeler().max_iter
            preds = {}
            for model in args.models:
                if model == "crnn":
                    est = RNNSceneLabeler(random_state=seed, n_jobs=args.threads)
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        est.fit(Xtr, ytr)
                    dt = time.perf_counter() - t0
                    pred, ran = est.predict(Xte), est.n_iter_
                else:
                    pred, dt = unet(Xtr, ytr, Xte, K, epochs, seed, args.threads)
                    ran = epochs
                preds[model] = pred
                print(f"| {name} | {seed} | {model} | {100 * mean_iou(yte, pred, range(K)):.1f} "
                      f"| {100 * np.mean(pred == yte):.1f} | {ran} | {dt:.0f} |", flush=True)
            if args.plot and (name, seed) == (args.sets[0], args.seeds[0]):
                plot_mosaics(args.plot, Xte, yte, preds, K)


if __name__ == "__main__":
    main()
