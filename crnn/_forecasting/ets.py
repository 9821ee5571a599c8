"""Exponential smoothing chosen per series: the forecaster's "ets"
candidate (issue 26), in the manner of AutoETS.

Each column of each series gets its own model, chosen by the corrected
Akaike information criterion (AICc) among the additive-error state space
models with

- no trend, or a (damped) additive trend,
- no season, or an additive season of the forecaster's season length m
  (when the history holds more than two seasons),

each fitted to the series itself or, when every value is positive, to its
logarithm (a multiplicative model; the criterion then includes the
transform's Jacobian, so that both are compared on the data's own scale).
The smoothing parameters (alpha, beta = alpha b, gamma = (1 - alpha) g,
phi) are chosen on a grid by the one-step squared error, every grid point
filtered by the compiled kernel ``crnn._smoothing``; the initial states come
from the first two seasons (or the first few steps).  Optimising the
initial states too (least squares, the errors being linear in them) and a
line through the first ten steps were tried: both fit the histories better
and forecast worse on benches/forecasting.py's series (docs/performance.md).
A grid instead of a
numerical optimiser: every series' fit costs the same, known, work, and no
optimiser can fail on it.

A fitted column is described by its *spec*, a float64 vector
[log, trend, season, alpha, beta, gamma, phi, unit, l0, b0, s0_1..s0_m]; the
series is divided by ``unit`` (its largest magnitude) before the filter,
so that values near the largest float do not overflow.  The *state* at the
end of a history, what the forecasts read, is
[log, unit, alpha, beta, gamma, phi, level, slope, s_1..s_m] with s_h the
seasonal term of the h-th step ahead.
"""
import numpy as np

from .. import _smoothing

_ALPHAS = np.array([0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99])
_BS = np.array([0.01, 0.05, 0.1, 0.2, 0.4])
_GS = np.array([0.01, 0.05, 0.1, 0.2, 0.4])
_PHIS = np.array([0.8, 0.9, 0.95, 0.98, 1.0])

# (trend, season) in the order they are tried (the first wins a tie)
_VARIANTS = ((False, False), (False, True), (True, False), (True, True))

STATE_ROWS = 8          # + m seasonal terms (the state layout in the module docstring)


def _grid(trend, season):
    """The parameter grid, (4, G): rows alpha, beta, gamma, phi."""
    rows = [(a, a * b, (1 - a) * g, p)
            for a in _ALPHAS
            for b in (_BS if trend else (0.0,))
            for g in (_GS if season else (0.0,))
            for p in (_PHIS if trend else (1.0,))]
    return np.ascontiguousarray(np.array(rows).T)


_GRIDS = {v: _grid(*v) for v in _VARIANTS}


def _initial(x, m, trend, season):
    """Initial level, slope and m seasonal terms of a 1-D history: from its
    first two seasons (a straight line through their means, the season the
    deviations from it), or without a season from the first few steps."""
    n = len(x)
    s0 = np.zeros(m)
    if season:
        first, second = x[:m].mean(), x[m:2 * m].mean()
        b0 = (second - first) / m if trend else 0.0
        t = np.arange(2 * m)
        dev = x[:2 * m] - (first + b0 * (t - (m - 1) / 2))
        s0 = dev.reshape(2, m).mean(axis=0)
        s0 -= s0.mean()
        l0 = first - b0 * ((m - 1) / 2 + 1)
    else:
        q = min(n - 1, 4)
        b0 = (x[q] - x[0]) / q if (trend and q) else 0.0
        l0 = x[0] - b0
    return np.concatenate([[l0, b0], s0])


def _n_params(m, trend, season):
    """The parameters the criterion counts: alpha, the initial level, the
    error's variance, beta and the initial slope with a trend, gamma and
    m - 1 free initial seasonal terms with a season."""
    return 3 + (2 if trend else 0) + (m if season else 0)


def _can_season(n, m):
    return m > 1 and n >= 2 * m + 2


def fit(columns, m, n_threads=1, positive=None):
    """The chosen model of each 1-D history in ``columns`` (finite float64
    arrays, at least 2 values each): one spec per column.  A logarithmic
    (multiplicative) model is a candidate for the columns whose values are
    all positive, or for those ``positive`` marks (a list of bools: the
    caller knows the whole series, of which these are the heads)."""
    m = max(int(m), 1)
    k = len(columns)
    units, scaled, pos = [], [], []
    for i, x in enumerate(columns):
        big = float(np.max(np.abs(x)))
        u = big if big > 0 else 1.0
        units.append(u)
        scaled.append(x / u)
        pos.append(bool(np.all(x > 0)) and (positive is None or bool(positive[i])))
    best = [None] * k
    best_aic = np.full(k, np.inf)
    for log in (False, True):
        idx_log = [i for i in range(k) if pos[i]] if log else list(range(k))
        for trend, season in _VARIANTS:
            idx = [i for i in idx_log
                   if (not season or _can_season(len(scaled[i]), m))
                   and len(scaled[i]) - _n_params(m, trend, season) - 1 > 0]
            if not idx:
                continue
            xs = [np.log(scaled[i]) if log else scaled[i] for i in idx]
            # without a season the filter runs with one (zero) term
            mk = m if season else 1
            inits = np.array([_initial(x, mk, trend, season) for x in xs])
            offs = np.concatenate([[0], np.cumsum([len(x) for x in xs])]).astype(np.intp)
            P = _GRIDS[(trend, season)]
            sse = _smoothing.sse_grid(np.concatenate(xs), offs, inits, P, n_threads)
            sse = np.where(np.isfinite(sse), sse, np.inf)
            kp = _n_params(m, trend, season)
            for j, i in enumerate(idx):
                g = int(np.argmin(sse[j]))
                n = len(xs[j])
                if not np.isfinite(sse[j, g]):
                    continue
                aic = n * np.log(max(sse[j, g] / n, 1e-300)) + 2 * kp \
                    + 2 * kp * (kp + 1) / (n - kp - 1)
                if log:
                    aic += 2 * float(np.sum(xs[j]))
                if aic < best_aic[i]:
                    best_aic[i] = aic
                    best[i] = np.concatenate([[float(log), float(trend), float(season)],
                                              P[:, g], [units[i]], inits[j],
                                              np.zeros(m - mk)])
    for i in range(k):
        if best[i] is None:                 # too short for any criterion
            best[i] = _fallback(scaled[i], m, units[i])
    return best


def _fallback(x, m, unit):
    """Simple exponential smoothing with the grid's best alpha, for
    histories too short for the criterion (or whose every filter
    diverged); on a tie (two values: every alpha errs the same) or when
    every filter diverged, the largest alpha, which forecasts about the
    last value."""
    init = _initial(x, 1, False, False)
    P = _GRIDS[(False, False)]
    sse = _smoothing.sse_grid(x, np.array([0, len(x)], dtype=np.intp), init[None], P)[0]
    sse = np.where(np.isfinite(sse), sse, np.inf)
    G = P.shape[1]
    g = G - 1 - int(np.argmin(sse[::-1]))           # the last of the best
    return np.concatenate([[0.0, 0.0, 0.0], P[:, g], [unit], init, np.zeros(m - 1)])


def _filter(x, spec):
    """The spec's filter over the 1-D history x (original units): levels,
    slopes and seasonal updates after each step."""
    log, _, _, alpha, beta, gamma, phi, unit = spec[:8]
    z = x / unit
    if log:
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.log(z)
    return _smoothing.path(np.ascontiguousarray(z, dtype=np.float64),
                           np.ascontiguousarray(spec[8:]), alpha, beta, gamma, phi)


def _next_terms(spec, Sh, origins, count, m):
    """The seasonal terms of the first ``count`` steps after each origin o
    (after its first o steps) of a filtered history, (len(origins), count):
    the term of phase (o + h) % m was last updated at the last step of that
    phase before o, or is still its initial value."""
    o = origins[:, None]
    hs = np.arange(count)
    t = o - 1 - ((-1 - hs)[None, :] % m)
    return np.where(t >= 0, Sh[np.maximum(t, 0)], spec[10:][(o + hs) % m])


def _state_at(spec, L, B, Sh, o, m):
    """The state after the first o steps of a filtered history."""
    return np.concatenate([[spec[0], spec[7]], spec[3:7], [L[o - 1], B[o - 1]],
                           _next_terms(spec, Sh, np.array([o]), m, m)[0]])


def _forecast_from(spec, L, B, Sh, origins, steps, m):
    """Forecasts (len(origins), steps) of a filtered history from each
    origin o: _state_at and forecast for many origins at once, reading
    only the min(m, steps) seasonal terms the horizons use."""
    o = origins[:, None]
    nxt = _next_terms(spec, Sh, origins, min(m, steps), m)
    log, phi, unit = spec[0], spec[6], spec[7]
    h = np.arange(1, steps + 1)
    damp = np.cumsum(phi ** h)
    f = L[o - 1] + damp[None, :] * B[o - 1] + nxt[:, (h - 1) % m]
    with np.errstate(over="ignore"):
        return unit * (np.exp(f) if log > 0.5 else f)


def state(y, m, n_threads=1):
    """The chosen models' state at the end of the history y (n, k), each
    column's model chosen on y itself: (8 + m, k)."""
    return states([y], m, n_threads)[0]


def states(ys, m, n_threads=1):
    """state() of each history of a list, the models chosen in one pass."""
    m = max(int(m), 1)
    cols = [y[:, c] for y in ys for c in range(y.shape[1])]
    specs = fit(cols, m, n_threads)
    out, j = [], 0
    for y in ys:
        k = y.shape[1]
        out.append(np.stack([_state_at(specs[j + c], *_filter(y[:, c], specs[j + c]),
                                       len(y), m) for c in range(k)], axis=1))
        j += k
    return out


def forecast(st, steps, m):
    """Forecasts (steps, k) from a state (8 + m, k)."""
    log, unit, _, _, _, phi, lev, slo = st[:8]
    h = np.arange(1, steps + 1)[:, None]
    damp = np.cumsum(phi[None, :] ** h, axis=0)         # phi + ... + phi^h
    f = lev + damp * slo + st[8 + (h[:, 0] - 1) % m]
    with np.errstate(over="ignore"):
        return unit * np.where(log > 0.5, np.exp(f), f)


def simulate(st, steps, m, noise):
    """Sample paths (P, steps, k) from a state, noise (P, steps, k) being
    each step's one-step error in the data's units, fed back as the model's
    innovation (relative to the one-step forecast for a multiplicative
    model)."""
    log, unit, alpha, beta, gamma, phi = st[:6]
    mult = log > 0.5
    P, _, k = noise.shape
    lev = np.broadcast_to(st[6], (P, k)).copy()
    slo = np.broadcast_to(st[7], (P, k)).copy()
    sea = np.broadcast_to(st[8:], (P, m, k)).copy()
    out = np.empty((P, steps, k))
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            j = t % m
            base = lev + phi * slo
            pred = base + sea[:, j]
            e = noise[:, t] / unit
            e = np.where(mult, e / np.exp(pred), e)
            x = pred + e
            lev = base + alpha * e
            slo = phi * slo + beta * e
            sea[:, j] += gamma * e
            out[:, t] = unit * np.where(mult, np.exp(x), x)
    return out


def rolling(ys, cuts, steps, m, n_threads=1):
    """Validation forecasts: for each history y (n, k) of ys with cut c,
    the models chosen on y[:n - c] (in one pass for all) forecast from
    every origin o in n - c .. n - 1 (history y[:o]): (c, steps, k) each."""
    m = max(int(m), 1)
    heads = [y[:len(y) - c, j] for y, c in zip(ys, cuts) for j in range(y.shape[1])]
    # a logarithm only for the series positive to their end: a head's model
    # must filter its tail
    positive = [bool(np.all(y[:, j] > 0)) for y in ys for j in range(y.shape[1])]
    specs = fit(heads, m, n_threads, positive)
    out, s = [], 0
    for y, c in zip(ys, cuts):
        n, k = y.shape
        f = np.empty((c, steps, k))
        origins = np.arange(n - c, n)
        for col in range(k):
            f[:, :, col] = _forecast_from(specs[s + col], *_filter(y[:, col], specs[s + col]),
                                          origins, steps, m)
        out.append(f)
        s += k
    return out
