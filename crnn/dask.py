"""crnn on Dask: batch inference, out-of-core training and many-series forecasts.

Model search needs nothing from here: the estimators are plain scikit-learn
estimators, so ``GridSearchCV`` / ``cross_val_score`` run on a cluster under
``joblib.parallel_config(backend="dask")``.  This module covers what plain
Dask makes awkward:

- :func:`predict` -- any prediction method over a chunked dask array of
  samples (3-D, or of frames with a convolutional front-end; a
  lazy dask array back), a dask bag of variable-length sequences (a lazy bag
  back) or a list of them (a list back), computed on the workers, the
  fitted model shipped once (one task of the graph that every block depends
  on), not once per block;
- :func:`fit_incremental` -- ``partial_fit`` over the chunks of a dask array
  (or the partitions of a bag) that need not fit in memory: chunks are
  computed on the workers one ahead of the training, in a shuffled order per
  epoch (dask-ml's ``Incremental`` handles only 2-D blocks);
- :func:`collect_series`, :func:`fit_forecaster` and :func:`forecast` -- an
  :class:`~crnn.RNNForecaster` over many series stored in a long dask
  dataframe (a series-id column), with the forecasts of every series
  computed per partition on the workers.

Needs ``dask`` (``pip install "crnn[dask]"``; ``distributed`` for a cluster).
"""
import copy
import inspect
import numbers
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._base.fitting import fit_lock as _fit_lock
from ._forecasting.forecaster import _pandas

try:
    import dask
    import dask.array as da
    import dask.bag as db
except ImportError as exc:                # pragma: no cover - dask is optional
    raise ImportError(
        "crnn.dask needs dask: pip install \"crnn[dask]\" (dask[array,bag,dataframe] and "
        "distributed).") from exc

__all__ = ["collect_series", "fit_forecaster", "fit_incremental", "forecast", "predict"]


def _model_task(estimator):
    """The estimator as one task of a graph (a Delayed with a fresh key):
    blocks that take it as an argument share that one key, so a distributed
    scheduler ships the model to each worker once, not with every block."""
    return dask.delayed(estimator, name=f"crnn-model-{uuid.uuid4().hex}", traverse=False)


def _method(estimator, method):
    if not isinstance(method, str) or not callable(getattr(estimator, method, None)):
        raise ValueError(f"{type(estimator).__name__} has no method {method!r}.")
    check_is_fitted(estimator)
    return getattr(estimator, method)


def _apply_block(block, estimator, method, params, dtype, row_shape):
    if len(block) == 0:     # a chunk left empty by filtering: no call, no samples
        return np.empty((0,) + tuple(row_shape), dtype=dtype)
    return np.asarray(getattr(estimator, method)(block, **params), dtype=dtype)


def _apply_list(items, estimator, method, params):
    items = list(items)
    if not items:
        return []
    out = getattr(estimator, method)(items, **params)
    return list(out)


def _array_ndims(estimator):
    """(the dimensions a dask array of samples may have, what they mean):
    the estimator's own answer (``_sample_ndims``: frames for a sequence
    model with a convolutional front-end, images for a scene labeller),
    else sequences."""
    own = getattr(estimator, "_sample_ndims", None)
    if callable(own):
        return own()
    return (2, 3), "2-D or 3-D (n_samples, n_timesteps[, n_features])"


def _check_ndim(X, estimator):
    ndims, what = _array_ndims(estimator)
    if X.ndim not in ndims:
        raise ValueError(f"X must be {what}; got {X.ndim} dimension(s).")


def _n_workers():
    """Workers of the current distributed client, else this machine's cores."""
    try:
        from distributed import default_client
        return max(1, len(default_client().scheduler_info(n_workers=-1)["workers"]))
    except (ImportError, ValueError, TypeError):
        from ._nn.threads import cpu_count
        return cpu_count()


def predict(estimator, X, *, method="predict", npartitions=None, **params):
    """Apply a fitted estimator's prediction method to a large collection,
    in parallel on Dask's workers.

    Parameters
    ----------
    estimator : fitted estimator
        A crnn estimator (or any estimator whose ``method`` maps a batch of
        samples to one output per sample).
    X : dask array, numpy array, dask bag or list of arrays
        A 2-D or 3-D array of samples (n_samples, n_timesteps[, n_features]),
        or, for a model with a convolutional front-end (``conv``), of
        frames (n_samples, n_timesteps, height, width[, channels]), or, for
        an RNNSceneLabeler, of images (n_samples, height, width[, channels]),
        chunked along samples (chunks along the other axes are merged); a
        numpy array (or ``np.memmap``) is wrapped with ``dask.array.from_array``.
        A dask bag or a list of 2-D arrays: variable-length sequences.
    method : str, default="predict"
        The method to apply: "predict", "predict_proba", "predict_log_proba",
        "transcribe", ...  It must return one row per sample (``return_state``
        is not supported).
    npartitions : int, optional
        For a list: partitions to split it into (default: twice the workers).
    **params
        Passed to the method.

    Returns
    -------
    dask array (lazy; chunks along samples as X's), dask bag (lazy; one item
    per sequence) for a bag, or a list (computed) for a list.

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from distributed import Client
    >>> from crnn import RNNRegressor
    >>> from crnn.dask import predict
    >>> X = np.random.default_rng(0).normal(size=(64, 10, 3))
    >>> y = X[:, :, 0].sum(axis=1)
    >>> reg = RNNRegressor(hidden_size=8, max_iter=5, random_state=0).fit(X, y)
    >>> client = Client(processes=False, n_workers=1, threads_per_worker=1)
    >>> X_large = da.from_array(X, chunks=(16, 10, 3))   # e.g. da.from_zarr(...)
    >>> pred = predict(reg, X_large)                     # lazy, chunked as X_large
    >>> pred.chunks
    ((16, 16, 16, 16),)
    >>> bool(np.allclose(pred.compute(), reg.predict(X)))
    True
    >>> sequences = [X[0, :4], X[1, :7], X[2]]           # of different lengths
    >>> len(predict(reg, sequences))                     # a list in, a list back
    3
    >>> client.close()
    """
    fn = _method(estimator, method)
    if params.get("return_state"):
        raise ValueError("return_state=True is not supported by crnn.dask.predict.")
    if params.get("initial_state") is not None:
        raise ValueError("initial_state (one row per sample) cannot be split by blocks; "
                         "crnn.dask.predict does not take it.")
    if isinstance(X, np.ndarray):
        X = da.from_array(X, chunks=("auto",) + (-1,) * (X.ndim - 1))
    if isinstance(X, da.Array):
        return _predict_array(fn, estimator, X, method, params)
    if isinstance(X, db.Bag):
        return X.map_partitions(_apply_list, _model_task(estimator), method, params)
    if isinstance(X, (list, tuple)):
        if not X:
            raise ValueError("X is an empty list.")
        if npartitions is None:
            npartitions = 2 * _n_workers()
        if isinstance(npartitions, bool) or not isinstance(npartitions, numbers.Integral) \
                or npartitions < 1:
            raise ValueError(f"npartitions must be a positive int; got {npartitions!r}.")
        bag = db.from_sequence(X, npartitions=min(int(npartitions), len(X)))
        return bag.map_partitions(_apply_list, _model_task(estimator), method,
                                  params).compute()
    raise TypeError("X must be a dask array, a numpy array, a dask bag or a list of arrays; "
                    f"got {type(X).__name__}.")


def _predict_array(fn, estimator, X, method, params):
    _check_ndim(X, estimator)
    if any(np.isnan(c) for c in X.shape):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first.")
    X = X.rechunk({i: -1 for i in range(1, X.ndim)})      # whole sequences per block
    # the output's shape and dtype per sample, from one sample of zeros
    probe = np.asarray(fn(np.zeros((1,) + X.shape[1:], dtype=X.dtype), **params))
    if probe.ndim == 0 or probe.shape[0] != 1:
        raise ValueError(f"{type(estimator).__name__}.{method} does not return one row per "
                         "sample; crnn.dask.predict cannot split it by blocks.")
    dtype = probe.dtype
    if dtype.kind in "US" and dtype != np.asarray(getattr(estimator, "classes_", [])).dtype:
        dtype = np.dtype(object)        # strings whose longest is not known before computing
    chunks = (X.chunks[0],) + tuple((s,) for s in probe.shape[1:])
    kwargs = {}
    if probe.ndim < X.ndim:
        kwargs["drop_axis"] = list(range(probe.ndim, X.ndim))
    elif probe.ndim > X.ndim:
        kwargs["new_axis"] = list(range(X.ndim, probe.ndim))
    return da.map_blocks(_apply_block, X, _model_task(estimator), method, params, dtype,
                         probe.shape[1:], chunks=chunks, dtype=dtype,
                         meta=np.empty((0,) * probe.ndim, dtype=dtype), **kwargs)


# ---------------------------------------------------------------------------
# out-of-core training

def _blocks(estimator, X, y, sample_weight):
    """X, y (and weights) -> a list of (X block, y block, w block) Delayed
    objects, one per chunk (array) or partition (bag)."""
    if isinstance(X, db.Bag):
        if not isinstance(y, db.Bag) or y.npartitions != X.npartitions:
            raise ValueError("With a dask bag X, y must be a dask bag with the same "
                             f"partitions ({X.npartitions}).")
        ws = [None] * X.npartitions
        if sample_weight is not None:
            if not isinstance(sample_weight, db.Bag) \
                    or sample_weight.npartitions != X.npartitions:
                raise ValueError("With a dask bag X, sample_weight must be a dask bag with the "
                                 "same partitions.")
            ws = sample_weight.to_delayed()
        return list(zip(X.to_delayed(), y.to_delayed(), ws))
    if isinstance(X, np.ndarray):
        X = da.from_array(X, chunks=("auto",) + (-1,) * (X.ndim - 1))
    if not isinstance(X, da.Array):
        raise TypeError("X must be a dask array, a numpy array (np.memmap included) or a dask "
                        f"bag; got {type(X).__name__}.")
    _check_ndim(X, estimator)
    if np.isnan(X.shape[0]):
        raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first.")
    X = X.rechunk({i: -1 for i in range(1, X.ndim)})
    n = X.shape[0]

    def aligned(a, name):
        if isinstance(a, db.Bag):
            raise TypeError(f"With a dask array X, {name} must be an array, not a dask bag.")
        a = a if isinstance(a, da.Array) else da.asarray(np.asarray(a))
        if a.ndim == 0 or a.shape[0] != n:
            raise ValueError(f"{name} has {a.shape[0] if a.ndim else 'no'} samples; X has {n}.")
        return a.rechunk((X.chunks[0],) + tuple((s,) for s in a.shape[1:]))

    xs = X.to_delayed().ravel()
    ys = aligned(y, "y").to_delayed().ravel()
    ws = [None] * len(xs)
    if sample_weight is not None:
        ws = aligned(sample_weight, "sample_weight").to_delayed().ravel()
    # chunks left empty (by filtering, then compute_chunk_sizes) hold nothing to train on
    blocks = [b for b, size in zip(zip(xs, ys, ws), X.chunks[0]) if size]
    if not blocks:
        raise ValueError("X has no samples (every chunk is empty).")
    return blocks


def _needs_classes(estimator):
    return (not hasattr(estimator, "classes_")
            and "classes" in inspect.signature(estimator.partial_fit).parameters)


def _all_labels(y):
    if isinstance(y, db.Bag):
        labels = [np.ravel(np.asarray(v)) for v in y.compute()]
        if not labels:
            raise ValueError("y has no samples (every partition is empty).")
        return np.unique(np.concatenate(labels))
    if isinstance(y, da.Array):
        return da.unique(y.ravel()).compute()
    return np.unique(np.asarray(y))


_INTERRUPTED = "Training interrupted by user"


def fit_incremental(estimator, X, y, epochs=1, shuffle=True, random_state=None, *,
                    sample_weight=None, classes=None):
    """Train with ``partial_fit`` over the chunks of data that need not fit
    in memory.

    Each epoch visits every chunk once (in a new random order with
    ``shuffle``); each visit is one ``partial_fit`` call, which shuffles
    within the chunk.  A chunk is computed (read, on the workers of the
    current distributed client, else by dask's local scheduler) while the
    previous one trains, so at most two chunks are in memory here.

    Parameters
    ----------
    estimator : estimator with ``partial_fit``
        Trained in place (it continues from its current state if fitted).
    X : dask array, numpy array / np.memmap, or dask bag
        Samples (n_samples, n_timesteps[, n_features]), or frames
        (n_samples, n_timesteps, height, width[, channels]) for a model with
        ``conv``, chunked along samples
        (a numpy array is wrapped with ``dask.array.from_array``); or a bag
        of variable-length sequences (y then a bag with the same partitions).
    y : dask array, numpy array, or dask bag
        Targets; rechunked to X's chunks.
    epochs : int, default=1
        Passes over the data.
    shuffle : bool, default=True
        Visit the chunks in a random order each epoch.
    random_state : int, RandomState or None, default=None
        The chunk order (the estimator's own random_state drives the rest).
    sample_weight : dask array or bag, optional
        Per-sample weights, aligned with X.
    classes : array, optional
        Every label (classifiers, first training call); read from y when
        omitted.

    Returns
    -------
    estimator
        The trained estimator.  If a chunk fails to compute or to train, the
        estimator is left as it was before this call.  A Ctrl-C stops after
        the current batch and keeps what was trained (as ``fit`` does).

    Examples
    --------
    >>> import numpy as np
    >>> import dask.array as da
    >>> from crnn import RNNClassifier
    >>> from crnn.dask import fit_incremental
    >>> rng = np.random.default_rng(0)
    >>> X = da.from_array(rng.normal(size=(256, 10, 3)), chunks=(64, 10, 3))
    >>> y = (X[:, -1, 0] > 0).astype(int)                # lazy too
    >>> clf = fit_incremental(RNNClassifier(hidden_size=8, random_state=0), X, y,
    ...                       epochs=2, random_state=0)
    >>> clf.n_iter_, clf.t_        # 4 chunks x 2 epochs, a partial_fit call each
    (8, 512)
    >>> clf.classes_
    array([0, 1])
    """
    if not callable(getattr(estimator, "partial_fit", None)):
        raise TypeError(f"{type(estimator).__name__} has no partial_fit.")
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(f"epochs must be a positive int; got {epochs!r}.")
    blocks = _blocks(estimator, X, y, sample_weight)
    rng = check_random_state(random_state)
    fit_kwargs = {}
    if classes is not None:
        fit_kwargs["classes"] = np.asarray(classes)
    elif _needs_classes(estimator):
        fit_kwargs["classes"] = _all_labels(y)
    order = [i for _ in range(int(epochs))
             for i in (rng.permutation(len(blocks)) if shuffle else range(len(blocks)))]
    # the whole stream under the estimator's fit lock (re-entrant: each
    # partial_fit takes it again): another thread's fit on the same estimator
    # waits, so a failure's restore cannot drop its work
    with _fit_lock(estimator):
        return _stream(estimator, blocks, order, fit_kwargs)


def _stream(estimator, blocks, order, fit_kwargs):
    before = copy.deepcopy(estimator.__dict__)
    # one thread reads the next chunk (dask.compute: on the workers when a
    # distributed client is active) while this one trains on the current one
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crnn-prefetch")
    trained = 0
    try:
        nxt = pool.submit(dask.compute, *blocks[order[0]])
        for j in range(len(order)):
            xb, yb, wb = nxt.result()
            if j + 1 < len(order):
                nxt = pool.submit(dask.compute, *blocks[order[j + 1]])
            if len(xb) == 0:        # an empty partition of a bag: nothing to train on
                continue
            trained += 1
            if wb is not None:
                fit_kwargs["sample_weight"] = wb
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                estimator.partial_fit(xb, yb, **fit_kwargs)
            fit_kwargs.pop("classes", None)
            stop = False
            for w in caught:       # partial_fit's own Ctrl-C note ends the stream too
                stop = stop or str(w.message).startswith(_INTERRUPTED)
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            if stop:
                break
        if not trained:
            raise ValueError("X has no samples (every partition is empty).")
    except KeyboardInterrupt:
        warnings.warn(f"{_INTERRUPTED}; the model keeps the weights after the last completed "
                      "chunk.", UserWarning, stacklevel=3)
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(before)
        raise
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    return estimator


# ---------------------------------------------------------------------------
# many series in a long dataframe

def _columns(target):
    return [target] if isinstance(target, str) else list(target)


def _to_dask_frame(df):
    import dask.dataframe as dd
    if isinstance(df, dd.DataFrame):
        return df
    pd = _pandas()
    if isinstance(df, pd.DataFrame):
        return dd.from_pandas(df, npartitions=max(1, min(len(df), _n_workers())))
    raise TypeError(f"df must be a pandas or dask DataFrame; got {type(df).__name__}.")


def _check_frame(df, series_id, target, time):
    cols = [series_id] + ([time] if time is not None else []) + _columns(target)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"df has no column(s) {missing}; it has {list(df.columns)}.")
    if len(set(cols)) != len(cols):
        raise ValueError(f"series_id, time and target must be different columns; got {cols}.")
    return cols


_ORDER = "__crnn_row__"


def _series_of(pdf, series_id, target, time):
    """A pandas frame -> {id: series ordered by time (pandas Series, or a
    DataFrame for several target columns, indexed by the time column)}.
    Without a time column, rows are in frame order (the _ORDER column's,
    when present)."""
    pd = _pandas()
    targets = _columns(target)
    out = {}
    for key, g in pdf.groupby(series_id, sort=True, dropna=False):
        if pd.isna(key):
            raise ValueError(f"the series-id column {series_id!r} has missing values.")
        if time is None and _ORDER in g.columns:
            g = g.sort_values(_ORDER, kind="stable")
        if time is not None:
            g = g.sort_values(time, kind="stable")
            if g[time].duplicated().any():
                raise ValueError(f"series {key!r} has repeated times in column {time!r}.")
            g = g.set_index(time)
            if isinstance(g.index, pd.DatetimeIndex) and g.index.freq is None \
                    and len(g) >= 3:
                g.index = pd.DatetimeIndex(g.index, freq="infer")     # None if irregular
        else:
            g = g.reset_index(drop=True)
        out[key] = g[targets[0]] if isinstance(target, str) else g[targets]
    return out


def collect_series(df, *, series_id, target, time=None):
    """The series of a long dataframe, read on the workers.

    Parameters
    ----------
    df : dask or pandas DataFrame
        One row per (series, time): a series-id column, the target
        column(s) and optionally a time column.  A series may span
        partitions.
    series_id : str
        The column naming each row's series.
    target : str or list of str
        The value column (a Series per id) or columns (a DataFrame per id).
    time : str, optional
        The column that orders each series and becomes its index (a
        datetime column gets its frequency inferred, so forecasts carry
        dates); without it, rows keep their order in the frame.

    Returns
    -------
    dict
        {series id: pandas Series or DataFrame}, in sorted id order.

    Examples
    --------
    >>> import pandas as pd
    >>> import dask.dataframe as dd
    >>> from crnn.dask import collect_series
    >>> df = pd.DataFrame({
    ...     "store": ["b", "a", "b", "a", "b", "a"],
    ...     "day": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-02",
    ...                            "2024-01-01", "2024-01-03", "2024-01-03"]),
    ...     "sales": [5.0, 2.0, 6.0, 1.0, 7.0, 3.0]})
    >>> series = collect_series(dd.from_pandas(df, npartitions=2), series_id="store",
    ...                         target="sales", time="day")
    >>> list(series)
    ['a', 'b']
    >>> series["a"].tolist(), series["a"].index.freqstr     # ordered by day
    ([1.0, 2.0, 3.0], 'D')
    """
    ddf = _to_dask_frame(df)
    cols = _check_frame(ddf, series_id, target, time)
    parts = dask.compute(*ddf[cols].to_delayed())
    pd = _pandas()
    rows = pd.concat(parts, ignore_index=True)
    if not len(rows):
        raise ValueError("df has no rows.")
    return _series_of(rows, series_id, target, time)


def fit_forecaster(forecaster, df, *, series_id, target, time=None):
    """Fit an :class:`~crnn.RNNForecaster`'s global model on every series
    of a long dataframe (read with :func:`collect_series`; the network
    trains here, on all cores).

    Parameters
    ----------
    forecaster : RNNForecaster
        Fitted in place.
    df : dask or pandas DataFrame
        The series in long format, as for :func:`collect_series`.
    series_id, target, time : str (target: str or list of str)
        As for :func:`collect_series`.

    Returns
    -------
    forecaster
        Fitted; its training series are those of ``collect_series`` in
        sorted id order, so ``forecaster.predict(steps)`` lists their
        forecasts in that order.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import dask.dataframe as dd
    >>> from crnn import RNNForecaster
    >>> from crnn.dask import fit_forecaster
    >>> rng = np.random.default_rng(0)
    >>> season = np.sin(np.arange(48) * np.pi / 6)
    >>> df = pd.DataFrame({
    ...     "store": np.repeat(["a", "b", "c"], 48),
    ...     "month": np.tile(pd.date_range("2020-01-01", periods=48, freq="MS"), 3),
    ...     "sales": np.concatenate([k + season + rng.normal(scale=0.1, size=48)
    ...                              for k in (10, 20, 30)])})
    >>> fc = fit_forecaster(RNNForecaster(hidden_size=8, max_iter=5, random_state=0),
    ...                     dd.from_pandas(df, npartitions=2), series_id="store",
    ...                     target="sales", time="month")
    >>> fc.n_series_
    3
    >>> [f.index[0].strftime("%Y-%m") for f in fc.predict(2)]   # stores a, b, c
    ['2024-01', '2024-01', '2024-01']
    """
    series = collect_series(df, series_id=series_id, target=target, time=time)
    return forecaster.fit(list(series.values()))


def _forecast_partition(pdf, forecaster, steps, series_id, target, time, step_name):
    pd = _pandas()
    series = _series_of(pdf, series_id, target, time)
    targets = _columns(target)
    if not series:
        return _empty_forecast(pdf, series_id, targets, time, step_name)
    out = forecaster.predict(steps, y=list(series.values()))
    frames = []
    for key, f in zip(series.keys(), out):
        values = np.asarray(f, dtype=np.float64).reshape(steps, -1)
        frame = pd.DataFrame(values, columns=targets)
        if time is not None:
            frame.insert(0, time, pd.Series(np.asarray(f.index)).astype(pdf[time].dtype))
        else:
            frame.insert(0, step_name, np.arange(1, steps + 1, dtype=np.int64))
        frame.insert(0, series_id, key)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _empty_forecast(meta, series_id, targets, time, step_name):
    pd = _pandas()
    data = {series_id: pd.Series([], dtype=meta[series_id].dtype)}
    if time is not None:
        data[time] = pd.Series([], dtype=meta[time].dtype)
    else:
        data[step_name] = pd.Series([], dtype=np.int64)
    for c in targets:
        data[c] = pd.Series([], dtype=np.float64)
    return pd.DataFrame(data)


def forecast(forecaster, df, steps, *, series_id, target, time=None, shuffle=True):
    """Forecast every series of a long dataframe with a fitted
    :class:`~crnn.RNNForecaster`, per partition on the workers (each series
    scaled on its own history, as ``predict(steps, y=...)``).

    Parameters
    ----------
    forecaster : fitted RNNForecaster
    df : dask or pandas DataFrame
        Histories in long format, as for :func:`collect_series`.
    steps : int
        Forecast horizon.
    series_id, target, time : str
        As for :func:`collect_series`.
    shuffle : bool, default=True
        First gather each series into one partition (``df.shuffle(on=
        series_id)``).  False when every series already lies in one
        partition (e.g. the files were written per series): a series split
        across partitions would then be forecast from part of its history.

    Returns
    -------
    dask DataFrame (lazy)
        Columns: series_id, time (the dates or index values after each
        history) or "step" (1..steps) without a time column, and the target
        column(s); ``steps`` rows per series.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import dask.dataframe as dd
    >>> from crnn import RNNForecaster
    >>> from crnn.dask import fit_forecaster, forecast
    >>> rng = np.random.default_rng(0)
    >>> season = np.sin(np.arange(48) * np.pi / 6)
    >>> df = dd.from_pandas(pd.DataFrame({
    ...     "store": np.repeat(["a", "b", "c"], 48),
    ...     "month": np.tile(pd.date_range("2020-01-01", periods=48, freq="MS"), 3),
    ...     "sales": np.concatenate([k + season + rng.normal(scale=0.1, size=48)
    ...                              for k in (10, 20, 30)])}), npartitions=2)
    >>> fc = fit_forecaster(RNNForecaster(hidden_size=8, max_iter=5, random_state=0), df,
    ...                     series_id="store", target="sales", time="month")
    >>> out = forecast(fc, df, 3, series_id="store", target="sales", time="month")
    >>> result = out.compute().sort_values(["store", "month"])
    >>> list(result.columns), len(result)
    (['store', 'month', 'sales'], 9)
    >>> result["month"].dt.strftime("%Y-%m").unique().tolist()
    ['2024-01', '2024-02', '2024-03']
    """
    check_is_fitted(forecaster, "model_")
    if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps <= 0:
        raise ValueError(f"steps must be a positive integer; got {steps!r}.")
    if getattr(forecaster, "n_covariates_", 0):
        raise ValueError("crnn.dask.forecast does not pass covariates; this forecaster was "
                         "fitted with X. Forecast with forecaster.predict(steps, X=..., y=...).")
    ddf = _to_dask_frame(df)
    cols = _check_frame(ddf, series_id, target, time)
    ddf = ddf[cols]
    if shuffle and ddf.npartitions > 1:
        if time is None:        # a shuffle does not keep the row order: number the rows
            ddf = ddf.assign(**{_ORDER: 1})
            ddf = ddf.assign(**{_ORDER: ddf[_ORDER].cumsum()})
        ddf = ddf.shuffle(on=series_id)
    step_name = "step"
    if time is None and step_name in cols:
        raise ValueError(f"a column is named {step_name!r}, the name of the forecast-step "
                         "column; rename it.")
    meta = _empty_forecast(ddf._meta, series_id, _columns(target), time, step_name)
    return ddf.map_partitions(_forecast_partition, _model_task(forecaster), int(steps),
                              series_id, target, time, step_name, meta=meta,
                              align_dataframes=False)
