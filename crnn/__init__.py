"""crnn: recurrent neural networks in Cython + OpenMP kernels, as scikit-learn estimators."""
from ._sequence.estimators import RNNClassifier, RNNRegressor
from ._io.model_files import ModelFileError, load
from ._forecasting.forecaster import RNNForecaster
from ._text.language_model import RNNLanguageModel
from ._sequence.onnx import register_skl2onnx, to_onnx
from ._show import show_config
from ._nn.stepper import Stepper
from ._speech.transcriber import RNNTranscriber
from ._translation.translator import RNNTranslator
from ._vision.scene import RNNSceneLabeler
from ._version import __version__

__all__ = ["ModelFileError", "RNNClassifier", "RNNForecaster", "RNNLanguageModel",
           "RNNRegressor", "RNNSceneLabeler", "RNNTranscriber", "RNNTranslator", "Stepper", "load", "register_skl2onnx", "show_config", "to_onnx",
           "__version__"]
