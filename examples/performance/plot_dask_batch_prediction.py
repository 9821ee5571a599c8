"""
==================================
Batch prediction on a Dask cluster
==================================

:func:`crnn.dask.predict` applies a fitted model's prediction method to a
chunked dask array, block by block on the workers of a Dask cluster, and
returns a lazy dask array with the input's chunks.  The fitted model is a
single task of the graph that every block depends on, so each worker
receives it once, not once per block.  The results are those of the
in-memory ``predict``.

Here the cluster is a small :class:`distributed.LocalCluster`: two workers
with one thread each.  On a real cluster only the ``Client`` line changes
(``Client("tcp://scheduler:8786")``), and the array would come from zarr
or another chunked store instead of memory.
"""

# %%
# A model to apply
# ----------------
# A small GRU classifier that tells whether the first channel of a
# sequence drifts up or down (its sum is positive), trained in memory.

import time
import warnings

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from distributed import Client, LocalCluster, get_task_stream
from sklearn.exceptions import ConvergenceWarning

import crnn.dask
from crnn import RNNClassifier

rng = np.random.default_rng(0)


def make_drifts(n_samples):
    X = rng.normal(size=(n_samples, 30, 3)).astype(np.float32)
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(int)


X_train, y_train = make_drifts(2000)
clf = RNNClassifier(cell="gru", hidden_size=16, learning_rate_init=0.01, max_iter=20,
                    random_state=0)
with warnings.catch_warnings():      # 20 epochs on purpose: no convergence warning
    warnings.simplefilter("ignore", ConvergenceWarning)
    clf.fit(X_train, y_train)

# %%
# The data to score: 20,000 sequences in ten chunks of 2,000 along the
# samples axis.  ``crnn.dask.predict`` also takes a numpy array (or
# ``np.memmap``) and chunks it itself.
X_big, y_big = make_drifts(20_000)
X_dask = da.from_array(X_big, chunks=(2000, -1, -1))
print(X_dask)

# %%
# A local cluster
# ---------------
# ``processes=False`` runs the two workers as threads of this process:
# it starts in milliseconds, which suits a documentation build (worker
# processes would each import crnn first, and a script that starts them
# needs an ``if __name__ == "__main__":`` guard).  crnn's kernels release
# the GIL, so the two workers do run in parallel.  Worker threads in this
# process do not get a worker process's one-thread budget, so the model is
# told to use one thread per call (``n_jobs=1``; ``n_jobs`` applies to each
# call as set at the time): two workers, two cores.
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                       dashboard_address=None)
client = Client(cluster)
clf.set_params(n_jobs=1)

# %%
# Lazy predictions
# ----------------
# ``crnn.dask.predict`` builds the graph; nothing runs until ``compute``
# (or ``to_zarr``, ``persist``...).  ``method="predict_proba"`` gives one
# row of probabilities per sequence.  The task stream records when each
# block ran, and on which worker.
labels = crnn.dask.predict(clf, X_dask)
proba = crnn.dask.predict(clf, X_dask, method="predict_proba")
print("lazy:", proba)
t0 = time.perf_counter()
with get_task_stream() as stream:
    labels_out, proba_out = da.compute(labels, proba)
print(f"computed in {time.perf_counter() - t0:.2f} s")

# %%
# The same results as in memory
# -----------------------------
# Batch invariance makes a sequence's prediction the same whatever block
# it falls in, so the distributed result equals the local one: exactly on
# CPUs with AVX2 or AVX-512, whose kernels promise it, and to rounding
# elsewhere.
local_proba = clf.predict_proba(X_big)
assert np.allclose(proba_out, local_proba, rtol=1e-6, atol=1e-7)
print("bit for bit the same as predict_proba:", np.array_equal(proba_out, local_proba))
print(f"accuracy on the 20,000: {np.mean(labels_out == y_big):.3f}")

# %%
# Sequences of different lengths go as a list (computed, a list back) or a
# dask bag (lazy, a bag back).
ragged = [rng.normal(size=(int(n), 3)).astype(np.float32)
          for n in rng.integers(10, 60, size=200)]
ragged_out = crnn.dask.predict(clf, ragged, npartitions=4)
assert np.mean(np.asarray(ragged_out) == clf.predict(ragged)) > 0.99

# %%
# Where the blocks ran
# --------------------
# Left: each prediction block as a bar on the worker that ran it (the two
# methods make twenty blocks).  Right: the predicted probability of an
# upward drift against the true sum of the first channel: the model is
# unsure only near zero.
blocks = [t for t in stream.data if "_apply_block" in str(t["key"])]
workers = sorted({t["worker"] for t in blocks})
start = min(s["start"] for t in blocks for s in t["startstops"])
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
for t in blocks:
    lane = workers.index(t["worker"])
    for s in t["startstops"]:
        if s["action"] == "compute":
            ax1.barh(lane, (s["stop"] - s["start"]) * 1e3,
                     left=(s["start"] - start) * 1e3, height=0.6,
                     color=f"C{lane}", edgecolor="white")
ax1.set_yticks(range(len(workers)))
ax1.set_yticklabels([f"worker {i}" for i in range(len(workers))])
ax1.set_xlabel("time since the first block (ms)")
ax1.set_title(f"{len(blocks)} prediction blocks on {len(workers)} workers")

drift = X_big[:, :, 0].sum(axis=1)
ax2.scatter(drift[:2000], proba_out[:2000, 1], s=4, alpha=0.5)
ax2.set_xlabel("sum of the first channel")
ax2.set_ylabel("P(upward drift)")
ax2.set_title("predict_proba from the cluster (2,000 shown)")
ax2.grid(alpha=0.3)
fig.tight_layout()
plt.show()

# %%
# Shutting down
# -------------
client.close()
cluster.close()
