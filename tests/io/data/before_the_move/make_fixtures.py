"""Made once, at commit b6d63ab (before issue 27 moved the modules into
folders): a pickle and a model file of each estimator, pickled after a
prediction, and what they predicted (expected.json).  Run from the root."""
import pickle
import warnings
import json
import numpy as np
import crnn
warnings.simplefilter("ignore")
out = "tests/io/data/before_the_move"
rng = np.random.RandomState(0)
X = rng.normal(size=(12, 5, 2)).astype(np.float32)
small = dict(hidden_size=4, max_iter=2, random_state=0)
models = {
    "regressor": (crnn.RNNRegressor(**small).fit(X, X[:, -1, 0]), lambda m: m.predict(X)),
    "classifier": (crnn.RNNClassifier(cell="gru", **small).fit(X, (X[:, -1, 0] > 0).astype(int)),
                   lambda m: m.predict_proba(X)),
    "transcriber": (crnn.RNNTranscriber(num_layers=1, **small).fit(list(X), ["ab", "b", "a", "ba"] * 3),
                    lambda m: m.predict_proba(list(X))),
    "language_model": (crnn.RNNLanguageModel(num_layers=1, seq_length=4, **small).fit("the cat sat on the mat " * 6),
                       lambda m: m.predict_proba(["the cat"])),
    "translator": (crnn.RNNTranslator(embedding_dim=4, hidden_size=8, max_iter=60, learning_rate_init=0.03, random_state=0).fit(["a b", "b c", "c a", "a c"] * 3, ["x y", "y z", "z x", "x z"] * 3),
                   lambda m: m.predict(["a b", "c a"])),
    "forecaster": (crnn.RNNForecaster(hidden_size=4, max_iter=2, random_state=0).fit(np.sin(np.arange(60) / 3.0) + np.arange(60) / 30.0),
                   lambda m: m.predict(5)),
}
expected = {}
for name, (m, f) in models.items():
    f(m)          # after a prediction: caches made by predict are pickled too
    with open(f"{out}/{name}.pkl", "wb") as fh:
        pickle.dump(m, fh)
    m.save(f"{out}/{name}.crnn")
    r = f(m)
    expected[name] = r.tolist() if isinstance(r, np.ndarray) else [x if isinstance(x, str) else np.asarray(x).tolist() for x in r]
json.dump(expected, open(f"{out}/expected.json", "w"))
