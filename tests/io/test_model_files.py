"""Model files (issue 9): save / load without unpickling, refusal of bad
files, skops, pickle."""
import io
import json
import pickle
import warnings
import zipfile
from fractions import Fraction

import numpy as np
import pytest
from sklearn.base import clone

import crnn
from crnn import ModelFileError, RNNClassifier, RNNRegressor


def _data(n=24, T=5, D=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, T, D)).astype(np.float32)
    return X, rng


def _fit(est, X, y, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, **kw)


def _targets(kind, X, rng, return_sequences):
    n, T = X.shape[:2]
    if kind == "regressor":
        return X[:, :, :2].cumsum(axis=1) if return_sequences else X[:, :, 0].sum(axis=1)
    labels = np.array(["cat", "dog", "emu"])
    if return_sequences:
        return labels[(X[:, :, 0] > 0).astype(int) + (X[:, :, 1] > 0)]
    return labels[rng.integers(0, 3, size=n)]


_GRID = [
    ("regressor", "rnn", 1, False, False, np.float32),
    ("regressor", "gru", 2, True, True, np.float32),
    ("regressor", "lstm", 1, False, True, np.float64),
    ("classifier", "lstm", 2, True, False, np.float32),
    ("classifier", "gru", 1, False, True, np.float32),
    ("classifier", "rnn", 2, True, True, np.float64),
]


@pytest.mark.parametrize("kind,cell,layers,bidir,seq,dtype", _GRID)
def test_a_loaded_model_predicts_bit_for_bit_and_trains_on_identically(
        tmp_path, kind, cell, layers, bidir, seq, dtype):
    X, rng = _data()
    y = _targets(kind, X, rng, seq)
    cls = RNNRegressor if kind == "regressor" else RNNClassifier
    m = _fit(cls(cell=cell, num_layers=layers, bidirectional=bidir, return_sequences=seq,
                 hidden_size=8, max_iter=3, dtype=dtype, random_state=0), X, y)
    path = tmp_path / "model.crnn"
    m.save(path)
    loaded = crnn.load(path)
    assert type(loaded) is cls
    assert loaded.get_params() == m.get_params()
    assert np.array_equal(loaded.predict(X), m.predict(X))
    if kind == "classifier":
        assert np.array_equal(loaded.predict_proba(X), m.predict_proba(X))
        assert np.array_equal(loaded.classes_, m.classes_)
    assert loaded.loss_curve_ == m.loss_curve_ and loaded.n_iter_ == m.n_iter_
    # ragged input too
    ragged = [X[0, :3], X[1], X[2, :1]]
    for a, b in zip(loaded.predict(ragged), m.predict(ragged)):
        assert np.array_equal(a, b)
    # partial_fit continues the optimizer state and the random stream
    for est in (m, loaded):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.partial_fit(X, y)
    assert np.array_equal(loaded._theta, m._theta)
    assert loaded.loss_curve_ == m.loss_curve_


def test_warm_start_after_load_matches_warm_start_on_the_original(tmp_path):
    X, rng = _data()
    y = X[:, :, 0].sum(axis=1)
    m = _fit(RNNRegressor(cell="gru", hidden_size=8, max_iter=2, random_state=3), X, y)
    m.save(tmp_path / "m.crnn")
    loaded = RNNRegressor.load(tmp_path / "m.crnn")
    copy = pickle.loads(pickle.dumps(m))
    for est in (loaded, copy):
        est.set_params(warm_start=True, max_iter=3)
        _fit(est, X, y)
    assert np.array_equal(loaded._theta, copy._theta)
    assert loaded.n_iter_ == copy.n_iter_ == 5


def test_early_stopping_history_and_changed_parameters_survive(tmp_path):
    """Validation history, best scores, and parameters changed after fit:
    the file keeps the fitted network, so predict is unchanged."""
    X, rng = _data(n=40)
    y = X[:, :, 0].sum(axis=1)
    m = _fit(RNNRegressor(hidden_size=6, max_iter=4, early_stopping=True, random_state=0),
             X, y)
    m.set_params(hidden_size=99, cell="lstm", dtype=np.float64)
    m.save(str(tmp_path / "m.crnn"))
    loaded = crnn.load(str(tmp_path / "m.crnn"))
    assert loaded.hidden_size == 99 and loaded.validation_scores_ == m.validation_scores_
    assert loaded.best_validation_score_ == m.best_validation_score_
    assert np.array_equal(loaded.predict(X), m.predict(X))


def test_an_unfitted_model_round_trips(tmp_path):
    m = RNNClassifier(cell="lstm", hidden_size=5, class_weight={"a": 2.0, "b": 1.0},
                      dtype="float64", random_state=7)
    m.save(tmp_path / "u.crnn")
    loaded = crnn.load(tmp_path / "u.crnn")
    assert loaded.get_params() == m.get_params()
    assert not hasattr(loaded, "classes_")


@pytest.mark.parametrize("labels", [
    np.array([3, 1, 2, 1, 3, 2] * 4),
    np.array([0.0, -1.0, 0.0, 2.0] * 6),
    np.array([True, False] * 12),
    np.array(["x", "yy", "zzz"] * 8, dtype=object),
    np.array(["é", "ü", "ß"] * 8),
])
def test_class_labels_of_any_json_type(tmp_path, labels):
    X, _ = _data()
    m = _fit(RNNClassifier(hidden_size=4, max_iter=2, random_state=0), X, labels)
    m.save(tmp_path / "m.crnn")
    loaded = crnn.load(tmp_path / "m.crnn")
    assert loaded.classes_.dtype == m.classes_.dtype
    assert np.array_equal(loaded.classes_, m.classes_)
    assert np.array_equal(loaded.predict(X), m.predict(X))


def test_values_a_file_cannot_hold_are_refused_at_save_and_nothing_is_written(tmp_path):
    X, _ = _data()
    m = _fit(RNNClassifier(hidden_size=4, max_iter=1, random_state=0), X,
             np.array([0, 1] * 12))
    path = tmp_path / "m.crnn"
    m.save(path)
    before = path.read_bytes()
    m.classes_ = np.array([Fraction(0), Fraction(1)], dtype=object)
    with pytest.raises(TypeError, match="classes_.*Fraction"):
        m.save(path)
    assert path.read_bytes() == before          # the old file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.crnn"]
    m.classes_ = np.array([0, 1])
    m.set_params(random_state=np.random.default_rng(0))
    with pytest.raises(TypeError, match="parameter random_state.*Generator"):
        m.save(tmp_path / "other.crnn")
    assert not (tmp_path / "other.crnn").exists()


# ---------------------------------------------------------------------------
# bad files


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    X, rng = _data()
    m = _fit(RNNClassifier(cell="gru", hidden_size=6, max_iter=2, random_state=0), X,
             np.array(["a", "b", "c"] * 8))
    path = tmp_path_factory.mktemp("files") / "m.crnn"
    m.save(path)
    return path, m, X


def _rewrite(src, dst, manifest=None, members=None, extra=None, rehash=True):
    """Copy a model file with its manifest / members changed (checksums
    recomputed, as a careful forger would)."""
    import hashlib
    with zipfile.ZipFile(src) as zf:
        man = json.loads(zf.read("model.json"))
        data = {n: zf.read(n) for n in zf.namelist() if n != "model.json"}
    if manifest:
        manifest(man)
    data.update(members or {})
    data.update(extra or {})
    if rehash:
        man["members"] = {n: hashlib.sha256(b).hexdigest() for n, b in data.items()
                          if n in man["members"] or n in (members or {})}
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("model.json", json.dumps(man))
        for n, b in data.items():
            zf.writestr(n, b)
    return dst


def test_a_newer_format_version_is_refused_with_the_versions_named(saved, tmp_path):
    path, _, _ = saved

    def newer(man):
        man["format_version"] = 2
        man["crnn_version"] = "9.0"
    bad = _rewrite(path, tmp_path / "v2.crnn", manifest=newer)
    with pytest.raises(ModelFileError, match=r"format version 2.*crnn 9\.0.*Upgrade"):
        crnn.load(bad)


@pytest.mark.parametrize("cut", [0, 10, 100, 0.5, 0.9, -1])
def test_a_truncated_file_is_refused(saved, tmp_path, cut):
    path, _, _ = saved
    data = path.read_bytes()
    n = int(len(data) * cut) if isinstance(cut, float) else (cut % len(data))
    bad = tmp_path / "cut.crnn"
    bad.write_bytes(data[:n])
    with pytest.raises(ModelFileError, match="truncated|corrupt|not a crnn model"):
        crnn.load(bad)


def test_every_flipped_byte_of_the_arrays_is_detected(saved, tmp_path):
    path, _, _ = saved
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if i.filename != "model.json"]
    rng = np.random.default_rng(0)
    for info in infos:
        # the member's data starts after its 30-byte local header, name and extra
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        for pos in rng.integers(start, start + info.compress_size, size=5):
            bad = bytearray(data)
            bad[pos] ^= 0x5A
            p = tmp_path / "flip.crnn"
            p.write_bytes(bytes(bad))
            with pytest.raises(ModelFileError, match="corrupt|altered|checksum"):
                crnn.load(p)


def test_a_pickled_object_array_is_never_unpickled(saved, tmp_path):
    """A forger replaces the weights with a pickle that would run code; the
    checksums are recomputed, so only the no-pickle rule stops it."""
    path, _, _ = saved
    buf = io.BytesIO()
    np.save(buf, np.array([print, "boom"], dtype=object), allow_pickle=True)
    bad = _rewrite(path, tmp_path / "pickle.crnn", members={"arrays/0.npy": buf.getvalue()})
    with pytest.raises(ModelFileError, match="Python objects"):
        crnn.load(bad)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["attributes"]["_layout"].update(hidden=7), "weights are not .* parameters"),
    (lambda m: m["params"].update(cell="transformer"), "cell"),
    (lambda m: m["params"].update(surprise=1), "unknown: \\['surprise'\\]"),
    (lambda m: m["attributes"].update(predict="gotcha"), "unknown: \\['predict'\\]"),
    (lambda m: m["attributes"].pop("_opt_m"), "missing: \\['_opt_m'\\]"),
    (lambda m: m["attributes"].update(n_outputs_=4), "does not match"),
    (lambda m: m["attributes"].update(n_iter_=-1), "n_iter_"),
    (lambda m: m["attributes"].update(loss_curve_="abc"), "loss_curve_"),
    (lambda m: m["attributes"]["_layout"].update(cell="gru2"), "network description"),
    (lambda m: m["attributes"].update(classes_={"$": "object_array", "shape": [3],
                                                "items": ["b", "a", "c"]}), "sorted"),
    (lambda m: m["attributes"].update(_theta={"$": "os.system", "file": "x"}), "unknown value tag"),
    (lambda m: m["attributes"].update(_theta={"$": "ndarray", "file": "../../etc/passwd"}),
     "lacks"),
    (lambda m: m.update(format="something-else"), "not a crnn model file"),
    (lambda m: m.update(format_version="1"), "invalid format version"),
    (lambda m: m.update({"class": "os.system"}), "not one of crnn's estimators"),
])
def test_altered_contents_are_refused_with_the_problem_named(saved, tmp_path, edit, message):
    path, _, _ = saved
    bad = _rewrite(path, tmp_path / "bad.crnn", manifest=edit)
    with pytest.raises(ModelFileError, match=message):
        crnn.load(bad)


def test_non_finite_weights_and_extra_members_are_refused(saved, tmp_path):
    path, m, _ = saved
    theta = m._theta.copy()
    theta[3] = np.nan
    buf = io.BytesIO()
    np.save(buf, theta)
    with zipfile.ZipFile(path) as zf:
        man = json.loads(zf.read("model.json"))
    name = man["attributes"]["_theta"]["file"]
    with pytest.raises(ModelFileError, match="_theta contains NaN"):
        crnn.load(_rewrite(path, tmp_path / "nan.crnn", members={name: buf.getvalue()}))
    with pytest.raises(ModelFileError, match="unexpected members"):
        crnn.load(_rewrite(path, tmp_path / "extra.crnn", extra={"evil.py": b"import os"}))
    # a member whose .npy header claims more data than it holds
    short = buf.getvalue()[:-8]
    with pytest.raises(ModelFileError, match="wrong length"):
        crnn.load(_rewrite(path, tmp_path / "short.crnn", members={name: short}))


def test_a_file_of_another_class_or_kind_is_refused(saved, tmp_path):
    path, _, _ = saved
    with pytest.raises(ModelFileError, match="RNNClassifier, not RNNRegressor"):
        RNNRegressor.load(path)
    assert type(RNNClassifier.load(path)) is RNNClassifier
    (tmp_path / "text.crnn").write_text("hello")
    with pytest.raises(ModelFileError, match="not a crnn model file"):
        crnn.load(tmp_path / "text.crnn")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hi")
    with pytest.raises(ModelFileError, match="no model.json"):
        crnn.load(tmp_path / "other.zip")
    with pytest.raises(FileNotFoundError):
        crnn.load(tmp_path / "missing.crnn")
    assert issubclass(ModelFileError, ValueError)


def test_save_replaces_a_file_and_loaded_models_are_independent(saved, tmp_path):
    path, m, X = saved
    target = tmp_path / "m.crnn"
    target.write_bytes(b"old contents")
    m.save(target)
    a, b = crnn.load(target), crnn.load(target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.partial_fit(X, m.predict(X))
    assert not np.array_equal(a._theta, b._theta)
    assert np.array_equal(b.predict_proba(X), m.predict_proba(X))
    assert np.array_equal(clone(b).get_params()["hidden_size"], 6)


# ---------------------------------------------------------------------------
# skops and pickle


@pytest.mark.parametrize("cls", [RNNRegressor, RNNClassifier])
def test_skops_trusts_only_crnn_classes_and_round_trips(tmp_path, cls):
    sio = pytest.importorskip("skops.io")
    X, rng = _data()
    y = X[:, :, 0].sum(axis=1) if cls is RNNRegressor else np.array(["a", "b"] * 12)
    m = _fit(cls(cell="lstm", hidden_size=6, max_iter=2, random_state=0), X, y)
    path = tmp_path / "m.skops"
    sio.dump(m, path)
    untrusted = sio.get_untrusted_types(file=path)
    assert untrusted and all(t.startswith("crnn.") for t in untrusted), untrusted
    assert set(untrusted) == {f"crnn._sequence.estimators.{cls.__name__}", "crnn._nn.layout.Layout"}
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        sio.load(path)
    loaded = sio.load(path, trusted=untrusted)
    assert np.array_equal(loaded.predict(X), m.predict(X))
    for est in (m, loaded):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.partial_fit(X, y)
    assert np.array_equal(loaded._theta, m._theta)


def test_pickle_still_round_trips_and_drops_the_caches():
    X, _ = _data()
    m = _fit(RNNRegressor(cell="gru", hidden_size=5, max_iter=1, random_state=0), X,
             X[:, 0, 0])
    state = m.__getstate__()
    assert not {"_wpack", "_engine_cache", "_validated_params"} & set(state)
    loaded = pickle.loads(pickle.dumps(m))
    assert np.array_equal(loaded.predict(X), m.predict(X))


def test_the_saved_attributes_are_every_fitted_attribute():
    """A new fitted attribute must be added to _FITTED_ATTRIBUTES (or the
    file would silently drop it)."""
    from crnn._io.model_files import saved_attributes
    X, _ = _data()
    for m in (_fit(RNNRegressor(hidden_size=3, max_iter=1), X, X[:, 0, 0]),
              _fit(RNNClassifier(hidden_size=3, max_iter=1, early_stopping=True,
                                 class_weight="balanced"), X, np.array([0, 1] * 12)),
              RNNRegressor(hidden_size=3).load_state_dict(
                  _fit(RNNRegressor(hidden_size=3, max_iter=1), X, X[:, 0, 0]).state_dict())):
        assert set(saved_attributes(m)) == type(m)._FITTED_ATTRIBUTES


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["attributes"]["_layout"].update(hidden=7), "weights are not"),
    (lambda m: m["attributes"]["_layout"].update(attention="dot"), "encoder-decoder"),
    (lambda m: m["attributes"]["_layout"].update(attention_dim=0), "encoder-decoder"),
    (lambda m: m["attributes"]["_layout"].pop("ndir"), "encoder-decoder description"),
    (lambda m: m["attributes"]["_layout"].update({"$": "Layout"}), "network description"),
    (lambda m: m["attributes"]["tgt_vocab_"].pop(), "tgt_vocab_"),
    (lambda m: m["attributes"]["tgt_vocab_"].__setitem__(2, "w"), "tgt_vocab_"),
])
def test_altered_translator_files_are_refused(tmp_path, edit, message):
    m = crnn.RNNTranslator(hidden_size=4, embedding_dim=3, max_iter=1, random_state=0)
    m.fit(["a b", "b c", "c a"], ["x y", "y z", "z x"])
    path = tmp_path / "t.crnn"
    m.save(path)
    assert list(crnn.load(path).predict(["a b"])) == list(m.predict(["a b"]))
    bad = _rewrite(path, tmp_path / "bad.crnn", manifest=edit)
    with pytest.raises(ModelFileError, match=message):
        crnn.load(bad)


@pytest.mark.parametrize("edit,message", [
    (lambda m: m["attributes"]["alphabet_"].pop(), "plus the blank"),
    (lambda m: m["attributes"]["alphabet_"].__setitem__(1, "a"), "repeats a symbol"),
    (lambda m: m["attributes"]["alphabet_"].__setitem__(1, 2.5), "single characters"),
    (lambda m: m["attributes"].__setitem__("alphabet_", "ab"), "not a list"),
    (lambda m: m["attributes"].__setitem__("_return_sequences", False), "output per frame"),
])
def test_altered_transcriber_files_are_refused(tmp_path, edit, message):
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(n, 3)).astype(np.float32) for n in (5, 6, 4, 7)]
    m = crnn.RNNTranscriber(hidden_size=3, num_layers=1, max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X, ["ab", "ba", "a", "bb"])
    path = tmp_path / "t.crnn"
    m.save(path)
    assert list(crnn.load(path).predict(X)) == list(m.predict(X))
    bad = _rewrite(path, tmp_path / "bad.crnn", manifest=edit)
    with pytest.raises(ModelFileError, match=message):
        crnn.load(bad)
