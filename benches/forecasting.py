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
naive, seasonal naive, drift, and statsforecast's AutoETS, AutoARIMA and
AutoTheta.  Rolling origin: 3 origins, each forecasting one season ahead (5
steps for annual and non-seasonal series), the last ending at the series'
end; every model refitted at every origin on the history before it, given
as a plain numpy array (crnn reads the season from the data); MASE scaled by
the in-sample seasonal-naive MAE of that history, and sMAPE.

    python benches/forecasting.py --defaults        # about 10 minutes on 2 cores
    python benches/forecasting.py --defaults --only airline lynx

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


def _statsforecast(model, y, h, m):
    import pandas as pd
    from statsforecast import StatsForecast
    df = pd.DataFrame({"unique_id": 0, "ds": np.arange(len(y)), "y": y.astype(float)})
    sf = StatsForecast(models=[model], freq=1, n_jobs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fc = sf.forecast(df=df, h=h)
    return fc.iloc[:, -1].to_numpy()


def defaults(only=None):
    from statsforecast.models import AutoARIMA, AutoETS, AutoTheta
    from crnn import _baselines

    def crnn_default(y, h, m, **kw):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f = RNNForecaster(random_state=0, **kw).fit(y)
        crnn_default.configs.append(f.config_["model"] if f.config_["model"] != "rnn" else
                                    "rnn d={difference} D={seasonal_difference}".format(
                                        **f.config_))
        return np.asarray(f.predict(h))
    crnn_default.configs = []

    def base(kind):
        def run(y, h, m):
            p = _baselines.fit_params(kind, [y[:, None]], m)
            st = _baselines.state(kind, p, y[:, None], m)
            return _baselines.forecast(kind, p, st, h, m)[:, 0]
        return run

    methods = {
        "RNNForecaster()": crnn_default,
        "RNNForecaster(baselines=False)": lambda y, h, m: crnn_default(y, h, m,
                                                                        baselines=False),
        "naive": base("naive"),
        "seasonal naive": lambda y, h, m: base("seasonal_naive")(y, h, max(m, 1)),
        "drift": base("drift"),
        "AutoETS": lambda y, h, m: _statsforecast(AutoETS(season_length=m), y, h, m),
        "AutoARIMA": lambda y, h, m: _statsforecast(AutoARIMA(season_length=m), y, h, m),
        "AutoTheta": lambda y, h, m: _statsforecast(AutoTheta(season_length=m), y, h, m),
    }
    mase = {k: [] for k in methods}
    smape = {k: [] for k in methods}
    times = {k: 0.0 for k in methods}
    data = public_series()
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
    print("\nover the series: geometric-mean MASE, mean sMAPE %, series where the model "
          "beats seasonal naive, seconds")
    sn = np.array(mase["seasonal naive"])
    for k in methods:
        v = np.array(mase[k])
        print(f"  {k:<32}{np.exp(np.mean(np.log(np.maximum(v, 1e-12)))):>8.3f}"
              f"{np.mean(smape[k]):>9.2f}{f'{int(np.sum(v < sn))}/{len(v)}':>8}"
              f"{times[k]:>9.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accuracy", action="store_true")
    p.add_argument("--speed", action="store_true")
    p.add_argument("--defaults", action="store_true")
    p.add_argument("--only", nargs="*")
    args = p.parse_args()
    if args.defaults:
        defaults(args.only)
        return
    both = not (args.accuracy or args.speed)
    if args.speed or both:
        speed()
    if args.accuracy or both:
        accuracy()


if __name__ == "__main__":
    main()
