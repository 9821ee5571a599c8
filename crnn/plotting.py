"""Plots for forecasts, training and attention (``pip install crnn[plot]``:
matplotlib).

Every function draws on a given matplotlib Axes (or a new figure) and return
the Axes; they need no display (``fig = ax.figure; fig.savefig("f.png")``
works headless with the Agg backend).
"""
import numpy as np


def _pyplot():
    try:
        import matplotlib
        if not _has_display():
            matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
    except ImportError as exc:            # pragma: no cover - depends on the environment
        raise ImportError("crnn's plots need matplotlib: pip install 'crnn[plot]'") from exc
    return plt


def _has_display():
    import os
    import sys
    return sys.platform in ("darwin", "win32") or bool(os.environ.get("DISPLAY")
                                                       or os.environ.get("WAYLAND_DISPLAY"))


def _xy(series, start=0):
    """(x, values (T, k), column labels) of a numpy array or pandas object."""
    index = getattr(series, "index", None)
    values = np.asarray(series, dtype=np.float64)
    values = values[:, None] if values.ndim == 1 else values
    if index is not None:
        x = np.asarray(index)
        cols = list(getattr(series, "columns", [getattr(series, "name", None)]))
    else:
        x = np.arange(start, start + len(values))
        cols = [None] * values.shape[1]
    return x, values, cols


def plot_forecast(history, forecast, interval=None, *, ax=None, title=None,
                  coverage=None):
    """History, forecast and prediction-interval band.

    Parameters
    ----------
    history : array (T,) or (T, k), pandas Series / DataFrame
        The observed series.
    forecast : array (steps,) or (steps, k), pandas Series / DataFrame
        ``RNNForecaster.predict``'s output; numpy forecasts are placed after
        the history (positions T, T + 1, ...).
    interval : tuple (lower, upper), optional
        ``predict_interval``'s output, drawn as a shaded band.
    ax : matplotlib Axes, optional
        Where to draw (default: a new figure).
    title : str, optional
    coverage : float, optional
        Shown in the band's legend entry.

    Returns
    -------
    ax : matplotlib Axes
    """
    plt = _pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 4))
    hx, hv, cols = _xy(history)
    fx, fv, _ = _xy(forecast, start=len(hv))
    if fv.shape[1] != hv.shape[1]:
        raise ValueError(f"history has {hv.shape[1]} column(s) and forecast "
                         f"{fv.shape[1]}.")
    for j in range(hv.shape[1]):
        label = "history" if cols[j] is None else f"{cols[j]}"
        line, = ax.plot(hx, hv[:, j], label=label, lw=1.2)
        ax.plot(fx, fv[:, j], color=line.get_color(), ls="--", lw=1.6,
                label="forecast" if hv.shape[1] == 1 else f"{label} forecast")
        if interval is not None:
            _, lo, _ = _xy(interval[0], start=len(hv))
            _, hi, _ = _xy(interval[1], start=len(hv))
            band = "interval" if coverage is None else f"{coverage:.0%} interval"
            ax.fill_between(fx, lo[:, j], hi[:, j], color=line.get_color(), alpha=0.2,
                            lw=0, label=band if j == 0 else None)
    ax.legend(loc="best", fontsize="small")
    ax.set_title(title or "forecast")
    ax.grid(alpha=0.3)
    return ax


def plot_learning_curve(model, *, ax=None, title=None):
    """Training loss per epoch, with the validation score and loss when the
    model kept them (early stopping).

    Parameters
    ----------
    model : fitted RNNRegressor, RNNClassifier or RNNForecaster
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    plt = _pyplot()
    net = getattr(model, "model_", model)
    curve = getattr(net, "loss_curve_", None)
    if not curve:
        raise ValueError(f"{type(model).__name__} has no loss_curve_: fit it first.")
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    epochs = np.arange(1, len(curve) + 1)
    ax.plot(epochs, curve, label="training loss")
    vloss = getattr(net, "validation_loss_curve_", None) or []
    if vloss:
        ax.plot(epochs[-len(vloss):], vloss, label="validation loss")
    scores = getattr(net, "validation_scores_", None) or []
    if scores:
        twin = ax.twinx()
        twin.plot(epochs[-len(scores):], scores, color="tab:green", ls=":",
                  label="validation score")
        twin.set_ylabel("validation score")
        twin.legend(loc="upper center", fontsize="small")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_yscale("log" if min(curve) > 0 else "linear")
    ax.legend(loc="upper right", fontsize="small")
    ax.set_title(title or f"{type(model).__name__} learning curve")
    ax.grid(alpha=0.3)
    return ax


def plot_attention(weights, source_tokens, target_tokens, *, ax=None, title=None):
    """Heat map of attention weights (as RNNTranslator.attention_weights
    returns them): one row per target token, one column per source token.

    Parameters
    ----------
    weights : array of shape (n_target, n_source)
    source_tokens, target_tokens : list
        Labels of the columns and rows.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    ax : matplotlib Axes
    """
    w = np.asarray(weights, dtype=float)
    if w.ndim != 2 or w.shape != (len(target_tokens), len(source_tokens)):
        raise ValueError(f"weights of shape {w.shape} do not match {len(target_tokens)} "
                         f"target and {len(source_tokens)} source tokens.")
    if ax is None:
        plt = _pyplot()
        _, ax = plt.subplots(figsize=(1 + 0.45 * w.shape[1], 1 + 0.4 * w.shape[0]))
    ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(w.shape[1]))
    ax.set_xticklabels([str(t) for t in source_tokens], rotation=90)
    ax.set_yticks(range(w.shape[0]))
    ax.set_yticklabels([str(t) for t in target_tokens])
    ax.set_xlabel("source")
    ax.set_ylabel("target")
    if title:
        ax.set_title(title)
    return ax
