"""RNNLanguageModel at its defaults against PyTorch's usual recipe on five
corpora: held-out nats per character (the table of section 4.2 of
performance.md; lower is better)."""
import matplotlib.pyplot as plt
import numpy as np
from _tables import numbers, table

rows = table("4.2 Language model", 0)
head, body = rows[0], rows[1:]
crnn_col = head.index("embedding of 128, 1e-3 (the default)")
torch_col = head.index("PyTorch")
corpora = [r[0] for r in body]
crnn = np.array([numbers(r[crnn_col])[0] for r in body])
torch = np.array([numbers(r[torch_col])[0] for r in body])
fig, ax = plt.subplots(figsize=(8, 3.6), layout="constrained")
y = np.arange(len(corpora))
ax.hlines(y, np.minimum(crnn, torch), np.maximum(crnn, torch), color="0.7", lw=3)
ax.scatter(crnn, y, s=60, zorder=3, label="crnn, RNNLanguageModel defaults")
ax.scatter(torch, y, s=60, marker="s", zorder=3, label="PyTorch (embedding + LSTM + linear)")
ax.set_yticks(y, corpora)
ax.invert_yaxis()
ax.set_xlabel("held-out nats per character (lower is better)")
ax.set_title("2 x 128 LSTM, 300,000 training characters, 10 epochs")
ax.legend(loc="center right", fontsize=8)
plt.show()
