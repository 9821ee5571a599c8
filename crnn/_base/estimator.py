"""_BaseRNN: what every network estimator shares.

Parameters (declared, crnn._base.params), the input checks, the network's
layout and engine, the data of a fit (_plan_fit, run by crnn._base.fitting),
prediction, state dicts and the fitted attributes a model file restores.
Python validates, allocates and picks the thread count; the kernels
(crnn._kernels, crnn._optim) do every computation over time steps and
samples.
"""
import ctypes
import operator
import os
import warnings

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from .callbacks import CallbackSupportMixin
from .._nn.data import (fast_float_array, from_array, from_list, is_sequence_list,
                    per_step_targets, refuse_non_numbers)
from .. import _kernels
from .._nn.conv import ConvEngine, ConvLayout
from .._nn.engine import Engine, sample_rows
from .._io.model_files import ModelFileMixin
from .._nn.layout import LOSS_XENT, Layout
from .params import (INT_MAX, Interval, Options, Satisfies, is_int, store_params,
                     validate_params)
from .._nn.threads import effective_n_threads
from .fitting import FitPlan, run_fit
from .fitting import fit_lock as _fit_lock
from .._nn.training import LearningRate, TrainState, all_finite

_SOLVERS = ("sgd", "adam")
_CELLS = ("rnn", "gru", "lstm")
_NONLINEARITIES = ("tanh", "relu")
# the parameter names of each estimator class (sklearn's _get_param_names)
_PARAM_NAMES = {}
# the kernels compute sizes and offsets in C long: 32 bits on Windows
_C_LONG_BITS = 8 * ctypes.sizeof(ctypes.c_long)
_MAX_PARAMS = 2 ** (_C_LONG_BITS - 1) - 1


def _check_model_size(layout, dtype, what=None):
    """A network whose weights and optimizer state (4 copies) cannot fit in
    this machine's memory is a parameter error, not a failed allocation.
    what: how the message names the network (default: its hidden size,
    layers and input features)."""
    if what is None:
        what = (f"hidden_size={layout.hidden}, num_layers={layout.num_layers} and "
                f"{layout.n_features} input feature(s)")
    if layout.n_params > _MAX_PARAMS:
        raise ValueError(
            f"{what} make a network of {layout.n_params:,} "
            f"parameters; the kernels' sizes are C longs, {_C_LONG_BITS} bits on this "
            f"platform, which hold at most {_MAX_PARAMS:,}.")
    need = 4 * layout.n_params * np.dtype(dtype).itemsize
    try:
        have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):       # not POSIX
        return
    if need > have:
        raise ValueError(
            f"{what} make a network of {layout.n_params:,} "
            f"parameters: {need / 2**30:.1f} GiB with its optimizer state, more than this "
            f"machine's {have / 2**30:.1f} GiB of memory.")


class _BaseRNN(CallbackSupportMixin, ModelFileMixin, BaseEstimator):
    """Shared machinery of RNNRegressor and RNNClassifier."""

    _loss_code = None

    def __init__(
        self,
        *,
        cell="rnn",
        hidden_size=32,
        num_layers=1,
        nonlinearity="tanh",
        bidirectional=False,
        dropout=0.0,
        forget_bias=1.0,
        return_sequences=False,
        solver="adam",
        learning_rate="constant",
        learning_rate_init=1e-3,
        power_t=0.5,
        batch_size=32,
        max_iter=200,
        alpha=0.0,
        clip_norm=5.0,
        bptt_truncate=None,
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
        compute_dtype=None,
        conv=None,
    ):
        store_params(self, locals())

    # ------------------------------------------------------------------
    # validation

    def _validate_hyperparams(self):
        """Check every parameter (scikit-learn style: in fit, not __init__) and
        return the compute dtype.  partial_fit calls this per batch, so the
        last validated values are remembered and not checked again."""
        names = _PARAM_NAMES.get(type(self))
        if names is None:            # inspect.signature: ~150 us, so once per class
            names = _PARAM_NAMES.setdefault(type(self), tuple(self._get_param_names()))
        values = tuple(map(self.__getattribute__, names))
        seen = self.__dict__.get("_validated_params")
        if seen is not None and len(seen) == len(values) and (
            all(map(operator.is_, seen, values))          # the common case, in C
            or all(a is b or (type(a) is type(b) and a == b) for a, b in zip(seen, values))
        ):
            return np.dtype(self.dtype)
        dtype = self._validate_hyperparams_now()
        self.__dict__["_validated_params"] = values
        return dtype

    _parameter_constraints = {
        "cell": [Options(_CELLS)],
        "hidden_size": [Interval("int", 1, 2**20)],
        "num_layers": [Interval("int", 1, 1024)],
        "nonlinearity": [Options(_NONLINEARITIES)],
        "bidirectional": ["boolean"],
        "dropout": [Interval("real", 0, 1, closed="left")],
        "forget_bias": [Interval("real", -np.inf, np.inf)],
        "return_sequences": ["boolean"],
        "solver": [Options(_SOLVERS)],
        "learning_rate": [Options(LearningRate.KINDS)],
        "learning_rate_init": [Interval("real", 0, np.inf, closed="neither")],
        "power_t": [Interval("real", 0, np.inf, closed="left")],
        "batch_size": [Interval("int", 1, INT_MAX)],
        "max_iter": [Interval("int", 1, INT_MAX)],
        "alpha": [Interval("real", 0, np.inf, closed="left")],
        "clip_norm": [Interval("real", 0, np.inf, closed="neither"), None],
        "bptt_truncate": [Interval("int", 0, INT_MAX), None],
        "momentum": [Interval("real", 0, 1)],
        "nesterovs_momentum": ["boolean"],
        "beta_1": [Interval("real", 0, 1, closed="left")],
        "beta_2": [Interval("real", 0, 1, closed="left")],
        "epsilon": [Interval("real", 0, np.inf, closed="neither")],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval("real", 0, 1, closed="neither")],
        "n_iter_no_change": [Interval("int", 1, INT_MAX)],
        "tol": [Interval("real", 0, np.inf, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state", None],
        "verbose": [Interval("int", 0, INT_MAX)],
        "warm_start": ["boolean"],
        "n_jobs": [Satisfies(lambda v: is_int(v) and v != 0, "a non-zero int"), None],
        "dtype": ["dtype"],
        "compute_dtype": [Options({"bfloat16"}), None],
    }

    def _validate_params(self):
        """Every parameter against _parameter_constraints (crnn's
        declarations: scikit-learn's BaseEstimator._validate_params reads
        only its own constraint classes)."""
        validate_params(self)

    def _validate_hyperparams_now(self):
        validate_params(self)               # each parameter as declared
        self._check_param_rules()
        self._simd(check_cpu=False)         # the CPU is checked where kernels run
        return self._dtype()

    def _check_param_rules(self):
        """Rules beyond one parameter's declared values (none here; see
        _simd for compute_dtype with dtype)."""

    def _simd(self, check_cpu=True):
        """The kernels' SIMD level for compute_dtype: -1 (the CPU's best,
        float32 or float64 as dtype) or bfloat16 products.  Checked at every
        use: predict runs at the current compute_dtype, like n_jobs.
        check_cpu false: the parameter only (a model file made on another
        CPU still loads)."""
        cd = self.compute_dtype
        if cd is None:
            return -1
        if not (isinstance(cd, str) and cd == "bfloat16"):
            raise ValueError(
                f"The 'compute_dtype' parameter of {type(self).__name__} must be None or "
                f"'bfloat16'. Got {cd!r} instead.")
        if self._dtype() != np.float32:
            raise ValueError(
                f"compute_dtype='bfloat16' keeps float32 weights (mixed precision): it needs "
                f"dtype=numpy.float32, got {self.dtype!r}.")
        if check_cpu and not _kernels.bf16_supported():
            raise ValueError(_kernels.bf16_unsupported_message())
        return _kernels.SIMD_BF16_LEVEL

    def _dtype(self):
        try:
            dt = None if self.dtype is None else np.dtype(self.dtype)   # dtype(None) is f8
        except TypeError:
            dt = None
        if dt is None or dt not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(
                f"The 'dtype' parameter of {type(self).__name__} must be numpy.float32 "
                f"or numpy.float64. Got {self.dtype!r} instead."
            )
        return dt

    def _check_X(self, X, dtype, reset, n_features=None, name="X", layout=None):
        """X -> SeqData (one row per time step, see crnn/_nn/data.py).

        X: an array (n_samples, n_timesteps, n_features), a 2D array
        (n_samples, n_timesteps) of univariate series, or a list of
        sequences (n_timesteps_i, n_features) of any lengths.  Unless reset,
        the features per step must be n_features (default: n_features_in_).
        layout: the network X is for, when it is not the fitted one (fit's
        X_val: the network being trained; read by FramesMixin).
        """
        if is_sequence_list(X):
            data = from_list(X, dtype, name)
        else:
            fast = fast_float_array(X, dtype)
            A = fast if fast is not None else self._check_X_slow(X, dtype)
            if A.ndim == 2:
                A = A[:, :, None]
            elif A.ndim != 3:
                raise ValueError(
                    f"X must be a 3D array (n_samples, n_timesteps, n_features), a 2D "
                    f"array (n_samples, n_timesteps) of univariate series, or a list of "
                    f"sequences; got an array with {A.ndim} dimensions, shape {A.shape}."
                )
            if A.shape[1] == 0:
                raise ValueError(
                    f"X has 0 time steps (shape {A.shape}); at least 1 is required.")
            if A.shape[2] == 0:
                raise ValueError(f"X has 0 features per time step (shape {A.shape}).")
            data = from_array(A)
        expected = self.n_features_in_ if n_features is None and not reset else n_features
        if expected is not None and data.n_features != expected:
            raise ValueError(
                f"{name} has {data.n_features} features per time step, but "
                f"{type(self).__name__} {'is fitted' if name == 'X' else 'is fitting'} with "
                f"{expected}."
            )
        if data.rows.shape[0] >= 2**31:
            raise ValueError("X is too large for the kernels (2**31 or more time steps).")
        return data

    def _check_X_slow(self, X, dtype):
        """check_array for everything the fast path does not take; its errors
        (NaN, infinity, sparse, strings, ...) are the messages users see."""
        if sparse.issparse(X):
            raise TypeError(
                f"{type(self).__name__} does not accept sparse input: X must be a dense "
                "array of shape (n_samples, n_timesteps, n_features) or "
                "(n_samples, n_timesteps)."
            )
        refuse_non_numbers(X, "X")
        try:
            X = check_array(
                X, dtype=dtype, order="C", allow_nd=True, ensure_min_samples=1,
                ensure_min_features=1, ensure_all_finite=True, input_name="X",
            )
        except ValueError as exc:
            if "could not convert" in str(exc) or "Unable to convert" in str(exc):
                raise ValueError(
                    f"X must hold numbers; it could not be converted to {dtype}: {exc}"
                ) from exc
            raise
        return np.ascontiguousarray(X, dtype=dtype)

    # ------------------------------------------------------------------
    # model state

    def _make_layout(self, n_features, n_outputs, data=None):
        layout = Layout(
            self.cell, self.nonlinearity, int(self.num_layers), 2 if self.bidirectional else 1,
            int(self.hidden_size), int(n_features), int(n_outputs),
        )
        _check_model_size(layout, self._dtype())
        return layout

    def _engine(self, layout, seq=None):
        """The kernel interface for this layout, per-step outputs or not
        (None: as fitted) and the current training parameters (cached while
        they stay the same)."""
        seq = self._fitted_seq() if seq is None else bool(seq)
        simd = self._simd()
        key = (layout, seq, self._loss_code, self.bptt_truncate, float(self.dropout), simd)
        engine = self.__dict__.get("_engine_cache")
        if engine is None or engine.key != key:
            cls = ConvEngine if isinstance(layout, ConvLayout) else Engine
            engine = cls(layout, seq, self._loss_code, self.bptt_truncate, simd=simd,
                            dropout=self.dropout)
            self.__dict__["_engine_cache"] = engine
        return engine

    def _fitted_seq(self):
        """return_sequences as the model was fitted (parameters take effect
        at the next fit, as in scikit-learn; predict uses the fitted one)."""
        return self.__dict__.get("_return_sequences", bool(self.return_sequences))

    # ------------------------------------------------------------------
    # training

    def _fit(self, X, y, incremental, **kwargs):
        """fit / partial_fit: the shared runner (crnn._base.fitting.run_fit)."""
        return run_fit(self, X, y, incremental, **kwargs)

    def _plan_fit(self, ctx, X, y, *, classes=None, sample_weight=None, X_val=None,
                  y_val=None, sample_weight_val=None):
        """The data of a fit (see crnn._base.fitting): X and y checked against the
        fitted model when it continues, per-target weights, the network, and
        the held-out samples or X_val for early stopping."""
        dtype = ctx.dtype
        if ctx.continue_from_fitted and bool(self.return_sequences) != self._fitted_seq():
            raise ValueError(
                f"return_sequences={self.return_sequences} differs from the fitted model's "
                f"({self._fitted_seq()}); use fit with warm_start=False to train a new "
                "network.")
        data = self._check_X(X, dtype, reset=not ctx.continue_from_fitted)
        target, target_info = self._check_targets(data, y, dtype, ctx.incremental, classes,
                                                  ctx.continue_from_fitted)
        weights = self._target_weights(data, target, target_info, sample_weight,
                                       ctx.incremental)
        layout = self._make_layout(data.n_features, target_info["n_outputs_"], data)
        _, rng = ctx.start(layout)
        engine = self._engine(layout, self.return_sequences)
        if X_val is not None:
            pool = np.arange(data.n_samples, dtype=np.intp)
            validate = self._validation_set(engine, X_val, y_val, sample_weight_val, dtype,
                                            target_info, ctx.n_threads)
        else:
            pool, validate = self._holdout(engine, data, target, weights, rng, ctx.n_threads,
                                           ctx.early_stopping)

        def open_work():
            work = engine.trainer(data, target, min(self.batch_size, len(pool)),
                                  ctx.n_threads, dtype, weights, keep=ctx.incremental)
            if weights is not None and not np.any(work.sample_weights[pool] > 0):
                work.release()
                raise ValueError("The training samples' weights are all zero; at least "
                                 "one sample needs a non-zero weight.")
            return work

        return FitPlan(
            open_work, pool,
            dict(target_info, n_features_in_=data.n_features,
                 _return_sequences=bool(self.return_sequences)),
            validate=validate, shuffle=self.shuffle, engine=engine,
            callback_metadata={} if sample_weight is None else {"sample_weight": sample_weight})

    def _start_state(self, layout, dtype, incremental, continue_from_fitted):
        """(TrainState, rng) a fit starts from: a copy of the fitted model
        (partial_fit; warm_start with a new optimizer, as scikit-learn), whose
        network must be `layout`, or new weights."""
        if not continue_from_fitted:
            rng = check_random_state(self.random_state)
            return TrainState.new(layout, layout.init_params(rng, dtype,
                                                             float(self.forget_bias))), rng
        if layout != self._layout:
            raise ValueError(
                f"{'partial_fit' if incremental else 'fit with warm_start=True'} "
                f"continues the fitted network ({self._describe(self._layout)}), but the "
                f"current parameters and data need {self._describe(layout)}. Use fit "
                "with warm_start=False to start a new network."
            )
        # the fitted RandomState itself: a call that fails after drawing from it
        # (divergence) leaves it advanced.  A copy would avoid that but costs
        # 24-170 us (MT19937's state getter), 12-85% of a small partial_fit.
        rng = self._random_state if incremental else check_random_state(self.random_state)
        state = TrainState.of(self, dtype)
        if not incremental:
            state.reset_optimizer()
        return state, rng

    def _target_weights(self, data, target, target_info, sample_weight, incremental):
        """A float64 weight per target row (None: no weighting): sample_weight
        (per sample, or per step with return_sequences) times the class
        weights."""
        sw = self._check_sample_weight(data, sample_weight, bool(self.return_sequences))
        cw = self._class_weight_of(target, target_info, incremental)
        if cw is None:
            return sw
        return cw if sw is None else sw * cw

    def _class_weight_of(self, target, target_info, incremental):
        """Class weights per target row (classifiers; None here)."""
        return None

    def _check_sample_weight(self, data, sample_weight, seq, name="sample_weight"):
        """sample_weight -> float64 weights, one per target row (None: none).

        Many-to-one: (n_samples,).  With return_sequences: (n_samples,) (each
        step of a sample weighs its sample's weight) or per step, shaped like
        the targets ((n_samples, n_timesteps) or a list of (n_timesteps_i,)
        arrays).  Weights must be finite and non-negative, not all zero."""
        if sample_weight is None:
            return None
        N = data.n_samples
        per_step = False
        if seq and (isinstance(sample_weight, (list, tuple)) and data.ragged_input
                    or np.ndim(sample_weight) == 2):
            w, _ = per_step_targets(data, sample_weight, name=name)
            per_step = True
        else:
            try:
                w = np.asarray(sample_weight, dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} must hold numbers: {exc}") from exc
            if w.ndim == 0:
                w = np.full(N, float(w))
            if w.ndim != 1 or w.shape[0] != N:
                raise ValueError(
                    f"{name}.shape == {w.shape}, expected ({N},)"
                    + (" or the shape of the per-step targets" if seq else "") + ".")
        try:
            w = np.asarray(w, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must hold numbers: {exc}") from exc
        if not np.all(np.isfinite(w)):
            raise ValueError(f"{name} contains NaN or infinity.")
        if np.any(w < 0):
            raise ValueError(f"Negative values in data passed to {name}.")
        if not np.any(w > 0):
            raise ValueError(f"{name} is all zero: sample weights must contain at least one "
                             "non-zero number.")
        if seq and not per_step:
            w = np.repeat(w, data.lens)
        return np.ascontiguousarray(w)

    def _holdout(self, engine, data, target, weights, rng, n_threads, early_stopping):
        """(samples to train on, validation function or None).  With early
        stopping, validation_fraction of the samples is held out (stratified
        for many-to-one classification) and scored after each epoch."""
        if not early_stopping:
            return np.arange(data.n_samples, dtype=np.intp), None
        seq = bool(self.return_sequences)
        stratify = target if (self._loss_code == LOSS_XENT and not seq) else None
        pool, val = train_test_split(np.arange(data.n_samples), random_state=rng,
                                     test_size=self.validation_fraction, stratify=stratify)
        if len(val) < 2:
            raise ValueError(
                "The validation set is too small. Increase 'validation_fraction' or the "
                "size of your dataset."
            )
        val = np.sort(val).astype(np.intp)
        val_rows = sample_rows(data, val) if seq else val
        val_w = None if weights is None else weights[val_rows]
        if val_w is not None and not np.any(val_w > 0):
            raise ValueError("The validation split's sample weights are all zero; give "
                             "some of its samples a non-zero weight, or pass X_val.")

        def validate(theta):
            raw = engine.predict(theta, data, n_threads, idx=val)
            return self._score_and_loss(raw[val_rows], target[val_rows], val_w)

        return np.asarray(pool, dtype=np.intp), validate

    def _validation_set(self, engine, X_val, y_val, sample_weight_val, dtype, target_info,
                        n_threads):
        """The validation function of a given validation set (fit's X_val)."""
        data = self._check_X(X_val, dtype, reset=False, n_features=engine.layout.n_features,
                             layout=engine.layout,
                             name="X_val")
        target, info = self._check_targets(data, y_val, dtype, False,
                                           target_info.get("classes_"), False)
        if info["n_outputs_"] != target_info["n_outputs_"] or \
                info.get("_y_ndim") != target_info.get("_y_ndim"):
            raise ValueError(f"y_val has {info['n_outputs_']} output(s) of a different shape "
                             f"than y's {target_info['n_outputs_']}.")
        weights = self._check_sample_weight(data, sample_weight_val, engine.seq,
                                            "sample_weight_val")

        def validate(theta):
            return self._score_and_loss(engine.predict(theta, data, n_threads), target,
                                        weights)

        return validate

    @staticmethod
    def _describe(layout):
        return (
            f"{layout.num_layers} layer(s) of {layout.hidden} "
            f"{layout.nonlinearity if layout.cell == 'rnn' else layout.cell.upper()} units"
            f"{' per direction, bidirectional' if layout.ndir == 2 else ''}, "
            f"{layout.n_features} input feature(s), {layout.n_outputs} output(s)"
        )

    # ------------------------------------------------------------------
    # inference

    def _forward(self, X, initial_state=None, return_state=False):
        """Validated X -> (raw head outputs, SeqData, final states or None)."""
        check_is_fitted(self, "_theta")
        # one commit's weights: _wpack records the theta it was packed from,
        # so a fit committing from another thread between these reads is
        # seen (and the packing redone) instead of mixing two models
        lay, theta = self._layout, self._theta
        owner, wpack = self.__dict__.get("_wpack", (None, None))
        if owner is not theta:
            wpack = None
        data = self._check_X(X, theta.dtype, reset=False)
        shape = (lay.num_layers * lay.ndir, data.n_samples, lay.hidden)
        h0, c0 = self._check_state(initial_state, shape, "initial_state")
        hN = cN = None
        if return_state:
            hN = np.empty(shape, dtype=theta.dtype)
            cN = np.empty(shape, dtype=theta.dtype) if lay.cell == "lstm" else None
        raw = self._engine(lay).predict(theta, data, effective_n_threads(self.n_jobs), wpack,
                                        (h0, c0, hN, cN))
        if not all_finite(raw):
            warnings.warn(
                "The network's outputs contain NaN or infinity (inputs or states far outside "
                "the training range overflow float precision).", RuntimeWarning, stacklevel=3)
        if not return_state:
            return raw, data, None
        return raw, data, ((hN, cN) if lay.cell == "lstm" else hN)

    def _check_state(self, state, shape, name):
        """A user's state -> (h, c) arrays of the model's dtype (None: zeros).

        The format is PyTorch's: h of shape (num_layers * num_directions,
        n_samples, hidden_size), and for the LSTM a tuple (h, c)."""
        if state is None:
            return None, None
        lstm = self._layout.cell == "lstm"
        if lstm:
            if not (isinstance(state, (tuple, list)) and len(state) == 2):
                raise ValueError(f"{name} of an LSTM must be a tuple (h, c) of arrays of "
                                 f"shape {shape}.")
            parts = list(state)
        else:
            parts = [state]
        out = []
        for part, what in zip(parts, ("h", "c")):
            if np.iscomplexobj(part):
                raise ValueError(f"Complex data not supported: {name} ({what}) is complex.")
            try:
                arr = np.ascontiguousarray(part, dtype=self._theta.dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{name} ({what}) is not numeric: {exc}") from exc
            if arr.shape != shape:
                raise ValueError(f"{name} ({what}) has shape {arr.shape}; expected {shape} "
                                 "(num_layers * num_directions, n_samples, hidden_size).")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} ({what}) contains NaN or infinity.")
            out.append(arr)
        return out[0], (out[1] if lstm else None)

    def __getstate__(self):
        state = dict(super().__getstate__())    # may be the live __dict__ itself
        for name in ("_wpack", "_engine_cache", "_validated_params"):
            state.pop(name, None)       # caches derived from the rest; rebuilt on use
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        if "_theta" in self.__dict__:
            self._derived_attributes(self.__dict__)

    def _state_dict_layout(self, sd, image_shape):
        """(None, sd): networks without a front-end (see FramesMixin)."""
        if image_shape is not None:
            raise ValueError("image_shape is for models with a convolutional front-end "
                             "(conv).")
        return None, sd

    # ------------------------------------------------------------------
    # PyTorch interchange

    def state_dict(self):
        """The weights, under PyTorch's names and shapes.

        Returns
        -------
        state_dict : dict of str to ndarray
            Copies of the weights, as the state_dict of a PyTorch module with
            submodules ``rnn = nn.RNN(n_features, hidden_size, num_layers,
            nonlinearity=..., batch_first=True, bidirectional=...)``
            (nn.GRU / nn.LSTM for those cells) and ``head =
            nn.Linear(ndir * hidden_size, n_outputs)``; with a front-end
            (``conv``), also ``conv``, an ``nn.ModuleList`` of ``nn.Conv2d``
            (weights (F, C, KH, KW)), each followed by ReLU and, where the
            layer pools, ``max_pool2d``, whose flattened (H, W, C) features
            are the network's input.
        """
        check_is_fitted(self, "_theta")
        lay, theta = self._layout, self._theta
        if isinstance(lay, ConvLayout):
            return lay.torch_state_dict(theta)
        return {k: v.copy() for k, v in lay.views(theta).items()}

    def load_state_dict(self, state_dict, **kwargs):
        """Set the weights from a PyTorch-style state dict.

        The estimator's hyperparameters (cell, hidden_size, num_layers,
        nonlinearity, bidirectional) must match the weights; n_features and
        n_outputs are read from them.  The optimizer starts afresh, so
        partial_fit continues training from these weights.

        Parameters
        ----------
        state_dict : dict of str to array
            As state_dict() returns it (numpy arrays, or CPU torch tensors).
        **kwargs
            classes (RNNClassifier only): the label of each row of
            head.weight.

        Returns
        -------
        self : estimator
            The estimator, ready for predict and partial_fit.
        """
        self._validate_hyperparams()
        sd = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v)
              for k, v in dict(state_dict).items()}
        image_shape = kwargs.pop("image_shape", None)
        conv_layout, sd = self._state_dict_layout(sd, image_shape)
        for key in ("rnn.weight_ih_l0", "head.weight"):
            if key not in sd:
                raise ValueError(f"state_dict has no '{key}' entry.")
        w_ih = np.asarray(sd["rnn.weight_ih_l0"])
        w_out = np.asarray(sd["head.weight"])
        if w_ih.ndim != 2 or w_out.ndim != 2:
            raise ValueError("rnn.weight_ih_l0 and head.weight must be 2D arrays.")
        layout = conv_layout or self._make_layout(w_ih.shape[1], w_out.shape[0])
        theta = self._theta_from_state_dict(sd, layout)
        attrs = TrainState.new(layout, theta).attributes(early_stopping=False)
        attrs.update(self._target_info_from_outputs(layout.n_outputs, **kwargs),
                     n_features_in_=self._layout_io_shape(layout)[0], best_loss_=None,
                     _random_state=check_random_state(self.random_state),
                     _wpack=(theta, self._engine(layout, self.return_sequences)
                             .packed_weights(theta)),
                     _return_sequences=bool(self.return_sequences))
        self.__dict__.update(attrs)
        return self

    def _theta_from_state_dict(self, state_dict, layout):
        """The parameter vector of `layout` from a state dict (every tensor
        checked: names, shapes, finite values that fit the dtype)."""
        dtype = self._dtype()
        sd = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v)
              for k, v in dict(state_dict).items()}
        expected = {name: shape for name, _, shape, _ in layout.tensors()}
        missing = sorted(set(expected) - set(sd))
        unexpected = sorted(set(sd) - set(expected))
        if missing or unexpected:
            raise ValueError(
                f"state_dict does not match {type(self).__name__}({self._describe(layout)}): "
                f"missing keys {missing}, unexpected keys {unexpected}."
            )
        theta = np.empty(layout.n_params, dtype=dtype)
        views = layout.views(theta)
        for name, shape in expected.items():
            if np.iscomplexobj(sd[name]):
                raise ValueError(f"Complex data not supported: state_dict['{name}'] is complex.")
            try:
                arr = np.asarray(sd[name], dtype=np.float64)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"state_dict['{name}'] is not numeric: {exc}") from exc
            if arr.shape != shape:
                raise ValueError(
                    f"state_dict['{name}'] has shape {arr.shape}; {type(self).__name__} with "
                    f"these hyperparameters expects {shape}."
                )
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"state_dict['{name}'] contains NaN or infinity.")
            with np.errstate(over="ignore"):
                views[name][...] = arr
            if not np.all(np.isfinite(views[name])):
                raise ValueError(
                    f"state_dict['{name}'] has values beyond the range of {dtype.name} "
                    f"(largest {np.finfo(dtype).max:.3g}); they would become infinite.")
        return theta

    # ------------------------------------------------------------------
    # model files (save and load: ModelFileMixin)

    def _save_guard(self):
        return _fit_lock(self)      # never a half-committed fit in a file

    _FITTED_ATTRIBUTES = frozenset({
        "_layout", "_theta", "_opt_m", "_opt_v", "_opt_step", "_learning_rate",
        "_no_improvement_count", "_random_state", "_return_sequences", "best_loss_",
        "best_validation_score_", "learning_rate_curve_", "loss_", "loss_curve_",
        "n_features_in_", "n_iter_", "n_outputs_", "t_", "validation_loss_curve_",
        "validation_scores_"})

    def _restore_fitted(self, attrs):
        """Set the fitted attributes read from a model file, after checking
        that they describe one consistent network (ValueError otherwise;
        nothing is set then)."""
        names = self._FITTED_ATTRIBUTES
        if set(attrs) != names:
            raise ValueError(f"fitted attributes unknown: {sorted(set(attrs) - names)}, "
                             f"missing: {sorted(names - set(attrs))}.")
        layout = attrs["_layout"]
        if not isinstance(layout, self._layout_class):
            raise ValueError("_layout is not a network description.")

        def count(name, low=0):
            v = attrs[name]
            if type(v) is not int or not low <= v < 2**53:
                raise ValueError(f"{name} is {v!r}; expected an integer in [{low}, 2**53).")

        # what training can produce: finite losses and rates (a rate of 0 at
        # the end of a cosine schedule), the best loss +inf before any
        # epoch and the best score -inf, scores never NaN
        def ok(x, kind):
            return (np.isfinite(x) or (kind == "+inf" and x == np.inf)
                    or (kind == "-inf" and x == -np.inf) or (kind == "inf" and np.isinf(x)))

        def real(name, kind="finite", low=None):
            v = attrs[name]
            if not (v is None or (type(v) is float and ok(v, kind)
                                  and (low is None or v >= low))):
                raise ValueError(f"{name} is {v!r}; expected None or a "
                                 f"{'non-negative ' if low is not None else ''}float "
                                 f"({kind}).")

        def reals(name, kind="finite", low=None):
            v = attrs[name]
            if type(v) is not list or any(type(x) is not float or not ok(x, kind)
                                          or (low is not None and x < low) for x in v):
                raise ValueError(f"{name} is not a list of {kind} floats"
                                 f"{' >= 0' if low is not None else ''}.")

        for name in ("_opt_step", "_no_improvement_count", "n_iter_", "t_"):
            count(name)
        for name in ("n_features_in_", "n_outputs_"):
            count(name, 1)
        real("loss_")
        real("best_loss_", "+inf")
        real("best_validation_score_", "-inf")
        real("_learning_rate", low=0.0)
        reals("loss_curve_")
        reals("learning_rate_curve_", low=0.0)
        reals("validation_scores_", "inf")
        reals("validation_loss_curve_", "inf")
        if self._layout_io_shape(layout) != (attrs["n_features_in_"], attrs["n_outputs_"]):
            raise ValueError(f"the network ({self._describe(layout)}) does not match "
                             f"n_features_in_={attrs['n_features_in_']} and "
                             f"n_outputs_={attrs['n_outputs_']}.")
        theta = attrs["_theta"]
        if not (isinstance(theta, np.ndarray) and theta.dtype in (np.float32, np.float64)
                and theta.shape == (layout.n_params,)):
            raise ValueError(f"the weights are not a float32/float64 vector of the "
                             f"{layout.n_params} parameters of {self._describe(layout)}.")
        for name in ("_theta", "_opt_m", "_opt_v"):
            arr = attrs[name]
            if not (isinstance(arr, np.ndarray) and arr.dtype == theta.dtype
                    and arr.shape == theta.shape):
                raise ValueError(f"{name} does not match the weights' shape and dtype.")
            if not all_finite(arr):
                raise ValueError(f"{name} contains NaN or infinity.")
        # training never commits weights near the float range (their forward
        # pass overflows: crnn._nn.training._may_overflow), nor a negative
        # second moment
        with np.errstate(all="ignore"):
            if not float(np.max(np.abs(theta), initial=0.0)) < np.sqrt(np.finfo(theta.dtype).max):
                raise ValueError("_theta holds weights beyond the square root of the float "
                                 "range, which training never commits (its predictions "
                                 "would overflow).")
        if np.any(attrs["_opt_v"] < 0):
            raise ValueError("_opt_v (the optimizer's second moments) holds negative values.")
        if type(attrs["_return_sequences"]) is not bool:
            raise ValueError("_return_sequences is not a bool.")
        if not isinstance(attrs["_random_state"], np.random.RandomState):
            raise ValueError("_random_state is not a numpy RandomState.")
        self._check_fitted_targets(attrs)
        attrs = dict(attrs)
        for name in ("_theta", "_opt_m", "_opt_v"):
            attrs[name] = np.require(attrs[name], requirements=["C", "A", "W"])
        self._derived_attributes(attrs)
        self.__dict__.update(attrs)

    # what _restore_fitted checks the network against (the translator has its own)
    _layout_class = Layout

    @staticmethod
    def _layout_io_shape(layout):
        """(n_features_in_, n_outputs_) of a network (under a front-end:
        its frames' channels)."""
        if isinstance(layout, ConvLayout):
            return layout.image[2], layout.n_outputs
        return layout.n_features, layout.n_outputs

    def _derived_attributes(self, attrs):
        """Add the caches derived from restored fitted attributes (the
        packed weights).  A model saved with compute_dtype="bfloat16" still
        loads on a CPU without it: its predict then says why it cannot run,
        and runs after set_params(compute_dtype=None)."""
        try:
            self._simd()
        except ValueError:
            return
        engine = self._engine(attrs["_layout"], attrs.get("_return_sequences"))
        attrs["_wpack"] = (attrs["_theta"], engine.packed_weights(attrs["_theta"]))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
