"""RNNForecaster (issue 10): recursion, transforms, covariates, intervals,
pandas, backtests, model files, bad input."""
import warnings

import numpy as np
import pytest
from sklearn.base import clone

import crnn
from crnn import RNNForecaster as _RNNForecaster
from forecast_helpers import RNNForecaster
from crnn._forecasting.forecaster import difference, undifference


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _seasonal(T=160, seed=0, trend=0.05, period=12):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    return 10 + trend * t + np.sin(2 * np.pi * t / period) + 0.1 * rng.normal(size=T)


def _reference_forecast(f, y, steps, X_hist=None, X_future=None):
    """The full network run from the warm-up start over the series extended
    by its own forecasts, one new step at a time (no stepper, no state
    carried between calls), then transformed back."""
    W, d, s = f._W, f._d, f._s
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    k = y.shape[1]
    mu, sd = f._mean[0], f._std[0]
    z = (difference(y, d, s) - mu) / sd
    m = f.n_covariates_
    if m:
        xall = (np.concatenate([X_hist, X_future]) - f._x_mean) / f._x_std
        xz = xall[d + s:]
    ext = z[-W:].copy()
    n = len(z)
    for j in range(steps):
        t0 = n - W
        feats = ext if not m else np.concatenate(
            [ext, xz[t0 + 1:t0 + 1 + len(ext)]], axis=1)
        out = f.model_.predict(feats[None]).reshape(1, len(ext), k)
        ext = np.concatenate([ext, out[:, -1]])
    return undifference(ext[W:] * sd + mu, y, d, s)


@pytest.mark.parametrize("cell,layers,k,m", [("gru", 1, 1, 0), ("lstm", 2, 2, 0),
                                             ("rnn", 2, 1, 2), ("gru", 2, 3, 1)])
def test_the_recursion_equals_the_full_model_on_the_extended_series(cell, layers, k, m):
    rng = np.random.default_rng(1)
    T = 90
    y = np.stack([_seasonal(T, seed=i) for i in range(k)], axis=1)
    X = rng.normal(size=(T, m)) if m else None
    f = RNNForecaster(window_length=10, cell=cell, num_layers=layers, hidden_size=8,
                      difference=1, seasonal_period=4, max_iter=3, dtype=np.float64,
                      random_state=0).fit(y if k > 1 else y[:, 0], X)
    Xf = rng.normal(size=(15, m)) if m else None
    got = f.predict(15, X=Xf)
    want = _reference_forecast(f, y, 15, X, Xf)
    np.testing.assert_allclose(np.asarray(got).reshape(15, k), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d,season", [(0, 0), (1, 0), (2, 0), (0, 7), (1, 12), (2, 5)])
def test_differencing_is_exactly_undone(d, season):
    rng = np.random.default_rng(d * 10 + season)
    y = rng.normal(size=(80, 3)).cumsum(axis=0) * 50 + 1e3
    z = difference(y, d, season)
    assert len(z) == 80 - d - season
    for T0 in (season + d + 1, 40, 79):
        back = undifference(z[T0 - season - d:], y[:T0], d, season)
        np.testing.assert_allclose(back, y[T0:], rtol=1e-12, atol=1e-9)
    # many paths at once: (..., steps, k)
    paths = np.stack([z[40 - season - d:]] * 3)
    np.testing.assert_allclose(undifference(paths, y[:40], d, season)[1], y[40:], atol=1e-9)


def test_scaling_is_undone_and_a_constant_series_forecasts_itself():
    for level in (7.25, -3e6, 1e-200, 0.0):
        f = RNNForecaster(window_length=5, max_iter=2, calibration_size=None, random_state=0)
        np.testing.assert_allclose(f.fit(np.full(40, level)).predict(4), level, rtol=1e-9,
                                   atol=1e-12 if level == 0 else 0)
    line = 5.0 + 0.25 * np.arange(40)              # differenced: constant
    f = RNNForecaster(window_length=5, max_iter=2, difference=1, random_state=0).fit(line)
    np.testing.assert_allclose(f.predict(3), 5.0 + 0.25 * np.arange(40, 43), rtol=1e-9)
    y = _seasonal(100) * 1000 + 5e4        # large values: scaled, then unscaled
    f = RNNForecaster(window_length=12, max_iter=30, dtype=np.float64,
                      random_state=0).fit(y)
    z = (difference(y[:, None], 0, 0) - f._mean[0]) / f._std[0]
    np.testing.assert_allclose(z.mean(), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(), 1, atol=1e-9)
    assert np.all(np.abs(f.predict(6) - y[-12:].mean()) < 5 * y.std())


def test_a_covariate_that_drives_the_series_is_used():
    rng = np.random.default_rng(2)
    T = 300
    x = rng.normal(size=(T, 1))
    y = 3 * x[:, 0] + 0.05 * rng.normal(size=T)
    kw = dict(window_length=8, hidden_size=16, max_iter=60, learning_rate_init=0.01,
              calibration_size=None, random_state=0)
    with_x = RNNForecaster(**kw).fit(y[:250], x[:250])
    without = RNNForecaster(**kw).fit(y[:250])
    pred_x = with_x.predict(50, X=x[250:])
    pred = without.predict(50)
    err_x, err = np.abs(pred_x - y[250:]).mean(), np.abs(pred - y[250:]).mean()
    assert err_x < 0.3 * err, (err_x, err)
    shifted = with_x.predict(50, X=x[250:] + 1.0)
    assert np.all(shifted - pred_x > 1.5)          # +1 in x moves y by about +3


def _ar1(n, T, phi=0.7, seed=0):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(n, T))
    y = np.zeros((n, T))
    for t in range(1, T):
        y[:, t] = phi * y[:, t - 1] + e[:, t]
    return y


@pytest.mark.parametrize("method", ["conformal", "simulate"])
def test_intervals_reach_their_nominal_coverage_on_an_ar1_process(method):
    train = _ar1(1, 1500, seed=0)[0]
    f = RNNForecaster(window_length=10, hidden_size=8, max_iter=20, learning_rate_init=0.01,
                      calibration_size=0.3, random_state=0).fit(train)
    tests = _ar1(300, 60, seed=1)           # fresh histories and their futures
    hist, future = [v[:50] for v in tests], tests[:, 50:]
    lo, hi = f.predict_interval(5, coverage=0.9, y=hist, method=method, random_state=0)
    inside = (np.stack(lo) <= future[:, :5]) & (future[:, :5] <= np.stack(hi))
    coverage = inside.mean(axis=0)
    assert np.all((coverage > 0.84) & (coverage < 0.96)), coverage
    width1 = np.mean(np.stack(hi)[:, 0] - np.stack(lo)[:, 0])
    assert 2 * 1.645 * 0.8 < width1 < 2 * 1.645 * 1.3    # the noise sd is 1


def test_interval_errors_name_the_limit():
    f = RNNForecaster(window_length=6, max_iter=2, calibration_size=8,
                      random_state=0).fit(_seasonal(60))
    assert len(f.calibration_errors_) == 8
    with pytest.raises(ValueError, match="calibrated up to horizon 8"):
        f.predict_interval(9)
    with pytest.raises(ValueError, match="too few for coverage=0.99"):
        f.predict_interval(8, coverage=0.99)
    with pytest.raises(ValueError, match="coverage must be in"):
        f.predict_interval(3, coverage=1.5)
    with pytest.raises(ValueError, match="method must be"):
        f.predict_interval(3, method="bootstrap")
    lo, hi = f.predict_interval(12, method="simulate", n_paths=50, random_state=0)
    assert lo.shape == hi.shape == (12,) and np.all(lo < hi)
    g = RNNForecaster(window_length=6, max_iter=2, calibration_size=None).fit(_seasonal(60))
    with pytest.raises(ValueError, match="calibrated up to horizon 0"):
        g.predict_interval(1)


def test_pandas_in_pandas_out():
    pd = pytest.importorskip("pandas")
    idx = pd.date_range("2001-01-01", periods=80, freq="W-SUN")
    y = pd.Series(_seasonal(80), index=idx, name="sales")
    f = RNNForecaster(window_length=8, max_iter=2, random_state=0).fit(y)
    p = f.predict(5)
    assert isinstance(p, pd.Series) and p.name == "sales"
    assert list(p.index) == list(pd.date_range(idx[-1], periods=6, freq="W-SUN")[1:])
    lo, hi = f.predict_interval(5)
    assert lo.name == "sales_lower" and hi.index.equals(p.index)
    df = pd.DataFrame({"a": _seasonal(80), "b": _seasonal(80, seed=3)},
                      index=pd.RangeIndex(100, 180))
    pf = RNNForecaster(window_length=8, max_iter=2, random_state=0).fit(df).predict(3)
    assert isinstance(pf, pd.DataFrame) and list(pf.columns) == ["a", "b"]
    assert list(pf.index) == [180, 181, 182]
    # a history given at predict time carries its own index
    p2 = f.predict(2, y=y.iloc[:60])
    assert p2.index[0] == idx[60]
    with pytest.raises(ValueError, match="without a frequency"):
        RNNForecaster(window_length=8, max_iter=1).fit(
            pd.Series(_seasonal(30), index=pd.DatetimeIndex(
                np.datetime64("2000-01-01") + np.sort(np.random.default_rng(0).choice(
                    300, 30, replace=False)).astype("timedelta64[D]"))))


def test_many_series_of_different_lengths_one_global_model():
    ys = [_seasonal(T, seed=i) * (i + 1) for i, T in enumerate([50, 80, 65])]
    f = RNNForecaster(window_length=8, max_iter=3, random_state=0).fit(ys)
    assert f.n_series_ == 3
    out = f.predict(4)
    assert isinstance(out, list) and [o.shape for o in out] == [(4,)] * 3
    # each series forecast together equals each forecast alone (parallel streams)
    for i, y in enumerate(ys):
        np.testing.assert_allclose(f.predict(4, y=y), out[i], rtol=1e-5, atol=1e-6)
    lo, hi = f.predict_interval(4)
    assert all(np.all(a < b) for a, b in zip(lo, hi))


def test_backtest_matches_a_hand_computed_rolling_origin_evaluation():
    y = _seasonal(120)
    f = RNNForecaster(window_length=12, max_iter=3, seasonal_period=12,
                      calibration_size=None, random_state=0)
    res = f.backtest(y, steps=4, initial_window=90, stride=5)
    origins = list(range(90, 117, 5))
    assert res["n_origins"] == len(origins)
    fitted = clone(f).fit(y[:90])
    errors = np.array([y[o:o + 4] - fitted.predict(4, y=y[:o]) for o in origins])
    scale = np.mean(np.abs(y[12:90] - y[:78]))
    np.testing.assert_allclose(res["mae"], np.abs(errors).mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(res["rmse"], np.sqrt((errors ** 2).mean(axis=0)), rtol=1e-9)
    np.testing.assert_allclose(res["mase"], np.abs(errors).mean(axis=0) / scale, rtol=1e-9)
    preds = y[np.add.outer(origins, range(4))] - errors
    smape = 200 * np.abs(errors) / (np.abs(y[np.add.outer(origins, range(4))]) + np.abs(preds))
    np.testing.assert_allclose(res["smape"], smape.mean(axis=0), rtol=1e-9)
    refit = f.backtest(y, steps=2, initial_window=100, stride=10, refit=True)
    assert refit["n_origins"] == 2 and np.all(np.isfinite(refit["mase"]))
    with pytest.raises(ValueError, match="no origin leaves"):
        f.backtest(y, steps=30, initial_window=100)


def test_estimator_api_and_model_files(tmp_path):
    f = RNNForecaster(window_length=6, hidden_size=4, max_iter=2, seasonal_period=3,
                      difference=1, random_state=0)
    assert clone(f).get_params() == f.get_params()
    f.set_params(cell="lstm")
    assert f.cell == "lstm"
    rng = np.random.default_rng(0)
    ys = [_seasonal(50), _seasonal(70, seed=1)]
    Xs = [rng.normal(size=(50, 2)), rng.normal(size=(70, 2))]
    f.fit(ys, Xs)
    Xf = [rng.normal(size=(5, 2)), rng.normal(size=(5, 2))]
    f.save(tmp_path / "f.crnn")
    g = crnn.load(tmp_path / "f.crnn")
    assert type(g) is _RNNForecaster and g.get_params() == f.get_params()
    for a, b in zip(g.predict(5, X=Xf), f.predict(5, X=Xf)):
        assert np.array_equal(a, b)
    for a, b in zip(g.predict_interval(5, X=Xf)[1], f.predict_interval(5, X=Xf)[1]):
        assert np.array_equal(a, b)
    with pytest.raises(crnn.ModelFileError, match="RNNForecaster, not RNNRegressor"):
        crnn.RNNRegressor.load(tmp_path / "f.crnn")


def test_a_tampered_forecaster_file_is_refused(tmp_path):
    import hashlib
    import io
    import json
    import zipfile
    f = RNNForecaster(window_length=6, max_iter=1, random_state=0).fit(_seasonal(40))
    f.save(tmp_path / "f.crnn")
    with zipfile.ZipFile(tmp_path / "f.crnn") as zf:
        man = json.loads(zf.read("model.json"))
        data = {n: zf.read(n) for n in zf.namelist() if n != "model.json"}
    name = man["attributes"]["_history"][0]["file"]
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 1)))
    data[name] = buf.getvalue()
    man["members"][name] = hashlib.sha256(data[name]).hexdigest()
    with zipfile.ZipFile(tmp_path / "bad.crnn", "w") as zf:
        zf.writestr("model.json", json.dumps(man))
        for n, b in data.items():
            zf.writestr(n, b)
    with pytest.raises(crnn.ModelFileError, match="_history"):
        crnn.load(tmp_path / "bad.crnn")


def test_bad_input_gets_a_clear_error():
    y = _seasonal(60)
    f = RNNForecaster(window_length=10, max_iter=1, random_state=0)
    with pytest.raises(ValueError, match="has 8 observations; window_length=10"):
        f.fit(y[:8])
    bad = y.copy()
    bad[5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        f.fit(bad)
    f.fit(y, np.ones((60, 1)))
    for steps in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="steps must be a positive integer"):
            f.predict(steps, X=np.ones((3, 1)))
    with pytest.raises(ValueError, match="X has 4 rows; expected 5"):
        f.predict(5, X=np.ones((4, 1)))
    with pytest.raises(ValueError, match="fitted with 1 covariate"):
        f.predict(5)
    with pytest.raises(ValueError, match=r"X has 20 rows; expected 25 history rows \+ 5 forecast rows"):
        f.predict(5, y=y[:25], X=np.ones((20, 1)))
    with pytest.raises(ValueError, match="has 5 observations; a forecast needs at least 10"):
        f.predict(2, y=y[:5], X=np.ones((7, 1)))
    with pytest.raises(ValueError, match=r"y has 2 column\(s\); the model was fitted on 1"):
        f.predict(2, y=np.ones((30, 2)), X=np.ones((32, 1)))
    with pytest.raises(ValueError, match="X has 59 rows; expected 60"):
        RNNForecaster(window_length=5, max_iter=1).fit(y, np.ones((59, 1)))
    for params, match in [({"window_length": 0}, "window_length"), ({"scale": "minmax"}, "scale"),
                          ({"calibration_size": 1.5}, "calibration_size"),
                          ({"seasonal_period": 0}, "seasonal_period"),
                          ({"difference": -1}, "difference"), ({"cell": "tcn"}, "cell")]:
        with pytest.raises(ValueError, match=match):
            RNNForecaster(**params).fit(y)
    with pytest.raises(Exception, match="not fitted"):
        RNNForecaster().predict(3)
    plain = RNNForecaster(window_length=5, max_iter=1).fit(y)
    with pytest.raises(ValueError, match="fitted without covariates"):
        plain.predict(3, X=np.ones((3, 1)))


def _walks():
    rng = np.random.default_rng(0)
    white = rng.normal(size=300)
    return white, white.cumsum(), white.cumsum().cumsum()


def test_the_kpss_statistic_matches_statsmodels():
    stats = pytest.importorskip("statsmodels.tsa.stattools")
    from crnn._forecasting.forecaster import kpss_statistic
    for y in _walks():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            want = stats.kpss(y, regression="c", nlags=int(4 * (len(y) / 100) ** 0.25))[0]
        assert kpss_statistic(y) == pytest.approx(want, rel=1e-10)


def test_auto_differencing_follows_the_kpss_test():
    from crnn._forecasting.forecaster import auto_difference, kpss_statistic
    white, walk, twice = _walks()
    # the statistic on known cases: small for white noise, large for a walk
    assert kpss_statistic(white) < 0.463 < kpss_statistic(walk)
    assert [auto_difference([v[:, None]], 0) for v in (white, walk, twice)] == [0, 1, 2]
    # a seasonal difference first: a seasonal pattern on white noise needs none
    t = np.arange(300)
    assert auto_difference([(np.sin(2 * np.pi * t / 12) * 5 + white)[:, None]], 12) == 0
    f = RNNForecaster(window_length=6, difference="auto", max_iter=1).fit(walk)
    assert f.difference_ == 1 and f.difference == "auto"
    with pytest.raises(ValueError, match="'difference'.*or 'auto'"):
        RNNForecaster(difference="yes").fit(walk)


def test_a_failed_refit_leaves_the_fitted_forecaster_unchanged():
    """The new data's scalers must never be kept with the old network."""
    f = RNNForecaster(window_length=6, max_iter=2, random_state=0).fit(_seasonal(60))
    before = f.predict(5)
    big = _seasonal(80, seed=4) * 1000
    f.set_params(learning_rate_init=-1.0)          # refused only by the network
    with pytest.raises(ValueError, match="learning_rate_init"):
        f.fit(big)
    f.set_params(learning_rate_init=1e-3, window_length=500)
    with pytest.raises(ValueError, match="observations"):
        f.fit(big)
    np.testing.assert_array_equal(f.predict(5), before)


@pytest.mark.parametrize("scale", [1e-300, 1e-8, 1e8, 1e300])
def test_forecasts_are_scale_invariant_from_1e_300_to_1e300(scale):
    """The standard deviation must neither overflow (1e300 ** 2) nor be
    mistaken for a constant series (1e-300)."""
    base = np.sin(np.arange(80) / 3) + 0.05 * np.random.default_rng(0).normal(size=80)
    kw = dict(window_length=5, max_iter=20, difference=1, random_state=0)
    want = RNNForecaster(**kw).fit(base).predict(3)
    got = RNNForecaster(**kw).fit(base * scale).predict(3)
    np.testing.assert_allclose(got / scale, want, rtol=1e-6)


def test_values_that_overflow_when_differenced_are_refused():
    y = np.tile([1.7e308, -1.7e308], 40)
    RNNForecaster(window_length=5, max_iter=1).fit(y)        # as levels: fine
    with pytest.raises(ValueError, match="too large to difference and scale"):
        RNNForecaster(window_length=5, max_iter=1, difference=1).fit(y)

