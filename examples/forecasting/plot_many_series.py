"""
================================
One global model for many series
================================

Given a list of series, :class:`~crnn.RNNForecaster` trains *one* network
on all of them (each series scaled on its own) and forecasts them all
together, as parallel streams of its step kernel.  Series may have
different lengths.  A global model learns the dynamics the series share,
with more data than any one of them holds, and it forecasts series it
was never trained on.

The series here are cycles of irregular length, the kind of pattern of
animal populations or sunspot counts: each series has its own period
(8 to 14 steps), amplitude and level, its phase drifts at random, and
multiplicative noise is added.  No calendar season fits them, so the
seasonal naive forecast (the value one season back) and exponential
smoothing with an additive season are both a poor match; a network can
learn the shape of a cycle from its recent history.
"""

# %%
# Twelve series of different lengths
# ----------------------------------
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from crnn import RNNForecaster


def make_cycles(n_series, rng):
    series = []
    for i in range(n_series):
        n_steps = int(rng.integers(100, 161))
        period = rng.uniform(8, 14)
        phase = rng.uniform(0, np.pi) + np.cumsum(
            np.pi / period + 0.05 * rng.normal(size=n_steps))
        height = rng.uniform(20, 60)
        noise = 1 + 0.05 * rng.normal(size=n_steps)
        values = 10 + height * np.sin(phase) ** 2 * noise
        series.append(pd.Series(values, name=f"series {i}"))
    return series


rng = np.random.default_rng(0)
series = make_cycles(13, rng)
known, newcomer = series[:12], series[12]
horizon = 12
train = [s[:-horizon] for s in known]
test = [s[-horizon:] for s in known]
print("training lengths:", [len(s) for s in train])

# %%
# One fit for all the series
# --------------------------
# A list of series trains one global model.  The automatic configuration
# compares the candidates over all the series at once (their validation
# MASE is averaged over the series), and makes one choice for all of
# them.  Without a date index, the season length comes from the
# autocorrelation.  (The networks train for the default 200 epochs and
# say so with a ``ConvergenceWarning``, silenced here.)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    forecaster = RNNForecaster(random_state=0).fit(train)
for cand in forecaster.config_["candidates"]:
    name = cand["model"]
    if name == "rnn":
        name += f" (d={cand['difference']}, D={cand['seasonal_difference']})"
    print(f"{name:>20}: validation MASE {cand['score']:.3f}")
season = forecaster.config_["seasonal_period"]
print(f"chosen: {forecaster.config_['model']}, season length {season}, "
      f"{forecaster.n_series_} series")

# %%
# Forecasts, intervals and the baseline
# -------------------------------------
# ``predict`` returns a list: one forecast per series, each a Series
# continuing its own index.  Conformal intervals come the same way.  The
# seasonal naive forecast repeats each series' last ``season`` values.
forecasts = forecaster.predict(horizon)
lower, upper = forecaster.predict_interval(horizon, coverage=0.8)
naive = [pd.Series(np.resize(s.values[-season:], horizon), index=f.index)
         for s, f in zip(train, forecasts)]

mae_net = np.array([np.mean(np.abs(f - t)) for f, t in zip(forecasts, test)])
mae_naive = np.array([np.mean(np.abs(f - t)) for f, t in zip(naive, test)])
coverage = np.mean([((t >= lo) & (t <= hi)).mean() for t, lo, hi in zip(test, lower, upper)])
print(f"mean MAE over the 12 series: network {mae_net.mean():.2f}, "
      f"seasonal naive {mae_naive.mean():.2f}")
print(f"network better on {np.sum(mae_net < mae_naive)} of 12 series; "
      f"held-out values inside the 80 % intervals: {coverage:.0%}")

# %%
# Six of the twelve series, the last 48 steps of their history and the next
# 12.  The forecasts follow each series' own period and amplitude from the
# same weights.
fig, axes = plt.subplots(2, 3, figsize=(12, 5.5), sharex=False)
for i, ax in enumerate(axes.ravel()):
    history = train[i][-48:]
    ax.plot(history.index, history.values, color="tab:blue", lw=1)
    ax.plot(test[i].index, test[i].values, color="black", lw=1.2, label="actual")
    ax.plot(forecasts[i].index, forecasts[i].values, color="tab:blue", ls="--",
            lw=1.6, label="forecast")
    ax.fill_between(forecasts[i].index, lower[i].values, upper[i].values,
                    color="tab:blue", alpha=0.2, lw=0, label="80 % interval")
    ax.plot(naive[i].index, naive[i].values, color="tab:red", ls=":", lw=1.2,
            label="seasonal naive")
    ax.set_title(f"{known[i].name}: MAE {mae_net[i]:.1f} vs {mae_naive[i]:.1f}",
                 fontsize="medium")
axes[0, 0].legend(fontsize="x-small", loc="upper left")
fig.suptitle("one global model, twelve series (six shown)")
fig.tight_layout()
plt.show()

# %%
# All twelve series: the network's MAE against the seasonal naive
# forecast's.  Points below the diagonal are series where the network is
# better.  It is not better on every series: where a series' period
# happens to be close to the detected season length, copying the last
# season is hard to beat.
fig, ax = plt.subplots(figsize=(5, 5))
ax.scatter(mae_naive, mae_net)
for i in range(12):
    ax.annotate(str(i), (mae_naive[i], mae_net[i]), fontsize="small",
                xytext=(3, 3), textcoords="offset points")
top = 1.05 * max(mae_naive.max(), mae_net.max())
ax.plot([0, top], [0, top], color="grey", lw=1)
ax.set_xlim(0, top)
ax.set_ylim(0, top)
ax.set_xlabel("seasonal naive MAE")
ax.set_ylabel("RNNForecaster MAE")
ax.set_title("per series, 12 steps ahead")
fig.tight_layout()
plt.show()

# %%
# A series the model has never seen
# ---------------------------------
# ``predict(steps, y=history)`` forecasts from a new history with the
# fitted model: the history is scaled on its own, as at fit time, and the
# network is warmed up on it.  No refit is needed.
new_history, new_future = newcomer[:-horizon], newcomer[-horizon:]
new_forecast = forecaster.predict(horizon, y=new_history)
new_naive = np.resize(new_history.values[-season:], horizon)
print(f"new series: network MAE {np.mean(np.abs(new_forecast - new_future)):.2f}, "
      f"seasonal naive {np.mean(np.abs(new_naive - new_future.values)):.2f}")

# %%
# For thousands of series stored in a long table (one row per series and
# time step), :func:`crnn.dask.fit_forecaster` and :func:`crnn.dask.forecast`
# read the series on a Dask cluster and forecast them partition by
# partition on its workers.
