"""Model files as untrusted input (issue 24): crafted values, decompression
bombs, deep nesting, odd paths; and save() under concurrency, planted links
and restrictive permissions.  tests/io/test_model_file_fuzz.py mutates every
field of every estimator's file."""
import hashlib
import io
import json
import os
import stat
import struct
import threading
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest

import crnn
from crnn import ModelFileError, RNNRegressor
from crnn._io import model_files as _io


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 4, 2)).astype(np.float32)
    y = X.sum(axis=(1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = RNNRegressor(hidden_size=4, max_iter=2, random_state=0).fit(X, y)
    path = tmp_path_factory.mktemp("attacks") / "m.crnn"
    m.save(path)
    with zipfile.ZipFile(path) as zf:
        manifest = zf.read("model.json").decode()
        members = {n: zf.read(n) for n in zf.namelist() if n != "model.json"}
    return path, m, X, y, manifest, members


def _write(dst, manifest_text, members, compress=zipfile.ZIP_STORED):
    """A model file with this model.json text (the arrays untouched: an
    attacker who edits only model.json keeps every checksum valid)."""
    with zipfile.ZipFile(dst, "w") as zf:
        zf.writestr("model.json", manifest_text, compress_type=compress)
        for n, b in members.items():
            zf.writestr(n, b)
    return dst


def _edited(saved, tmp_path, edit):
    _, _, _, _, text, members = saved
    man = json.loads(text)
    edit(man)
    return _write(tmp_path / "edited.crnn", json.dumps(man), members)


def _peak_bytes(fn):
    """Peak memory traced (Python and numpy allocations) while fn runs."""
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


# ---------------------------------------------------------------------------
# crafted values


@pytest.mark.parametrize("pos", [2**20, -5, 625, 700, 2**31, pytest.param(10**400, id="10**400"),
                                 1e999, 3.0, True, None])
def test_a_random_state_position_out_of_range_is_refused(saved, tmp_path, pos):
    """pos 2**20 used to load, and the next partial_fit died of SIGSEGV;
    -5 and 700 read outside the 624-word key; 2**31 and 1e999 raised
    OverflowError."""
    def edit(man):
        man["attributes"]["_random_state"]["pos"] = pos
    with pytest.raises(ModelFileError, match="random state's position"):
        crnn.load(_edited(saved, tmp_path, edit))


@pytest.mark.parametrize("field,value", [
    ("has_gauss", 2), pytest.param("has_gauss", 10**400, id="has_gauss-10**400"),
    ("cached_gaussian", 1e999),
    ("cached_gaussian", "x"), ("bit_generator", "PCG64"),
])
def test_other_random_state_fields_are_checked(saved, tmp_path, field, value):
    def edit(man):
        man["attributes"]["_random_state"][field] = value
    with pytest.raises(ModelFileError, match="random state|bit generator"):
        crnn.load(_edited(saved, tmp_path, edit))


def test_the_last_valid_position_loads_and_trains(saved, tmp_path):
    path, m, X, y, _, _ = saved

    def edit(man):
        man["attributes"]["_random_state"]["pos"] = 624
    loaded = crnn.load(_edited(saved, tmp_path, edit))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.partial_fit(X, y)
    assert np.all(np.isfinite(loaded.predict(X)))


@pytest.mark.parametrize("where", ["params", "attributes"])
@pytest.mark.parametrize("value", [10**400, -(10**30), 2**64], ids=["10**400", "-10**30", "2**64"])
def test_integers_beyond_64_bits_are_refused_not_overflowed(saved, tmp_path, where, value):
    name = "max_iter" if where == "params" else "n_iter_"

    def edit(man):
        man[where][name] = value
    with pytest.raises(ModelFileError, match="64-bit|integer"):
        crnn.load(_edited(saved, tmp_path, edit))


@pytest.mark.parametrize("value", [
    {"$": "np_scalar", "dtype": "<i1", "value": 1000},
    {"$": "np_scalar", "dtype": "<u8", "value": -1},
    {"$": "np_scalar", "dtype": "<f8", "value": "1"},
    {"$": "np_scalar", "dtype": "(1000000,1000000)f8", "value": 1.0},
    {"$": "np_scalar", "dtype": ["x"], "value": 1.0},
    {"$": "dtype", "name": "f8,f8"},
    {"$": "dtype", "name": "V" * 1000},
    {"$": "object_array", "shape": [1e999], "items": [1]},
    {"$": "object_array", "shape": [2, -1], "items": [1, 2]},
    {"$": "object_array", "shape": [1], "items": [10**400]},
    {"$": "dict", "items": ["ab"]},
    {"$": "dict", "items": [[[1], 2]]},
    {"$": "tuple", "items": "abc"},
    {"$": "complex", "value": [1e999, "x"]},
    {"$": "builtin_type", "name": ["int"]},
    {"$": "estimator", "class": ["RNNRegressor"]},
    {"$": "ndarray", "file": ["arrays/0.npy"]},
])
def test_malformed_tagged_values_are_refused(saved, tmp_path, value):
    def edit(man):
        man["params"]["random_state"] = value
    with pytest.raises(ModelFileError):
        crnn.load(_edited(saved, tmp_path, edit))


def test_errors_name_the_file_even_for_a_nested_value(saved, tmp_path):
    def edit(man):
        man["attributes"]["_random_state"]["pos"] = -1
    bad = _edited(saved, tmp_path, edit)
    with pytest.raises(ModelFileError, match=f"^{bad}: attribute _random_state"):
        crnn.load(bad)


# ---------------------------------------------------------------------------
# bombs: memory and nesting


def test_a_deflated_manifest_of_millions_of_lists_is_refused_before_it_is_built(
        saved, tmp_path, monkeypatch):
    """A 68 KB file whose model.json inflates to 21 million empty lists under
    an unknown parameter took 44 s and 3.2 GB before it was refused."""
    _, _, _, _, text, members = saved
    man = json.loads(text)
    man["params"]["zz"] = []
    body = json.dumps(man).replace('"zz": []', '"zz": [' + "[]," * 3_000_000 + "[]]")
    bad = _write(tmp_path / "lists.crnn", body, members, zipfile.ZIP_DEFLATED)
    assert bad.stat().st_size < 100_000
    parsed = []
    monkeypatch.setattr(_io.json, "loads", lambda *a, **k: parsed.append(1))
    caught = []

    def load():
        with pytest.raises(ModelFileError, match="arrays and objects") as info:
            crnn.load(bad)
        caught.append(info)
    peak = _peak_bytes(load)
    assert caught and not parsed           # refused by the scan, never parsed
    assert peak < 64 << 20, peak           # the 9 MB text and a megabyte's scan


def test_deep_nesting_is_refused_without_recursion(saved, tmp_path):
    _, _, _, _, text, members = saved
    man = json.loads(text)
    man["params"]["zz"] = []
    body = json.dumps(man).replace('"zz": []', '"zz": ' + "[" * 200_000 + "]" * 200_000)
    bad = _write(tmp_path / "deep.crnn", body, members, zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelFileError, match="nests 200002 deep"):
        crnn.load(bad)
    # a deeply nested tagged value within the bound still decodes fine
    man = json.loads(text)
    value = 1
    for _ in range(12):                 # 2 levels each: 26 deep in all
        value = {"$": "tuple", "items": [value]}
    man["params"]["random_state"] = value
    with pytest.raises(ModelFileError, match="random_state"):   # refused by validation
        crnn.load(_write(tmp_path / "nested.crnn", json.dumps(man), members))


def _inflating_member(name, payload, declared):
    """A deflated zip entry whose headers declare ``declared`` bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = comp.compress(payload) + comp.flush()
    return name, data, zlib.crc32(payload), declared


def _raw_zip(path, entries):
    """A zip written by hand: entries of (name, stored data, crc, declared
    size) with deflate as method, so the declared size can lie."""
    out, central = bytearray(), bytearray()
    for name, data, crc, declared in entries:
        name = name.encode()
        offset = len(out)
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, len(data),
                           declared, len(name), 0) + name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0, crc,
                               len(data), declared, len(name), 0, 0, 0, 0, 0,
                               offset) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries),
                      len(central), len(out), 0)
    path.write_bytes(bytes(out + central + end))
    return path


@pytest.mark.parametrize("declared", [4096, 1 << 30])
def test_a_manifest_that_inflates_past_its_cap_costs_no_more_than_the_cap(
        saved, tmp_path, declared):
    """A 1 MB file whose manifest claims 4 KB but inflated to 1 GiB cost
    4.3 s and 2.2 GB: the cap is now counted on the bytes as they inflate."""
    _, _, _, _, text, _ = saved
    payload = text.encode() + b" " * (256 << 20)
    bad = _raw_zip(tmp_path / "inflate.crnn", [_inflating_member("model.json", payload,
                                                                 declared)])
    assert bad.stat().st_size < 1 << 20

    def load():
        with pytest.raises(ModelFileError, match="bytes|corrupt"):
            crnn.load(bad)
    assert _peak_bytes(load) < 2 * _io.MAX_MANIFEST_BYTES + (16 << 20)


def test_a_manifest_over_the_cap_is_refused_while_it_inflates(monkeypatch, saved, tmp_path):
    """The cap holds whatever the headers declare (here honestly)."""
    _, _, _, _, text, members = saved
    monkeypatch.setattr(_io, "MAX_MANIFEST_BYTES", 1 << 20)
    body = text[:-1] + ', "pad": "' + " " * (2 << 20) + '"}'
    bad = _write(tmp_path / "big.crnn", body, members, zipfile.ZIP_DEFLATED)
    with pytest.raises(ModelFileError, match="model.json declares .* more than 1048576"):
        crnn.load(bad)


def test_a_table_of_contents_of_a_million_members_is_refused_before_it_is_read(tmp_path):
    entries = 200_000
    central = b"".join(struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, 0,
                                   0, 0, 1, 0, 0, 0, 0, 0, 0) + b"a" for _ in range(entries))
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, len(central), 0, 0)
    bad = tmp_path / "members.crnn"
    bad.write_bytes(central + end)

    def load():
        with pytest.raises(ModelFileError, match="members in a .*-byte directory"):
            crnn.load(bad)
    assert _peak_bytes(load) < 16 << 20


def test_the_json_scan_counts_as_json_does():
    """_json_extent's depth and container count are exact and its value count
    an upper bound, across chunk boundaries and escaped quotes."""
    rng = np.random.default_rng(0)
    scalars = [1, 2.5, None, True, 'a"b\\', '\\\\"[{', "", "\\", '"', "]]]", 'x\\"y', "é"]

    def gen(d):
        r = rng.random()
        if d > 5 or r < 0.4:
            return scalars[rng.integers(len(scalars))]
        if r < 0.7:
            return [gen(d + 1) for _ in range(rng.integers(0, 4))]
        return {f'{scalars[rng.integers(4, len(scalars))]}{i}': gen(d + 1)
                for i in range(rng.integers(0, 4))}

    def ref(o, d=0):
        if isinstance(o, (list, dict)):
            items = o if isinstance(o, list) else [x for kv in o.items() for x in kv]
            sub = [ref(x, d + 1) for x in items]
            return (max([d + 1] + [s[0] for s in sub]), 1 + sum(s[1] for s in sub),
                    1 + sum(s[2] for s in sub))
        return d, 0, 1

    for _ in range(400):
        obj = gen(0)
        text = json.dumps(obj, ensure_ascii=bool(rng.integers(2))).encode()
        want = ref(obj)
        for chunk in (1 << 20, 1, 2, 5):
            depth, containers, values = _io._json_extent(text, chunk=chunk)
            assert (depth, containers) == want[:2] and values >= want[2], (text, chunk)


def test_save_refuses_a_model_its_loader_would_refuse(saved, tmp_path, monkeypatch):
    path, m, _, _, _, _ = saved
    monkeypatch.setattr(_io, "MAX_JSON_VALUES", 10)
    target = tmp_path / "m.crnn"
    target.write_bytes(b"keep me")
    with pytest.raises(ValueError, match="more than a crnn model file holds"):
        m.save(target)
    assert target.read_bytes() == b"keep me"


# ---------------------------------------------------------------------------
# paths


def test_paths_of_every_kind(saved, tmp_path):
    path, m, X, _, _, _ = saved
    assert np.array_equal(crnn.load(os.fsencode(path)).predict(X), m.predict(X))
    with pytest.raises(IsADirectoryError, match="a directory, not a crnn model file"):
        crnn.load(tmp_path)
    with pytest.raises(TypeError, match="not a int"):
        crnn.load(3)
    with pytest.raises(FileNotFoundError):
        crnn.load(tmp_path / "missing.crnn")
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo"
        os.mkfifo(fifo)
        with pytest.raises(ModelFileError, match="not a regular file"):
            crnn.load(fifo)        # would block forever if opened and read


# ---------------------------------------------------------------------------
# save


def test_concurrent_saves_to_one_path_each_write_a_whole_file(saved, tmp_path):
    """Saves from several threads used to share one temporary name: saves
    were lost (FileNotFoundError) and a corrupt file could remain while the
    other thread reported success."""
    _, m, X, y, _, _ = saved
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        other = RNNRegressor(hidden_size=5, max_iter=1, random_state=1).fit(X, y)
    target = tmp_path / "m.crnn"
    errors = []
    start = threading.Barrier(4)

    def work(est):
        start.wait()
        try:
            for _ in range(15):
                est.save(target)
                crnn.load(target)       # whichever finished last: whole and valid
        except Exception as exc:        # noqa: BLE001 - the test reports any
            errors.append(exc)
    threads = [threading.Thread(target=work, args=(e,)) for e in (m, other, m, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(os.listdir(tmp_path)) == ["m.crnn"]        # no temporary left
    final = crnn.load(target)
    assert final.hidden_size in (4, 5)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_a_link_planted_at_the_temporary_name_is_never_followed(saved, tmp_path,
                                                                monkeypatch):
    _, m, X, _, _, _ = saved
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    names = iter(["planted", "planted", "fresh"])
    monkeypatch.setattr(_io.secrets, "token_hex", lambda n: next(names))
    (tmp_path / ".m.crnn.planted.tmp").symlink_to(victim)
    m.save(tmp_path / "m.crnn")
    assert victim.read_text() == "precious"
    assert (tmp_path / ".m.crnn.planted.tmp").is_symlink()
    assert np.array_equal(crnn.load(tmp_path / "m.crnn").predict(X), m.predict(X))


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_save_keeps_the_permissions_of_the_file_it_replaces(saved, tmp_path):
    _, m, _, _, _, _ = saved
    target = tmp_path / "m.crnn"
    target.write_bytes(b"old")
    os.chmod(target, 0o600)
    m.save(target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    os.chmod(target, 0o640)
    m.save(target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640
    umask = os.umask(0o022)
    try:
        m.save(tmp_path / "new.crnn")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "new.crnn").st_mode) == 0o644


def test_a_failed_save_leaves_the_old_file_and_no_temporary(saved, tmp_path, monkeypatch):
    _, m, _, _, _, _ = saved
    target = tmp_path / "m.crnn"
    target.write_bytes(b"old contents")

    def fail(*a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(_io.os, "fsync", fail)
    with pytest.raises(OSError, match="No space left"):
        m.save(target)
    assert target.read_bytes() == b"old contents"
    assert sorted(os.listdir(tmp_path)) == ["m.crnn"]
    with pytest.raises(FileNotFoundError, match="cannot write"):
        m.save(tmp_path / "no" / "such" / "dir.crnn")


def test_checksums_still_guard_the_arrays(saved, tmp_path):
    """(Unchanged:) an attacker who edits an array must recompute its
    checksum in model.json; a mismatch is refused."""
    _, _, _, _, text, members = saved
    name = sorted(members)[0]
    changed = dict(members)
    changed[name] = members[name][:-1] + bytes([members[name][-1] ^ 1])
    with pytest.raises(ModelFileError, match="checksum"):
        crnn.load(_write(tmp_path / "c.crnn", text, changed))
    assert hashlib.sha256(members[name]).hexdigest() in text


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_save_writes_through_a_link_and_never_over_a_directory_or_device(saved, tmp_path):
    _, m, X, _, _, _ = saved
    real = tmp_path / "models" / "v1.crnn"
    real.parent.mkdir()
    real.write_bytes(b"old")
    link = tmp_path / "latest.crnn"
    link.symlink_to(real)
    m.save(link)
    assert link.is_symlink() and np.array_equal(crnn.load(real).predict(X), m.predict(X))
    with pytest.raises(IsADirectoryError, match="save writes a file"):
        m.save(tmp_path / "models")
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(ValueError, match="not a regular file"):
            m.save(tmp_path / "fifo")
        assert stat.S_ISFIFO(os.lstat(tmp_path / "fifo").st_mode)
    with pytest.raises(TypeError, match="not a int"):
        m.save(3)


def test_save_to_a_long_name_and_refusal_of_a_directory_name(saved, tmp_path):
    _, m, X, _, _, _ = saved
    long = tmp_path / ("m" * 245 + ".crnn")         # 251 bytes: a valid name
    m.save(long)
    assert np.array_equal(crnn.load(long).predict(X), m.predict(X))
    with pytest.raises(IsADirectoryError, match="ends with a separator"):
        m.save(str(tmp_path / "newfile") + os.sep)
    assert not (tmp_path / "newfile").exists()


@pytest.mark.parametrize("edit,message", [
    # a layout whose parameter count overflowed int64 matched a small weight
    # vector and the packing read out of bounds (SIGSEGV)
    (lambda m: m["attributes"]["_layout"].update(
        cell="lstm", hidden=1981478912, n_features=298, n_outputs=1383666999),
     "weights are not|does not match"),
    (lambda m: m["attributes"]["_layout"].update(num_layers=2147483647), "1024"),
    (lambda m: m["attributes"].update(_learning_rate=-1.0), "_learning_rate"),
    (lambda m: m["attributes"].update(_learning_rate=float("nan")), "_learning_rate"),
    (lambda m: m["attributes"].update(loss_=float("inf")), "loss_"),
    (lambda m: m["attributes"].update(loss_curve_=[float("nan")]), "loss_curve_"),
    (lambda m: m["params"].update(random_state=-1), "random_state"),
    (lambda m: m["params"].update(random_state=2**40), "random_state"),
    # one member referred to from many places is read once per reference
    (lambda m: m["attributes"].update(
        validation_scores_=[m["attributes"]["_theta"]] * 3), "a second time"),
])
def test_values_training_never_produces_are_refused(saved, tmp_path, edit, message):
    with pytest.raises(ModelFileError, match=message):
        crnn.load(_edited(saved, tmp_path, edit))


def test_weights_and_moments_training_never_commits_are_refused(saved, tmp_path):
    _, m, _, _, text, members = saved
    man = json.loads(text)

    def replaced(attr, values):
        arr = getattr(m, attr)
        buf = io.BytesIO()
        np.save(buf, np.full_like(arr, values))
        name = man["attributes"][attr]["file"]
        changed = dict(members, **{name: buf.getvalue()})
        man2 = json.loads(text)
        man2["members"][name] = hashlib.sha256(buf.getvalue()).hexdigest()
        return _write(tmp_path / f"{attr}.crnn", json.dumps(man2), changed)
    with pytest.raises(ModelFileError, match="beyond the square root"):
        crnn.load(replaced("_theta", 3e38))       # predictions were NaN
    with pytest.raises(ModelFileError, match="negative"):
        crnn.load(replaced("_opt_v", -1.0))


@pytest.mark.parametrize("bad", [np.array([0.0, np.nan]), np.array([0 + 1j, 1 + 0j])],
                         ids=["nan", "complex"])
def test_class_labels_fit_would_refuse_are_refused(tmp_path, bad):
    """classes_ [0.0, nan] loaded and predicted NaN labels."""
    from crnn import RNNClassifier
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 4, 2)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = RNNClassifier(hidden_size=3, max_iter=1, random_state=0).fit(
            X, np.array([0.0, 1.0] * 6))
    path = tmp_path / "c.crnn"
    m.save(path)
    with zipfile.ZipFile(path) as zf:
        man = json.loads(zf.read("model.json"))
        members = {n: zf.read(n) for n in zf.namelist() if n != "model.json"}
    name = man["attributes"]["classes_"]["file"]
    buf = io.BytesIO()
    np.save(buf, bad)
    members[name] = buf.getvalue()
    man["members"][name] = hashlib.sha256(buf.getvalue()).hexdigest()
    with pytest.raises(ModelFileError, match="classes_"):
        crnn.load(_write(tmp_path / "bad.crnn", json.dumps(man), members))


def test_a_zip64_locator_pointing_elsewhere_does_not_hide_the_directory_size(tmp_path):
    """zipfile reads the zip64 end record just before its locator; the
    locator's own offset can name a small decoy record.  Both are checked
    (a decoy let a 1,000,000-member file cost 4.3 s and 700 MB)."""
    entries = 50_000
    entry = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0,
                        0, 0, 0, 0, 0) + b"x"
    decoy = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, 1, 1, 47, 56)
    central = entry * entries
    real = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, entries, entries,
                                       len(central), 56)
    locator = b"PK\x06\x07" + struct.pack("<IQI", 0, 0, 1)      # -> the decoy at 0
    # the classic end record claims one small entry, as the decoy does
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, 47, 0xFFFFFFFF, 0)
    bad = tmp_path / "z64.crnn"
    bad.write_bytes(decoy + central + real + locator + end)
    with pytest.raises(ModelFileError, match="50000 members"):
        crnn.load(bad)
