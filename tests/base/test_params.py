"""Declared parameters (crnn._base.params): every estimator declares a
constraint for each of its parameters and no other, every parameter set to
a value of no accepted type fails fit with scikit-learn's message naming
it, and each class's docstring documents every parameter."""
import inspect
import re

import numpy as np
import pytest

import crnn
from crnn._base import params as _params
from crnn._base.params import Interval, Options, Satisfies, check_int_arg

ESTIMATORS = [crnn.RNNRegressor, crnn.RNNClassifier, crnn.RNNTranscriber,
              crnn.RNNLanguageModel, crnn.RNNTranslator, crnn.RNNForecaster,
              crnn.RNNSceneLabeler]


def _fit_args(cls):
    X = np.zeros((4, 3, 1), np.float32)
    return {
        crnn.RNNRegressor: (X, np.zeros(4)),
        crnn.RNNClassifier: (X, np.array([0, 1, 0, 1])),
        crnn.RNNTranscriber: (X, ["a", "b", "a", "b"]),
        crnn.RNNLanguageModel: ("some text",),
        crnn.RNNTranslator: (["a b"], ["c d"]),
        crnn.RNNForecaster: (np.arange(30.0),),
        crnn.RNNSceneLabeler: (np.zeros((4, 8, 8, 1)), np.arange(256).reshape(4, 8, 8) % 2),
    }[cls]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_each_parameter_is_declared_once(cls):
    assert set(cls._parameter_constraints) == set(cls().get_params(deep=False))


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_a_value_of_no_accepted_type_names_the_parameter(cls):
    """scikit-learn's check_param_validation, on our declarations."""
    bad = type("BadType", (), {})()
    for name in cls().get_params(deep=False):
        est = cls().set_params(**{name: bad})
        with pytest.raises(ValueError, match=rf"The '{name}' parameter of {cls.__name__} "
                                             r"must be .* Got .* instead\."):
            est.fit(*_fit_args(cls))
        assert not hasattr(est, "_theta") and not hasattr(est, "model_")


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_validate_params_is_the_declared_check(cls):
    """scikit-learn's name for the check runs crnn's declarations."""
    cls()._validate_params()
    with pytest.raises(ValueError, match="'max_iter' parameter"):
        cls(max_iter=0)._validate_params()


def test_import_works_without_docstrings(tmp_path):
    """python -OO strips docstrings: the shared documentation must not be
    needed to import crnn."""
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-OO", "-c", "import crnn; crnn.RNNLanguageModel()"],
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_defaults_meet_their_declarations(cls):
    est = cls()
    for name, constraints in cls._parameter_constraints.items():
        _params.check_value(cls.__name__, name, getattr(est, name), constraints)


@pytest.mark.parametrize("name, value", [
    ("hidden_size", 0), ("hidden_size", 2**20 + 1), ("hidden_size", 3.0), ("hidden_size", True),
    ("dropout", 1.0), ("dropout", float("nan")), ("clip_norm", 0.0), ("beta_2", 1.0),
    ("cell", "LSTM"), ("n_jobs", 0), ("random_state", -1), ("random_state", 2**32),
    ("dtype", np.int32), ("dtype", None), ("compute_dtype", "float16"),
    ("validation_fraction", 0.0), ("forget_bias", float("inf")),
])
def test_out_of_range_values_are_refused(name, value):
    with pytest.raises(ValueError, match=rf"The '{name}' parameter of RNNRegressor"):
        crnn.RNNRegressor(**{name: value}).fit(np.zeros((4, 3, 1)), np.zeros(4))


@pytest.mark.parametrize("name, value", [
    ("hidden_size", np.int64(3)), ("dropout", np.float32(0.5)), ("clip_norm", None),
    ("random_state", np.random.RandomState(0)), ("random_state", 2**32 - 1),
    ("n_jobs", -1), ("dtype", "float64"), ("shuffle", np.bool_(False)),
])
def test_values_of_numpy_and_sklearn_types_are_accepted(name, value):
    est = crnn.RNNRegressor(**{name: value})
    _params.validate_params(est)


def test_forecaster_calibration_size_is_a_fraction_or_a_count():
    for ok in (0, 0.0, 0.5, 7, np.int64(3), None):
        _params.validate_params(crnn.RNNForecaster(calibration_size=ok))
    for bad in (1.0, 1.5, -1, True, float("nan")):
        with pytest.raises(ValueError, match="'calibration_size' parameter"):
            _params.validate_params(crnn.RNNForecaster(calibration_size=bad))


def test_messages_list_every_accepted_kind_with_none_last():
    with pytest.raises(ValueError) as info:
        _params.check_value("Est", "p", "x", [None, Interval("int", 1, 10), Options({"auto"})])
    assert str(info.value) == ("The 'p' parameter of Est must be an int in the range [1, 10], "
                               "'auto' or None. Got 'x' instead.")
    with pytest.raises(ValueError, match=r"a float in the range \(0, inf\)"):
        _params.check_value("Est", "p", 0.0, [Interval("real", 0, np.inf, closed="neither")])
    with pytest.raises(ValueError, match=r"one of \['a', 'b'\]"):
        _params.check_value("Est", "p", "c", [Options({"b", "a"})])
    with pytest.raises(ValueError, match="must be even"):
        _params.check_value("Est", "p", 3, [Satisfies(lambda v: v % 2 == 0, "even")])


def test_the_one_integer_checker():
    assert _params.is_int(np.int64(3), 1, 3) and not _params.is_int(True)
    assert not _params.is_int(3.0) and not _params.is_int(np.bool_(True))
    assert check_int_arg(np.int32(3), "k", 1) == 3
    with pytest.raises(ValueError, match=r"k must be an integer >= 1; got 0"):
        check_int_arg(0, "k", 1)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 4\]; got 5"):
        check_int_arg(5, "k", 1, 4)


def test_without_refuses_a_name_the_parent_does_not_declare():
    with pytest.raises(KeyError, match="no declared parameter"):
        _params.without(crnn.RNNRegressor._parameter_constraints, "spam")


def _entries(doc):
    """numpydoc Parameters entries -> {name: text}; "a, b : type" entries
    count for each name."""
    section = doc.split("Parameters\n    ----------\n", 1)[1]
    section = re.split(r"\n    \w[\w ]*\n    -{3,}\n", section, maxsplit=1)[0]
    out, names = {}, ()
    for line in section.splitlines():
        m = re.match(r"^    (\w[\w, ]*?)(?: :|$)", line)
        if m and not line.startswith("        "):
            names = [n.strip() for n in m.group(1).split(",")]
            out.update((n, "") for n in names)
        else:
            for n in names:
                out[n] += line.strip() + " "
    return out


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_help_shows_every_parameter(cls):
    """Each parameter has its own entry with its own text: none defers to
    another class's documentation."""
    params = list(inspect.signature(cls.__init__).parameters)[1:]
    entries = _entries(cls.__doc__)
    assert list(entries) == params            # the signature's order, nothing else
    for name, text in entries.items():
        assert text.strip(), f"{cls.__name__}.{name} has no description"
        assert not re.match(r"(?i)as (in )?RNN", text), f"{cls.__name__}.{name}: {text}"


def test_own_defaults_replace_the_shared_ones():
    doc = crnn.RNNLanguageModel.__doc__
    assert 'cell : {"rnn", "gru", "lstm"}, default="lstm"' in doc
    assert "forget_bias : float, default=0.0" in doc
    assert "learning_rate_init : float, default=1e-3" in crnn.RNNRegressor.__doc__
    assert 'cell : {"rnn", "gru", "lstm"}, default="gru"' in crnn.RNNForecaster.__doc__


def test_a_documented_default_that_lies_is_refused():
    from crnn._base.docstrings import document_parameters

    class Est:
        __doc__ = ("An estimator.\n\n    Parameters\n    ----------\n"
                   "    max_iter : int, default=200\n        Epochs.\n")

        def __init__(self, *, max_iter=10):
            pass

    with pytest.raises(TypeError, match="gives max_iter the default 200"):
        document_parameters(Est)
