"""
====================================
Streaming predictions with a stepper
====================================

A model trained on whole sequences can run online: one observation in,
one prediction out, as the data arrive.  ``model.stepper()`` returns a
:class:`~crnn.Stepper` that copies the fitted weights and runs one time
step per call; the caller carries the recurrent state between calls.

Here a GRU learns to predict the next value of a clean sine wave from a
noisy one (a denoising one-step-ahead filter).  We then stream a new
signal through the stepper frame by frame, check that the streamed outputs
are those of a batch ``predict`` over the whole signal (to float32
rounding), and time a
step.
"""

# %%
# Training on whole sequences
# ---------------------------
# ``return_sequences=True`` gives a prediction at every step, so the
# targets have shape ``(n_samples, n_timesteps)``: at step ``t`` the
# target is the clean wave at ``t + 1``.
import time
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from crnn import RNNRegressor


def make_waves(n_samples, n_steps, rng):
    t = np.arange(n_steps + 1)
    freq = rng.uniform(0.02, 0.08, size=(n_samples, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n_samples, 1))
    clean = np.sin(2 * np.pi * freq * t + phase)
    noisy = clean + 0.3 * rng.normal(size=clean.shape)
    return noisy[:, :-1, None].astype(np.float32), clean[:, 1:]


rng = np.random.default_rng(0)
X_train, y_train = make_waves(300, 100, rng)

model = RNNRegressor(cell="gru", hidden_size=16, return_sequences=True,
                     learning_rate_init=0.01, max_iter=30, random_state=0)
with warnings.catch_warnings():      # a fixed, small number of epochs on purpose
    warnings.simplefilter("ignore", ConvergenceWarning)
    model.fit(X_train, y_train)
print(f"training loss after {model.n_iter_} epochs: {model.loss_:.4f}")

# %%
# Streaming, one frame at a time
# ------------------------------
# A new signal, three times longer than the training sequences, arrives one
# observation (an array of ``n_features`` values) at a time.  ``state=None``
# starts from zeros; each call returns the prediction and the new state.
X_stream, y_stream = make_waves(1, 300, rng)
frames = X_stream[0]                         # (300, 1)

step = model.stepper()
state = None
streamed = []
for x_t in frames:
    y_t, state = step.step(x_t, state)
    streamed.append(y_t)
streamed = np.array(streamed)

# %%
# The same numbers as a batch prediction
# --------------------------------------
# ``predict`` on the whole signal gives the output of every step at once.
# The stepper runs the same cell kernels on the same weights, so the two
# agree to float32 rounding (the largest difference is printed
# below; on the machine that built this page it may well be zero).
batch = model.predict(X_stream)[0]
assert np.allclose(streamed, batch, rtol=1e-5, atol=1e-5)
print("largest difference, streamed vs batch:", np.abs(streamed - batch).max())

# %%
# ``predict`` can also carry the state itself: ``return_state=True`` returns
# the final state of a chunk, and ``initial_state`` starts the next chunk
# from it.  Feeding the signal in two chunks gives the same result again;
# the state has PyTorch's layout, ``(num_layers, n_samples, hidden_size)``.
first, h = model.predict(X_stream[:, :120], return_state=True)
second = model.predict(X_stream[:, 120:], initial_state=h)
chunked = np.concatenate([first, second], axis=1)[0]
assert np.allclose(chunked, batch, rtol=1e-5, atol=1e-5)
print("state shape:", h.shape)

# %%
# Cost of a step
# --------------
# A step is one call into the compiled kernel, with no Python loop over the
# network's layers; for a model this small it takes microseconds.
n_calls = 2000
t0 = time.perf_counter()
state = None
for i in range(n_calls):
    _, state = step.step(frames[i % len(frames)], state)
per_step = (time.perf_counter() - t0) / n_calls
print(f"{per_step * 1e6:.1f} microseconds per step")

# %%
# Several streams at once
# -----------------------
# ``stepper(n_streams=k)`` steps ``k`` independent streams per call (say,
# ``k`` sensors): the input is ``(k, n_features)`` and the state holds one
# row per stream.
X_three, _ = make_waves(3, 300, rng)
multi = model.stepper(n_streams=3)
state, outs = None, []
for t in range(X_three.shape[1]):
    y_t, state = multi.step(X_three[:, t], state)
    outs.append(y_t)
assert np.allclose(np.array(outs).T, model.predict(X_three), rtol=1e-5, atol=1e-5)

# %%
# What the filter does
# --------------------
# The streamed prediction follows the clean wave one step ahead, well
# inside the noise of the observations; its mean squared error against
# the clean signal is a fraction of the raw observations'.  The first few
# steps, before the state has seen a cycle, are the worst.
mse_model = np.mean((streamed - y_stream[0]) ** 2)
mse_raw = np.mean((frames[:, 0] - y_stream[0]) ** 2)
print(f"MSE against the clean next value: streamed {mse_model:.4f}, "
      f"raw observation {mse_raw:.4f}")

fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True,
                               gridspec_kw={"height_ratios": [3, 1]})
ax1.plot(frames[:, 0], ".", ms=3, color="grey", alpha=0.6, label="noisy observations")
ax1.plot(y_stream[0], color="black", lw=1, label="clean value (target)")
ax1.plot(streamed, color="tab:orange", lw=1.5, label="streamed prediction")
ax1.set_ylabel("value")
ax1.legend(loc="upper right", fontsize="small")
ax1.set_title("GRU stepper on a stream, one frame at a time")
ax2.plot(np.abs(streamed - batch), color="tab:blue")
ax2.set_ylabel("|streamed - batch|")
ax2.set_xlabel("time step")
ax2.set_ylim(-1e-6, 1e-5)
ax2.text(0.01, 0.6, f"largest: {np.abs(streamed - batch).max():.1e}",
         transform=ax2.transAxes)
fig.tight_layout()
plt.show()
