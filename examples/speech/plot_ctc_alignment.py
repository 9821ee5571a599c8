"""
=============================================
Speech to text with CTC: where each digit is
=============================================

:class:`~crnn.RNNTranscriber` reads a sequence of audio frames and writes
its transcript.  It is trained with the Connectionist Temporal
Classification loss (CTC), which needs the transcript of each recording
but not where in the recording each symbol is spoken: the network learns
the alignment itself.  After training, its per-frame outputs show that
alignment.

The recordings are spoken digit strings made on this machine by
:func:`crnn.datasets.make_spoken_digits` (the espeak-ng speech synthesiser,
then MFCC features with librosa).  We train on some voices, test on voices
the model never heard, and plot, for one test utterance, its features and
the per-frame probabilities of the blank and of every digit.
"""

# %%
# The data
# --------
# espeak-ng has several English accents and about a hundred voice
# variants.  :func:`~crnn.datasets.split_voices` holds out six variants
# entirely: every test utterance is spoken by a voice the model never
# heard.  Each utterance is a string of 3 to 8 digits at a random speed
# and pitch, turned into 13 MFCCs with their first and second differences
# (39 features per frame).  To keep this example fast, one frame every
# 20 ms instead of the default 10 ms: 400 training utterances and 100 test
# utterances take a few seconds to synthesise, one per core at a time
# (``n_jobs=-1``).  The MFCCs are small matrix products, where the BLAS
# library's own threads only compete with those of ``n_jobs`` (on a busy
# machine they made this step three times slower): ``threadpool_limits``
# from threadpoolctl (a dependency of scikit-learn) keeps BLAS to one
# thread meanwhile.
import warnings

import matplotlib.pyplot as plt
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from crnn import RNNTranscriber
from crnn.datasets import make_spoken_digits, spoken_digit_voices, split_voices
from crnn.plotting import plot_learning_curve

train_voices, test_voices = split_voices(spoken_digit_voices(), n_test_variants=6,
                                         random_state=0)
print(f"{len(train_voices)} training voices, {len(test_voices)} test voices, e.g. "
      f"{test_voices[:3]}")
with threadpool_limits(limits=1, user_api="blas"):
    X_train, y_train = make_spoken_digits(400, voices=train_voices, hop_length_ms=20,
                                          random_state=0, n_jobs=-1)
    X_test, y_test = make_spoken_digits(100, voices=test_voices, hop_length_ms=20,
                                        random_state=1, n_jobs=-1)
print(f"first utterance: {X_train[0].shape[0]} frames x {X_train[0].shape[1]} features, "
      f"transcript {y_train[0]!r}")

# %%
# Training
# --------
# A bidirectional LSTM of one layer of 64 units per direction, with an
# output per frame over the blank and the ten digits.  The transcripts are
# plain strings; the alphabet is their characters.  Fifteen epochs at a
# high learning rate: a few seconds.  ``max_iter`` is a budget here, so the
# warning that training has not converged is silenced.
model = RNNTranscriber(hidden_size=64, num_layers=1, learning_rate_init=1e-2,
                       batch_size=16, max_iter=15, random_state=0)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    model.fit(X_train, y_train)
print(f"alphabet: {model.alphabet_}")
ax = plot_learning_curve(model, title="CTC loss per epoch (training)")

# %%
# CTC training goes through a plateau: the loss falls quickly to about 2.5,
# where the network says "blank" nearly everywhere, and only then lower, as
# the digits start to appear.  At this learning rate the plateau lasts an
# epoch or two; at lower rates it lasts many more, which is why this
# example uses 1e-2 rather than the default 1e-3.
#
# Transcribing unseen voices
# --------------------------
# ``score`` is 1 minus the character error rate: the edit distance of the
# transcripts to the references over the references' total length.
# ``predict`` decodes the best path (the most probable class of every
# frame, repeats merged, blanks dropped); ``beam_size`` switches to CTC
# prefix beam search.
pred = model.predict(X_test)
cer = 1 - model.score(X_test, y_test)
exact = np.mean([p == t for p, t in zip(pred, y_test)])
print(f"unseen voices: character error rate {cer:.1%}, {exact:.0%} of the "
      f"utterances exactly right")
model.set_params(beam_size=8)
print(f"with beam search (8 prefixes): character error rate "
      f"{1 - model.score(X_test, y_test):.1%}")
model.set_params(beam_size=1)
print(f"on its training data: character error rate "
      f"{1 - model.score(X_train[:100], y_train[:100]):.1%}")
for p, t in zip(pred[:10], y_test[:10]):
    print(f"  {t:>8} -> {p:<8} {'' if p == t else '(wrong)'}")

# %%
# Trained on 400 utterances for a few seconds, the model transcribes most
# test utterances exactly.  Its errors are mostly dropped digits, repeated
# digits merged among them (the two copies of a repeated digit need a
# blank frame between them), and a few utterances lose several digits.
# It transcribes its training data perfectly: the error is the new
# voices, which 400 utterances do not prepare it for.  With 3,000
# training utterances, one frame every 10 ms and the default model (two
# layers of 128 units) trained for ten epochs, the character error rate on
# unseen voices is 0.2-1.2% (:doc:`/performance`, section 4.4).
#
# Where the digits are
# --------------------
# ``predict_proba`` gives the per-frame posteriors: one array of
# (frames, 11) per utterance, columns ``classes_`` (the blank, then the
# digits).  Above, the utterance's features (the 13 MFCCs; the differences
# are left out of the picture); below, the probability of each class at
# each frame.
i = int(np.argmax([len(t) >= 6 for t in y_test]))    # a test utterance of 6+ digits
features, proba = X_test[i], model.predict_proba([X_test[i]])[0]
# sphinx_gallery_thumbnail_number = 2
frames = np.arange(len(features))
seconds = frames * 0.020

best = proba.argmax(axis=1)
emitted = np.flatnonzero((best > 0) & (np.diff(best, prepend=0) != 0))
colors = plt.get_cmap("tab10")

fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True,
                               gridspec_kw=dict(height_ratios=[1, 1.2]))
ax1.imshow(features[:, :13].T, aspect="auto", origin="lower", cmap="coolwarm",
           vmin=-3, vmax=3, extent=(0, len(features) * 0.020, -0.5, 12.5))
ax1.set_ylabel("MFCC (normalised)")
ax1.set_title(f"reference {y_test[i]!r}, transcript {pred[i]!r}")
ax2.fill_between(seconds, proba[:, 0], color="0.85", label="blank")
for k in range(1, len(model.classes_)):
    ax2.plot(seconds, proba[:, k], color=colors(k - 1), lw=1.5)
for t in emitted:
    for ax in (ax1, ax2):
        ax.axvline(seconds[t], color=colors(best[t] - 1), ls="--", lw=1)
    ax2.annotate(model.classes_[best[t]], (seconds[t], proba[t, best[t]]),
                 textcoords="offset points", xytext=(0, 4), ha="center",
                 fontsize="large", fontweight="bold", color=colors(best[t] - 1))
ax2.set_ylim(0, 1.15)
ax2.set_xlabel("time (s)")
ax2.set_ylabel("probability")
ax2.legend(loc="upper right")
fig.tight_layout()
plt.show()

# %%
# The blank fills most frames: the network emits each digit as a short
# spike, a few frames wide, somewhere in the sound of its word (the dashed
# lines carry the spikes up to the features), and says "blank" between
# them.  Greedy decoding reads the digits off the spikes
# (the labels: the most probable class where it changes), merges repeated
# frames and drops the blanks.  The spikes also give the timing of each
# word, which the training data never contained.
