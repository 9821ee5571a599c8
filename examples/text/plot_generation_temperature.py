"""
=============================================
Sampling text: temperature, top-k and top-p
=============================================

A character-level language model gives, after any prefix, a probability
for every character that could come next.
:meth:`~crnn.RNNLanguageModel.generate` turns it into text by drawing one
character at a time, and its ``temperature``, ``top_k`` and ``top_p``
parameters decide how daring the draws are.

We train a small LSTM for a few seconds on the docstrings of the Python
standard library (they ship with every Python, so this example needs no
download), look at how the temperature reshapes one next-character
distribution, read samples drawn at several temperatures, and measure what
the temperature trades: text made of real words against varied text.
"""

# %%
# A corpus that ships with Python
# -------------------------------
# The docstrings of the modules, classes and functions of a few dozen
# standard-library modules, gathered with :func:`inspect.getdoc`: about
# 300,000 characters of English prose mixed with code, in about 600
# documents.  Each docstring is a document: the model learns where one
# ends (it writes an end of document as a line break).  The documents are
# shuffled, and the last 15,000 characters' worth held out.  (The corpus is
# the running Python's: the counts here, and the numbers below, move a
# little from one Python version to another.)
import importlib
import inspect
import re

import matplotlib.pyplot as plt
import numpy as np

from crnn import RNNLanguageModel

MODULES = ["argparse", "ast", "base64", "bisect", "calendar", "collections", "csv",
           "datetime", "decimal", "difflib", "enum", "fractions", "functools", "glob",
           "gzip", "heapq", "inspect", "io", "ipaddress", "itertools", "json", "logging",
           "os", "pathlib", "pickle", "random", "re", "shutil", "statistics", "string",
           "tarfile", "tempfile", "textwrap", "threading", "typing", "unittest",
           "urllib.parse", "uuid", "zipfile"]


def docstrings(module_names):
    """The distinct docstrings (100 characters or more) of the modules and
    of their classes and functions, sorted."""
    found = set()
    for name in module_names:
        module = importlib.import_module(name)
        objects = [module] + [obj for _, obj in inspect.getmembers(module)
                              if inspect.isclass(obj) or inspect.isroutine(obj)]
        for obj in objects:
            doc = inspect.getdoc(obj)
            if doc and len(doc) >= 100:
                found.add(doc)
    return sorted(found)


docs = docstrings(MODULES)
docs = [docs[i] for i in np.random.RandomState(0).permutation(len(docs))]
n_chars = np.cumsum([len(d) + 1 for d in docs])
n_train = int(np.searchsorted(n_chars, n_chars[-1] - 15_000))
train, val = docs[:n_train], docs[n_train:]
print(f"{len(train)} training documents ({sum(map(len, train)):,} characters), "
      f"{len(val)} held out ({sum(map(len, val)):,} characters)")
print(train[0][:300])

# %%
# Training
# --------
# One LSTM layer of 128 units reading characters through an embedding,
# trained for two passes over the text (truncated backpropagation through
# time over chunks of 50 characters, 16 streams in parallel).  That takes a
# few seconds on two cores.  ``bits_per_token`` scores the held-out
# documents: the average number of bits the model needs per character.
model = RNNLanguageModel(hidden_size=128, num_layers=1, seq_length=50, batch_size=16,
                         learning_rate_init=3e-3, max_iter=2, random_state=0)
model.fit(train)
val_bits = model.bits_per_token(val)
print(f"vocabulary: {len(model.vocab_)} tokens (characters, <unk>, <eos>)")
print(f"training loss per epoch (nats/char): {np.round(model.loss_curve_, 3)}")
print(f"held-out: {val_bits:.2f} bits ({val_bits * np.log(2):.2f} nats) per character")

# %%
# This is a small model trained briefly, and its samples below will be
# English-like rather than English.  Bigger models trained for longer do
# much better: a 2x256 LSTM reaches 1.5 nats (2.2 bits) per character on
# tinyshakespeare after about 4 minutes on two cores, and its samples read
# like a play (:doc:`/performance`, section 4.2, has the numbers and a
# sample).
#
# What the temperature does to one distribution
# ---------------------------------------------
# :meth:`~crnn.RNNLanguageModel.predict_proba` gives the distribution of
# the next character after a prefix.  Sampling at temperature ``T``
# draws from ``softmax(z / T)``, where ``z`` are the
# model's logits; since ``log p = z - const``, that is
# ``p ** (1 / T)`` renormalised.  Below 1 the likely characters get likelier
# (at 0, :meth:`~crnn.RNNLanguageModel.generate` always takes the most
# likely one); above 1 the distribution flattens towards uniform.
prompt = "Return the number of "
p = model.predict_proba(prompt)


def at_temperature(p, T):
    q = np.exp(np.log(np.maximum(p, 1e-300)) / T)
    return q / q.sum()


def label(token):
    return {" ": "\u2423", "\n": "\u21b5", "<eos>": "end"}.get(token, token)


temperatures = [0.5, 1.0, 2.0]
top = np.argsort(p)[::-1][:12]
fig, ax = plt.subplots(figsize=(8, 3.5))
width = 0.8 / len(temperatures)
for k, T in enumerate(temperatures):
    q = at_temperature(p, T)
    entropy = -(q * np.log2(np.maximum(q, 1e-300))).sum()
    ax.bar(np.arange(len(top)) + (k - 1) * width, q[top], width,
           label=f"T = {T:g} (entropy {entropy:.1f} bits)")
ax.set_xticks(np.arange(len(top)), [label(model.vocab_[i]) for i in top])
ax.set_ylabel("probability")
ax.set_title(f"next character after {prompt!r} (the 12 most likely)")
ax.legend()
fig.tight_layout()

# %%
# Samples at several temperatures
# -------------------------------
# The same prompt, the same ``random_state``, five temperatures.  At 0
# (greedy) the model loops on its favourite phrase; at 0.5 it is repetitive
# but mostly spelled right; at 1 it samples its own distribution, made-up
# words included; at 1.5 letters and punctuation come out nearly at random.
for T in [0.0, 0.5, 0.8, 1.0, 1.5]:
    text = model.generate(200, prompt=prompt, temperature=T, random_state=0)
    print(f"--- temperature {T:g}\n{prompt}{text}\n")

# %%
# ``top_k`` and ``top_p`` cut the tail instead: at temperature 1, draw only
# among the ``top_k`` most likely characters, or among the smallest set of
# them whose probability reaches ``top_p`` (nucleus sampling).  They keep
# the variety of temperature 1 but drop the improbable characters that
# derail a sample.
for kwargs in [dict(top_k=5), dict(top_p=0.9)]:
    text = model.generate(200, prompt=prompt, random_state=0, **kwargs)
    print(f"--- temperature 1, {kwargs}\n{prompt}{text}\n")

# %%
# Measuring the trade-off
# -----------------------
# For each setting we draw 3,000 characters and measure two things of the
# words of three letters or more in them: the share that are real words
# (found in the training text) and the share that are distinct (a sample
# that repeats itself scores low).  We also ask the model how surprised it
# is by its own sample, in bits per character, and compare with its score
# on the held-out docstrings.  Generation runs one step of the step kernel
# per character, so all of this takes well under a second.
WORD = r"[A-Za-z]{3,}"
known_words = set(re.findall(WORD, " ".join(train)))


def measure(text):
    words = re.findall(WORD, text)
    return (np.mean([w in known_words for w in words]), len(set(words)) / len(words),
            model.bits_per_token(text))


grid = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
by_temperature = np.array([measure(model.generate(3000, temperature=T, random_state=0))
                           for T in grid])
by_cut = {name: measure(model.generate(3000, random_state=0, **kwargs))
          for name, kwargs in [("top_k=5", dict(top_k=5)), ("top_p=0.9", dict(top_p=0.9))]}
for T, (real, distinct, bits) in zip(grid, by_temperature):
    print(f"T = {T:4.2f}: {real:6.1%} real words, {distinct:6.1%} distinct, "
          f"{bits:.2f} bits/char")
for name, (real, distinct, bits) in by_cut.items():
    print(f"T = 1, {name}: {real:6.1%} real words, {distinct:6.1%} distinct, "
          f"{bits:.2f} bits/char")

# %%
# On the left, each temperature is a point of a trade-off curve: low
# temperatures write real words but few distinct ones, high temperatures
# new strings that are rarely words.  ``top_k`` and ``top_p`` at
# temperature 1 (black) sit on or near that curve, between temperatures
# 0.5 and 1: for this model they buy about the trade that lowering the
# temperature does.  On the right, the model's surprise at its own samples
# grows with the temperature.  At 1 the model samples what it believes: a
# model that matched the text exactly would be as surprised by its samples
# as by real text (the dotted line).  This one is somewhat more surprised:
# once a sample has wandered off the kind of text it knows, it is less sure
# what comes next.  Below 1 its samples are safer than real text.
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
ax1.plot(by_temperature[:, 1], by_temperature[:, 0], "o-")
for T, (real, distinct, _) in zip(grid, by_temperature):
    ax1.annotate(f"T = {T:g}", (distinct, real), textcoords="offset points",
                 xytext=(6, 4), fontsize="small")
for marker, (name, (real, distinct, _)) in zip("^s", by_cut.items()):
    ax1.plot(distinct, real, marker, color="k", label=f"T = 1, {name}")
ax1.set_xlabel("distinct words (share of a sample's words)")
ax1.set_ylabel("real words (share of a sample's words)")
ax1.set_xlim(-0.05, 1.15)
ax1.set_ylim(-0.05, 1.1)
ax1.legend(fontsize="small", loc="lower left")
ax1.grid(alpha=0.3)
ax2.plot(grid, by_temperature[:, 2], "o-", label="the model's own samples")
ax2.axhline(val_bits, ls=":", color="k", label="held-out docstrings")
ax2.set_xlabel("temperature")
ax2.set_ylabel("bits per character (model's score)")
ax2.legend(fontsize="small")
ax2.grid(alpha=0.3)
fig.tight_layout()
plt.show()
