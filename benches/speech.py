"""Speech to text on spoken digit strings: crnn's RNNTranscriber against the
same bidirectional LSTM + torch.nn.CTCLoss in PyTorch.

Data: crnn.datasets.make_spoken_digits (espeak-ng speech, 3-8 digits, 13
MFCCs with deltas and delta-deltas = 39 features per 10 ms frame, normalised
per utterance).  Voices: espeak-ng's 7 English accents x its 97 distinct voice
variants; ``--test-variants`` whole variants (in every accent) are held out,
so the test speakers were never heard in training.

Both libraries train the same model: ``--layers`` bidirectional LSTM layers of
``--hidden`` units, a linear layer to the blank + 10 digits, the CTC loss
with torch's "mean" reduction, Adam (``--lr``), gradient-norm clipping at 5,
batches of ``--batch`` utterances reshuffled every epoch, float32, the same
number of threads.  PyTorch runs the LSTM on packed sequences (each
utterance its own length, as crnn: the same model).  ``--torch-padded`` also
times PyTorch on padded batches without packing, its faster oneDNN path: not
the same model for a bidirectional network (the reverse direction then reads
the padding first), reported for its speed only.

Reported: training throughput (input frames per second, real frames only),
the training loss per epoch, and the character error rate (CER: edit
distance over reference length) on the held-out voices, greedy and beam.

    python benches/speech.py --train 600 --test 100 --epochs 2          # a quick look
    python benches/speech.py --train 3000 --test 400 --epochs 10 --json speech.json
"""
import argparse
import json
import time
import warnings

import numpy as np

ALPHABET = "0123456789"


def corpus(n_train, n_test, test_variants, seed, n_jobs):
    from crnn.datasets import make_spoken_digits, spoken_digit_voices, split_voices
    train_voices, test_voices = split_voices(spoken_digit_voices(), test_variants,
                                             random_state=seed)
    X, y = make_spoken_digits(n_train, voices=train_voices, random_state=seed, n_jobs=n_jobs)
    Xt, yt = make_spoken_digits(n_test, voices=test_voices, random_state=seed + 1000,
                                n_jobs=n_jobs)
    held = sorted({v.split("+")[1] for v in test_voices})
    return X, y, Xt, yt, held


def run_crnn(X, y, Xt, yt, args):
    import crnn
    m = crnn.RNNTranscriber(cell="lstm", hidden_size=args.hidden, num_layers=args.layers,
                            bidirectional=True, batch_size=args.batch,
                            learning_rate_init=args.lr, clip_norm=5.0, n_jobs=args.threads,
                            random_state=args.seed, forget_bias=0.0)
    frames = sum(len(x) for x in X)
    seconds = 0.0
    for _ in range(args.epochs):
        t = time.perf_counter()
        m.partial_fit(X, y)
        seconds += time.perf_counter() - t
    out = {"train_seconds": seconds, "frames_per_second": frames * args.epochs / seconds,
           "loss_curve": list(m.loss_curve_)}
    for beam in args.beam:
        t = time.perf_counter()
        pred = m.transcribe(Xt, beam_size=beam)
        out[f"decode_seconds_beam{beam}"] = time.perf_counter() - t
        out[f"cer_beam{beam}"] = cer(yt, pred)
    out["examples"] = [(r, str(p)) for r, p in zip(yt[:8], m.transcribe(Xt[:8]))]
    return out


def cer(refs, hyps):
    from crnn._speech.ctc import character_error_rate
    return character_error_rate(list(refs), [str(h) for h in hyps])


def torch_model(D, args):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(D, args.hidden, args.layers, batch_first=True,
                                     bidirectional=True)
            self.head = torch.nn.Linear(2 * args.hidden, len(ALPHABET) + 1)

        def forward(self, xs, packed=True):
            lens = torch.tensor([len(x) for x in xs])
            pad = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
            if packed:
                pk = torch.nn.utils.rnn.pack_padded_sequence(pad, lens, batch_first=True,
                                                             enforce_sorted=False)
                out, _ = self.rnn(pk)
                out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
            else:
                out, _ = self.rnn(pad)
            return torch.log_softmax(self.head(out), -1), lens

    return Net()


def run_torch(X, y, Xt, yt, args, packed=True, epochs=None):
    import torch
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    net = torch_model(X[0].shape[1], args)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    ctc = torch.nn.CTCLoss(blank=0, reduction="mean", zero_infinity=False)
    xs = [torch.from_numpy(x) for x in X]
    ts = [torch.tensor([ALPHABET.index(c) + 1 for c in t]) for t in y]
    rng = np.random.default_rng(args.seed)
    frames = sum(len(x) for x in X)
    epochs = args.epochs if epochs is None else epochs
    seconds, curve = 0.0, []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        t0 = time.perf_counter()
        total, n = 0.0, 0
        for b in range(0, len(order), args.batch):
            idx = order[b:b + args.batch]
            logp, lens = net([xs[i] for i in idx], packed)
            loss = ctc(logp.transpose(0, 1), torch.cat([ts[i] for i in idx]), lens,
                       torch.tensor([len(ts[i]) for i in idx]))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            total += loss.item() * len(idx)
            n += len(idx)
        seconds += time.perf_counter() - t0
        curve.append(total / n)
    out = {"train_seconds": seconds, "frames_per_second": frames * epochs / seconds,
           "loss_curve": curve}
    if packed:
        with torch.no_grad():
            hyps = []
            for b in range(0, len(Xt), 64):
                logp, lens = net([torch.from_numpy(x) for x in Xt[b:b + 64]])
                for row, n in zip(logp.argmax(-1).numpy(), lens.numpy()):
                    path = row[:n]
                    hyps.append("".join(ALPHABET[c - 1] for k, c in enumerate(path)
                                        if c and (k == 0 or c != path[k - 1])))
        out["cer_greedy"] = cer(yt, hyps)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", type=int, default=3000)
    p.add_argument("--test", type=int, default=400)
    p.add_argument("--test-variants", type=int, default=6)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beam", type=int, nargs="+", default=[1, 8])
    p.add_argument("--which", choices=["crnn", "torch", "both"], default="both")
    p.add_argument("--torch-padded", action="store_true",
                   help="also time one epoch of PyTorch on padded, unpacked batches")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args()
    warnings.simplefilter("ignore")

    t = time.perf_counter()
    X, y, Xt, yt, held = corpus(args.train, args.test, args.test_variants, args.seed,
                                args.threads)
    frames = sum(len(x) for x in X)
    print(f"corpus: {len(X)} training utterances ({frames} frames, "
          f"{frames / len(X):.0f} per utterance), {len(Xt)} test utterances by held-out "
          f"variants {held} ({time.perf_counter() - t:.0f} s to make)")
    res = {"args": vars(args), "held_out_variants": held, "train_frames": frames}
    if args.which in ("crnn", "both"):
        res["crnn"] = r = run_crnn(X, y, Xt, yt, args)
        print(f"crnn : {r['frames_per_second']:8.0f} frames/s, loss "
              f"{' '.join(f'{v:.3f}' for v in r['loss_curve'])}")
        for beam in args.beam:
            print(f"       CER beam {beam}: {100 * r[f'cer_beam{beam}']:.2f}% "
                  f"(decode {r[f'decode_seconds_beam{beam}']:.2f} s)")
        for ref, hyp in r["examples"]:
            print(f"       {ref:>9} -> {hyp}")
    if args.which in ("torch", "both"):
        res["torch"] = r = run_torch(X, y, Xt, yt, args)
        print(f"torch: {r['frames_per_second']:8.0f} frames/s, loss "
              f"{' '.join(f'{v:.3f}' for v in r['loss_curve'])}")
        print(f"       CER greedy: {100 * r['cer_greedy']:.2f}%")
        if args.torch_padded:
            res["torch_padded"] = rp = run_torch(X, y, Xt, yt, args, packed=False, epochs=1)
            print(f"torch padded (one epoch, speed only): {rp['frames_per_second']:8.0f} "
                  "frames/s")
    if "crnn" in res and "torch" in res:
        print(f"training throughput crnn / torch: "
              f"{res['crnn']['frames_per_second'] / res['torch']['frames_per_second']:.2f}x")
        if "torch_padded" in res:
            print(f"crnn / torch padded: {res['crnn']['frames_per_second'] / res['torch_padded']['frames_per_second']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
