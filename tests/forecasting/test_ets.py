"""The forecaster's exponential smoothing candidate (crnn._forecasting.ets over the
crnn._smoothing kernel), against plain loops written here."""
import io
import json
import warnings

import numpy as np
import pytest

import crnn
from crnn import RNNForecaster, _smoothing
from crnn._forecasting import baselines as B
from crnn._forecasting import ets as _ets
from forecast_helpers import rewrite_model_file


def _loop(x, l0, b0, s0, alpha, beta, gamma, phi):
    """The additive-error recursion, one step at a time: (sse, level,
    slope, seasonal terms by phase) after x."""
    lev, slo, sea = l0, b0, list(s0)
    m = len(sea)
    sse = 0.0
    for t, v in enumerate(x):
        j = t % m
        base = lev + phi * slo
        e = v - base - sea[j]
        sse += e * e
        lev = base + alpha * e
        slo = phi * slo + beta * e
        sea[j] += gamma * e
    return sse, lev, slo, sea


def test_the_grid_kernel_is_the_recursion_for_every_series_and_parameter_set():
    rng = np.random.default_rng(0)
    m = 5
    xs = [rng.normal(size=n).cumsum() for n in (1, 7, 23, 40)]
    init = rng.normal(size=(4, 2 + m))
    P = np.ascontiguousarray(rng.uniform(0, 1, size=(4, 13)))
    offs = np.concatenate([[0], np.cumsum([len(x) for x in xs])]).astype(np.intp)
    got = {t: _smoothing.sse_grid(np.concatenate(xs), offs, init, P, t) for t in (1, 2, 3)}
    for i, x in enumerate(xs):
        for g in range(P.shape[1]):
            want = _loop(x, init[i, 0], init[i, 1], init[i, 2:], *P[:, g])[0]
            assert got[1][i, g] == pytest.approx(want, rel=1e-12)
    # the threads share out the series, each with its own buffer: no effect
    np.testing.assert_array_equal(got[1], got[2])
    np.testing.assert_array_equal(got[1], got[3])


def test_the_path_kernel_keeps_every_state():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    init = rng.normal(size=2 + 4)
    L, Bs, Sh = _smoothing.path(x, init, 0.3, 0.1, 0.2, 0.9)
    for t in (0, 9, 29):
        _, lev, slo, sea = _loop(x[:t + 1], init[0], init[1], init[2:], 0.3, 0.1, 0.2, 0.9)
        assert (L[t], Bs[t], Sh[t]) == pytest.approx((lev, slo, sea[t % 4]), rel=1e-12)


@pytest.mark.parametrize("call", [
    lambda: _smoothing.sse_grid(np.ones(4), np.array([0, 2, 1], dtype=np.intp),
                                np.zeros((2, 3)), np.ones((4, 2))),     # decreasing
    lambda: _smoothing.sse_grid(np.ones(4), np.array([0, 2, 2], dtype=np.intp),
                                np.zeros((2, 3)), np.ones((4, 2))),     # an empty series
    lambda: _smoothing.sse_grid(np.ones(4), np.array([0, 5], dtype=np.intp),
                                np.zeros((1, 3)), np.ones((4, 2))),     # past the end
    lambda: _smoothing.sse_grid(np.ones(4), np.array([0, 4], dtype=np.intp),
                                np.zeros((1, 3)), np.ones((3, 2))),     # 3 parameter rows
    lambda: _smoothing.sse_grid(np.ones(4), np.array([0, 4], dtype=np.intp),
                                np.zeros((1, 2)), np.ones((4, 2))),     # no seasonal term
    lambda: _smoothing.path(np.ones(4), np.zeros(1), 0.5, 0.1, 0.1, 1.0),
])
def test_the_kernels_refuse_inconsistent_arrays(call):
    with pytest.raises(ValueError):
        call()


def _aicc(sse, n, k):
    return n * np.log(sse / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def test_the_criterion_picks_the_model_that_generated_the_series():
    rng = np.random.default_rng(2)
    n, m = 120, 12
    t = np.arange(n)
    level = 10 + rng.normal(scale=0.3, size=n)
    specs = _ets.fit([
        level,                                                          # a level
        level + 0.5 * t,                                                # a trend
        level + 3 * np.sin(2 * np.pi * t / m),                          # a season
        (100 + 2 * t) * (1 + 0.3 * np.sin(2 * np.pi * t / m))
        * np.exp(rng.normal(scale=0.01, size=n)),                       # multiplicative
    ], m)
    got = [tuple(bool(v) for v in sp[:3]) for sp in specs]              # log, trend, season
    assert got[0] == (False, False, False)
    assert got[1][1]
    assert got[2][2] and not got[2][1]
    assert got[3] == (True, True, True)


def test_the_chosen_parameters_and_model_minimise_the_criterion():
    """Every variant's best grid point, scored by AICc computed here (with
    the logarithm's Jacobian), against the model fit() returned."""
    rng = np.random.default_rng(3)
    n, m = 60, 4
    x = 50 + rng.normal(size=n).cumsum() + 4 * np.sin(2 * np.pi * np.arange(n) / m)
    spec = _ets.fit([x], m)[0]
    u = np.abs(x).max()
    best = None
    for log in (False, True):
        z = np.log(x / u) if log else x / u
        for trend, season in _ets._VARIANTS:
            init = _ets._initial(z, m, trend, season)
            grid = _ets._GRIDS[(trend, season)]
            sse = min(_loop(z, init[0], init[1], init[2:], *grid[:, g])[0]
                      for g in range(grid.shape[1]))
            k = 3 + 2 * trend + m * season
            aic = _aicc(sse, n, k) + (2 * z.sum() if log else 0.0)
            if best is None or aic < best[0] - 1e-9:
                best = (aic, log, trend, season)
    assert tuple(bool(v) for v in spec[:3]) == best[1:]
    assert spec[7] == u


@pytest.mark.parametrize("m, c", [(6, 10), (12, 5)])
def test_forecasts_and_rolling_forecasts_are_the_recursion_continued(m, c):
    rng = np.random.default_rng(4)
    n = 80
    t = np.arange(n)
    y = (20 + 0.2 * t + 2 * np.sin(2 * np.pi * t / m) + rng.normal(scale=0.3, size=n))
    spec = _ets.fit([y], m)[0]
    log, trend, season, alpha, beta, gamma, phi, u = spec[:8]
    assert not log
    _, lev, slo, sea = _loop(y / u, spec[8], spec[9], spec[10:], alpha, beta, gamma, phi)
    h = np.arange(1, 15)
    want = u * (lev + np.cumsum(phi ** h) * slo + np.array(sea)[(n + h - 1) % m])
    st = _ets.state(y[:, None], m)
    np.testing.assert_allclose(_ets.forecast(st, 14, m)[:, 0], want, rtol=1e-10)
    np.testing.assert_allclose(B.forecast("ets", np.zeros(0), st, 14, m)[:, 0], want,
                               rtol=1e-10)
    # rolling: the models chosen on the head, the filter continued over the
    # tail, a forecast from every origin of the tail (NaN past the end)
    f = B.rolling_tails("ets", [y[:, None]], [c], m)[0]
    head = _ets.fit([y[:n - c]], m)[0]
    for r in (0, c // 2, c - 1):
        o = n - c + r
        _, lev, slo, sea = _loop(y[:o] / head[7], head[8], head[9], head[10:], *head[3:7])
        hh = np.arange(1, c - r + 1)
        want = head[7] * (lev + np.cumsum(head[6] ** hh) * slo
                          + np.array(sea)[(o + hh - 1) % m])
        np.testing.assert_allclose(f[r, :c - r, 0], want, rtol=1e-10)
        assert np.all(np.isnan(f[r, c - r:, 0]))


def test_a_multiplicative_model_forecasts_on_the_data_scale():
    t = np.arange(96)
    y = (100 * 1.01 ** t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12))
    st = _ets.state(y[:, None], 12)
    assert st[0, 0] == 1.0                                    # the logarithm
    f = _ets.forecast(st, 12, 12)[:, 0]
    want = (100 * 1.01 ** (96 + np.arange(12))) * (1 + 0.3 * np.sin(
        2 * np.pi * (96 + np.arange(12)) / 12))
    np.testing.assert_allclose(f, want, rtol=0.03)


def test_each_column_and_series_gets_its_own_model():
    rng = np.random.default_rng(5)
    t = np.arange(70)
    a = 5 + rng.normal(scale=0.2, size=70)
    b = 3 * np.sin(2 * np.pi * t / 7) + rng.normal(scale=0.2, size=70)
    st = _ets.states([np.stack([a, b], axis=1), b[:, None]], 7)
    assert st[0].shape == (_ets.STATE_ROWS + 7, 2) and st[1].shape == (_ets.STATE_ROWS + 7, 1)
    assert np.ptp(st[0][8:, 0]) == 0 and np.ptp(st[0][8:, 1]) > 1    # no season / a season
    np.testing.assert_array_equal(st[0][:, 1], st[1][:, 0])          # the same column


def test_a_head_is_not_given_a_logarithm_its_tail_cannot_take():
    t = np.arange(120)
    y = 10 * np.exp(0.02 * t + 0.3 * np.sin(2 * np.pi * t / 12))
    assert _ets.fit([y[:96]], 12)[0][0] == 1.0           # positive: the logarithm
    y[-5] = 0.0
    f = B.rolling_tails("ets", [y[:, None]], [24], 12)[0]
    valid = np.arange(24)[:, None] + np.arange(24)[None, :] < 24
    assert np.all(np.isfinite(f[valid]))
    # so one zero in one series' tail does not rule the smoothing out of a fit
    rng = np.random.default_rng(1)
    ys = [10 * np.exp(0.02 * t + 0.3 * np.sin(2 * np.pi * t / 12)
                      + rng.normal(0, 0.05, 120)) for _ in range(4)]
    ys[3][-5] = 0.0
    fc = _quiet(RNNForecaster(max_iter=2, random_state=0, seasonal_period=12).fit, ys)
    score = {c["model"]: c["score"] for c in fc.config_["candidates"]}
    assert np.isfinite(score["ets"])


def test_a_two_point_history_is_forecast_near_its_last_value():
    for x in ([100.0, 0.0], [0.0, 100.0], [10.0, 20.0]):
        f = _ets.forecast(_ets.state(np.array(x)[:, None], 4), 3, 4)[:, 0]
        np.testing.assert_allclose(f, x[0] + 0.99 * (x[1] - x[0]), rtol=1e-12)


def test_short_constant_and_huge_series_forecast_finitely():
    for x in ([3.0, 4.0], [2.0] * 9, [0.0] * 30):
        st = _ets.state(np.array(x)[:, None], 4)
        f = _ets.forecast(st, 6, 4)
        assert np.all(np.isfinite(f))
        if np.ptp(x) == 0:
            np.testing.assert_allclose(f, x[0])
    big = 1.7e308 * (1 + 0.01 * np.sin(np.arange(40)))[:, None]
    f = _ets.forecast(_ets.state(big, 1), 3, 1)
    assert np.all(np.isfinite(f)) and np.all(f > 1e308)


def _quiet(fn, *a, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **kw)


@pytest.fixture(scope="module")
def ets_forecaster(tmp_path_factory):
    rng = np.random.default_rng(6)
    t = np.arange(96)
    y = 20 + 0.1 * t + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(scale=0.3, size=96)
    f = _quiet(RNNForecaster(max_iter=2, random_state=0).fit, y)
    assert f.config_["model"] == "ets"
    path = tmp_path_factory.mktemp("ets") / "f.crnn"
    f.save(path)
    return f, y, path


def test_the_forecaster_forecasts_with_the_chosen_smoothing(ets_forecaster):
    f, y, _ = ets_forecaster
    st = _ets.state(y[:, None], 12)
    np.testing.assert_allclose(f.predict(8), _ets.forecast(st, 8, 12)[:, 0], rtol=1e-12)
    # a history given to predict gets its own models, chosen on it
    np.testing.assert_array_equal(f.predict(8, y=y), f.predict(8))
    other = y[::-1].copy()
    np.testing.assert_allclose(f.predict(8, y=other),
                               _ets.forecast(_ets.state(other[:, None], 12), 8, 12)[:, 0],
                               rtol=1e-12)
    lo, hi = f.predict_interval(8, method="simulate", n_paths=200, random_state=0)
    assert np.all(lo < hi)


def test_an_ets_forecaster_file_forecasts_identically(ets_forecaster):
    f, y, path = ets_forecaster
    g = crnn.load(path)
    assert g.config_ == f.config_
    np.testing.assert_array_equal(g.predict(6), f.predict(6))
    np.testing.assert_array_equal(g.predict(6, y=y[:50]), f.predict(6, y=y[:50]))
    for method in ("conformal", "simulate"):
        for u, v in zip(f.predict_interval(6, method=method, random_state=0),
                        g.predict_interval(6, method=method, random_state=0)):
            np.testing.assert_array_equal(u, v)


def _tamper(path, out, row, value):
    """The file with one entry of the first series' smoothing state changed."""
    def edit(members):
        name = json.loads(members["model.json"])["attributes"]["_bstate"][0]["file"]
        arr = np.load(io.BytesIO(members[name]), allow_pickle=False).copy()
        arr[row, 0] = value
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        members[name] = buf.getvalue()
    rewrite_model_file(path, out, edit)


@pytest.mark.parametrize("row, value", [(0, 2.0), (1, 0.0), (1, -1.0), (2, 1.5), (3, -0.1),
                                        (4, 2.0), (5, 0.0), (5, 1.2), (6, np.nan)])
def test_a_tampered_smoothing_state_is_refused_at_load(ets_forecaster, tmp_path, row, value):
    _, _, path = ets_forecaster
    _tamper(path, tmp_path / "bad.crnn", row, value)
    with pytest.raises(crnn.ModelFileError):
        crnn.load(tmp_path / "bad.crnn")
