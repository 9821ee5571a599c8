"""Callbacks the tests pass to set_callbacks."""


class StopAfter:
    """A callback (scikit-learn's FitCallback protocol) that asks to stop
    once the model has run n epochs."""

    def __init__(self, n):
        self.n = n

    def setup(self, estimator, context):
        pass

    def teardown(self, estimator, context):
        pass

    def on_fit_task_begin(self, estimator, context):
        pass

    def on_fit_task_end(self, estimator, context, *, fitted_estimator=None):
        return fitted_estimator is not None and fitted_estimator.n_iter_ >= self.n
