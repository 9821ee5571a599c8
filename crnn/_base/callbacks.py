"""scikit-learn's callback API (sklearn.callback, scikit-learn >= 1.9):
``estimator.set_callbacks(ProgressBar(), ScoringMonitor(...))``.

fit and partial_fit open a root task ("fit" / "partial_fit") with one
subtask per epoch, the way scikit-learn's own estimators report iterations
(LogisticRegression, the callback test estimators): each epoch's end is
reported with the model as it is then, and a callback may ask training to
stop there.  On older scikit-learn the estimators work as before, without
set_callbacks.
"""
import functools

try:
    from sklearn.callback import CallbackSupportMixin
    from sklearn.callback import with_callbacks as _sklearn_with_callbacks
    HAVE_CALLBACKS = True
except ImportError:                       # scikit-learn < 1.9
    HAVE_CALLBACKS = False

    class CallbackSupportMixin:           # noqa: D101 - a stand-in with nothing to add
        pass


def with_callbacks(method):
    """scikit-learn's with_callbacks (callbacks torn down whatever happens)
    around a fit method, entered only when the estimator has callbacks: a
    partial_fit on a small batch takes ~100 us, so without callbacks it pays
    nothing for them."""
    if not HAVE_CALLBACKS:
        return method
    managed = _sklearn_with_callbacks(method)

    @functools.wraps(method)
    def fit_method(estimator, *args, **kwargs):
        if wants_callbacks(estimator):
            return managed(estimator, *args, **kwargs)
        return method(estimator, *args, **kwargs)

    return fit_method

__all__ = ["CallbackSupportMixin", "EpochMonitor", "HAVE_CALLBACKS", "with_callbacks"]


def wants_callbacks(estimator):
    """True when callbacks are set on the estimator or propagated to it by a
    meta-estimator (a Pipeline or a search with callbacks of its own)."""
    return HAVE_CALLBACKS and ("_skl_callbacks" in estimator.__dict__
                               or "_parent_callback_ctx" in estimator.__dict__)


class EpochMonitor:
    """The callback context of one fit or partial_fit call.

    snapshot: state -> the fitted attributes of the model at that state
    (evaluated only when a callback asks for the fitted estimator)."""

    def __init__(self, estimator, X, y, task_name, n_epochs, snapshot, metadata=None):
        self.estimator, self.X, self.y = estimator, X, y
        self.snapshot = snapshot
        self.metadata = metadata or {}
        self.ctx = estimator._init_callback_context(task_name=task_name,
                                                    max_subtasks=n_epochs)
        self.ctx.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=self.metadata)
        self.epoch_ctx = None

    def begin_epoch(self):
        self.epoch_ctx = self.ctx.subcontext(task_name="epoch")
        self.epoch_ctx.call_on_fit_task_begin(estimator=self.estimator, X=self.X, y=self.y,
                                              metadata=self.metadata)

    def end_epoch(self, state):
        """Report the finished epoch; True when a callback asks to stop."""
        return bool(self.epoch_ctx.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=functools.partial(self.snapshot, state)))

    def close(self):
        self.ctx.call_on_fit_task_end(estimator=self.estimator, X=self.X, y=self.y,
                                      metadata=self.metadata, reconstruction_attributes={})
