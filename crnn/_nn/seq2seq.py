"""The encoder-decoder's parameters and the glue between sentence pairs and
the kernels (crnn._kernels.s2s_*): batches cut into shards, the two sort
orders the kernels need, workspaces.

The parameter names and order are those of the state_dict of a PyTorch
module with submodules ``src_embedding = nn.Embedding(Vs, E)``,
``tgt_embedding = nn.Embedding(Vt, E)``, ``encoder = nn.GRU / nn.LSTM(E, H,
num_layers, batch_first=True, bidirectional=...)``, ``bridge =
nn.Linear(C, H)``, ``decoder = nn.GRUCell / nn.LSTMCell(Din, H)``, the
attention's parameters (``attention.W_query (A, H)``, ``attention.W_key (A,
C)``, ``attention.v (A)`` for Bahdanau; ``attention.W (H, C)`` and
``combine = nn.Linear(C + H, H)`` for Luong) and ``head = nn.Linear(Dout,
Vt)``; C = ndir * H, Din = E + C and Dout = H + C with Bahdanau attention,
else E and H.  tests/support/seq2seq_reference.py writes the same model in numpy and
PyTorch.
"""
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .. import _kernels
from .layout import GATES, TensorTable
from .threads import blas_single_threaded

ATTENTIONS = (None, "bahdanau", "luong")


@dataclass(frozen=True)
class Seq2SeqLayout(TensorTable):
    cell: str               # "gru" or "lstm"
    num_layers: int         # encoder layers (the decoder is one cell)
    ndir: int               # encoder directions
    hidden: int
    src_vocab: int
    tgt_vocab: int
    embedding_dim: int
    attention: object       # None, "bahdanau" or "luong"
    attention_dim: int = 0  # Bahdanau's A

    def __post_init__(self):
        if self.cell not in ("gru", "lstm"):
            raise ValueError(f"cell must be 'gru' or 'lstm', got {self.cell!r}")
        if self.attention not in ATTENTIONS:
            raise ValueError(f"attention must be 'bahdanau', 'luong' or None, got "
                             f"{self.attention!r}")

    @property
    def gates(self):
        return GATES[self.cell]

    @property
    def memory_dim(self):
        return self.ndir * self.hidden

    def tensors(self):
        """(name, offset, shape, is_weight) for every tensor, in state_dict order."""
        return self._tensors

    @cached_property
    def _tensors(self):
        G, H, E, C = self.gates, self.hidden, self.embedding_dim, self.memory_dim
        A = self.attention_dim
        shapes = [("src_embedding.weight", (self.src_vocab, E), True),
                  ("tgt_embedding.weight", (self.tgt_vocab, E), True)]
        for layer in range(self.num_layers):
            d_in = E if layer == 0 else C
            for d in range(self.ndir):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                shapes += [(f"encoder.weight_ih{sfx}", (G * H, d_in), True),
                           (f"encoder.weight_hh{sfx}", (G * H, H), True),
                           (f"encoder.bias_ih{sfx}", (G * H,), False),
                           (f"encoder.bias_hh{sfx}", (G * H,), False)]
        shapes += [("bridge.weight", (H, C), True), ("bridge.bias", (H,), False)]
        bah = self.attention == "bahdanau"
        Din, Dout = (E + C, H + C) if bah else (E, H)
        shapes += [("decoder.weight_ih", (G * H, Din), True),
                   ("decoder.weight_hh", (G * H, H), True),
                   ("decoder.bias_ih", (G * H,), False), ("decoder.bias_hh", (G * H,), False)]
        if bah:
            shapes += [("attention.W_query", (A, H), True), ("attention.W_key", (A, C), True),
                       ("attention.v", (A,), True)]
        elif self.attention == "luong":
            shapes += [("attention.W", (H, C), True), ("combine.weight", (H, C + H), True),
                       ("combine.bias", (H,), False)]
        shapes += [("head.weight", (self.tgt_vocab, Dout), True),
                   ("head.bias", (self.tgt_vocab,), False)]
        out, off = [], 0
        for name, shape, is_w in shapes:
            out.append((name, off, shape, is_w))
            off += math.prod(shape)
        return out

    @cached_property
    def _offsets(self):
        return {name: off for name, off, _, _ in self.tensors()}

    def offsets(self):
        """The kernels' table: the encoder's (as Config's; its head entries,
        unused, name the bridge), then the decoder's."""
        o = self._offsets
        enc = []
        for layer in range(self.num_layers):
            for d in range(self.ndir):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                enc += [o[f"encoder.{w}{sfx}"]
                        for w in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        enc += [o["bridge.weight"], o["bridge.bias"], o["src_embedding.weight"]]
        att = {"bahdanau": ("attention.W_query", "attention.W_key", "attention.v"),
               "luong": ("attention.W", "combine.weight", "combine.bias")}.get(
                   self.attention, ("head.bias",) * 3)
        dec = [o["tgt_embedding.weight"], o["bridge.weight"], o["bridge.bias"],
               o["decoder.weight_ih"], o["decoder.weight_hh"], o["decoder.bias_ih"],
               o["decoder.bias_hh"], *(o[a] for a in att), o["head.weight"], o["head.bias"]]
        return np.array(enc + dec, dtype=np.intp)

    def init_params(self, rng, dtype, forget_bias=0.0):
        """PyTorch's default initialisation of each module: embeddings N(0, 1);
        every other tensor U(-1/sqrt(fan), 1/sqrt(fan)) with fan = H for the
        recurrent cells (nn.GRU, nn.GRUCell, ...), the input width for the
        linear layers and the attention's matrices (v: A).  LSTM: forget_bias
        is added to the forget gates' b_ih (encoder and decoder)."""
        theta = np.empty(self.n_params, dtype=dtype)
        H, C, A = self.hidden, self.memory_dim, self.attention_dim
        fans = {"bridge": C, "combine": C + H}
        for name, off, shape, _ in self.tensors():
            size = math.prod(shape)
            part = theta[off:off + size]
            if name.endswith("embedding.weight"):
                part[:] = rng.standard_normal(size)
                continue
            mod, pname = name.split(".", 1)
            if mod in ("encoder", "decoder"):
                fan = H
            elif mod == "head":
                fan = self.tensors()[-2][2][1]
            elif mod == "attention":
                fan = {"W_query": H, "W_key": C, "v": A, "W": C}[pname]
            else:
                fan = fans[mod]
            bound = 1.0 / np.sqrt(fan)
            part[:] = rng.uniform(-bound, bound, size)
            if self.cell == "lstm" and ".bias_ih" in name:
                part[H:2 * H] += forget_bias
        return theta

    def config(self, simd=-1, dropout=0.0):
        """The kernels' S2SConfig."""
        return _kernels.S2SConfig(
            _kernels.CELL_CODES[(self.cell, None)], self.num_layers, self.ndir, self.hidden,
            self.src_vocab, self.embedding_dim, self.tgt_vocab,
            _kernels.ATTENTION_CODES[self.attention], self.attention_dim, self.offsets(),
            self.n_params, simd, float(dropout))


def pack_sentences(seqs, dtype=np.intp):
    """Ragged token lists -> (concatenated ids, starts, lengths)."""
    lens = np.fromiter((len(s) for s in seqs), dtype=np.intp, count=len(seqs))
    start = np.zeros(len(seqs), dtype=np.intp)
    if len(seqs):
        np.cumsum(lens[:-1], out=start[1:])
    flat = (np.concatenate([np.asarray(s, dtype=dtype) for s in seqs]) if len(seqs)
            else np.zeros(0, dtype=dtype))
    return flat.astype(dtype, copy=False), start, lens


class Pairs:
    """Sentence pairs as the kernels read them: source ids as a column of
    floats (X, start, lens), targets as int32 (tgt, tstart, klen = length +
    1)."""

    def __init__(self, src, tgt, dtype):
        flat, self.start, self.lens = pack_sentences(src)
        self.X = flat.astype(dtype).reshape(-1, 1)
        if len(self.X) == 0:
            self.X = np.zeros((1, 1), dtype=dtype)
        if tgt is not None:
            t, self.tstart, tl = pack_sentences(tgt, np.int32)
            self.tgt = t if len(t) else np.zeros(1, dtype=np.int32)
            self.klen = tl + 1
        self.n = len(src)

    def shards(self, samples, n_shards):
        """(idx, didx, dec_enc, shard_off) for the batch `samples` cut into
        n_shards contiguous shards, each sorted by decreasing source length
        (idx) and by decreasing target length (didx; dec_enc its rows in idx)."""
        samples = np.asarray(samples, dtype=np.intp)
        n_shards = max(1, min(n_shards, len(samples)))
        bounds = np.linspace(0, len(samples), n_shards + 1).astype(np.intp)
        idx, didx, dec_enc = [], [], []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            part = samples[lo:hi]
            enc = part[np.argsort(-self.lens[part], kind="stable")]
            pos = np.argsort(-self.klen[enc], kind="stable")
            idx.append(enc)
            didx.append(enc[pos])
            dec_enc.append(pos)
        cat = np.concatenate
        return (cat(idx).astype(np.intp), cat(didx).astype(np.intp),
                cat(dec_enc).astype(np.intp), bounds)


class Seq2SeqWork:
    """What the training loop (crnn._nn.training.EpochLoop) drives: the
    workspaces of one fit and a train_batch over the kernel.  A batch is cut
    into at most n_threads shards, one per thread (the batch split)."""

    def __init__(self, layout, pairs, batch, n_threads, dtype, dropout=0.0):
        self.layout, self.pairs, self.n_threads = layout, pairs, int(n_threads)
        self.batch = int(min(batch, pairs.n))
        self.cfg = layout.config(dropout=dropout)
        self.n_shards = max(1, min(self.n_threads, self.batch))
        self.B = -(-self.batch // self.n_shards)
        self.T, self.K = int(pairs.lens.max()), int(pairs.klen.max())
        cfg, S = self.cfg, self.n_shards
        self.ws = np.zeros((S, cfg.workspace_size(self.B, self.T, self.K, True)), dtype)
        self.iws = np.zeros((S, cfg.index_workspace_size(self.B, self.T, self.K, True)),
                            np.intp)
        self.grads = np.zeros((S, layout.n_params), dtype)
        self.wpack = np.zeros(cfg.packed_size(np.dtype(dtype).itemsize), dtype)
        self.batch_weight = 0.0

    def train_batch(self, theta, samples, seed=0):
        """Mean token cross-entropy of the pairs `samples`; its gradient is
        in the rows of self.grads and its token count in self.batch_weight."""
        p = self.pairs
        idx, didx, dec_enc, off = p.shards(samples, self.n_shards)
        S = len(off) - 1
        if S < self.n_shards:
            self.grads[S:] = 0
        self.batch_weight = float(p.klen[idx].sum())
        return _kernels.s2s_train_step(
            self.cfg, theta, self.grads[:S], p.X, p.start, p.lens, p.tgt, p.tstart, p.klen,
            idx, didx, dec_enc, off, BOS_ID, EOS_ID, self.ws, self.iws, self.T, self.K,
            self.B, self.n_threads, self.wpack, seed)

    def release(self):
        """The end of a fit (crnn._base.fitting): the workspaces are this
        object's own and go with it, so there is nothing to give back."""


# the target vocabulary's ids of the start and end tokens (crnn._text.tokens's
# Vocabulary: 0 unknown, 1 end; the translator puts its start token at 2)
EOS_ID, BOS_ID = 1, 2
_CHUNK = 64          # sentences per chunk of beam search and teacher-forced scoring
# greedy decoding: chunks of up to 256 sentences (the head's product per step
# is then one larger GEMM: 1,000 sentences decode 22% faster than in chunks of
# 64 on the gettext model, and slower again in chunks of 512), at least two
# per thread so that the threads finish together
_GREEDY_CHUNK = 256


def _chunks(lens, size):
    """Sentences (indices) sorted by decreasing length, cut into chunks of
    at most `size`; returns (idx, offsets)."""
    order = np.argsort(-lens, kind="stable").astype(np.intp)
    offs = np.append(np.arange(0, len(order), size), len(order))
    return order, offs.astype(np.intp)


def greedy(layout, theta, src, maxlen, n_threads):
    """Greedy translations (target id arrays, without EOS) of the source id
    sequences src (each non-empty), sentence i at most maxlen[i] tokens."""
    dtype = theta.dtype
    p = Pairs(src, None, dtype)
    cfg = layout.config()
    size = min(_GREEDY_CHUNK, max(16, -(-p.n // (2 * max(1, int(n_threads))))))
    idx, offs = _chunks(p.lens, size)
    B, T = min(size, p.n), int(p.lens.max())
    nt = max(1, min(int(n_threads), len(offs) - 1))
    maxlen = np.asarray(maxlen, dtype=np.intp)
    ws = np.empty((nt, cfg.workspace_size(B, T, 1, False)), dtype)
    iws = np.empty((nt, cfg.index_workspace_size(B, T, 1, False)), np.intp)
    out = np.empty((p.n, max(1, int(maxlen.max()))), np.int32)
    outlen = np.zeros(p.n, np.intp)
    with blas_single_threaded():
        _kernels.s2s_greedy(cfg, theta, p.X, p.start, p.lens, idx, offs, BOS_ID, EOS_ID,
                            maxlen, out, outlen, ws, iws, T, B, nt)
    return [out[i, :outlen[i]].astype(np.int64) for i in range(p.n)]


class _Stepper:
    """One chunk of sentences encoded once, then stepped by beam search
    (crnn._nn.beam.beam_search's step(tokens, parents))."""

    def __init__(self, layout, theta, src, beam_size):
        self.cfg, self.theta = layout.config(), theta
        p = Pairs(src, None, theta.dtype)
        self.n = p.n
        self.order = np.argsort(-p.lens, kind="stable").astype(np.intp)
        self.R = p.n * beam_size
        self.T = int(p.lens.max())
        self.ws = np.empty(self.cfg.workspace_size(self.R, self.T, 1, False), theta.dtype)
        self.iws = np.empty(self.cfg.index_workspace_size(self.R, self.T, 1, False), np.intp)
        _kernels.s2s_encode(self.cfg, theta, p.X, p.start, p.lens, self.order, self.ws,
                            self.iws, self.T, self.R)
        self.n_prev, self.first = p.n, True
        self.V = layout.tgt_vocab

    def __call__(self, tokens, parents):
        tokens = np.ascontiguousarray(tokens, dtype=np.intp)
        parents = np.ascontiguousarray(parents, dtype=np.intp)
        if self.first:
            # beam_search numbers the sentences as given; memory row i is
            # sentence order[i]
            parents = np.argsort(self.order).astype(np.intp)[parents]
        logp = np.empty((len(tokens), self.V), self.theta.dtype)
        _kernels.s2s_step(self.cfg, self.theta, self.ws, self.iws, self.T, self.R, self.n_prev,
                          self.first, tokens, parents, logp)
        self.n_prev, self.first = len(tokens), False
        return logp


def beam(layout, theta, src, maxlen, beam_size, length_penalty, n_threads):
    """Beam-search translations of the source id sequences src (each
    non-empty): chunks of sentences of similar length, each searched with
    the longest limit of its sentences (then cut to each sentence's own),
    the chunks spread over n_threads threads (the kernels release the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    from .beam import beam_search
    lens = np.fromiter((len(s) for s in src), dtype=np.intp, count=len(src))
    idx, offs = _chunks(lens, max(1, _CHUNK // beam_size))
    maxlen = np.asarray(maxlen, dtype=np.intp)
    out = [None] * len(src)

    def run(c):
        members = idx[offs[c]:offs[c + 1]]
        step = _Stepper(layout, theta, [src[i] for i in members], beam_size)
        limit = int(maxlen[members].max())
        if limit < 1:
            seqs = [np.zeros(0, np.int64)] * len(members)
        else:
            seqs, _ = beam_search(step, len(members), beam_size=beam_size, bos=BOS_ID,
                                  eos=EOS_ID, max_len=limit, length_penalty=length_penalty)
        for i, s in zip(members, seqs):
            out[i] = np.asarray(s, dtype=np.int64)[:maxlen[i]]

    n_chunks = len(offs) - 1
    with blas_single_threaded():
        if n_threads > 1 and n_chunks > 1:
            with ThreadPoolExecutor(min(int(n_threads), n_chunks)) as pool:
                list(pool.map(run, range(n_chunks)))
        else:
            for c in range(n_chunks):
                run(c)
    return out


def token_losses(layout, theta, src, tgt, n_threads, attention=False):
    """Teacher-forced per-token losses (nats; each sentence's targets then
    EOS), as one array per pair, and with attention the weights (rows:
    target steps, columns: source tokens) per pair (None without attention)."""
    dtype = theta.dtype
    p = Pairs(src, tgt, dtype)
    cfg = layout.config()
    order, offs = _chunks(p.lens, _CHUNK)
    idx, didx, dec_enc = [], [], []
    for a, b in zip(offs[:-1], offs[1:]):
        part = order[a:b]
        pos = np.argsort(-p.klen[part], kind="stable")
        idx.append(part)
        didx.append(part[pos])
        dec_enc.append(pos)
    idx, didx, dec_enc = (np.concatenate(x).astype(np.intp) for x in (idx, didx, dec_enc))
    ostart = np.zeros(p.n, np.intp)
    np.cumsum(p.klen[:-1], out=ostart[1:])
    T, K, B = int(p.lens.max()), int(p.klen.max()), int(np.diff(offs).max())
    nt = max(1, min(int(n_threads), len(offs) - 1))
    tok = np.empty(int(p.klen.sum()), dtype)
    att = np.zeros((len(tok), T), dtype) if (attention and layout.attention) else None
    ws = np.empty((nt, cfg.workspace_size(B, T, K, True)), dtype)
    iws = np.empty((nt, cfg.index_workspace_size(B, T, K, True)), np.intp)
    with blas_single_threaded():
        _kernels.s2s_forward(cfg, theta, p.X, p.start, p.lens, p.tgt, p.tstart, p.klen, idx,
                             didx, dec_enc, offs, BOS_ID, EOS_ID, ostart, tok, att, ws, iws, T,
                             K, B, nt)
    losses = [tok[o:o + k].astype(np.float64) for o, k in zip(ostart, p.klen)]
    weights = None
    if att is not None:
        weights = [att[o:o + k, :n].astype(np.float64)
                   for o, k, n in zip(ostart, p.klen, p.lens)]
    return losses, weights
