"""The convolutional front-end: a stack of 2-D convolutions (+ ReLU, optional
max pooling) that turns each image (frame) into a feature vector, and the
training step that runs it under a recurrent network.

A front-end is described as a list of layers, each ``(filters, kernel,
stride)`` or a dict with the keys ``filters``, ``kernel``, ``stride``
(default 1), ``padding`` (default 0) and ``pool`` (a max-pooling kernel
and stride after the ReLU, default none); kernel, stride, padding and pool
are ints or (height, width) pairs.  Images are channels-last
(H, W, C), and a frame's features are its last feature map flattened in
(H, W, C) order.

Parameters live in one flat vector, layer by layer: the weight in the
kernels' layout (KH, KW, C, F), then the bias.  ``state_dict`` gives them
in torch.nn.Conv2d's layout (F, C, KH, KW) under ``conv.{i}.weight`` and
``conv.{i}.bias``.

``ConvRNN.loss_grad`` is the joint training step: the convolutions of
every frame of a batch of sequences (one kernel call per layer, OpenMP over
images x tiles), the recurrent network and its head (one train_step call,
which also returns the gradient at its input), then the convolutions'
backward pass from that gradient: a forward and a backward kernel call per
convolution (and per pooling), one train_step for the network; the Python
between them is bookkeeping on the batch.  ``SceneNet`` stacks two
networks on a front-end (scene labelling).

These objects reuse their buffers from one call to the next: one training
step at a time per object (not shared between threads).
"""
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .. import _conv, _kernels
from .._conv import _pair
from .data import SeqData, refuse_non_numbers, shard_batch
from .engine import Engine, TrainWorkspace, plan_threads, sample_rows
from .layout import GATES, Layout, TensorTable
from .threads import blas_single_threaded


# the most values one image's feature maps may take in any layer (its input
# with the padding, its output before pooling, its im2col block at level 0):
# 2**28 float32 values are 1 GiB.  A front-end beyond it (a padding of
# thousands, say, from parameters or a crafted model file) is refused
# before anything is allocated.
MAX_IMAGE_WORK = 2**28


@dataclass(frozen=True)
class ConvLayer:
    filters: int
    kernel: tuple
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    pool: tuple = None          # max-pooling kernel (= stride), or None


def image_array(X, name, ndim, dtype, what):
    """Images as a C-contiguous array of `dtype`, finite, with a channel
    axis: ndim axes with it (an array of one axis less has one channel);
    `what` names the shapes accepted, for the message."""
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(f"{name} is sparse; images must be dense arrays.")
    refuse_non_numbers(X, name)
    try:
        A = np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of numbers: {exc}") from exc
    if A.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers; got dtype {A.dtype}.")
    if A.ndim == ndim - 1:
        A = A[..., None]
    if A.ndim != ndim:
        raise ValueError(f"{name} must be {what}; got an array of shape {A.shape}.")
    if min(A.shape) < 1:
        raise ValueError(f"{name} has an empty axis: shape {A.shape}.")
    with np.errstate(over="ignore"):
        A = np.ascontiguousarray(A, dtype)
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{name} contains NaN or infinity, or values beyond "
                         f"{np.dtype(dtype).name}'s range.")
    return A


def parse_layers(conv):
    """ConvLayers from the ``conv`` parameter's description (see the module
    docstring); a clear error for anything else."""
    if isinstance(conv, (str, bytes)) or not hasattr(conv, "__iter__"):
        raise ValueError(f"conv must be a list of layers, got {conv!r}")
    layers = []
    for i, spec in enumerate(conv):
        where = f"conv[{i}]"
        if isinstance(spec, dict):
            unknown = set(spec) - {"filters", "kernel", "stride", "padding", "pool"}
            if unknown or "filters" not in spec or "kernel" not in spec:
                raise ValueError(f"{where} needs the keys 'filters' and 'kernel' (and "
                                 f"optionally 'stride', 'padding', 'pool'), got {spec!r}")
            d = spec
        elif isinstance(spec, (tuple, list)) and len(spec) in (2, 3):
            d = dict(zip(("filters", "kernel", "stride"), spec))
        else:
            raise ValueError(f"{where} must be (filters, kernel, stride) or a dict, got "
                             f"{spec!r}")
        f = d["filters"]
        if isinstance(f, bool) or not isinstance(f, (int, np.integer)) or f < 1:
            raise ValueError(f"{where}: filters must be a positive int, got {f!r}")
        pool = d.get("pool")
        layers.append(ConvLayer(int(f), _pair(d["kernel"], f"{where} kernel", 1),
                                _pair(d.get("stride", 1), f"{where} stride", 1),
                                _pair(d.get("padding", 0), f"{where} padding", 0),
                                None if pool is None else _pair(pool, f"{where} pool", 1)))
    if not layers:
        raise ValueError("conv must hold at least one layer")
    return tuple(layers)


def layer_tuple(ly):
    """A ConvLayer as 9 ints: filters, kernel, stride, padding (pairs), pool
    (a pair, (0, 0) for none): how a SceneLayout (and a model file) holds it."""
    pool = ly.pool or (0, 0)
    return (ly.filters, *ly.kernel, *ly.stride, *ly.padding, *pool)


def layer_from_tuple(t):
    f, kh, kw, sh, sw, ph, pw, qh, qw = t
    return ConvLayer(f, (kh, kw), (sh, sw), (ph, pw), None if qh == 0 else (qh, qw))


class ConvNet:
    """A front-end for images of one shape (H, W, C): sizes, parameters,
    forward and backward passes on the kernels of crnn._conv."""

    def __init__(self, layers, image_shape):
        layers = list(layers) if not isinstance(layers, (str, bytes)) else layers
        if isinstance(layers, list) and layers and all(isinstance(x, ConvLayer)
                                                       for x in layers):
            self.layers = tuple(layers)
        else:
            self.layers = parse_layers(layers)
        self.image_shape = tuple(int(s) for s in image_shape)
        if len(self.image_shape) != 3 or min(self.image_shape) < 1:
            raise ValueError(f"images must be (height, width, channels), got {image_shape!r}")
        H, W, C = self.image_shape
        self.shapes = [(H, W, C)]            # each layer's input, then the output
        self.offsets = []                    # (weight, bias) offsets in the vector
        self.work_per_image = 0              # the most values of one image in a layer
        pos = 0
        for i, ly in enumerate(self.layers):
            Ho = _conv.output_size(H, ly.kernel[0], ly.stride[0], ly.padding[0])
            Wo = _conv.output_size(W, ly.kernel[1], ly.stride[1], ly.padding[1])
            self.work_per_image = max(
                self.work_per_image, (H + 2 * ly.padding[0]) * (W + 2 * ly.padding[1]) * C,
                max(Ho, 0) * max(Wo, 0) * max(ly.filters, ly.kernel[0] * ly.kernel[1] * C))
            if self.work_per_image > MAX_IMAGE_WORK:
                raise ValueError(
                    f"conv[{i}] would hold {self.work_per_image:,} values per image of "
                    f"{self.image_shape[0]}x{self.image_shape[1]} (padding, kernel and "
                    f"filters of its feature maps), more than the {MAX_IMAGE_WORK:,} a "
                    "front-end may take.")
            if ly.pool is not None:
                Ho = _conv.output_size(Ho, ly.pool[0], ly.pool[0], 0)
                Wo = _conv.output_size(Wo, ly.pool[1], ly.pool[1], 0)
            if Ho < 1 or Wo < 1:
                raise ValueError(f"conv[{i}] leaves no pixel of a {H}x{W} feature map (images "
                                 f"of {self.image_shape[0]}x{self.image_shape[1]})")
            nw = ly.kernel[0] * ly.kernel[1] * C * ly.filters
            self.offsets.append((pos, pos + nw))
            pos += nw + ly.filters
            H, W, C = Ho, Wo, ly.filters
            self.shapes.append((H, W, C))
        self.n_params = pos
        self.n_features = H * W * C
        # each layer's arrays, reused from one batch to the next (fresh
        # ones would be faulted in page by page on every step: a tenth of
        # a training step's time on 96 x 96 frames)
        self._work = [{} for _ in self.layers]

    def __getstate__(self):
        return {**self.__dict__, "_work": [{} for _ in self.layers]}

    def weight(self, theta, i):
        ly, (w0, b0) = self.layers[i], self.offsets[i]
        C = self.shapes[i][2]
        return (theta[w0:b0].reshape(ly.kernel[0], ly.kernel[1], C, ly.filters),
                theta[b0:b0 + ly.filters])

    def init(self, rng, dtype=np.float32):
        """torch.nn.Conv2d's default: weights and biases uniform in
        +-1/sqrt(fan_in)."""
        theta = np.empty(self.n_params, dtype)
        for i in range(len(self.layers)):
            w, b = self.weight(theta, i)
            bound = 1.0 / np.sqrt(w.shape[0] * w.shape[1] * w.shape[2])
            w[...] = rng.uniform(-bound, bound, w.shape)
            b[...] = rng.uniform(-bound, bound, b.shape)
        return theta

    def state_dict(self, theta, prefix="conv."):
        out = {}
        for i in range(len(self.layers)):
            w, b = self.weight(theta, i)
            out[f"{prefix}{i}.weight"] = np.ascontiguousarray(w.transpose(3, 2, 0, 1))
            out[f"{prefix}{i}.bias"] = b.copy()
        return out

    def load_state_dict(self, sd, dtype=np.float32, prefix="conv."):
        theta = np.empty(self.n_params, dtype)
        for i in range(len(self.layers)):
            w, b = self.weight(theta, i)
            tw = np.asarray(sd[f"{prefix}{i}.weight"])
            tb = np.asarray(sd[f"{prefix}{i}.bias"])
            want = (w.shape[3], w.shape[2], w.shape[0], w.shape[1])
            if tw.shape != want or tb.shape != b.shape:
                raise ValueError(f"{prefix}{i}.weight and .bias have shapes {tw.shape} and "
                                 f"{tb.shape}, the layer needs {want} and {b.shape}")
            w[...] = tw.transpose(2, 3, 1, 0)
            b[...] = tb
        return theta

    def forward(self, theta, X, n_threads=1, simd=-1):
        """Features (n, n_features) of the images X (n, H, W, C), and what
        the backward pass needs.  Both live in this ConvNet's buffers until
        its next forward pass: one training step at a time per ConvNet."""
        if X.ndim != 4 or tuple(X.shape[1:]) != self.image_shape:
            shape = ", ".join(map(str, self.image_shape))
            raise ValueError(f"images must have the shape (n, {shape}) this front-end was "
                             f"made for; got {X.shape}")
        cache = []
        h = X
        with blas_single_threaded():
            for i, ly in enumerate(self.layers):
                w, b = self.weight(theta, i)
                work = self._work[i]
                y = _conv.conv2d_forward(h, w, b, ly.stride, ly.padding, True, simd, n_threads,
                                         work)
                arg = None
                out = y
                if ly.pool is not None:
                    out, arg = _conv.maxpool2d_forward(y, ly.pool, ly.pool, 0, n_threads, work)
                cache.append((h, y, arg))
                h = out
        return h.reshape(len(X), -1), cache

    def backward(self, theta, cache, dfeat, n_threads=1, simd=-1):
        """The gradient (n_params,) from dLoss/dfeatures (n, n_features)."""
        grad = np.empty(self.n_params, theta.dtype)
        n = dfeat.shape[0]
        d = np.ascontiguousarray(dfeat).reshape((n,) + self.shapes[-1])
        with blas_single_threaded():
            for i in range(len(self.layers) - 1, -1, -1):
                ly = self.layers[i]
                h, y, arg = cache[i]
                work = self._work[i]
                if arg is not None:
                    d = _conv.maxpool2d_backward(d, arg, y.shape[1], y.shape[2], n_threads,
                                                 work)
                w, _ = self.weight(theta, i)
                dX, dW, db = _conv.conv2d_backward(h, w, y, d, ly.stride, ly.padding, True,
                                                   i > 0, simd, n_threads, work)
                gw, gb = self.weight(grad, i)
                gw[...] = dW
                gb[...] = db
                d = dX
        return grad


def _starts(lens):
    """The first row of each of sequences laid one after another."""
    start = np.zeros(len(lens), np.intp)
    start[1:] = np.cumsum(lens)[:-1]
    return start


class RNNStage:
    """One recurrent network trained as a stage of a larger model: a batch
    of sequences given as rows and lengths, the loss from targets or (the
    engine's loss "given") the gradient at its outputs from the stage
    above, and dLoss/d(its inputs) for the stage below.  Its buffers are
    reused while the batch's shape stays."""

    def __init__(self, engine):
        self.engine = engine
        self.n_params = engine.layout.n_params
        self._work = {}

    def __getstate__(self):
        return {**self.__dict__, "_work": {}}

    def _buffers(self, S, bcap, T, varlen, rows, dtype):
        key = (S, bcap, T, varlen, rows, np.dtype(dtype).str)
        if key not in self._work:
            cfg, eng = self.engine.cfg, self.engine
            self._work = {key: (
                np.empty((S, cfg.workspace_size(bcap, T, True, varlen, True)), dtype),
                np.empty((S, cfg.index_workspace_size(T)), np.intp),
                np.empty((S, eng.layout.n_params), dtype),
                np.empty(eng.packed_size(True, np.dtype(dtype)), dtype),
                np.empty((rows, eng.layout.n_features), dtype))}
        return self._work[key]

    def train(self, theta, rows, lens, yreg=None, ylab=None, n_threads=1, seed=0):
        """(loss, gradient, dLoss/drows) of one batch: rows (sum(lens), D),
        the sequences one after another; targets a row per sequence or per
        step (the engine's seq): yreg (MSE, or the given gradient) or ylab
        (int32 classes).  seed: the dropout masks (an engine with dropout:
        draw one per step).  dLoss/drows lives in this stage's buffers until
        its next call."""
        eng = self.engine
        lens = np.ascontiguousarray(lens, np.intp)
        if lens.ndim != 1 or len(lens) == 0 or lens.min() < 1 or lens.sum() != len(rows):
            raise ValueError(f"lens must be positive sequence lengths that add up to the "
                             f"{len(rows)} rows; got {lens.tolist()[:10]}")
        start = _starts(lens)
        dtype = theta.dtype
        B = len(lens)
        uniform = bool(np.all(lens == lens[0]))
        plan = plan_threads(eng.layout, B, n_threads, dtype.itemsize)
        S = 1 if plan.hidden_split else plan.n_workers
        idx, bounds = shard_batch(np.arange(B, dtype=np.intp), lens, S, uniform)
        T = int(lens.max())
        bcap = int(np.max(np.diff(bounds)))
        ws, iws, grads, wpack, drows = self._buffers(S, bcap, T, not uniform, len(rows), dtype)
        if yreg is None:
            yreg = np.zeros((0, 0), dtype)
        if ylab is None:
            ylab = np.zeros(0, np.int32)
        with blas_single_threaded():
            loss = _kernels.train_step(eng.cfg, theta, grads, rows, start, lens, yreg, ylab,
                                       idx, bounds, ws, iws, T, bcap, not uniform, n_threads,
                                       plan.hidden_split, wpack, seed=seed, dX=drows)
        return loss, grads.sum(axis=0), drows

    def outputs(self, theta, rows, lens, n_threads=1):
        """The head's outputs, a row per step (seq) or per sequence."""
        lens = np.ascontiguousarray(lens, np.intp)
        start = _starts(lens)
        data = SeqData(rows, start, lens, False)
        return self.engine.predict(theta, data, n_threads)


class ConvRNN:
    """The joint training step of a front-end under a recurrent network: a
    parameter vector [front-end, network] and one loss and gradient per
    batch of frame sequences."""

    def __init__(self, convnet, engine):
        if engine.layout.n_features != convnet.n_features:
            raise ValueError("the network's inputs must be the front-end's features")
        self.conv = convnet
        self.rnn = RNNStage(engine)
        self.n_params = convnet.n_params + engine.layout.n_params

    def loss_grad(self, theta, frames, lens, yreg=None, ylab=None, n_threads=1, simd=-1,
                  seed=0):
        """(mean loss, gradient) of one batch: frames (rows, H, W, C), the
        sequences' frames one after another with lengths lens; targets a
        row per sequence (many-to-one) or per frame (return_sequences):
        yreg (MSE) or ylab (int32 class codes, cross-entropy).  seed: the
        network's dropout masks."""
        cv = self.conv
        tc, tr = theta[:cv.n_params], theta[cv.n_params:]
        if np.sum(lens) != len(frames):
            raise ValueError(f"the sequence lengths add up to {int(np.sum(lens))} frames; "
                             f"{len(frames)} were given")
        feats, cache = cv.forward(tc, frames, n_threads, simd)
        loss, grad_rnn, dfeat = self.rnn.train(tr, feats, lens, yreg, ylab, n_threads, seed)
        grad = np.empty(self.n_params, theta.dtype)
        grad[cv.n_params:] = grad_rnn
        grad[:cv.n_params] = cv.backward(tc, cache, dfeat, n_threads, simd)
        return loss, grad


class FrontEndTable:
    """The front-end's part of a layout's tensor table (its ``conv``: a
    layer_tuple per layer, on ``front_channels`` input channels): the
    tensors ``conv.{i}.weight`` (kernels' layout (KH, KW, C, F)) and
    ``conv.{i}.bias`` from offset 0, torch's initialisation, and torch's
    layout of every tensor."""

    def front_end_tensors(self):
        """(tensors, their size): (name, offset, shape, is_weight) each."""
        out, off, c = [], 0, self.front_channels
        for i, t in enumerate(self.conv):
            ly = layer_from_tuple(t)
            shape = (*ly.kernel, c, ly.filters)
            out.append((f"conv.{i}.weight", off, shape, True))
            off += math.prod(shape)
            out.append((f"conv.{i}.bias", off, (ly.filters,), False))
            off += ly.filters
            c = ly.filters
        return out, off

    def init_front_end(self, theta, rng):
        """torch.nn.Conv2d's default in theta's front-end part: weights and
        biases uniform in +-1/sqrt(fan_in)."""
        views = self.views(theta)
        for i in range(len(self.conv)):
            w, b = views[f"conv.{i}.weight"], views[f"conv.{i}.bias"]
            bound = 1.0 / np.sqrt(w.shape[0] * w.shape[1] * w.shape[2])
            w[...] = rng.uniform(-bound, bound, w.shape)
            b[...] = rng.uniform(-bound, bound, b.shape)

    def torch_state_dict(self, theta):
        """Copies of the weights under torch's names and shapes (Conv2d's
        weight (F, C, KH, KW))."""
        return {name: np.ascontiguousarray(w.transpose(3, 2, 0, 1) if w.ndim == 4 else w)
                for name, w in self.views(theta).items()}


@dataclass(frozen=True)
class SceneLayout(FrontEndTable, TensorTable):
    """Where each weight of a scene-labelling network (SceneNet) lives in
    its parameter vector: the front-end (``conv``: layer_tuple of each
    layer), then the row sweep (``row.rnn.*``, ``row.head.*``: a
    bidirectional one-layer network and a projection to ``projection``
    values per position), then the column sweep (``col.rnn.*``,
    ``col.head.*``: the classifier).  It holds no image size: the same
    weights label images of any size the front-end leaves a pixel of."""
    conv: tuple             # layer_tuple of each layer
    channels: int           # the images' channels
    cell: str               # "rnn", "gru" or "lstm"
    nonlinearity: str       # the Elman cell's ("tanh" or "relu")
    hidden: int             # each sweep's hidden units per direction
    projection: int         # the row sweep's outputs per position
    n_classes: int

    num_layers = 1          # each sweep is one bidirectional layer

    def __post_init__(self):
        if self.cell not in GATES or self.nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"cell {self.cell!r} and nonlinearity {self.nonlinearity!r}")
        if not self.conv or any(len(t) != 9 for t in self.conv):
            raise ValueError("conv must hold at least one layer of 9 ints")

    @cached_property
    def layers(self):
        return tuple(layer_from_tuple(t) for t in self.conv)

    @cached_property
    def row_layout(self):
        return Layout(self.cell, self._nl, 1, 2, self.hidden, self.conv[-1][0],
                      self.projection)

    @cached_property
    def col_layout(self):
        return Layout(self.cell, self._nl, 1, 2, self.hidden, self.projection,
                      self.n_classes)

    @property
    def _nl(self):
        return self.nonlinearity if self.cell == "rnn" else None

    def tensors(self):
        """(name, offset, shape, is_weight); the front-end's weights in the
        kernels' layout (KH, KW, C, F)."""
        return self._tensors

    @property
    def front_channels(self):
        return self.channels

    @cached_property
    def _tensors(self):
        out, off = self.front_end_tensors()
        for prefix, lay in (("row.", self.row_layout), ("col.", self.col_layout)):
            for name, o, shape, is_w in lay.tensors():
                out.append((prefix + name, off + o, shape, is_w))
            off += lay.n_params
        return out

    @cached_property
    def n_conv_params(self):
        return self._tensors[2 * len(self.conv)][1]

    def init_params(self, rng, dtype, forget_bias=0.0):
        """torch's default initialisation of every part (Conv2d, the
        recurrent layers, Linear), forget_bias added as Layout's."""
        a = self.n_conv_params
        b = a + self.row_layout.n_params
        theta = np.empty(self.n_params, dtype)
        self.init_front_end(theta, rng)
        theta[a:b] = self.row_layout.init_params(rng, dtype, forget_bias)
        theta[b:] = self.col_layout.init_params(rng, dtype, forget_bias)
        return theta


class SceneNet:
    """Scene labelling as ReNet does it, on a convolutional front-end: the
    feature map's rows swept by a bidirectional recurrent network (its head
    a linear projection of each position), then its columns by another
    (its head the per-position classifier), on (H, W, C) images.

    Parameters: [front-end, row network, column network].  Labels are
    predicted on the feature map's grid (h, w); ``logits`` gives them there
    and the caller upsamples to the image.  The row network's outputs feed
    the column network; its gradient comes back through the column
    network's input gradient, and the row network is run forward twice per
    training step (once to feed the columns, once inside its training call
    with that gradient): a recomputation instead of a kept state."""

    def __init__(self, conv_layers, image_shape, n_classes, cell="gru", hidden=(32, 32),
                 projection=None, nonlinearity="tanh"):
        self.conv = ConvNet(conv_layers, image_shape)
        h, w, c = self.conv.shapes[-1]
        self.grid = (h, w)
        self.n_classes = int(n_classes)
        p = int(projection or 2 * hidden[0])
        nl = nonlinearity if cell == "rnn" else None
        self.row_layout = Layout(cell, nl, 1, 2, int(hidden[0]), c, p)
        self.col_layout = Layout(cell, nl, 1, 2, int(hidden[1]), p, self.n_classes)
        self.row = RNNStage(Engine(self.row_layout, True, _kernels.LOSS_CODES["given"]))
        self.col = RNNStage(Engine(self.col_layout, True, _kernels.LOSS_CODES["xent"]))
        self.n_params = self.conv.n_params + self.row.n_params + self.col.n_params

    @classmethod
    def from_layout(cls, layout, image_shape):
        """The network of a SceneLayout, for images of image_shape (H, W, C)."""
        if tuple(image_shape)[2:] != (layout.channels,):
            raise ValueError(f"images of {layout.channels} channel(s) expected, got shape "
                             f"{tuple(image_shape)}")
        return cls(layout.layers, image_shape, layout.n_classes, layout.cell,
                   (layout.hidden, layout.hidden), layout.projection, layout.nonlinearity)

    def split(self, theta):
        a = self.conv.n_params
        b = a + self.row.n_params
        return theta[:a], theta[a:b], theta[b:]

    def _rows(self, feats, n):
        h, w = self.grid
        return feats.reshape(n * h * w, -1), np.full(n * h, w, np.intp)

    def _columns(self, out, n):
        """(n, h, w, p) in row order -> the columns as sequences (n, w, h, p)."""
        h, w = self.grid
        cols = np.ascontiguousarray(out.reshape(n, h, w, -1).transpose(0, 2, 1, 3))
        return cols.reshape(n * w * h, -1), np.full(n * w, h, np.intp)

    def logits(self, theta, images, n_threads=1, simd=-1):
        """Class scores (n, h, w, n_classes) on the feature grid."""
        tc, tr, tk = self.split(theta)
        n = len(images)
        h, w = self.grid
        feats, _ = self.conv.forward(tc, images, n_threads, simd)
        out = self.row.outputs(tr, *self._rows(feats, n), n_threads)
        z = self.col.outputs(tk, *self._columns(out, n), n_threads)
        return np.ascontiguousarray(z.reshape(n, w, h, -1).transpose(0, 2, 1, 3))

    def loss_grad(self, theta, images, labels, n_threads=1, simd=-1):
        """(mean cross-entropy over the grid's positions, gradient): labels
        (n, h, w) int32 class codes on the feature grid."""
        tc, tr, tk = self.split(theta)
        n = len(images)
        h, w = self.grid
        if np.shape(labels) != (n, h, w):
            raise ValueError(f"labels must have the shape (n, {h}, {w}) of the feature grid; "
                             f"got {np.shape(labels)}")
        feats, cache = self.conv.forward(tc, images, n_threads, simd)
        rows, rlens = self._rows(feats, n)
        out = self.row.outputs(tr, rows, rlens, n_threads)
        cols, clens = self._columns(out, n)
        ylab = np.ascontiguousarray(np.asarray(labels).transpose(0, 2, 1).reshape(-1),
                                    np.int32)
        loss, g_col, dcols = self.col.train(tk, cols, clens, ylab=ylab, n_threads=n_threads)
        dout = np.ascontiguousarray(dcols.reshape(n, w, h, -1).transpose(0, 2, 1, 3))
        _, g_row, dfeat = self.row.train(tr, rows, rlens, yreg=dout.reshape(n * h * w, -1),
                                         n_threads=n_threads)
        grad = np.empty(self.n_params, theta.dtype)
        a, b = self.conv.n_params, self.conv.n_params + self.row.n_params
        grad[b:] = g_col
        grad[a:b] = g_row
        grad[:a] = self.conv.backward(tc, cache, dfeat.reshape(n, -1), n_threads, simd)
        return loss, grad


# ---------------------------------------------------------------------------
# frame sequences: a front-end under the sequence estimators' networks


@dataclass(frozen=True)
class ConvLayout(FrontEndTable, Layout):
    """A recurrent network (Layout: its n_features are the front-end's
    features) under a convolutional front-end for images of shape
    ``image`` (H, W, C).  The front-end's weights come first in the
    parameter vector (``conv.{i}.weight`` in the kernels' layout (KH, KW, C,
    F), ``conv.{i}.bias``); the network's tensors follow, and the kernels'
    offset table points past the front-end, so the kernels read the network
    out of the whole vector."""
    conv: tuple = ()        # layer_tuple of each layer
    image: tuple = ()       # (H, W, C)

    def __post_init__(self):
        super().__post_init__()
        if not self.conv or self.tokens:
            raise ValueError("a ConvLayout needs at least one layer and dense input")
        if self.convnet().n_features != self.n_features:
            raise ValueError("n_features must be the front-end's features")

    def convnet(self):
        """A new ConvNet (its own buffers) for this front-end and image shape."""
        return ConvNet([layer_from_tuple(t) for t in self.conv], self.image)

    @cached_property
    def n_conv_params(self):
        return self.convnet().n_params

    @cached_property
    def rnn_layout(self):
        """The network alone (its own parameter vector)."""
        return Layout(self.cell, self.nonlinearity, self.num_layers, self.ndir, self.hidden,
                      self.n_features, self.n_outputs)

    @property
    def front_channels(self):
        return self.image[2]

    @cached_property
    def _tensors(self):
        out, off = self.front_end_tensors()
        return out + [(n, o + off, s, w) for n, o, s, w in self.rnn_layout.tensors()]

    def offsets(self):
        return np.array([t[1] for t in self.tensors() if not t[0].startswith("conv.")],
                        dtype=np.intp)

    def init_params(self, rng, dtype, forget_bias=0.0):
        """torch's Conv2d initialisation for the front-end, Layout's for the
        network."""
        cn = self.n_conv_params
        theta = np.empty(self.n_params, dtype)
        self.init_front_end(theta, rng)
        theta[cn:] = self.rnn_layout.init_params(rng, dtype, forget_bias)
        return theta


@dataclass
class FrameData(SeqData):
    """Sequences of images: ``frames`` (rows, H, W, C), one per step, with
    the sequences' start and lens; ``rows`` holds the front-end's features
    of the frames (ConvEngine computes them at the weights it is given,
    for the samples it runs), None until then."""
    frames: np.ndarray = None

    @property
    def n_features(self):
        return self.frames.shape[3]            # the images' channels

    @property
    def image_shape(self):
        return tuple(self.frames.shape[1:])


# frames per front-end call in predict (bounds the feature maps' buffers)
_FEATURE_CHUNK = 256


class ConvEngine(Engine):
    """Engine of a ConvLayout: predict and train on FrameData, the front-end
    run at the weights of each call (theta[:n_conv_params])."""

    def features(self, theta, data, samples=None, n_threads=1):
        """Write the front-end's features of these samples' frames (all:
        None) into data.rows (allocated at first use), in chunks."""
        lay = self.layout
        if data.rows is None or data.rows.dtype != theta.dtype:
            data.rows = np.zeros((len(data.frames), lay.n_features), theta.dtype)
        rows = (np.arange(len(data.frames), dtype=np.intp) if samples is None
                else sample_rows(data, samples))
        net = lay.convnet()
        tc = theta[:lay.n_conv_params]
        # at most _FEATURE_CHUNK frames, and about 2**26 values of feature maps
        chunk = max(1, min(_FEATURE_CHUNK, 2**26 // max(1, net.work_per_image)))
        for a in range(0, len(rows), chunk):
            r = rows[a:a + chunk]
            frames = data.frames[r[0]:r[-1] + 1] if r[-1] - r[0] + 1 == len(r) \
                else data.frames[r]
            data.rows[r] = net.forward(tc, np.ascontiguousarray(frames, theta.dtype),
                                       n_threads)[0]
        return data

    def predict(self, theta, data, n_threads, wpack=None, states=None, idx=None):
        if isinstance(data, FrameData):
            self.features(theta, data, idx, n_threads)
        return super().predict(theta, data, n_threads, wpack, states, idx)

    def trainer(self, data, target, batch_size, n_threads, dtype, weights=None, keep=False):
        if not keep:
            self.clear_scratch()
        if data.rows is None or data.rows.dtype != dtype:
            data.rows = np.zeros((len(data.frames), self.layout.n_features), dtype)
        return ConvTrainWorkspace(self, data, target, batch_size, n_threads, dtype, weights,
                                  keep=keep)


class ConvTrainWorkspace(TrainWorkspace):
    """A TrainWorkspace whose batches start at the frames: the front-end's
    forward pass for the batch's frames, the network's training step with
    dLoss/d(features), then the front-end's backward pass, its gradient in
    the first shard's row (the other rows' front-end part is zero)."""

    def __init__(self, engine, data, target, batch_size, n_threads, dtype, weights=None,
                 keep=False):
        super().__init__(engine, data, target, batch_size, n_threads, dtype, weights, keep,
                         input_grad=True)
        self.net = engine.layout.convnet()
        self.n_conv = engine.layout.n_conv_params

    def train_batch(self, theta, samples, seed=0, states=None, data=None):
        if data is not None:
            raise ValueError("stateful training over chunks is not available with a "
                             "convolutional front-end")
        d = self.data
        rows = sample_rows(d, samples)
        tc = theta[:self.n_conv]
        with blas_single_threaded():
            feats, cache = self.net.forward(tc, np.ascontiguousarray(d.frames[rows],
                                                                     theta.dtype),
                                            self.n_threads)
        d.rows[rows] = feats
        loss = super().train_batch(theta, samples, seed, states)
        g = self.net.backward(tc, cache, self.dX[rows], self.n_threads)
        self.grads[0, :self.n_conv] = g
        self.grads[1:, :self.n_conv] = 0
        return loss
