"""RNNForecaster against hostile input: covariate shapes, time zones and
index kinds, tampered model files, oversized requests, invalid parameters
and non-finite data.  Every fit is tiny (max_iter=1 or 2)."""
import hashlib
import io
import json
import warnings
import zipfile

import numpy as np
import pytest

import crnn
import crnn._forecasting.forecaster as fc
from forecast_helpers import RNNForecaster

pd = pytest.importorskip("pandas")


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _series(T=60, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return 10 + np.sin(2 * np.pi * t / 7) + 0.1 * rng.normal(size=T)


def _small(**kw):
    params = dict(window_length=5, hidden_size=4, max_iter=1, random_state=0)
    params.update(kw)
    return RNNForecaster(**params)


# ---------------------------------------------------------------------------
# 1. covariates


def _with_two_covariates():
    rng = np.random.default_rng(1)
    y = _series(60)
    X = pd.DataFrame(rng.normal(size=(60, 2)), columns=["price", "promo"])
    return _small().fit(y, X), y, X


@pytest.mark.parametrize("call,rows", [
    (lambda f, y, X: f.predict(3, X=X), 3),
    (lambda f, y, X: f.predict(3, X=X, y=y), 63),
    (lambda f, y, X: f.predict_interval(3, X=X, y=y, method="simulate", n_paths=4), 63),
    (lambda f, y, X: f.predict_interval(3, X=X, y=y, method="conformal"), 63),
    (lambda f, y, X: f.predict_interval(3, X=X, method="simulate", n_paths=4), 3),
    (lambda f, y, X: f.predict_interval(3, X=X), 3),
], ids=["predict", "predict-y", "simulate-y", "conformal-y", "simulate", "conformal"])
@pytest.mark.parametrize("given", [1, 3])
def test_covariates_with_another_number_of_columns_are_refused(call, rows, given):
    """One column for two used to be broadcast (silently duplicated) when y
    was given, and failed with numpy's concatenate message otherwise."""
    f, y, _ = _with_two_covariates()
    with pytest.raises(ValueError, match=rf"X has {given} covariate column\(s\); the "
                                         r"model was fitted with 2 covariate\(s\)"):
        call(f, y, np.ones((rows, given)))
    Xdf = pd.DataFrame(np.ones((rows, given)), columns=[f"c{j}" for j in range(given)])
    with pytest.raises(ValueError, match=rf"X has {given} covariate column\(s\) \('c0'"):
        call(f, y, Xdf)


def test_the_right_covariates_still_forecast_and_a_1d_x_is_one_column():
    f, y, X = _with_two_covariates()
    Xf = np.random.default_rng(2).normal(size=(3, 2))
    assert f.predict(3, X=Xf).shape == (3,)
    assert f.predict(3, X=np.concatenate([X.to_numpy(), Xf]), y=y).shape == (3,)
    one = _small().fit(_series(60), np.arange(60.0))            # 1-D X: one covariate
    assert one.n_covariates_ == 1
    assert one.predict(2, X=np.arange(2.0)).shape == (2,)
    with pytest.raises(ValueError, match=r"X has 2 covariate column\(s\).*fitted with 1"):
        one.predict(2, X=np.ones((2, 2)))


def test_backtest_checks_parameters_before_any_work():
    with pytest.raises(ValueError, match="seasonal_period"):
        _small(seasonal_period="weekly").backtest(_series(60), steps=2, initial_window=40)


# ---------------------------------------------------------------------------
# 2. time zones and index kinds


def _berlin(start, periods, freq="D"):
    idx = pd.date_range(start, periods=periods, freq=freq, tz="Europe/Berlin")
    return pd.Series(_series(periods), index=idx, name="load")


@pytest.mark.parametrize("start,freq", [("2020-02-20", "D"), ("2020-09-15", "D"),
                                        ("2020-03-27 00:00", "h"), ("2020-10-23", "h")])
def test_the_forecast_index_keeps_the_time_zone_across_dst(start, freq, tmp_path):
    """The index used to come back in a fixed UTC offset (UTC+01:00), so
    every label after a DST change was an hour off."""
    y = _berlin(start, 40 if freq == "h" else 37, freq)
    f = _small().fit(y)
    steps = 60 if freq == "h" else 10
    want = pd.date_range(y.index[-1], periods=steps + 1, freq=freq)[1:]
    assert str(want.tz) == "Europe/Berlin"
    p = f.predict(steps)
    assert p.index.equals(want), (p.index, want)
    assert p.index.tz is y.index.tz                   # the same tz object
    if freq == "D":                                   # the calendar: local midnights
        assert set(p.index.hour) == {0}
        assert len(set(p.index.strftime("%z"))) == 2  # crosses a DST change
    lo, hi = f.predict_interval(steps, method="simulate", n_paths=5, random_state=0)
    assert lo.index.equals(want) and hi.index.tz is y.index.tz
    # and after save / load
    f.save(tmp_path / "f.crnn")
    g = crnn.load(tmp_path / "f.crnn")
    q = g.predict(steps)
    assert q.index.equals(want) and q.index.tz is y.index.tz
    np.testing.assert_array_equal(q.to_numpy(), p.to_numpy())
    # a history given at predict time keeps its own zone
    ny = pd.Series(y.to_numpy(), index=pd.date_range(y.index[0].tz_localize(None), periods=len(
        y), freq=freq, tz="America/New_York"))
    r = f.predict(steps, y=ny)
    assert r.index.equals(pd.date_range(ny.index[-1], periods=steps + 1, freq=freq)[1:])
    assert r.index.tz is ny.index.tz


def test_fixed_offset_utc_and_dateutil_zones_are_kept(tmp_path):
    import datetime
    zones = [datetime.timezone.utc, datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
             "dateutil/Europe/Berlin"]
    for i, tz in enumerate(zones):
        idx = pd.date_range("2020-03-20", periods=30, freq="D", tz=tz)
        y = pd.Series(_series(30), index=idx)
        f = _small().fit(y)
        want = pd.date_range(idx[-1], periods=6, freq="D")[1:]
        f.save(tmp_path / f"{i}.crnn")
        for model in (f, crnn.load(tmp_path / f"{i}.crnn")):
            p = model.predict(5)
            assert p.index.equals(want)
            assert p.index.tz == idx.tz and str(p.index.tz) == str(idx.tz)


def test_hostile_indexes_are_refused_with_a_clear_error():
    y = _series(40)
    cases = [
        (pd.DatetimeIndex(["2020-01-01"] * 40), "duplicate labels"),
        (pd.Index(np.random.default_rng(0).permutation(40) + 100), "unsorted or decreasing"),
        (pd.RangeIndex(40, 0, -1), "unsorted or decreasing"),
        (pd.Index(np.r_[np.arange(20), np.arange(20) * 3 + 40]), "not evenly spaced"),
        (pd.DatetimeIndex([pd.NaT] + list(pd.date_range("2020", periods=39, freq="D"))),
         "missing labels"),
        (pd.PeriodIndex(list(pd.period_range("2000-01", periods=20, freq="M")) +
                        list(pd.period_range("2003-01", periods=20, freq="M"))),
         "not evenly spaced"),
    ]
    for index, match in cases:
        s = pd.Series(y, index=index)
        with pytest.raises(ValueError, match=match):
            _small().fit(s)
        f = _small().fit(y)
        with pytest.raises(ValueError, match=match):       # also as a history
            f.predict(2, y=s)


def test_empty_and_too_short_series_get_a_clear_error():
    f = _small()
    for empty in (np.array([]), pd.Series([], dtype=float),
                  pd.Series([], dtype=float, index=pd.DatetimeIndex([], freq="D")),
                  np.zeros((0, 2)), [[]]):
        with pytest.raises(ValueError, match="empty"):
            f.fit(empty)
    with pytest.raises(ValueError, match="has no columns"):
        f.fit(np.zeros((40, 0)))
    with pytest.raises(ValueError, match="has 1 observations; window_length=5"):
        f.fit([7.0])
    with pytest.raises(ValueError, match="has 4 observations; window_length=5"):
        f.fit(pd.Series([1.0, 2, 3, 4]))
    f.fit(_series(40))
    with pytest.raises(ValueError, match="empty"):
        f.predict(2, y=pd.Series([], dtype=float))
    with pytest.raises(ValueError, match="has 3 observations; a forecast needs at least 5"):
        f.predict(2, y=pd.Series([1.0, 2, 3]))


def test_short_histories_and_other_index_kinds_continue_their_index(tmp_path):
    """A one-label integer index, a PeriodIndex and a TimedeltaIndex used to
    come back as a RangeIndex counting from the history's length."""
    y = _series(40)
    f = _small(window_length=1, calibration_size=None).fit(y)
    p = f.predict(3, y=pd.Series([5.0], index=[1990]))
    assert list(p.index) == [1991, 1992, 1993]
    p = f.predict(2, y=pd.Series([5.0, 6.0], index=[10, 20]))
    assert list(p.index) == [30, 40]
    for index in (pd.period_range("2001Q1", periods=40, freq="Q"),
                  pd.period_range("2001-01", periods=40, freq="3M"),
                  pd.timedelta_range("0s", periods=40, freq="15min")):
        s = pd.Series(y, index=index)
        g = _small().fit(s)
        if isinstance(index, pd.PeriodIndex):
            want = pd.period_range(index[-1], periods=5, freq=index.freq)[1:]
        else:
            want = pd.timedelta_range(index[-1], periods=5, freq=index.freq)[1:]
        g.save(tmp_path / "g.crnn")
        for model in (g, crnn.load(tmp_path / "g.crnn")):
            out = model.predict(4)
            assert type(out.index) is type(index) and out.index.equals(want)


# ---------------------------------------------------------------------------
# 3. model files


def _read(path):
    with zipfile.ZipFile(path) as zf:
        man = json.loads(zf.read("model.json"))
        data = {n: zf.read(n) for n in zf.namelist() if n != "model.json"}
    return man, data


def _write(path, man, data):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.json", json.dumps(man))
        for n, b in data.items():
            zf.writestr(n, b)


def _get(d, key):
    """A key of a tagged dict ({"$": "dict", "items": [[k, v], ...]})."""
    for k, v in d["items"]:
        if k == key:
            return v
    raise KeyError(key)


def _set(d, key, value):
    for item in d["items"]:
        if item[0] == key:
            if value is _DROP:
                d["items"].remove(item)
            else:
                item[1] = value
            return
    d["items"].append([key, value])


_DROP = object()


def _put_array(man, data, ref, arr):
    """Replace the array a reference points to (and its checksum in
    model.json, as anyone editing the file can)."""
    buf = io.BytesIO()
    np.save(buf, arr)
    data[ref["file"]] = buf.getvalue()
    man["members"][ref["file"]] = hashlib.sha256(data[ref["file"]]).hexdigest()


def _index(a):
    return _get(a["_metas"][0], "index")


def _calibration(value):
    def edit(a, man, data):
        _put_array(man, data, a["calibration_errors_"][0],
                   np.r_[value, np.ones(len(np.load(io.BytesIO(
                       data[a["calibration_errors_"][0]["file"]]))) - 1)])
    return edit


_BAD_EDITS = {
    "unknown tz": lambda a, m, d: _set(_index(a), "tz", "Mars/Olympus_Mons"),
    "tz path": lambda a, m, d: _set(_index(a), "tz", "../../../etc/passwd"),
    "tz number": lambda a, m, d: _set(_index(a), "tz", 5),
    "tz kind": lambda a, m, d: _set(_index(a), "tz_kind", "sundial"),
    "fixed offset beyond a day": lambda a, m, d: (_set(_index(a), "tz_kind", "fixed"),
                                                  _set(_index(a), "tz", "99999999999")),
    "tz without offset": lambda a, m, d: _set(_index(a), "tz", None),
    "no freq": lambda a, m, d: _set(_index(a), "freq", _DROP),
    "bad freq": lambda a, m, d: _set(_index(a), "freq", "fortnightly"),
    "backward freq": lambda a, m, d: _set(_index(a), "freq", "-1D"),
    "freq list": lambda a, m, d: _set(_index(a), "freq", ["D"]),
    "bad last": lambda a, m, d: _set(_index(a), "last", "the day after tomorrow"),
    "last NaT": lambda a, m, d: _set(_index(a), "last", "NaT"),
    "last beyond ns": lambda a, m, d: (_set(_index(a), "last", "2262-04-11T00:00:00+01:00"),
                                       _set(_index(a), "unit", "ns")),
    "bad unit": lambda a, m, d: _set(_index(a), "unit", "fortnight"),
    "extra index key": lambda a, m, d: _set(_index(a), "extra", 1),
    "unknown kind": lambda a, m, d: _set(_index(a), "kind", "sundial"),
    "range overflow": lambda a, m, d: a["_metas"].__setitem__(0, {"$": "dict", "items": [
        ["type", "Series"], ["index", {"$": "dict", "items": [
            ["kind", "range"], ["last", 2**63 - 1], ["step", 1]]}], ["name", None]]}),
    "range step 0": lambda a, m, d: a["_metas"].__setitem__(0, {"$": "dict", "items": [
        ["type", "Series"], ["index", {"$": "dict", "items": [
            ["kind", "range"], ["last", 3], ["step", 0]]}], ["name", None]]}),
    "meta type": lambda a, m, d: _set(a["_metas"][0], "type", "Panel"),
    "meta name list": lambda a, m, d: _set(a["_metas"][0], "name", [1, 2]),
    "series meta as frame": lambda a, m, d: _set(a["_metas"][0], "type", "DataFrame"),
    "two metas": lambda a, m, d: a["_metas"].append(None),
    "calibration inf": _calibration(np.inf),
    "calibration nan": _calibration(np.nan),
    "calibration negative": _calibration(-1.0),
    "calibration floats": lambda a, m, d: a["calibration_errors_"].__setitem__(0, [0.5, 1.0]),
    "calibration reversed": lambda a, m, d: a["calibration_errors_"].reverse(),
    "calibration dropped": lambda a, m, d: a["calibration_errors_"].pop(0),
    "residuals rows": lambda a, m, d: _put_array(m, d, a["_residuals"], np.zeros((3, 1))),
    "residuals int": lambda a, m, d: _put_array(m, d, a["_residuals"],
                                                np.zeros((len(np.load(io.BytesIO(
                                                    d[a["_residuals"]["file"]]))), 1), int)),
    "x_mean inf": lambda a, m, d: _put_array(m, d, a["_x_mean"], np.array([np.inf, 0.0])),
    "x_std int": lambda a, m, d: _put_array(m, d, a["_x_std"], np.array([1, 1])),
    "std tiny": lambda a, m, d: _put_array(m, d, a["_std"][0], np.array([1e-320])),
    "W negative": lambda a, m, d: a.__setitem__("_W", -1),
    "W huge": lambda a, m, d: a.__setitem__("_W", 2**40),
    "W str": lambda a, m, d: a.__setitem__("_W", "5"),
    "W bool": lambda a, m, d: a.__setitem__("_W", True),
    "d": lambda a, m, d: a.__setitem__("_d", 3),
    "n_covariates": lambda a, m, d: a.__setitem__("n_covariates_", 1),
    "n_series": lambda a, m, d: a.__setitem__("n_series_", 2),
    "flat int": lambda a, m, d: a.__setitem__("_flat", 1),
    "is_list str": lambda a, m, d: a.__setitem__("_is_list", "yes"),
    "loss curve": lambda a, m, d: a.__setitem__("loss_curve_", [1.0]),
    "loss curve str": lambda a, m, d: a.__setitem__("loss_curve_", ["1.0"]),
    "calibration_size nan": None,
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small fitted forecaster (Europe/Berlin daily index, two covariates,
    a calibration tail) and its file."""
    path = tmp_path_factory.mktemp("model") / "f.crnn"
    rng = np.random.default_rng(3)
    y = _berlin("2020-03-01", 50)
    X = rng.normal(size=(50, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = _small(calibration_size=8).fit(y, X)
    f.save(path)
    return f, path, rng.normal(size=(4, 2))


@pytest.mark.parametrize("name", sorted(_BAD_EDITS))
def test_a_tampered_forecaster_file_is_refused_at_load(saved, name, tmp_path):
    """Each value used to load, then fail in predict (KeyError,
    ZoneInfoNotFoundError, OverflowError, ...) or give infinite intervals."""
    f, path, Xf = saved
    man, data = _read(path)
    if name == "calibration_size nan":
        man["params"]["calibration_size"] = float("nan")
    else:
        _BAD_EDITS[name](man["attributes"], man, data)
    _write(tmp_path / "bad.crnn", man, data)
    with pytest.raises(crnn.ModelFileError):
        crnn.load(tmp_path / "bad.crnn")


def test_valid_forecaster_files_load_and_forecast_identically(saved, tmp_path):
    f, path, Xf = saved
    g = crnn.load(path)
    p, q = f.predict(4, X=Xf), g.predict(4, X=Xf)
    assert p.index.equals(q.index) and q.index.tz is p.index.tz
    np.testing.assert_array_equal(p.to_numpy(), q.to_numpy())
    for method in ("conformal", "simulate"):
        kw = dict(X=Xf, coverage=0.8, method=method, n_paths=20, random_state=1)
        a, b = f.predict_interval(4, **kw), g.predict_interval(4, **kw)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u.to_numpy(), v.to_numpy())
    # a file written before the index recorded its time zone's kind and unit
    # still loads, and now forecasts in the series' zone
    man, data = _read(path)
    _set(_index(man["attributes"]), "tz_kind", _DROP)
    _set(_index(man["attributes"]), "unit", _DROP)
    _write(tmp_path / "old.crnn", man, data)
    old = crnn.load(tmp_path / "old.crnn").predict(4, X=Xf)
    assert old.index.equals(p.index) and str(old.index.tz) == "Europe/Berlin"
    np.testing.assert_array_equal(old.to_numpy(), p.to_numpy())
    # ... and one whose zone name nothing resolves keeps the last label's offset
    _set(_index(man["attributes"]), "tz", "UTC+01:00")
    _write(tmp_path / "old2.crnn", man, data)
    crnn.load(tmp_path / "old2.crnn").predict(4, X=Xf)
    # numpy, list-of-series and frame models round-trip too
    ys = [_series(40), _series(50, seed=1)]
    h = _small().fit(ys)
    h.save(tmp_path / "h.crnn")
    for a, b in zip(h.predict(3), crnn.load(tmp_path / "h.crnn").predict(3)):
        np.testing.assert_array_equal(a, b)
    df = pd.DataFrame({"a": _series(40), "b": _series(40, seed=2)})
    d = _small(calibration_size=None).fit(df)
    d.save(tmp_path / "d.crnn")
    pd.testing.assert_frame_equal(d.predict(3), crnn.load(tmp_path / "d.crnn").predict(3))


# ---------------------------------------------------------------------------
# 4. resource requests


def test_oversized_requests_are_refused_before_any_work():
    f = _small().fit(_series(40))
    for steps in (10**12, fc._MAX_STEPS + 1):
        with pytest.raises(ValueError, match="longest horizon a forecast runs"):
            f.predict(steps)
    with pytest.raises(ValueError, match="longest horizon"):
        f.predict_interval(10**12, method="simulate")
    with pytest.raises(ValueError, match=r"would hold 3,000,000,000 values"):
        f.predict_interval(3, method="simulate", n_paths=10**9)
    with pytest.raises(ValueError, match="would hold"):
        f.predict_interval(3, method="simulate", n_paths=10**30, y=_series(40))
    with pytest.raises(ValueError, match="calibrated up to horizon"):
        f.predict_interval(10**12)
    wide = _small(calibration_size=None).fit(np.tile(_series(40)[:, None], (1, 300)))
    with pytest.raises(ValueError, match="would hold"):
        wide.predict(fc._MAX_STEPS)


def test_simulated_paths_run_in_chunks_with_the_same_draws(monkeypatch):
    f = _small(dtype=np.float64).fit([_series(40), _series(45, seed=1)])
    whole = f.predict_interval(6, method="simulate", n_paths=50, random_state=3)
    monkeypatch.setattr(fc, "_CHUNK_VALUES", 1)            # one stream per chunk
    chunked = f.predict_interval(6, method="simulate", n_paths=50, random_state=3)
    for a, b in zip(whole, chunked):
        for u, v in zip(a, b):
            np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)


def test_a_fit_too_large_for_memory_is_refused_and_changes_nothing(monkeypatch):
    f = _small().fit(_series(40))
    before = f.predict(3)
    monkeypatch.setattr(fc._threads, "physical_memory", lambda: 1000)
    with pytest.raises(ValueError, match="more than this machine's"):
        f.fit(_series(60))
    monkeypatch.undo()
    monkeypatch.setattr(fc, "_MAX_VALUES", 100)
    with pytest.raises(ValueError, match="calibration_size=0.2 holds out"):
        f.fit(_series(200))
    np.testing.assert_array_equal(f.predict(3), before)


# ---------------------------------------------------------------------------
# 5. parameters

_FLOATS = ["dropout", "forget_bias", "learning_rate_init", "power_t", "alpha", "clip_norm",
           "momentum", "beta_1", "beta_2", "epsilon", "validation_fraction", "tol",
           "calibration_size"]
_INTS = ["window_length", "hidden_size", "num_layers", "batch_size", "max_iter",
         "bptt_truncate", "n_iter_no_change", "verbose", "seasonal_period", "difference",
         "calibration_size"]


@pytest.mark.parametrize("name", sorted(set(_FLOATS + _INTS)))
def test_every_numeric_parameter_refuses_nan_inf_and_bools(name):
    """calibration_size=nan used to fail with 'cannot convert float NaN to
    integer'; the network's parameters were reported as RNNRegressor's."""
    y = _series(40)
    bad = [np.nan, np.inf, -np.inf, float("nan"), True, "0.5"]
    if name in _INTS and name not in _FLOATS:
        bad += [2.5, -1, 2**40]
    if name == "calibration_size":
        bad += [-0.1, 1.0, -1, np.array([0.2])]
    for v in bad:
        f = _small(**{name: v})
        with pytest.raises(ValueError, match=f"'{name}' parameter of RNNForecaster"):
            f.fit(y)
        with pytest.raises(ValueError, match=f"'{name}' parameter of RNNForecaster"):
            f._validate_hyperparams()          # as a model file's parameters are checked


def test_array_valued_parameters_get_the_parameter_error():
    for name in ("difference", "scale"):
        with pytest.raises(ValueError, match=f"'{name}' parameter of RNNForecaster"):
            _small(**{name: np.array([1, 2])}).fit(_series(40))


# ---------------------------------------------------------------------------
# 6. data


def test_non_finite_and_non_real_data_get_a_clear_error():
    y = _series(40)
    f = _small()
    for bad, match in [([1e400] * 40, "NaN or infinity"), (np.r_[y[:-1], np.nan], "NaN"),
                       (pd.Series(pd.array(list(range(39)) + [None], dtype="Int64")), "NaN"),
                       (y + 1j, "complex numbers"), (y.astype(str), "strings"),
                       (pd.Series(y.astype(str)), "strings"),
                       (np.array(list(y[:-1]) + ["3"], dtype=object), "strings")]:
        with pytest.raises(ValueError, match=match):
            f.fit(bad)
    X = np.random.default_rng(0).normal(size=(40, 1))
    f.fit(y, X)
    for Xf, match in [(np.array([[1.0], [np.inf]]), "NaN or infinity"),
                      (np.array([[1.0], [1e400]]), "NaN or infinity"),
                      (np.array([[1.0], [1e300]]), "outside the covariates"),
                      (np.array([[1.0], [1 + 1j]]), "complex")]:
        with pytest.raises(ValueError, match=match):
            f.predict(2, X=Xf)
        with pytest.raises(ValueError, match=match):
            f.predict_interval(2, X=Xf, method="simulate", n_paths=3)
    with pytest.raises(ValueError, match="NaN or infinity"):
        f.predict(2, X=np.ones((42, 1)), y=np.r_[y[:-1], np.inf])


def test_covariate_columns_by_name_in_another_order_are_refused(tmp_path):
    """A DataFrame X with the fitted columns swapped was used by position: a
    silently wrong forecast (issue 24)."""
    n = 60
    t = np.arange(n + 4)
    y = pd.Series(10 + np.sin(t[:n] / 3.0), index=pd.date_range("2020-01-01", periods=n))
    X = pd.DataFrame({"price": np.cos(t / 5.0), "promo": (t % 7 == 0).astype(float)},
                     index=pd.date_range("2020-01-01", periods=n + 4))
    f = RNNForecaster(window_length=6, hidden_size=3, max_iter=2, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f.fit(y, X=X.iloc[:n])
    assert f.covariate_names_ == ["price", "promo"]
    future = X.iloc[n:]
    want = f.predict(4, X=future)
    with pytest.raises(ValueError, match=r"\['promo', 'price'\]; the model was fitted with "
                                         r"\['price', 'promo'\]"):
        f.predict(4, X=future[["promo", "price"]])
    with pytest.raises(ValueError, match="covariate columns"):
        f.predict_interval(4, X=future.rename(columns={"price": "cost"}))
    # arrays are positional, as documented
    np.testing.assert_array_equal(f.predict(4, X=future.to_numpy()), want)
    # the names survive a model file; a file from before they were recorded loads
    path = tmp_path / "f.crnn"
    f.save(path)
    g = crnn.load(path)
    assert g.covariate_names_ == ["price", "promo"]
    with pytest.raises(ValueError, match="covariate columns"):
        g.predict(4, X=future[["promo", "price"]])
    with zipfile.ZipFile(path) as zf:
        man = json.loads(zf.read("model.json"))
        members = {m: zf.read(m) for m in zf.namelist() if m != "model.json"}
    del man["attributes"]["covariate_names_"]
    old = tmp_path / "old.crnn"
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr("model.json", json.dumps(man))
        for m, b in members.items():
            zf.writestr(m, b)
    h = crnn.load(old)
    assert h.covariate_names_ is None
    np.testing.assert_array_equal(h.predict(4, X=future), want)
    man["attributes"]["covariate_names_"] = ["price"]
    with zipfile.ZipFile(old, "w") as zf:
        zf.writestr("model.json", json.dumps(man))
        for m, b in members.items():
            zf.writestr(m, b)
    with pytest.raises(crnn.ModelFileError, match="covariate_names_"):
        crnn.load(old)


def _tiny():
    return RNNForecaster(window_length=4, hidden_size=4, max_iter=1, random_state=0,
                         calibration_size=None)


def test_every_dataframe_of_a_list_is_checked_by_name():
    """Only the first DataFrame of a list of covariates was compared: a
    swapped second one was used by position (issue 24, second probe)."""
    n = 30
    y = np.sin(np.arange(n) / 3.0)
    X = pd.DataFrame({"a": np.arange(n, dtype=float), "b": np.cos(np.arange(n) / 4.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="different covariate columns"):
            _tiny().fit([y, y], [X, X[["b", "a"]]])
        m = _tiny().fit([y, y], [X, X])
    Xf = pd.DataFrame({"a": [30.0, 31, 32], "b": [0.0, 1, 2]})
    a, b = m.predict(3, X=[Xf, Xf])
    np.testing.assert_array_equal(a, b)
    full = pd.concat([X, Xf], ignore_index=True)
    for call in (lambda: m.predict(3, X=[Xf, Xf[["b", "a"]]]),
                 lambda: m.predict_interval(3, X=[Xf, Xf[["b", "a"]]], method="simulate"),
                 lambda: m.predict(3, y=[y, y], X=[full, full[["b", "a"]]])):
        with pytest.raises(ValueError, match="different covariate columns"):
            call()


def test_the_columns_of_y_at_predict_are_checked_by_name():
    rng = np.random.default_rng(0)
    n = 30
    Y = pd.DataFrame({"p": np.sin(np.arange(n) / 3.0) * 10 + 100, "q": rng.normal(size=n)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _tiny().fit(Y)
    m.predict(1, y=Y)
    with pytest.raises(ValueError, match=r"y has the columns \['q', 'p'\]"):
        m.predict(1, y=Y[["q", "p"]])
    with pytest.raises(ValueError, match="y has the columns"):
        m.predict(1, y=Y.rename(columns={"p": "u", "q": "v"}))
    m.predict(1, y=Y.to_numpy())                # arrays are positional


def test_a_float_index_of_whole_numbers_continues_and_others_are_refused():
    y = np.sin(np.arange(10) / 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        years = _tiny().fit(pd.Series(y, index=np.arange(1990.0, 2000.0)))
        assert years.predict(2).index.tolist() == [2000, 2001]    # labelled 10, 11 before
        with pytest.raises(ValueError, match="not whole"):
            _tiny().fit(pd.Series(y, index=np.arange(10) / 2.0))
        with pytest.raises(ValueError, match="decreasing"):
            _tiny().fit(pd.Series(y, index=np.arange(10.0)[::-1]))


@pytest.mark.parametrize("columns", [[True, False], pd.Index([None, "x"])], ids=["bool", "nan"])
def test_odd_column_names_survive_a_model_file(tmp_path, columns):
    """Bool names were saved but refused at load; a None (NaN) name loaded
    but then never matched itself."""
    n = 30
    y = np.sin(np.arange(n + 3) / 3.0)
    X = pd.DataFrame(np.c_[np.cos(np.arange(n + 3) / 4.0), np.arange(n + 3.0) % 7],
                     columns=columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = _tiny().fit(y[:n], X=X.iloc[:n])
    m.save(tmp_path / "m.crnn")
    g = crnn.load(tmp_path / "m.crnn")
    np.testing.assert_array_equal(g.predict(3, X=X.iloc[n:]), m.predict(3, X=X.iloc[n:]))


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "right/UTC", "posix/Europe/Paris"])
def test_machine_local_time_zones_in_a_file_are_refused(zone):
    with pytest.raises(ValueError, match="not an IANA zone name"):
        fc._tz_object("zoneinfo", zone)
