"""crnn's speed over PyTorch's per cell, case and mode, at AVX2 and AVX-512
(machine D; the two tables of section 2.4 of performance.md)."""
import matplotlib.pyplot as plt
import numpy as np
from _tables import numbers, table

fig, axes = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True, layout="constrained")
for ax, index, title in zip(axes, (0, 1), ("2 threads", "1 thread")):
    rows = table("2.4 Every cell", index)
    head, body = rows[0][1:], rows[1:]
    cases = [r[0] for r in body]
    x = np.arange(len(head))
    width = 0.8 / len(cases)
    for k, row in enumerate(body):
        avx2, avx512 = np.array([numbers(c) for c in row[1:]]).T
        pos = x - 0.4 + (k + 0.5) * width
        ax.bar(pos, avx2, width * 0.9, color=f"C{k}", label=cases[k])
        ax.scatter(pos, avx512, marker="_", s=120, color="k", zorder=3,
                   label="AVX-512" if k == 0 else None)
    ax.axhline(1.0, color="0.3", lw=1)
    ax.axhline(1.2, color="0.3", lw=1, ls=":")
    ax.set_yscale("log")
    ax.set_yticks([0.8, 1, 1.2, 2, 5, 10, 20], ["0.8", "1", "1.2", "2", "5", "10", "20"])
    ax.set_ylabel("torch time / crnn time")
    ax.set_title(f"float32, {title}: bars at AVX2, black marks at AVX-512 "
                 f"(above 1: crnn faster)")
axes[1].set_xticks(x, head)
axes[0].legend(ncol=7, fontsize=8, loc="upper right")
plt.show()
