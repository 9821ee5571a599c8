"""Where each weight lives in the flat parameter vector.

The order and the names are those of the state_dict of a PyTorch module with
submodules ``rnn = nn.RNN / nn.GRU / nn.LSTM(n_features, hidden_size,
num_layers, batch_first=True, bidirectional=...)`` and ``head =
nn.Linear(ndir * hidden_size, n_outputs)``, preceded by ``embedding =
nn.Embedding(n_features, embedding_dim)`` for a token network with an
embedding (then the LSTM's input size is embedding_dim).  The kernels read
the same offset table (the embedding's offset last).
"""
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .. import _kernels

LOSS_MSE, LOSS_XENT = _kernels.LOSS_CODES["mse"], _kernels.LOSS_CODES["xent"]
GATES = {"rnn": 1, "gru": 3, "lstm": 4}


class TensorTable:
    """What follows from a network's table of tensors (its tensors():
    (name, offset, shape, is_weight) in state_dict order, contiguous)."""

    @cached_property
    def n_params(self):
        name, off, shape, _ = self.tensors()[-1]
        return off + math.prod(shape)

    @cached_property
    def weight_mask(self):
        """1 for entries of weight matrices (L2-penalised), 0 for biases (read-only)."""
        mask = np.zeros(self.n_params, dtype=np.uint8)
        for _, off, shape, is_w in self.tensors():
            if is_w:
                mask[off:off + math.prod(shape)] = 1
        mask.setflags(write=False)
        return mask

    def views(self, theta):
        """Name -> view into theta with the tensor's shape."""
        return {
            name: theta[off:off + math.prod(shape)].reshape(shape)
            for name, off, shape, _ in self.tensors()
        }


@dataclass(frozen=True)
class Layout(TensorTable):
    cell: str            # "rnn", "gru" or "lstm"
    nonlinearity: str    # "tanh" or "relu" (the Elman cell's)
    num_layers: int
    ndir: int
    hidden: int
    n_features: int      # token networks: the vocabulary size
    n_outputs: int
    tokens: bool = False         # the input is one column of token ids in [0, n_features)
    embedding_dim: int = 0       # token networks: an embedding of this width (0: one-hot)

    def __post_init__(self):
        if self.embedding_dim and not self.tokens:
            raise ValueError("an embedding needs token input")

    @property
    def gates(self):
        return GATES[self.cell]

    def tensors(self):
        """(name, offset, shape, is_weight) for every tensor, in state_dict order."""
        return self._tensors

    @cached_property
    def _tensors(self):
        out = []
        off = 0
        G, H, E = self.gates, self.hidden, self.embedding_dim
        if E:
            out.append(("embedding.weight", 0, (self.n_features, E), True))
            off = self.n_features * E
        for layer in range(self.num_layers):
            d_in = (E or self.n_features) if layer == 0 else self.ndir * H
            for d in range(self.ndir):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                for name, shape, is_w in (
                    ("weight_ih", (G * H, d_in), True),
                    ("weight_hh", (G * H, H), True),
                    ("bias_ih", (G * H,), False),
                    ("bias_hh", (G * H,), False),
                ):
                    out.append((f"rnn.{name}{sfx}", off, shape, is_w))
                    off += math.prod(shape)
        W = self.ndir * H
        out.append(("head.weight", off, (self.n_outputs, W), True))
        off += self.n_outputs * W
        out.append(("head.bias", off, (self.n_outputs,), False))
        return out


    def offsets(self):
        """The kernels' offset table: every rnn and head tensor in order, then
        the embedding's."""
        offs = [t[1] for t in self.tensors() if t[0] != "embedding.weight"]
        if self.embedding_dim:
            offs.append(0)
        return np.array(offs, dtype=np.intp)


    def init_params(self, rng, dtype, forget_bias=0.0):
        """PyTorch's default initialisation: U(-1/sqrt(fan), 1/sqrt(fan)),
        fan = hidden_size for the recurrent layers, the head's input width for
        the head; the embedding N(0, 1) (nn.Embedding's).  LSTM: forget_bias is added to the forget gate's b_ih (the
        second block of H), as Keras's unit_forget_bias and TensorFlow's
        forget_bias do (Jozefowicz et al. 2015); 0 is PyTorch's init."""
        theta = np.empty(self.n_params, dtype=dtype)
        H = self.hidden
        for name, off, shape, _ in self.tensors():
            if name == "embedding.weight":
                theta[off:off + math.prod(shape)] = rng.standard_normal(math.prod(shape))
                continue
            fan = H if name.startswith("rnn.") else self.ndir * H
            bound = 1.0 / np.sqrt(fan)
            size = math.prod(shape)
            values = rng.uniform(-bound, bound, size=size)
            if self.cell == "lstm" and name.startswith("rnn.bias_ih"):
                values[H:2 * H] += forget_bias
            theta[off:off + size] = values
        return theta

    @property
    def cell_code(self):
        """The kernels' code of this cell (and, for Elman, nonlinearity)."""
        return _kernels.CELL_CODES[(self.cell, self.nonlinearity if self.cell == "rnn" else None)]

    def config(self, seq, loss, trunc, simd=-1, dropout=0.0):
        """The kernels' Config: per-step outputs or not, loss code, BPTT
        truncation (None: full), SIMD level (-1: the CPU's best), dropout
        between layers in training."""
        return _kernels.Config(
            self.cell_code, self.num_layers, self.ndir, self.hidden,
            self.n_features, self.n_outputs, bool(seq), loss,
            -1 if trunc is None else int(trunc), self.offsets(), self.n_params, simd,
            float(dropout), bool(self.tokens), int(self.embedding_dim),
        )
