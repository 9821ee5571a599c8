"""crnn: recurrent neural networks in Cython + OpenMP kernels, as scikit-learn estimators."""
from ._estimators import RNNClassifier, RNNRegressor

__all__ = ["RNNClassifier", "RNNRegressor"]
__version__ = "0.1.0"
