"""
==============================================
Learning curves, validation and early stopping
==============================================

A task that needs memory: each sequence is a stream of random symbols, and
one step in its first half carries a flag.  The label is the symbol shown
at the flagged step, so the network has to notice the flag, store the
symbol and carry it over up to 40 steps of distractors to the end of the
sequence, where the many-to-one head reads its state.

We train a GRU and an Elman RNN on it with a separate validation set and
early stopping, and plot what the fitted estimators record about every
epoch: ``loss_curve_`` (training loss), ``validation_loss_curve_`` and
``validation_scores_`` (here accuracy on the validation set).
"""

# %%
# The data
# --------
# Four symbols, one-hot coded, plus a fifth channel that is 1 at the
# flagged step.  Chance level is 25 % accuracy.
import matplotlib.pyplot as plt
import numpy as np

from crnn import RNNClassifier
from crnn.plotting import plot_learning_curve

N_SYMBOLS, N_STEPS = 4, 40


def make_recall(n_samples, rng):
    symbols = rng.integers(0, N_SYMBOLS, size=(n_samples, N_STEPS))
    X = np.zeros((n_samples, N_STEPS, N_SYMBOLS + 1), dtype=np.float32)
    X[np.arange(n_samples)[:, None], np.arange(N_STEPS), symbols] = 1.0
    flagged = rng.integers(0, N_STEPS // 2, size=n_samples)
    X[np.arange(n_samples), flagged, N_SYMBOLS] = 1.0
    y = symbols[np.arange(n_samples), flagged]
    return X, y


rng = np.random.default_rng(0)
X_train, y_train = make_recall(800, rng)
X_val, y_val = make_recall(300, rng)
X_test, y_test = make_recall(500, rng)
print("X_train:", X_train.shape, " classes:", np.bincount(y_train))

# %%
# Fitting with a validation set
# -----------------------------
# ``early_stopping=True`` scores the validation set after every epoch and
# stops once ``n_iter_no_change`` epochs in a row have not improved the
# score by ``tol``; the weights of the best epoch are restored.  Here the
# validation set is given explicitly (``X_val``, ``y_val``); without it,
# ``validation_fraction`` of the training set is held out (stratified).
#
# The two models differ only in the cell.
params = dict(hidden_size=16, learning_rate_init=0.02, max_iter=60,
              early_stopping=True, n_iter_no_change=10, random_state=0)
models = {}
for cell in ("gru", "rnn"):
    model = RNNClassifier(cell=cell, **params)
    model.fit(X_train, y_train, X_val=X_val, y_val=y_val)
    models[cell] = model
    print(f"{cell:>4}: {model.n_iter_:2d} epochs, best validation accuracy "
          f"{model.best_validation_score_:.3f}, test accuracy "
          f"{model.score(X_test, y_test):.3f}")

# %%
# The curves
# ----------
# :func:`crnn.plotting.plot_learning_curve` draws the training and
# validation losses of a fitted model (and its validation score on a
# second axis).  The GRU's curve has the shape typical of memory tasks: a
# plateau at chance while the loss barely moves, then a sharp drop once
# the update gate learns to hold the flagged symbol.  Ten epochs after the
# validation accuracy stops improving, training stops.
#
# Below, the validation accuracy of both cells: the Elman RNN never
# leaves chance level, and early stopping gives up on it after ten epochs
# without progress.  (Trained for all 60 epochs it stays at chance too:
# its gradient vanishes over the 20-40 steps between the flag and the
# head.)
fig, (ax_left, ax_right) = plt.subplots(2, 1, figsize=(9, 8))
plot_learning_curve(models["gru"], ax=ax_left, title="GRU: losses per epoch")
for cell, label in (("gru", "GRU"), ("rnn", "Elman RNN")):
    scores = models[cell].validation_scores_
    ax_right.plot(np.arange(1, len(scores) + 1), scores, marker=".", label=label)
ax_right.axhline(1 / N_SYMBOLS, color="grey", ls="--", lw=1, label="chance")
ax_right.set_xlabel("epoch")
ax_right.set_ylabel("validation accuracy")
ax_right.set_ylim(0, 1.05)
ax_right.set_title("validation_scores_")
ax_right.legend()
ax_right.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %%
# Other recorded quantities
# -------------------------
# The fitted model also keeps the learning rate of every epoch
# (``learning_rate_curve_``, constant here; see the ``learning_rate``
# schedules) and the number of epochs run (``n_iter_``).
gru = models["gru"]
print("epochs run:", gru.n_iter_)
print("best validation score:", gru.best_validation_score_)
print("learning rates:", sorted(set(gru.learning_rate_curve_)))
