"""The language model at its defaults (issue 26): validation nats per
character after the same epochs, RNNLanguageModel as a new user calls it
against the usual PyTorch recipe, on corpora of different kinds.

Corpora (300,000 characters of training text, the next 30,000 held out):
- Shakespeare: ../shared/data/tinyshakespeare.txt (skipped when absent);
- docstrings: the documentation strings of this Python's standard library
  (technical English), module by module in sorted order;
- source: the standard library's Python source itself;
- gettext: the German messages of this system's gettext catalogs
  (/usr/share/locale/de/LC_MESSAGES/*.mo, their translations in catalog
  order: short user-interface sentences in another language);
- licenses: the license and copyright texts of this Debian system
  (/usr/share/common-licenses, /usr/share/doc/*/copyright: legal English;
  its held-out part is a different kind of text, with 60 characters the
  training part never shows).

crnn: ``RNNLanguageModel(hidden_size=128, num_layers=2, seq_length=100,
batch_size=32, max_iter=10, random_state=0)`` (``--variant`` adds keyword
arguments).  PyTorch, the word_language_model recipe: nn.Embedding(V, 128)
(N(0, 1)), nn.LSTM(128, 128, 2), nn.Linear(128, V), Adam at 1e-3 with
gradient-norm clipping at 5, on the same stream batches (state carried,
detached, from chunk to chunk) for the same 10 epochs.  Both score the
validation text cut into 32 pieces, each read from a zero state with the
end-of-document token first and its end scored (crnn's ``score``).

    python benches/lm_defaults.py                       # every corpus, both libraries
    python benches/lm_defaults.py --corpora docstrings --no-torch
    python benches/lm_defaults.py --variant embedding_dim=128

Needs torch==2.13.0 for the PyTorch column.
"""
import argparse
import ast
import gettext
import glob
import os
import sys
import sysconfig
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from char_lm import DATA, pieces, torch_embedding_lm  # noqa: E402

from crnn import RNNLanguageModel  # noqa: E402
from crnn._text.tokens import Vocabulary, stream_batches  # noqa: E402

N_TRAIN, N_VAL = 300_000, 30_000


def _stdlib_files():
    root = sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(root, "*.py")))
    files += sorted(glob.glob(os.path.join(root, "*", "*.py")))
    return [f for f in files if "test" not in f and "site-packages" not in f]


def corpora():
    """name -> text (at least N_TRAIN + N_VAL characters)."""
    need = N_TRAIN + N_VAL
    out = {}
    if os.path.exists(DATA):
        with open(DATA, encoding="utf-8") as f:
            out["shakespeare"] = f.read()[:need]
    docs, source = [], []
    for path in _stdlib_files():
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            tree = ast.parse(text)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    docs.append(doc + "\n\n")
        source.append(text)
    out["docstrings"] = "".join(docs)[:need]
    # the source from the other end of the library, so that little of it is
    # also in the docstrings corpus
    out["source"] = "".join(reversed(source))[:need]
    msgs = []
    for path in sorted(glob.glob("/usr/share/locale/de/LC_MESSAGES/*.mo")):
        try:
            with open(path, "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        msgs += [v + "\n" for k, v in catalog.items() if k and isinstance(v, str)]
    out["gettext"] = "".join(msgs)[:need]
    lic = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")) + \
            sorted(glob.glob("/usr/share/doc/*/copyright")):
        try:
            with open(path, encoding="utf-8") as f:
                lic.append(f.read())
        except (OSError, UnicodeDecodeError):
            continue
    out["licenses"] = "".join(lic)[:need]
    return {k: v for k, v in out.items() if len(v) >= need}


def crnn_run(text, variant, epochs):
    train, val = text[:N_TRAIN], text[N_TRAIN:]
    model = RNNLanguageModel(hidden_size=128, num_layers=2, seq_length=100, batch_size=32,
                             max_iter=epochs, random_state=0, **variant)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(train)
    return -model.score(pieces(val, 32)), time.perf_counter() - t0


def torch_run(text, epochs, threads):
    import torch
    train, val = text[:N_TRAIN], text[N_TRAIN:]
    vocab = Vocabulary([list(train)])                   # as RNNLanguageModel builds it
    V = len(vocab)
    ids = vocab.encode(list(train), end=True)
    x, y = stream_batches(ids, 32, 100)
    epoch = torch_embedding_lm(V, 128, 128, threads, 1e-3, layers=2)
    emb, rnn, head = epoch.modules
    t0 = time.perf_counter()
    for _ in range(epochs):
        epoch(x, y)
    seconds = time.perf_counter() - t0
    total, count = 0.0, 0
    with torch.no_grad():
        for p in pieces(val, 32):
            seq = np.concatenate([[1], vocab.encode(list(p), end=True)])
            out, _ = rnn(emb(torch.from_numpy(seq[None, :-1])))
            logp = torch.log_softmax(head(out)[0], dim=-1)
            total -= logp[torch.arange(len(seq) - 1), torch.from_numpy(seq[1:])].sum().item()
            count += len(seq) - 1
    return total / count, seconds


def _variant(text):
    out = {}
    for item in text or []:
        k, v = item.split("=")
        out[k] = None if v == "None" else int(v) if v.lstrip("-").isdigit() else \
            float(v) if v.replace(".", "", 1).isdigit() else v
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--corpora", nargs="*")
    p.add_argument("--variant", nargs="*", help="extra RNNLanguageModel arguments, k=v")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--no-torch", action="store_true")
    args = p.parse_args()
    variant = _variant(args.variant)
    texts = corpora()
    print(f"crnn RNNLanguageModel(hidden_size=128, num_layers=2, seq_length=100, "
          f"batch_size=32, max_iter={args.epochs}, random_state=0"
          f"{''.join(f', {k}={v!r}' for k, v in variant.items())}); validation nats/char")
    for name, text in texts.items():
        if args.corpora and name not in args.corpora:
            continue
        nats, secs = crnn_run(text, variant, args.epochs)
        line = f"{name:<12} {len(set(text[:N_TRAIN])):>4} chars  crnn {nats:.3f} ({secs:.0f} s)"
        if not args.no_torch:
            t_nats, t_secs = torch_run(text, args.epochs, args.threads)
            line += f"  torch {t_nats:.3f} ({t_secs:.0f} s)  crnn - torch {nats - t_nats:+.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
