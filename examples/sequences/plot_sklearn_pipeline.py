"""
===========================================
In a scikit-learn Pipeline and GridSearchCV
===========================================

crnn's estimators are scikit-learn estimators: they clone, take
``set_params``, and fit inside a :class:`~sklearn.pipeline.Pipeline`, so
model selection is scikit-learn's own :class:`~sklearn.model_selection.GridSearchCV`.

The data is the classic *Cylinder-Bell-Funnel* task (Saito, 1994), a
synthetic benchmark of time-series classification: a noisy plateau, a
rising ramp or a falling ramp, at a random place, of random length and
height.  A 2-D ``X`` of shape ``(n_samples, n_timesteps)`` is a batch of
univariate series (the tslearn / aeon / sktime convention).
"""

# %%
# The data
# --------
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from crnn import RNNClassifier

CLASSES = np.array(["cylinder", "bell", "funnel"])


def make_cbf(n_samples, rng, n_steps=64):
    y = rng.integers(0, 3, size=n_samples)
    t = np.arange(n_steps)
    start = rng.integers(n_steps // 8, n_steps // 4, size=(n_samples, 1))
    end = start + rng.integers(n_steps // 4, 3 * n_steps // 4, size=(n_samples, 1))
    height = 6 + rng.normal(size=(n_samples, 1))
    inside = (t >= start) & (t <= end)
    ramp = (t - start) / (end - start)
    shape = np.select([y[:, None] == 0, y[:, None] == 1], [1.0, ramp], 1.0 - ramp)
    X = height * inside * shape + rng.normal(size=(n_samples, n_steps))
    return X.astype(np.float32), CLASSES[y]


rng = np.random.default_rng(0)
X_train, y_train = make_cbf(400, rng)
X_test, y_test = make_cbf(400, rng)

fig, axes = plt.subplots(1, 3, figsize=(11, 2.6), sharey=True)
for ax, name in zip(axes, CLASSES):
    for x in X_train[y_train == name][:3]:
        ax.plot(x, lw=1)
    ax.set_title(name)
    ax.set_xlabel("time step")
fig.tight_layout()
plt.show()

# %%
# A pipeline
# ----------
# The first step z-normalises each series on its own (subtract its mean,
# divide by its standard deviation), the usual preprocessing for time
# series classification; it is stateless, so a
# :class:`~sklearn.preprocessing.FunctionTransformer` does.  The second
# step is the network.  Class labels may be strings.


def znormalize(X):
    return (X - X.mean(axis=1, keepdims=True)) / X.std(axis=1, keepdims=True)


pipe = make_pipeline(
    FunctionTransformer(znormalize),
    RNNClassifier(learning_rate_init=0.01, max_iter=30, random_state=0),
)

# %%
# A small grid
# ------------
# Three cells, two widths, and the preprocessing step itself (z-normalised
# or passed through): 12 candidates, each fitted on two folds.  Every fit
# takes a fraction of a second at this size.
param_grid = {
    "functiontransformer": [FunctionTransformer(znormalize), "passthrough"],
    "rnnclassifier__cell": ["rnn", "gru", "lstm"],
    "rnnclassifier__hidden_size": [8, 32],
}
search = GridSearchCV(pipe, param_grid, cv=2)
with warnings.catch_warnings():      # 30 epochs on purpose: no convergence warning
    warnings.simplefilter("ignore", ConvergenceWarning)
    search.fit(X_train, y_train)

best = search.best_params_
print("best:", best["rnnclassifier__cell"], best["rnnclassifier__hidden_size"],
      "z-normalised" if best["functiontransformer"] != "passthrough" else "raw")
print(f"cross-validated accuracy {search.best_score_:.3f}, "
      f"held-out accuracy {search.score(X_test, y_test):.3f}")

# %%
# The grid's scores
# -----------------
# The Elman RNN stays far behind the gated cells, not far above chance (a
# third): it has to keep the ramp's direction in its state over up to 50
# steps.  The GRU and the LSTM solve the task, and the per-series
# normalisation helps most of them, the narrow ones most.  With two folds
# of 200 series and 30 epochs the scores are noisy (the error bars are the
# spread over the two folds; one candidate can draw an unlucky fold): a
# real search would use more folds, data and epochs.
results = search.cv_results_
for params, mean, std in zip(results["params"], results["mean_test_score"],
                             results["std_test_score"]):
    prep = "raw" if params["functiontransformer"] == "passthrough" else "z-norm"
    print(f"{params['rnnclassifier__cell']:>4} {params['rnnclassifier__hidden_size']:2d} "
          f"{prep:>6}: {mean:.3f} +- {std:.3f}")
cells = ["rnn", "gru", "lstm"]
widths = [8, 32]
labels = [f"{c}\n{w} units" for c in cells for w in widths]
x = np.arange(len(labels))
# sphinx_gallery_thumbnail_number = 2
fig, ax = plt.subplots(figsize=(9, 4))
for k, (prep, name) in enumerate([("z", "z-normalised"), ("raw", "raw")]):
    means, stds = [], []
    for c in cells:
        for w in widths:
            for i, params in enumerate(results["params"]):
                is_raw = params["functiontransformer"] == "passthrough"
                if (params["rnnclassifier__cell"] == c
                        and params["rnnclassifier__hidden_size"] == w
                        and is_raw == (prep == "raw")):
                    means.append(results["mean_test_score"][i])
                    stds.append(results["std_test_score"][i])
    ax.bar(x + (k - 0.5) * 0.38, means, 0.38, yerr=stds, capsize=3, label=name)
ax.axhline(1 / 3, color="grey", ls="--", lw=1, label="chance")
ax.set_xticks(x)
ax.set_xticklabels(labels)
ax.set_ylabel("mean accuracy (2-fold CV)")
ax.set_ylim(0, 1.05)
ax.set_title("GridSearchCV over the pipeline")
ax.legend(loc="lower right", fontsize="small")
fig.tight_layout()
plt.show()
