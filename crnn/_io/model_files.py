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

A file is untrusted input.  Before anything is built from it, the zip's table
of contents, the size of ``model.json`` (counted as it inflates) and its JSON
nesting and number of values are bounded (MAX_* below; a scan that builds
nothing counts them), names are checked before values are decoded, and every
decoded value is type- and range-checked before numpy or a kernel sees it.
"""
import contextlib
import dataclasses
import errno
import hashlib
import io
import json
import os
import secrets
import stat
import struct
import zipfile

import numpy as np

from .._nn.layout import GATES, Layout
from .registry import ESTIMATORS, estimator_class
from .._nn.seq2seq import Seq2SeqLayout
from .._nn.conv import ConvLayout, SceneLayout

FORMAT = "crnn-model"
FORMAT_VERSION = 1
MANIFEST = "model.json"
# attributes that are never saved: caches derived from the others (rebuilt
# on load), and runtime hooks (callbacks) that are not part of the model
_DERIVED = frozenset({"_wpack", "_engine_cache", "_validated_params", "_sklearn_version",
                      "_vocab_cache"})
_RUNTIME_PREFIXES = ("_skl_callbacks", "_parent_callback")
_BUILTIN_TYPES = {"float": float, "int": int, "bool": bool, "str": str}

# What a model file may cost to open.  A file is untrusted input: these bounds
# are checked before anything they bound is built, so a crafted file is
# refused or loaded within a bounded cost whatever it claims or inflates to
# (docs/user_guide/saving.md: the threat model; benches/hostile_files.py measures
# it).  save() refuses a model beyond them rather than write a file that would
# not load.  The model.json of a word-level language model with a
# 100,000-word vocabulary is about 1 MB, 100,000 values, 4 deep.
MAX_MEMBERS = 4096                  # zip entries (1 + the arrays: tens in practice)
MAX_CENTRAL_DIRECTORY = 1 << 20     # bytes of the zip's table of contents
MAX_MANIFEST_BYTES = 64 << 20       # model.json, counted as it is read (inflated)
MAX_JSON_DEPTH = 32                 # nesting of JSON arrays and objects
MAX_JSON_CONTAINERS = 1 << 18       # JSON arrays and objects (~200 bytes each at most)
MAX_JSON_VALUES = 1 << 21           # JSON values in all (~60 bytes each at most)
MAX_LAYERS = 1024                   # a network's layers (num_layers' own bound)
_READ_CHUNK = 1 << 16


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
        path : str, bytes or os.PathLike
            Where to write.  The file is written beside it under a new name
            and renamed over it: an existing file there is replaced only by
            the complete new one (its permission bits kept), a symbolic link
            there is written through, and a directory, FIFO or device is
            refused.

        Returns
        -------
        None

        Raises
        ------
        TypeError
            When a parameter or attribute holds a value a model file cannot
            carry (for example class labels that are not str, int, float or
            bool); nothing is written then.
        ValueError
            When the model is larger than a model file may be (its loader's
            bounds, e.g. a vocabulary of over two million tokens), or path
            is not a regular file; nothing is written then.
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
        if estimator_class(type(v).__name__) is type(v):
            return {"$": "estimator", **_describe(v, self, where)}
        if isinstance(v, ConvLayout):
            d = dataclasses.asdict(v)
            d["conv"] = [list(t) for t in v.conv]
            d["image"] = list(v.image)
            return {"$": "ConvLayout", **d}
        if isinstance(v, Layout):
            return {"$": "Layout", **dataclasses.asdict(v)}
        if isinstance(v, Seq2SeqLayout):
            return {"$": "Seq2SeqLayout", **dataclasses.asdict(v)}
        if isinstance(v, SceneLayout):
            d = dataclasses.asdict(v)
            d["conv"] = [list(t) for t in v.conv]
            return {"$": "SceneLayout", **d}
        if isinstance(v, np.random.RandomState):
            kind, key, pos, has_gauss, gauss = v.get_state()
            return {"$": "RandomState", "bit_generator": kind,
                    "key": self.array(np.asarray(key), where), "pos": int(pos),
                    "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)}
        raise TypeError(
            f"{where} is a {type(v).__module__}.{type(v).__qualname__}, which a crnn model "
            "file cannot hold (it holds numbers, strings, lists, dicts, numpy arrays and "
            "dtypes, and random states).")


_INT_RANGE = (-2**63, 2**64)    # int64 and uint64: every integer crnn writes fits


def _int(v, where, what, low=None, high=None):
    """``v`` if it is a JSON integer (not a bool) in [low, high]."""
    if type(v) is not int or (low is not None and v < low) or (high is not None and v > high):
        bounds = f" in [{low}, {high}]" if low is not None and high is not None else ""
        raise ModelFileError(f"{where}: {what} is {_short(v)}; expected an integer{bounds}.")
    return v


def _short(v, quote=True):
    """``repr(v)`` (``str(v)`` for a str and not ``quote``), cut short: a
    hostile value may be megabytes long."""
    if type(v) is int and v.bit_length() > 64:
        return f"an integer of {v.bit_length()} bits"
    text = v if isinstance(v, str) and not quote else repr(v)
    return text if len(text) <= 80 else text[:77] + "..."


def _simple_dtype(name, where, kinds):
    """The numpy dtype a file names, if it is a plain one of ``kinds``."""
    if type(name) is not str or len(name) > 16:
        raise ModelFileError(f"{where}: a dtype named {_short(name)}.")
    try:
        dtype = np.dtype(name)
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{where}: an unknown dtype {_short(name)}.") from exc
    if dtype.kind not in kinds or dtype.fields is not None or dtype.subdtype is not None \
            or dtype.hasobject:
        raise ModelFileError(f"{where}: a value of dtype {dtype}, which a model file does "
                             "not hold.")
    return dtype


class _Decoder:
    """JSON values (already bounded in size and depth by _parse_manifest)
    back to Python and numpy values.  Every tagged value is checked for its
    type and range here, before numpy sees it: anything else is a
    ModelFileError naming where it is."""

    def __init__(self, read_array):
        self.read_array = read_array

    def value(self, v, where):
        if v is None or isinstance(v, (bool, str, float)):
            return v
        if type(v) is int:
            if not _INT_RANGE[0] <= v < _INT_RANGE[1]:
                raise ModelFileError(f"{where}: {_short(v)} is out of the range of 64-bit "
                                     "integers.")
            return v
        if isinstance(v, list):
            return [self.value(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if not isinstance(v, dict) or not isinstance(v.get("$"), str):
            raise ModelFileError(f"{where}: an untagged JSON object.")
        tag = v["$"]
        try:
            return self._tagged(tag, v, where)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, OverflowError) as exc:
            raise ModelFileError(f"{where}: a malformed {_short(tag)} value "
                                 f"({type(exc).__name__}: {_short(str(exc), quote=False)})."
                                 ) from exc

    def _items(self, v, where):
        items = v["items"]
        if not isinstance(items, list):
            raise ModelFileError(f"{where}: its items are not a list.")
        return items

    def _tagged(self, tag, v, where):
        if tag == "ndarray":
            return self.read_array(v["file"], where)
        if tag == "object_array":
            items = self._items(v, where)
            if any(not (x is None or isinstance(x, (bool, float, str))
                        or (type(x) is int and _INT_RANGE[0] <= x < _INT_RANGE[1]))
                   for x in items):
                raise ModelFileError(f"{where}: an object array holding values other "
                                     "than str, int, float, bool or None.")
            shape = v["shape"]
            if not (isinstance(shape, list) and len(shape) <= 32
                    and all(type(n) is int and n >= 0 for n in shape)
                    and int(np.prod(shape, dtype=object)) == len(items)):
                raise ModelFileError(f"{where}: an object array of shape {_short(shape)} "
                                     f"with {len(items)} items.")
            arr = np.empty(len(items), dtype=object)
            arr[:] = items
            return arr.reshape(shape)
        if tag == "np_scalar":
            dtype = _simple_dtype(v["dtype"], where, "biufc?")
            x = self.value(v["value"], where)
            kind = dtype.kind
            ok = ((kind == "b" and type(x) is bool)
                  or (kind in "iu" and type(x) is int
                      and np.iinfo(dtype).min <= x <= np.iinfo(dtype).max)
                  or (kind == "f" and type(x) in (int, float))
                  or (kind == "c" and type(x) in (int, float, complex)))
            if not ok:
                raise ModelFileError(f"{where}: {_short(x)} is not a value of dtype {dtype}.")
            with np.errstate(over="ignore"):
                return dtype.type(x)
        if tag == "complex":
            re, im = v["value"]
            if type(re) not in (int, float) or type(im) not in (int, float):
                raise ModelFileError(f"{where}: a complex number of {_short(v['value'])}.")
            return complex(float(re), float(im))
        if tag == "tuple":
            return tuple(self.value(x, f"{where}[{i}]")
                         for i, x in enumerate(self._items(v, where)))
        if tag == "dict":
            out = {}
            for pair in self._items(v, where):
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ModelFileError(f"{where}: a dict item that is not a [key, value] "
                                         "pair.")
                key = self.value(pair[0], f"{where} key")
                out[key] = self.value(pair[1], f"{where}[{_short(key)}]")
            return out
        if tag == "dtype":
            return _simple_dtype(v["name"], where, "biufcUS?")
        if tag == "numpy_type":
            return _simple_dtype(v["name"], where, "biufcUS?").type
        if tag == "builtin_type":
            name = v["name"]
            if type(name) is not str or name not in _BUILTIN_TYPES:
                raise ModelFileError(f"{where}: an unknown type {_short(name)}.")
            return _BUILTIN_TYPES[name]
        if tag == "estimator":
            return _build(v, self, where)
        if tag == "Layout":
            return _layout(v, where)
        if tag == "Seq2SeqLayout":
            return _seq2seq_layout(v, where)
        if tag == "SceneLayout":
            return _scene_layout(v, where)
        if tag == "ConvLayout":
            return _conv_layout(v, where)
        if tag == "RandomState":
            return self._random_state(v, where)
        raise ModelFileError(f"{where}: unknown value tag {_short(tag)}.")

    def _random_state(self, v, where):
        if set(v) != {"$", "bit_generator", "key", "pos", "has_gauss", "cached_gaussian"}:
            raise ModelFileError(f"{where}: a random state with fields {sorted(v)}.")
        if v["bit_generator"] != "MT19937":
            raise ModelFileError(f"{where}: unknown bit generator "
                                 f"{_short(v['bit_generator'])}.")
        key = v["key"]
        if not (isinstance(key, dict) and key.get("$") == "ndarray"):
            raise ModelFileError(f"{where}: a random state whose key is not an array.")
        key = self.read_array(key["file"], where)
        if key.dtype != np.uint32 or key.shape != (624,):
            raise ModelFileError(f"{where}: a random state whose key is {key.dtype} of shape "
                                 f"{key.shape}, not 624 uint32 words.")
        # pos indexes the key (624: draw a new block first); numpy does not
        # check it, and reads or writes out of bounds with a wrong one
        pos = _int(v["pos"], where, "the random state's position", 0, 624)
        has_gauss = _int(v["has_gauss"], where, "the random state's has_gauss", 0, 1)
        gauss = v["cached_gaussian"]
        if type(gauss) not in (int, float) or not np.isfinite(gauss):
            raise ModelFileError(f"{where}: the random state's cached Gaussian is "
                                 f"{_short(gauss)}.")
        rs = np.random.RandomState()
        rs.set_state(("MT19937", key, pos, has_gauss, float(gauss)))
        return rs


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
    if type(layout.num_layers) is int and layout.num_layers > MAX_LAYERS:
        raise ModelFileError(f"{where}: a network of {layout.num_layers} layers (a model "
                             f"file holds at most {MAX_LAYERS}).")
    if (layout.cell not in GATES or layout.nonlinearity not in ("tanh", "relu")
            or layout.ndir not in (1, 2)
            or not all(type(n) is int and 1 <= n < 2**31 for n in ints)
            or type(layout.tokens) is not bool or type(layout.embedding_dim) is not int
            or not 0 <= layout.embedding_dim < 2**31):
        raise ModelFileError(f"{where}: an invalid network description {layout}.")
    return layout


def _exact_fields(cls, v, where, what):
    """The dataclass cls's field names, which must be v's keys (but "$")."""
    fields = [f.name for f in dataclasses.fields(cls)]
    if set(v) - {"$"} != set(fields):
        raise ModelFileError(f"{where}: {what} with fields {sorted(set(v) - {'$'})}.")
    return fields


def _small(n, low):
    """An int (not a bool) in [low, 2**31)."""
    return type(n) is int and low <= n < 2**31


def _seq2seq_layout(v, where):
    fields = _exact_fields(Seq2SeqLayout, v, where, "an encoder-decoder description")
    try:
        layout = Seq2SeqLayout(**{k: v[k] for k in fields})
    except ValueError as exc:
        raise ModelFileError(f"{where}: an invalid encoder-decoder description ({exc}).") \
            from exc
    ints = (layout.num_layers, layout.hidden, layout.src_vocab, layout.tgt_vocab,
            layout.embedding_dim)
    if type(layout.num_layers) is int and layout.num_layers > MAX_LAYERS:
        raise ModelFileError(f"{where}: a network of {layout.num_layers} layers (a model "
                             f"file holds at most {MAX_LAYERS}).")
    if (layout.ndir not in (1, 2) or not all(type(n) is int and 1 <= n < 2**31 for n in ints)
            or type(layout.attention_dim) is not int
            or not (layout.attention_dim >= 1 if layout.attention == "bahdanau"
                    else layout.attention_dim == 0) or layout.attention_dim >= 2**31):
        raise ModelFileError(f"{where}: an invalid encoder-decoder description {layout}.")
    return layout


def _front_end(conv, where):
    """A front-end's layers from a file: 1 to MAX_LAYERS lists of 9 ints,
    filters, kernel and stride >= 1, padding >= 0, pool both 0 (none) or
    both >= 1, each below 2**31."""
    if not (isinstance(conv, list) and 1 <= len(conv) <= MAX_LAYERS and all(
            isinstance(t, list) and len(t) == 9 and all(_small(x, 1) for x in t[:5])
            and all(_small(x, 0) for x in t[5:])
            and (t[7] == t[8] == 0 or (t[7] >= 1 and t[8] >= 1)) for t in conv)):
        raise ModelFileError(f"{where}: an invalid front-end {_short(conv)}.")
    return tuple(tuple(t) for t in conv)


def _conv_layout(v, where):
    _exact_fields(ConvLayout, v, where, "a network under a front-end")
    conv = _front_end(v["conv"], where)
    image = v["image"]
    if not (isinstance(image, list) and len(image) == 3
            and all(type(n) is int and 1 <= n < 2**16 for n in image)):
        raise ModelFileError(f"{where}: an invalid frame shape {_short(image)}.")
    # the network's own fields, checked as a plain network's
    rnn = _layout({k: v[k] for k in v if k not in ("conv", "image")}, where)
    try:
        return ConvLayout(**dataclasses.asdict(rnn), conv=conv, image=tuple(image))
    except ValueError as exc:
        raise ModelFileError(f"{where}: an invalid network under a front-end ({exc}).") \
            from exc


def _scene_layout(v, where):
    fields = _exact_fields(SceneLayout, v, where, "a scene-labelling network")
    conv = _front_end(v["conv"], where)
    ints = [v[k] for k in ("channels", "hidden", "projection", "n_classes")]
    if not all(_small(n, 1) for n in ints) or v["cell"] not in GATES \
            or v["nonlinearity"] not in ("tanh", "relu"):
        raise ModelFileError(f"{where}: an invalid scene-labelling network.")
    return SceneLayout(conv, *(v[k] for k in fields if k != "conv"))


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


def _names(names):
    """A sorted list of (at most 10 of) the names a file gave, for a message."""
    names = sorted(_short(n) for n in names)
    more = [f"... {len(names) - 10} more"] if len(names) > 10 else []
    return "[" + ", ".join(names[:10] + more) + "]"


def _build(desc, dec, where, expected=None, shown=None):
    """A new estimator from its description (checked: the class is one of
    crnn's, the parameters are its own and valid, the fitted attributes
    consistent)."""
    shown = shown or where
    name = desc.get("class")
    cls = estimator_class(name)
    if cls is None:
        raise ModelFileError(f"{shown} holds a {_short(name)}, which is not one "
                             f"of crnn's estimators ({', '.join(ESTIMATORS)}).")
    if expected is not None and not issubclass(cls, expected):
        raise ModelFileError(f"{shown} holds a model of class {cls.__name__}, not "
                             f"{expected.__name__}; load it with crnn.load or "
                             f"{cls.__name__}.load.")
    if not isinstance(desc.get("params"), dict) or not isinstance(desc.get("attributes"), dict):
        raise ModelFileError(f"{shown}: a model description without parameters or attributes.")
    # names and structure first: no value is decoded for a file whose
    # parameters or attributes are not this class's
    known = set(cls._get_param_names())
    # parameters a class added later, absent from older files: the value that
    # keeps an older model's behaviour
    added = getattr(cls, "_OPTIONAL_PARAMS", {})
    if not known - set(added) <= set(desc["params"]) <= known:
        raise ModelFileError(
            f"{shown}: the parameters of its {cls.__name__} are not those of this crnn's "
            f"(unknown: {_names(set(desc['params']) - known)}, "
            f"missing: {_names(known - set(added) - set(desc['params']))}).")
    fitted = cls._FITTED_ATTRIBUTES
    # attributes a class added later, absent from older files
    required = fitted - getattr(cls, "_OPTIONAL_FITTED_ATTRIBUTES", frozenset())
    if desc["attributes"] and not required <= set(desc["attributes"]) <= fitted:
        raise ModelFileError(
            f"{shown}: {where + ': ' if where else ''}fitted attributes unknown: "
            f"{_names(set(desc['attributes']) - fitted)}, "
            f"missing: {_names(required - set(desc['attributes']))}.")
    at = f"{where}." if where else ""
    params = {k: dec.value(v, f"parameter {at}{k}") for k, v in desc["params"].items()}
    params = {**added, **params}
    attrs = {k: dec.value(v, f"attribute {at}{k}") for k, v in desc["attributes"].items()}
    try:
        estimator = cls(**params)
        estimator._validate_hyperparams()
        if attrs:
            estimator._restore_fitted(attrs)
    except ModelFileError:
        raise
    except (ValueError, TypeError, OverflowError) as exc:
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
    from .._version import __version__
    name = type(estimator).__name__
    if estimator_class(name) is not type(estimator):
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
    _check_extent(text, f"{name}.save")
    with replacing(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(MANIFEST, text)
        for n, b in enc.arrays.items():
            zf.writestr(n, b)


@contextlib.contextmanager
def replacing(path):
    """A binary file to write ``path``'s new contents into: written aside
    under a new name, flushed to disk, and renamed over the destination
    (_destination: through a link there) when the block ends without an
    error (atomic on POSIX and Windows); removed otherwise, the old file
    untouched.  save's writes, and the command line's outputs."""
    path = _destination(path)
    fd, tmp = _create_aside(path)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _path_str(path, what):
    """A str, bytes or os.PathLike path as a str (a TypeError otherwise)."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{what} a path (str, bytes or os.PathLike), not a "
                        f"{type(path).__name__}.")
    path = os.fspath(path)
    return os.fsdecode(path) if isinstance(path, bytes) else path


def _destination(path):
    """The file ``save`` replaces: ``path``, or where a symbolic link there
    points (the link stays, as when any program writes through it).  An
    existing directory, FIFO, socket or device is refused: renaming a file
    over it would replace it."""
    path = _path_str(path, "save writes to")
    if path.endswith(("/", os.sep)) or (os.altsep and path.endswith(os.altsep)):
        raise IsADirectoryError(errno.EISDIR, "a directory name (it ends with a separator); "
                                "save writes a file", path)
    path = os.path.abspath(path)
    if os.path.islink(path):
        path = os.path.realpath(path)
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return path
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a directory; save writes a file", path)
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path} is not a regular file (a FIFO, socket or device); save "
                         "writes model files only over regular files.")
    return path


def _create_aside(path):
    """A new file beside ``path`` for writing it atomically: (fd, name).

    The name is random and created exclusively (O_EXCL: never an existing
    file, and never through a link planted at the name), so concurrent saves
    to one path each write their own file and the last rename wins whole.
    The file gets the permission bits of the file it replaces (else those of
    a new file under the umask)."""
    directory, base = os.path.split(path)
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
             | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    # the name's start, shortened so that the temporary name stays within
    # the 255 bytes a file name may have wherever the destination's fits
    stem = base
    while len(os.fsencode(f".{stem}.{'0' * 16}.tmp")) > 255:
        stem = stem[:-1]
    for _ in range(100):
        tmp = os.path.join(directory, f".{stem}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666 if mode is None else 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot write {path} ({exc.strerror})",
                            directory) from None
        if mode is not None and hasattr(os, "fchmod"):
            try:
                os.fchmod(fd, mode)
            except BaseException:
                os.close(fd)
                os.unlink(tmp)
                raise
        return fd, tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name beside the file", path)


# ---------------------------------------------------------------------------
# load


def _check_directory(fp, path):
    """Refuse a zip whose table of contents is larger than a model file's
    could be, before zipfile reads it into memory (each entry costs ~500
    bytes there, and entries are 46 bytes in the file)."""
    fp.seek(0, os.SEEK_END)
    size = fp.tell()
    tail_len = min(size, 22 + 65535)        # end record + the longest comment
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    # the end record as zipfile finds it: at the very end (no comment), else
    # the last signature in the tail
    if len(tail) >= 22 and tail[-22:-18] == b"PK\x05\x06" and tail[-2:] == b"\0\0":
        at = len(tail) - 22
    else:
        at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return                              # zipfile says what is wrong
    entries, cd_size = struct.unpack("<xxxxxxxxxxHI", tail[at:at + 16])
    end = size - tail_len + at                # where the end record starts
    if end >= 20:                           # a zip64 locator may precede it
        fp.seek(end - 20)
        locator = fp.read(20)
        if locator[:4] == b"PK\x06\x07":
            # the zip64 end record: zipfile reads the 56 bytes before the
            # locator; the locator's offset names another place.  Both count.
            (offset,) = struct.unpack("<Q", locator[8:16])
            for where in {end - 76, offset}:
                if 0 <= where and where + 56 <= size:
                    fp.seek(where)
                    rec = fp.read(56)
                    if rec[:4] == b"PK\x06\x06":
                        n, cd = struct.unpack("<QQ", rec[32:48])
                        entries, cd_size = max(entries, n), max(cd_size, cd)
    if entries > MAX_MEMBERS or cd_size > MAX_CENTRAL_DIRECTORY:
        raise ModelFileError(f"{path}: a zip archive of {entries} members in a "
                             f"{cd_size}-byte directory, more than a crnn model file has "
                             f"(at most {MAX_MEMBERS} members, {MAX_CENTRAL_DIRECTORY} "
                             "bytes).")
    fp.seek(0)


def _read_member(zf, info, cap, path):
    """A member's bytes, refused once they pass ``cap`` (counted as they are
    inflated: the size a member declares is not trusted)."""
    if info.file_size > cap:
        raise ModelFileError(f"{path}: member {info.filename} declares {info.file_size} "
                             f"bytes, more than {cap}.")
    out = bytearray()
    with zf.open(info) as f:
        while True:
            chunk = f.read(_READ_CHUNK)
            if not chunk:
                break
            out += chunk
            if len(out) > cap:
                raise ModelFileError(f"{path}: member {info.filename} holds more than "
                                     f"{cap} bytes (declared {info.file_size}).")
    return out


def _json_extent(text, chunk=1 << 20):
    """(depth, containers, values) of a JSON text, counted by a scan that
    builds nothing, a megabyte at a time: the deepest nesting of arrays and
    objects, their number, and a bound on the number of values (each value
    and key but the outermost follows a '[', '{', ',' or ':' outside
    strings).  Exact for valid JSON; for invalid JSON, exact up to the first
    error, which is as far as json.loads builds anything."""
    in_string, carry = 0, 0           # inside a string; backslashes ending the last chunk
    depth = max_depth = containers = separators = 0
    view = np.frombuffer(text, dtype=np.uint8)
    for lo in range(0, len(view), chunk):
        c = view[lo:lo + chunk]
        m = len(c)
        backslash = c == 0x5C
        idx = np.arange(m, dtype=np.int32)
        # for each position, the last one at or before it that is not a backslash
        last_plain = np.maximum.accumulate(np.where(backslash, np.int32(-1), idx))
        q = np.flatnonzero(c == 0x22)
        prev = last_plain[np.maximum(q - 1, 0)]
        run = np.where(q > 0, q - 1 - prev, 0)
        run += np.where((q == 0) | (prev < 0), carry, 0)
        toggles = np.zeros(m, dtype=np.int32)
        toggles[q[run % 2 == 0]] = 1                 # unescaped quotes
        outside = (np.cumsum(toggles) + in_string) % 2 == 0
        opens = outside & ((c == 0x5B) | (c == 0x7B))
        closes = outside & ((c == 0x5D) | (c == 0x7D))
        steps = opens.astype(np.int32) - closes.astype(np.int32)
        levels = np.cumsum(steps) + depth
        max_depth = max(max_depth, int(levels.max()))
        depth = int(levels[-1])
        containers += int(opens.sum())
        separators += int((outside & ((c == 0x2C) | (c == 0x3A))).sum())
        in_string = (in_string + int(toggles.sum())) % 2
        tail = m - 1 - int(last_plain[-1])
        carry = tail + (carry if last_plain[-1] < 0 else 0)
    return max_depth, containers, containers + separators + 1


def _check_extent(text, where, error=ValueError):
    depth, containers, values = _json_extent(text)
    if len(text) > MAX_MANIFEST_BYTES or depth > MAX_JSON_DEPTH \
            or containers > MAX_JSON_CONTAINERS or values > MAX_JSON_VALUES:
        raise error(
            f"{where}: {MANIFEST} of {len(text)} bytes nests {depth} deep with {containers} "
            f"arrays and objects and up to {values} values, more than a crnn model file "
            f"holds ({MAX_MANIFEST_BYTES} bytes, depth {MAX_JSON_DEPTH}, "
            f"{MAX_JSON_CONTAINERS} containers, {MAX_JSON_VALUES} values).")


def _parse_manifest(text, path):
    """json.loads, after checking the nesting depth and the number of values
    and containers: a few bytes of JSON can otherwise become hundreds of
    bytes of Python objects each, or a RecursionError."""
    _check_extent(text, path, ModelFileError)
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: {MANIFEST} is not valid JSON "
                             f"({_short(str(exc), quote=False)}).") from exc


def _read_manifest(zf, path):
    try:
        info = zf.getinfo(MANIFEST)
    except KeyError:
        raise ModelFileError(f"{path} is a zip archive but not a crnn model file "
                             f"(no {MANIFEST}).") from None
    manifest = _parse_manifest(_read_member(zf, info, MAX_MANIFEST_BYTES, path), path)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelFileError(f"{path} is not a crnn model file.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ModelFileError(f"{path}: invalid format version {_short(version)}.")
    if version > FORMAT_VERSION:
        from .._version import __version__
        raise ModelFileError(
            f"{path} has model file format version {_short(version)}, written by crnn "
            f"{_short(manifest.get('crnn_version', '?'), quote=False)}; this crnn "
            f"({__version__}) reads format version {FORMAT_VERSION} and older. Upgrade crnn "
            "to load it.")
    for key, kind in (("class", str), ("params", dict), ("attributes", dict),
                      ("members", dict)):
        if not isinstance(manifest.get(key), kind):
            raise ModelFileError(f"{path}: {MANIFEST} lacks a valid {key!r} entry.")
    return manifest


def _array_reader(zf, manifest, path):
    members = manifest["members"]
    names = set(zf.namelist()) - {MANIFEST}
    if names != set(members):
        raise ModelFileError(f"{path} has been altered: unexpected members "
                             f"{_names(names - set(members))}, missing members "
                             f"{_names(set(members) - names)}.")

    read = set()

    def read_array(name, where):
        if not isinstance(name, str) or name not in members:
            raise ModelFileError(f"{where} refers to {_short(name)}, which the file lacks.")
        # crnn writes one member per array: a member referred to twice would
        # be read (and cost its size) again for every reference
        if name in read:
            raise ModelFileError(f"{where} refers to {name} a second time; each array of a "
                                 "model file is one member.")
        read.add(name)
        if not isinstance(members[name], str):
            raise ModelFileError(f"{path}: member {name}'s checksum is {_short(members[name])}.")
        info = zf.getinfo(name)
        if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
            raise ModelFileError(f"{path}: member {name} is compressed; crnn writes its "
                                 "arrays uncompressed (the file has been altered).")
        data = _read_member(zf, info, info.file_size, path)
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
        if dtype.kind not in "biufcUS?" or dtype.fields is not None \
                or dtype.subdtype is not None:
            raise ModelFileError(f"{path}: member {name} is an array of dtype {dtype}, which "
                                 "a model file does not hold.")
        if buf.tell() + int(np.prod(shape, dtype=object)) * dtype.itemsize != len(data):
            raise ModelFileError(f"{path}: member {name} has the wrong length for its header "
                                 "(truncated or altered).")
        buf.seek(0)
        return np.lib.format.read_array(buf, allow_pickle=False)

    return read_array


def load(path, expected=None):
    """Read a model written by ``estimator.save(path)``, without unpickling.

    Parameters
    ----------
    path : str, bytes or os.PathLike
    expected : class, optional
        The class the saved estimator must be (or derive from); the
        classes' own ``load`` passes itself here.

    Returns
    -------
    estimator : crnn estimator
        A new estimator of the saved class (RNNRegressor, RNNClassifier,
        RNNForecaster, RNNLanguageModel, RNNTranslator or RNNTranscriber),
        with the saved parameters and, if it was fitted, its
        weights, optimizer state and history: it predicts bit for bit as the
        saved one and continues its training with ``partial_fit`` or
        ``warm_start``.

    Raises
    ------
    ModelFileError
        (a ValueError) naming the problem when the file is not a crnn model
        file, is truncated, corrupt or altered, has a newer format version,
        holds another class than ``expected``, or holds values inconsistent
        with the network they describe, or is larger than a model file may
        be, or is not a regular file (a FIFO or device).  Nothing is
        half-loaded.
    FileNotFoundError, IsADirectoryError
        When there is no file at ``path``, or a directory.

    Examples
    --------
    >>> import os
    >>> import tempfile
    >>> import numpy as np
    >>> import crnn
    >>> X = np.random.default_rng(0).normal(size=(32, 5, 2))
    >>> y = (X[:, -1, 0] > 0).astype(int)
    >>> clf = crnn.RNNClassifier(hidden_size=8, max_iter=3, random_state=0).fit(X, y)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = os.path.join(folder, "model.crnn")
    ...     clf.save(path)
    ...     loaded = crnn.load(path)
    >>> type(loaded).__name__
    'RNNClassifier'
    >>> bool(np.array_equal(loaded.predict_proba(X), clf.predict_proba(X)))   # bit for bit
    True
    """
    shown = _path_str(path, "crnn.load reads a model file from")
    with _open_regular(shown) as fp:
        _check_directory(fp, shown)
        try:
            zf = zipfile.ZipFile(fp)
        except (zipfile.BadZipFile, EOFError, ValueError, struct.error) as exc:
            raise ModelFileError(f"{shown} is not a crnn model file, or it is truncated "
                                 f"({_short(str(exc), quote=False)}).") from exc
        with zf:
            try:
                manifest = _read_manifest(zf, shown)
                dec = _Decoder(_array_reader(zf, manifest, shown))
                return _build(manifest, dec, "", expected=expected, shown=shown)
            except ModelFileError as exc:
                if str(exc).startswith(shown):
                    raise
                raise ModelFileError(f"{shown}: {exc}") from exc
            except (zipfile.BadZipFile, EOFError, OSError, RuntimeError,
                    NotImplementedError) as exc:
                # zipfile checks each member's CRC-32 as it reads it, and
                # refuses encrypted members and unknown compression methods
                raise ModelFileError(f"{shown} is corrupt, truncated or not written by crnn "
                                     f"({_short(str(exc), quote=False)}).") from exc


def _open_regular(path):
    """The file at ``path`` opened for reading, if it is a regular file (a
    directory, FIFO or device is refused before it is read: a FIFO would
    block, a device never end)."""
    st = os.stat(path)                      # FileNotFoundError as open() gives it
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "a directory, not a crnn model file", path)
    if not stat.S_ISREG(st.st_mode):
        raise ModelFileError(f"{path} is not a regular file (a FIFO, socket or device), so "
                             "not a crnn model file.")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):    # replaced since the stat
            raise ModelFileError(f"{path} is not a regular file, so not a crnn model file.")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
