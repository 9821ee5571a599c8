"""crnn: recurrent neural networks in Cython + OpenMP kernels, as scikit-learn estimators."""
from ._estimators import RNNClassifier, RNNRegressor
from ._show import show_config
from ._stepper import Stepper
from ._version import __version__

__all__ = ["RNNClassifier", "RNNRegressor", "Stepper", "show_config", "__version__"]
