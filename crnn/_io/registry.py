"""The estimator classes a model file may name.

A closed list of ``"module:attribute"`` strings (skops' rule for the types
a file may load): a file names its class by one of these keys, and nothing
outside the list can be built from a file.  The strings are resolved with
importlib when a file is written or read, so the model-file code imports no
estimator module (the estimators import ModelFileMixin from it; resolving
late leaves no import cycle).
"""
import importlib

ESTIMATORS = {
    "RNNRegressor": "crnn._sequence.estimators:RNNRegressor",
    "RNNClassifier": "crnn._sequence.estimators:RNNClassifier",
    "RNNForecaster": "crnn._forecasting.forecaster:RNNForecaster",
    "RNNLanguageModel": "crnn._text.language_model:RNNLanguageModel",
    "RNNTranslator": "crnn._translation.translator:RNNTranslator",
    "RNNTranscriber": "crnn._speech.transcriber:RNNTranscriber",
    "RNNSceneLabeler": "crnn._vision.scene:RNNSceneLabeler",
}


def estimator_class(name):
    """The class registered under `name` (a str), or None."""
    path = ESTIMATORS.get(name) if isinstance(name, str) else None
    if path is None:
        return None
    module, attribute = path.split(":")
    return getattr(importlib.import_module(module), attribute)


def estimator_classes():
    """{name: class} of every registered estimator."""
    return {name: estimator_class(name) for name in ESTIMATORS}
