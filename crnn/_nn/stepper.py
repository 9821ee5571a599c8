"""Running a fitted network one time step at a time."""
import numpy as np
from sklearn.base import is_classifier

from . import threads as _threads
from .threads import effective_n_threads


class Stepper:
    """Online predictions, one observation in, one prediction out.

    Made by ``estimator.stepper(n_streams=1)``.  It copies the estimator's
    current weights, so training the estimator afterwards does not change it,
    and it keeps no state between calls: the caller carries the recurrent
    state::

        s = model.stepper()
        state = None                       # zeros
        for x_t in stream:                 # x_t: (n_features,)
            y_t, state = s.step(x_t, state)

    ``step`` on a stream of observations gives the predictions that
    ``predict(X, return_state=True)`` gives for each prefix of the series (for
    many-to-one models: the prediction if the sequence ended at that step).
    Bidirectional networks cannot run step by step.

    Parameters of step: x of shape (n_features,) when n_streams == 1, or
    (n_streams, n_features); state None or as returned by the previous call:
    an array (num_layers, n_streams, hidden_size), a tuple (h, c) for the LSTM
    (PyTorch's layout).  Returns (prediction, new_state): for one stream the
    regressor gives a float (or an (n_outputs,) array), the classifier a
    label; for several streams, arrays with a first axis of n_streams.
    Computation is in the estimator's dtype; it uses the estimator's n_jobs
    threads (split over hidden units) only when the weights outgrow one
    core's cache (crnn._nn.engine.plan_threads), and one thread otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> from crnn import RNNRegressor
    >>> X = np.random.default_rng(0).normal(size=(64, 10, 3))
    >>> y = X[:, :, 0].sum(axis=1)
    >>> reg = RNNRegressor(cell="gru", hidden_size=16, max_iter=5, random_state=0).fit(X, y)
    >>> stepper = reg.stepper()
    >>> state = None                       # zeros
    >>> for x_t in X[0]:                   # one observation at a time
    ...     y_t, state = stepper.step(x_t, state)
    >>> type(y_t).__name__, state.shape    # (num_layers, n_streams, hidden_size)
    ('float', (1, 1, 16))
    >>> bool(np.isclose(y_t, reg.predict(X[:1])[0], rtol=1e-4, atol=1e-4))
    True

    Several streams step together, each with its own state:

    >>> stepper = reg.stepper(n_streams=4)
    >>> state = None
    >>> for t in range(X.shape[1]):
    ...     y_t, state = stepper.step(X[:4, t], state)
    >>> y_t.shape, state.shape
    ((4,), (1, 4, 16))
    >>> bool(np.allclose(y_t, reg.predict(X[:4]), rtol=1e-4, atol=1e-4))
    True
    """

    def __init__(self, estimator, n_streams=1):
        n_streams = int(n_streams)
        if n_streams < 1:
            raise ValueError(f"n_streams must be at least 1, got {n_streams}.")
        lay = estimator._layout
        self._classifier = is_classifier(estimator)
        self._kernel = estimator._engine(lay).step_kernel(
            estimator._theta, n_streams, self._classifier, effective_n_threads(estimator.n_jobs))
        self._lstm = lay.cell == "lstm"
        self._gru = lay.cell == "gru"
        self._n_streams = n_streams
        self._n_features = lay.n_features
        # a front-end (conv): each step's frames go through it first, with a
        # copy of its weights (as the kernel holds the network's)
        self._conv, self._conv_threads = None, 1
        if hasattr(lay, "convnet"):
            self._conv = (lay.convnet(), estimator._theta[:lay.n_conv_params].copy(),
                          tuple(lay.image))
            self._conv_threads = effective_n_threads(estimator.n_jobs)
        self.state_shape = (lay.num_layers, n_streams, lay.hidden)
        self.classes_ = getattr(estimator, "classes_", None)
        # a regressor whose y had no output axis predicts scalars
        self._scalar = (not self._classifier) and \
            estimator._y_ndim == (2 if estimator.return_sequences else 1)
        self.dtype = estimator._theta.dtype

    def initial_state(self):
        """Zero states, in the layout step() takes.

        Returns
        -------
        state : ndarray of shape (num_layers, n_streams, hidden_size) or tuple (h, c)
        """
        h = np.zeros(self.state_shape, dtype=self.dtype)
        return (h, h.copy()) if self._lstm else h

    def _run(self, x, state):
        if (self._kernel.n_threads > 1 or self._conv_threads > 1) \
                and _threads.fork_limited():
            self._kernel.n_threads = 1      # made before a fork: no team in this child
            self._conv_threads = 1
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        if self._conv is not None:
            single, x = self._features(x)
        else:
            single = x.ndim == 1 and self._n_streams == 1
        if state is None:
            out, h, c = self._kernel.step(x)
        elif self._lstm:
            if not (isinstance(state, (tuple, list)) and len(state) == 2):
                raise ValueError("the state of an LSTM is a tuple (h, c).")
            out, h, c = self._kernel.step(x, state[0], state[1])
        else:
            if isinstance(state, (tuple, list)):
                raise ValueError(
                    f"the state of a{' GRU' if self._gru else 'n Elman'} network is one array "
                    f"of shape {self.state_shape} (num_layers, n_streams, hidden_size), not a "
                    f"{type(state).__name__}; only an LSTM's state is a tuple (h, c).")
            out, h, c = self._kernel.step(x, state)
        return single, out, ((h, c) if self._lstm else h)

    def _features(self, x):
        """(single, features): the front-end's features of a frame per
        stream (n_streams, H, W[, C]), or of one frame (H, W[, C]) for one
        stream.  The front-end's buffers are this stepper's: one step at a
        time per stepper."""
        net, tc, image = self._conv
        single = self._n_streams == 1 and x.ndim in (2, 3) and x.shape[:2] == image[:2]
        frames = x[None] if single else x
        if frames.ndim == 3 and image[2] == 1:
            frames = frames[..., None]
        if frames.shape != (self._n_streams,) + image:
            raise ValueError(f"a step takes a frame of shape {image} per stream "
                             f"({self._n_streams}); got an array of shape {x.shape}.")
        if frames.dtype.kind not in "biuf":
            raise ValueError(f"frames must hold real numbers; got dtype {frames.dtype}.")
        frames = np.ascontiguousarray(frames, self.dtype)
        if not np.all(np.isfinite(frames)):
            raise ValueError("frames contain NaN or infinity.")
        return single, net.forward(tc, frames, self._conv_threads)[0]

    def step(self, x, state=None):
        """One time step.

        Parameters
        ----------
        x : array of shape (n_features,) (one stream) or (n_streams, n_features)
            The observation of this step; for a model with a convolutional
            front-end (``conv``), a frame (height, width[, channels]) or a
            frame per stream (n_streams, height, width[, channels]).
        state : array, tuple (h, c) or None, default=None
            The state returned by the previous call (None: zeros).

        Returns
        -------
        prediction : float, ndarray or label
            The regressor's output (a float for a single output and stream)
            or the classifier's label; arrays with a first axis of n_streams
            for several streams.
        new_state : ndarray or tuple (h, c)
            To pass to the next call.
        """
        single, out, new_state = self._run(x, state)
        if self._classifier:
            pred = self.classes_[out.argmax(axis=1)]
            return (pred[0] if single else pred), new_state
        if self._scalar:
            return (float(out[0, 0]) if single else out[:, 0]), new_state
        return (out[0] if single else out), new_state

    def step_proba(self, x, state=None):
        """One time step of a classifier, with class probabilities.

        Parameters
        ----------
        x : array of shape (n_features,) or (n_streams, n_features)
            As in step.
        state : array, tuple (h, c) or None, default=None
            As in step.

        Returns
        -------
        proba : ndarray of shape (n_classes,) or (n_streams, n_classes)
        new_state : ndarray or tuple (h, c)
        """
        if not self._classifier:
            raise AttributeError("step_proba is for classifiers.")
        single, out, new_state = self._run(x, state)
        return (out[0] if single else out), new_state
