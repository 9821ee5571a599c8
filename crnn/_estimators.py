"""Old import path (crnn._estimators, before the modules moved into folders in
0.1.0): pickles made before then name these classes here.  New code imports
from crnn._sequence.estimators."""
from ._sequence.estimators import RNNClassifier, RNNRegressor

__all__ = ["RNNClassifier", "RNNRegressor"]
