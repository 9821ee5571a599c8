"""A pickle and a model file of each estimator, written before issue 27
moved the modules into folders (tests/io/data/before_the_move, made at commit
b6d63ab by fitting tiny models), load after the move and predict what they
predicted then.  Pickles name the old module paths (crnn._estimators,
crnn._layout, crnn._lm, ...): the thin modules left at those paths keep
them loading."""
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

import crnn

DATA = Path(__file__).parent / "data" / "before_the_move"
_rng = np.random.RandomState(0)
X = _rng.normal(size=(12, 5, 2)).astype(np.float32)

PREDICT = {
    "regressor": lambda m: m.predict(X),
    "classifier": lambda m: m.predict_proba(X),
    "transcriber": lambda m: m.predict_proba(list(X)),
    "language_model": lambda m: m.predict_proba(["the cat"]),
    "translator": lambda m: m.predict(["a b", "c a"]),
    "forecaster": lambda m: m.predict(5),
}
CLASSES = {"regressor": crnn.RNNRegressor, "classifier": crnn.RNNClassifier,
           "transcriber": crnn.RNNTranscriber, "language_model": crnn.RNNLanguageModel,
           "translator": crnn.RNNTranslator, "forecaster": crnn.RNNForecaster}


def _same(got, want):
    if want and isinstance(want[0], str):
        assert list(got) == want
    elif isinstance(got, list):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64), np.asarray(want),
                                   rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def expected():
    return json.loads((DATA / "expected.json").read_text())


@pytest.mark.parametrize("name", list(PREDICT))
def test_a_pickle_from_before_the_move_loads_and_predicts_the_same(name, expected):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")           # scikit-learn version of the pickle
        model = pickle.loads((DATA / f"{name}.pkl").read_bytes())
    assert type(model) is CLASSES[name]
    _same(PREDICT[name](model), expected[name])


@pytest.mark.parametrize("name", list(PREDICT))
def test_a_model_file_from_before_the_move_loads_and_predicts_the_same(name, expected):
    model = crnn.load(DATA / f"{name}.crnn")
    assert type(model) is CLASSES[name]
    _same(PREDICT[name](model), expected[name])
