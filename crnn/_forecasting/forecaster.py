"""RNNForecaster: recursive multi-step forecasts of one or many series.

The forecaster is a thin layer over RNNRegressor (return_sequences) and its
Stepper: it transforms each series (seasonal and regular differencing, then
per-series scaling), cuts windows in which every step is a next-step target,
trains the regressor on them, and forecasts by warming the recurrent state up
once over the last window (one batched predict) and then feeding each
prediction back through the step kernel, every series (and every simulated
path) a parallel stream.

Time alignment: the input at time t is [z_t, x_{t+1}] (the covariates of the
time being predicted, known in advance) and its target is z_{t+1}.
"""
import copy
import datetime
import numbers
import re
import warnings
import zoneinfo

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .._nn import threads as _threads
from .._base.docstrings import document_parameters
from .._sequence.estimators import RNNRegressor
from .._base.params import (INT_MAX, Interval, Options, store_params, validate_params,
                            without)
from . import baselines as _baselines, ets as _ets
from .baselines import _KPSS_5PCT, kpss_statistic  # noqa: F401  (public here)
from .._io.model_files import ModelFileMixin

# ---------------------------------------------------------------------------
# input handling: one series, a multivariate series, or a list of them


def _pandas():
    try:
        import pandas as pd
        return pd
    except ImportError:                   # pragma: no cover - pandas is optional
        return None


def _json_name(v):
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, np.generic):
        return v.item()
    return str(v)


# the longest horizon one forecast runs (one network step per forecast step),
# and the most values one forecast request may hold at once (a forecast of S
# series x P paths x steps x k columns; 2 GiB in float64): larger requests are
# refused before any work, not left to fail in an allocation
_MAX_STEPS = 1_000_000
# regular differences at most (undoing d of them keeps d levels of the
# series; and each doubles the range of the noise)
_MAX_DIFFERENCE = 10
_MAX_VALUES = 2 ** 28
# simulated paths run in chunks of about this many values each
_CHUNK_VALUES = 2 ** 22
# a time-zone name that can be looked up without touching any other file
# (IANA names such as "Europe/Berlin", "UTC", "Etc/GMT+1")
_TZ_NAME = re.compile(r"[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*\Z")
_UNITS = ("s", "ms", "us", "ns")
_INT64 = 2 ** 63


def _tz_record(tz, name="y"):
    """(kind, name) that rebuild a pandas index's time zone (the same object
    where the library caches its zones): IANA zones of zoneinfo, pytz and
    dateutil by name, fixed offsets by their microseconds."""
    if tz is None:
        return None, None
    if isinstance(tz, zoneinfo.ZoneInfo) and isinstance(tz.key, str) and \
            _TZ_NAME.match(tz.key):
        return "zoneinfo", tz.key
    if isinstance(tz, datetime.timezone):
        return "fixed", str(tz.utcoffset(None) // datetime.timedelta(microseconds=1))
    module = type(tz).__module__ or ""
    if module.startswith("pytz"):
        zone = getattr(tz, "zone", None)
        if isinstance(zone, str) and _TZ_NAME.match(zone):
            return "pytz", zone
        offset = tz.utcoffset(None)                     # pytz.FixedOffset
        if offset is not None:
            return "fixed", str(offset // datetime.timedelta(microseconds=1))
    if module.startswith("dateutil"):
        from dateutil import tz as dtz
        if isinstance(tz, dtz.tzutc):
            return "dateutil", "UTC"
        key = getattr(tz, "_filename", None)
        if isinstance(key, str) and "zoneinfo/" in key:
            key = key.rsplit("zoneinfo/", 1)[1]
        if isinstance(key, str) and _TZ_NAME.match(key) and dtz.gettz(key) == tz:
            return "dateutil", key
    raise ValueError(
        f"{name}'s index has the time zone {tz!r}, which a forecaster cannot record (it "
        "records IANA time zones, from zoneinfo, pytz or dateutil, and fixed UTC offsets); "
        f"convert the index first, e.g. {name}.tz_convert('Europe/Berlin').")


def _same_names(a, b):
    """Column names equal, NaN matching NaN (pandas keeps a None name as NaN)."""
    return len(a) == len(b) and all(
        x == y or (isinstance(x, float) and isinstance(y, float) and x != x and y != y)
        for x, y in zip(a, b))


def _frame_columns(metas, name, what):
    """The column names of the DataFrames among a list's series (None when
    none is one); a ValueError when they differ between DataFrames (each
    series' columns are read by position)."""
    cols = [mt["columns"] for mt in metas if mt and "columns" in mt]
    for i, c in enumerate(cols[1:], 1):
        if not _same_names(c, cols[0]):
            raise ValueError(f"the DataFrames in {name} have different {what + ' ' if what else ''}"
                             f"columns ({cols[0]} and {c}); each series' columns are read by "
                             "position, so they must be the same, in the same order.")
    return cols[0] if cols else None


def _tz_object(kind, name):
    """The time zone that _tz_record described (ValueError if there is none)."""
    if not isinstance(name, str) or not 0 < len(name) <= 255:
        raise ValueError(f"the time zone {name!r} is not a name.")
    if kind == "fixed":
        if not re.fullmatch(r"[+-]?[0-9]{1,11}", name) or \
                abs(int(name)) >= 86_400_000_000:
            raise ValueError(f"the time zone offset {name!r} is not a number of "
                             "microseconds within a day.")
        return datetime.timezone(datetime.timedelta(microseconds=int(name)))
    if not _TZ_NAME.match(name):
        raise ValueError(f"{name!r} is not a time zone name.")
    if name.lower() in ("localtime", "posixrules") or name.lower().startswith(("right/",
                                                                             "posix/")):
        # the loading machine's own zone, or leap-second / POSIX-rule
        # variants: not the zone the series was recorded in
        raise ValueError(f"the time zone {name!r} is not an IANA zone name.")
    if kind == "pytz":
        try:
            import pytz
        except ImportError:                 # the same IANA zone, from zoneinfo
            kind = "zoneinfo"
        else:
            try:
                return pytz.timezone(name)
            except pytz.UnknownTimeZoneError:
                raise ValueError(f"unknown time zone {name!r}.") from None
    if kind == "dateutil":
        try:
            from dateutil import tz as dtz
        except ImportError:                 # pragma: no cover - pandas requires dateutil
            kind = "zoneinfo"
        else:
            tz = dtz.gettz(name)
            if tz is None or isinstance(tz, dtz.tzlocal):
                raise ValueError(f"unknown time zone {name!r}.")
            return tz
    if kind == "zoneinfo":
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown time zone {name!r}.") from None
    raise ValueError(f"unknown kind of time zone {kind!r}.")


def _strictly_increasing(index, name):
    if index.hasnans:
        raise ValueError(f"{name}'s index has missing labels (NaT/NA); the rows must be "
                         "consecutive times.")
    if not (index.is_unique and index.is_monotonic_increasing):
        what = "duplicate" if not index.is_unique else "unsorted or decreasing"
        raise ValueError(
            f"{name}'s index has {what} labels: the rows of a series must run forward in "
            f"time, one per time step. Sort it ({name}.sort_index()) and drop duplicates "
            "(or aggregate them), or pass a numpy array.")


def _index_info(index, n, name="y"):
    """What a forecast's index needs from a history's pandas index (n >= 1
    labels): JSON values only, so that it goes into a model file."""
    pd = _pandas()
    if isinstance(index, pd.DatetimeIndex):
        _strictly_increasing(index, name)
        freq = index.freqstr or (pd.infer_freq(index) if n >= 3 else None)
        if freq is None:
            raise ValueError(f"{name} has a DatetimeIndex without a frequency, and none can "
                             "be inferred; give the index a frequency (e.g. "
                             f"{name}.asfreq('D')) or pass a numpy array.")
        if index.freq is not None and pd.tseries.frequencies.to_offset(freq) != index.freq:
            raise ValueError(f"{name}'s index has the frequency {index.freq!r}, which a "
                             f"forecaster cannot record (only its name {freq!r}, e.g. "
                             "without custom holidays); pass a numpy array, or an index "
                             "with a plain frequency.")
        kind, tz = _tz_record(index.tz, name)
        info = {"kind": "datetime", "last": index[-1].isoformat(), "freq": freq, "tz": tz,
                "tz_kind": kind}
        if getattr(index, "unit", None) in _UNITS:
            info["unit"] = index.unit
        return info
    if isinstance(index, pd.TimedeltaIndex):
        _strictly_increasing(index, name)
        freq = index.freqstr or (pd.infer_freq(index) if n >= 3 else None)
        if freq is None:
            raise ValueError(f"{name} has a TimedeltaIndex without a frequency, and none can "
                             "be inferred; give the index a frequency or pass a numpy "
                             "array.")
        info = {"kind": "timedelta", "last": str(index[-1]), "freq": freq}
        if getattr(index, "unit", None) in _UNITS:
            info["unit"] = index.unit
        return info
    if isinstance(index, pd.PeriodIndex):
        _strictly_increasing(index, name)
        ordinals = np.asarray(index.asi8, dtype=np.int64)
        steps = np.diff(ordinals)
        if n >= 2 and not np.all(steps == steps[0]):
            raise ValueError(f"{name}'s PeriodIndex is not evenly spaced (its steps run from "
                             f"{steps.min()} to {steps.max()} periods); the rows must be "
                             "consecutive time steps.")
        step = int(steps[0]) if n >= 2 else int(index.freq.n)
        return {"kind": "period", "last": int(ordinals[-1]), "freq": index.freqstr,
                "step": step}
    if pd.api.types.is_float_dtype(index):
        # whole numbers stored as floats (years read as 1990.0): an integer
        # index; anything else cannot be continued (it was numbered 0, 1, ...
        # as if it were labels of no kind, a forecast labelled 10 after 1999.0)
        v = np.asarray(index, dtype=np.float64)
        if not (np.all(np.isfinite(v)) and np.all(v == np.round(v))
                and np.all(np.abs(v) < 2**53)):
            raise ValueError(f"{name}'s index holds numbers that are not whole, so the "
                             "forecast cannot continue its labels; give whole numbers or "
                             f"dates, reset it ({name}.reset_index(drop=True)), or pass a "
                             "numpy array.")
        index = pd.Index(v.astype(np.int64), name=index.name)
    integer = isinstance(index, pd.RangeIndex) or (
        pd.api.types.is_integer_dtype(index) and not pd.api.types.is_bool_dtype(index))
    if integer:
        _strictly_increasing(index, name)
        values = [int(v) for v in (index[0], index[-1])]
        if isinstance(index, pd.RangeIndex):
            step = index.step if n >= 2 or index.step > 0 else 1
        elif n >= 2:
            steps = np.diff(np.asarray(index, dtype=object))    # no int64 wrap-around
            if not all(v == steps[0] for v in steps):
                raise ValueError(
                    f"{name}'s integer index is not evenly spaced (steps from {min(steps)} "
                    f"to {max(steps)}), so the forecast's labels would be ambiguous; the "
                    f"rows must be consecutive time steps. Reset it ({name}.reset_index("
                    "drop=True)) or pass a numpy array.")
            step = int(steps[0])
        else:
            step = 1
        if any(abs(v) >= _INT64 for v in values + [values[1] + step]):
            raise ValueError(f"{name}'s index labels do not fit in 64-bit integers.")
        return {"kind": "range", "last": values[1], "step": int(step)}
    return {"kind": "range", "last": n - 1, "step": 1}


def _offset(freq, what):
    pd = _pandas()
    if not isinstance(freq, str) or not 0 < len(freq) <= 100:
        raise ValueError(f"the {what} frequency {freq!r} is not a frequency name.")
    try:
        return pd.tseries.frequencies.to_offset(freq)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"the {what} frequency {freq!r} does not parse ({exc}).") from None


def _check_keys(info, required, optional=()):
    keys = set(info)
    if not set(required) <= keys <= set(required) | set(optional):
        raise ValueError(f"a {info.get('kind')} index description with the fields "
                         f"{sorted(keys)}.")


def _future_index(info, steps):
    """The labels of the ``steps`` time steps after a history described by
    _index_info (ValueError where there are none: an invalid description,
    or labels beyond what pandas represents)."""
    pd = _pandas()
    if pd is None:                          # pragma: no cover - pandas is optional
        raise ValueError("pandas is needed for a pandas forecast.")
    if not isinstance(info, dict):
        raise ValueError("the index description is not a dict.")
    kind = info.get("kind")
    try:
        if kind == "range":
            _check_keys(info, ("kind", "last", "step"))
            last, step = info["last"], info["step"]
            if type(last) is not int or type(step) is not int or step == 0 or \
                    abs(last) >= _INT64 or abs(step) >= _INT64:
                raise ValueError(f"a range index continuing {last!r} by {step!r}.")
            stop = last + step * (steps + 1)
            if abs(stop) >= _INT64:
                raise ValueError(f"the labels after {last} run past 64-bit integers.")
            return pd.RangeIndex(last + step, stop, step)
        if kind == "period":
            _check_keys(info, ("kind", "last", "freq", "step"))
            last, step = info["last"], info["step"]
            if type(last) is not int or type(step) is not int or not 0 < step < 2 ** 31 \
                    or abs(last) >= _INT64 or abs(last + step * steps) >= _INT64:
                raise ValueError(f"a period index continuing {last!r} by {step!r}.")
            freq = info["freq"]
            if not isinstance(freq, str) or not 0 < len(freq) <= 100:
                raise ValueError(f"the index frequency {freq!r} is not a frequency name.")
            try:
                freq = pd.Period(ordinal=0, freq=freq).freq
            except (ValueError, TypeError) as exc:
                raise ValueError(f"the period frequency {info['freq']!r} does not parse "
                                 f"({exc}).") from None
            ordinals = last + step * np.arange(1, steps + 1, dtype=np.int64)
            if hasattr(pd.PeriodIndex, "from_ordinals"):            # pandas >= 2.2
                return pd.PeriodIndex.from_ordinals(ordinals, freq=freq)
            return pd.PeriodIndex(ordinal=ordinals, freq=freq)     # pragma: no cover
        if kind in ("datetime", "timedelta"):
            if kind == "datetime":
                _check_keys(info, ("kind", "last", "freq", "tz"), ("tz_kind", "unit"))
            else:
                _check_keys(info, ("kind", "last", "freq"), ("unit",))
            last, unit = info["last"], info.get("unit", None)
            offset = _offset(info["freq"], "index")
            if unit is not None and unit not in _UNITS:
                raise ValueError(f"the index unit {unit!r} is not one of {_UNITS}.")
            if not isinstance(last, str) or not 0 < len(last) <= 100:
                raise ValueError(f"the last label {last!r} is not a time.")
            # pandas < 2 has one unit (ns) and no unit argument
            kw = {} if unit is None or not hasattr(pd.DatetimeIndex, "unit") else \
                {"unit": unit}
            if kind == "timedelta":
                start = pd.Timedelta(last)
                if start is pd.NaT:
                    raise ValueError("the last label is NaT.")
                out = pd.timedelta_range(start=start, periods=steps + 1, freq=offset, **kw)
            else:
                start = pd.Timestamp(last)
                if start is pd.NaT:
                    raise ValueError("the last label is NaT.")
                tz, tz_kind = info["tz"], info.get("tz_kind")
                if (tz is None) != (start.tz is None) or (tz is None and tz_kind is not None):
                    raise ValueError(f"the last label {last!r} and the time zone {tz!r} do "
                                     "not agree.")
                if tz is not None:
                    if tz_kind is None:         # a file written before tz_kind existed
                        zone = datetime.timezone.utc if tz == "UTC" else None
                        if zone is None and isinstance(tz, str) and _TZ_NAME.match(tz):
                            try:
                                zone = zoneinfo.ZoneInfo(tz)
                            except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
                                zone = None
                        if zone is None and not isinstance(tz, str):
                            raise ValueError(f"the time zone {tz!r} is not a name.")
                        # else: the last label's UTC offset, as such files forecast
                    else:
                        zone = _tz_object(tz_kind, tz)
                    if zone is not None:
                        start = start.tz_convert(zone)
                out = pd.date_range(start=start, periods=steps + 1, freq=offset, **kw)
            if len(out) != steps + 1 or out[0] != start or \
                    not (out.is_unique and out.is_monotonic_increasing):
                raise ValueError(f"the frequency {info['freq']!r} does not step forward "
                                 f"from {last!r}.")
            return out[1:]
    except ValueError:
        raise
    except (TypeError, OverflowError, ArithmeticError, KeyError, AttributeError) as exc:
        raise ValueError(f"the forecast's index cannot continue the history's for {steps} "
                         f"step(s) ({type(exc).__name__}: {exc}).") from None
    raise ValueError(f"unknown kind of index {kind!r}.")


def _as_float_array(y, name):
    """y (array-like or pandas) as float64, refusing what would convert
    silently into other numbers (strings, complex values, times)."""
    pd = _pandas()
    if pd is not None and isinstance(y, (pd.Series, pd.DataFrame)):
        dtypes = [y.dtype] if isinstance(y, pd.Series) else list(y.dtypes)
        if all(pd.api.types.is_numeric_dtype(t) and not pd.api.types.is_complex_dtype(t)
               for t in dtypes):
            try:                            # nullable dtypes: <NA> becomes NaN
                return y.to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError):
                pass
        y = y.to_numpy()
    raw = y if isinstance(y, np.ndarray) else None
    if raw is None:
        try:
            raw = np.asarray(y)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name} must hold numbers: {exc}") from exc
    kind = raw.dtype.kind
    bad = {"U": "strings", "S": "bytes", "c": "complex numbers", "M": "datetimes",
           "m": "timedeltas", "V": "structured values"}.get(kind)
    if kind == "O" and raw.size:
        for v in raw.ravel():
            if isinstance(v, (str, bytes)):
                bad = "strings"
            elif isinstance(v, (complex, np.complexfloating)):
                bad = "complex numbers"
            if bad:
                break
    if bad:
        raise ValueError(f"{name} must hold real numbers; it holds {bad} (dtype "
                         f"{raw.dtype}). Convert them first.")
    try:
        return np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must hold numbers: {exc}") from exc


def _one_series(y, name, with_meta=True):
    """-> (float64 (T, k), pandas description or None, was 1-D)."""
    pd = _pandas()
    meta = None
    if pd is not None and isinstance(y, (pd.Series, pd.DataFrame)):
        if len(y) == 0:
            raise ValueError(f"{name} is empty (no observations).")
        meta = {"type": type(y).__name__,
                "index": _index_info(y.index, len(y), name) if with_meta else None}
        if isinstance(y, pd.Series):
            meta["name"] = _json_name(y.name)
        else:
            meta["columns"] = [_json_name(c) for c in y.columns]
    arr = _as_float_array(y, name)
    flat = arr.ndim == 1
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a series of shape (n_timesteps,) or (n_timesteps, "
                         f"n_columns), or a list of them; got shape {np.shape(arr)}.")
    if len(arr) == 0:
        raise ValueError(f"{name} is empty (no observations).")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has no columns (shape {arr.shape}).")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity; fill or drop the missing values "
                         "first.")
    return arr, meta, flat


def _series_list(y, name, with_meta=True):
    """One series or a list of series -> (list of (T_i, k) arrays, metas, flats, is_list)."""
    is_list = isinstance(y, (list, tuple))
    items = list(y) if is_list else [y]
    if is_list and not items:
        raise ValueError(f"{name} is an empty list.")
    if is_list and all(np.isscalar(v) for v in items):     # a plain list of numbers
        items, is_list = [np.asarray(y)], False
    out = [_one_series(v, f"{name}[{i}]" if is_list else name, with_meta)
           for i, v in enumerate(items)]
    arrays, metas, flats = (list(t) for t in zip(*out))
    k = {a.shape[1] for a in arrays}
    if len(k) != 1:
        raise ValueError(f"the series in {name} have different numbers of columns: {sorted(k)}.")
    return arrays, metas, flats, is_list


# ---------------------------------------------------------------------------
# differencing and scaling


def difference(y, d, season):
    """The series after a seasonal difference (lag ``season``, if any) and
    ``d`` regular differences, along the time axis (-2)."""
    if season:
        y = y[..., season:, :] - y[..., :-season, :]
    for _ in range(d):
        y = np.diff(y, axis=-2)
    return y


def undifference(z, history, d, season):
    """Forecasts of the original series from forecasts ``z`` (..., steps, k)
    of the differenced one, continuing ``history`` (..., T, k) (leading
    dimensions broadcast: one history per series, or one for many paths)."""
    u = history[..., season:, :] - history[..., :-season, :] if season else history
    lasts = []
    for _ in range(d):
        lasts.append(u[..., -1:, :])
        u = np.diff(u, axis=-2)
    out = z
    for last in reversed(lasts):
        out = last + np.cumsum(out, axis=-2)
    if season:
        steps = out.shape[-2]
        lead = np.broadcast_shapes(out.shape[:-2], history.shape[:-2])
        ext = np.empty(lead + (season + steps, out.shape[-1]))
        ext[..., :season, :] = history[..., -season:, :]
        for j in range(steps):
            ext[..., season + j, :] = out[..., j, :] + ext[..., j, :]
        out = ext[..., season:, :]
    return out


def location_scale(z):
    """Mean and standard deviation per column, computed relative to each
    column's largest magnitude (no overflow near 1e308, no underflow near
    1e-300).  A column constant to 12 digits gets 1e-12 times its magnitude
    (continuous at that threshold): its transformed values are all 0, and the
    network's small errors map to a deviation of 1e-12 of its level, so a
    constant (or, differenced, a linear) series is forecast exactly."""
    a = np.abs(z).max(axis=0)
    a = np.where((a > 0) & np.isfinite(a), a, 1.0)
    u = z / a
    sd = u.std(axis=0)
    return u.mean(axis=0) * a, np.maximum(sd, 1e-12) * a


def auto_difference(ys, season, max_d=2):
    """Regular differences that make the series level-stationary by the KPSS
    test at 5% (after the seasonal difference, if any), per column, the
    median over series and columns, rounded up; at most max_d."""
    choices = []
    for y in ys:
        u = y[season:] - y[:-season] if season else y
        for col in u.T:
            d = 0
            while d < max_d and len(col) > 10 and kpss_statistic(col) > _KPSS_5PCT:
                col = np.diff(col)
                d += 1
            choices.append(d)
    return int(np.ceil(np.median(choices)))


def _check_finite(zs, xs):
    if not all(np.all(np.isfinite(v)) for v in list(zs) + list(xs)):
        raise ValueError("y or X has values too large to difference and scale in float64 "
                         "(they overflow); rescale them first.")


# ---------------------------------------------------------------------------


def _network_params():
    """RNNRegressor's parameters that the forecaster passes through: those
    both declare (bidirectional, return_sequences and warm_start are fixed
    by forecasting itself; a series has no frames for conv)."""
    return [p for p in RNNForecaster._parameter_constraints
            if p in RNNRegressor._parameter_constraints]


@document_parameters
class RNNForecaster(ModelFileMixin, BaseEstimator):
    """Recursive multi-step forecasting with a recurrent network.

    One global model is trained on one or many series (each scaled on its
    own): every step of every window of ``window_length`` steps is a
    next-step target.  ``predict(steps)`` warms the network up once over
    the last window of each series and then feeds each prediction back, one
    step kernel call per step for all series together.

    Parameters
    ----------
    window_length : int or "auto", default="auto"
        Steps of history in each training window, and the warm-up length of
        a forecast.  "auto": the season length, at least 12, and at most
        half of the shortest training history (after the validation
        tail and the differences), so that short series still fit.
    scale : {"standard", None}, default="standard"
        Standardise each (differenced) series by its mean and standard
        deviation (per column); undone on output.  Covariates are
        standardised over all series.
    difference : int or "auto", default="auto"
        Regular differences taken before training (1 for a trend, 2 for a
        changing trend; at most 10, each one doubles the noise's range);
        undone on output.  "auto": 0 or 1, chosen with the rest of the
        configuration on the validation tail (see Notes); without a tail,
        as many (at most 2) as make the series level-stationary by the KPSS
        test at 5%.
    seasonal_period : int, "auto" or None, default="auto"
        An int: take one seasonal difference at this lag first (12 for
        monthly data with a yearly pattern); it is also the season length of
        the baselines and of the validation score.  "auto": the season
        length is read from the index's frequency (monthly 12, quarterly 4,
        weekly 52, daily 7, business-daily 5, hourly 24), else from the
        autocorrelation of the first differences; whether to take the
        seasonal difference is chosen on the validation tail.  None: no
        season.
    calibration_size : float or int, default=0.2
        Tail of each series held out at fit time (a fraction of its length,
        or a number of steps).  Every candidate configuration is trained on
        the rest and forecasts the tail from each of its origins: the scores
        choose the configuration, and the chosen one's out-of-sample errors
        at every horizon calibrate ``predict_interval(method="conformal")``.
        The final model is then trained on the whole series.  None or 0: no
        validation (the "auto" parameters follow fixed rules, the network is
        used, and only method="simulate" intervals exist, from in-sample
        residuals).  Measuring the errors forecasts from every origin of the
        tail to its end: a fit whose validation forecasts would hold more
        than 2**28 values (the forecast bound, see ``predict``) is refused;
        use an int number of steps for long series.
    baselines : bool, default=True
        Let statistical forecasters compete with the network on the
        validation tail: exponential smoothing chosen per series by AICc
        ("ets": level, damped trend and additive season, on the logarithm
        for a multiplicative model, as AutoETS does; ``crnn._forecasting.ets``), and the
        naive (random walk), seasonal naive and drift forecasts
        (``crnn._forecasting.baselines``).  The one that wins (see Notes) makes the
        forecasts (``config_["model"]``), for the training series and for
        any history given to ``predict`` (the exponential smoothing models
        are then chosen again on that history).  False: the network
        always.
    early_stopping : bool, default=False
        The network's early stopping: after each epoch, score the training
        windows held out (``validation_fraction`` of them), stop when the
        score has not improved by ``tol`` for ``n_iter_no_change`` epochs,
        and keep the best epoch's weights.  (The choice among candidates
        uses the ``calibration_size`` tail, whatever this is.)
    validation_fraction : float in (0, 1), default=0.1
        Share of the training windows the network holds out with
        ``early_stopping``.
    n_estimators : int, default=1
        Networks trained on the chosen configuration, each from its own seed
        (the first from ``random_state``, the others from seeds drawn from
        it), whose forecasts are combined by their median, as N-BEATS
        combines its members; simulated paths are shared out among them.
        The configuration is chosen, and the conformal intervals calibrated,
        with the first network alone, so a fit costs n_estimators - 1 more
        trainings on the whole series.  On benches/forecasting.py --defaults
        five networks did not improve the default's accuracy (see
        docs/performance.md), so the default is one.
    verbose : int, default=0
        1: one line per epoch of each network's training (loss, validation
        loss and score, seconds), candidates included.  (The forecaster
        takes no scikit-learn callbacks: it has no ``set_callbacks``.)

    Notes
    -----
    Automatic configuration (the default): the candidates are the network
    with no difference, one regular difference, one seasonal difference and
    both (the ones the "auto" parameters leave open; an int or None fixes
    its part), and the statistical forecasters.  Each is fitted on every
    series but its ``calibration_size`` tail and forecasts the tail from
    every origin in it; its score is the mean absolute error over the first
    max(season, 6) horizons, divided by each series' in-sample
    seasonal-naive error (MASE), averaged over the series.  The exponential
    smoothing is the incumbent: another candidate wins only with a score
    below 0.8 times its score (``_baselines.INCUMBENT_EDGE``), and the
    lowest such score wins (the incumbent wins a tie).  The margin guards
    against the winner's curse: the best of up to eight scores on one short
    tail is partly luck, while the smoothing models are chosen on the whole
    history by their own criterion (on benches/forecasting.py's series,
    choosing by the bare score was worse; see docs/performance.md).  The choice is made once for all
    series of the fit (the smoothing's models and parameters are each
    series' own); ``config_`` records it and every candidate's bare score.
    The network of the best network configuration is always trained
    (``model_``), also when another candidate wins.

    The rows of a series are consecutive time steps.  A pandas series keeps
    its index: the forecast continues it (a DatetimeIndex with its
    frequency and time zone, DST changes included; a PeriodIndex, a
    TimedeltaIndex, an evenly spaced integer index).  Such an index must be
    strictly increasing (no duplicate, unsorted or missing labels) and
    evenly spaced (whole numbers stored as floats count as integers); other
    indexes (strings, categories) are replaced by a RangeIndex counting on
    from the series' length.  X and y are positional: X's index is not
    read, and DataFrames' columns are read by position, so a DataFrame X
    (or y at predict) must have the columns of fit in the same order, and
    the DataFrames of a list the same columns (checked by name).

    Attributes
    ----------
    model_ : RNNRegressor
        The fitted network (inputs: the k transformed series values and m
        covariates; outputs: the k next values).
    difference_ : int
        Regular differences used (``difference``, or the one "auto" chose).
    n_series_ : int
        Number of series fitted.
    n_columns_ : int
        Columns k of each series.
    n_covariates_ : int
        Covariate columns m (0 without X).
    covariate_names_ : list or None
        The column names of X at fit when it was a DataFrame (else None);
        a DataFrame X given to predict must have these columns in this
        order (they are used by position).
    loss_curve_ : list of float
        The network's training loss per epoch.
    calibration_errors_ : list of ndarray
        Absolute out-of-sample errors per horizon (in units of each series'
        scale), entry h - 1 for horizon h; empty without calibration.
    config_ : dict
        What the fit chose: ``model`` ("rnn" or a baseline's name),
        ``window_length``, ``difference``, ``seasonal_difference`` (its lag,
        0 for none) of the network, ``seasonal_period`` (the season length,
        1 for none), ``selected`` (whether a validation tail decided), and
        ``candidates``: one dict per candidate with its ``score`` (None when
        it could not be validated on these series).
    estimators_ : list of RNNRegressor
        The ensemble's networks, ``model_`` first (``n_estimators`` of them
        when the network forecasts, else ``model_`` alone).

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> from crnn import RNNForecaster
    >>> rng = np.random.default_rng(0)
    >>> months = pd.date_range("2015-01-01", periods=96, freq="MS")
    >>> y = pd.Series(10 + np.sin(np.arange(96) * np.pi / 6) + rng.normal(scale=0.2, size=96),
    ...               index=months)
    >>> fc = RNNForecaster(hidden_size=8, max_iter=5, random_state=0).fit(y)
    >>> fc.config_["seasonal_period"]          # read from the monthly index
    12
    >>> forecast = fc.predict(3)
    >>> list(forecast.index.strftime("%Y-%m"))
    ['2023-01', '2023-02', '2023-03']
    >>> lower, upper = fc.predict_interval(3, coverage=0.8)
    >>> bool(((lower < forecast) & (forecast < upper)).all())
    True
    """

    _parameter_constraints = without(RNNRegressor._parameter_constraints, "bidirectional",
                                     "return_sequences", "warm_start", "conv") | {
        "window_length": [Interval("int", 1, INT_MAX), Options({"auto"})],
        "scale": [Options({"standard"}), None],
        "difference": [Interval("int", 0, _MAX_DIFFERENCE), Options({"auto"})],
        "seasonal_period": [Interval("int", 1, INT_MAX), Options({"auto"}), None],
        "calibration_size": [Interval("real_not_int", 0, 1, closed="left"),
                             Interval("int", 0, INT_MAX), None],
        "baselines": ["boolean"],
        "n_estimators": [Interval("int", 1, 1000)],
    }

    def __init__(
        self,
        *,
        window_length="auto",
        cell="gru",
        hidden_size=32,
        num_layers=1,
        scale="standard",
        difference="auto",
        seasonal_period="auto",
        calibration_size=0.2,
        baselines=True,
        n_estimators=1,
        nonlinearity="tanh",
        dropout=0.0,
        forget_bias=1.0,
        solver="adam",
        learning_rate="constant",
        learning_rate_init=1e-3,
        power_t=0.5,
        batch_size=32,
        max_iter=200,
        alpha=0.0,
        clip_norm=5.0,
        bptt_truncate=None,
        momentum=0.9,
        nesterovs_momentum=True,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        shuffle=True,
        random_state=None,
        verbose=0,
        n_jobs=None,
        dtype=np.float32,
        compute_dtype=None,
    ):
        store_params(self, locals())

    # ------------------------------------------------------------------
    # parameters

    def _check_params(self):
        """The forecaster's parameters, as declared (the network's rules
        beyond that: _check_network) -> (window_length, difference, seasonal
        lag, baseline kinds), each an int or "auto"; the seasonal lag is 0
        for None."""
        self._validate_params()

        def value(name, default=None):
            v = getattr(self, name)
            return v if isinstance(v, str) else (default if v is None else int(v))

        return (value("window_length"), value("difference"), value("seasonal_period", 0),
                _baselines.CANDIDATES if self.baselines else ())

    def _validate_params(self):
        """Every parameter against _parameter_constraints (crnn's
        declarations: scikit-learn's BaseEstimator._validate_params reads
        only its own constraint classes)."""
        validate_params(self)

    def _network(self):
        return RNNRegressor(return_sequences=True, bidirectional=False,
                            **{name: getattr(self, name) for name in _network_params()})

    def _check_network(self):
        """The network's parameters, with errors that name the forecaster."""
        try:
            self._network()._validate_hyperparams()
        except ValueError as exc:
            msg = str(exc).replace("parameter of RNNRegressor", "parameter of RNNForecaster")
            raise ValueError(msg) from None

    # ------------------------------------------------------------------
    # data -> transformed series and windows

    def _covariates(self, X, lengths, name, extra=0, m=None, record=False):
        """X aligned with series of these lengths (+ extra future rows), with
        m covariate columns where m is given (the fitted model's), and the
        column names of fit where X has names (DataFrames).  record: keep
        X's column names as covariate_names_ (fit)."""
        if X is None:
            if record:
                self._names_seen = None
            return [np.zeros((n + extra, 0)) for n in lengths]
        xs, metas, _, _ = _series_list(X, name, with_meta=False)
        cols = _frame_columns(metas, name, "covariate")
        if m is not None and xs[0].shape[1] != m:
            given = f" ({', '.join(map(repr, cols))})" if cols else ""
            raise ValueError(f"{name} has {xs[0].shape[1]} covariate column(s){given}; the "
                             f"model was fitted with {m} covariate(s). Pass X with the same "
                             "columns, in the same order, as at fit.")
        if record:
            self._names_seen = cols
        elif m is not None and cols is not None \
                and getattr(self, "covariate_names_", None) is not None \
                and not _same_names(cols, self.covariate_names_):
            # the columns are used by position: other names (or the same in
            # another order) would be a silently wrong forecast
            raise ValueError(f"{name} has the covariate columns {cols}; the model was fitted "
                             f"with {list(self.covariate_names_)}, in that order. Pass X with "
                             "the same columns, in the same order, as at fit.")
        if len(xs) != len(lengths):
            raise ValueError(f"{name} holds {len(xs)} series of covariates for "
                             f"{len(lengths)} series.")
        for i, (x, n) in enumerate(zip(xs, lengths)):
            if len(x) != n + extra:
                what = f"{n} history rows + {extra} forecast rows" if extra and n else \
                    f"{n + extra} rows"
                raise ValueError(f"{name}{f'[{i}]' if len(xs) > 1 else ''} has {len(x)} rows; "
                                 f"expected {what}.")
        return xs

    def _prepare(self, ys, xs, fit_scalers):
        d, s, W = self._d, self._s, self._W
        need = W + 1 + d + s
        for i, y in enumerate(ys):
            if len(y) < need:
                raise ValueError(
                    f"y{f'[{i}]' if len(ys) > 1 else ''} has {len(y)} observations; "
                    f"window_length={W}, difference={d} and seasonal_period={s or None} need "
                    f"at least {need}.")
        zs = [difference(y, d, s) for y in ys]
        if fit_scalers:
            if self.scale == "standard":
                self._mean, self._std = (list(v) for v in zip(*map(location_scale, zs)))
                allx = np.concatenate(xs) if xs[0].shape[1] else np.zeros((1, 0))
                self._x_mean, self._x_std = location_scale(allx)
            else:
                k, m = zs[0].shape[1], xs[0].shape[1]
                self._mean = [np.zeros(k) for _ in zs]
                self._std = [np.ones(k) for _ in zs]
                self._x_mean, self._x_std = np.zeros(m), np.ones(m)
        with np.errstate(over="ignore", invalid="ignore"):
            zs = [(z - mu) / sd for z, mu, sd in zip(zs, self._mean, self._std)]
            xs = [self._scale_x(x)[d + s:] for x in xs]
        _check_finite(zs, xs)
        return zs, xs

    def _scale_x(self, x):
        return (x - self._x_mean) / self._x_std

    def _windows(self, zs, xs):
        W = self._W
        inputs, targets = [], []
        for z, x in zip(zs, xs):
            feats = np.concatenate([z[:-1], x[1:len(z)]], axis=1)      # t = 0..n-2
            swv = np.lib.stride_tricks.sliding_window_view
            inputs.append(swv(feats, W, axis=0).transpose(0, 2, 1))
            targets.append(swv(z[1:], W, axis=0).transpose(0, 2, 1))
        return np.concatenate(inputs), np.concatenate(targets)

    # ------------------------------------------------------------------
    # fit

    def fit(self, y, X=None):
        """Train the forecaster.

        Parameters
        ----------
        y : array of shape (n_timesteps,) or (n_timesteps, k), pandas Series or
            DataFrame, or a list of them (series of different lengths)
            The series; a list trains one global model over all of them.
        X : array of shape (n_timesteps, m), DataFrame, or a list, optional
            Covariates aligned with y, known in advance (calendar, prices):
            predict then needs their values for the forecast period.

        Returns
        -------
        self : RNNForecaster
        """
        # all the work on a copy: a fit that fails leaves a fitted forecaster
        # as it was (never new scalers with the old network)
        work = copy.copy(self)
        for name in self._FITTED_ATTRIBUTES:
            work.__dict__.pop(name, None)
        work._fit(y, X)
        self.__dict__.update({name: work.__dict__[name] for name in self._FITTED_ATTRIBUTES})
        return self

    def _fit(self, y, X):
        W, d, s, kinds = self._check_params()
        self._check_network()
        ys, metas, flats, is_list = _series_list(y, "y")
        _frame_columns(metas, "y", "")        # one set of columns for all series
        xs = self._covariates(X, [len(v) for v in ys], "X", record=True)
        names = self.__dict__.pop("_names_seen", None)
        m = self._season_length(ys, metas, s)
        cuts = [self._cut(len(v)) for v in ys]
        cands = self._network_candidates(ys, cuts, W, d, s, m)
        self._check_fit_size(ys, xs, cuts, cands)
        part = self._validated_series(ys, cuts, cands[0])
        # a baseline forecasts every series of the fit, so each must be long
        # enough for it (not only those with a validation tail)
        kinds = [k for k in kinds if all(len(v) >= _baselines.min_length(k, m) for v in ys)]
        if part and len(cands) + len(kinds) > 1:
            cands = [c for c in cands if all(
                len(ys[i]) - cuts[i] >= c[0] + 1 + c[1] + c[2] for i in part)]
            kinds = [k for k in kinds if all(
                len(ys[i]) - cuts[i] >= max(_baselines.min_length(k, m), 3) for i in part)]
        config = {"model": "rnn", "window_length": 0, "difference": 0,
                  "seasonal_difference": 0, "seasonal_period": m, "selected": bool(part),
                  "candidates": []}
        errors, residuals, best = [], None, None
        if part:
            hsel = max(m, 6)
            results = []                    # (score, entry, errors, residuals, what)
            for kind in kinds:
                e, r, sc = self._validate_baseline(kind, ys, cuts, part, m, hsel)
                results.append((sc, {"model": kind, "score": sc}, e, r, kind))
            for c in cands:
                self._W, self._d, self._s = c
                zs, xsz = self._prepare(ys, xs, fit_scalers=True)
                e, r, sc = self._validate_network(ys, zs, xsz, cuts, part, m, hsel)
                results.append((sc, {"model": "rnn", "window_length": c[0], "difference": c[1],
                                     "seasonal_difference": c[2], "score": sc}, e, r, c))
            config["candidates"] = [r[1] for r in results]
            # the others must beat the incumbent (ets) by a margin
            # (and it wins a tie)
            inc = [r[4] == _baselines.INCUMBENT for r in results]
            edge = [_baselines.INCUMBENT_EDGE if v else 1.0 for v in inc]
            win = min(range(len(results)),
                      key=lambda j: (results[j][0] * edge[j], not inc[j]))
            _, _, errors, residuals, best = results[win]
            nets = [r for r in results if r[1]["model"] == "rnn"]
            net_cfg = min(nets, key=lambda r: r[0])[4]
        else:
            if self.calibration_size:
                warnings.warn("The series are too short to hold out a calibration tail of "
                              f"calibration_size={self.calibration_size} with "
                              f"window_length={cands[0][0]}; conformal intervals are "
                              "unavailable and the configuration is not validated.",
                              UserWarning, stacklevel=3)
            net_cfg = self._rule_candidate(ys, cands, d, s)
            best = net_cfg
        self._W, self._d, self._s = net_cfg
        zs, xsz = self._prepare(ys, xs, fit_scalers=True)
        inputs, targets = self._windows(zs, xsz)
        net = self._network().fit(inputs, targets)
        self._members = []
        if not isinstance(best, str):       # the network forecasts: its other members
            for seed in self._member_seeds(self.n_estimators):
                self._members.append(self._network().set_params(random_state=seed)
                                     .fit(inputs, targets))
        if isinstance(best, str):           # a baseline won
            config["model"] = best
            self._bparams = _baselines.fit_params(best, ys, m)
            self._bstate = _baselines.states(best, self._bparams, ys, m, self._n_threads())
            self._bscale = [_baselines.scale(v) for v in ys]
        else:
            self._bparams, self._bstate, self._bscale = np.zeros(0), [], []
            if residuals is None:           # in-sample one-step residuals
                residuals = (targets - net.predict(inputs)).reshape(-1, targets.shape[-1])
        config.update(window_length=net_cfg[0], difference=net_cfg[1],
                      seasonal_difference=net_cfg[2])
        self.config_ = config
        self.model_ = net
        self.n_series_ = len(ys)
        self.n_columns_ = ys[0].shape[1]
        self.n_covariates_ = xs[0].shape[1]
        self.covariate_names_ = names
        self.loss_curve_ = net.loss_curve_
        self.calibration_errors_ = errors
        self._residuals = np.asarray(residuals, dtype=np.float64)
        tail = sum(net_cfg)
        self._history = [v[-tail:].copy() for v in ys]
        self._history_x = [x[-tail:].copy() for x in xs]
        self._metas, self._flat, self._is_list = metas, flats[0], is_list

    def _member_seeds(self, n):
        """Seeds of the ensemble's members after the first: drawn from
        random_state (None: none)."""
        if n <= 1:
            return []
        rs = self.random_state
        if rs is None:
            return [None] * (n - 1)
        if isinstance(rs, np.random.RandomState):
            return [int(v) for v in rs.randint(2**31 - 1, size=n - 1)]
        state = np.random.SeedSequence(int(rs)).generate_state(n - 1)
        return [int(v) % (2**31 - 1) for v in state]

    @property
    def estimators_(self):
        """The ensemble's networks: ``model_`` and the others (one network
        when a baseline forecasts)."""
        check_is_fitted(self, "model_")
        return [self.model_] + list(getattr(self, "_members", []))

    # ------------------------------------------------------------------
    # the automatic configuration

    @staticmethod
    def _season_length(ys, metas, s):
        """The season length: the seasonal lag given, 1 for None, else read
        from each series' index frequency or autocorrelation (the most
        common value over the series, the shortest on a tie)."""
        if s != "auto":
            return s or 1
        votes = []
        for v, mt in zip(ys, metas):
            info = mt["index"] if isinstance(mt, dict) else None
            got = None
            if isinstance(info, dict) and info.get("kind") in ("datetime", "period"):
                got = _baselines.season_from_freq(info.get("freq"))
            votes.append(got if got is not None else _baselines.season_from_acf(v))
        values, counts = np.unique(votes, return_counts=True)
        return int(values[np.argmax(counts)])

    def _cut(self, n):
        """Steps of a series of n observations held out for validation."""
        c = self.calibration_size
        if not c:
            return 0
        n_cal = int(np.ceil(c * n)) if not isinstance(c, numbers.Integral) else int(c)
        return min(n_cal, n)

    # window_length="auto": this many seasons (at least 12 steps)
    _WINDOW_SEASONS = 1

    def _network_candidates(self, ys, cuts, W, d, s, m):
        """The network configurations (window, differences, seasonal lag) the
        parameters leave open, simplest first, each with its window; those
        the shortest series cannot train on are left out (all of them: the
        first, whose fit then reports the series as too short)."""
        lags = [s] if s != "auto" else ([0, m] if m > 1 else [0])
        ds = [d] if d != "auto" else [0, 1]
        shortest = min(len(v) - c if len(v) - c >= 2 else len(v) for v, c in zip(ys, cuts))
        out = []
        for lag in lags:
            for dd in ds:
                if W == "auto":
                    w = max(1, min(max(int(self._WINDOW_SEASONS * m), 12),
                                   (shortest - dd - lag - 1) // 2))
                else:
                    w = W
                out.append((w, dd, lag))
        fits = [c for c in out if all(len(v) >= sum(c) + 1 for v in ys)]
        return fits or out[:1]

    def _validated_series(self, ys, cuts, cand):
        """The series whose tail the candidates are scored on: those with a
        tail that leave the simplest network a window to train on."""
        return [i for i, (v, c) in enumerate(zip(ys, cuts))
                if c and len(v) - c >= sum(cand) + 1]

    def _rule_candidate(self, ys, cands, d, s):
        """Without a validation tail: the simplest candidate, with the KPSS
        test's regular differences when difference="auto"."""
        w, dd, lag = cands[0]
        if d == "auto":
            dd = auto_difference(ys, lag)
            if self.window_length == "auto":
                shortest = min(len(v) for v in ys)
                w = max(1, min(w, (shortest - dd - lag - 1) // 2))
            if not all(len(v) >= w + dd + lag + 1 for v in ys):
                dd = cands[0][1]
        return (w, dd, lag)

    @staticmethod
    def _mase_scale(head, m):
        """Each column's in-sample seasonal-naive MAE (naive when the head
        is not longer than a season), 1 where it is 0."""
        lag = m if len(head) > m else 1
        if len(head) <= lag:
            return np.ones(head.shape[1])
        sc = _baselines.mean_abs_change(head, lag)
        return np.where(sc > 0, sc, 1.0)

    @staticmethod
    def _reduce(preds, ys, cuts, part, units, m, hsel):
        """Validation forecasts -> (absolute errors by horizon in units of
        each series' unit, one-step residuals in those units, the score: the
        MASE over the first hsel horizons averaged over series).  preds[j]
        is (cut, cut, k): row r the forecast from origin n - cut + r (NaN
        past the end)."""
        steps = max(cuts[i] for i in part)
        by_h = [[] for _ in range(steps)]
        one_step, scores = [], []
        for j, i in enumerate(part):
            y, c = ys[i], cuts[i]
            n = len(y)
            msc = RNNForecaster._mase_scale(y[:n - c], m)
            # truth[r, h] = y[n - c + r + h] where that exists (r + h < c)
            r_, h_ = np.meshgrid(np.arange(c), np.arange(c), indexing="ij")
            valid = r_ + h_ < c
            truth = y[np.minimum(n - c + r_ + h_, n - 1)]
            with np.errstate(over="ignore", invalid="ignore"):
                err = np.abs(truth - preds[j])                  # (origin, horizon, k)
                e = (err / units[j]).mean(axis=2)
                for h in range(c):
                    by_h[h].append(e[:c - h, h])
                one_step.append((y[n - c:] - preds[j][:, 0]) / units[j])
                sel = valid & (h_ < hsel)
                scores.append(float((err / msc).mean(axis=2)[sel].mean()))
        by_h = [np.concatenate(v) for v in by_h]
        one_step = np.concatenate(one_step)
        with np.errstate(over="ignore", invalid="ignore"):
            score = float(np.mean(scores))
        if not np.isfinite(score):
            score = float("inf")
        return by_h, one_step, score

    def _validate_baseline(self, kind, ys, cuts, part, m, hsel):
        """A baseline's validation: parameters (or models) from the heads,
        forecasts from every origin of each tail."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            preds = _baselines.rolling_tails(kind, [ys[i] for i in part],
                                             [cuts[i] for i in part], m, self._n_threads())
        units = [_baselines.scale(ys[i]) for i in part]
        return self._reduce(preds, ys, cuts, part, units, m, hsel)

    def _n_threads(self):
        """Threads for the baselines' kernels: n_jobs, as the network's."""
        return _threads.effective_n_threads(self.n_jobs)

    def _validate_network(self, ys, zs, xsz, cuts, part, m, hsel):
        """The network's validation (the current _W, _d, _s): trained on all
        but each tail, it forecasts every tail from each of its origins."""
        W, d, s = self._W, self._d, self._s
        heads = [(zs[i][:len(zs[i]) - cuts[i]], xsz[i][:len(zs[i]) - cuts[i] + 1])
                 for i in part]
        inputs, targets = self._windows([h[0] for h in heads], [h[1] for h in heads])
        net = self._network().fit(inputs, targets)
        # one stream per origin o (history z[:o]), forecast to the series' end
        meta = [(i, o) for i in part for o in range(len(zs[i]) - cuts[i], len(zs[i]))]
        steps = max(cuts[i] for i in part)
        mm = xsz[0].shape[1]
        z_hist = np.stack([zs[i][o - W:o] for i, o in meta])
        x_hist = np.stack([xsz[i][o - W + 1:o + 1] for i, o in meta])
        x_future = np.zeros((len(meta), steps, mm))
        for j, (i, o) in enumerate(meta):
            x = xsz[i][o + 1:o + steps]
            x_future[j, :len(x)] = x
        zf = self._run(net, z_hist, x_hist, x_future, steps)
        preds, j = [], 0
        k = ys[0].shape[1]
        for i in part:
            c = cuts[i]
            f = np.full((c, c, k), np.nan)
            for r in range(c):
                o = len(zs[i]) - c + r
                n_true = c - r
                history = ys[i][:o + d + s]
                with np.errstate(over="ignore", invalid="ignore"):
                    f[r, :n_true] = undifference(zf[j, :n_true] * self._std[i] + self._mean[i],
                                                 history, d, s)
                j += 1
            preds.append(f)
        return self._reduce(preds, ys, cuts, part, [self._std[i] for i in part], m, hsel)

    def _check_fit_size(self, ys, xs, cuts, cands):
        """Refuse, before any work, a fit whose training windows cannot fit
        in this machine's memory or whose validation forecasts exceed the
        forecast bound (_MAX_VALUES)."""
        k, m = ys[0].shape[1], xs[0].shape[1]
        for W, d, s in cands:
            n_z = [len(v) - d - s for v in ys]
            n_windows = sum(max(n - W, 0) for n in n_z)
            # float64 windows (inputs and targets) and the network's copy of them
            need = n_windows * W * (2 * k + m) * (8 + np.dtype(self.dtype).itemsize)
            have = _threads.physical_memory()
            if have is not None and need > have:
                raise ValueError(
                    f"window_length={W} cuts the series into {n_windows:,} training windows "
                    f"of {W} steps: {need / 2**30:,.1f} GiB, more than this machine's "
                    f"{have / 2**30:,.1f} GiB of memory. Use a shorter window_length or "
                    "shorter series.")
        if not any(cuts):
            return
        values = sum(cuts) * max(cuts) * (k + m)
        if values > _MAX_VALUES:
            raise ValueError(
                f"calibration_size={self.calibration_size!r} holds out up to {max(cuts):,} "
                f"steps of each series, and measuring the errors at every horizon from "
                f"every origin in them takes {values:,} forecast values, more than the "
                f"{_MAX_VALUES:,} a forecast may hold. Use a smaller calibration_size, e.g. "
                "an int number of steps as long as the horizons you will forecast.")

    @property
    def difference_(self):
        """The regular differences used (an int, also when difference="auto")."""
        check_is_fitted(self, "model_")
        return self._d

    # ------------------------------------------------------------------
    # the recursion

    @staticmethod
    def _run(net, z_hist, x_hist, x_future, steps, noise=None):
        """Forecasts in the model's space: (n_streams, steps, k).

        z_hist: (n_streams, window, k) transformed histories; x_hist:
        (n_streams, window, m) the scaled covariates each history step reads
        (of the step after it); x_future: (n_streams, >= steps - 1, m), row t
        holding the covariates read after forecast t; noise: (n_streams,
        steps, k) added to each forecast before it is fed back."""
        n, window, k = z_hist.shape
        dtype = net._theta.dtype
        warm = np.concatenate([z_hist, x_hist], axis=2).astype(dtype)
        out, state = net.predict(warm, return_state=True)
        out = out.reshape(n, window, k)
        zf = np.empty((n, steps, k), dtype=np.float64)
        zf[:, 0] = out[:, -1]
        if noise is not None:
            zf[:, 0] += noise[:, 0]
        if steps > 1:
            stepper = net.stepper(n_streams=n)
            x = np.empty((n, k + x_future.shape[2]), dtype=dtype)
            for t in range(1, steps):
                x[:, :k] = zf[:, t - 1]
                x[:, k:] = x_future[:, t - 1]
                _, raw, state = stepper._run(x, state)
                zf[:, t] = raw
                if noise is not None:
                    zf[:, t] += noise[:, t]
        return zf

    def _stack(self, ys, xs, scalers, steps):
        """The last window of every history, transformed, stacked: (z
        (S, W, k), covariates read by those steps (S, W, m), covariates of
        the forecast steps (S, steps - 1, m), histories (S, W + d + s, k),
        means (S, 1, k), scales (S, 1, k))."""
        d, s, W = self._d, self._s, self._W
        tail = W + d + s
        H = np.stack([v[-tail:] for v in ys])
        mu = np.stack([m for m, _ in scalers])[:, None]
        sd = np.stack([v for _, v in scalers])[:, None]
        with np.errstate(over="ignore", invalid="ignore"):
            z = (difference(H, d, s) - mu) / sd
        _check_finite([z], [])
        if not self.n_covariates_:
            none = np.zeros((len(ys), W + steps, 0))
            return z, none[:, :W], none[:, :steps - 1], H, mu, sd
        # covariate rows of the last `tail` history steps and the forecast steps
        Xs = np.stack([x[len(v) - tail:len(v) + steps] for v, x in zip(ys, xs)])
        with np.errstate(over="ignore", invalid="ignore"):
            xz = self._scale_x(Xs)[:, d + s:]      # row j: the time of z row j
        top = np.finfo(self.model_._theta.dtype).max
        if not np.all(np.abs(xz) < top):        # also NaN
            raise ValueError(
                "X holds values so far outside the covariates seen at fit that, scaled as "
                f"at fit, they exceed the network's {self.model_._theta.dtype} range; check "
                "X's units and columns.")
        return z, xz[:, 1:W + 1], xz[:, W + 1:W + steps], H, mu, sd

    def _check_steps(self, steps):
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps <= 0:
            raise ValueError(f"steps must be a positive integer; got {steps!r}.")
        if steps > _MAX_STEPS:
            raise ValueError(f"steps={steps} is longer than the longest horizon a forecast "
                             f"runs, {_MAX_STEPS:,} steps (each step is one network step, "
                             "and the forecast feeds back on itself).")
        return int(steps)

    @staticmethod
    def _check_request(n_series, steps, k, n_paths):
        """Refuse a forecast larger than _MAX_VALUES values."""
        paths = max(n_paths, 1)
        values = n_series * paths * steps * k
        if values > _MAX_VALUES:
            shape = f"{n_series} series x {paths:,} paths" if n_paths else \
                f"{n_series} series"
            raise ValueError(
                f"this forecast would hold {values:,} values ({shape} x {steps:,} steps x "
                f"{k} column(s), {values * 8 / 2**30:,.1f} GiB in float64), more than the "
                f"{_MAX_VALUES:,} (2 GiB) a forecast may hold; ask for fewer steps or paths, "
                "or forecast fewer series at a time.")

    def _histories(self, y, X, steps, n_paths=0):
        """(original histories, transformed z, scaled covariates incl. the
        forecast period, metas, flat, is_list) for predict."""
        check_is_fitted(self, "model_")
        steps = self._check_steps(steps)
        m = self.n_covariates_
        if y is None:
            self._check_request(self.n_series_, steps, self.n_columns_, n_paths)
        if not m and X is not None:
            raise ValueError("The model was fitted without covariates (X=None); X cannot be "
                             "used to forecast. Fit with X to use covariates.")
        if y is None:
            ys, metas, flat, is_list = self._history, self._metas, self._flat, self._is_list
            if m and X is None:
                raise ValueError(f"The model was fitted with {m} covariate(s): pass X with "
                                 f"their values for the {steps} forecast steps.")
            if m:
                xf = self._covariates(X, [0] * len(ys), "X", extra=steps, m=m)
                xs = [np.concatenate([hx, f]) for hx, f in zip(self._history_x, xf)]
            else:
                xs = None
        else:
            ys, metas, flats, is_list = _series_list(y, "y")
            flat = flats[0]
            if ys[0].shape[1] != self.n_columns_:
                raise ValueError(f"y has {ys[0].shape[1]} column(s); the model was fitted on "
                                 f"{self.n_columns_}.")
            # columns are read by position: a DataFrame y with other names
            # (or these in another order) would be forecast under wrong labels
            given = _frame_columns(metas, "y", "")
            fitted = _frame_columns(self._metas, "y", "")
            if given is not None and fitted is not None and not _same_names(given, fitted):
                raise ValueError(f"y has the columns {given}; the model was fitted on "
                                 f"{fitted}, in that order. Pass y with the same columns, in "
                                 "the same order, as at fit.")
            self._check_request(len(ys), steps, self.n_columns_, n_paths)
            if m and X is None:
                raise ValueError(f"The model was fitted with {m} covariate(s): pass X with "
                                 "their values for the history and the forecast steps.")
            xs = self._covariates(X, [len(v) for v in ys], "X", extra=steps, m=m) \
                if m else None
            kind = self._kind()
            if kind == "rnn":
                need = self._W + self._d + self._s
                why = "window_length + difference + seasonal_period"
            else:
                need = _baselines.min_length(kind, self.config_["seasonal_period"])
                why = f"the {kind} forecast chosen at fit"
            for i, v in enumerate(ys):
                if len(v) < need:
                    raise ValueError(
                        f"y{f'[{i}]' if len(ys) > 1 else ''} has {len(v)} observations; a "
                        f"forecast needs at least {need} ({why}).")
        for mt in metas:                    # labels pandas cannot make: refused now
            if mt is not None:
                try:
                    _future_index(mt["index"], steps)
                except ValueError as exc:
                    raise ValueError(f"the forecast's labels cannot continue the series' "
                                     f"index for {steps} step(s): {exc}") from None
        return ys, xs, metas, flat, is_list, steps

    def _scalers_for(self, ys, given):
        """Per-series (mean, std): the fitted ones for the training series,
        else measured on each given history."""
        if not given:
            return list(zip(self._mean, self._std))
        out = []
        for y in ys:
            with np.errstate(over="ignore", invalid="ignore"):
                z = difference(y, self._d, self._s)
            if self.scale == "standard":
                out.append(location_scale(z))
            else:
                out.append((np.zeros(z.shape[1]), np.ones(z.shape[1])))
        return out

    def _simulate(self, z, x_hist, x_future, H, mu, sd, steps, P, rng):
        """P sample paths per series, (S, P, steps, k): the streams (series
        major) run in chunks, so that memory beyond the paths themselves is
        bounded; the draws are those of one call for all streams."""
        S, W, k = z.shape
        m = x_hist.shape[2]
        nets = self.estimators_
        out = np.empty((S * P, steps, k))
        per_stream = steps * (3 * k + m + 1) + (W + H.shape[1]) * (k + m)
        rows = max(1, _CHUNK_VALUES // per_stream)
        for a in range(0, S * P, rows):
            b = min(a + rows, S * P)
            series = np.arange(a, b) // P
            idx = rng.integers(0, len(self._residuals), size=(b - a, steps))
            noise = self._residuals[idx]
            # path p of each series runs on member p % n_members
            member = (np.arange(a, b) % P) % len(nets)
            for j, net in enumerate(nets):
                rows_j = np.flatnonzero(member == j)
                if not len(rows_j):
                    continue
                sj = series[rows_j]
                zf = self._run(net, z[sj], x_hist[sj], x_future[sj], steps,
                               noise=noise[rows_j])
                with np.errstate(over="ignore", invalid="ignore"):
                    out[a + rows_j] = undifference(zf * sd[sj] + mu[sj], H[sj], self._d,
                                                   self._s)
        return out.reshape(S, P, steps, k)

    def _kind(self):
        """The model that forecasts: "rnn" or a baseline's name."""
        config = getattr(self, "config_", None)
        return config["model"] if config else "rnn"

    def _forecast(self, y, X, steps, n_paths=0, rng=None):
        ys, xs, metas, flat, is_list, steps = self._histories(y, X, steps, n_paths)
        kind = self._kind()
        if kind != "rnn":
            out, scalers = self._forecast_baseline(kind, ys, y is not None, steps, n_paths,
                                                   rng)
        else:
            scalers = self._scalers_for(ys, y is not None)
            z, x_hist, x_future, H, mu, sd = self._stack(ys, xs, scalers, steps)
            if n_paths:
                out = self._simulate(z, x_hist, x_future, H, mu, sd, steps, n_paths, rng)
            else:
                outs = []
                for net in self.estimators_:
                    zf = self._run(net, z, x_hist, x_future, steps)
                    with np.errstate(over="ignore", invalid="ignore"):
                        outs.append(undifference(zf * sd + mu, H, self._d, self._s))
                out = outs[0] if len(outs) == 1 else np.median(np.stack(outs), axis=0)
        if not all(np.all(np.isfinite(f)) for f in out):
            raise ValueError("The forecast overflows float64: the series' values or their "
                             "differences are too close to the largest float.")
        return list(out), ys, metas, flat, is_list, scalers, steps

    def _forecast_baseline(self, kind, ys, given, steps, n_paths, rng):
        """The chosen baseline's forecasts (or n_paths sample paths, the
        one-step validation residuals resampled as innovations) of every
        history, and each one's (0, unit) for the conformal intervals."""
        m = self.config_["seasonal_period"]
        if given:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                states = _baselines.states(kind, self._bparams, ys, m, self._n_threads())
            units = [_baselines.scale(v) for v in ys]
        else:
            states, units = self._bstate, self._bscale
        out = []
        with np.errstate(over="ignore", invalid="ignore"):
            for st, u in zip(states, units):
                if n_paths:
                    idx = rng.integers(0, len(self._residuals), size=(n_paths, steps))
                    out.append(_baselines.simulate(kind, self._bparams, st, steps, m,
                                                   self._residuals[idx] * u))
                else:
                    out.append(_baselines.forecast(kind, self._bparams, st, steps, m))
        return out, [(np.zeros_like(u), u) for u in units]

    # ------------------------------------------------------------------
    # output shaping

    def _shape(self, f, meta, flat, steps, suffix=None):
        if meta is not None and _pandas() is not None:
            pd = _pandas()
            index = _future_index(meta["index"], steps)
            if meta["type"] == "Series":
                name = meta.get("name")
                if suffix:
                    name = suffix if name is None else f"{name}_{suffix}"
                return pd.Series(f[:, 0], index=index, name=name)
            cols = meta["columns"]
            if suffix:
                cols = [f"{c}_{suffix}" for c in cols]
            return pd.DataFrame(f, index=index, columns=cols)
        return f[:, 0] if flat else f

    def _output(self, forecasts, metas, flat, is_list, steps, suffix=None):
        out = [self._shape(f, m, flat, steps, suffix) for f, m in zip(forecasts, metas)]
        return out if is_list else out[0]

    # ------------------------------------------------------------------
    # public forecasting

    def predict(self, steps, X=None, y=None):
        """Forecast ``steps`` ahead.

        Parameters
        ----------
        steps : int
            Forecast horizon, 1 to 1,000,000 (each step is one network step
            for all series together).  A request whose forecast would hold
            more than 2**28 values (n_series x steps x k, times n_paths for
            simulated intervals: 2 GiB in float64) is refused before any
            work.
        X : array of shape (steps, m), or (len(y) + steps, m) with y, or a list
            Covariates: for the forecast period when forecasting the
            training series; for the history and the forecast period when y
            is given.  Required when the model was fitted with X.
        y : series or list of series, optional
            Forecast from this history instead of the end of the training
            series (a fitted model applied to new series); each is scaled on
            its own, as at fit time.

        Returns
        -------
        forecast : ndarray of shape (steps,) or (steps, k), pandas Series /
            DataFrame (indexed after the history's index), or a list of them
            for a list of series.
        """
        out, _, metas, flat, is_list, _, steps = self._forecast(y, X, steps)
        return self._output(out, metas, flat, is_list, steps)

    def predict_interval(self, steps, coverage=0.9, X=None, y=None, method="conformal",
                         n_paths=500, random_state=None):
        """Prediction intervals for the forecast.

        Parameters
        ----------
        steps : int
            Forecast horizon.
        coverage : float, default=0.9
            Nominal probability that the interval holds the future value.
        X, y : as in predict
        method : {"conformal", "simulate"}, default="conformal"
            "conformal": the forecast plus or minus the quantile of the
            out-of-sample absolute errors at each horizon, measured on the
            calibration tail at fit time (split conformal prediction, with
            the finite-sample correction ceil((n + 1) coverage) / n).
            "simulate": ``n_paths`` sample paths, each step's one-step
            residual (drawn from the calibration tail's, or the training
            fit's without calibration) added to the forecast and fed back;
            the interval holds the paths' central ``coverage`` quantiles.
            The residuals are not centred: a model whose errors lean one way
            gets a band that leans the same way (it can even leave the point
            forecast outside).  Conformal intervals are symmetric about it.
        n_paths : int, default=500
            Paths of method="simulate", run as parallel streams (in chunks of
            bounded memory); n_series x n_paths x steps x k must stay within
            the 2**28 values of a forecast (see ``predict``).
        random_state : int, RandomState or None
            Draws of method="simulate".

        Returns
        -------
        lower, upper : each shaped as predict's forecast
        """
        if not (isinstance(coverage, numbers.Real) and 0 < coverage < 1):
            raise ValueError(f"coverage must be in (0, 1); got {coverage!r}.")
        if method == "conformal":
            check_is_fitted(self, "model_")
            errors = self.calibration_errors_
            if isinstance(steps, numbers.Integral) and not isinstance(steps, bool) and \
                    steps > len(errors):
                raise ValueError(
                    f"conformal intervals are calibrated up to horizon {len(errors)} (the "
                    f"calibration tail); steps={steps} is longer. Fit with a larger "
                    "calibration_size, or use method='simulate'.")
            out, ys, metas, flat, is_list, scalers, steps = self._forecast(y, X, steps)
            q = np.empty(steps)
            for h in range(steps):
                e = np.sort(errors[h])
                rank = int(np.ceil((len(e) + 1) * coverage))
                if rank > len(e):
                    raise ValueError(
                        f"horizon {h + 1} has {len(e)} calibration errors, too few for "
                        f"coverage={coverage} (it needs at least "
                        f"{int(np.ceil(coverage / (1 - coverage)))}); use a larger "
                        "calibration_size, a lower coverage, or method='simulate'.")
                q[h] = e[rank - 1]
            lower = [f - q[:, None] * sd for f, (_, sd) in zip(out, scalers)]
            upper = [f + q[:, None] * sd for f, (_, sd) in zip(out, scalers)]
        elif method == "simulate":
            if isinstance(n_paths, bool) or not isinstance(n_paths, numbers.Integral) or \
                    n_paths < 2:
                raise ValueError(f"n_paths must be an integer >= 2; got {n_paths!r}.")
            rng = np.random.default_rng(check_random_state(random_state).randint(2**31))
            paths, ys, metas, flat, is_list, _, steps = self._forecast(
                y, X, steps, n_paths=int(n_paths), rng=rng)
            lo, hi = (1 - coverage) / 2, (1 + coverage) / 2
            lower = [np.quantile(p, lo, axis=0) for p in paths]
            upper = [np.quantile(p, hi, axis=0) for p in paths]
        else:
            raise ValueError(f"method must be 'conformal' or 'simulate'; got {method!r}.")
        if not all(np.all(np.isfinite(v)) for v in lower + upper):
            raise ValueError("The interval overflows float64: the series' values or their "
                             "errors are too close to the largest float.")
        return (self._output(lower, metas, flat, is_list, steps, "lower"),
                self._output(upper, metas, flat, is_list, steps, "upper"))

    # ------------------------------------------------------------------
    # evaluation

    def backtest(self, y, X=None, *, steps, initial_window, stride=1, refit=False):
        """Rolling-origin evaluation.

        The forecaster (a clone with these parameters) is fitted on the first
        ``initial_window`` observations of each series, then forecasts
        ``steps`` ahead from every origin initial_window, initial_window +
        stride, ... that leaves ``steps`` observations to compare with; with
        refit=True it is refitted on the history at every origin.

        Parameters
        ----------
        y : series or list of series
        X : covariates aligned with y, optional
        steps : int
            Horizon evaluated.
        initial_window : int
            Observations of the first training set.
        stride : int, default=1
            Steps between origins.
        refit : bool, default=False

        Returns
        -------
        scores : dict
            ``horizon`` (1..steps) and, per horizon, ``mae``, ``rmse``,
            ``mase`` (the MAE over the in-sample MAE of the seasonal-naive
            forecast at the season length (``seasonal_period``, or the one
            "auto" reads from the first training sets; naive without one), on
            the first training set; averaged over series) and ``smape`` (percent,
            0-200); ``n_origins``.
        """
        self._check_params()
        self._check_network()
        ys, metas, _, _ = _series_list(y, "y")
        xs = None if X is None else self._covariates(X, [len(v) for v in ys], "X")
        for name, v, low in (("steps", steps, 1), ("initial_window", initial_window, 1),
                             ("stride", stride, 1)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}; got {v!r}.")
        origins = list(range(initial_window, min(len(v) for v in ys) - steps + 1, stride))
        if not origins:
            raise ValueError(f"no origin leaves {steps} observations after initial_window="
                             f"{initial_window} (shortest series: {min(len(v) for v in ys)}).")
        period = self._season_length([v[:initial_window] for v in ys], metas,
                                     self._check_params()[2])
        naive = []
        for v in ys:
            train = v[:initial_window]
            if len(train) <= period:
                raise ValueError(f"initial_window={initial_window} is too short for the "
                                 f"seasonal-naive scale at period {period}.")
            naive.append(np.mean(np.abs(train[period:] - train[:-period]), axis=0))

        def cut(a, o, extra=0):
            return None if a is None else [v[:o + extra] for v in a]

        est = clone(self)
        if not refit:
            est.fit(cut(ys, initial_window), cut(xs, initial_window))
        errs, apes, scaled = [], [], []
        for o in origins:
            if refit:
                est = clone(self).fit(cut(ys, o), cut(xs, o))
            hist = [v[:o] for v in ys]
            Xh = None if xs is None else [x[:o + steps] for x in xs]
            f = est.predict(steps, X=Xh, y=hist)
            f = [np.asarray(a, dtype=np.float64).reshape(steps, -1) for a in f]
            for v, a, sc in zip(ys, f, naive):
                truth = v[o:o + steps]
                e = truth - a
                errs.append(e)
                with np.errstate(invalid="ignore", divide="ignore"):
                    ape = 200 * np.abs(e) / (np.abs(truth) + np.abs(a))
                apes.append(np.where(np.isfinite(ape), ape, 0.0))
                scaled.append(np.abs(e) / np.where(sc > 0, sc, np.nan))
        E, A, S = np.stack(errs), np.stack(apes), np.stack(scaled)
        return {
            "horizon": np.arange(1, steps + 1),
            "mae": np.abs(E).mean(axis=(0, 2)),
            "rmse": np.sqrt((E ** 2).mean(axis=(0, 2))),
            "mase": np.nanmean(S, axis=(0, 2)),
            "smape": A.mean(axis=(0, 2)),
            "n_origins": len(origins),
        }

    # ------------------------------------------------------------------
    # model files

    def _validate_hyperparams(self):
        """Every parameter: the forecaster's and the network's."""
        self._check_params()
        self._check_network()

    _FITTED_ATTRIBUTES = frozenset({
        "_W", "_d", "_s", "_mean", "_std", "_x_mean", "_x_std", "_residuals", "_history",
        "_history_x", "_metas", "_flat", "_is_list", "model_", "n_series_", "n_columns_",
        "n_covariates_", "loss_curve_", "calibration_errors_", "covariate_names_", "config_",
        "_bparams", "_bstate", "_bscale", "_members"})
    # absent from the files of crnn versions before they were recorded
    _OPTIONAL_FITTED_ATTRIBUTES = frozenset({"covariate_names_", "config_", "_bparams",
                                             "_bstate", "_bscale", "_members"})
    # absent from the files of crnn versions before the automatic choice,
    # whose forecasters were the network alone
    _OPTIONAL_PARAMS = {"baselines": False, "n_estimators": 1}
    _CONFIG_KEYS = frozenset({"model", "window_length", "difference", "seasonal_difference",
                              "seasonal_period", "selected", "candidates"})

    @classmethod
    def _check_config(cls, config, W, d, s, S, k, attrs):
        """A model file's config_ and baseline state: one consistent choice
        (ValueError otherwise)."""
        if not (isinstance(config, dict) and set(config) == cls._CONFIG_KEYS):
            raise ValueError(f"config_ is not a dict with the keys {sorted(cls._CONFIG_KEYS)}.")
        kind = config["model"]
        if kind not in ("rnn",) + _baselines.KINDS:
            raise ValueError(f"config_['model'] is {kind!r}; expected 'rnn' or one of "
                             f"{_baselines.KINDS}.")
        for key, v in (("window_length", W), ("difference", d), ("seasonal_difference", s)):
            if type(config[key]) is not int or config[key] != v:
                raise ValueError(f"config_[{key!r}] is {config[key]!r}, not the network's {v}.")
        m = config["seasonal_period"]
        if type(m) is not int or not 1 <= m <= 2**31 - 1:
            raise ValueError(f"config_['seasonal_period'] is {m!r}; expected an int >= 1.")
        if type(config["selected"]) is not bool:
            raise ValueError("config_['selected'] is not a bool.")
        cands = config["candidates"]
        names = ("rnn",) + _baselines.KINDS
        ok = isinstance(cands, list)
        for c in cands if ok else ():
            ok = isinstance(c, dict) and c.get("model") in names and set(c) == (
                {"model", "score", "window_length", "difference", "seasonal_difference"}
                if c["model"] == "rnn" else {"model", "score"}) and (
                c["score"] is None or type(c["score"]) is float) and all(
                type(c[n]) is int for n in ("window_length", "difference",
                                            "seasonal_difference") if n in c)
            if not ok:
                break
        if not ok:
            raise ValueError("config_['candidates'] is not a list of candidate dicts, each "
                             "with its model, configuration and score.")
        params, states, scales = attrs["_bparams"], attrs["_bstate"], attrs["_bscale"]
        if kind == "rnn":
            if not (isinstance(params, np.ndarray) and params.shape == (0,)
                    and states == [] and scales == []):
                raise ValueError("_bparams, _bstate and _bscale are not empty for a network's "
                                 "forecaster.")
            return
        if not (isinstance(params, np.ndarray) and params.dtype == np.float64
                and params.shape == ((3,) if kind == "damped" else (0,))
                and np.all(np.isfinite(params))):
            raise ValueError(f"_bparams is not the {kind} forecast's parameters.")
        if kind == "damped":
            a, b, phi = params
            if not (0 < a <= 1 and 0 <= b <= a and 0 < phi <= 1):
                raise ValueError(f"_bparams {params.tolist()} are not damped-trend "
                                 "parameters (0 < alpha <= 1, 0 <= beta <= alpha, 0 < phi "
                                 "<= 1).")
        rows = {"naive": 1, "seasonal_naive": m, "drift": 2, "damped": 3 + m,
                "ets": _ets.STATE_ROWS + m}[kind]

        def finite(v, shape):
            return isinstance(v, np.ndarray) and v.dtype == np.float64 and \
                v.shape == shape and bool(np.all(np.isfinite(v)))

        if not (isinstance(states, list) and len(states) == S
                and all(finite(v, (rows, k)) for v in states)):
            raise ValueError(f"_bstate is not {S} finite float64 array(s) of shape "
                             f"{(rows, k)} (the {kind} forecast's state).")
        if kind == "damped":
            for v in states:
                mult = v[2]
                if not (np.all((mult == 0) | (mult == 1))
                        and np.all(np.where(mult == 1, v[3:] > 0, True))):
                    raise ValueError("_bstate holds damped-trend states whose seasonal "
                                     "indices are not multiplicative (> 0) or additive.")
        if kind == "ets":
            for v in states:
                log, unit, alpha, beta, gamma, phi = v[:6]
                if not (np.all((log == 0) | (log == 1)) and np.all(unit > 0)
                        and np.all((alpha >= 0) & (alpha <= 1)) and np.all((beta >= 0)
                        & (beta <= 1)) and np.all((gamma >= 0) & (gamma <= 1))
                        and np.all((phi > 0) & (phi <= 1))):
                    raise ValueError("_bstate holds exponential smoothing states whose "
                                     "flags, units or smoothing parameters are out of range "
                                     "(log 0 or 1, unit > 0, alpha, beta, gamma in [0, 1], "
                                     "0 < phi <= 1).")
        if not (isinstance(scales, list) and len(scales) == S
                and all(finite(v, (k,)) and np.all(v > 0) for v in scales)):
            raise ValueError(f"_bscale is not {S} positive finite float64 array(s) of "
                             f"shape ({k},).")

    def _restore_fitted(self, attrs):
        """Check a model file's fitted attributes describe one consistent
        forecaster that can forecast, then set them (ValueError otherwise,
        nothing set).  The file is untrusted: every value is checked for its
        type, range, shape, finiteness and agreement with the others."""
        names = self._FITTED_ATTRIBUTES
        required = names - self._OPTIONAL_FITTED_ATTRIBUTES
        if not required <= set(attrs) <= names:
            raise ValueError(f"fitted attributes unknown: {sorted(set(attrs) - names)}, "
                             f"missing: {sorted(required - set(attrs))}.")
        attrs = {"covariate_names_": None, "_bparams": np.zeros(0), "_bstate": [],
                 "_bscale": [], "_members": [], **attrs}
        cov_names = attrs["covariate_names_"]
        if cov_names is not None and not (
                isinstance(cov_names, list) and len(cov_names) == attrs["n_covariates_"]
                and all(c is None or isinstance(c, (str, int, float)) for c in cov_names)):
            raise ValueError("covariate_names_ is not None or a list of one name per "
                             "covariate.")
        ints = {n: attrs[n] for n in ("_W", "_d", "_s", "n_series_", "n_columns_",
                                      "n_covariates_")}
        for n, v in ints.items():
            low = 1 if n in ("_W", "n_series_", "n_columns_") else 0
            high = _MAX_DIFFERENCE if n == "_d" else 2**31 - 1
            if type(v) is not int or not low <= v <= high:
                raise ValueError(f"{n} is {v!r}; expected an int in [{low}, {high}].")
        S, k, m = ints["n_series_"], ints["n_columns_"], ints["n_covariates_"]
        if "config_" not in attrs:          # a file from before the automatic choice
            attrs["config_"] = {"model": "rnn", "window_length": ints["_W"],
                                "difference": ints["_d"], "seasonal_difference": ints["_s"],
                                "seasonal_period": max(ints["_s"], 1), "selected": False,
                                "candidates": []}
        self._check_config(attrs["config_"], ints["_W"], ints["_d"], ints["_s"], S, k, attrs)
        net = attrs["model_"]
        members = attrs["_members"]
        want = self.n_estimators - 1 if attrs["config_"]["model"] == "rnn" else 0
        if not (isinstance(members, list) and len(members) == want):
            raise ValueError(f"_members is not a list of {want} network(s) (n_estimators="
                             f"{self.n_estimators}, model {attrs['config_']['model']!r}).")
        for name, v in [("model_", net)] + [(f"_members[{i}]", v)
                                            for i, v in enumerate(members)]:
            layout = getattr(v, "_layout", None)
            if not isinstance(v, RNNRegressor) or not hasattr(v, "_theta") or \
                    (v.n_features_in_, v.n_outputs_) != (k + m, k) or not v._fitted_seq() \
                    or getattr(layout, "ndir", None) != 1 or getattr(layout, "tokens", True) \
                    or v._theta.dtype != net._theta.dtype:
                raise ValueError(f"{name} is not a fitted per-step, one-directional "
                                 f"RNNRegressor with {k + m} inputs and {k} outputs (in the "
                                 "first network's dtype).")
        tail = ints["_W"] + ints["_d"] + ints["_s"]

        def finite_array(v, shape):
            return isinstance(v, np.ndarray) and v.dtype == np.float64 and \
                v.shape == shape and bool(np.all(np.isfinite(v)))

        def arrays(name, count, shape):
            v = attrs[name]
            if not (isinstance(v, list) and len(v) == count and
                    all(finite_array(a, shape) for a in v)):
                raise ValueError(f"{name} is not {count} finite float64 array(s) of shape "
                                 f"{shape}.")

        arrays("_mean", S, (k,))
        arrays("_std", S, (k,))
        arrays("_history", S, (tail, k))
        arrays("_history_x", S, (tail, m))
        for name in ("_x_mean", "_x_std"):
            if not finite_array(attrs[name], (m,)):
                raise ValueError(f"{name} is not a finite float64 array of shape ({m},).")
        if any(np.any(sd <= 0) for sd in attrs["_std"]) or np.any(attrs["_x_std"] <= 0):
            raise ValueError("a scale (_std or _x_std) is not positive.")
        # the training histories, transformed, must be what the network reads
        top = np.finfo(net._theta.dtype).max
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for H, hx, mu, sd in zip(attrs["_history"], attrs["_history_x"], attrs["_mean"],
                                     attrs["_std"]):
                z = (difference(H, ints["_d"], ints["_s"]) - mu) / sd
                xz = (hx - attrs["_x_mean"]) / attrs["_x_std"]
                if not (np.all(np.abs(z) < top) and np.all(np.abs(xz) < top)):
                    raise ValueError("_history, _mean and _std (or _history_x, _x_mean and "
                                     "_x_std) transform to values out of the network's "
                                     "range.")
        res = attrs["_residuals"]
        if not (isinstance(res, np.ndarray) and res.dtype == np.float64 and res.ndim == 2
                and res.shape[1] == k and len(res) and np.all(np.isfinite(res))):
            raise ValueError(f"_residuals is not a finite float64 (n, {k}) array, n >= 1.")
        errs = attrs["calibration_errors_"]
        if not (isinstance(errs, list) and all(
                isinstance(e, np.ndarray) and e.dtype == np.float64 and e.ndim == 1
                and len(e) and np.all(np.isfinite(e)) and np.all(e >= 0) for e in errs)):
            raise ValueError("calibration_errors_ is not a list of non-empty 1-D arrays of "
                             "finite, non-negative float64 errors.")
        if errs:
            # horizon h holds one error per origin with h steps left: sum over
            # the series of max(0, cut_i - h); its decrements count the series
            # with cut_i > h, from at most n_series_ down to at least 1
            counts = [len(e) for e in errs] + [0]
            drops = [a - b for a, b in zip(counts, counts[1:])]
            if not (all(1 <= x <= S for x in drops) and
                    all(a >= b for a, b in zip(drops, drops[1:]))):
                raise ValueError(f"calibration_errors_ has {counts[:-1]} errors per horizon, "
                                 f"which {S} calibration tail(s) cannot give.")
            if len(res) != counts[0]:
                raise ValueError(f"_residuals has {len(res)} rows; the calibration gives "
                                 f"{counts[0]} one-step residuals.")
        for n in ("_flat", "_is_list"):
            if type(attrs[n]) is not bool:
                raise ValueError(f"{n} is not a bool.")
        if attrs["_flat"] and k != 1:
            raise ValueError(f"_flat is True for series of {k} columns.")
        if not attrs["_is_list"] and S != 1:
            raise ValueError(f"_is_list is False for {S} series.")
        metas = attrs["_metas"]
        if not (isinstance(metas, list) and len(metas) == S):
            raise ValueError(f"_metas does not describe {S} series.")
        for i, mt in enumerate(metas):
            if mt is None:
                continue
            ok = isinstance(mt, dict) and mt.get("type") in ("Series", "DataFrame")
            if ok and mt["type"] == "Series":
                ok = set(mt) == {"type", "index", "name"} and k == 1 and (
                    mt["name"] is None or type(mt["name"]) in (str, int, float, bool))
            elif ok:
                cols = mt.get("columns")
                ok = set(mt) == {"type", "index", "columns"} and isinstance(cols, list) and \
                    len(cols) == k and all(c is None or type(c) in (str, int, float, bool)
                                           for c in cols)
            if not ok:
                raise ValueError(f"_metas[{i}] does not describe a pandas Series or DataFrame "
                                 f"of {k} column(s).")
            try:
                _future_index(mt["index"], 1)
            except ValueError as exc:
                raise ValueError(f"_metas[{i}]: {exc}") from None
        _frame_columns(metas, "_metas", "")      # one set of columns for all series
        curve = attrs["loss_curve_"]
        if not (isinstance(curve, list) and all(type(x) is float for x in curve)
                and np.array_equal(np.asarray(curve, dtype=np.float64),
                                   np.asarray(net.loss_curve_, dtype=np.float64),
                                   equal_nan=True)):
            raise ValueError("loss_curve_ is not the network's loss curve.")
        self.__dict__.update(attrs)
