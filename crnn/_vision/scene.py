"""RNNSceneLabeler: a label for every pixel of an image.

ReNet's scene labelling (Visin et al. 2015) on a convolutional front-end:
the convolutions (crnn._conv) turn an image into a feature map; a
bidirectional recurrent network sweeps each row of that map and projects
every position; a second one sweeps each column of the result and
classifies every position; the class probabilities are upsampled
(bilinearly) to the image.  The network and its joint training step are
crnn._nn.conv's SceneNet; the training loop, solvers, parameter checks and
model files are the other estimators'.
"""
from collections.abc import Mapping

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._base.callbacks import with_callbacks
from .._base.docstrings import document_parameters
from .._base.estimator import _BaseRNN, _check_model_size
from .._base.fitting import FitPlan, run_fit
from .._base.params import Interval, Satisfies, store_params, without
from .._nn.conv import SceneLayout, SceneNet, image_array, layer_tuple, parse_layers
from .._nn.threads import effective_n_threads
from .._nn.training import TrainState, all_finite

# the front-end when conv=None: two 'same' convolutions, each followed by
# 2 x 2 max pooling (a feature grid a quarter of the image's size each way)
DEFAULT_CONV = ({"filters": 16, "kernel": 5, "padding": 2, "pool": 2},
                {"filters": 32, "kernel": 3, "padding": 1, "pool": 2})
# images per kernel call in predict (bounds its buffers: a chunk's feature
# maps and probabilities)
_PREDICT_CHUNK = 32


def _is_layer_list(v):
    return isinstance(v, (list, tuple))


def _axis_weights(n_in, n_out):
    """Bilinear interpolation along one axis, torch's
    ``interpolate(mode="bilinear", align_corners=False)``: output index j
    reads input (j + 0.5) * n_in / n_out - 0.5, clamped to the ends."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (src - i0)


def upsample_bilinear(p, H, W):
    """(n, h, w, K) -> (n, H, W, K) by bilinear interpolation (half-pixel
    centres).  Interpolating probabilities keeps them non-negative and
    summing to one."""
    _, h, w, _ = p.shape
    i0, i1, t = _axis_weights(h, H)
    t = t.astype(p.dtype)[None, :, None, None]
    p = p[:, i0] * (1 - t) + p[:, i1] * t
    j0, j1, u = _axis_weights(w, W)
    u = u.astype(p.dtype)[None, None, :, None]
    return p[:, :, j0] * (1 - u) + p[:, :, j1] * u


def grid_labels(masks, grid):
    """Each feature-grid cell's label: the image pixel at the cell's centre
    (the point bilinear upsampling maps the cell to)."""
    _, H, W = masks.shape
    h, w = grid
    iy = np.minimum(((np.arange(h) + 0.5) * H / h).astype(np.intp), H - 1)
    ix = np.minimum(((np.arange(w) + 0.5) * W / w).astype(np.intp), W - 1)
    return np.ascontiguousarray(masks[:, iy][:, :, ix], np.int32)


def _is_text(labels):
    return labels.dtype.kind in "US" or (labels.dtype.kind == "O" and labels.size > 0
                                         and isinstance(labels.flat[0], str))


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def mean_iou(y_true, y_pred, labels):
    """Mean over ``labels`` of |true & predicted| / |true | predicted|, the
    classes absent from both left out."""
    ious = []
    for k in labels:
        t, p = y_true == k, y_pred == k
        union = np.count_nonzero(t | p)
        if union:
            ious.append(np.count_nonzero(t & p) / union)
    return float(np.mean(ious)) if ious else 1.0


class SceneWork:
    """What the training loop (crnn._nn.training.EpochLoop) drives: a batch
    of images (indices into the standardised training images) through
    SceneNet's joint step.  The loss is the mean cross-entropy over the
    batch's grid positions; batch_weight its images."""

    def __init__(self, net, images, labels, batch, n_threads, dtype):
        self.net, self.images, self.labels = net, images, labels
        self.n_threads, self.batch = int(n_threads), int(min(batch, len(images)))
        self.grads = np.zeros((1, net.n_params), dtype)
        self.batch_weight = 0.0

    def train_batch(self, theta, samples, seed=0):
        loss, grad = self.net.loss_grad(theta, self.images[samples], self.labels[samples],
                                        self.n_threads)
        self.grads[0] = grad
        self.batch_weight = float(len(samples))
        return loss

    def release(self):
        """The buffers are this object's and its network's: nothing to give back."""


@document_parameters
class RNNSceneLabeler(_BaseRNN):
    """Scene labelling: a class for every pixel, from convolutions and
    recurrent sweeps over the image.

    The model is ReNet's (Visin et al. 2015) on a convolutional front-end,
    trained end to end.  The convolutions (each followed by ReLU, and by
    max pooling where asked) turn an image of shape (H, W, C) into a
    feature map (h, w, c).  A bidirectional recurrent network reads each
    row of that map left to right and right to left, and a linear layer
    projects its two states at every position; a second bidirectional
    network reads each column of the projections top to bottom and bottom
    to top, and a linear layer gives every position a score per class.
    Every position's label therefore depends on the whole image, not only
    on what the convolutions see.  The class probabilities (softmax) are
    upsampled bilinearly to the image's pixels.

    Training minimises the cross-entropy at the feature map's positions,
    each labelled with the image pixel at its centre.  The images are
    standardised per channel with the training images' mean and standard
    deviation (``standardize=True``).  The weights are torch's modules'
    (``state_dict``); predict accepts images of any size the front-end
    leaves a pixel of, not only the training size.

    Parameters
    ----------
    conv : list of tuples or dicts, or None, default=None
        The front-end: one entry per convolution, ``(filters, kernel,
        stride)`` or a dict with the keys ``filters``, ``kernel``,
        ``stride`` (default 1), ``padding`` (default 0) and ``pool`` (max
        pooling with that kernel and stride after the ReLU, default none);
        kernel, stride, padding and pool are ints or (height, width) pairs.
        None: ``[{"filters": 16, "kernel": 5, "padding": 2, "pool": 2},
        {"filters": 32, "kernel": 3, "padding": 1, "pool": 2}]``, a feature
        grid of a quarter of the image's height and width.
    cell : {"rnn", "gru", "lstm"}, default="gru"
        The cell of both sweeps (torch.nn.RNN / GRU / LSTM).
    hidden_size : int, default=32
        Hidden units per direction of each sweep.
    projection_size : int or None, default=None
        Values per position between the row sweep and the column sweep;
        None: 2 * hidden_size.
    nonlinearity : {"tanh", "relu"}, default="tanh"
        The Elman cell's nonlinearity (GRU and LSTM ignore it).
    standardize : bool, default=True
        Subtract each channel's mean and divide by its standard deviation
        (of the training images, ``input_mean_`` and ``input_scale_``)
        before the convolutions.  False: the images go in as given.
    forget_bias : float, default=1.0
    solver : {"adam", "sgd"}, default="adam"
    learning_rate : {"constant", "invscaling", "adaptive", "cosine"}, default="constant"
    learning_rate_init : float, default=3e-3
        The initial step size.
    power_t : float, default=0.5
    batch_size : int, default=16
        Images per mini-batch.
    max_iter : int, default=50
        Epochs at most.
    alpha : float, default=0.0
    clip_norm : float or None, default=5.0
    momentum : float, default=0.9
    nesterovs_momentum : bool, default=True
    beta_1 : float, default=0.9
    beta_2 : float, default=0.999
    epsilon : float, default=1e-8
    early_stopping : bool, default=False
        Hold out validation_fraction of the images (or use fit's X_val,
        y_val) and stop when their mean intersection over union stops
        improving; the best epoch's weights are kept.
    validation_fraction : float in (0, 1), default=0.1
    n_iter_no_change : int, default=10
    tol : float, default=1e-4
    shuffle : bool, default=True
    random_state : int, RandomState or None, default=None
    verbose : int, default=0
    warm_start : bool, default=False
    n_jobs : int or None, default=None
    dtype : numpy.float32 or numpy.float64, default=numpy.float32

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels, sorted; predict_proba's last axis follows them.
    input_mean_, input_scale_ : ndarray of shape (n_channels,)
        The standardisation (0 and 1 with standardize=False).
    n_features_in_ : int
        The images' channels.
    loss_, loss_curve_, n_iter_, validation_scores_, best_validation_score_
        As the other estimators' (validation scores: mean IoU).

    Examples
    --------
    >>> from crnn import RNNSceneLabeler
    >>> from crnn.datasets import make_texture_mosaics
    >>> X, y = make_texture_mosaics(40, 32, textures=["brick", "grass"], random_state=0)
    >>> model = RNNSceneLabeler(hidden_size=8, max_iter=2, random_state=0).fit(X, y)
    >>> model.predict(X[:2]).shape
    (2, 32, 32)
    """

    # what a scene labeller fixes, as the shared machinery reads it
    return_sequences = False
    bptt_truncate = None
    dropout = 0.0
    num_layers = 1
    bidirectional = True
    _FITTED_ATTRIBUTES = _BaseRNN._FITTED_ATTRIBUTES | {"classes_", "input_mean_",
                                                        "input_scale_"}
    _parameter_constraints = without(
        _BaseRNN._parameter_constraints, "num_layers", "bidirectional", "dropout",
        "return_sequences", "bptt_truncate", "compute_dtype") | {
        "conv": [Satisfies(_is_layer_list, "a list of layers"), None],
        "projection_size": [Interval("int", 1, 2**20), None],
        "standardize": ["boolean"],
    }
    _layout_class = SceneLayout

    def __init__(
        self,
        *,
        conv=None,
        cell="gru",
        hidden_size=32,
        projection_size=None,
        nonlinearity="tanh",
        standardize=True,
        forget_bias=1.0,
        solver="adam",
        learning_rate="constant",
        learning_rate_init=3e-3,
        power_t=0.5,
        batch_size=16,
        max_iter=50,
        alpha=0.0,
        clip_norm=5.0,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        shuffle=True,
        random_state=None,
        verbose=0,
        warm_start=False,
        n_jobs=None,
        dtype=np.float32,
    ):
        store_params(self, locals())

    # ------------------------------------------------------------------
    # parameters and inputs

    def _simd(self, check_cpu=True):
        """No compute_dtype: the convolutions compute in ``dtype``."""
        return -1

    def _check_param_rules(self):
        self._layers()

    def _layers(self):
        return parse_layers(DEFAULT_CONV if self.conv is None else self.conv)

    def _make_layout(self, channels, n_classes):
        hidden = int(self.hidden_size)
        layout = SceneLayout(tuple(layer_tuple(ly) for ly in self._layers()), int(channels),
                             self.cell, self.nonlinearity, hidden,
                             int(self.projection_size or 2 * hidden), int(n_classes))
        _check_model_size(layout, self._dtype(), f"These parameters ({self._describe(layout)})")
        return layout

    @staticmethod
    def _describe(layout):
        return (f"{len(layout.conv)} convolution(s) of "
                f"{', '.join(str(t[0]) for t in layout.conv)} filters on images of "
                f"{layout.channels} channel(s), sweeps of {layout.hidden} "
                f"{layout.nonlinearity if layout.cell == 'rnn' else layout.cell.upper()} "
                f"units per direction, projection {layout.projection}, "
                f"{layout.n_classes} classes")

    @staticmethod
    def _layout_io_shape(layout):
        return layout.channels, layout.n_classes

    def _images(self, X, name="X", same_shape=True):
        """X -> a float64 array (n, H, W, C) (same_shape) or a list of
        (H, W, C) arrays; (n, H, W) and (H, W) images have one channel."""
        if isinstance(X, (list, tuple)):
            if not X:
                raise ValueError(f"{name} is empty: it holds no image.")
            imgs = [self._image_array(x, f"{name}[{i}]", 3) for i, x in enumerate(X)]
            shapes = {im.shape for im in imgs}
            if len(shapes) == 1:
                return np.stack(imgs)
            if same_shape:
                raise ValueError(f"{name} holds images of different shapes "
                                 f"({sorted(shapes)[:3]}...); a fit trains on images of "
                                 "one shape (crop or resize them).")
            return imgs
        return self._image_array(X, name, 4)        # no image: an empty axis

    @staticmethod
    def _image_array(X, name, ndim):
        """One image (ndim 3: (H, W[, C])) or a stack (ndim 4: (n, H, W[, C])),
        as float64, finite, with its channel axis."""
        what = "an image (H, W) or (H, W, C)" if ndim == 3 else \
            "images (n, H, W) or (n, H, W, C), or a list of images"
        return image_array(X, name, ndim, np.float64, what)

    def _masks(self, y, images, name="y"):
        """y -> labels (n, H, W) matching the images' pixels."""
        if isinstance(y, (list, tuple)):
            try:
                y = np.stack([np.asarray(m) for m in y])
            except ValueError as exc:
                raise ValueError(f"{name} holds masks of different shapes: {exc}") from exc
        y = np.asarray(y)
        if y.shape != images.shape[:3]:
            raise ValueError(f"{name} must hold a label per pixel, shape {images.shape[:3]}; "
                             f"got {y.shape}.")
        return self._labels(y, name)

    @staticmethod
    def _labels(y, name):
        """y as an array of class labels: integers, strings or finite numbers."""
        y = np.asarray(y)
        if y.dtype.kind not in "biuUO" and not (y.dtype.kind == "f" and np.all(np.isfinite(y))):
            raise ValueError(f"{name} must hold class labels (integers or strings, or finite "
                             f"numbers); got dtype {y.dtype}.")
        if y.dtype.kind == "O" and not (all(isinstance(v, str) for v in y.flat)
                                        or all(isinstance(v, (int, np.integer)) and
                                               not isinstance(v, bool) for v in y.flat)):
            raise ValueError(f"{name}'s labels must be all strings or all integers.")
        return y

    def _encode(self, y, classes, name):
        codes = np.searchsorted(classes, y)
        codes = np.minimum(codes, len(classes) - 1)
        bad = classes[codes] != y
        if np.any(bad):
            unknown = np.unique(y[bad])[:5]
            raise ValueError(f"{name} holds labels the model was not fitted with: "
                             f"{unknown.tolist()} (classes_: {classes.tolist()[:10]}).")
        return codes.astype(np.int32)

    # ------------------------------------------------------------------
    # training

    @with_callbacks
    def fit(self, X, y, *, X_val=None, y_val=None):
        """Train on images and their per-pixel labels for max_iter epochs
        (or until early stopping).

        Parameters
        ----------
        X : array of shape (n_images, height, width, channels) or (n_images, height, width)
            The images (channels last; one shape for all), or a list of them.
        y : array of shape (n_images, height, width)
            The class of every pixel (integers or strings).
        X_val, y_val : same types, optional
            Held-out images for early stopping (early_stopping=True), of any
            one shape.

        Returns
        -------
        self : RNNSceneLabeler
        """
        return run_fit(self, X, y, False, X_val=X_val, y_val=y_val)

    @with_callbacks
    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y); the classes are fixed at the first call.

        Parameters
        ----------
        X : array of shape (n_images, height, width[, channels])
        y : array of shape (n_images, height, width)
        classes : array-like, optional
            Every label of the task, at the first call (labels later calls
            bring that y lacks); later calls may not add any.

        Returns
        -------
        self : RNNSceneLabeler
        """
        return run_fit(self, X, y, True, y_val=None, classes=classes)

    def _plan_fit(self, ctx, X, y, *, classes=None, X_val=None, y_val=None):
        dtype = ctx.dtype
        images = self._images(X)
        masks = self._masks(y, images)
        n, H, W, C = images.shape
        cont = ctx.continue_from_fitted
        if classes is not None:
            classes = np.unique(self._labels(classes, "classes"))
        if cont:
            if C != self.n_features_in_:
                raise ValueError(f"X has {C} channel(s); {type(self).__name__} is fitted "
                                 f"with {self.n_features_in_}.")
            cls = self.classes_
            if classes is not None and not (classes.shape == cls.shape
                                            and np.all(classes == cls)):
                raise ValueError(f"classes={classes.tolist()[:10]} is not the same as at the "
                                 f"first call of partial_fit: {cls.tolist()[:10]}.")
            mean, scale = self.input_mean_, self.input_scale_
        else:
            seen = np.unique(masks)
            if classes is not None:
                cls = classes
                missing = np.setdiff1d(seen, cls)
                if len(missing):
                    raise ValueError(f"y holds labels not in classes: {missing.tolist()[:5]}.")
            else:
                cls = seen
            if len(cls) < 2:
                raise ValueError(f"y holds one class ({cls.tolist()}); scene labelling "
                                 "needs at least two.")
            if self.standardize:
                with np.errstate(over="ignore", invalid="ignore"):
                    mean = images.mean(axis=(0, 1, 2))
                    scale = images.std(axis=(0, 1, 2))
                if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(scale))):
                    raise ValueError("X's values are too large to standardise (their mean "
                                     "or standard deviation overflows float64); scale the "
                                     "images down.")
                scale[scale < 1e-12 * np.maximum(1.0, np.abs(mean))] = 1.0
            else:
                mean, scale = np.zeros(C), np.ones(C)
        codes = self._encode(masks, cls, "y")
        layout = self._make_layout(C, len(cls))
        _, rng = ctx.start(layout)
        net = SceneNet.from_layout(layout, (H, W, C))
        labels = grid_labels(codes, net.grid)
        std = self._standardize(images, mean, scale, dtype)
        n_threads = ctx.n_threads
        pool = np.arange(n, dtype=np.intp)
        validate = None
        if X_val is not None:
            vimg = self._images(X_val, "X_val")
            if vimg.shape[3] != C:
                raise ValueError(f"X_val has {vimg.shape[3]} channel(s); X has {C}.")
            vcodes = self._encode(self._masks(y_val, vimg, "y_val"), cls, "y_val")
            validate = self._validation(layout, self._standardize(vimg, mean, scale, dtype,
                                                                  "X_val"),
                                        vcodes, n_threads)
        elif ctx.early_stopping:
            if n < 3:
                raise ValueError("The validation set is too small: early stopping holds out "
                                 f"validation_fraction of the {n} images and keeps at least "
                                 "one for training; give more images or X_val.")
            train, val = train_test_split(np.arange(n), random_state=rng,
                                          test_size=self.validation_fraction)
            if len(val) < 1 or len(train) < 1:
                raise ValueError("The validation set is too small. Increase "
                                 "'validation_fraction' or the number of images.")
            pool = np.sort(train).astype(np.intp)
            val = np.sort(val)
            validate = self._validation(layout, std[val], codes[val], n_threads)

        return FitPlan(
            lambda: SceneWork(net, std, labels, self.batch_size, n_threads, dtype), pool,
            dict(classes_=cls, input_mean_=mean, input_scale_=scale, n_features_in_=C,
                 n_outputs_=len(cls), _return_sequences=False),
            validate=validate, shuffle=bool(self.shuffle))

    @staticmethod
    def _standardize(images, mean, scale, dtype, name="X"):
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.ascontiguousarray((images - mean) / scale, dtype=dtype)
        if not all_finite(out):
            raise ValueError(f"{name}'s values, standardised, are beyond the range of "
                             f"{np.dtype(dtype).name}.")
        return out

    def _validation(self, layout, images, codes, n_threads):
        """theta -> (mean IoU at the pixels, mean cross-entropy on the grid)
        of held-out images (standardised) and their label codes."""
        K = layout.n_classes

        def validate(theta):
            probs, grid_p = self._probabilities(layout, theta, images, n_threads, grid=True)
            lab = grid_labels(codes, grid_p.shape[1:3])
            p = np.take_along_axis(grid_p, lab[..., None].astype(np.intp), axis=-1)
            loss = float(-np.mean(np.log(np.maximum(p, 1e-300))))
            return mean_iou(codes, probs.argmax(-1), range(K)), loss

        return validate

    # ------------------------------------------------------------------
    # prediction

    _SNAPSHOT = ("_layout", "_theta", "input_mean_", "input_scale_", "classes_")

    def _sample_ndims(self):
        """(the dimensions an array of samples may have, what they mean),
        for crnn.dask."""
        return (3, 4), "3-D or 4-D images (n_samples, height, width[, channels])"

    def _fitted(self):
        """One commit's (layout, weights, input mean, input scale, classes): a
        fit commits them in one dict update, so two reads that agree saw
        one commit (a fit committing from another thread between them is
        seen, and they are read again)."""
        check_is_fitted(self, "_theta")
        d = self.__dict__
        for _ in range(100):
            first = tuple(d[k] for k in self._SNAPSHOT)
            if all(a is b for a, b in zip(first, (d[k] for k in self._SNAPSHOT))):
                return first
        raise RuntimeError("the model kept changing while predict read it (a fit in "
                           "another thread); call predict again.")

    def _probabilities(self, layout, theta, images, n_threads, grid=False):
        """Class probabilities (n, H, W, K) of standardised images (n, H, W,
        C) in theta's dtype; grid: also those on the feature grid."""
        n, H, W, C = images.shape
        net = SceneNet.from_layout(layout, (H, W, C))
        out = np.empty((n, H, W, layout.n_classes), theta.dtype)
        gout = np.empty((n, *net.grid, layout.n_classes), theta.dtype) if grid else None
        # at most _PREDICT_CHUNK images, and about 2**26 values of feature maps
        chunk = max(1, min(_PREDICT_CHUNK, 2**26 // max(1, net.conv.work_per_image)))
        for a in range(0, n, chunk):
            b = min(n, a + chunk)
            p = _softmax(net.logits(theta, np.ascontiguousarray(images[a:b]), n_threads))
            if grid:
                gout[a:b] = p
            out[a:b] = upsample_bilinear(p, H, W)
        return (out, gout) if grid else out

    def predict_proba(self, X):
        """The probability of every class at every pixel.

        Parameters
        ----------
        X : array of shape (n_images, height, width[, channels]), or a list of images
            Images of any size the front-end leaves a pixel of; a list may
            mix sizes.

        Returns
        -------
        proba : ndarray of shape (n_images, height, width, n_classes), or a list
            The columns of the last axis follow ``classes_``; a list of
            (height, width, n_classes) arrays when X is a list of images of
            different sizes.
        """
        return self._predict_proba(X)[0]

    def _predict_proba(self, X):
        """(probabilities, the classes_ of the same fitted model)."""
        layout, theta, mean, scale, classes = self._fitted()
        images = self._images(X, same_shape=False)
        n_threads = effective_n_threads(self.n_jobs)
        C = layout.channels
        shapes = [im.shape[-1] for im in images] if isinstance(images, list) \
            else [images.shape[-1]]
        if any(c != C for c in shapes):
            raise ValueError(f"X has images of {sorted(set(shapes))} channel(s); "
                             f"{type(self).__name__} is fitted with {C}.")
        if not isinstance(images, list):
            out = self._probabilities(layout, theta, self._standardize(images, mean, scale,
                                                                       theta.dtype), n_threads)
        else:
            out = [None] * len(images)
            by_shape = {}
            for i, im in enumerate(images):
                by_shape.setdefault(im.shape, []).append(i)
            for idx in by_shape.values():
                stack = self._standardize(np.stack([images[i] for i in idx]), mean, scale,
                                          theta.dtype)
                for i, p in zip(idx, self._probabilities(layout, theta, stack, n_threads)):
                    out[i] = p
        if not all(all_finite(p) for p in (out if isinstance(out, list) else [out])):
            raise ValueError("The network's outputs contain NaN or infinity (images far "
                             "outside the training range overflow float precision).")
        return out, classes

    def predict(self, X):
        """The class of every pixel.

        Parameters
        ----------
        X : array of shape (n_images, height, width[, channels]), or a list of images

        Returns
        -------
        labels : ndarray of shape (n_images, height, width), or a list
            Labels from ``classes_``.
        """
        proba, classes = self._predict_proba(X)
        if isinstance(proba, list):
            return [classes[p.argmax(-1)] for p in proba]
        return classes[proba.argmax(-1)]

    def score(self, X, y):
        """Mean intersection over union of the predicted and the true labels.

        For each class, the pixels labelled with it in both divided by the
        pixels labelled with it in either, over all the images; the mean is
        over the classes present in y or in the prediction.

        Parameters
        ----------
        X : array of shape (n_images, height, width[, channels])
        y : array of shape (n_images, height, width)

        Returns
        -------
        score : float
        """
        proba, classes = self._predict_proba(X)
        if isinstance(proba, list):
            raise ValueError("score takes images of one shape (an array).")
        pred = classes[proba.argmax(-1)]
        y = self._masks(y, pred[..., None], "y")
        if _is_text(y) != _is_text(classes):
            raise ValueError(f"y holds {'strings' if _is_text(y) else 'numbers'} but the "
                             f"model's classes_ are {'strings' if _is_text(classes) else 'numbers'}"
                             "; labels of one kind cannot match the other's.")
        labels = np.union1d(np.unique(y), classes)
        return mean_iou(y, pred, labels)

    # ------------------------------------------------------------------
    # weights and model files

    def state_dict(self):
        """The weights, under PyTorch's names and shapes.

        Returns
        -------
        state_dict : dict of str to ndarray
            Copies of the weights of a torch module with submodules ``conv``
            (an ``nn.ModuleList`` of ``nn.Conv2d(c_in, filters, kernel,
            stride, padding)``, each followed by ReLU and, where the layer
            pools, ``max_pool2d``), ``row`` and ``col`` (each with ``rnn =
            nn.GRU(d, hidden_size, batch_first=True, bidirectional=True)``,
            nn.LSTM / nn.RNN for those cells, and ``head = nn.Linear(2 *
            hidden_size, out)``): the row sweep reads the feature map's rows
            (n * h, w, c), the column sweep the columns of its outputs (n *
            w, h, projection).  The images go in standardised with
            ``input_mean_`` and ``input_scale_``.
        """
        layout, theta = self._fitted()[:2]
        return layout.torch_state_dict(theta)

    def load_state_dict(self, state_dict, classes=None, input_mean=None, input_scale=None):
        """Set the weights from a PyTorch-style state dict (as state_dict()).

        The parameters conv (strides, paddings, pools), cell, hidden_size,
        projection_size and nonlinearity must describe the weights; the
        channels and the number of classes are read from them.

        Parameters
        ----------
        state_dict : dict of str to array
        classes : array-like of shape (n_classes,), optional
            The label of each class score (default 0, 1, ...), sorted.
        input_mean, input_scale : array-like of shape (n_channels,), optional
            The standardisation the weights expect (default 0 and 1).

        Returns
        -------
        self : RNNSceneLabeler
        """
        dtype = self._validate_hyperparams()
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict must be a dict of arrays (as state_dict() returns), "
                            f"not {type(state_dict).__name__}.")
        sd = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v))
              for k, v in state_dict.items()}
        for key, rank in (("conv.0.weight", 4), ("col.head.weight", 2)):
            if key not in sd or sd[key].ndim != rank:
                raise ValueError(f"state_dict has no '{key}' entry of rank {rank}.")
        C, K = sd["conv.0.weight"].shape[1], sd["col.head.weight"].shape[0]
        if C < 1 or K < 2:
            raise ValueError(f"the weights read {C} channel(s) and {K} class(es); a scene "
                             "labeller needs at least one channel and two classes.")
        layout = self._make_layout(C, K)
        expected = {name: shape for name, _, shape, _ in layout.tensors()}
        missing, unexpected = sorted(set(expected) - set(sd)), sorted(set(sd) - set(expected))
        if missing or unexpected:
            raise ValueError(f"state_dict does not match {type(self).__name__}("
                             f"{self._describe(layout)}): missing keys {missing}, "
                             f"unexpected keys {unexpected}.")
        theta = np.empty(layout.n_params, dtype)
        views = layout.views(theta)
        for name, shape in expected.items():
            arr = sd[name]
            if arr.dtype.kind not in "biuf":
                raise ValueError(f"state_dict['{name}'] must hold real numbers.")
            if len(shape) == 4:
                shape = (shape[3], shape[2], shape[0], shape[1])
            if arr.shape != shape:
                raise ValueError(f"state_dict['{name}'] has shape {arr.shape}; these "
                                 f"parameters need {shape}.")
            arr = arr.astype(np.float64)
            if not np.all(np.isfinite(arr)) or np.max(np.abs(arr), initial=0) >= np.sqrt(
                    np.finfo(dtype).max):
                raise ValueError(f"state_dict['{name}'] holds NaN, infinity or values beyond "
                                 f"the square root of {dtype.name}'s range.")
            views[name][...] = arr.transpose(2, 3, 1, 0) if arr.ndim == 4 else arr
        cls = np.arange(K) if classes is None else np.asarray(classes)
        mean = np.zeros(C) if input_mean is None else np.asarray(input_mean, np.float64)
        scale = np.ones(C) if input_scale is None else np.asarray(input_scale, np.float64)
        attrs = TrainState.new(layout, theta).attributes(early_stopping=False)
        attrs.update(classes_=cls, input_mean_=mean, input_scale_=scale, n_features_in_=C,
                     n_outputs_=K, best_loss_=None,
                     _random_state=check_random_state(self.random_state),
                     _return_sequences=False)
        self._check_fitted_targets(attrs)
        self.__dict__.update(attrs)
        return self

    def _check_fitted_targets(self, attrs):
        layout = attrs["_layout"]
        cls = attrs["classes_"]
        if not (isinstance(cls, np.ndarray) and cls.shape == (layout.n_classes,)):
            raise ValueError(f"classes_ is not an array of the network's {layout.n_classes} "
                             "labels.")
        if cls.dtype.kind not in "biuUO" and not (cls.dtype.kind == "f"
                                                  and np.all(np.isfinite(cls))):
            raise ValueError(f"classes_ has dtype {cls.dtype}; labels are integers, strings "
                             "or finite numbers.")
        try:
            ordered = len(cls) < 2 or bool(np.all(cls[1:] > cls[:-1]))
        except TypeError:
            ordered = False
        if not ordered:
            raise ValueError("classes_ must be distinct labels in increasing order.")
        for name in ("input_mean_", "input_scale_"):
            a = attrs[name]
            if not (isinstance(a, np.ndarray) and a.dtype == np.float64
                    and a.shape == (layout.channels,) and np.all(np.isfinite(a))):
                raise ValueError(f"{name} is not a finite float64 array of the images' "
                                 f"{layout.channels} channel(s).")
        if not np.all(attrs["input_scale_"] > 0):
            raise ValueError("input_scale_ holds values that are not positive.")
        if attrs["_return_sequences"]:
            raise ValueError("a scene labeller has no per-step outputs (_return_sequences).")
        if attrs["n_outputs_"] != layout.n_classes or attrs["n_features_in_"] != \
                layout.channels:
            raise ValueError("n_outputs_ and n_features_in_ do not match the network.")

    def _onnx_graph(self, opset, name):
        """crnn.to_onnx's graph of this model (crnn/_vision/onnx.py)."""
        from .onnx import scene_to_onnx
        return scene_to_onnx(self, opset, name)

    def _derived_attributes(self, attrs):
        pass                                  # nothing cached from the weights

    def __setstate__(self, state):
        super(_BaseRNN, self).__setstate__(state)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags


__all__ = ["RNNSceneLabeler", "mean_iou", "upsample_bilinear"]
