"""Character language model on tinyshakespeare (issue 11): quality over
wall-clock time, training throughput and generation speed, crnn against the
same model in PyTorch.

Data: ../shared/data/tinyshakespeare.txt (1,115,394 characters, 65
distinct), the first 90% for training and the last 10% for validation.
Validation nats per character are scored the way char-rnn scores them: the
validation text cut into `batch_size` contiguous pieces, each read from a
zero state (crnn: ``score`` on the list of pieces; each piece starts with the
end-of-document token as input and also scores its end, one token in
~3,500).  Reference floors on this split: a unigram model 3.30 nats/char,
the bigram model 2.48 (both fitted on the training text).

The PyTorch model is the same network: one-hot input (F.one_hot) into
nn.LSTM(65, H, L, batch_first=True) and nn.Linear(H, 65), Adam at the same
learning rate, gradient-norm clipping at 5, the same batch of parallel
streams and sequence length with the state carried (detached) from chunk to
chunk, torch.set_num_threads(threads).

    python benches/char_lm.py --quality --minutes 20      # the 20-minute run
    python benches/char_lm.py --speed                     # throughput, generation

Needs torch==2.13.0 for the comparisons.
"""
import argparse
import math
import os
import time

import numpy as np

from crnn import RNNLanguageModel
from crnn._text import stream_batches

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                    "tinyshakespeare.txt")


def load():
    with open(DATA, encoding="utf-8") as f:
        text = f.read()
    cut = int(len(text) * 0.9)
    return text[:cut], text[cut:]


def pieces(text, n):
    bounds = np.linspace(0, len(text), n + 1).astype(int)
    return [text[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def ngram_floors(train, val):
    """Unigram and bigram (add-one) validation nats/char."""
    chars = sorted(set(train) | set(val))
    idx = {c: i for i, c in enumerate(chars)}
    tr = np.array([idx[c] for c in train])
    va = np.array([idx[c] for c in val])
    V = len(chars)
    uni = np.bincount(tr, minlength=V) + 1.0
    uni /= uni.sum()
    big = np.ones((V, V))
    np.add.at(big, (tr[:-1], tr[1:]), 1)
    big /= big.sum(axis=1, keepdims=True)
    return -np.log(uni[va]).mean(), -np.log(big[va[:-1], va[1:]]).mean()


# ---------------------------------------------------------------------------
# PyTorch reference


class TorchLM:
    def __init__(self, V, H, L, lr, threads, seed=0):
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch, self.V = torch, V
        self.rnn = nn.LSTM(V, H, L, batch_first=True)
        self.head = nn.Linear(H, V)
        self.params = list(self.rnn.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.Adam(self.params, lr=lr)
        self.state = None

    def train_chunk(self, x, y):
        torch = self.torch
        xt = torch.nn.functional.one_hot(torch.from_numpy(x), self.V).float()
        if self.state is not None:
            self.state = tuple(s.detach() for s in self.state)
        out, self.state = self.rnn(xt, self.state)
        logits = self.head(out)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.V),
                                                 torch.from_numpy(y).reshape(-1))
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 5.0)
        self.opt.step()
        return loss.item()

    def val_nats(self, ids_pieces):
        torch = self.torch
        total, count = 0.0, 0
        with torch.no_grad():
            for p in ids_pieces:
                x = torch.nn.functional.one_hot(torch.from_numpy(p[None, :-1]), self.V).float()
                out, _ = self.rnn(x)
                logp = torch.log_softmax(self.head(out)[0], dim=-1)
                total -= logp[torch.arange(len(p) - 1), torch.from_numpy(p[1:])].sum().item()
                count += len(p) - 1
        return total / count


# ---------------------------------------------------------------------------


def quality(args):
    train, val = load()
    uni, big = ngram_floors(train, val)
    print(f"floors: unigram {uni:.3f}, bigram {big:.3f} nats/char")
    model = RNNLanguageModel(hidden_size=args.hidden, num_layers=args.layers,
                             seq_length=args.seq_length, batch_size=args.batch_size,
                             learning_rate_init=args.lr, n_jobs=args.threads,
                             random_state=0)
    vpieces = pieces(val, args.batch_size)
    start = time.perf_counter()
    budget = args.minutes * 60
    rows = []
    epoch = 0
    while time.perf_counter() - start < budget:
        t0 = time.perf_counter()
        model.partial_fit(train)
        t_train = time.perf_counter() - t0
        epoch += 1
        nats = -model.score(vpieces)
        elapsed = time.perf_counter() - start
        rows.append((epoch, elapsed, len(train) / t_train, nats))
        print(f"epoch {epoch}: {elapsed / 60:6.2f} min, {len(train) / t_train:9.0f} chars/s, "
              f"validation {nats:.4f} nats/char ({nats / math.log(2):.3f} bits)", flush=True)
    best = min(r[3] for r in rows)
    print(f"best validation {best:.4f} nats/char after {rows[-1][1] / 60:.1f} min "
          f"(target <= 1.55 in 20 min)")
    print("sample (temperature 0.8):")
    print("ROMEO:" + model.generate(500, prompt="ROMEO:", temperature=0.8, random_state=0))
    if args.save:
        model.save(args.save)


def speed(args):
    import torch
    train, val = load()
    model = RNNLanguageModel(hidden_size=args.hidden, num_layers=args.layers,
                             seq_length=args.seq_length, batch_size=args.batch_size,
                             learning_rate_init=args.lr, n_jobs=args.threads, random_state=0)
    n_chars = args.speed_chars
    text = train[:n_chars]
    model.partial_fit(text[:args.batch_size * args.seq_length * 2 + 1])      # warm-up
    vocab = model._vocabulary()
    ids = vocab.encode(list(text))
    x, y = stream_batches(ids, args.batch_size, args.seq_length)
    ref = TorchLM(len(vocab), args.hidden, args.layers, args.lr, args.threads)
    ref.train_chunk(x[0], y[0])
    res = {}
    for rnd in range(args.rounds):
        t0 = time.perf_counter()
        model.partial_fit(text)
        res.setdefault("crnn", []).append(x.size / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        ref.state = None
        for k in range(x.shape[0]):
            ref.train_chunk(x[k], y[k])
        res.setdefault("torch", []).append(x.size / (time.perf_counter() - t0))
    c, t = np.median(res["crnn"]), np.median(res["torch"])
    print(f"training, {args.layers}x{args.hidden} LSTM, batch {args.batch_size} x "
          f"{args.seq_length}, {args.threads} thread(s): crnn {c:,.0f} chars/s, torch "
          f"{t:,.0f} chars/s, ratio {c / t:.2f}x")

    # generation: crnn's generate (step kernel) against an nn.LSTMCell loop
    n = args.gen_tokens
    t0 = time.perf_counter()
    model.generate(n, temperature=1.0, random_state=0)
    g_crnn = n / (time.perf_counter() - t0)
    cells = [torch.nn.LSTMCell(len(vocab) if i == 0 else args.hidden, args.hidden)
             for i in range(args.layers)]
    head = torch.nn.Linear(args.hidden, len(vocab))
    with torch.no_grad():
        state = [(torch.zeros(1, args.hidden), torch.zeros(1, args.hidden)) for _ in cells]
        tok = 1
        t0 = time.perf_counter()
        for _ in range(n):
            inp = torch.nn.functional.one_hot(torch.tensor([tok]), len(vocab)).float()
            for i, cell in enumerate(cells):
                state[i] = cell(inp, state[i])
                inp = state[i][0]
            p = torch.softmax(head(inp)[0], dim=-1)
            tok = int(torch.multinomial(p, 1))
        g_torch = n / (time.perf_counter() - t0)
    print(f"generation: crnn {g_crnn:,.0f} tokens/s, torch LSTMCell loop {g_torch:,.0f} "
          f"tokens/s, ratio {g_crnn / g_torch:.1f}x")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quality", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--seq-length", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--speed-chars", type=int, default=100_000)
    p.add_argument("--gen-tokens", type=int, default=2000)
    p.add_argument("--save", default=None, help="save the trained model here")
    args = p.parse_args()
    if not (args.quality or args.speed):
        args.quality = args.speed = True
    if args.speed:
        speed(args)
    if args.quality:
        quality(args)


if __name__ == "__main__":
    main()
