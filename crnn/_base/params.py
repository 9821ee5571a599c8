"""Declared parameters: what each estimator accepts, checked in one place.

Every estimator class declares ``_parameter_constraints``, a dict from each
``__init__`` parameter to the list of constraints it may satisfy (any one
is enough), modelled on scikit-learn's (``utils/_param_validation.py``,
whose module is private, so crnn has its own small set): an ``Interval`` of
ints or floats, ``Options`` among strings, ``"boolean"``, ``None``,
``callable``, ``"random_state"``, ``"dtype"`` or a ``Satisfies``
predicate.  Subclasses extend or override their parent's by dict union, as
scikit-learn's MLPRegressor does.  ``validate_params`` checks an estimator's
values against its declaration (the estimators' ``_validate_params``, the
name scikit-learn's BaseEstimator gives it) and raises scikit-learn's
message::

    The 'hidden_size' parameter of RNNClassifier must be an int in the
    range [1, 1048576]. Got 0 instead.

Rules that tie several parameters together (bfloat16 needs float32
weights) stay in the estimators' code.  ``is_int`` is the one integer test;
``check_int_arg`` checks a function's integer argument with it.
"""
import numbers

import numpy as np

__all__ = ["Interval", "Options", "Satisfies", "check_int_arg", "is_int", "store_params",
           "validate_params", "without"]

INT_MAX = 2**31 - 1


def is_int(v, low=None, high=None):
    """v is an int (not a bool) in [low, high] (None: unbounded)."""
    return (isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))
            and (low is None or v >= low) and (high is None or v <= high))


class Interval:
    """Numbers of a kind ("int", "real" or "real_not_int") in a range.
    closed: which ends belong to it ("both", "left", "right", "neither");
    an infinite end never does.  Reals must be finite."""

    def __init__(self, kind, low, high, closed="both"):
        self.kind, self.low, self.high, self.closed = kind, low, high, closed

    def accepts(self, v):
        if isinstance(v, (bool, np.bool_)):
            return False
        if self.kind == "int":
            if not isinstance(v, numbers.Integral):
                return False
        elif not isinstance(v, numbers.Real) or not np.isfinite(v) or (
                self.kind == "real_not_int" and isinstance(v, numbers.Integral)):
            return False
        low_in = self.closed in ("both", "left")
        high_in = self.closed in ("both", "right")
        return ((v >= self.low if low_in else v > self.low)
                and (v <= self.high if high_in else v < self.high))

    def __str__(self):
        lo = "[" if self.closed in ("both", "left") and np.isfinite(self.low) else "("
        hi = "]" if self.closed in ("both", "right") and np.isfinite(self.high) else ")"
        what = "an int" if self.kind == "int" else "a float"
        return f"{what} in the range {lo}{self.low}, {self.high}{hi}"


class Options:
    """One of a set of strings."""

    def __init__(self, options):
        self.options = frozenset(options)

    def accepts(self, v):
        return isinstance(v, str) and v in self.options

    def __str__(self):
        if len(self.options) == 1:
            return repr(next(iter(self.options)))
        return f"one of {sorted(self.options)}"


class Satisfies:
    """Values for which predicate(value) is true, described as `what`."""

    def __init__(self, predicate, what):
        self.predicate, self.what = predicate, what

    def accepts(self, v):
        return bool(self.predicate(v))

    def __str__(self):
        return self.what


def _random_state(v):
    return isinstance(v, np.random.RandomState) or is_int(v, 0, 2**32 - 1)


def _dtype(v):
    if v is None:                        # numpy reads None as float64
        return False
    try:
        return np.dtype(v) in (np.dtype(np.float32), np.dtype(np.float64))
    except TypeError:
        return False


_NAMED = {
    "boolean": Satisfies(lambda v: isinstance(v, (bool, np.bool_)), "a bool"),
    "random_state": Satisfies(_random_state, "an int in [0, 2**32 - 1] or a numpy "
                                             "RandomState (scikit-learn's rule)"),
    "dtype": Satisfies(_dtype, "numpy.float32 or numpy.float64"),
}
_NONE = Satisfies(lambda v: v is None, "None")
_CALLABLE = Satisfies(callable, "a callable")


def _constraint(c):
    if c is None:
        return _NONE
    if c is callable:
        return _CALLABLE
    if isinstance(c, str):
        return _NAMED[c]
    return c


def _describe(constraints):
    words = [str(_constraint(c)) for c in constraints]
    # None last reads best ("an int in the range [1, 10] or None")
    words.sort(key=lambda w: w == "None")
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def check_value(owner_name, name, value, constraints):
    """A ValueError naming owner_name's parameter `name` unless value meets
    one of the constraints."""
    if not any(_constraint(c).accepts(value) for c in constraints):
        raise ValueError(f"The '{name}' parameter of {owner_name} must be "
                         f"{_describe(constraints)}. Got {value!r} instead.")


def validate_params(estimator):
    """Check every declared parameter of the estimator (in the order of the
    declaration)."""
    owner = type(estimator).__name__
    for name, constraints in type(estimator)._parameter_constraints.items():
        check_value(owner, name, getattr(estimator, name), constraints)


def check_int_arg(value, name, low, high=None):
    """A function's argument as an int >= low (and <= high when given); a
    ValueError naming it otherwise."""
    if not is_int(value, low, high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an integer {bound}; got {value!r}.")
    return int(value)


def without(constraints, *names):
    """A parent's declaration less the parameters a subclass fixes."""
    missing = set(names) - set(constraints)
    if missing:
        raise KeyError(f"no declared parameter {sorted(missing)}")
    return {k: v for k, v in constraints.items() if k not in names}


def store_params(estimator, values):
    """An estimator's __init__ body: each parameter of that __init__ stored,
    as given, under its own name (scikit-learn's rule: __init__ does nothing
    else).  values: the __init__'s locals() as its first statement, which
    hold its arguments only (the one that called it: a subclass's own
    __init__ that calls super().__init__(**kwargs) stores the rest itself)."""
    for name, value in values.items():
        if name not in ("self", "__class__"):
            setattr(estimator, name, value)
