"""Sequence classification and regression: RNNRegressor, RNNClassifier."""
