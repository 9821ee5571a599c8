"""Sequence classification and regression: RNNRegressor and RNNClassifier,
the network estimators whose input is one observation per step."""
import numbers
import warnings

import numpy as np
from scipy import sparse
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.exceptions import DataConversionWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import check_array, check_is_fitted

from .._base.callbacks import with_callbacks
from .._base.docstrings import document_parameters
from .._base.estimator import _BaseRNN
from .._base.params import Options, Satisfies, store_params
from .._nn.data import per_step_targets
from .._nn.layout import LOSS_MSE, LOSS_XENT
from .frames import CONV_CONSTRAINT, FramesMixin


def _class_weight_dict(cw):
    return isinstance(cw, dict) and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) and np.isfinite(v) and v >= 0
        for v in cw.values())


def _softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


class _StepperMixin:
    """stepper() of the estimators whose input is one observation per step."""

    def stepper(self, n_streams=1):
        """A Stepper that runs this network one time step at a time, for
        online use.

        It holds a copy of the current weights; the estimator is not
        touched by its use.

        Parameters
        ----------
        n_streams : int, default=1
            Independent streams stepped together (each with its own state).

        Returns
        -------
        stepper : crnn.Stepper
            ``stepper.step(x, state)`` returns (prediction, new_state).
        """
        from .._nn.stepper import Stepper
        check_is_fitted(self, "_theta")
        return Stepper(self, n_streams)


# ---------------------------------------------------------------------------
# the estimators' documentation (shared parameters written once)

_NETWORK_DOC = """\
    Elman cell: h_t = f(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), f = tanh or
    relu; GRU and LSTM cells: PyTorch's nn.GRU / nn.LSTM equations and gate
    order.  h_{-1} = 0 (c_{-1} = 0), stacked ``num_layers`` deep (layer k+1
    reads the states of layer k), and a linear head o = W_out h + b_out read
    at the last step (many-to-one) or at every step
    (``return_sequences=True``).
"""

_ATTRIBUTES_DOC = """\
    n_features_in_ : int
        Features per time step.
    n_outputs_ : int
        Outputs of the head (classes for the classifier).
    loss_ : float
        Training loss of the last epoch (weighted mean, penalty included).
    loss_curve_ : list of float
        Training loss per epoch.
    learning_rate_curve_ : list of float
        Learning rate of each epoch.
    best_loss_ : float or None
        Lowest training loss (None with early stopping).
    validation_scores_ : list of float
        Validation score per epoch (early stopping only).
    validation_loss_curve_ : list of float
        Loss on the validation set per epoch (early stopping only).
    best_validation_score_ : float or None
        Best validation score (None without early stopping).
    n_iter_ : int
        Epochs run.
    t_ : int
        Training samples seen.
"""

_REGRESSOR_DOC = f"""Recurrent network (Elman, GRU or LSTM cells) for regression,
    trained by backpropagation through time.

{_NETWORK_DOC}
    The loss is the mean squared error, averaged over samples, outputs and
    (with ``return_sequences``) steps, i.e. ``torch.nn.MSELoss()`` (a
    weighted mean with sample weights); plus the L2 penalty (``alpha``).
    With ``return_sequences=True`` y holds a target per step: (n_samples,
    n_timesteps[, n_outputs]), or a list of (n_timesteps_i[, n_outputs])
    arrays for a list of sequences.

    Parameters
    ----------

    Attributes
    ----------
{_ATTRIBUTES_DOC}
    See Also
    --------
    RNNClassifier : the same network for classification.

    Examples
    --------
    >>> import numpy as np
    >>> from crnn import RNNRegressor
    >>> X = np.random.default_rng(0).normal(size=(64, 10, 3))
    >>> y = X[:, :, 0].sum(axis=1)
    >>> reg = RNNRegressor(cell="gru", hidden_size=16, max_iter=5, random_state=0).fit(X, y)
    >>> reg.predict(X[:2]).shape
    (2,)
"""

_CLASSIFIER_DOC = f"""Recurrent network (Elman, GRU or LSTM cells) for classification,
    trained by backpropagation through time.

{_NETWORK_DOC}
    The head gives one logit per class, and the loss is the mean softmax
    cross-entropy over samples (and steps with ``return_sequences``), i.e.
    ``torch.nn.CrossEntropyLoss()``, also for two classes (a weighted mean
    with sample or class weights); plus the L2 penalty (``alpha``).
    predict_proba is the softmax of the logits.  With
    ``return_sequences=True`` y holds a label per step, shape (n_samples,
    n_timesteps), and every prediction is per step (e.g. next-token
    prediction, ``o_t = softmax(V s_t)``).  The validation score is the
    accuracy.

    Parameters
    ----------
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, multiplying sample_weight, as
        LogisticRegression's: a dict {{label: weight}} (missing labels weigh
        1), or "balanced": n_samples / (n_classes * count of the class) over
        the training labels (not available in partial_fit).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The class labels, sorted (the order of predict_proba's columns).
{_ATTRIBUTES_DOC}
    See Also
    --------
    RNNRegressor : the same network for regression.

    Examples
    --------
    >>> import numpy as np
    >>> from crnn import RNNClassifier
    >>> X = np.random.default_rng(0).normal(size=(64, 10, 3))
    >>> y = (X[:, -1, 0] > 0).astype(int)
    >>> clf = RNNClassifier(cell="lstm", hidden_size=8, max_iter=5, random_state=0).fit(X, y)
    >>> clf.predict_proba(X[:2]).shape
    (2, 2)
"""


@document_parameters
class RNNRegressor(RegressorMixin, _StepperMixin, FramesMixin, _BaseRNN):
    __doc__ = _REGRESSOR_DOC

    _parameter_constraints = _BaseRNN._parameter_constraints | CONV_CONSTRAINT

    _loss_code = LOSS_MSE

    def _check_targets(self, data, y, dtype, incremental, classes, continue_from_fitted):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        if np.isscalar(y) or (isinstance(y, np.ndarray) and y.ndim == 0):
            raise ValueError(f"y must be an array of targets, one per sample (or step); got "
                             f"the scalar {y!r}.")
        if sparse.issparse(y):
            raise TypeError("y must be a dense array.")
        N = data.n_samples
        if self.return_sequences:
            y, step_ndim = per_step_targets(data, y)
            y_ndim = 2 + step_ndim
        else:
            y_ndim = None
        if type(y) is np.ndarray and y.dtype.kind == "f" and \
                np.isfinite(np.add.reduce(y, axis=None)):
            y = y.astype(dtype, copy=False)
        else:
            y = check_array(y, dtype=dtype, ensure_2d=False, allow_nd=True,
                            ensure_all_finite=True, ensure_min_samples=0, input_name="y")
        if not self.return_sequences:
            if y.shape[0] != N:
                raise ValueError(
                    f"X and y have different numbers of samples: {N} and {y.shape[0]}."
                )
            if y.ndim not in (1, 2):
                raise ValueError(
                    "y must have shape (n_samples,) or (n_samples, n_outputs); got shape "
                    f"{y.shape} (use return_sequences=True for per-step targets)."
                )
            y_ndim = y.ndim
        y2 = y[:, None] if y.ndim == 1 else y
        if y2.shape[1] == 0:
            raise ValueError("y has 0 outputs.")
        if continue_from_fitted and (y2.shape[1] != self.n_outputs_ or y_ndim != self._y_ndim):
            raise ValueError(
                f"y has shape {y.shape}, but the fitted model predicts {self.n_outputs_} "
                "output(s) of a different shape."
            )
        info = {"n_outputs_": y2.shape[1], "_y_ndim": y_ndim}
        return np.ascontiguousarray(y2, dtype=dtype), info

    _FITTED_ATTRIBUTES = _BaseRNN._FITTED_ATTRIBUTES | {"_y_ndim"}

    def _check_fitted_targets(self, attrs):
        n, seq = attrs["n_outputs_"], attrs["_return_sequences"]
        allowed = ({2, 3} if n == 1 else {3}) if seq else ({1, 2} if n == 1 else {2})
        if attrs["_y_ndim"] not in allowed:
            raise ValueError(f"_y_ndim={attrs['_y_ndim']!r} does not fit {n} output(s).")

    def _target_info_from_outputs(self, n_outputs):
        if self.return_sequences:
            return {"n_outputs_": n_outputs, "_y_ndim": 2 if n_outputs == 1 else 3}
        return {"n_outputs_": n_outputs, "_y_ndim": 1 if n_outputs == 1 else 2}

    def _output_rows(self, raw):
        """Head outputs -> predictions, one per row (float64)."""
        raw = raw.astype(np.float64)
        one = self._y_ndim == (2 if self._fitted_seq() else 1)
        return raw[:, 0] if one else raw

    def _shape_output(self, raw, data):
        rows = self._output_rows(raw)
        return data.split_rows(rows) if self._fitted_seq() else rows

    def _score_and_loss(self, raw, target, weights=None):
        raw = raw.astype(np.float64)
        target = target.astype(np.float64)
        loss = float(np.average(np.mean((raw - target) ** 2, axis=1), weights=weights))
        return float(r2_score(target, raw, sample_weight=weights)), loss

    @with_callbacks
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Train the network from scratch (or, with warm_start, from its
        current weights) for up to max_iter epochs.

        Parameters
        ----------
        X : array of shape (n_samples, n_timesteps, n_features) or (n_samples, n_timesteps), \
or list of arrays of shape (n_timesteps_i, n_features) or (n_timesteps_i,)
            Sequences; a 2D array is a batch of univariate series.
        y : array of shape (n_samples,) or (n_samples, n_outputs)
            Targets; with return_sequences, per step: (n_samples,
            n_timesteps[, n_outputs]), or a list of (n_timesteps_i[,
            n_outputs]) arrays for a list X.
        sample_weight : array of shape (n_samples,), default=None
            Weight of each sample in the loss (a weighted mean); an integer
            weight counts like repeating the sample.  With return_sequences
            it may also give a weight per step, shaped like y without its
            output axis.
        X_val, y_val : validation set, default=None
            Used instead of a random split of X for early stopping
            (early_stopping must be True), in X's and y's formats.
        sample_weight_val : array of shape (n_val_samples,), default=None
            Weights of the validation samples (or steps).

        Returns
        -------
        self : RNNRegressor
            The fitted estimator.
        """
        return self._fit(X, y, False, sample_weight=sample_weight, X_val=X_val, y_val=y_val,
                         sample_weight_val=sample_weight_val)

    @with_callbacks
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing the weights, the optimizer state
        and the learning-rate schedule of the previous calls.

        Parameters
        ----------
        X : array or list of arrays
            As in fit.
        y : array or list of arrays
            As in fit.
        sample_weight : array of shape (n_samples,), default=None
            As in fit.

        Returns
        -------
        self : RNNRegressor
            The updated estimator.
        """
        return self._fit(X, y, True, sample_weight=sample_weight)

    def predict(self, X, initial_state=None, return_state=False):
        """Predict with the network.

        Parameters
        ----------
        X : array of shape (n_samples, n_timesteps, n_features) or (n_samples, n_timesteps), \
or list of arrays
            Sequences, as in fit; a many-to-one model takes any length.
        initial_state : array of shape (num_layers * num_directions, n_samples, hidden_size) \
or tuple (h_0, c_0), default=None
            The recurrent states to start from instead of zeros, as
            PyTorch's h_0 (and c_0 for the LSTM).
        return_state : bool, default=False
            Also return the states after each sequence's last step, so a long
            series can be fed in chunks with the same result as in one go.

        Returns
        -------
        y_pred : ndarray (float64) or list of ndarrays
            Shaped like the training y: (n_samples,) or (n_samples,
            n_outputs); per step with return_sequences (a list for a list X).
        state : ndarray or tuple (h_n, c_n)
            Only with return_state: the final states, in initial_state's
            layout.
        """
        raw, data, state = self._forward(X, initial_state, return_state)
        pred = self._shape_output(raw, data)
        return (pred, state) if return_state else pred

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R^2 of the predictions.

        With return_sequences every step counts as a sample (uniform average
        over outputs).

        Parameters
        ----------
        X : array or list of arrays
            Sequences, as in predict.
        y : array or list of arrays
            True values, shaped as in fit.
        sample_weight : array of shape (n_samples,), default=None
            Sample weights (or, with return_sequences, step weights shaped
            like y without its output axis).

        Returns
        -------
        score : float
            R^2 of ``self.predict(X)`` against y.
        """
        check_is_fitted(self, "_theta")
        if not self._fitted_seq():
            return super().score(X, y, sample_weight=sample_weight)
        raw, data, _ = self._forward(X)
        pred = self._output_rows(raw)
        y, _ = per_step_targets(data, y)
        y = np.asarray(y, dtype=np.float64)
        if y.shape != pred.shape:
            raise ValueError(f"y has shape {y.shape}, predictions have shape {pred.shape}.")
        sw = self._check_sample_weight(data, sample_weight, True)
        return float(r2_score(y, pred, sample_weight=sw))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


@document_parameters
class RNNClassifier(ClassifierMixin, _StepperMixin, FramesMixin, _BaseRNN):
    __doc__ = _CLASSIFIER_DOC

    _parameter_constraints = _BaseRNN._parameter_constraints | CONV_CONSTRAINT | {
        "class_weight": [None, Options({"balanced"}), Satisfies(
            _class_weight_dict, "a dict of non-negative finite weights")],
    }

    _loss_code = LOSS_XENT

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
        class_weight=None,
        conv=None,
    ):
        store_params(self, locals())

    def _check_targets(self, data, y, dtype, incremental, classes, continue_from_fitted):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y is None."
            )
        if np.isscalar(y) or (isinstance(y, np.ndarray) and y.ndim == 0):
            raise ValueError(f"y must be an array of targets, one per sample (or step); got "
                             f"the scalar {y!r}.")
        if sparse.issparse(y):
            raise TypeError("y must be a dense array of class labels.")
        N = data.n_samples
        if self.return_sequences:
            y, step_ndim = per_step_targets(data, y)
            if step_ndim != 0:
                raise ValueError(
                    "With return_sequences=True, y must hold one label per step: (n_samples, "
                    "n_timesteps), or a list of (n_timesteps_i,) arrays for a list of "
                    "sequences."
                )
        else:
            y = np.asarray(y)
            if y.ndim == 2 and y.shape[1] == 1:
                warnings.warn(
                    "A column-vector y was passed when a 1d array was expected. Please change "
                    "the shape of y to (n_samples,), for example using ravel().",
                    DataConversionWarning, stacklevel=3,
                )
                y = y[:, 0]
            if y.ndim != 1:
                raise ValueError(
                    f"y must be a 1d array of class labels, got shape {y.shape} (use "
                    "return_sequences=True for per-step labels)."
                )
            if y.shape[0] != N:
                raise ValueError(
                    f"X and y have different numbers of samples: {N} and {y.shape[0]}."
                )
        flat = y.reshape(-1)
        if flat.dtype.kind == "O":
            if any(v is None for v in flat) or any(isinstance(v, float) and np.isnan(v)
                                                   for v in flat):
                raise ValueError("y contains missing values (None or NaN).")
        elif flat.dtype.kind in "fc" and not np.all(np.isfinite(flat)):
            raise ValueError("Input y contains NaN or infinity.")
        y_type = type_of_target(flat, input_name="y")
        if y_type not in ("binary", "multiclass"):
            raise ValueError(f"Unknown label type: {y_type}. RNNClassifier needs class labels.")

        if incremental and not continue_from_fitted:
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None:
            classes = np.unique(np.asarray(classes))
            if continue_from_fitted and not np.array_equal(classes, self.classes_):
                raise ValueError(
                    f"`classes={classes!r}` is not the same as on the first call to "
                    f"partial_fit, which was {self.classes_!r}."
                )
        elif continue_from_fitted:
            classes = self.classes_
        else:
            classes = np.unique(flat)
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in the data, but "
                f"the data contain only one class: {classes[0]!r}."
            )
        codes = np.searchsorted(classes, flat)
        codes = np.clip(codes, 0, len(classes) - 1)
        if not np.array_equal(classes[codes], flat):
            unknown = np.setdiff1d(flat, classes)
            raise ValueError(f"y contains labels not in classes: {unknown!r}.")
        return np.ascontiguousarray(codes, dtype=np.int32), {"n_outputs_": len(classes),
                                                              "classes_": classes}

    _FITTED_ATTRIBUTES = _BaseRNN._FITTED_ATTRIBUTES | {"classes_"}

    def _check_fitted_targets(self, attrs):
        classes = attrs["classes_"]
        if not isinstance(classes, np.ndarray):
            raise ValueError("classes_ is not an array.")
        # labels as fit makes them: no NaN (fit refuses it in y), nothing
        # complex, nothing but str, int, float and bool
        if classes.dtype.kind == "c" or classes.dtype.kind not in "biufUSO?":
            raise ValueError(f"classes_ has dtype {classes.dtype}.")
        items = classes.tolist() if classes.ndim == 1 else []
        if any(not isinstance(c, (str, int, float, bool)) or (isinstance(c, float) and c != c)
               for c in items):
            raise ValueError("classes_ holds NaN or values that are not str, int, float or "
                             "bool labels.")
        try:
            self._target_info_from_outputs(attrs["n_outputs_"], classes)
        except TypeError as exc:            # labels that do not compare
            raise ValueError(f"classes_ cannot be sorted ({exc}).") from exc

    def _target_info_from_outputs(self, n_outputs, classes=None):
        if classes is None:
            classes = np.arange(n_outputs)
        classes = np.asarray(classes)
        if classes.ndim != 1 or len(classes) != n_outputs or len(np.unique(classes)) != n_outputs:
            raise ValueError(
                f"classes must be {n_outputs} distinct labels, one per row of head.weight."
            )
        order = np.argsort(classes, kind="stable")
        if not np.array_equal(order, np.arange(n_outputs)):
            raise ValueError("classes must be sorted (the order of head.weight's rows).")
        return {"n_outputs_": n_outputs, "classes_": classes}

    def load_state_dict(self, state_dict, classes=None, image_shape=None):
        """Set the weights from a PyTorch-style state dict.

        Parameters
        ----------
        state_dict : dict of str to array
            As state_dict() returns it (numpy arrays, or CPU torch tensors);
            see RNNRegressor.load_state_dict.
        classes : array of shape (n_classes,), default=None
            The label of each row of head.weight, sorted; default
            0..n_classes-1.

        Returns
        -------
        self : RNNClassifier
            The estimator, ready for predict and partial_fit.
        """
        return super().load_state_dict(state_dict, classes=classes, image_shape=image_shape)

    def _score_and_loss(self, raw, codes, weights=None):
        logp = _log_softmax(raw.astype(np.float64))
        picked = np.take_along_axis(logp, codes[:, None].astype(np.intp), axis=1)[:, 0]
        loss = float(-np.average(picked, weights=weights))
        score = float(np.average(raw.argmax(axis=1) == codes, weights=weights))
        return score, loss

    def _shape_labels(self, rows, data):
        """Per-row results -> per sample, or per step as (n_samples, n_timesteps,
        ...) / a list for a list of sequences."""
        return data.split_rows(rows) if self._fitted_seq() else rows

    def _target_weights(self, data, codes, target_info, sample_weight, incremental):
        w = super()._target_weights(data, codes, target_info, sample_weight, incremental)
        if w is not None and not incremental and len(np.unique(codes[w > 0])) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes with a non-zero "
                "weight, but sample_weight and class_weight leave only one class.")
        return w

    def _class_weight_of(self, codes, target_info, incremental):
        """class_weight as a weight per target row (None: no class weights)."""
        if self.class_weight is None:
            return None
        classes = target_info["classes_"]
        if isinstance(self.class_weight, str):
            if incremental:
                raise ValueError(
                    "class_weight='balanced' is not supported for partial_fit: the class "
                    "frequencies of one call are not those of the data. Compute them once "
                    "with sklearn.utils.class_weight.compute_class_weight('balanced', "
                    "classes=classes, y=y) and pass them as a dict.")
            # n_samples / (n_classes * count), over the classes present
            counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
            present = counts > 0
            per_class = np.zeros(len(classes))
            per_class[present] = len(codes) / (present.sum() * counts[present])
        else:
            unknown = [k for k in self.class_weight if k not in set(classes.tolist())]
            if unknown:
                raise ValueError(f"class_weight names labels not in the classes "
                                 f"{classes.tolist()!r}: {unknown!r}.")
            per_class = np.array([float(self.class_weight.get(c, 1.0)) for c in classes])
        return per_class[codes]

    @with_callbacks
    def fit(self, X, y, sample_weight=None, *, X_val=None, y_val=None, sample_weight_val=None):
        """Train the network from scratch (or, with warm_start, from its
        current weights) for up to max_iter epochs.

        Parameters
        ----------
        X : array of shape (n_samples, n_timesteps, n_features) or (n_samples, n_timesteps), \
or list of arrays of shape (n_timesteps_i, n_features) or (n_timesteps_i,)
            Sequences; a 2D array is a batch of univariate series.
        y : array of shape (n_samples,)
            Class labels; with return_sequences, a label per step:
            (n_samples, n_timesteps), or a list of (n_timesteps_i,) arrays
            for a list X.
        sample_weight : array of shape (n_samples,), default=None
            Weight of each sample in the loss (a weighted mean, multiplied by
            class_weight); an integer weight counts like repeating the
            sample.  With return_sequences it may also give a weight per
            step, shaped like y.
        X_val, y_val : validation set, default=None
            Used instead of a random split of X for early stopping
            (early_stopping must be True), in X's and y's formats.
        sample_weight_val : array of shape (n_val_samples,), default=None
            Weights of the validation samples (or steps).

        Returns
        -------
        self : RNNClassifier
            The fitted estimator.
        """
        return self._fit(X, y, False, sample_weight=sample_weight, X_val=X_val, y_val=y_val,
                         sample_weight_val=sample_weight_val)

    @with_callbacks
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One epoch over (X, y), continuing the weights, the optimizer state
        and the learning-rate schedule of the previous calls.

        Parameters
        ----------
        X : array or list of arrays
            As in fit.
        y : array or list of arrays
            As in fit.
        classes : array of shape (n_classes,), default=None
            Every label that will ever appear; required on the first call.
        sample_weight : array of shape (n_samples,), default=None
            As in fit.

        Returns
        -------
        self : RNNClassifier
            The updated estimator.
        """
        return self._fit(X, y, True, classes=classes, sample_weight=sample_weight)

    def predict(self, X, initial_state=None, return_state=False):
        """Predict class labels.

        Parameters
        ----------
        X : array or list of arrays
            Sequences, as in fit; a many-to-one model takes any length.
        initial_state : array or tuple (h_0, c_0), default=None
            States to start from, as in RNNRegressor.predict.
        return_state : bool, default=False
            Also return the final states, as in RNNRegressor.predict.

        Returns
        -------
        labels : ndarray of shape (n_samples,) or list of ndarrays
            The most probable class; per step with return_sequences
            ((n_samples, n_timesteps), or a list for a list X).
        state : ndarray or tuple (h_n, c_n)
            Only with return_state.
        """
        raw, data, state = self._forward(X, initial_state, return_state)
        pred = self._shape_labels(self.classes_[raw.argmax(axis=1)], data)
        return (pred, state) if return_state else pred

    def predict_proba(self, X, initial_state=None, return_state=False):
        """Class probabilities: the softmax of the logits.

        Parameters
        ----------
        X : array or list of arrays
            Sequences, as in predict.
        initial_state : array or tuple (h_0, c_0), default=None
            As in predict.
        return_state : bool, default=False
            As in predict.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes) or list of ndarrays
            Columns in the order of ``classes_``; per step with return_sequences
            ((n_samples, n_timesteps, n_classes), or a list of
            (n_timesteps_i, n_classes) arrays for a list X).
        state : ndarray or tuple (h_n, c_n)
            Only with return_state.
        """
        raw, data, state = self._forward(X, initial_state, return_state)
        proba = self._shape_labels(_softmax(raw.astype(np.float64)), data)
        return (proba, state) if return_state else proba

    def predict_log_proba(self, X, initial_state=None, return_state=False):
        """Logarithm of the class probabilities (a log-softmax, accurate
        where predict_proba underflows).

        Parameters
        ----------
        X : array or list of arrays
            Sequences, as in predict.
        initial_state : array or tuple (h_0, c_0), default=None
            As in predict.
        return_state : bool, default=False
            As in predict.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes) or list of ndarrays
            Shaped as predict_proba's result.
        state : ndarray or tuple (h_n, c_n)
            Only with return_state.
        """
        raw, data, state = self._forward(X, initial_state, return_state)
        logp = self._shape_labels(_log_softmax(raw.astype(np.float64)), data)
        return (logp, state) if return_state else logp

    def score(self, X, y, sample_weight=None):
        """Mean accuracy (over samples, and steps with return_sequences).

        Parameters
        ----------
        X : array or list of arrays
            Sequences, as in predict.
        y : array or list of arrays
            True labels, shaped as in fit.
        sample_weight : array of shape (n_samples,), default=None
            Sample weights (or, with return_sequences, step weights shaped
            like y).

        Returns
        -------
        score : float
            Weighted fraction of correct predictions.
        """
        check_is_fitted(self, "_theta")
        if not self._fitted_seq():
            return super().score(X, y, sample_weight=sample_weight)
        raw, data, _ = self._forward(X)
        pred = self.classes_[raw.argmax(axis=1)]
        y, _ = per_step_targets(data, y)
        if y.shape != pred.shape:
            raise ValueError(f"y has shape {y.shape}, predictions have shape {pred.shape}.")
        sw = self._check_sample_weight(data, sample_weight, True)
        return float(accuracy_score(y, pred, sample_weight=sw))
