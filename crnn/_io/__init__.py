"""Model files: the format, its safe loader, and the registry of the estimator
classes a file may name (resolved from strings, so this layer imports no
estimator module)."""
