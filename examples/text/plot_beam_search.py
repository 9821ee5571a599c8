"""
==========================================
Greedy decoding against beam search
==========================================

A translator writes its output one token at a time.  Greedy decoding takes
the most likely token at every step and never looks back; one early
mistake and the rest of the sentence follows it.  Beam search keeps the
``beam_size`` most likely partial translations at every step and returns
the best finished one, ranked by ``log p / length ** length_penalty``.

We train a small :class:`~crnn.RNNTranslator` to write numbers in French
words from English words (:func:`crnn.datasets.make_number_phrases`), and
compare the two decoders on numbers it never saw, as training goes on.
"""

# %%
# The data
# --------
# 2,000 training pairs, numbers drawn log-uniformly below a million (every
# number of digits about as frequent), and 200 test numbers excluded from
# training.
import time

import matplotlib.pyplot as plt
import numpy as np
from num2words import num2words

from crnn import RNNTranslator
from crnn.datasets import make_number_phrases
from crnn.metrics import corpus_bleu

rng = np.random.RandomState(0)
held_out = rng.choice(10**6, 200, replace=False)
X_train, y_train = make_number_phrases(2000, 0, 10**6, random_state=0, exclude=held_out)
X_test = [num2words(int(n), lang="en") for n in held_out]
y_test = [num2words(int(n), lang="fr") for n in held_out]
for a, b in zip(X_train[:4], y_train[:4]):
    print(f"{a!r} -> {b!r}")

# %%
# Training one epoch at a time
# ----------------------------
# ``partial_fit`` runs one epoch, so we can score both decoders after each:
# exact matches and corpus BLEU (:func:`crnn.metrics.corpus_bleu`) on the
# test numbers.  ``set_params(beam_size=...)`` changes the decoder of a
# fitted model; nothing is retrained.  A deliberately small model (32
# units) so that it makes mistakes for a few epochs.


def evaluate(model, beam_size, length_penalty=1.0):
    model.set_params(beam_size=beam_size, length_penalty=length_penalty)
    start = time.perf_counter()
    pred = model.predict(X_test)
    seconds = time.perf_counter() - start
    model.set_params(beam_size=1, length_penalty=1.0)
    exact = np.mean([p == t for p, t in zip(pred, y_test)])
    return pred, exact, corpus_bleu(list(pred), y_test), seconds


model = RNNTranslator(hidden_size=32, embedding_dim=32, learning_rate_init=3e-3,
                      random_state=0)
curves = {1: [], 4: []}
snapshot = 3                       # the epoch at which we look closer
for epoch in range(1, 9):
    model.partial_fit(X_train, y_train)
    for beam_size in curves:
        _, exact, bleu, _ = evaluate(model, beam_size)
        curves[beam_size].append((exact, bleu))
    print(f"epoch {epoch}: loss {model.loss_curve_[-1]:.3f}; exact matches "
          f"greedy {curves[1][-1][0]:.1%}, beam 4 {curves[4][-1][0]:.1%}; BLEU "
          f"greedy {curves[1][-1][1]:.1f}, beam 4 {curves[4][-1][1]:.1f}")
    if epoch == snapshot:
        # beam sizes and length penalties, on the model of this epoch
        beam_sizes, penalties = [1, 2, 4, 8, 16], [0.0, 1.0, 2.0]
        sweep = {(b, lp): evaluate(model, b, lp) for lp in penalties for b in beam_sizes}

# %%
# Beam search helps where the model is unsure: while it is still learning,
# beam search fixes some of the test numbers that greedy decoding gets
# wrong and breaks a few that it got right, for a point or two of BLEU on
# balance (the figure at the end).  Once the model is trained, the most
# likely token at each step is nearly always the right one, and both
# decoders write nearly the same translations.
#
# A closer look at the model of epoch 3
# -------------------------------------
# Here are the test numbers on which the two decoders disagree.  Greedy
# decoding's typical failures are there: a loop that repeats a phrase
# until the length limit (by default twice the source's tokens plus 10),
# or a translation that stops too early.  A looping hypothesis keeps
# losing log-probability with every token, so beam search prefers a
# finished one; it still makes mistakes of its own.
greedy = sweep[1, 1.0][0]
beam = sweep[4, 1.0][0]
for source, g, b, t in zip(X_test, greedy, beam, y_test):
    if g != b:
        print(f"{source}\n  greedy: {g}{'  (right)' if g == t else ''}"
              f"\n  beam 4: {b}{'  (right)' if b == t else ''}\n  French: {t}")

# %%
# And every beam size with three length penalties.  With
# ``length_penalty=0`` hypotheses are ranked by their total
# log-probability, which every extra token lowers, so beam search leans to
# short translations; 1 (the default) ranks by the log-probability per
# token.  On this task the choice matters little: French numbers have one
# right length and the model knows it.  Each extra hypothesis costs
# decoding time (on the right of the figure below).
for (b, lp), (_, exact, bleu, seconds) in sweep.items():
    print(f"beam {b:2d}, length_penalty {lp:g}: exact {exact:.1%}, BLEU {bleu:.1f}, "
          f"{seconds * 1000:.0f} ms for {len(X_test)} sentences")

# %%
# On real text, where a model stays much less sure of itself, the beam
# matters more: on English -> French software messages, five beams gain
# 2.8 BLEU over greedy decoding on average (:doc:`/performance`, section
# 4.3).
epochs = np.arange(1, len(curves[1]) + 1)
fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 4))
for beam_size, style in [(1, "o-"), (4, "s--")]:
    ax1.plot(epochs[1:], [bleu for _, bleu in curves[beam_size][1:]], style,
             label="greedy" if beam_size == 1 else f"beam {beam_size}")
ax1.axvline(snapshot, color="grey", lw=0.8)
ax1.set_xlabel("epoch (the first, BLEU about 2, left out)")
ax1.set_ylabel("BLEU on unseen numbers")
ax1.legend()
ax1.grid(alpha=0.3)
for lp in penalties:
    ax2.plot(beam_sizes, [sweep[b, lp][2] for b in beam_sizes], "o-",
             label=f"length_penalty={lp:g}")
ax2.set_ylabel("BLEU on unseen numbers")
ax2.legend(fontsize="small")
# decoding time hardly depends on the length penalty: the fastest of the
# three runs of each beam size, to damp the noise of a busy machine
ax3.plot(beam_sizes, [min(sweep[b, lp][3] for lp in penalties) * 1000 for b in beam_sizes],
         "o-", color="k")
ax3.set_ylabel(f"decoding time for {len(X_test)} sentences (ms)")
ax3.set_ylim(bottom=0)
for ax in (ax2, ax3):
    ax.set_xscale("log", base=2)
    ax.set_xticks(beam_sizes, [str(b) for b in beam_sizes])
    ax.set_xlabel(f"beam size (model of epoch {snapshot})")
    ax.grid(alpha=0.3)
fig.tight_layout()
plt.show()
