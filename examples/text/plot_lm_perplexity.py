"""
==========================================
Learning curves of a language model
==========================================

How well does a language model predict held-out text, epoch after epoch?
We train a character-level :class:`~crnn.RNNLanguageModel` on the
docstrings of the Python standard library with a held-out set, plot its
training and validation loss per epoch in nats per character and as
perplexity, and compare them with what counting characters gives (unigram
and bigram models).  Then we train a word-level model on the same text
and see why its perplexity cannot be compared with the character model's
as it stands, and how to compare them.
"""

# %%
# The text
# --------
# The docstrings of a few dozen standard-library modules and of their
# classes and functions (:func:`inspect.getdoc`), shuffled; each docstring
# is a document.  80,000 characters for training and the next 15,000 held
# out.  (The docstrings are the running Python's, so the numbers below move
# a little from one Python version to another.)
import importlib
import inspect
import re
from collections import Counter

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
n_train = int(np.searchsorted(n_chars, 80_000))
n_val = int(np.searchsorted(n_chars, 95_000))
train, val = docs[:n_train], docs[n_train:n_val]
print(f"{len(train)} training documents ({sum(map(len, train)):,} characters), "
      f"{len(val)} held out ({sum(map(len, val)):,} characters)")

# %%
# Baselines: counting characters
# ------------------------------
# Before any network, two floors.  A unigram model predicts every character
# from its frequency in the training text; a bigram model from its
# frequency after the previous character (add-one smoothing for pairs never
# seen).  They are scored as the language model scores text: every
# document followed by an end token, characters never seen in training
# read as one unknown token, the loss in nats per token (the average
# negative log-probability of each next token).  Perplexity is its
# exponential: the number of equally likely choices that would be as
# uncertain.
END, UNK = "<eos>", "<unk>"


def tokens(documents, vocab=None):
    out = [END]
    for doc in documents:
        out += [c if vocab is None or c in vocab else UNK for c in doc] + [END]
    return out


train_tokens = tokens(train)
vocab = sorted(set(train_tokens)) + [UNK]
val_tokens = tokens(val, set(vocab))
V = len(vocab)

unigram = Counter(train_tokens[1:])
total = sum(unigram.values())
unigram_loss = -np.mean([np.log((unigram[t] + 1) / (total + V)) for t in val_tokens[1:]])

pairs = Counter(zip(train_tokens[:-1], train_tokens[1:]))
before = Counter(train_tokens[:-1])
bigram_loss = -np.mean([np.log((pairs[a, b] + 1) / (before[a] + V))
                        for a, b in zip(val_tokens[:-1], val_tokens[1:])])
for name, loss in [("unigram", unigram_loss), ("bigram", bigram_loss)]:
    print(f"{name}: {loss:.3f} nats/char, perplexity {np.exp(loss):.1f}")

# %%
# A character-level LSTM with a validation set
# --------------------------------------------
# ``early_stopping=True`` with ``X_val`` scores the held-out text after
# every epoch (``validation_loss_curve_``, in nats per token) and keeps the
# weights of the best epoch.  A large ``n_iter_no_change`` lets it run all
# ``max_iter`` epochs, so that we see the whole curve.  The model: one LSTM
# layer of 128 units, chunks of 50 characters, 16 streams.
char_model = RNNLanguageModel(hidden_size=128, num_layers=1, seq_length=50,
                              batch_size=16, learning_rate_init=3e-3, max_iter=6,
                              early_stopping=True, n_iter_no_change=100, random_state=0)
char_model.fit(train, X_val=val)
best = int(np.argmin(char_model.validation_loss_curve_))
for epoch, (tr, va) in enumerate(zip(char_model.loss_curve_,
                                     char_model.validation_loss_curve_), 1):
    print(f"epoch {epoch:2d}: training {tr:.3f}, validation {va:.3f} nats/char"
          f"{'  <- kept' if epoch == best + 1 else ''}")
print(f"score of the kept model on the held-out text: {-char_model.score(val):.3f} "
      f"nats/char, perplexity {char_model.perplexity(val):.2f}, "
      f"{char_model.bits_per_token(val):.2f} bits/char")

# %%
# The training loss of an epoch is the average over its batches while the
# weights change, so it lags behind the weights at the epoch's end; the
# validation loss is measured at the end.  That is why the validation loss
# starts below the training loss.  After a few epochs the model has seen
# the training text often enough to predict it better than unseen text,
# and the two curves cross: the gap between them is what it has memorised
# rather than learnt.  The validation curve flattens while the training
# curve keeps falling; with more epochs it would turn up (the word model
# below shows it), and early stopping would keep the best epoch.  The
# validation scores of ``fit`` read the held-out text as 16 contiguous
# streams, ``score`` reads each document from the start: the two differ
# slightly.
#
# On the right axis, the same losses as perplexity.  Within six epochs the
# model is far below the bigram floor: it uses context of many characters.
epochs = np.arange(1, len(char_model.loss_curve_) + 1)
fig, ax = plt.subplots(figsize=(7, 4.5))
ax.plot(epochs, char_model.loss_curve_, "o-", label="training")
ax.plot(epochs, char_model.validation_loss_curve_, "s-", label="validation")
ax.plot(best + 1, char_model.validation_loss_curve_[best], "k*", ms=14,
        label="kept (best validation)")
ax.axhline(unigram_loss, color="grey", ls="--", label="unigram counts")
ax.axhline(bigram_loss, color="grey", ls=":", label="bigram counts")
ax.set_xlabel("epoch")
ax.set_ylabel("nats per character")
ax.set_xticks(epochs)
perplexity_axis = ax.secondary_yaxis(
    "right", functions=(np.exp, lambda p: np.log(np.maximum(p, 1e-12))))
perplexity_axis.set_ylabel("perplexity")
ax.set_title("character-level LSTM, 1x128, on standard-library docstrings")
ax.legend(loc="lower right", bbox_to_anchor=(1, 0.22))
ax.grid(alpha=0.3)
fig.tight_layout()

# %%
# More text and a bigger model go further: an LSTM on tinyshakespeare
# (a million characters, 2x256 units, dropout, a cosine schedule) reaches
# 1.51 nats per character on held-out text, against floors of 3.35
# (unigram) and 2.48 (bigram) there (:doc:`/performance`, section 4.2).
#
# Words instead of characters
# ---------------------------
# With ``tokenizer="word"`` the tokens are words and punctuation marks.
# Words seen only once in training are left out of the vocabulary
# (``min_count=2``) and read as the unknown token.  Fewer, longer tokens:
# chunks of 20 words.
word_model = RNNLanguageModel(tokenizer="word", min_count=2, hidden_size=128,
                              num_layers=1, seq_length=20, batch_size=16,
                              learning_rate_init=3e-3, max_iter=8,
                              early_stopping=True, n_iter_no_change=100, random_state=0)
word_model.fit(train, X_val=val)
word_best = int(np.argmin(word_model.validation_loss_curve_))
WORD = r"\w+(?:'\w+)*|[^\w\s]"          # the "word" tokenizer's regular expression
val_words = [w for doc in val for w in re.findall(WORD, doc)]
vocab_words = set(word_model.vocab_)
unknown = np.mean([w not in vocab_words for w in val_words])
print(f"vocabulary: {len(word_model.vocab_)} tokens; {len(val_words):,} held-out words, "
      f"{unknown:.1%} of them unknown to the model")
print(f"best validation: {word_model.validation_loss_curve_[word_best]:.3f} nats/word "
      f"(epoch {word_best + 1}), perplexity {word_model.perplexity(val):.1f} per word")

# %%
# The validation curve of the word model turns up after a few epochs while
# its training loss keeps falling: with about 1,200 words to learn from
# 80,000 characters it overfits sooner than the character model, and early
# stopping keeps its best epoch.
#
# A word perplexity in the fifties looks far worse than a character
# perplexity of about 6, but they are per different tokens.  Both models
# give a probability to the same held-out text, so divide each one's total
# negative log-likelihood by the number of characters: bits per character.
#
# Even that scale is not the same task for both.  The word tokenizer drops
# spaces and line breaks, so the word model never predicts the layout
# (docstrings are full of indentation) that the character model pays for;
# and every held-out word outside its vocabulary (about one in seven here)
# is one ``<unk>`` token to it, a guess it is never asked to spell.  Its
# bits per character are a lower bound of what writing out the text would
# cost it.  For the same reason a word perplexity depends on the
# vocabulary as much as on the model (the fewer words kept, the more
# cheap ``<unk>`` guesses): on tinyshakespeare, keeping 10,000 words, a
# word model reaches 155 per word (:doc:`/performance`, section 4.2).
n_val_chars = sum(len(d) + 1 for d in val)          # every document and its end
n_val_words = len(val_words) + len(val)
char_bpc = char_model.bits_per_token(val)           # one token per character
word_bpc = word_model.bits_per_token(val) * n_val_words / n_val_chars
print(f"characters: {char_bpc:.2f} bits per character")
print(f"words:      {word_bpc:.2f} bits per character (layout and unknown words free)")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
word_epochs = np.arange(1, len(word_model.loss_curve_) + 1)
ax1.plot(word_epochs, word_model.loss_curve_, "o-", label="training")
ax1.plot(word_epochs, word_model.validation_loss_curve_, "s-", label="validation")
ax1.plot(word_best + 1, word_model.validation_loss_curve_[word_best], "k*", ms=14,
         label="kept (best validation)")
ax1.set_xlabel("epoch")
ax1.set_ylabel("nats per word")
ax1.set_xticks(word_epochs)
ax1.secondary_yaxis("right", functions=(np.exp, lambda p: np.log(np.maximum(p, 1e-12))))
ax1.set_title("word-level LSTM (right axis: perplexity)")
ax1.legend()
ax1.grid(alpha=0.3)
ax2.bar(["characters", "words\n(layout and unknown\nwords free)"], [char_bpc, word_bpc],
        color=["tab:blue", "tab:orange"])
ax2.set_ylabel("bits per character of the held-out text")
ax2.set_title("on one scale, not the same task")
fig.tight_layout()
plt.show()
