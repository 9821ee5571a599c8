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

The PyTorch model is the same network: one-hot input (crnn's
embedding_dim=None, pinned here so that the speed figures of issues 11, 15
and 25 stay comparable; RNNLanguageModel's default is an embedding since
issue 26: benches/lm_defaults.py) (F.one_hot) into
nn.LSTM(V, H, L, batch_first=True, dropout=...) and nn.Linear(H, V) (V = 67:
the 65 characters and crnn's unknown and end tokens), Adam at the same
learning rate and schedule (CosineAnnealingLR), gradient-norm clipping at 5,
the same batches of parallel streams with the state carried (detached) from
chunk to chunk, torch.set_num_threads(threads).

    python benches/char_lm.py --quality --minutes 20      # the 20-minute run
    python benches/char_lm.py --torch-quality             # the same in PyTorch
    python benches/char_lm.py --speed                     # throughput, generation
    python benches/char_lm.py --speed --isa avx2          # both libraries at AVX2

Needs torch==2.13.0 for the comparisons.

Word level and large vocabularies:

    python benches/char_lm.py --word            # perplexity per word, throughput
    python benches/char_lm.py --vocab-speed     # 50,000 tokens: head and cross-entropy
"""
import argparse
import copy
import math
import os
import time

import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import isa  # noqa: E402

isa.from_argv()            # --isa: before crnn (here) and torch are imported

from crnn import RNNLanguageModel  # noqa: E402
from crnn._text.tokens import Vocabulary, stream_batches  # noqa: E402

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
    def __init__(self, V, H, L, lr, threads, seed=0, dropout=0.0):
        import torch
        from torch import nn
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.torch, self.V = torch, V
        self.rnn = nn.LSTM(V, H, L, batch_first=True, dropout=dropout)
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
        """Mean -log p of p[1:] given p[:-1] over the pieces."""
        torch = self.torch
        total, count = 0.0, 0
        self.rnn.eval()
        with torch.no_grad():
            for p in ids_pieces:
                x = torch.nn.functional.one_hot(torch.from_numpy(p[None, :-1]), self.V).float()
                out, _ = self.rnn(x)
                logp = torch.log_softmax(self.head(out)[0], dim=-1)
                total -= logp[torch.arange(len(p) - 1), torch.from_numpy(p[1:])].sum().item()
                count += len(p) - 1
        self.rnn.train()
        return total / count


# ---------------------------------------------------------------------------


def quality(args):
    train, val = load()
    uni, big = ngram_floors(train, val)
    print(f"floors: unigram {uni:.3f}, bigram {big:.3f} nats/char")
    model = RNNLanguageModel(hidden_size=args.hidden, num_layers=args.layers, embedding_dim=None,
                             seq_length=args.seq_length, batch_size=args.batch_size,
                             learning_rate_init=args.lr, n_jobs=args.threads,
                             dropout=args.dropout, learning_rate=args.schedule,
                             max_iter=args.epochs, random_state=0)
    print(f"{args.layers}x{args.hidden} LSTM, batch {args.batch_size} x {args.seq_length}, "
          f"Adam {args.lr}, {args.schedule} schedule over {args.epochs} epochs, dropout "
          f"{args.dropout}, {args.threads} thread(s)")
    vpieces = pieces(val, args.batch_size)
    best_model = None
    start = time.perf_counter()
    budget = args.minutes * 60
    rows = []
    epoch = 0
    while time.perf_counter() - start < budget and epoch < args.epochs:
        t0 = time.perf_counter()
        model.partial_fit(train)
        t_train = time.perf_counter() - t0
        epoch += 1
        nats = -model.score(vpieces)
        elapsed = time.perf_counter() - start
        rows.append((epoch, elapsed, len(train) / t_train, nats))
        if nats <= min(r[3] for r in rows):
            best_model = copy.deepcopy(model)
        print(f"epoch {epoch}: {elapsed / 60:6.2f} min, {len(train) / t_train:9.0f} chars/s, "
              f"validation {nats:.4f} nats/char ({nats / math.log(2):.3f} bits)", flush=True)
    best = min(rows, key=lambda r: r[3])
    print(f"best validation {best[3]:.4f} nats/char at epoch {best[0]}, "
          f"{best[1] / 60:.1f} min (target <= 1.55 within 20 min)")
    print("sample of the best epoch's model (temperature 0.8):")
    print("ROMEO:" + best_model.generate(500, prompt="ROMEO:", temperature=0.8,
                                         random_state=0))
    if args.save:
        best_model.save(args.save)


def quality_torch(args):
    """The same run in PyTorch: the same stream batches and vocabulary (the
    end-of-document token included), validation pieces read as crnn reads
    them (end token first, end scored), Adam with CosineAnnealingLR stepped
    per epoch, nn.LSTM(dropout=...) between layers."""
    import torch
    train, val = load()
    vocab = Vocabulary([list(train)])          # as RNNLanguageModel builds it
    ids = vocab.encode(list(train), end=True)
    x, y = stream_batches(ids, args.batch_size, args.seq_length)
    vp = [np.concatenate([[1], vocab.encode(list(p), end=True)])
          for p in pieces(val, args.batch_size)]
    ref = TorchLM(len(vocab), args.hidden, args.layers, args.lr, args.threads,
                  dropout=args.dropout)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(ref.opt, T_max=args.epochs)
    print(f"PyTorch: {args.layers}x{args.hidden} LSTM, batch {args.batch_size} x "
          f"{args.seq_length}, Adam {args.lr}, cosine over {args.epochs} epochs, dropout "
          f"{args.dropout}, {args.threads} thread(s)")
    start = time.perf_counter()
    best = (None, None, np.inf)
    epoch = 0
    while time.perf_counter() - start < args.minutes * 60 and epoch < args.epochs:
        t0 = time.perf_counter()
        ref.state = None
        for k in range(x.shape[0]):
            ref.train_chunk(x[k], y[k])
        sched.step()
        t_train = time.perf_counter() - t0
        epoch += 1
        nats = ref.val_nats(vp)
        elapsed = time.perf_counter() - start
        if nats < best[2]:
            best = (epoch, elapsed, nats)
        print(f"epoch {epoch}: {elapsed / 60:6.2f} min, {x.size / t_train:9.0f} chars/s, "
              f"validation {nats:.4f} nats/char", flush=True)
    print(f"PyTorch best validation {best[2]:.4f} nats/char at epoch {best[0]}, "
          f"{best[1] / 60:.1f} min")


def speed(args):
    import torch
    train, val = load()
    model = RNNLanguageModel(hidden_size=args.hidden, num_layers=args.layers, embedding_dim=None,
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


def word(args):
    """Word-level run: the same text cut by the "word" tokenizer, the 10,000
    most frequent words (the rest unknown), an embedding of 128, one LSTM
    layer of 256; validation perplexity per word against the unigram and
    bigram (add-one) floors, and training throughput against PyTorch
    (nn.Embedding + nn.LSTM + nn.Linear)."""
    train, val = load()
    model = RNNLanguageModel(tokenizer="word", max_vocab=10_000, embedding_dim=128,
                             hidden_size=256, num_layers=1, seq_length=35, batch_size=32,
                             learning_rate_init=2e-3, n_jobs=args.threads, random_state=0)
    vpieces = pieces(val, args.batch_size)
    from crnn._text.tokens import tokenizer_function
    words = tokenizer_function("word")
    vocab = Vocabulary([words(train)], max_vocab=10_000)
    tr = vocab.encode(words(train), end=True)
    va = vocab.encode(words(val), end=True)
    V = len(vocab)
    uni = np.bincount(tr, minlength=V) + 1.0
    uni /= uni.sum()
    big = {}
    for a, b in zip(tr[:-1], tr[1:]):
        big[(a, b)] = big.get((a, b), 0) + 1
    first = np.bincount(tr[:-1], minlength=V)
    bi = np.mean([-np.log((big.get((a, b), 0) + 1) / (first[a] + V))
                  for a, b in zip(va[:-1], va[1:])])
    print(f"word level: {len(tr):,} training tokens, vocabulary {V:,}; floors: unigram "
          f"perplexity {np.exp(-np.log(uni[va]).mean()):.1f}, bigram (add-one) "
          f"{np.exp(bi):.1f}")
    start = time.perf_counter()
    for epoch in range(1, args.word_epochs + 1):
        t0 = time.perf_counter()
        model.partial_fit(train)
        t = time.perf_counter() - t0
        print(f"epoch {epoch}: {len(tr) / t:,.0f} tokens/s, validation perplexity "
              f"{model.perplexity(vpieces):.1f}", flush=True)
    print(f"{(time.perf_counter() - start) / 60:.1f} min")

    # throughput against the same model in PyTorch on the same batches
    x, y = stream_batches(tr, 32, 35)
    epoch = torch_embedding_lm(V, 128, 256, args.threads, 2e-3)
    t0 = time.perf_counter()
    epoch(x, y)
    t_torch = x.size / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    model.partial_fit(train)
    t_crnn = len(tr) / (time.perf_counter() - t0)
    print(f"word-level training: crnn {t_crnn:,.0f} tokens/s, torch {t_torch:,.0f} tokens/s, "
          f"ratio {t_crnn / t_torch:.2f}x")


def torch_embedding_lm(V, E, H, threads, lr, layers=1):
    """nn.Embedding + nn.LSTM + nn.Linear with Adam: a function training one
    epoch over stream batches (n_chunks, B, L), the state carried; its
    ``modules`` are (embedding, lstm, head)."""
    import torch
    from torch import nn
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    emb, rnn, head = nn.Embedding(V, E), nn.LSTM(E, H, layers, batch_first=True), \
        nn.Linear(H, V)
    params = [*emb.parameters(), *rnn.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=lr)

    def epoch(x, y):
        state = None
        for k in range(x.shape[0]):
            if state is not None:
                state = tuple(s.detach() for s in state)
            out, state = rnn(emb(torch.from_numpy(x[k])), state)
            loss = nn.functional.cross_entropy(head(out).reshape(-1, V),
                                               torch.from_numpy(y[k]).reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()

    epoch.modules = (emb, rnn, head)
    return epoch


def vocab_speed(args):
    """Training throughput with a large vocabulary (random token ids: the
    head GEMM and the cross-entropy dominate): crnn against nn.Embedding +
    nn.LSTM + nn.Linear + cross_entropy, same batch, threads and Adam."""
    from crnn._text.tokens import UNK, EOS
    V, E, H, B, L = args.vocab, 128, 256, 32, 35
    rng = np.random.default_rng(0)
    ids = rng.integers(2, V, size=B * L * args.vocab_chunks + 1)
    model = RNNLanguageModel(embedding_dim=E, hidden_size=H, num_layers=1, seq_length=L,
                             batch_size=B, n_jobs=args.threads, random_state=0)
    model.load_state_dict(_random_sd(V, E, H, rng), vocab=[UNK, EOS] + list(range(2, V)))
    docs = [ids]
    model.partial_fit(docs)                       # warm-up
    res = {"crnn": [], "torch": []}
    epoch = torch_embedding_lm(V, E, H, args.threads, 1e-3)
    x, y = stream_batches(ids, B, L)
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        model.partial_fit(docs)
        res["crnn"].append(x.size / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        epoch(x, y)
        res["torch"].append(x.size / (time.perf_counter() - t0))
    c, t = np.median(res["crnn"]), np.median(res["torch"])
    print(f"vocabulary {V:,}, embedding {E}, LSTM {H}, batch {B} x {L}, {args.threads} "
          f"thread(s): crnn {c:,.0f} tokens/s, torch {t:,.0f} tokens/s, ratio {c / t:.2f}x")


def _random_sd(V, E, H, rng):
    b = 1 / np.sqrt(H)
    return {"embedding.weight": rng.normal(size=(V, E)),
            "rnn.weight_ih_l0": rng.uniform(-b, b, (4 * H, E)),
            "rnn.weight_hh_l0": rng.uniform(-b, b, (4 * H, H)),
            "rnn.bias_ih_l0": rng.uniform(-b, b, 4 * H),
            "rnn.bias_hh_l0": rng.uniform(-b, b, 4 * H),
            "head.weight": rng.uniform(-b, b, (V, H)), "head.bias": rng.uniform(-b, b, V)}


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
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--schedule", default="cosine",
                   help="learning-rate schedule (RNNLanguageModel's learning_rate)")
    p.add_argument("--epochs", type=int, default=40,
                   help="epochs at most (and the cosine schedule's length)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--speed-chars", type=int, default=100_000)
    p.add_argument("--gen-tokens", type=int, default=2000)
    p.add_argument("--save", default=None, help="save the trained model here")
    p.add_argument("--torch-quality", action="store_true",
                   help="the quality run with the PyTorch model")
    p.add_argument("--word", action="store_true", help="the word-level run")
    p.add_argument("--word-epochs", type=int, default=6)
    p.add_argument("--vocab-speed", action="store_true",
                   help="training throughput with a large vocabulary")
    p.add_argument("--vocab", type=int, default=50_000)
    p.add_argument("--vocab-chunks", type=int, default=20)
    p.add_argument("--isa", choices=list(isa.ISAS), default=None,
                   help="pin crnn and torch to this SIMD level (applied at import)")
    args = p.parse_args()
    print(f"SIMD: {isa.describe()}")
    if args.torch_quality:
        quality_torch(args)
        return
    if args.word:
        word(args)
    if args.vocab_speed:
        vocab_speed(args)
    if args.word or args.vocab_speed:
        return
    if not (args.quality or args.speed):
        args.quality = args.speed = True
    if args.speed:
        speed(args)
    if args.quality:
        quality(args)


if __name__ == "__main__":
    main()
