"""Estimators that read images: scene labelling."""
