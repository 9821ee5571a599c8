"""English -> French translation on the machine's gettext catalogs: crnn's
RNNTranslator against the same encoder-decoder in PyTorch.

Data: crnn.datasets.gettext_pairs("fr") (about 34k pairs of short
interface messages), shuffled by a fixed permutation (numpy default_rng(0)),
the first 90% for training and the rest for test (``--limit N``: only the
first N pairs of the permutation, then the same 90/10 split).  About 10k of
the pairs have a target equal to the source up to case (untranslated names:
"Besme" -> "besme"); ``--drop-copies`` leaves them out (about 24k remain).

Both libraries train the same model (the one of tests/support/seq2seq_reference.py):
"word" tokens (crnn._translation.translator.word_tokens, the joiner mark on tokens that
touch the previous one) and the vocabularies RNNTranslator builds, source
and target embeddings, a bidirectional one-layer encoder, the bridge
s_0 = tanh(W [h_fwd; h_bwd] + b), a decoder cell with Bahdanau (or Luong, or
no) attention and a linear head; the mean cross-entropy over every target
token and the end token (teacher forcing), Adam, gradient-norm clipping at 5,
the same batch size, epochs and learning rate, a new shuffle each epoch,
PyTorch's default initialisation.  The PyTorch model runs in float32, the
encoder on a packed padded batch, the decoder as a Python loop over the
padded batch's time steps with masked attention and a masked loss.

Reported: training time and throughput (target tokens, end tokens included,
per second), BLEU and chrF (sacrebleu) of the test translations (crnn: per
beam size; PyTorch: batched greedy decoding), and the time to decode 1,000
sentences greedily: crnn's kernel against PyTorch's step loop (one batch,
a Python loop over the time steps) running crnn's trained weights, so both
decode the same model and the same outputs.

    python benches/translation.py --limit 3000 --epochs 1 --which both
    python benches/translation.py --limit 12000 --epochs 4 --hidden 128 --embed 64 \\
        --beam 1 5 --json translation.json
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np

SPLIT_SEED = 0          # the fixed permutation of the pairs
TRAIN_FRACTION = 0.9
N_DECODE = 1000         # sentences of the decoding-speed comparison


# ---------------------------------------------------------------------------
# data


def load_split(limit=None, lang="fr", drop_copies=False):
    """(train_src, train_tgt, test_src, test_tgt) of the gettext pairs, or
    exits with a message when there are none.  drop_copies: leave out the
    pairs whose target is the source up to case (untranslated names,
    "Besme" -> "besme"; about 10k of the 34k), before the permutation."""
    from crnn.datasets import gettext_pairs
    try:
        pairs = gettext_pairs(lang=lang)
    except FileNotFoundError as exc:
        sys.exit(f"translation bench: no gettext catalogs for {lang!r} on this machine "
                 f"({exc}); install some (e.g. language-pack-{lang}) and retry.")
    if not pairs:
        sys.exit(f"translation bench: the {lang!r} gettext catalogs gave no sentence pair.")
    if drop_copies:
        pairs = [(s, t) for s, t in pairs if s.lower() != t.lower()]
    perm = np.random.default_rng(SPLIT_SEED).permutation(len(pairs))
    if limit is not None:
        perm = perm[:limit]
    if len(perm) < 2:
        sys.exit(f"translation bench: {len(perm)} pair(s) are too few to split.")
    cut = min(len(perm) - 1, max(1, int(round(TRAIN_FRACTION * len(perm)))))
    train = [pairs[i] for i in perm[:cut]]
    test = [pairs[i] for i in perm[cut:]]
    return ([s for s, _ in train], [t for _, t in train],
            [s for s, _ in test], [t for _, t in test])


def vocabularies(src_tokens, tgt_tokens):
    """The vocabularies RNNTranslator builds (max_vocab=None, min_count=1),
    as RNNTranslator._new_vocabularies does."""
    from crnn._text.tokens import EOS, UNK, Vocabulary
    from crnn._translation.translator import BOS
    sv = Vocabulary(src_tokens)
    tv = Vocabulary(tgt_tokens)
    tv = Vocabulary.from_tokens([UNK, EOS, BOS] + [t for t in tv.tokens[2:] if t != BOS])
    return sv, tv


def repeat_to(items, n):
    """items repeated (cyclically) to exactly n."""
    return [items[i % len(items)] for i in range(n)]


def metrics(hyp, refs):
    import sacrebleu
    return (float(sacrebleu.corpus_bleu(list(hyp), [list(refs)]).score),
            float(sacrebleu.corpus_chrf(list(hyp), [list(refs)]).score))


# ---------------------------------------------------------------------------
# PyTorch reference


def torch_model(Vs, Vt, E, H, A, cell, attention):
    """The model as a float32 nn.Module whose state_dict has crnn's names."""
    import torch
    from torch import nn

    class Seq2Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.cell, self.attn = cell, attention
            C = 2 * H
            self.src_embedding = nn.Embedding(Vs, E)
            self.tgt_embedding = nn.Embedding(Vt, E)
            self.encoder = {"gru": nn.GRU, "lstm": nn.LSTM}[cell](
                E, H, 1, batch_first=True, bidirectional=True)
            self.bridge = nn.Linear(C, H)
            self.decoder = {"gru": nn.GRUCell, "lstm": nn.LSTMCell}[cell](
                E + C if attention == "bahdanau" else E, H)
            if attention == "bahdanau":
                self.attention = nn.ParameterDict({
                    "W_query": nn.Parameter(torch.empty(A, H)),
                    "W_key": nn.Parameter(torch.empty(A, C)),
                    "v": nn.Parameter(torch.empty(A))})
                fans = {"W_query": H, "W_key": C, "v": A}
            elif attention == "luong":
                self.attention = nn.ParameterDict({"W": nn.Parameter(torch.empty(H, C))})
                self.combine = nn.Linear(C + H, H)
                fans = {"W": C}
            else:
                fans = {}
            with torch.no_grad():
                for name, fan in fans.items():
                    bound = 1 / math.sqrt(fan)
                    self.attention[name].uniform_(-bound, bound)
            self.head = nn.Linear(H + C if attention == "bahdanau" else H, Vt)

        def encode(self, X, lens):
            """X (B, T) padded source ids, lens (B,) -> memory (B, T, C),
            source mask (B, T), s_0, c_0, the attention's keys."""
            T = X.shape[1]
            packed = nn.utils.rnn.pack_padded_sequence(
                self.src_embedding(X), lens, batch_first=True, enforce_sorted=False)
            out, h_n = self.encoder(packed)
            if self.cell == "lstm":
                h_n = h_n[0]
            mem, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
            s = torch.tanh(self.bridge(torch.cat([h_n[0], h_n[1]], dim=1)))
            c = torch.zeros_like(s) if self.cell == "lstm" else None
            mask = torch.arange(T)[None, :] < lens[:, None]
            if self.attn == "bahdanau":
                keys = mem @ self.attention["W_key"].T                 # (B, T, A)
            elif self.attn == "luong":
                keys = mem @ self.attention["W"].T                     # (B, T, H)
            else:
                keys = None
            return mem, mask, s, c, keys

        def step(self, tok, s, c, mem, mask, keys):
            """One decoder step: input tokens (B,) -> (features for the
            head, s, c)."""
            emb = self.tgt_embedding(tok)
            if self.attn == "bahdanau":
                q = s @ self.attention["W_query"].T
                score = torch.tanh(q[:, None, :] + keys) @ self.attention["v"]
                alpha = torch.softmax(score.masked_fill(~mask, -math.inf), dim=1)
                ctx = torch.bmm(alpha[:, None, :], mem)[:, 0]
                x = torch.cat([emb, ctx], dim=1)
            else:
                x = emb
            if self.cell == "lstm":
                s, c = self.decoder(x, (s, c))
            else:
                s = self.decoder(x, s)
            if self.attn == "bahdanau":
                o = torch.cat([s, ctx], dim=1)
            elif self.attn == "luong":
                score = torch.bmm(keys, s[:, :, None])[:, :, 0]
                alpha = torch.softmax(score.masked_fill(~mask, -math.inf), dim=1)
                ctx = torch.bmm(alpha[:, None, :], mem)[:, 0]
                o = torch.tanh(self.combine(torch.cat([ctx, s], dim=1)))
            else:
                o = s
            return o, s, c

        def loss(self, X, lens, inputs, targets):
            """Mean cross-entropy over the batch's target tokens (targets
            -100 on padding)."""
            mem, mask, s, c, keys = self.encode(X, lens)
            outs = []
            for k in range(inputs.shape[1]):
                o, s, c = self.step(inputs[:, k], s, c, mem, mask, keys)
                outs.append(o)
            logits = self.head(torch.stack(outs, dim=1))
            return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                               targets.reshape(-1), ignore_index=-100)

        @torch.inference_mode()
        def greedy(self, src_ids, bos, eos, chunk=None):
            """Greedy translations (id lists without EOS), sentence i at most
            2 * len(src_i) + 10 tokens: the batch stepped together in a
            Python loop until every sentence has produced EOS or hit its
            limit.  chunk: sentences per batch (None: all at once)."""
            out = [None] * len(src_ids)
            chunk = chunk or max(1, len(src_ids))
            for a in range(0, len(src_ids), chunk):
                part = src_ids[a:a + chunk]
                X, lens = pad(part)
                maxlen = 2 * lens + 10
                mem, mask, s, c, keys = self.encode(X, lens)
                B = len(part)
                tok = torch.full((B,), bos, dtype=torch.long)
                done = torch.zeros(B, dtype=torch.bool)
                steps = []
                for k in range(int(maxlen.max())):
                    o, s, c = self.step(tok, s, c, mem, mask, keys)
                    tok = self.head(o).argmax(dim=1)
                    done = done | (tok == eos) | (k >= maxlen)
                    tok = tok.masked_fill(done, eos)
                    steps.append(tok)
                    if bool(done.all()):
                        break
                seq = torch.stack(steps, dim=1).numpy()
                for b in range(B):
                    row = seq[b]
                    n = int(np.argmax(row == eos)) if (row == eos).any() else len(row)
                    out[a + b] = row[:n].tolist()
            return out

    return Seq2Seq()


def pad(sents):
    """Ragged id lists -> (LongTensor (B, T) zero-padded, lengths (B,))."""
    import torch
    lens = torch.tensor([len(s) for s in sents], dtype=torch.long)
    X = torch.zeros(len(sents), int(lens.max()), dtype=torch.long)
    for b, s in enumerate(sents):
        X[b, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return X, lens


def teacher_batch(tgts, bos, eos):
    """Target id lists -> decoder inputs (B, K) (BOS, y_1..y_n, padded with
    EOS) and targets (B, K) (y_1..y_n, EOS, padded with -100)."""
    import torch
    K = max(len(t) for t in tgts) + 1
    inputs = torch.full((len(tgts), K), eos, dtype=torch.long)
    targets = torch.full((len(tgts), K), -100, dtype=torch.long)
    inputs[:, 0] = bos
    for b, t in enumerate(tgts):
        t = torch.as_tensor(t, dtype=torch.long)
        inputs[b, 1:len(t) + 1] = t
        targets[b, :len(t)] = t
        targets[b, len(t)] = eos
    return inputs, targets


def train_torch(model, src_ids, tgt_ids, *, epochs, batch_size, lr, seed, bos, eos,
                verbose=True):
    """Adam, clip_grad_norm_(5), a new shuffle each epoch; returns the loss
    of each epoch (mean over its batches)."""
    import torch
    params = [p for p in model.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    curve = []
    model.train()
    for epoch in range(epochs):
        order = rng.permutation(len(src_ids))
        total, nb = 0.0, 0
        t0 = time.perf_counter()
        for a in range(0, len(order), batch_size):
            idx = order[a:a + batch_size]
            X, lens = pad([src_ids[i] for i in idx])
            inputs, targets = teacher_batch([tgt_ids[i] for i in idx], bos, eos)
            opt.zero_grad(set_to_none=True)
            loss = model.loss(X, lens, inputs, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            total += loss.item()
            nb += 1
        curve.append(total / nb)
        if verbose:
            print(f"  torch epoch {epoch + 1}: loss {curve[-1]:.4f} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
    model.eval()
    return curve


def load_crnn_weights(model, crnn_model):
    """Copy an RNNTranslator's weights into the torch module (same names)."""
    import torch
    sd = crnn_model.state_dict()
    own = model.state_dict()
    if set(sd) != set(own):
        raise ValueError(f"state_dict names differ: {sorted(set(sd) ^ set(own))}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(torch.from_numpy(np.asarray(sd[k], dtype=np.float32)))
    return model


# ---------------------------------------------------------------------------
# the runs


def run_crnn(args, data, tok):
    from crnn import RNNTranslator
    from crnn._translation.translator import detokenize
    from crnn._nn.threads import effective_n_threads
    tr_src, tr_tgt, te_src, te_tgt = data
    model = RNNTranslator(cell=args.cell, hidden_size=args.hidden, embedding_dim=args.embed,
                          attention=args.attention, batch_size=args.batch,
                          max_iter=args.epochs, learning_rate_init=args.lr,
                          random_state=args.seed, n_jobs=args.threads,
                          verbose=args.verbose)
    print(f"crnn: training {len(tr_src)} pairs, {args.epochs} epoch(s)...", flush=True)
    t0 = time.perf_counter()
    model.fit(tr_src, tr_tgt)
    fit_s = time.perf_counter() - t0
    res = dict(library="crnn", train_s=fit_s,
               tokens_per_s=tok["train_tokens"] * args.epochs / fit_s,
               loss_curve=[float(x) for x in model.loss_curve_],
               src_vocab=len(model.src_vocab_), tgt_vocab=len(model.tgt_vocab_),
               per_beam={})
    print(f"  crnn fit {fit_s:.1f} s, loss per epoch "
          f"{', '.join(f'{x:.4f}' for x in res['loss_curve'])}", flush=True)
    if model.src_vocab_ != tok["sv"].tokens or model.tgt_vocab_ != tok["tv"].tokens:
        print("  WARNING: RNNTranslator's vocabularies differ from the bench's "
              "(the torch model does not see the same ids)")
    hyps = {}
    for b in args.beam:
        model.set_params(beam_size=b)
        t0 = time.perf_counter()
        hyp = list(model.predict(te_src))
        dec_s = time.perf_counter() - t0
        bleu, chrf = metrics(hyp, te_tgt)
        hyps[b] = hyp
        res["per_beam"][b] = dict(bleu=bleu, chrf=chrf, decode_s=dec_s,
                                  sent_per_s=len(te_src) / dec_s)
        print(f"  crnn beam {b}: BLEU {bleu:.2f} chrF {chrf:.2f}, test decode {dec_s:.2f} s "
              f"({len(te_src) / dec_s:.0f} sentences/s)", flush=True)
    model.set_params(beam_size=1)
    if 1 not in hyps:
        hyps[1] = list(model.predict(te_src))
    res["test_hyp_greedy"] = hyps[1]
    res["test_hyp"] = hyps

    # greedy decoding of N_DECODE sentences: predict (tokenizing and
    # detokenizing included) and the kernel alone, best of 3
    sents = repeat_to(te_src, N_DECODE)
    pred_s, kernel_s = [], []
    sv, tv = model._vocabularies()
    ids = [sv.encode(tok["tokenize"](s)) for s in sents]
    nt = effective_n_threads(model.n_jobs)
    for _ in range(3):
        t0 = time.perf_counter()
        out = model.predict(sents)
        pred_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        kid = model._translate_ids(model._layout, model._theta, ids, nt, beam_size=1)
        kernel_s.append(time.perf_counter() - t0)
    # the same decoding as a Python loop over the steps, one step-kernel call
    # per step for all live sentences (the beam-search path with one beam)
    from crnn._nn import seq2seq as _seq2seq
    from crnn._nn.threads import blas_single_threaded
    loop_s = []
    maxlen = model._max_lengths(ids)
    for _ in range(3):
        t0 = time.perf_counter()
        with blas_single_threaded():
            lid = _seq2seq.beam(model._layout, model._theta, ids, maxlen, 1, 1.0, nt)
        loop_s.append(time.perf_counter() - t0)
    res["decode1000_steploop_s"] = min(loop_s)
    res["decode1000_steploop_same"] = int(sum(np.array_equal(a, b) for a, b in zip(lid, kid)))
    res["decode1000_predict_s"] = min(pred_s)
    res["decode1000_kernel_s"] = min(kernel_s)
    res["decode1000_out_tokens"] = int(sum(len(k) for k in kid))
    res["decode1000_outputs"] = [[int(x) for x in k] for k in kid]
    assert all(detokenize([tv.tokens[j] for j in k], "word") == o for k, o in zip(kid, out))
    print(f"  crnn greedy, {N_DECODE} sentences: predict {min(pred_s):.3f} s, kernel "
          f"{min(kernel_s):.3f} s ({res['decode1000_out_tokens']} tokens out); crnn's own "
          f"step loop {min(loop_s):.3f} s ({res['decode1000_steploop_same']}/{N_DECODE} "
          f"equal)", flush=True)
    return model, res


def run_torch(args, data, tok):
    import torch
    from crnn._translation.translator import BOS, detokenize
    tr_src, tr_tgt, te_src, te_tgt = data
    sv, tv = tok["sv"], tok["tv"]
    bos, eos = tv.index[BOS], 1
    torch.manual_seed(args.seed)
    model = torch_model(len(sv), len(tv), args.embed, args.hidden, args.hidden, args.cell,
                        args.attention)
    src_ids = [sv.encode(s).tolist() for s in tok["train_src_tokens"]]
    tgt_ids = [tv.encode(t).tolist() for t in tok["train_tgt_tokens"]]
    print(f"torch: training {len(src_ids)} pairs, {args.epochs} epoch(s)...", flush=True)
    t0 = time.perf_counter()
    curve = train_torch(model, src_ids, tgt_ids, epochs=args.epochs, batch_size=args.batch,
                        lr=args.lr, seed=args.seed, bos=bos, eos=eos)
    fit_s = time.perf_counter() - t0
    res = dict(library="torch", train_s=fit_s,
               tokens_per_s=tok["train_tokens"] * args.epochs / fit_s, loss_curve=curve)
    test_ids = [sv.encode(tok["tokenize"](s)).tolist() for s in te_src]
    keep = [i for i, s in enumerate(test_ids) if s]
    t0 = time.perf_counter()
    out = model.greedy([test_ids[i] for i in keep], bos, eos)
    hyp = [""] * len(te_src)
    for i, o in zip(keep, out):
        hyp[i] = detokenize([tv.tokens[j] for j in o], "word")
    dec_s = time.perf_counter() - t0
    bleu, chrf = metrics(hyp, te_tgt)
    res.update(bleu=bleu, chrf=chrf, decode_s=dec_s, sent_per_s=len(te_src) / dec_s,
               test_hyp_greedy=hyp)
    print(f"  torch fit {fit_s:.1f} s; greedy BLEU {bleu:.2f} chrF {chrf:.2f}, test decode "
          f"{dec_s:.2f} s", flush=True)
    return model, res


def step_loop_decode(args, tok, crnn_model, crnn_res, te_src):
    """PyTorch's step loop decoding crnn's trained model: N_DECODE sentences,
    best of 3, and how many outputs equal crnn's kernel's."""
    from crnn._translation.translator import BOS
    sv, tv = tok["sv"], tok["tv"]
    model = torch_model(len(sv), len(tv), args.embed, args.hidden, args.hidden, args.cell,
                        args.attention)
    load_crnn_weights(model, crnn_model).eval()
    sents = repeat_to(te_src, N_DECODE)
    ids = [sv.encode(tok["tokenize"](s)).tolist() for s in sents]
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        out = model.greedy(ids, tv.index[BOS], 1)
        times.append(time.perf_counter() - t0)
    same = sum(o == k for o, k in zip(out, crnn_res["decode1000_outputs"]))
    print(f"  torch step loop (crnn's weights), {N_DECODE} sentences: {min(times):.3f} s; "
          f"{same}/{N_DECODE} outputs equal crnn's", flush=True)
    return dict(decode1000_s=min(times), same_as_crnn=same,
                out_tokens=int(sum(len(o) for o in out)))


def print_table(args, results, step):
    c, t = results.get("crnn"), results.get("torch")
    print()
    print(f"gettext en->fr: {results['n_train']} training pairs, {results['n_test']} test "
          f"pairs, {results['train_tokens']} target tokens per epoch; {args.cell}, hidden "
          f"{args.hidden}, embedding {args.embed}, attention {args.attention}, batch "
          f"{args.batch}, lr {args.lr}, {args.epochs} epoch(s), {args.threads} thread(s)")
    head = f"{'library':<16}{'train s':>9}{'tokens/s':>10}{'ratio':>7}{'BLEU':>7}{'chrF':>7}" \
           f"{'test dec s':>11}"
    print(head)
    print("-" * len(head))
    if c is not None:
        ratio = f"{c['tokens_per_s'] / t['tokens_per_s']:.2f}" if t else "-"
        for i, (b, r) in enumerate(sorted(c["per_beam"].items())):
            train_s, rate = ("%.1f" % c["train_s"], "%.0f" % c["tokens_per_s"]) if i == 0 \
                else ("", "")
            print(f"{'crnn beam ' + str(b):<16}{train_s:>9}{rate:>10}"
                  f"{(ratio if i == 0 else ''):>7}"
                  f"{r['bleu']:7.2f}{r['chrf']:7.2f}{r['decode_s']:11.2f}")
    if t is not None:
        print(f"{'torch greedy':<16}{t['train_s']:9.1f}{t['tokens_per_s']:10.0f}{'1.00':>7}"
              f"{t['bleu']:7.2f}{t['chrf']:7.2f}{t['decode_s']:11.2f}")
    if c is not None:
        print()
        print(f"greedy decoding of {N_DECODE} sentences (crnn's trained model):")
        print(f"  crnn predict      {c['decode1000_predict_s']:8.3f} s   "
              f"(kernel alone {c['decode1000_kernel_s']:.3f} s)")
        print(f"  crnn step loop    {c['decode1000_steploop_s']:8.3f} s   "
              f"ratio {c['decode1000_steploop_s'] / c['decode1000_kernel_s']:.1f}x "
              f"(Python loop over the step kernel)")
        if step is not None:
            print(f"  torch step loop   {step['decode1000_s']:8.3f} s   "
                  f"ratio torch/crnn {step['decode1000_s'] / c['decode1000_predict_s']:.1f}x; "
                  f"{step['same_as_crnn']}/{N_DECODE} outputs identical")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--limit", type=int, default=None,
                   help="use only the first N pairs of the fixed permutation")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    p.add_argument("--attention", choices=("bahdanau", "luong", "none"), default="bahdanau")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--beam", type=int, nargs="+", default=[1, 5],
                   help="beam sizes for crnn's BLEU (1: greedy)")
    p.add_argument("--drop-copies", action="store_true",
                   help="leave out the pairs whose target is the source up to case")
    p.add_argument("--which", choices=("crnn", "torch", "both"), default="both")
    p.add_argument("--examples", type=int, default=5)
    p.add_argument("--json", default=None, help="write the results to this file")
    p.add_argument("--verbose", type=int, default=0, help="RNNTranslator's verbose")
    args = p.parse_args(argv)
    if args.attention == "none":
        args.attention = None
    if args.limit is not None and args.limit < 2:
        p.error("--limit must be at least 2")
    if any(b < 1 for b in args.beam):
        p.error("--beam sizes must be >= 1")

    from crnn._translation.translator import word_tokens
    data = load_split(args.limit, drop_copies=args.drop_copies)
    tr_src, tr_tgt, te_src, te_tgt = data
    src_tok = [word_tokens(s) for s in tr_src]
    tgt_tok = [word_tokens(t) for t in tr_tgt]
    sv, tv = vocabularies(src_tok, tgt_tok)
    tok = dict(tokenize=word_tokens, sv=sv, tv=tv, train_src_tokens=src_tok,
               train_tgt_tokens=tgt_tok, train_tokens=sum(len(t) + 1 for t in tgt_tok))
    results = dict(n_train=len(tr_src), n_test=len(te_src), train_tokens=tok["train_tokens"],
                   src_vocab=len(sv), tgt_vocab=len(tv), args=vars(args))
    print(f"{len(tr_src)} training / {len(te_src)} test pairs; vocabularies {len(sv)} source, "
          f"{len(tv)} target tokens", flush=True)

    import torch
    torch.set_num_threads(args.threads)
    crnn_model = step = None
    if args.which in ("crnn", "both"):
        crnn_model, results["crnn"] = run_crnn(args, data, tok)
    if args.which in ("torch", "both"):
        _, results["torch"] = run_torch(args, data, tok)
    if crnn_model is not None:
        step = step_loop_decode(args, tok, crnn_model, results["crnn"], te_src)
        results["step_loop"] = step

    print_table(args, results, step)
    if args.examples:
        print()
        print("examples (test split):")
        for i in range(min(args.examples, len(te_src))):
            print(f"  en:    {te_src[i]}")
            print(f"  ref:   {te_tgt[i]}")
            if "crnn" in results:
                print(f"  crnn:  {results['crnn']['test_hyp_greedy'][i]}")
            if "torch" in results:
                print(f"  torch: {results['torch']['test_hyp_greedy'][i]}")
            print()
    if args.json:
        out = json.loads(json.dumps(results, default=str))
        for lib in ("crnn", "torch"):
            if lib in out:
                out[lib].pop("decode1000_outputs", None)
                out[lib].pop("test_hyp", None)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
        print(f"results written to {args.json}")
    return results


if __name__ == "__main__":
    main()
