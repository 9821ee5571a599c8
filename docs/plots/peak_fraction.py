"""GFLOP/s as a share of the AVX2 (ymm) peak, crnn against PyTorch in the same
run (machine D; the third table of section 2.4 of performance.md)."""
import matplotlib.pyplot as plt
import numpy as np
from _tables import numbers, table

rows = table("2.4 Every cell", 2)[1:]
labels = [f"{r[0]}\n{r[2]}, {r[1]} thr" for r in rows]
crnn = np.array([numbers(r[4])[0] for r in rows])
torch = np.array([numbers(r[6])[0] for r in rows])
order = np.argsort([lab.split("\n")[0].split()[0] + lab.split("\n")[1] for lab in labels],
                   kind="stable")
fig, ax = plt.subplots(figsize=(10, 4.2), layout="constrained")
x = np.arange(len(rows))
ax.bar(x - 0.2, crnn[order], 0.4, label="crnn")
ax.bar(x + 0.2, torch[order], 0.4, label="torch 2.13.0 (oneDNN)")
ax.axhline(100, color="0.3", lw=1)
ax.set_xticks(x, [labels[i].replace("\n", " ") for i in order], rotation=90, fontsize=7)
ax.set_ylabel("% of the ymm peak")
ax.set_title("Compute-bound cases at AVX2: achieved GFLOP/s as a share of the peak")
ax.legend()
plt.show()
