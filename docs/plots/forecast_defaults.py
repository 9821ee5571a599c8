"""RNNForecaster at its defaults against statsforecast and the simple
baselines: geometric-mean MASE on the tuned, held-out and unseen sets (the
tables of section 4.1 of performance.md; lower is better)."""
import matplotlib.pyplot as plt
import numpy as np
from _tables import numbers, table

# model: its name in the tuned and held-out tables, its column in the unseen
# set's table, and its label on the figure
MODELS = [
    ("RNNForecaster(random_state=0)", "crnn", "crnn defaults"),
    ("crnn's exponential smoothing alone", "smoothing alone", "crnn smoothing alone"),
    ("RNNForecaster(baselines=False) (the network alone)", "network alone",
     "crnn network alone"),
    ("statsforecast AutoETS", "AutoETS", "AutoETS"),
    ("statsforecast AutoARIMA", "AutoARIMA", "AutoARIMA"),
    ("statsforecast AutoTheta", "AutoTheta", "AutoTheta"),
    ("seasonal naive", "s-naive", "seasonal naive"),
]


def per_model(rows):
    return {r[0].replace("`", ""): numbers(r[1])[0] for r in rows[1:]}


tuned = per_model(table("4.1 Forecasting", 1))
heldout = per_model(table("4.1 Forecasting", 2))
unseen_rows = table("4.1 Forecasting", 3)
head = unseen_rows[0]
mean_row = next(r for r in unseen_rows if r[0].startswith("geometric mean"))
unseen = {m: numbers(mean_row[head.index(c)])[0] for m, c, _ in MODELS}

sets = [("tuned (26 series)", tuned), ("held-out (16)", heldout),
         ("unseen (12; AutoARIMA 11)", unseen)]
fig, ax = plt.subplots(figsize=(10, 4), layout="constrained")
x = np.arange(len(MODELS))
labels = [label.replace(" ", "\n", 1) for _, _, label in MODELS]
for k, (name, scores) in enumerate(sets):
    ax.bar(x + (k - 1) * 0.27, [scores[m] for m, _, _ in MODELS], 0.27, label=name)
ax.axhline(1.0, color="0.3", lw=1)
ax.set_xticks(x, labels)
ax.set_ylabel("geometric-mean MASE")
ax.set_title("Rolling-origin backtests, 3 origins per series (lower is better)")
ax.legend()
plt.show()
