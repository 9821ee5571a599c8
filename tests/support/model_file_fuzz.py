"""Mutates saved model files and loads them, one process for all cases so
that a crash, a hang or a runaway allocation fails the calling test
(tests/io/test_model_file_fuzz.py) instead of killing pytest.

    python model_file_fuzz.py SEED CASES_PER_MODEL [MODEL ...]

For every model (each crnn estimator class, fitted, and one unfitted) it
saves a small model, then writes mutated copies: every node of model.json
(each value, list and object at every depth) is replaced by values of
other types and ranges, dict keys are deleted and added, list items dropped
and repeated; every array member is removed, truncated, swapped for another
member or re-encoded with another dtype or shape (checksums recomputed, as a
careful forger would).  A mutated file must either be refused with
crnn.ModelFileError, or load into a model whose predictions are finite and
whose continued training raises nothing but a clear ValueError.  Anything
else is printed as one JSON line per failure; the exit code is the number
of failures (capped at 100).
"""
import copy
import hashlib
import io
import json
import math
import os
import resource
import signal
import sys
import tempfile
import traceback
import warnings
import zipfile

import numpy as np

# a crafted file may not take more than this to load and use
resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

import crnn  # noqa: E402
from crnn import ModelFileError  # noqa: E402

WRONG = [None, True, False, 0, -1, 1, 3, 2**31, 2**63, 2**64 + 1, 10**400, 0.5, -1e300,
         math.inf, -math.inf, math.nan, "", "x", "<eos>", "Europe/Nowhere", [], [0], [[]],
         {}, {"$": "tuple", "items": []}, {"$": "dict", "items": [[1, 2]]},
         {"$": "np_scalar", "dtype": "<i8", "value": 7},
         {"$": "dtype", "name": "<f4"}, {"$": "builtin_type", "name": "int"}]


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang("a load or its use ran for more than 20 s")


def _models():
    """name -> (fitted or unfitted estimator, use(model) -> None)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 5, 2)).astype(np.float32)
    y = X.sum(axis=(1, 2))
    out = {}

    def finite(v):
        arr = np.asarray(v, dtype=float)
        if not np.all(np.isfinite(arr)):
            raise AssertionError("non-finite predictions from a model that loaded")

    def use_reg(m):
        finite(m.predict(X))
        m.partial_fit(X, y)
        finite(m.predict(X))

    out["regressor"] = (crnn.RNNRegressor(cell="gru", hidden_size=3, max_iter=2,
                                          random_state=0).fit(X, y), use_reg)
    out["regressor_unfitted"] = (crnn.RNNRegressor(cell="lstm", hidden_size=3, max_iter=1,
                                                   random_state=0),
                                 lambda m: finite(m.fit(X, y).predict(X)))
    labels = np.array(["a", "b", "c"])[np.arange(12) % 3]

    def use_clf(m):
        finite(m.predict_proba(X))
        m.partial_fit(X, labels)
        finite(m.predict_proba(X))

    out["classifier"] = (crnn.RNNClassifier(cell="lstm", hidden_size=3, bidirectional=True,
                                            max_iter=2, random_state=0).fit(X, labels),
                         use_clf)
    try:
        import pandas as pd
        series = pd.Series(50 + np.sin(np.arange(60) / 3.0) + 0.05 * np.arange(60),
                           index=pd.date_range("2020-01-01", periods=60, freq="D",
                                               tz="Europe/Berlin"))
        cov = pd.DataFrame({"p": (np.arange(66) % 7 == 0).astype(float)},
                           index=pd.date_range("2020-01-01", periods=66, freq="D",
                                               tz="Europe/Berlin"))
    except ImportError:
        series, cov = 50 + np.sin(np.arange(60) / 3.0), None

    def use_fc(m):
        # a file whose attributes were emptied loads unfitted: predict then
        # refuses it (NotFittedError); reading n_covariates_ first must not
        # fail before that
        if cov is not None and getattr(m, "n_covariates_", 0):
            fc = m.predict(6, X=cov.iloc[60:])
            lo, hi = m.predict_interval(6, X=cov.iloc[60:])
        else:
            fc = m.predict(6)
            lo, hi = m.predict_interval(6)
        finite(fc)
        finite(lo)
        finite(hi)

    fc = crnn.RNNForecaster(window_length=6, hidden_size=3, max_iter=2, random_state=0,
                            difference=0, seasonal_period=None)
    if cov is not None:
        fc.fit(series, X=cov.iloc[:60])
    else:
        fc.fit(series)
    out["forecaster"] = (fc, use_fc)
    docs = ["the cat sat on the mat", "a dog ate the cat food", "to be or not to be"] * 3

    def use_lm(m):
        finite(m.score(docs[:2]))
        m.generate(5, random_state=0)
        m.partial_fit(docs[:3])

    out["language_model"] = (crnn.RNNLanguageModel(hidden_size=4, embedding_dim=3,
                                                   seq_length=8, max_iter=1,
                                                   random_state=0).fit(docs), use_lm)
    src, tgt = ["a b", "b c", "c a", "a a"], ["x y", "y z", "z x", "x x"]

    def use_tr(m):
        m.predict(src[:2])
        m.partial_fit(src, tgt)

    out["translator"] = (crnn.RNNTranslator(hidden_size=4, embedding_dim=3, max_iter=1,
                                            random_state=0).fit(src, tgt), use_tr)
    frames = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 6, 4, 7)]
    texts = ["ab", "ba", "a", "bb"]

    def use_ts(m):
        m.predict(frames)
        m.partial_fit(frames, texts)

    out["transcriber"] = (crnn.RNNTranscriber(hidden_size=3, num_layers=1, max_iter=1,
                                              random_state=0).fit(frames, texts), use_ts)
    return out


def _nodes(value, path=()):
    """Every node of a JSON value with its path (keys and indices)."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _nodes(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _nodes(v, path + (i,))


def _set(root, path, value):
    node = root
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _manifest_cases(manifest, rng, n):
    """Up to n (description, mutated manifest) pairs; every node is hit."""
    nodes = [(p, v) for p, v in _nodes(manifest) if p]
    order = list(rng.permutation(len(nodes)))
    cases = []
    while len(cases) < n and order:
        path, value = nodes[order.pop()]
        if not order and len(cases) < n:
            order = list(rng.permutation(len(nodes)))
        man = copy.deepcopy(manifest)
        r = rng.random()
        parent = man
        for key in path[:-1]:
            parent = parent[key]
        if r < 0.12 and isinstance(parent, dict):
            del parent[path[-1]]
            what = "deleted"
        elif r < 0.18 and isinstance(parent, dict):
            parent[f"{path[-1]}_extra"] = copy.deepcopy(value)
            what = "key added"
        elif r < 0.26 and isinstance(value, list) and value:
            _set(man, path, value[:-1] if rng.random() < 0.5 else value + value[-1:])
            what = "list resized"
        elif r < 0.34 and isinstance(value, (int, float)) and not isinstance(value, bool):
            new = value * [-1, 2, 1000, 0][rng.integers(4)] + int(rng.integers(-1, 2))
            _set(man, path, new)
            what = f"number {value!r} -> {new!r}"
        else:
            new = WRONG[rng.integers(len(WRONG))]
            _set(man, path, copy.deepcopy(new))
            what = f"set to {json.dumps(new)[:40]}"
        cases.append((f"{'/'.join(map(str, path))}: {what}", man))
    return cases


def _member_cases(manifest, members, rng):
    names = sorted(members)
    cases = []
    for name in names:
        data = members[name]
        arr = np.load(io.BytesIO(data), allow_pickle=False)
        variants = {
            "removed": None,
            "truncated": data[: len(data) // 2],
            "swapped": members[names[(names.index(name) + 1) % len(names)]],
        }
        for label, new in (("float16", arr.astype(np.float16) if arr.dtype.kind in "fiu"
                            else None),
                           ("int64", arr.astype(np.int64) if arr.dtype.kind in "fiub"
                            else None),
                           ("2-d", arr.reshape(1, -1)), ("empty", arr[:0]),
                           ("longer", np.concatenate([arr.ravel(), arr.ravel()[:1]])
                            if arr.size else None)):
            if new is not None:
                buf = io.BytesIO()
                np.save(buf, new)
                variants[label] = buf.getvalue()
        for label, new in variants.items():
            cases.append((f"member {name}: {label}", name, new))
    return cases


def _write(path, manifest, members):
    man = dict(manifest)
    man["members"] = {n: hashlib.sha256(b).hexdigest() for n, b in members.items()}
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.json", json.dumps(man))
        for n, b in members.items():
            zf.writestr(n, b)


def _where():
    """The innermost frame of the exception being handled."""
    frames = traceback.extract_tb(sys.exc_info()[2])
    return f"{frames[-1].filename}:{frames[-1].lineno} {frames[-1].name}" if frames else ""


def _check(path, use, model, case):
    """None, or a failure record."""
    signal.alarm(20)
    try:
        try:
            loaded = crnn.load(path)
        except ModelFileError:
            return None
        except Exception as exc:        # noqa: BLE001 - anything else is the defect
            return {"model": model, "case": case, "stage": "load",
                    "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                    "where": _where()}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                use(loaded)
        except ValueError:
            return None                 # a clear refusal (e.g. a diverged continuation)
        except Exception as exc:        # noqa: BLE001
            return {"model": model, "case": case, "stage": "use",
                    "error": f"{type(exc).__name__}: {str(exc)[:300]}",
                    "where": _where()}
        return None
    finally:
        signal.alarm(0)


def main(argv):
    seed, per_model = int(argv[1]), int(argv[2])
    wanted = set(argv[3:])
    signal.signal(signal.SIGALRM, _alarm)
    rng = np.random.default_rng(seed)
    failures = total = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = _models()
    with tempfile.TemporaryDirectory() as tmp:
        for model, (est, use) in models.items():
            if wanted and model not in wanted:
                continue
            path = os.path.join(tmp, f"{model}.crnn")
            est.save(path)
            with zipfile.ZipFile(path) as zf:
                manifest = json.loads(zf.read("model.json"))
                members = {n: zf.read(n) for n in zf.namelist() if n != "model.json"}
            # the unmutated file loads and is usable
            record = _check(path, use, model, "unmutated")
            cases = [(d, m, members) for d, m in _manifest_cases(manifest, rng, per_model)]
            for desc, name, new in _member_cases(manifest, members, rng):
                changed = dict(members)
                if new is None:
                    del changed[name]
                else:
                    changed[name] = new
                cases.append((desc, manifest, changed))
            records = [record] if record else []
            for desc, man, mem in cases:
                bad = os.path.join(tmp, "bad.crnn")
                _write(bad, man, mem)
                total += 1
                record = _check(bad, use, model, desc)
                if record:
                    records.append(record)
            for record in records:
                print(json.dumps(record), flush=True)
            failures += len(records)
            print(json.dumps({"model": model, "cases": len(cases), "failures": len(records)}),
                  file=sys.stderr, flush=True)
    print(json.dumps({"total": total, "failures": failures}), file=sys.stderr)
    return min(failures, 100)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
