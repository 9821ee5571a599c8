"""Forecasting: RNNForecaster, and the statistical candidates it chooses among
(exponential smoothing, naive baselines)."""
