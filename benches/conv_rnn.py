"""End-to-end training throughput of a convolutional front-end under a GRU
(crnn/_nn/conv.py's joint step) against the same model in PyTorch.

    python benches/conv_rnn.py                      # the CPU's best level
    python benches/conv_rnn.py --isa avx2 --threads 1 2

The model is the steering one of issue 29: PilotNet's first three
convolutions (24@5x5/2, 36@5x5/2, 48@3x3/2, ReLU) on 96 x 96 RGB frames,
their 4,800 features per frame into a GRU of 64 units, a linear head with
one output per frame (return_sequences), MSE.  A batch is 16 sequences of
8 frames.  One training step = forward and backward through all of it (no
optimizer step on either side); torch runs in channels_last, float32.
Frames/s = 128 / step time; the ratio is crnn / torch in frames/s (above
1: crnn is faster).  The conv share is the time of the front-end's forward
and backward calls alone over the step (crnn), and the same layers timed
alone in torch.

--latency: the streaming case instead, as a car runs the model: one frame
in, one steering angle out, the GRU state carried.  crnn: the front-end's
forward pass on the frame, then one step of the network on the kernel of
crnn.Stepper (crnn._step.StepKernel); torch: the same convolutions, then
nn.GRUCell (the GRU's weights) and the head, under inference_mode.
Median microseconds per frame over interleaved rounds.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import isa  # noqa: E402

isa.from_argv()

import numpy as np  # noqa: E402
import torch  # noqa: E402

from crnn import _kernels  # noqa: E402
from crnn._nn.conv import ConvNet, ConvRNN  # noqa: E402
from crnn._nn.engine import Engine  # noqa: E402
from crnn._nn.layout import Layout  # noqa: E402
from report import cpu_name, time_interleaved  # noqa: E402

CONV = [(24, 5, 2), (36, 5, 2), (48, 3, 2)]
N, T, HID = 16, 8, 64


class TorchModel(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.conv = torch.nn.ModuleList(
            torch.nn.Conv2d(net.shapes[i][2], ly.filters, ly.kernel, ly.stride, ly.padding)
            for i, ly in enumerate(net.layers))
        self.rnn = torch.nn.GRU(net.n_features, HID, batch_first=True)
        self.head = torch.nn.Linear(HID, 1)

    def features(self, frames):
        h = frames
        for conv in self.conv:
            h = torch.relu(conv(h))
        return h.permute(0, 2, 3, 1).reshape(N, T, -1)

    def forward(self, frames):
        out, _ = self.rnn(self.features(frames))
        return self.head(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--isa", default=None)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--latency", action="store_true",
                    help="per-frame streaming latency instead of training throughput")
    args = ap.parse_args()
    if args.latency:
        return latency(args)
    print(f"{cpu_name()}; {isa.describe()}; torch {torch.__version__}")
    print("| threads | crnn frames/s | torch frames/s | crnn/torch | crnn conv share "
          "| torch conv share |")
    print("|---|---|---|---|---|---|")
    net = ConvNet(CONV, (96, 96, 3))
    layout = Layout("gru", None, 1, 1, HID, net.n_features, 1)
    rng = np.random.default_rng(0)
    frames = rng.random((N * T, 96, 96, 3), dtype=np.float32)
    y = rng.standard_normal((N * T, 1)).astype(np.float32)
    torch.manual_seed(0)
    model = TorchModel(net).to(memory_format=torch.channels_last)
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    theta = np.concatenate([
        net.load_state_dict(sd, np.float32),
        np.concatenate([sd[name].ravel() for name, _, _, _ in layout.tensors()]).astype(
            np.float32)])
    step = ConvRNN(net, Engine(layout, True, _kernels.LOSS_CODES["mse"]))
    xt = torch.from_numpy(frames).permute(0, 3, 1, 2)
    yt = torch.from_numpy(y).reshape(N, T, 1)
    lens = np.full(N, T)
    for nt in args.threads:
        torch.set_num_threads(nt)
        tc = theta[:net.n_params]
        feats, cache = net.forward(tc, frames, nt)
        dfeat = np.ones_like(feats)

        def crnn_step():
            step.loss_grad(theta, frames, lens, yreg=y, n_threads=nt)

        def crnn_conv():
            f, c = net.forward(tc, frames, nt)
            net.backward(tc, c, dfeat, nt)

        def torch_step():
            model.zero_grad(set_to_none=True)
            torch.mean((model(xt) - yt) ** 2).backward()

        def torch_conv():
            model.zero_grad(set_to_none=True)
            model.features(xt).sum().backward()

        t = time_interleaved({"crnn": crnn_step, "torch": torch_step, "crnn_conv": crnn_conv,
                              "torch_conv": torch_conv}, args.rounds)
        fc, ft = N * T / t["crnn"], N * T / t["torch"]
        print(f"| {nt} | {fc:.0f} | {ft:.0f} | {fc / ft:.2f} | "
              f"{t['crnn_conv'] / t['crnn']:.0%} | {t['torch_conv'] / t['torch']:.0%} |",
              flush=True)


def latency(args):
    from crnn import _step

    print(f"{cpu_name()}; {isa.describe()}; torch {torch.__version__}")
    print("| threads | crnn us/frame | torch us/frame | torch/crnn |")
    print("|---|---|---|---|")
    net = ConvNet(CONV, (96, 96, 3))
    layout = Layout("gru", None, 1, 1, HID, net.n_features, 1)
    rng = np.random.default_rng(0)
    frame = rng.random((1, 96, 96, 3), dtype=np.float32)
    torch.manual_seed(0)
    model = TorchModel(net).to(memory_format=torch.channels_last).eval()
    cellm = torch.nn.GRUCell(net.n_features, HID)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cellm, name).copy_(getattr(model.rnn, name + "_l0"))
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    tc = net.load_state_dict(sd, np.float32)
    tr = np.concatenate([sd[name].ravel() for name, _, _, _ in layout.tensors()]).astype(
        np.float32)
    eng = Engine(layout, True, _kernels.LOSS_CODES["mse"])
    xt = torch.from_numpy(frame).permute(0, 3, 1, 2)
    # the two compute the same steering angle (two frames, state carried)
    kern = _step.StepKernel(eng.cfg, tr, 1, False, 1)
    h, th = None, torch.zeros(1, HID)
    for _ in range(2):
        out, h, _ = kern.step(net.forward(tc, frame, 1)[0][0], h)
        with torch.inference_mode():
            th = cellm(model.features(xt.expand(N * T, -1, -1, -1))[0, :1], th)
            want = model.head(th).item()
        got = float(np.ravel(out)[0])
        assert abs(got - want) < 1e-4 * max(1.0, abs(want)), (got, want)
    for nt in args.threads:
        torch.set_num_threads(nt)
        kern = _step.StepKernel(eng.cfg, tr, 1, False, 1)
        box = [None]

        def crnn_frame():
            f, _ = net.forward(tc, frame, nt)
            out, box[0], _ = kern.step(f[0], box[0])

        tbox = [torch.zeros(1, HID)]

        def torch_frame():
            with torch.inference_mode():
                h = xt
                for conv in model.conv:
                    h = torch.relu(conv(h))
                tbox[0] = cellm(h.permute(0, 2, 3, 1).reshape(1, -1), tbox[0])
                model.head(tbox[0])

        t = time_interleaved({"crnn": crnn_frame, "torch": torch_frame}, args.rounds)
        print(f"| {nt} | {t['crnn'] * 1e6:.0f} | {t['torch'] * 1e6:.0f} | "
              f"{t['torch'] / t['crnn']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
