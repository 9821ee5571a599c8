"""Old import path (crnn._forecast, before the modules moved into folders in
0.1.0): pickles made before then name these classes here.  New code imports
from crnn._forecasting.forecaster."""
from ._forecasting.forecaster import RNNForecaster

__all__ = ["RNNForecaster"]
