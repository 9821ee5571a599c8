"""The estimator base layer: the network estimators' shared class (_BaseRNN),
their one fit pipeline, declared parameters, shared docstrings and callbacks."""
