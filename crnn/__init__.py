"""crnn: recurrent neural networks in Cython + OpenMP kernels, as scikit-learn estimators."""
from ._estimators import RNNClassifier, RNNRegressor
from ._stepper import Stepper
from ._version import __version__

__all__ = ["RNNClassifier", "RNNRegressor", "Stepper", "__version__"]
