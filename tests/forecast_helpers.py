"""The forecaster with the fixed network configuration the forecasting
tests before issue 26 were written for: no differencing, no season, the
network alone (the defaults then).  tests/test_forecast_auto.py covers the
automatic choice that is the default now."""
from crnn import RNNForecaster as _RNNForecaster

FIXED = dict(difference=0, seasonal_period=None, baselines=False)


def RNNForecaster(**kw):
    return _RNNForecaster(**{**FIXED, **kw})
