"""The simple forecasters RNNForecaster's automatic configuration compares
its network with, and the season-length detection it starts from.

A network should never lose to these (issue 26): on short series, random
walks and plain seasonal patterns they are what the statistical literature
falls back to (the M4 benchmarks: naive, seasonal naive, drift, and a damped
trend on the seasonally adjusted series).  Every function works on one
history ``y`` of shape (n, k) at a time, each column on its own, in float64:

- ``naive``: the last value;
- ``seasonal_naive``: the value one season back (season length m);
- ``drift``: the last value plus h times the mean step of the history;
- ``ets``: exponential smoothing chosen per series by AICc (level, damped
  trend, additive season; on the logarithm for a multiplicative model), in
  ``crnn._forecasting.ets``: the candidate the others must beat by a margin (INCUMBENT);
- ``damped``: Holt's linear trend with a damped slope (additive errors),
  on the series divided by (or, when it has values <= 0, less) classical
  seasonal indices when the autocorrelation at lag m shows a season (the M4
  competition's seasonality test at 90%).  Its smoothing parameters (alpha,
  beta, phi) are chosen from a grid by the one-step squared error summed over
  every series of a fit (each scaled by its own naive error), so that a
  fitted set applies to new histories as the network's weights do.  No
  longer a candidate (``ets`` holds it, with parameters per series); kept
  so that the forecasters that chose it keep forecasting.

A baseline's *state* at the end of a history (what its forecasts read) is a
float64 array of shape (r, k): ``naive`` [last]; ``seasonal_naive`` the last
m values; ``drift`` [last, slope]; ``damped`` [level, slope, multiplicative
(1.0 or 0.0), the m seasonal indices of the next m steps]; ``ets`` its
models' state (``crnn._forecasting.ets``: 8 + m rows), the models chosen on the history
itself.
"""
import numpy as np

from . import ets as _ets

# every kind a fitted forecaster may hold, and those a fit compares
KINDS = ("naive", "seasonal_naive", "drift", "damped", "ets")
CANDIDATES = ("naive", "seasonal_naive", "drift", "ets")
# the candidate the others must beat by a margin: their validation score
# must be below INCUMBENT_EDGE times its score.  A choice among several
# candidates on one short tail favours the luckiest (the winner's curse);
# the statistical model, chosen on the whole history by its own criterion,
# is the safer default (benches/forecasting.py --defaults, docs/performance.md)
INCUMBENT = "ets"
INCUMBENT_EDGE = 0.8

# pandas frequency names (without multiplier) -> season length in steps: the
# year for yearly to weekly data, the week for daily, the day for hourly and
# minutely data (a multiple divides it: 30min -> 48), the minute for seconds
_FREQ_SEASONS = {"Y": 1, "A": 1, "YS": 1, "AS": 1, "YE": 1, "BY": 1, "BYS": 1, "BYE": 1,
                 "BA": 1, "BAS": 1, "Q": 4, "QS": 4, "QE": 4, "BQ": 4, "BQS": 4, "BQE": 4,
                 "M": 12, "MS": 12, "ME": 12, "BM": 12, "BMS": 12, "BME": 12, "SM": 24,
                 "SMS": 24, "SME": 24, "W": 52, "D": 7, "B": 5, "C": 5, "H": 24, "h": 24,
                 "BH": 8, "bh": 8, "T": 1440, "min": 1440, "S": 60, "s": 60}


# the KPSS test's 5% critical values (Kwiatkowski et al. 1992, table 1): level
# stationarity, and stationarity around a straight line
_KPSS_5PCT = 0.463
_KPSS_TREND_5PCT = 0.146


def kpss_statistic(y):
    """KPSS statistic of level stationarity of a 1-D series, with the
    Bartlett-window long-run variance at lag trunc(4 (T / 100) ** 0.25)
    (the "short" lag of Kwiatkowski et al., as pmdarima's ndiffs uses)."""
    y = np.asarray(y, dtype=np.float64)
    T = len(y)
    e = y - y.mean()
    s2 = e @ e / T
    if s2 <= 0:
        return 0.0
    lags = int(4 * (T / 100) ** 0.25)
    for lag in range(1, min(lags, T - 1) + 1):
        s2 += 2 * (1 - lag / (lags + 1)) * (e[lag:] @ e[:-lag]) / T
    return float(np.sum(np.cumsum(e) ** 2) / (T * T * s2)) if s2 > 0 else np.inf


def season_from_freq(freq):
    """The usual season length of a pandas frequency string ('MS' -> 12,
    'Q-DEC' -> 4, 'W-SUN' -> 52, 'D' -> 7, 'h' -> 24, '30min' -> 48 a day),
    or None when it implies none."""
    if not isinstance(freq, str) or not freq:
        return None
    head = freq.split("-")[0]
    digits = len(head) - len(head.lstrip("0123456789"))
    mult = int(head[:digits]) if digits else 1
    m = _FREQ_SEASONS.get(head[digits:])
    if m is None or mult < 1:
        return None
    if mult == 1:
        return m
    # multiples: a whole number of steps per season, else none
    return m // mult if m % mult == 0 and m // mult >= 2 else None


def acf(x, nlags):
    """Sample autocorrelations r_1..r_nlags of a 1-D series (FFT)."""
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean()
    n = len(x)
    d = float(x @ x)
    if n < 2 or d <= 0 or not np.isfinite(d):
        return np.zeros(nlags)
    size = 1 << int(2 * n - 1).bit_length()
    f = np.fft.rfft(x, size)
    r = np.fft.irfft(f * np.conj(f), size)[1:nlags + 1] / d
    return r


def season_from_acf(y, max_lag=400):
    """A season length read from the autocorrelation (all columns
    averaged): the shortest lag >= 2 that is a local peak, above 0.25 and
    3 / sqrt(n) (the white-noise bound at 0.3%), at least 0.3 above the
    deepest dip before it (a season's trough: a trend's slowly decaying
    autocorrelation has none), and within 80% of the highest such peak (or
    the calendar period next to it, when its autocorrelation is as high);
    1 when there is none.  The series is read after removing a
    straight line (a smooth season survives that, where differencing would
    drown it in noise), and, when that shows no peak, after one difference
    (a season on a wandering level).  Lags up to a third of the series (at
    most max_lag) are searched."""
    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:
        y = y[:, None]
    n = len(y)
    if n < 9 or not np.all(np.isfinite(y)):
        return 1
    line = _detrend(y)
    # the straight line's residual only when it is stationary (KPSS at 5%):
    # a random walk's wanders in slow waves that look like seasons
    stationary = all(kpss_statistic(col) < _KPSS_TREND_5PCT for col in line.T)
    steps = _detrend(np.diff(y, axis=0))        # growth that speeds up: its line too
    for x, first in (((line, 1), (steps, 2)) if stationary else ((steps, 2),)):
        lag = _acf_peak(x, max_lag, first)
        if lag > 1:
            return lag
    return 1


def _detrend(y):
    """y (n, k) less each column's least-squares straight line."""
    n = len(y)
    t = np.arange(n) - (n - 1) / 2
    u = y - y.mean(axis=0)
    return u - np.outer(t, (t @ u) / (t @ t))


def _acf_peak(x, max_lag, first=1):
    """The season the autocorrelation of x shows (1: none); troughs count
    from lag ``first`` (2 for differences, whose lag-1 autocorrelation is
    pulled down to -1/2 by the differencing of any noise)."""
    n = len(x)
    L = min(n // 3, max_lag)
    if L < first + 2:
        return 1
    r = np.mean([acf(col, L + 1) for col in x.T], axis=0)      # r[j] = lag j + 1
    low = np.minimum.accumulate(np.where(np.arange(L + 1) >= first - 1, r, np.inf))
    floor = max(0.25, 3.0 / np.sqrt(n))
    peaks = []
    for lag in range(first + 1, L + 1):
        v = r[lag - 1]
        if v > r[lag - 2] and v >= r[lag] and v > floor and v - low[lag - 2] >= 0.3:
            peaks.append((lag, v))
    if not peaks:
        return 1
    top = max(v for _, v in peaks)
    lag = next(lag for lag, v in peaks if v >= 0.8 * top)
    # a flat top (a smooth season sampled finely, e.g. half-hourly data with
    # r at lags 47 and 48 equal to 2 digits) is read as the calendar's period
    # next to it when that one is as high
    for p in _CALENDAR:
        if p != lag and abs(p - lag) <= max(1, lag // 50) and p <= L \
                and r[p - 1] >= r[lag - 1] - 0.02:
            return p
    return lag


# the periods of calendars and clocks: a week in days or business days,
# a year in quarters, months or weeks, a day in hours, half-hours, quarter
# hours or 5 minutes, a week in hours or half-hours
_CALENDAR = (4, 5, 7, 12, 24, 48, 52, 96, 168, 288, 336)


def scale(y):
    """Per column, the mean absolute one-step change of the history (the
    naive forecast's in-sample error), floored at 1e-12 of the column's
    largest magnitude (and 1e-300): the unit of the baselines' errors."""
    y = np.asarray(y, dtype=np.float64)
    big = np.abs(y).max(axis=0)
    floor = np.maximum(big * 1e-12, 1e-300)
    if len(y) < 2:
        return floor
    return np.maximum(mean_abs_change(y, 1), floor)


def mean_abs_change(y, lag):
    """Per column, the mean of |y[t] - y[t - lag]|, computed relative to the
    column's largest magnitude (no overflow for values near 1.8e308: the
    changes of finite values can exceed it), capped at the largest float."""
    big = np.abs(y).max(axis=0)
    unit = np.where((big > 0) & np.isfinite(big), big, 1.0)
    u = y / unit
    m = np.abs(u[lag:] - u[:-lag]).mean(axis=0)
    with np.errstate(over="ignore"):
        return np.minimum(m * unit, np.finfo(np.float64).max)


def _seasonal(x, m):
    """Whether the column x shows a season of length m: the M4 test, r_m
    above 1.645 of its standard error, on at least three seasons."""
    n = len(x)
    if m < 2 or n < 3 * m:
        return False
    r = acf(x, m)
    se = np.sqrt((1 + 2 * np.sum(r[:m - 1] ** 2)) / n)
    return bool(abs(r[m - 1]) > 1.645 * se)


def seasonal_indices(x, m):
    """Classical decomposition of a 1-D series: (multiplicative, indices by
    phase t % m), multiplicative when every value is positive; None when the
    series shows no season of length m."""
    if not _seasonal(x, m):
        return None
    mult = bool(np.all(x > 0))
    # centred moving average of order m (2 x m when m is even)
    if m % 2:
        w = np.ones(m) / m
    else:
        w = np.concatenate([[0.5], np.ones(m - 1), [0.5]]) / m
    ma = np.convolve(x, w, mode="valid")
    lo = (len(w) - 1) // 2
    ratio = x[lo:lo + len(ma)] / ma if mult else x[lo:lo + len(ma)] - ma
    phase = (np.arange(len(ma)) + lo) % m
    idx = np.array([ratio[phase == j].mean() for j in range(m)])
    if mult:
        if not np.all(np.isfinite(idx)) or np.any(idx <= 0):
            return None
        idx = idx / idx.mean()
    else:
        idx = idx - idx.mean()
    return mult, idx


def _adjust(y, m, n_fit=None):
    """The seasonally adjusted columns of y (indices from its first n_fit
    rows), the indices per column (n_rows + extra by phase) and the flags."""
    n, k = y.shape
    n_fit = n if n_fit is None else n_fit
    idx = np.zeros((m, k))
    mult = np.zeros(k, dtype=bool)
    for c in range(k):
        got = seasonal_indices(y[:n_fit, c], m) if m > 1 else None
        if got is None:
            mult[c] = True
            idx[:, c] = 1.0
        else:
            mult[c], idx[:, c] = got
    ph = idx[np.arange(n) % m]
    x = np.where(mult, y / ph, y - ph)
    return x, idx, mult


# the damped trend's grid: alpha, beta = alpha * b, phi
_ALPHAS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99)
_BETAS = (0.01, 0.05, 0.1, 0.25, 0.5)
_PHIS = (0.8, 0.9, 0.95, 0.98)
_GRID = np.array([(a, a * b, p) for a in _ALPHAS for b in _BETAS for p in _PHIS])


def _holt(x, alpha, beta, phi, history=True):
    """Damped Holt over x (n, k), parameters broadcast to (g, 1): the levels
    and slopes after each step, (n, g, k) each (None without history), and
    the one-step squared error summed over steps (g, k)."""
    n, k = x.shape
    g = np.broadcast_shapes(np.shape(alpha), np.shape(beta), np.shape(phi))[0]
    lev = np.empty((n, g, k)) if history else None
    slo = np.empty((n, g, k)) if history else None
    q = min(n - 1, 4)
    b = np.broadcast_to((x[q] - x[0]) / q if q else np.zeros(k), (g, k)).copy()
    lv = np.broadcast_to(x[0], (g, k)).copy()
    if history:
        lev[0], slo[0] = lv, b
    sse = np.zeros((g, k))
    for t in range(1, n):
        pred = lv + phi * b
        e = x[t] - pred
        sse += e * e
        lv = pred + alpha * e
        b = phi * b + beta * e
        if history:
            lev[t], slo[t] = lv, b
    return lev, slo, sse


def fit_params(kind, ys, m):
    """The baseline's parameters, shared by every series of a fit: (alpha,
    beta, phi) for "damped", chosen on the grid by the one-step squared error
    (each series' in units of its own scale()); none for the others."""
    if kind != "damped":
        return np.zeros(0)
    total = np.zeros(len(_GRID))
    a, b, p = (_GRID[:, j:j + 1] for j in range(3))
    for y in ys:
        if len(y) < 3:
            continue
        x, _, _ = _adjust(y, m)
        sc = scale(x)
        _, _, sse = _holt(x, a, b, p, history=False)   # the grid: errors only
        with np.errstate(over="ignore", invalid="ignore"):
            v = (sse / sc ** 2).sum(axis=1)
        total += np.where(np.isfinite(v), v, np.inf)
    return _GRID[int(np.argmin(total))].copy()


def state(kind, params, y, m):
    """The baseline's state at the end of the history y (n, k)."""
    y = np.asarray(y, dtype=np.float64)
    n, k = y.shape
    if kind == "ets":
        return _ets.state(y, m)
    if kind == "naive":
        return y[-1:].copy()
    if kind == "seasonal_naive":
        return y[-m:].copy()
    if kind == "drift":
        slope = (y[-1] - y[0]) / (n - 1) if n > 1 else np.zeros(k)
        return np.stack([y[-1], slope])
    x, idx, mult = _adjust(y, m)
    lev, slo, _ = _holt(x, *(np.array([[v]]) for v in params))
    nxt = idx[(n + np.arange(m)) % m]
    return np.concatenate([lev[-1], slo[-1], mult[None].astype(np.float64), nxt])


def states(kind, params, ys, m, n_threads=1):
    """state() of each history of a list (the ets models chosen in one
    pass over all of them, on n_threads)."""
    if kind == "ets":
        return _ets.states([np.asarray(y, dtype=np.float64) for y in ys], m, n_threads)
    return [state(kind, params, y, m) for y in ys]


def min_length(kind, m):
    """The shortest history the baseline forecasts from."""
    return {"naive": 1, "seasonal_naive": m, "drift": 2, "damped": 2, "ets": 2}[kind]


def forecast(kind, params, st, steps, m):
    """Forecasts (steps, k) from a state."""
    h = np.arange(1, steps + 1)[:, None]
    if kind == "naive":
        return np.repeat(st[:1], steps, axis=0)
    if kind == "seasonal_naive":
        return st[(h[:, 0] - 1) % m]
    if kind == "drift":
        return st[0] + h * st[1]
    if kind == "ets":
        return _ets.forecast(st, steps, m)
    _, _, phi = params
    damp = np.cumsum(phi ** h, axis=0)                 # phi + ... + phi^h
    x = st[0] + damp * st[1]
    ph = st[3 + (h[:, 0] - 1) % m]
    return np.where(st[2] > 0.5, x * ph, x + ph)


def simulate(kind, params, st, steps, m, noise):
    """Sample paths (P, steps, k) from a state, noise (P, steps, k) being
    each step's one-step error (innovation) fed back as the model's own."""
    P, _, k = noise.shape
    if kind == "naive":
        return st[0] + np.cumsum(noise, axis=1)
    if kind == "drift":
        h = np.arange(1, steps + 1)[:, None]
        return st[0] + h * st[1] + np.cumsum(noise, axis=1)
    if kind == "seasonal_naive":
        out = np.empty((P, m + steps, k))
        out[:, :m] = st
        for t in range(steps):
            out[:, m + t] = out[:, t] + noise[:, t]
        return out[:, m:]
    if kind == "ets":
        return _ets.simulate(st, steps, m, noise)
    alpha, beta, phi = params
    lv = np.broadcast_to(st[0], (P, k)).copy()
    b = np.broadcast_to(st[1], (P, k)).copy()
    mult = st[2] > 0.5
    out = np.empty((P, steps, k))
    for t in range(steps):
        ph = st[3 + t % m]
        e = np.where(mult, noise[:, t] / ph, noise[:, t])      # in adjusted units
        pred = lv + phi * b
        x = pred + e
        lv = pred + alpha * e
        b = phi * b + beta * e
        out[:, t] = np.where(mult, x * ph, x + ph)
    return out


def rolling_tails(kind, ys, cuts, m, n_threads=1):
    """Validation forecasts (c, c, k) of each history y of ys from every
    origin of its last c = cuts[i] steps, the parameters (or the ets models)
    chosen on the heads y[:n - c], NaN past the end of the series."""
    if kind == "ets":
        out = _ets.rolling(ys, cuts, max(cuts), m, n_threads)
        out = [f[:, :c] for f, c in zip(out, cuts)]
    else:
        params = fit_params(kind, [y[:len(y) - c] for y, c in zip(ys, cuts)], m)
        out = [rolling(kind, params, y, np.arange(len(y) - c, len(y)), c, m, len(y) - c)
               for y, c in zip(ys, cuts)]
    for f, c in zip(out, cuts):
        for r in range(c):                  # past the end
            f[r, c - r:] = np.nan
    return out


def rolling(kind, params, y, origins, steps, m, n_fit):
    """Forecasts (len(origins), steps, k) of y from each origin o (history
    y[:o]); the damped trend's seasonal indices come from y[:n_fit] and its
    filter runs once over y (the parameters do not change with the origin)."""
    y = np.asarray(y, dtype=np.float64)
    o = np.asarray(origins)[:, None]
    h = np.arange(1, steps + 1)[None, :]
    if kind == "naive":
        return np.repeat(y[o - 1], steps, axis=1)
    if kind == "seasonal_naive":
        return y[o + h - 1 - m * (1 + (h - 1) // m)]
    if kind == "drift":
        slope = (y[o[:, 0] - 1] - y[0]) / np.maximum(o - 1, 1)
        return y[o - 1] + h[..., None] * slope[:, None]
    x, idx, mult = _adjust(y, m, n_fit)
    lev, slo, _ = _holt(x, *(np.array([[v]]) for v in params))
    _, _, phi = params
    damp = np.cumsum(phi ** np.arange(1, steps + 1))
    base = lev[o[:, 0] - 1, 0][:, None] + damp[None, :, None] * slo[o[:, 0] - 1, 0][:, None]
    ph = idx[(o + h - 1) % m]
    return np.where(mult, base * ph, base + ph)
