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
else E and H.  tests/seq2seq_reference.py writes the same model in numpy and
PyTorch.
"""
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from . import _kernels
from ._layout import GATES

ATTENTIONS = (None, "bahdanau", "luong")


@dataclass(frozen=True)
class Seq2SeqLayout:
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
            off += int(np.prod(shape))
        return out

    @cached_property
    def n_params(self):
        _, off, shape, _ = self.tensors()[-1]
        return off + int(np.prod(shape))

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

    @cached_property
    def weight_mask(self):
        """1 for entries of weight matrices (L2-penalised), 0 for biases."""
        mask = np.zeros(self.n_params, dtype=np.uint8)
        for _, off, shape, is_w in self.tensors():
            if is_w:
                mask[off:off + int(np.prod(shape))] = 1
        mask.setflags(write=False)
        return mask

    def views(self, theta):
        """Name -> view into theta with the tensor's shape."""
        return {name: theta[off:off + int(np.prod(shape))].reshape(shape)
                for name, off, shape, _ in self.tensors()}

    def init_params(self, rng, dtype):
        """PyTorch's default initialisation of each module: embeddings N(0, 1);
        every other tensor U(-1/sqrt(fan), 1/sqrt(fan)) with fan = H for the
        recurrent cells (nn.GRU, nn.GRUCell, ...), the input width for the
        linear layers and the attention's matrices (v: A)."""
        theta = np.empty(self.n_params, dtype=dtype)
        H, C, A = self.hidden, self.memory_dim, self.attention_dim
        fans = {"bridge": C, "combine": C + H, "head": None}
        for name, off, shape, _ in self.tensors():
            size = int(np.prod(shape))
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
