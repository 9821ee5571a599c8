"""crnn: recurrent neural networks in Cython + OpenMP kernels, as scikit-learn estimators."""
from ._estimators import RNNClassifier, RNNRegressor
from ._io import ModelFileError, load
from ._forecast import RNNForecaster
from ._lm import RNNLanguageModel
from ._onnx import register_skl2onnx, to_onnx
from ._show import show_config
from ._stepper import Stepper
from ._transcriber import RNNTranscriber
from ._translator import RNNTranslator
from ._version import __version__

__all__ = ["ModelFileError", "RNNClassifier", "RNNForecaster", "RNNLanguageModel",
           "RNNRegressor", "RNNTranscriber", "RNNTranslator", "Stepper", "load", "register_skl2onnx", "show_config", "to_onnx",
           "__version__"]
