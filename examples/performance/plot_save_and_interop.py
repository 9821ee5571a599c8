"""
===============================================
Saving a model, ONNX export and PyTorch weights
===============================================

A fitted crnn model can leave Python's pickle behind in three ways:

- ``model.save(path)`` writes a *model file* (a zip of ``.npy`` arrays and
  one JSON document) that :func:`crnn.load` reads back without unpickling
  anything, bit for bit;
- :func:`crnn.to_onnx` exports the network as an ONNX graph of standard
  ``LSTM`` / ``GRU`` / ``RNN`` operators, for onnxruntime and other ONNX
  runtimes;
- ``state_dict()`` returns the weights under the names and shapes of a
  PyTorch module (``nn.LSTM`` + ``nn.Linear``), and ``load_state_dict``
  takes them back.

We train a small two-layer LSTM classifier on sequences of different
lengths and check that all four give the same probabilities.
"""

# %%
# A model to move around
# ----------------------
# Three classes: which of three channels drifts upwards most over the
# sequence.  The sequences have 10 to 40 steps.
import os
import tempfile
import warnings
import zipfile

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import crnn
from crnn import RNNClassifier

rng = np.random.default_rng(0)


def make_drifts(n_samples):
    X = [rng.normal(size=(int(n), 3)).astype(np.float32)
         for n in rng.integers(10, 41, size=n_samples)]
    y = np.array([x.sum(axis=0).argmax() for x in X])
    return X, y


X_train, y_train = make_drifts(600)
X_test, y_test = make_drifts(200)
model = RNNClassifier(cell="lstm", hidden_size=16, num_layers=2, learning_rate_init=0.01,
                      max_iter=15, random_state=0)
with warnings.catch_warnings():      # 15 epochs on purpose: no convergence warning
    warnings.simplefilter("ignore", ConvergenceWarning)
    model.fit(X_train, y_train)
proba = model.predict_proba(X_test)
print(f"test accuracy {model.score(X_test, y_test):.3f}")

# %%
# A model file
# ------------
# ``save`` writes the parameters and everything fitting learned (weights,
# optimizer state, random stream), so the loaded model also continues
# training where this one stopped.  The file opens without running code:
# its arrays are read with ``allow_pickle=False``.
workdir = tempfile.TemporaryDirectory()
path = os.path.join(workdir.name, "drifts.crnn")
model.save(path)
with zipfile.ZipFile(path) as archive:
    print(f"{os.path.getsize(path)} bytes:", archive.namelist())

loaded = crnn.load(path)
proba_loaded = loaded.predict_proba(X_test)
assert np.array_equal(proba_loaded, proba)
print("loaded:", type(loaded).__name__, "- the same probabilities, bit for bit")

# %%
# ONNX
# ----
# ``sequence_lens=True`` adds an input with each sequence's length, so a
# zero-padded batch of sequences of different lengths gives each its own
# result (the head reads each sequence's own last step).  The graph
# computes in float32.  This part needs ``onnx`` and ``onnxruntime``
# (``pip install "crnn[onnx]" onnxruntime``) and is skipped without them.
lengths = np.array([len(x) for x in X_test])
padded = np.zeros((len(X_test), lengths.max(), 3), dtype=np.float32)
for i, x in enumerate(X_test):
    padded[i, :len(x)] = x

try:
    import onnx
    import onnxruntime as ort
except ImportError:
    proba_onnx = None
    print("onnx / onnxruntime are not installed: skipping the ONNX export")
else:
    graph = crnn.to_onnx(model, sequence_lens=True)
    onnx_path = os.path.join(workdir.name, "drifts.onnx")
    onnx.save(graph, onnx_path)
    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    print("ONNX inputs:", [i.name for i in session.get_inputs()],
          "outputs:", [o.name for o in session.get_outputs()])
    label_onnx, proba_onnx = session.run(
        None, {"X": padded, "sequence_lens": lengths.astype(np.int32)})
    assert np.allclose(proba_onnx, proba, atol=1e-5)
    print(f"same labels: {np.mean(label_onnx == model.predict(X_test)):.0%}")
    print(f"onnxruntime: largest difference {np.abs(proba_onnx - proba).max():.1e}")

# %%
# PyTorch
# -------
# ``state_dict()`` names the weights as a module with a recurrent submodule
# ``rnn`` (``nn.LSTM(batch_first=True)``, PyTorch's gate order) and a head
# ``head`` (``nn.Linear``) that reads the top layer's last state,
# ``h_n[-1]``.  A packed batch gives PyTorch each sequence's own last
# state.
state = model.state_dict()
for name, value in state.items():
    print(f"{name:<18} {value.shape}")


class LSTMClassifier(nn.Module):
    def __init__(self, n_features, hidden_size, num_layers, n_classes):
        super().__init__()
        self.rnn = nn.LSTM(n_features, hidden_size, num_layers, batch_first=True)
        self.head = nn.Linear(hidden_size, n_classes)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.rnn(packed)
        return self.head(h_n[-1])


net = LSTMClassifier(3, 16, 2, len(model.classes_))
net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
with torch.no_grad():
    logits = net(torch.from_numpy(padded), torch.from_numpy(lengths))
proba_torch = torch.softmax(logits, dim=1).numpy()
assert np.allclose(proba_torch, proba, atol=1e-5)
print(f"torch: largest difference {np.abs(proba_torch - proba).max():.1e}")

# %%
# The way back: weights trained (or edited) in PyTorch load into a crnn
# model with the same architecture, which then predicts and can continue
# training with ``partial_fit``.  Here we scale the head's weights in
# PyTorch and load them into a fresh estimator.
with torch.no_grad():
    net.head.weight.mul_(2.0)
sharper = RNNClassifier(cell="lstm", hidden_size=16, num_layers=2)
sharper.load_state_dict({k: v.detach() for k, v in net.state_dict().items()},
                        classes=model.classes_)
with torch.no_grad():
    proba_sharper = torch.softmax(
        net(torch.from_numpy(padded), torch.from_numpy(lengths)), dim=1).numpy()
assert np.allclose(sharper.predict_proba(X_test), proba_sharper, atol=1e-5)

# %%
# The probabilities side by side
# ------------------------------
# Left: each runtime's probability of every class of the test sequences
# against crnn's; they lie on the diagonal.  Right: the absolute
# differences.  The loaded model file is exact; onnxruntime and PyTorch
# compute the same float32 network with their own kernels (other
# summation orders, other ``tanh`` and sigmoid approximations), so they
# differ from crnn by float32 rounding: at most a few times 1e-7.
others = {"crnn.load": proba_loaded, "PyTorch": proba_torch}
if proba_onnx is not None:
    others["onnxruntime"] = proba_onnx

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
for (name, p), marker in zip(others.items(), ("o", "x", "+")):
    ax1.scatter(proba.ravel(), p.ravel(), s=14, marker=marker, label=name)
ax1.plot([0, 1], [0, 1], color="grey", lw=1)
ax1.set_xlabel("crnn predict_proba")
ax1.set_ylabel("other runtime")
ax1.set_title("class probabilities, 200 test sequences")
ax1.legend()

tiny = 1e-12        # exact zeros drawn at the bottom of the log scale
for i, (name, p) in enumerate(others.items()):
    diff = np.abs(p - proba).ravel()
    jitter = rng.uniform(-0.25, 0.25, size=diff.size)
    ax2.scatter(i + jitter, np.maximum(diff, tiny), s=6, alpha=0.5)
ax2.set_yscale("log")
ax2.set_ylim(tiny / 3, 1e-4)
ax2.set_xticks(range(len(others)))
ax2.set_xticklabels([f"{name}\nmax {np.abs(p - proba).max():.0e}"
                     for name, p in others.items()])
ax2.set_ylabel("|difference| (0 drawn at 1e-12)")
ax2.set_title("absolute differences from crnn")
fig.tight_layout()
plt.show()

workdir.cleanup()
