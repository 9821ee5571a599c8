"""Forecasting benchmarks (issue 10): accuracy and speed of RNNForecaster.

Accuracy: a rolling-origin backtest on public series that statsmodels ships
offline (co2, sunspots, nile, elnino, macrodata realgdp), scored by MASE and
sMAPE averaged over horizons 1..steps, against the naive and seasonal-naive
forecasts and statsmodels' ETS and (S)ARIMA.  RNNForecaster is fitted once on
the initial window (refit=False) and forecasts from every later origin; ETS
and ARIMA are refitted at every origin (an advantage for them).

Speed: 1,000 series of length 200, 24 steps ahead, one global model:
fit time, forecast time, and the same recursion written with
torch.nn.GRUCell (batched over series, and one series at a time) and with
predict on a re-cut window per step.

    python benches/forecasting.py            # both (about 10 minutes on 2 cores)
    python benches/forecasting.py --accuracy
    python benches/forecasting.py --speed

Defaults (issue 26): ``--defaults`` scores ``RNNForecaster(random_state=0)``
as a new user would call it, on 24 public series of several frequencies,
lengths and kinds (statsmodels and aeon ship them offline) and 2 simulated
random walks standing in for prices, against the baselines users reach for:
naive, seasonal naive, drift, statsforecast's AutoETS, AutoARIMA and
AutoTheta, and the same network trained by PyTorch; also crnn's 5-network
ensemble and its network alone.  Rolling origin: 3 origins, each
forecasting one season ahead (5 steps for annual and non-seasonal series, 6
for the 36-point shampoo series), the last ending at the series' end;
every model refitted at every origin on the history before it, given as a
plain numpy array (crnn reads the season from the data); MASE scaled by the
in-sample seasonal-naive MAE of that history, and sMAPE.

    python benches/forecasting.py --defaults        # about 10 minutes on 2 cores
    python benches/forecasting.py --defaults --only airline lynx
    python benches/forecasting.py --defaults --plot docs/img/forecast_defaults.png
    python benches/forecasting.py --defaults --heldout   # 16 series never tuned on
    python benches/forecasting.py --defaults --unseen    # 13 more, never used to choose
    python benches/forecasting.py --coverage        # intervals on simulated processes
    python benches/forecasting.py --rules           # the choice rules compared
    python benches/forecasting.py --walks           # against the random walk on prices
    python benches/forecasting.py --global-cost     # the choice's price, 1,000 series

Needs statsmodels (accuracy), aeon and statsforecast (defaults) and
torch==2.13.0 (speed comparison).
"""
import argparse
import time
import warnings

import numpy as np

from crnn import RNNForecaster


# ---------------------------------------------------------------------------
# data


def datasets():
    """name -> (series, seasonal period, steps, initial window)."""
    import statsmodels.api as sm
    out = {}
    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    out["co2 (monthly)"] = (co2.to_numpy(), 12, 12, int(len(co2) * 0.8))
    sun = sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy()
    out["sunspots (yearly)"] = (sun, 11, 10, int(len(sun) * 0.7))
    nile = sm.datasets.nile.load_pandas().data["volume"].to_numpy()
    out["nile (yearly)"] = (nile, 1, 5, 70)
    el = sm.datasets.elnino.load_pandas().data.drop(columns="YEAR").to_numpy().ravel()
    out["elnino (monthly)"] = (el, 12, 12, int(len(el) * 0.75))
    gdp = np.log(sm.datasets.macrodata.load_pandas().data["realgdp"].to_numpy())
    out["log real GDP (quarterly)"] = (gdp, 4, 8, 150)
    return out


def origins(y, steps, initial, max_origins=20):
    last = len(y) - steps
    stride = max(1, (last - initial) // max_origins)
    return list(range(initial, last + 1, stride))


def scores(y, preds, origins_, steps, period, initial):
    """Mean MASE and sMAPE over origins and horizons."""
    train = y[:initial]
    scale = np.mean(np.abs(train[period:] - train[:-period]))
    truth = np.stack([y[o:o + steps] for o in origins_])
    e = truth - preds
    smape = 200 * np.abs(e) / (np.abs(truth) + np.abs(preds))
    return np.mean(np.abs(e)) / scale, np.mean(smape)


# ---------------------------------------------------------------------------
# baselines


def naive(y, os_, steps, period):
    return np.stack([np.repeat(y[o - 1], steps) for o in os_])


def seasonal_naive(y, os_, steps, period):
    return np.stack([y[o - period + (np.arange(steps) % period)] for o in os_])


def ets(y, os_, steps, period, trend):
    from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    out = []
    for o in os_:
        m = ETSModel(y[:o], error="add", trend="add" if trend else None,
                     damped_trend=bool(trend), seasonal="add" if period > 1 else None,
                     seasonal_periods=period if period > 1 else None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out.append(m.fit(disp=False).forecast(steps))
    return np.stack(out)


def arima(y, os_, steps, period, order, seasonal_order):
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    out = []
    for o in os_:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = SARIMAX(y[:o], order=order, seasonal_order=seasonal_order,
                        trend="c" if order[1] == 0 and seasonal_order[1] == 0 else "n")
            out.append(m.fit(disp=False).forecast(steps))
    return np.stack(out)


_ARIMA = {  # (order, seasonal order) per series
    "co2 (monthly)": ((1, 1, 1), (0, 1, 1, 12)),
    "sunspots (yearly)": ((3, 0, 1), (0, 0, 0, 0)),
    "nile (yearly)": ((1, 1, 1), (0, 0, 0, 0)),
    "elnino (monthly)": ((1, 0, 1), (0, 1, 1, 12)),
    "log real GDP (quarterly)": ((1, 1, 1), (0, 0, 0, 0)),
}
_TREND = {"co2 (monthly)": True, "log real GDP (quarterly)": True}   # ETS's damped trend


def rnn(y, os_, steps, period, initial, **params):
    f = RNNForecaster(random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f.fit(y[:initial])
    return np.stack(f.predict(steps, y=[y[:o] for o in os_]))


def accuracy():
    rows = []
    for name, (y, period, steps, initial) in datasets().items():
        os_ = origins(y, steps, initial)
        t0 = time.perf_counter()
        models = {
            "naive": naive(y, os_, steps, period),
            "seasonal naive": seasonal_naive(y, os_, steps, period),
            "ETS": ets(y, os_, steps, period, _TREND.get(name, False)),
            "ARIMA": arima(y, os_, steps, period, *_ARIMA[name]),
            "RNNForecaster()": rnn(y, os_, steps, period, initial),
            "RNNForecaster(seasonal_period)": rnn(
                y, os_, steps, period, initial,
                seasonal_period=period if period > 1 else None),
            "RNNForecaster(difference=auto)": rnn(y, os_, steps, period, initial,
                                                  difference="auto"),
            "RNNForecaster(auto, seasonal_period)": rnn(
                y, os_, steps, period, initial, difference="auto",
                seasonal_period=period if period > 1 else None),
        }
        print(f"\n{name}: {len(y)} points, period {period}, {steps} steps, "
              f"{len(os_)} origins from {initial} ({time.perf_counter() - t0:.0f} s)")
        print(f"  {'model':<38}{'MASE':>8}{'sMAPE %':>10}")
        for model, preds in models.items():
            mase, smape = scores(y, preds, os_, steps, period, initial)
            rows.append((name, model, mase, smape))
            print(f"  {model:<38}{mase:>8.3f}{smape:>10.2f}")
    print("\nmean over the series")
    print(f"  {'model':<38}{'MASE':>8}{'sMAPE %':>10}{'beats s-naive':>15}")
    for model in dict.fromkeys(r[1] for r in rows):
        sel = [r for r in rows if r[1] == model]
        wins = sum(r[2] < s_[2] for r in sel for s_ in rows
                   if s_[0] == r[0] and s_[1] == "seasonal naive")
        print(f"  {model:<38}{np.mean([r[2] for r in sel]):>8.3f}"
              f"{np.mean([r[3] for r in sel]):>10.2f}{f'{wins}/{len(sel)}':>15}")


# ---------------------------------------------------------------------------
# speed


def speed(n_series=1000, T=200, steps=24, window=24, hidden=32):
    rng = np.random.default_rng(0)
    t = np.arange(T)
    ys = [np.sin(2 * np.pi * (t + rng.integers(24)) / 24) * rng.uniform(1, 3)
          + 0.1 * rng.normal(size=T) for _ in range(n_series)]
    f = RNNForecaster(window_length=window, hidden_size=hidden, max_iter=5,
                      calibration_size=None, random_state=0)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f.fit(ys)
    fit_s = time.perf_counter() - t0
    n_windows = sum(len(y) - window for y in ys)

    def best(fn, repeat=5):
        fn()
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    ours = best(lambda: f.predict(steps))
    print(f"\n{n_series} series x {T} points, window {window}, GRU h={hidden}, {steps} steps")
    print(f"  fit, 5 epochs over {n_windows} windows: {fit_s:.2f} s "
          f"({fit_s / 5:.2f} s per epoch)")
    print(f"  RNNForecaster.predict({steps}), all series:      {1e3 * ours:8.2f} ms")

    # predict on a re-cut window per step (the recursion without the stepper)
    net, mu, sd = f.model_, f._mean, f._std
    z0 = np.stack([((y[-window:] - m[0]) / s[0]) for y, m, s in zip(ys, mu, sd)])[:, :, None]

    def recut():
        z = z0.astype(np.float32)
        for _ in range(steps):
            out = net.predict(z[:, -window:])
            z = np.concatenate([z, out[:, -1:, :]], axis=1)
        return z
    recut_s = best(recut, 3)
    print(f"  re-cut window + predict per step, batched:   {1e3 * recut_s:8.2f} ms "
          f"({recut_s / ours:.1f}x ours)")

    def recut_one(i):
        z = z0[i:i + 1].astype(np.float32)
        for _ in range(steps):
            out = net.predict(z[:, -window:])
            z = np.concatenate([z, out[:, -1:, :]], axis=1)
    few = 50
    per = best(lambda: [recut_one(i) for i in range(few)], 1) / few
    print(f"  re-cut window + predict per step, per series: {1e3 * per * n_series:8.2f} ms "
          f"({per * n_series / ours:.0f}x ours; timed on {few} series)")

    try:
        import torch
    except ImportError:
        print("  (torch not installed: no GRUCell comparison)")
        return
    torch.set_num_threads(max(1, torch.get_num_threads()))
    sdict = net.state_dict()
    cell = torch.nn.GRUCell(1, hidden)
    head = torch.nn.Linear(hidden, 1)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.from_numpy(sdict["rnn.weight_ih_l0"]))
        cell.weight_hh.copy_(torch.from_numpy(sdict["rnn.weight_hh_l0"]))
        cell.bias_ih.copy_(torch.from_numpy(sdict["rnn.bias_ih_l0"]))
        cell.bias_hh.copy_(torch.from_numpy(sdict["rnn.bias_hh_l0"]))
        head.weight.copy_(torch.from_numpy(sdict["head.weight"]))
        head.bias.copy_(torch.from_numpy(sdict["head.bias"]))
    zt = torch.from_numpy(z0.astype(np.float32))

    @torch.no_grad()
    def torch_batched(z):
        h = torch.zeros(z.shape[0], hidden)
        for t_ in range(window):
            h = cell(z[:, t_], h)
        out = [head(h)]
        for _ in range(steps - 1):
            h = cell(out[-1], h)
            out.append(head(h))
        return torch.cat(out, 1)
    tb = best(lambda: torch_batched(zt))
    got = torch_batched(zt).numpy()
    zf = np.stack([(np.asarray(p) - m[0]) / s[0] for p, m, s in zip(f.predict(steps), mu, sd)])
    print(f"  torch GRUCell loop, batched over series:     {1e3 * tb:8.2f} ms "
          f"({tb / ours:.1f}x ours; max |difference| {np.abs(got - zf).max():.1e})")
    one = best(lambda: [torch_batched(zt[i:i + 1]) for i in range(few)], 1) / few
    print(f"  torch GRUCell loop, one series at a time:    {1e3 * one * n_series:8.2f} ms "
          f"({one * n_series / ours:.0f}x ours; timed on {few} series)")


# ---------------------------------------------------------------------------
# defaults against the strongest baselines (issue 26)


def public_series():
    """name -> (series, season length, horizon, kind)."""
    import statsmodels.api as sm
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")         # aeon deprecates some loaders
        return _public_series(sm)


def _public_series(sm):
    import aeon.datasets as A
    out = {}
    out["airline"] = (A.load_airline(), 12, 12, "monthly")
    co2 = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean().interpolate()
    out["co2"] = (co2.to_numpy(), 12, 12, "monthly")
    el = sm.datasets.elnino.load_pandas().data.drop(columns="YEAR").to_numpy().ravel()
    out["elnino"] = (el, 12, 12, "monthly")
    out["shampoo"] = (A.load_shampoo_sales(), 12, 6, "monthly, short")
    out["lynx"] = (A.load_lynx(), 1, 5, "annual")
    out["nile"] = (sm.datasets.nile.load_pandas().data["volume"].to_numpy(), 1, 5, "annual")
    out["sunspots"] = (sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(), 1,
                       5, "annual")
    mac = sm.datasets.macrodata.load_pandas().data
    for col in ("realgdp", "realcons", "realinv", "cpi", "m1", "unemp", "tbilrate", "pop"):
        out[col] = (mac[col].to_numpy(), 4, 4, "quarterly")
    for name, row in zip(("us consumption", "us income", "us production", "us savings",
                          "us unemployment"), A.load_uschange()):
        out[name] = (row, 4, 4, "quarterly, growth rates")
    dan = sm.datasets.danish_data.load_pandas().data
    for col in ("lrm", "ibo"):
        out[f"danish {col}"] = (dan[col].to_numpy(), 4, 4, "quarterly, short")
    ii = sm.datasets.interest_inflation.load_pandas().data
    out["german inflation"] = (ii["Dp"].to_numpy(), 4, 4, "quarterly")
    out["solar"] = (A.load_solar(), 48, 48, "half-hourly")
    rng = np.random.default_rng(26)
    for j in range(2):
        out[f"random walk {j + 1}"] = (100 * np.exp(np.cumsum(0.01 * rng.standard_normal(
            500))), 1, 5, "daily prices (simulated)")
    return out


def _plot_defaults(names, mase, path):
    """Geometric-mean MASE per method, and crnn's MASE per series against
    each statistical model's (below the diagonal: crnn is better)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    geo = {k: float(np.exp(np.mean(np.log(np.maximum(v, 1e-12))))) for k, v in mase.items()}
    order = sorted(geo, key=geo.get)
    a.barh(order[::-1], [geo[k] for k in order[::-1]],
           color=["tab:red" if k.startswith("RNNForecaster") else "tab:gray"
                  for k in order[::-1]])
    a.set_xlabel(f"geometric-mean MASE over {len(names)} series (lower is better)")
    a.set_title("RNNForecaster at its defaults against the baselines")
    mine = np.array(mase["RNNForecaster()"])
    for k, marker in (("AutoETS", "o"), ("AutoARIMA", "s"), ("AutoTheta", "^"),
                      ("seasonal naive", "x")):
        if k in mase:
            b.scatter(mase[k], mine, marker=marker, label=k, alpha=0.75)
    lo, hi = 0.8 * min(min(v) for v in mase.values()), 1.2 * max(max(v) for v in mase.values())
    b.plot([lo, hi], [lo, hi], color="black", lw=0.8)
    b.set_xscale("log")
    b.set_yscale("log")
    b.set_xlabel("the baseline's MASE on a series")
    b.set_ylabel("RNNForecaster()'s MASE on that series")
    b.set_title("per series (below the line: crnn is better)")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"wrote {path}")


def heldout_series():
    """name -> (series, season length, horizon, kind): series the defaults
    were never tuned on (the window rule, the season detector's thresholds
    and the candidate set were chosen on public_series()): the other
    columns of the same public tables, and simulated seasonal processes."""
    import statsmodels.api as sm
    out = {}
    mac = sm.datasets.macrodata.load_pandas().data
    for col in ("realgovt", "realdpi", "infl", "realint"):
        out[col] = (mac[col].to_numpy(), 4, 4, "quarterly")
    dan = sm.datasets.danish_data.load_pandas().data
    for col in ("lry", "lpy", "ide"):
        out[f"danish {col}"] = (dan[col].to_numpy(), 4, 4, "quarterly, short")
    ii = sm.datasets.interest_inflation.load_pandas().data
    out["german interest rate"] = (ii["R"].to_numpy(), 4, 4, "quarterly")
    rng = np.random.default_rng(2026)
    for j in range(3):                              # multiplicative season, trend
        t = np.arange(180)
        level = 100 * np.exp(np.cumsum(0.004 + 0.01 * rng.standard_normal(180)))
        season = 1 + 0.2 * np.sin(2 * np.pi * (t + 3 * j) / 12)
        out[f"sim monthly {j + 1}"] = (level * season * (1 + 0.02 * rng.standard_normal(180)),
                                       12, 12, "monthly (simulated)")
    for j in range(3):                              # SARIMA(1,0,0)(0,1,0)_4 + drift
        y = np.zeros(160)
        e = rng.standard_normal(160)
        for t in range(5, 160):
            y[t] = y[t - 4] + 0.6 * (y[t - 1] - y[t - 5]) + 0.2 + e[t]
        out[f"sim quarterly {j + 1}"] = (y + 50, 4, 4, "quarterly (simulated)")
    for j in range(2):                              # daily data, weekly pattern
        t = np.arange(364)
        week = np.array([1.0, 1.1, 1.05, 1.0, 1.2, 0.6, 0.5])[t % 7]
        out[f"sim daily {j + 1}"] = ((200 + 0.1 * t + 5 * np.cumsum(
            0.2 * rng.standard_normal(364))) * week + 4 * rng.standard_normal(364),
            7, 7, "daily (simulated)")
    return out


def _pmdarima_data(name):
    """A series of pmdarima's datasets, read from the package's files
    without importing pmdarima (its compiled parts need numpy < 2): the
    loaders of its datasets/ folder hold the values as literals."""
    import importlib.util
    import os
    spec = importlib.util.find_spec("pmdarima")
    if spec is None:
        raise SystemExit("--unseen needs pmdarima's data files: pip install pmdarima "
                         "--no-deps")
    folder = os.path.join(os.path.dirname(spec.origin), "datasets")
    if name in ("dated", "msft"):
        import pandas as pd
        import tarfile
        with tarfile.open(os.path.join(folder, "data", f"{name}.tar.gz")) as tar:
            frame = pd.read_csv(tar.extractfile(f"{name}.csv"))
        return frame["y" if name == "dated" else "Close"].to_numpy(dtype=np.float64)
    with open(os.path.join(folder, f"{name}.py")) as fh:
        src = fh.read().replace("from ..compat import DTYPE", "DTYPE = float")
    scope = {"__name__": f"pmdarima_data_{name}"}
    exec(compile(src, f"pmdarima/datasets/{name}.py", "exec"), scope)
    return np.asarray(scope[f"load_{name}"](), dtype=np.float64)


def unseen_series():
    """name -> (series, season length, horizon, kind): a third set, fixed
    before its first run and never used to choose anything (issue 26's
    check of the incumbent rule): pmdarima's datasets (the R forecast
    package's classics), aeon's PBS pharmaceutical sales, and the fertility
    rates of four countries from statsmodels."""
    import aeon.datasets as A
    import statsmodels.api as sm
    out = {}
    out["wineind"] = (_pmdarima_data("wineind"), 12, 12, "monthly")
    for name in ("woolyrnq", "ausbeer", "austres"):
        v = _pmdarima_data(name)
        out[name] = (v[np.isfinite(v)], 4, 4, "quarterly")     # ausbeer ends in a NaN
    out["heartrate"] = (_pmdarima_data("heartrate"), 1, 5, "every 0.5 s")
    out["taylor"] = (_pmdarima_data("taylor")[-1344:], 48, 48, "half-hourly, 4 weeks")
    out["dated"] = (_pmdarima_data("dated"), 7, 7, "daily")
    out["msft"] = (_pmdarima_data("msft")[-750:], 1, 5, "daily prices, 3 years")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pbs = A.load_PBS_dataset()
    out["PBS"] = (np.asarray(pbs, dtype=np.float64), 12, 12, "monthly")
    fert = sm.datasets.fertility.load_pandas().data.set_index("Country Name")
    for country in ("United States", "India", "Brazil", "Japan"):
        v = fert.loc[country].iloc[3:].astype(float).dropna().to_numpy()
        out[f"fertility {country}"] = (v, 1, 5, "annual")
    return out


def _statsforecast(model, y, h, m):
    import pandas as pd
    from statsforecast import StatsForecast
    df = pd.DataFrame({"unique_id": 0, "ds": np.arange(len(y)), "y": y.astype(float)})
    sf = StatsForecast(models=[model], freq=1, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=df, h=h)
    return fc.iloc[:, -1].to_numpy()


def defaults(only=None, keep=None, plot=None, heldout=False, unseen=False):
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta
    from crnn._forecasting import baselines as _baselines

    def crnn_default(y, h, m, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = RNNForecaster(random_state=0, **kw).fit(y)
        crnn_default.configs.append(f.config_["model"] if f.config_["model"] != "rnn" else
                                    "rnn d={difference} D={seasonal_difference}".format(
                                        **f.config_))
        return np.asarray(f.predict(h))
    crnn_default.configs = []

    def torch_same(y, h, m):
        """The network crnn chose without baselines (its window and
        differences), trained by PyTorch as crnn trains it: a GRU of 32 units
        and a linear head on every step of every window, Adam at 1e-3,
        batches of 32, 200 epochs, gradient norm clipped at 5; forecast
        recursively after a warm-up over the last window."""
        import torch
        from crnn._forecasting.forecaster import difference, undifference
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = RNNForecaster(random_state=0, baselines=False).fit(y).config_
        W, d, D = c["window_length"], c["difference"], c["seasonal_difference"]
        y2 = y[:, None]
        z = difference(y2, d, D)[:, 0]
        mu, sd = z.mean(), max(z.std(), 1e-12)
        z = (z - mu) / sd
        torch.manual_seed(0)
        gru, head = torch.nn.GRU(1, 32, batch_first=True), torch.nn.Linear(32, 1)
        params = list(gru.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        win = np.lib.stride_tricks.sliding_window_view(z, W + 1)
        xs = torch.tensor(win[:, :-1, None], dtype=torch.float32)
        ys = torch.tensor(win[:, 1:, None], dtype=torch.float32)
        g = torch.Generator().manual_seed(0)
        for _ in range(200):
            for idx in torch.randperm(len(xs), generator=g).split(32):
                opt.zero_grad()
                out, _ = gru(xs[idx])
                loss = torch.mean((head(out) - ys[idx]) ** 2)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
        with torch.no_grad():
            out, state = gru(torch.tensor(z[None, -W:, None], dtype=torch.float32))
            preds = [head(out[:, -1])]
            for _ in range(h - 1):
                out, state = gru(preds[-1][:, None], state)
                preds.append(head(out[:, -1]))
        zf = torch.cat(preds, 1).numpy()[0].astype(np.float64) * sd + mu
        return undifference(zf[:, None], y2[-(W + d + D):], d, D)[:, 0]

    def base(kind):
        def run(y, h, m):
            p = _baselines.fit_params(kind, [y[:, None]], m)
            st = _baselines.state(kind, p, y[:, None], m)
            return _baselines.forecast(kind, p, st, h, m)[:, 0]
        return run

    methods = {
        "RNNForecaster()": crnn_default,
        "RNNForecaster(n_estimators=5)": lambda y, h, m: crnn_default(y, h, m,
                                                                       n_estimators=5),
        "RNNForecaster(baselines=False)": lambda y, h, m: crnn_default(y, h, m,
                                                                        baselines=False),
        "torch, same network": torch_same,
        "naive": base("naive"),
        "seasonal naive": lambda y, h, m: base("seasonal_naive")(y, h, max(m, 1)),
        "drift": base("drift"),
        "crnn's exp. smoothing": base("ets"),
        "AutoETS": lambda y, h, m: _statsforecast(AutoETS(season_length=m), y, h, m),
        "AutoARIMA": lambda y, h, m: _statsforecast(AutoARIMA(season_length=m), y, h, m),
        "AutoTheta": lambda y, h, m: _statsforecast(AutoTheta(season_length=m), y, h, m),
    }
    if keep:
        methods = {k: v for k, v in methods.items() if k in keep}
    mase = {k: [] for k in methods}
    smape = {k: [] for k in methods}
    times = {k: 0.0 for k in methods}
    data = heldout_series() if heldout else unseen_series() if unseen else public_series()
    names = [n for n in data if not only or n in only]
    print(f"{'series':<20}{'n':>5}{'m':>4}{'h':>4}  " +
          "".join(f"{k[:14]:>15}" for k in methods) + "  crnn's choice")
    for name in names:
        y, m, h, kind = data[name]
        y = np.asarray(y, dtype=np.float64)
        n = len(y)
        origins_ = [n - 3 * h, n - 2 * h, n - h]
        row = {}
        crnn_default.configs.clear()
        for k, fn in methods.items():
            e_abs, e_s = [], []
            t0 = time.perf_counter()
            for o in origins_:
                train, truth = y[:o], y[o:o + h]
                pred = np.asarray(fn(train, h, m), dtype=np.float64)
                lag = m if o > m else 1
                sc = np.mean(np.abs(train[lag:] - train[:-lag]))
                e_abs.append(np.mean(np.abs(truth - pred)) / (sc if sc > 0 else 1.0))
                with np.errstate(invalid="ignore", divide="ignore"):
                    a = 200 * np.abs(truth - pred) / (np.abs(truth) + np.abs(pred))
                e_s.append(np.mean(np.where(np.isfinite(a), a, 0.0)))
            times[k] += time.perf_counter() - t0
            row[k] = np.mean(e_abs)
            mase[k].append(row[k])
            smape[k].append(np.mean(e_s))
        choice = ", ".join(dict.fromkeys(crnn_default.configs[:3]))
        print(f"{name:<20}{n:>5}{m:>4}{h:>4}  " + "".join(f"{row[k]:>15.3f}" for k in methods)
              + f"  {choice}", flush=True)
    if plot:
        _plot_defaults(names, mase, plot)
    # a series some method forecasts exactly (MASE 0: PBS's last three
    # years are zeros, which the naive repeats) has no logarithm: it is left
    # out of the geometric means and named
    exact = [j for j in range(len(names)) if any(mase[k][j] == 0 for k in methods)]
    keep_ = [j for j in range(len(names)) if j not in exact]
    print("\nover the series: geometric-mean MASE, mean sMAPE %, series where the model "
          "beats seasonal naive, seconds"
          + (f" (geometric means without {', '.join(names[j] for j in exact)}, where a "
             "method's MASE is 0)" if exact else ""))
    sn = np.array(mase["seasonal naive"]) if "seasonal naive" in mase else None
    for k in methods:
        v = np.array(mase[k])
        print(f"  {k:<32}{np.exp(np.mean(np.log(v[keep_]))):>8.3f}"
              f"{np.mean(smape[k]):>9.2f}"
              f"{f'{int(np.sum(v < sn))}/{len(v)}' if sn is not None else '-':>8}"
              f"{times[k]:>9.1f}")


def coverage(reps=40, n=240, h=12, nominal=0.9):
    """Interval coverage of RNNForecaster() at its defaults on simulated
    processes: for each process, `reps` independent series of n points, a
    fit on the first n - h, the fraction of the last h values inside the
    nominal interval (conformal and simulated)."""
    rng = np.random.default_rng(26)

    def ar1(k):
        e = rng.standard_normal(k)
        y = np.zeros(k)
        for t in range(1, k):
            y[t] = 0.7 * y[t - 1] + e[t]
        return y

    def seasonal(k):
        t = np.arange(k)
        return 10 + 3 * np.sin(2 * np.pi * t / 12) + ar1(k)

    processes = {
        "AR(1), phi 0.7": ar1,
        "random walk": lambda k: np.cumsum(rng.standard_normal(k)),
        "trend + noise": lambda k: 0.1 * np.arange(k) + rng.standard_normal(k),
        "season 12 + AR(1)": seasonal,
    }
    print(f"\ncoverage of the {nominal:.0%} interval, {reps} series of {n} points per "
          f"process, horizons 1-{h}")
    for name, gen in processes.items():
        inside = {"conformal": [], "simulate": []}
        chosen = []
        for _ in range(reps):
            y = gen(n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = RNNForecaster(random_state=0).fit(y[:n - h])
            chosen.append(f.config_["model"])
            for method in inside:
                lo, hi = f.predict_interval(h, coverage=nominal, method=method,
                                            random_state=0)
                truth = y[n - h:]
                inside[method].append((truth >= lo) & (truth <= hi))
        picks = ", ".join(f"{k} {chosen.count(k)}" for k in dict.fromkeys(chosen))
        print(f"  {name:<22} conformal {np.mean(inside['conformal']):6.1%}  simulate "
              f"{np.mean(inside['simulate']):6.1%}   (chosen: {picks})", flush=True)


def rules(sets=("tuned", "held-out")):
    """How the choice rule was chosen (issue 26): on each set, every
    candidate's validation score (``config_``) and test forecast at every
    origin (the network's configurations refitted one by one, the
    statistical ones from crnn._forecasting.baselines), and the geometric-mean MASE of
    the rules that choose among them."""
    from crnn._forecasting import baselines as B

    def mase(y, o, h, m, f):
        train, truth = y[:o], y[o:o + h]
        lag = m if o > m else 1
        sc = np.mean(np.abs(train[lag:] - train[:-lag]))
        return float(np.mean(np.abs(truth - np.ravel(f))) / (sc if sc > 0 else 1.0))

    def key(c):
        return ("rnn", c["window_length"], c["difference"], c["seasonal_difference"]) \
            if c["model"] == "rnn" else c["model"]

    def lowest(cands, edge=1.0, pool=None):
        ok = [c for c in cands if pool is None or pool(c)]
        return min(ok, key=lambda c: (c["score"] * (edge if c["model"] == "ets" else 1.0),
                                      c["model"] != "ets"))

    def ets_or_net(k):
        return lambda cands: lowest(cands, k, lambda c: c["model"] in ("ets", "rnn"))

    rule_fns = {
        "the lowest score": lowest,
        "the smoothing alone": lambda cands: next(c for c in cands if c["model"] == "ets"),
        "the network alone (its best configuration)":
            lambda cands: lowest(cands, pool=lambda c: c["model"] == "rnn"),
        **{f"the network if below {k} x the smoothing (no simple baselines)": ets_or_net(k)
           for k in (0.7, 0.8, 0.9)},
        **{f"the smoothing unless another scores below {k} x it": (
            lambda cands, k=k: lowest(cands, k)) for k in (0.7, 0.8, 0.9)},
    }
    for name in sets:
        data = heldout_series() if name == "held-out" else public_series()
        scores = {r: [] for r in rule_fns}
        for series, (y, m_true, h, _) in data.items():
            y = np.asarray(y, dtype=np.float64)
            n = len(y)
            per = {r: [] for r in rule_fns}
            for o in (n - 3 * h, n - 2 * h, n - h):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f = RNNForecaster(random_state=0).fit(y[:o])
                    cands = [c for c in f.config_["candidates"] if c["score"] is not None]
                    m = f.config_["seasonal_period"]
                    fc = {}
                    for c in cands:
                        if c["model"] == "rnn":
                            g = RNNForecaster(random_state=0, baselines=False,
                                              window_length=c["window_length"],
                                              difference=c["difference"],
                                              seasonal_period=c["seasonal_difference"] or None)
                            fc[key(c)] = np.asarray(g.fit(y[:o]).predict(h))
                        else:
                            hist = y[:o, None]
                            p = B.fit_params(c["model"], [hist], m)
                            st = B.state(c["model"], p, hist, m)
                            fc[key(c)] = B.forecast(c["model"], p, st, h, m)[:, 0]
                for r, fn in rule_fns.items():
                    per[r].append(mase(y, o, h, m_true, fc[key(fn(cands))]))
            for r in rule_fns:
                scores[r].append(np.mean(per[r]))
            print(f"  {name}: {series} done", flush=True)
        print(f"\n{name} ({len(data)} series): geometric-mean MASE of each rule")
        for r, v in scores.items():
            print(f"  {r:<62}{np.exp(np.mean(np.log(np.maximum(v, 1e-12)))):>8.3f}")


def walks(reps=30, n=500, h=5):
    """The defaults on simulated prices (geometric random walks of n days,
    3 origins x h steps): their MAE against the random walk's (the naive
    forecast, the honest best for prices), as the ratio of the geometric
    means over the series, and the worst series' ratio."""
    rng = np.random.default_rng(260)
    ours, naive, picks = [], [], []
    for _ in range(reps):
        y = 100 * np.exp(np.cumsum(0.01 * rng.standard_normal(n)))
        a, b = [], []
        for o in (n - 3 * h, n - 2 * h, n - h):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                f = RNNForecaster(random_state=0).fit(y[:o])
            picks.append(f.config_["model"])
            a.append(np.mean(np.abs(np.asarray(f.predict(h)) - y[o:o + h])))
            b.append(np.mean(np.abs(y[o - 1] - y[o:o + h])))
        ours.append(np.mean(a))
        naive.append(np.mean(b))
    ours, naive = np.array(ours), np.array(naive)
    geo = float(np.exp(np.mean(np.log(ours)) - np.mean(np.log(naive))))
    chosen = ", ".join(f"{k} {picks.count(k)}" for k in dict.fromkeys(picks))
    print(f"\n{reps} geometric random walks of {n} days, 3 origins x {h} steps: MAE of "
          f"RNNForecaster() / the random walk's = {geo:.3f} (geometric means; worst series "
          f"{np.max(ours / naive):.2f})\n  chosen: {chosen}")


def global_cost(n_series=1000, T=200, epochs=10):
    """The price of the automatic choice on one global model: the defaults
    against the work of the defaults before issue 26 (window 24, no
    differences, the network alone, with its calibration tail), both
    trained for the same epochs, on the series of speed()."""
    rng = np.random.default_rng(0)
    t = np.arange(T)
    ys = [np.sin(2 * np.pi * (t + rng.integers(24)) / 24) * rng.uniform(1, 3)
          + 0.1 * rng.normal(size=T) for _ in range(n_series)]
    runs = {
        "before issue 26 (window 24, the network)": dict(
            window_length=24, difference=0, seasonal_period=None, baselines=False),
        "the automatic defaults": {},
    }
    times = {}
    for name, kw in runs.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = RNNForecaster(max_iter=epochs, random_state=0, **kw).fit(ys)
        times[name] = time.perf_counter() - t0
        c = f.config_
        print(f"  {name:<42} {times[name]:7.1f} s  (chose {c['model']}, window "
              f"{c['window_length']}, season {c['seasonal_period']})", flush=True)
    a, b = times.values()
    print(f"  ratio {b / a:.2f}x ({n_series} series x {T} points, {epochs} epochs)")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accuracy", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--defaults", action="store_true")
    p.add_argument("--coverage", action="store_true")
    p.add_argument("--only", nargs="*", help="series (--defaults)")
    p.add_argument("--methods", nargs="*", help="methods (--defaults), by their names")
    p.add_argument("--plot", help="write the --defaults figure to this image file")
    p.add_argument("--heldout", action="store_true",
                   help="--defaults on the series the defaults were not tuned on")
    p.add_argument("--unseen", action="store_true",
                   help="--defaults on a third set, never used to choose anything "
                        "(needs pmdarima's data files: pip install pmdarima --no-deps)")
    p.add_argument("--rules", action="store_true",
                   help="the choice rules compared on the tuned and held-out sets")
    p.add_argument("--walks", action="store_true",
                   help="the defaults against the random walk on 30 simulated prices")
    p.add_argument("--global-cost", action="store_true",
                   help="the automatic defaults' fit time on 1,000 series against the "
                        "defaults before issue 26")
    args = p.parse_args()
    if args.defaults or args.coverage or args.walks or args.global_cost or args.rules:
        if args.defaults:
            defaults(args.only, args.methods, args.plot, args.heldout, args.unseen)
        if args.coverage:
            coverage()
        if args.rules:
            rules()
        if args.walks:
            walks()
        if args.global_cost:
            global_cost()
        return
    both = not (args.accuracy or args.speed)
    if args.speed or both:
        speed()
    if args.accuracy or both:
        accuracy()


if __name__ == "__main__":
    main()
