"""Model files that open without running code: ``model.save(path)`` and
``crnn.load(path)``.

A model file is a zip archive (stored, not compressed) of

- ``model.json``: the format name and version, the estimator's class, its
  parameters, its fitted attributes, and the SHA-256 of every other member;
- ``arrays/<n>.npy``: each numpy array, written and read with
  ``allow_pickle=False``.

Everything that is not an array is JSON, with a small tagged vocabulary for
the few Python values JSON lacks (tuples, numpy scalars and dtypes, a
RandomState, dicts with non-string keys).  Values outside that vocabulary are
refused when saving, with the attribute's name; nothing in a file can name a
class or function to call except the estimator class itself, which is looked
up among crnn's own.  Loading checks the format version, every member's
length and checksum, the parameters (as ``set_params`` would) and the fitted
attributes against the network they describe, and builds a new estimator
only when all of that holds: a bad file raises ``ModelFileError`` and leaves
nothing half-loaded.
"""
import contextlib
import dataclasses
import hashlib
import io
import json
import os
import zipfile

import numpy as np

from ._layout import GATES, Layout
from ._seq2seq import Seq2SeqLayout

FORMAT = "crnn-model"
FORMAT_VERSION = 1
MANIFEST = "model.json"
# attributes that are never saved: caches derived from the others (rebuilt
# on load), and runtime hooks (callbacks) that are not part of the model
_DERIVED = frozenset({"_wpack", "_engine_cache", "_validated_params", "_sklearn_version",
                      "_vocab_cache"})
_RUNTIME_PREFIXES = ("_skl_callbacks", "_parent_callback")
_BUILTIN_TYPES = {"float": float, "int": int, "bool": bool, "str": str}


class ModelFileMixin:
    """``save(path)`` and ``Class.load(path)`` in crnn's model-file format,
    for every crnn estimator."""

    def _save_guard(self):
        """Held while the estimator is written (its fit lock, where it has one)."""
        return contextlib.nullcontext()

    def save(self, path):
        """Write the model (parameters and, when fitted, everything fitting
        learned: weights, optimizer state, history, scaling) to a file that
        opens without running code.

        The file is a zip archive of numpy ``.npy`` arrays (read back with
        ``allow_pickle=False``) and JSON; ``crnn.load(path)`` or the class's
        ``load(path)`` reads it.  A loaded model predicts bit for bit as this
        one, and continued training (``partial_fit``, ``warm_start``)
        continues as it would continue this one's.  Callbacks set with
        ``set_callbacks`` are not saved.

        Parameters
        ----------
        path : str or os.PathLike
            Where to write; an existing file there is replaced (atomically).

        Returns
        -------
        None

        Raises
        ------
        TypeError
            When a parameter or attribute holds a value a model file cannot
            carry (for example class labels that are not str, int, float or
            bool); nothing is written then.
        """
        with self._save_guard():
            save(self, path)

    @classmethod
    def load(cls, path):
        """Read a model written by ``save``; the file must hold this class.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        estimator : estimator
            A new instance of this class, fitted if the saved one was.

        Raises
        ------
        crnn.ModelFileError
            (a ValueError) when the file is not a crnn model file, is
            truncated or altered, has a format version this crnn does not
            know, or holds another class.
        """
        return load(path, expected=cls)


class ModelFileError(ValueError):
    """A file that is not a crnn model file this version can load: unknown
    format or version, truncated, altered, for another class, or holding
    values inconsistent with the model they describe."""


def _estimator_classes():
    from ._estimators import RNNClassifier, RNNRegressor
    from ._forecast import RNNForecaster
    from ._lm import RNNLanguageModel
    from ._transcriber import RNNTranscriber
    from ._translator import RNNTranslator
    return {cls.__name__: cls for cls in (RNNRegressor, RNNClassifier, RNNForecaster,
                                          RNNLanguageModel, RNNTranslator, RNNTranscriber)}


# ---------------------------------------------------------------------------
# values <-> JSON + arrays


class _Encoder:
    def __init__(self):
        self.arrays = {}

    def array(self, arr, where):
        if arr.dtype.hasobject:
            items = arr.ravel().tolist()
            for item in items:
                if not (item is None or isinstance(item, (bool, int, float, str))):
                    raise TypeError(
                        f"{where}: an object array holding {type(item).__name__} values; a "
                        "model file holds labels that JSON can carry (str, int, float, bool, "
                        "None) only.")
            return {"$": "object_array", "shape": list(arr.shape), "items": items}
        if arr.dtype.kind not in "biufcUS?" or arr.dtype.fields is not None:
            raise TypeError(f"{where}: arrays of dtype {arr.dtype} cannot be saved.")
        name = f"arrays/{len(self.arrays)}.npy"
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
        self.arrays[name] = buf.getvalue()
        return {"$": "ndarray", "file": name}

    def value(self, v, where):
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, float)) and type(v) in (int, float):
            return v
        if isinstance(v, np.ndarray):
            return self.array(v, where)
        if isinstance(v, np.generic):
            if v.dtype.hasobject or v.dtype.kind not in "biufc?":
                raise TypeError(f"{where}: numpy scalars of dtype {v.dtype} cannot be saved.")
            return {"$": "np_scalar", "dtype": v.dtype.str, "value": self.value(v.item(), where)}
        if isinstance(v, complex):
            return {"$": "complex", "value": [v.real, v.imag]}
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if isinstance(v, tuple):
            return {"$": "tuple", "items": [self.value(x, f"{where}[{i}]")
                                            for i, x in enumerate(v)]}
        if isinstance(v, dict):
            return {"$": "dict", "items": [[self.value(k, f"{where} key"),
                                            self.value(x, f"{where}[{k!r}]")]
                                           for k, x in v.items()]}
        if isinstance(v, np.dtype):
            return {"$": "dtype", "name": v.str}
        if isinstance(v, type):
            if issubclass(v, np.generic) and not np.dtype(v).hasobject:
                return {"$": "numpy_type", "name": np.dtype(v).str}
            for name, t in _BUILTIN_TYPES.items():
                if v is t:
                    return {"$": "builtin_type", "name": name}
        if type(v).__name__ in _estimator_classes() and \
                _estimator_classes()[type(v).__name__] is type(v):
            return {"$": "estimator", **_describe(v, self, where)}
        if isinstance(v, Layout):
            return {"$": "Layout", **dataclasses.asdict(v)}
        if isinstance(v, Seq2SeqLayout):
            return {"$": "Seq2SeqLayout", **dataclasses.asdict(v)}
        if isinstance(v, np.random.RandomState):
            kind, key, pos, has_gauss, gauss = v.get_state()
            return {"$": "RandomState", "bit_generator": kind,
                    "key": self.array(np.asarray(key), where), "pos": int(pos),
                    "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
        raise TypeError(
            f"{where} is a {type(v).__module__}.{type(v).__qualname__}, which a crnn model "
            "file cannot hold (it holds numbers, strings, lists, dicts, numpy arrays and "
            "dtypes, and random states).")


class _Decoder:
    def __init__(self, read_array):
        self.read_array = read_array

    def value(self, v, where):
        if v is None or isinstance(v, (bool, str, int, float)):
            return v
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if not isinstance(v, dict) or not isinstance(v.get("$"), str):
            raise ModelFileError(f"{where}: an untagged JSON object.")
        tag = v["$"]
        try:
            if tag == "ndarray":
                return self.read_array(v["file"], where)
            if tag == "object_array":
                items = v["items"]
                if any(not (x is None or isinstance(x, (bool, int, float, str))) for x in items):
                    raise ModelFileError(f"{where}: an object array with nested values.")
                arr = np.empty(len(items), dtype=object)
                arr[:] = items
                return arr.reshape([int(n) for n in v["shape"]])
            if tag == "np_scalar":
                dtype = np.dtype(v["dtype"])
                if dtype.hasobject or dtype.kind not in "biufc?":
                    raise ModelFileError(f"{where}: a scalar of dtype {dtype}.")
                return dtype.type(self.value(v["value"], where))
            if tag == "complex":
                re, im = v["value"]
                return complex(float(re), float(im))
            if tag == "tuple":
                return tuple(self.value(x, f"{where}[{i}]") for i, x in enumerate(v["items"]))
            if tag == "dict":
                return {self.value(k, f"{where} key"): self.value(x, f"{where}[{k!r}]")
                        for k, x in v["items"]}
            if tag == "dtype":
                dtype = np.dtype(v["name"])
                if dtype.hasobject:
                    raise ModelFileError(f"{where}: an object dtype.")
                return dtype
            if tag == "numpy_type":
                dtype = np.dtype(v["name"])
                if dtype.hasobject:
                    raise ModelFileError(f"{where}: an object dtype.")
                return dtype.type
            if tag == "builtin_type":
                return _BUILTIN_TYPES[v["name"]]
            if tag == "estimator":
                return _build(v, self, where)
            if tag == "Layout":
                return _layout(v, where)
            if tag == "Seq2SeqLayout":
                return _seq2seq_layout(v, where)
            if tag == "RandomState":
                if v["bit_generator"] != "MT19937":
                    raise ModelFileError(f"{where}: unknown bit generator {v['bit_generator']!r}.")
                key = self.read_array(v["key"]["file"], where)
                rs = np.random.RandomState()
                rs.set_state(("MT19937", key, int(v["pos"]), int(v["has_gauss"]),
                              float(v["cached_gaussian"])))
                return rs
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelFileError(f"{where}: a malformed {tag!r} value ({exc}).") from exc
        raise ModelFileError(f"{where}: unknown value tag {tag!r}.")


def _layout(v, where):
    fields = [f.name for f in dataclasses.fields(Layout)]
    # the token fields came later: files without them are dense networks
    optional = {"tokens", "embedding_dim"}
    given = set(v) - {"$"}
    if not set(fields) - optional <= given <= set(fields):
        raise ModelFileError(f"{where}: a network description with fields "
                             f"{sorted(given)}.")
    try:
        layout = Layout(**{k: v[k] for k in fields if k in v})
    except ValueError as exc:
        raise ModelFileError(f"{where}: an invalid network description ({exc}).") from exc
    ints = (layout.num_layers, layout.hidden, layout.n_features, layout.n_outputs)
    if (layout.cell not in GATES or layout.nonlinearity not in ("tanh", "relu")
            or layout.ndir not in (1, 2)
            or not all(type(n) is int and 1 <= n < 2**31 for n in ints)
            or type(layout.tokens) is not bool or type(layout.embedding_dim) is not int
            or not 0 <= layout.embedding_dim < 2**31):
        raise ModelFileError(f"{where}: an invalid network description {layout}.")
    return layout


def _seq2seq_layout(v, where):
    fields = [f.name for f in dataclasses.fields(Seq2SeqLayout)]
    if set(v) - {"$"} != set(fields):
        raise ModelFileError(f"{where}: an encoder-decoder description with fields "
                             f"{sorted(set(v) - {'$'})}.")
    try:
        layout = Seq2SeqLayout(**{k: v[k] for k in fields})
    except ValueError as exc:
        raise ModelFileError(f"{where}: an invalid encoder-decoder description ({exc}).") \
            from exc
    ints = (layout.num_layers, layout.hidden, layout.src_vocab, layout.tgt_vocab,
            layout.embedding_dim)
    if (layout.ndir not in (1, 2) or not all(type(n) is int and 1 <= n < 2**31 for n in ints)
            or type(layout.attention_dim) is not int
            or not (layout.attention_dim >= 1 if layout.attention == "bahdanau"
                    else layout.attention_dim == 0) or layout.attention_dim >= 2**31):
        raise ModelFileError(f"{where}: an invalid encoder-decoder description {layout}.")
    return layout


def _describe(estimator, enc, where):
    """Class, parameters and fitted attributes of a crnn estimator, encoded."""
    at = f"{where}." if where else ""
    return {
        "class": type(estimator).__name__,
        "params": {k: enc.value(v, f"parameter {at}{k}")
                   for k, v in estimator.get_params(deep=False).items()},
        "attributes": {k: enc.value(v, f"attribute {at}{k}")
                       for k, v in saved_attributes(estimator).items()},
    }


def _build(desc, dec, where, expected=None, shown=None):
    """A new estimator from its description (checked: the class is one of
    crnn's, the parameters are its own and valid, the fitted attributes
    consistent)."""
    shown = shown or where
    classes = _estimator_classes()
    cls = classes.get(desc.get("class"))
    if cls is None:
        raise ModelFileError(f"{shown} holds a {desc.get('class')!r}, which is not one "
                             f"of crnn's estimators ({', '.join(classes)}).")
    if expected is not None and not issubclass(cls, expected):
        raise ModelFileError(f"{shown} holds a model of class {cls.__name__}, not "
                             f"{expected.__name__}; load it with crnn.load or "
                             f"{cls.__name__}.load.")
    if not isinstance(desc.get("params"), dict) or not isinstance(desc.get("attributes"), dict):
        raise ModelFileError(f"{shown}: a model description without parameters or attributes.")
    at = f"{where}." if where else ""
    params = {k: dec.value(v, f"parameter {at}{k}") for k, v in desc["params"].items()}
    attrs = {k: dec.value(v, f"attribute {at}{k}") for k, v in desc["attributes"].items()}
    known = set(cls._get_param_names())
    if set(params) != known:
        raise ModelFileError(
            f"{shown}: the parameters of its {cls.__name__} are not those of this crnn's "
            f"(unknown: {sorted(set(params) - known)}, missing: {sorted(known - set(params))}).")
    try:
        estimator = cls(**params)
        estimator._validate_hyperparams()
        if attrs:
            estimator._restore_fitted(attrs)
    except ModelFileError:
        raise
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{shown}: {where + ': ' if where else ''}{exc}") from exc
    return estimator


# ---------------------------------------------------------------------------
# save


def saved_attributes(estimator):
    """The estimator's fitted attributes that a model file holds."""
    state = estimator.__getstate__()
    params = set(estimator._get_param_names())
    return {k: v for k, v in state.items()
            if k not in params and k not in _DERIVED and not k.startswith(_RUNTIME_PREFIXES)}


def save(estimator, path):
    """Write ``estimator`` (fitted or not) to ``path``; see the module doc."""
    from ._version import __version__
    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(f"crnn.save writes crnn's estimators, not {name}.")
    enc = _Encoder()
    described = _describe(estimator, enc, "")
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "class": name,
        "crnn_version": __version__, "numpy_version": np.__version__,
        "params": described["params"], "attributes": described["attributes"],
        "members": {n: hashlib.sha256(b).hexdigest() for n, b in enc.arrays.items()},
    }
    text = json.dumps(manifest, allow_nan=True).encode()
    path = os.fspath(path)
    tmp = f"{path}.tmp{os.getpid()}"
    try:                # a complete file or none: write aside, then rename
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            zf.writestr(MANIFEST, text)
            for n, b in enc.arrays.items():
                zf.writestr(n, b)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ---------------------------------------------------------------------------
# load


def _read_manifest(zf, path):
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        raise ModelFileError(f"{path} is a zip archive but not a crnn model file "
                             f"(no {MANIFEST}).") from None
    if info.file_size > 64 * 2**20:
        raise ModelFileError(f"{path}: its {MANIFEST} is implausibly large.")
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{path}: {MANIFEST} is not valid JSON ({exc}).") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a crnn model file.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: invalid format version {version!r}.")
    if version > FORMAT_VERSION:
        from ._version import __version__
        raise ModelFileError(
            f"{path} has model file format version {version}, written by crnn "
            f"{manifest.get('crnn_version', '?')}; this crnn ({__version__}) reads format "
            f"version {FORMAT_VERSION} and older. Upgrade crnn to load it.")
    for key, kind in (("class", str), ("params", dict), ("attributes", dict),
                      ("members", dict)):
        if not isinstance(manifest.get(key), kind):
            raise ModelFileError(f"{path}: {MANIFEST} lacks a valid {key!r} entry.")
    return manifest


def _array_reader(zf, manifest, path):
    members = manifest["members"]
    names = set(zf.namelist()) - {MANIFEST}
    if names != set(members):
        extra, missing = sorted(names - set(members)), sorted(set(members) - names)
        raise ModelFileError(f"{path} has been altered: unexpected members {extra}, missing "
                             f"members {missing}.")

    def read_array(name, where):
        if name not in members:
            raise ModelFileError(f"{where} refers to {name!r}, which the file lacks.")
        info = zf.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise ModelFileError(f"{path}: member {name} is compressed; crnn writes its "
                                 "arrays uncompressed (the file has been altered).")
        data = zf.read(name)
        if hashlib.sha256(data).hexdigest() != members[name]:
            raise ModelFileError(f"{path}: member {name} does not match its checksum (the file "
                                 "is corrupt or has been altered).")
        buf = io.BytesIO(data)
        try:
            major, minor = np.lib.format.read_magic(buf)
            read_header = (np.lib.format.read_array_header_1_0 if major == 1
                           else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read_header(buf)
        except (ValueError, OSError) as exc:
            raise ModelFileError(f"{path}: member {name} is not a .npy array ({exc}).") from exc
        if dtype.hasobject:
            raise ModelFileError(f"{path}: member {name} holds Python objects.")
        if buf.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize != len(data):
            raise ModelFileError(f"{path}: member {name} has the wrong length for its header "
                                 "(truncated or altered).")
        buf.seek(0)
        return np.lib.format.read_array(buf, allow_pickle=False)

    return read_array


def load(path, expected=None):
    """Read a model written by ``estimator.save(path)``, without unpickling.

    Parameters
    ----------
    path : str or os.PathLike
    expected : class, optional
        The class the saved estimator must be (or derive from); the
        classes' own ``load`` passes itself here.

    Returns
    -------
    estimator : RNNRegressor or RNNClassifier
        A new estimator, with the saved parameters and, if it was fitted, its
        weights, optimizer state and history: it predicts bit for bit as the
        saved one and continues its training with ``partial_fit`` or
        ``warm_start``.

    Raises
    ------
    ModelFileError
        (a ValueError) naming the problem when the file is not a crnn model
        file, is truncated, corrupt or altered, has a newer format version,
        holds another class than ``expected``, or holds values inconsistent
        with the network they describe.  Nothing is half-loaded.
    FileNotFoundError
        When there is no file at ``path``.
    """
    shown = os.fspath(path)
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ModelFileError(f"{shown} is not a crnn model file, or it is truncated "
                             f"({exc}).") from exc
    with zf:
        try:
            manifest = _read_manifest(zf, shown)
            dec = _Decoder(_array_reader(zf, manifest, shown))
            return _build(manifest, dec, "", expected=expected, shown=shown)
        except (zipfile.BadZipFile, EOFError, OSError) as exc:
            # zipfile checks each member's CRC-32 as it reads it
            raise ModelFileError(f"{shown} is corrupt or truncated ({exc}).") from exc
