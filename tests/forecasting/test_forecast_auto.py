"""RNNForecaster's automatic configuration (issue 26): the baselines against
plain-loop references, the season read from the index or the data, the
choice on the validation tail and what config_ records, and the chosen
baseline through predict, intervals, new histories and model files."""
import json
import warnings

import numpy as np
import pytest

import crnn
from crnn import RNNForecaster
from crnn._forecasting import baselines as B
from forecast_helpers import rewrite_model_file

pd = pytest.importorskip("pandas")


def _quiet(f, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*a, **k)


# ---------------------------------------------------------------------------
# the baselines against references written as plain loops


def _holt_loop(x, alpha, beta, phi):
    """Damped Holt, one column, one step at a time."""
    q = min(len(x) - 1, 4)
    lev, b = x[0], (x[q] - x[0]) / q
    for t in range(1, len(x)):
        pred = lev + phi * b
        e = x[t] - pred
        lev = pred + alpha * e
        b = phi * b + beta * e
    return lev, b


def _indices_loop(x, m):
    """Classical multiplicative decomposition, one phase at a time."""
    n = len(x)
    w = [0.5] + [1.0] * (m - 1) + [0.5] if m % 2 == 0 else [1.0] * m
    half = (len(w) - 1) // 2
    sums, counts = np.zeros(m), np.zeros(m)
    for t in range(half, n - half):
        ma = sum(wj * x[t - half + j] for j, wj in enumerate(w)) / m
        sums[t % m] += x[t] / ma
        counts[t % m] += 1
    idx = sums / counts
    return idx / idx.mean()


def test_naive_seasonal_naive_and_drift_match_their_formulas():
    rng = np.random.default_rng(0)
    y = rng.normal(size=(40, 2)).cumsum(axis=0) + 50
    m, h = 7, 10
    for kind, want in [
        ("naive", np.repeat(y[-1:], h, axis=0)),
        ("seasonal_naive", np.stack([y[len(y) - m + (j % m)] for j in range(h)])),
        ("drift", y[-1] + np.arange(1, h + 1)[:, None] * (y[-1] - y[0]) / (len(y) - 1)),
    ]:
        st = B.state(kind, np.zeros(0), y, m)
        np.testing.assert_allclose(B.forecast(kind, np.zeros(0), st, h, m), want, rtol=1e-13)
        # the rolling forecasts from every origin equal the forecasts from the
        # state of each history
        origins = [20, 27, 33]
        got = B.rolling(kind, np.zeros(0), y, origins, h, m, 20)
        for r, o in enumerate(origins):
            st = B.state(kind, np.zeros(0), y[:o], m)
            np.testing.assert_allclose(got[r], B.forecast(kind, np.zeros(0), st, h, m),
                                       rtol=1e-13)


def test_the_damped_trend_matches_a_plain_loop_with_seasonal_indices():
    rng = np.random.default_rng(1)
    n, m = 96, 12
    t = np.arange(n)
    y = (100 + 0.5 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / m)) + rng.normal(size=n)
    params = np.array([0.3, 0.03, 0.9])
    st = B.state("damped", params, y[:, None], m)
    idx = _indices_loop(y, m)
    lev, b = _holt_loop(y / idx[t % m], *params)
    assert st[2, 0] == 1.0                          # multiplicative
    np.testing.assert_allclose(st[:2, 0], [lev, b], rtol=1e-10)
    np.testing.assert_allclose(st[3:, 0], idx[(n + np.arange(m)) % m], rtol=1e-10)
    h = np.arange(1, 16)
    want = (lev + b * np.cumsum(0.9 ** h)) * idx[(n + h - 1) % m]
    np.testing.assert_allclose(B.forecast("damped", params, st, 15, m)[:, 0], want,
                               rtol=1e-10)
    # from one origin with the indices of that head: the same as the state
    got = B.rolling("damped", params, y[:, None], [80], 15, m, 80)[0, :, 0]
    st80 = B.state("damped", params, y[:80, None], m)
    np.testing.assert_allclose(got, B.forecast("damped", params, st80, 15, m)[:, 0],
                               rtol=1e-10)


def test_the_damped_trend_is_additive_for_series_that_cross_zero():
    t = np.arange(60)
    y = (np.sin(2 * np.pi * t / 6) + 0.01 * t)[:, None]
    st = B.state("damped", B.fit_params("damped", [y], 6), y, 6)
    assert st[2, 0] == 0.0 and abs(st[3:, 0].sum()) < 1e-12


def test_the_grid_picks_the_parameters_with_the_least_one_step_error():
    rng = np.random.default_rng(2)
    ys = [rng.normal(size=80).cumsum()[:, None] for _ in range(2)]
    p = B.fit_params("damped", ys, 1)
    def sse(q):
        return sum(float(B._holt(y, *(np.array([[v]]) for v in q))[2].sum()
                         / B.scale(y)[0] ** 2) for y in ys)
    assert all(sse(p) <= sse(q) + 1e-9 for q in B._GRID)


def test_simulated_paths_with_no_noise_are_the_forecast():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(50, 1)).cumsum(axis=0) + 10
    for kind in B.KINDS:
        p = B.fit_params(kind, [y], 5)
        st = B.state(kind, p, y, 5)
        paths = B.simulate(kind, p, st, 8, 5, np.zeros((3, 8, 1)))
        np.testing.assert_allclose(paths, np.broadcast_to(B.forecast(kind, p, st, 8, 5),
                                                          (3, 8, 1)), rtol=1e-12)
    # a shock of 1 at the first step moves a random walk's path by 1 for good
    paths = B.simulate("naive", np.zeros(0), B.state("naive", None, y, 1), 4, 1,
                       np.array([[[1.0], [0], [0], [0]]]))
    np.testing.assert_allclose(paths[0, :, 0], y[-1, 0] + 1)


# ---------------------------------------------------------------------------
# the season length


@pytest.mark.parametrize("freq, m", [("MS", 12), ("ME", 12), ("QS-JAN", 4), ("QE-DEC", 4),
                                     ("W-SUN", 52), ("D", 7), ("B", 5), ("h", 24),
                                     ("2h", 12), ("30min", 48), ("15min", 96), ("YS-JAN", 1), ("7D", None),
                                     ("3ME", 4), ("5h", None), (None, None), ("", None)])
def test_the_season_of_a_frequency(freq, m):
    assert B.season_from_freq(freq) == m


def test_the_season_read_from_the_autocorrelation():
    rng = np.random.default_rng(4)
    t = np.arange(300)
    for period in (4, 7, 12, 24):
        y = 0.05 * t + np.sin(2 * np.pi * t / period) + 0.3 * rng.normal(size=300)
        assert B.season_from_acf(y) == period
    assert B.season_from_acf(rng.normal(size=300).cumsum()) == 1
    assert B.season_from_acf(rng.normal(size=300)) == 1
    assert B.season_from_acf(np.ones(50)) == 1
    assert B.season_from_acf(np.arange(5.0)) == 1


def test_the_forecaster_reads_the_season_from_the_index_before_the_data():
    rng = np.random.default_rng(5)
    y = pd.Series(rng.normal(size=60).cumsum(),
                  index=pd.date_range("2000-01", periods=60, freq="MS"))
    f = _quiet(RNNForecaster(max_iter=2, random_state=0).fit, y)
    assert f.config_["seasonal_period"] == 12
    f = _quiet(RNNForecaster(max_iter=2, random_state=0).fit, y.to_numpy())
    assert f.config_["seasonal_period"] == 1         # a random walk shows none
    f = _quiet(RNNForecaster(max_iter=2, seasonal_period=None, random_state=0).fit, y)
    assert f.config_["seasonal_period"] == 1


# ---------------------------------------------------------------------------
# the choice


def _names(config):
    return [(c["model"], c.get("difference"), c.get("seasonal_difference"))
            for c in config["candidates"]]


def test_every_open_candidate_is_scored_and_the_lowest_edged_score_wins():
    rng = np.random.default_rng(6)
    t = np.arange(120)
    y = 10 + 0.05 * t + np.sin(2 * np.pi * t / 12) + 0.2 * rng.normal(size=120)
    f = _quiet(RNNForecaster(max_iter=5, random_state=0).fit, y)
    c = f.config_
    assert c["selected"] and c["seasonal_period"] == 12
    assert _names(c) == [("naive", None, None), ("seasonal_naive", None, None),
                         ("drift", None, None), ("ets", None, None),
                         ("rnn", 0, 0), ("rnn", 1, 0), ("rnn", 0, 12), ("rnn", 1, 12)]
    # the others must beat the incumbent's score times the edge
    scores = [x["score"] * (B.INCUMBENT_EDGE if x["model"] == B.INCUMBENT else 1)
              for x in c["candidates"]]
    best = c["candidates"][int(np.argmin(scores))]
    assert c["model"] == best["model"]
    nets = [x for x in c["candidates"] if x["model"] == "rnn"]
    net = min(nets, key=lambda x: x["score"])
    assert (c["window_length"], c["difference"], c["seasonal_difference"]) == \
        (net["window_length"], net["difference"], net["seasonal_difference"])
    assert (f._W, f._d, f._s) == (net["window_length"], net["difference"],
                                  net["seasonal_difference"])
    assert c["window_length"] == 12                  # one season (at least 12)
    json.dumps(c)                                     # plain JSON


def test_explicit_parameters_close_their_part_of_the_choice():
    rng = np.random.default_rng(7)
    y = np.sin(np.arange(100) * 2 * np.pi / 12) + 0.1 * rng.normal(size=100)
    f = _quiet(RNNForecaster(max_iter=2, difference=1, random_state=0).fit, y)
    assert [n for n in _names(f.config_) if n[0] == "rnn"] == [("rnn", 1, 0), ("rnn", 1, 12)]
    f = _quiet(RNNForecaster(max_iter=2, seasonal_period=None, baselines=False,
                             window_length=9, random_state=0).fit, y)
    assert _names(f.config_) == [("rnn", 0, 0), ("rnn", 1, 0)]
    assert f.config_["model"] == "rnn" and f.config_["window_length"] == 9
    f = _quiet(RNNForecaster(max_iter=2, seasonal_period=6, difference=0, baselines=False,
                             random_state=0).fit, y)
    assert _names(f.config_) == [("rnn", 0, 6)]


def test_a_repeating_pattern_is_forecast_exactly():
    pattern = np.array([3.0, 5, 4, 8, 1, 2, 7])
    y = np.tile(pattern, 12)
    f = _quiet(RNNForecaster(max_iter=3, random_state=0).fit, y)
    # the seasonal naive and the smoothing's additive season both repeat
    # it exactly: a tie, which the incumbent wins
    assert f.config_["model"] == "ets" and f.config_["seasonal_period"] == 7
    score = {c["model"]: c["score"] for c in f.config_["candidates"]}
    assert score["seasonal_naive"] == 0.0 and score["ets"] == 0.0
    np.testing.assert_array_equal(f.predict(10), np.tile(pattern, 2)[:10])
    lo, hi = f.predict_interval(5)                   # no error on the tail: no width
    np.testing.assert_array_equal(lo, hi)
    lo, hi = f.predict_interval(5, method="simulate", n_paths=20, random_state=0)
    np.testing.assert_array_equal(lo, f.predict(5))
    # a new history continues its own pattern
    other = np.tile(pattern[::-1], 3)
    np.testing.assert_allclose(f.predict(7, y=other), pattern[::-1], rtol=1e-12)


def test_a_straight_line_is_forecast_by_the_drift():
    y = 2.0 + 0.5 * np.arange(50)
    f = _quiet(RNNForecaster(max_iter=3, random_state=0).fit, y)
    assert f.config_["model"] == "drift"
    np.testing.assert_allclose(f.predict(4), 2.0 + 0.5 * np.arange(50, 54), rtol=1e-12)


def test_the_naive_score_is_its_mase_on_the_tail():
    """Recompute the naive candidate's score by hand: forecasts from each
    origin of the tail, the first max(m, 6) horizons, over the head's
    seasonal-naive MAE."""
    rng = np.random.default_rng(8)
    y = rng.normal(size=60).cumsum()
    f = _quiet(RNNForecaster(max_iter=2, calibration_size=10, random_state=0).fit, y)
    m = f.config_["seasonal_period"]
    assert m == 1
    head = y[:50]
    scale = np.mean(np.abs(np.diff(head)))
    errs = [abs(y[o + h] - y[o - 1]) / scale for o in range(50, 60)
            for h in range(min(6, 60 - o))]
    got = next(c["score"] for c in f.config_["candidates"] if c["model"] == "naive")
    assert got == pytest.approx(np.mean(errs), rel=1e-12)


def test_without_a_tail_the_rules_decide():
    rng = np.random.default_rng(9)
    walk = rng.normal(size=80).cumsum()
    f = _quiet(RNNForecaster(max_iter=2, calibration_size=None, random_state=0).fit, walk)
    assert not f.config_["selected"] and f.config_["candidates"] == []
    assert f.config_["model"] == "rnn" and f.config_["difference"] == 1     # KPSS
    assert f.calibration_errors_ == []


def test_short_series_fall_back_instead_of_failing():
    y = np.array([5.0, 6, 7, 6, 8, 9, 8, 10, 11, 10])
    f = _quiet(RNNForecaster(max_iter=2, random_state=0).fit, y)
    assert f.config_["window_length"] >= 1
    assert np.all(np.isfinite(f.predict(3)))


def test_one_choice_for_every_series_of_a_global_fit():
    rng = np.random.default_rng(10)
    ys = [np.tile(rng.normal(size=5), 15) * s for s in (1.0, 10.0, 100.0)]
    f = _quiet(RNNForecaster(max_iter=2, random_state=0).fit, ys)
    assert f.config_["model"] == "seasonal_naive"
    for got, y in zip(f.predict(5), ys):
        np.testing.assert_allclose(got, y[-5:], rtol=1e-12)
    res = _quiet(f.backtest, ys, steps=3, initial_window=50, stride=10)
    assert res["mae"].max() < 1e-9


# ---------------------------------------------------------------------------
# model files


@pytest.fixture(scope="module")
def damped(tmp_path_factory):
    rng = np.random.default_rng(11)
    t = np.arange(72)
    y = (50 + t) * (1 + 0.3 * np.sin(2 * np.pi * t / 12)) + rng.normal(size=72)
    f = _quiet(RNNForecaster(max_iter=2, seasonal_period=12, random_state=0).fit, y)
    # the baseline's branch of the file is what is tested here
    f.config_["model"] = "damped"
    f._bparams = B.fit_params("damped", [y[:, None]], 12)
    f._bstate = [B.state("damped", f._bparams, y[:, None], 12)]
    f._bscale = [B.scale(y[:, None])]
    path = tmp_path_factory.mktemp("auto") / "f.crnn"
    f.save(path)
    return f, y, path


def test_a_baseline_forecaster_file_forecasts_identically(damped):
    f, y, path = damped
    g = crnn.load(path)
    assert g.config_ == f.config_
    np.testing.assert_array_equal(g.predict(6), f.predict(6))
    np.testing.assert_array_equal(g.predict(6, y=y[:50]), f.predict(6, y=y[:50]))
    for method in ("conformal", "simulate"):
        a = f.predict_interval(6, method=method, random_state=0)
        b = g.predict_interval(6, method=method, random_state=0)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    # the forecast is the damped trend's, not the network's
    st = B.state("damped", f._bparams, y[:, None], 12)
    np.testing.assert_allclose(g.predict(6), B.forecast("damped", f._bparams, st, 6, 12)[:, 0])


def _edit(path, out, fn):
    """The file with its manifest changed by fn."""
    def edit(members):
        man = json.loads(members["model.json"])
        fn(man)
        members["model.json"] = json.dumps(man).encode()
    rewrite_model_file(path, out, edit)


class _config:
    """config_ in a manifest (a tagged dict: a list of [key, value] items)."""

    def __init__(self, man):
        self.items = man["attributes"]["config_"]["items"]

    def __getitem__(self, key):
        return next(v for k, v in self.items if k == key)

    def update(self, **kw):
        for item in self.items:
            if item[0] in kw:
                item[1] = kw[item[0]]

    def pop(self, key):
        self.items[:] = [item for item in self.items if item[0] != key]


_BAD_CANDIDATE = {"$": "dict", "items": [["model", "rnn"], ["score", 1.0]]}


@pytest.mark.parametrize("edit", [
    lambda man: _config(man).update(model="arima"),
    lambda man: _config(man).update(window_length=_config(man)["window_length"] + 1),
    lambda man: _config(man).update(seasonal_period=5),        # state rows disagree
    lambda man: _config(man).update(seasonal_period=0),
    lambda man: _config(man).update(selected="yes"),
    lambda man: _config(man).update(candidates=[_BAD_CANDIDATE]),
    lambda man: _config(man).pop("candidates"),
    lambda man: _config(man).update(model="rnn"),              # a baseline's state left
    lambda man: man["attributes"].update(_bstate=[]),
    lambda man: man["attributes"].update(_bscale=[]),
])
def test_a_tampered_choice_is_refused_at_load(damped, tmp_path, edit):
    _, _, path = damped
    _edit(path, tmp_path / "bad.crnn", edit)
    with pytest.raises(crnn.ModelFileError):
        crnn.load(tmp_path / "bad.crnn")


def test_a_file_from_before_the_automatic_choice_loads_as_a_network(tmp_path):
    y = np.sin(np.arange(60) / 3)
    f = _quiet(RNNForecaster(max_iter=2, window_length=6, difference=0, seasonal_period=None,
                             baselines=False, random_state=0).fit, y)
    f.save(tmp_path / "new.crnn")

    def old(man):
        for name in ("config_", "_bparams", "_bstate", "_bscale", "_members"):
            man["attributes"].pop(name)
        man["params"].pop("baselines")
        man["params"].pop("n_estimators")
        man["params"].update(window_length=6, difference=0, seasonal_period=None)
    _edit(tmp_path / "new.crnn", tmp_path / "old.crnn", old)
    g = crnn.load(tmp_path / "old.crnn")
    assert g.config_["model"] == "rnn" and g.config_["window_length"] == 6
    np.testing.assert_array_equal(g.predict(4), f.predict(4))


# ---------------------------------------------------------------------------
# ensembles


def _network_only(**kw):
    return RNNForecaster(window_length=8, difference=0, seasonal_period=None, baselines=False,
                         max_iter=3, hidden_size=6, dtype=np.float64, **kw)


def _single(f, net):
    """The forecaster with one of its networks alone."""
    g = crnn.RNNForecaster.__new__(crnn.RNNForecaster)
    g.__dict__.update(f.__dict__)
    g.model_, g._members = net, []
    return g


def test_the_ensemble_forecast_is_the_median_of_its_networks():
    y = np.sin(np.arange(80) / 4) + 0.1 * np.random.default_rng(12).normal(size=80)
    f = _quiet(_network_only(n_estimators=3, random_state=0).fit, y)
    assert len(f.estimators_) == 3 and f.estimators_[0] is f.model_
    thetas = [n._theta for n in f.estimators_]
    assert not np.array_equal(thetas[0], thetas[1]) and not np.array_equal(thetas[1],
                                                                           thetas[2])
    each = np.stack([_single(f, n).predict(6) for n in f.estimators_])
    np.testing.assert_array_equal(f.predict(6), np.median(each, axis=0))
    # the first network is the one-network forecaster's
    one = _quiet(_network_only(random_state=0).fit, y)
    np.testing.assert_array_equal(one.model_._theta, f.model_._theta)
    np.testing.assert_array_equal(one.predict(6), each[0])
    # the same seed, the same ensemble
    again = _quiet(_network_only(n_estimators=3, random_state=0).fit, y)
    np.testing.assert_array_equal(again.predict(6), f.predict(6))
    # paths are shared out among the networks: with no noise, path p is
    # network p % 3's forecast
    f._residuals = np.zeros_like(f._residuals)
    paths = f._forecast(None, None, 6, n_paths=6, rng=np.random.default_rng(0))[0][0]
    for p in range(6):
        np.testing.assert_allclose(paths[p, :, 0], each[p % 3], rtol=1e-12, atol=1e-12)


def test_no_extra_networks_when_a_baseline_forecasts():
    y = np.tile([1.0, 4, 2, 8, 5], 16)
    f = _quiet(RNNForecaster(max_iter=2, n_estimators=4, random_state=0).fit, y)
    assert f.config_["model"] == "ets" and len(f.estimators_) == 1


def test_an_ensemble_file_loads_and_forecasts_identically(tmp_path):
    y = np.sin(np.arange(70) / 4)
    f = _quiet(_network_only(n_estimators=2, random_state=1).fit, y)
    f.save(tmp_path / "e.crnn")
    g = crnn.load(tmp_path / "e.crnn")
    np.testing.assert_array_equal(g.predict(5), f.predict(5))
    _edit(tmp_path / "e.crnn", tmp_path / "bad.crnn",
          lambda man: man["attributes"].update(_members=[]))
    with pytest.raises(crnn.ModelFileError, match="_members"):
        crnn.load(tmp_path / "bad.crnn")


@pytest.mark.parametrize("value", [0, -1, 1001, 2.0, "3", None, True])
def test_n_estimators_is_checked(value):
    with pytest.raises(ValueError, match="n_estimators"):
        RNNForecaster(n_estimators=value).fit(np.arange(30.0))


def test_a_flat_autocorrelation_top_is_read_as_the_calendar_period():
    """Half-hourly solar-like data: r at lags 47 and 48 agree to 2 digits."""
    t = np.arange(300)
    day = np.clip(np.sin(2 * np.pi * (t % 48) / 48 - np.pi / 2 + 1.2), 0, None)
    y = day * (1 + 0.05 * np.random.default_rng(13).normal(size=300))
    assert B.season_from_acf(y) == 48


def test_a_baseline_is_only_chosen_when_every_series_is_long_enough_for_it():
    """A series too short for a validation tail used to get the seasonal
    naive chosen on the others: a 2-row state, an IndexError at predict, a
    file that did not load (issue 26, hostile probe)."""
    pattern = np.array([1.0, 4, 2, 8, 5])
    ys = [np.tile(pattern, 16), 2 * np.tile(pattern, 16), np.array([3.0, 7.0])]
    f = _quiet(RNNForecaster(max_iter=2, random_state=0).fit, ys)
    m = f.config_["seasonal_period"]
    assert m == 5 and f.config_["model"] != "seasonal_naive"
    assert "seasonal_naive" not in [c["model"] for c in f.config_["candidates"]]
    out = f.predict(7)
    assert all(np.all(np.isfinite(v)) for v in out)
    lo, hi = f.predict_interval(3)
    lo, hi = f.predict_interval(3, method="simulate", random_state=0)
    assert all(np.all(np.isfinite(v)) for v in lo + hi)


def test_values_near_the_largest_float_keep_a_finite_unit(tmp_path):
    y = 1.7e308 * np.tile([0.1, 0.4, 0.2, 0.8, 0.5], 10)
    assert np.isfinite(B.scale(y[:, None])).all()
    assert B.mean_abs_change(y[:, None], 1)[0] == pytest.approx(
        1.7e308 * np.mean(np.abs(np.diff(y / 1.7e308))), rel=1e-12)
    f = _quiet(RNNForecaster(max_iter=2, random_state=0).fit, y)
    lo, hi = f.predict_interval(2, coverage=0.8)
    assert np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))
    f.save(tmp_path / "big.crnn")
    np.testing.assert_array_equal(crnn.load(tmp_path / "big.crnn").predict(3), f.predict(3))


def test_differencing_noise_is_not_read_as_a_season():
    """Differences of noise have r_1 = -1/2: that dip is no season's trough
    (a saturating curve read as seasons of 2-7 in a third of the seeds)."""
    hits = 0
    for seed in range(60):
        e = np.random.default_rng(seed).standard_normal(72)
        t = np.arange(72.0)
        hits += B.season_from_acf(100 * (1 - np.exp(-t / 20)) + 0.5 * e) != 1
    assert hits <= 6
