"""Sequences as the kernels read them: one row per time step.

X is either an array, (n_samples, n_timesteps, n_features) or
(n_samples, n_timesteps) for univariate series, or a list (or object
array) of per-sequence arrays (n_timesteps_i, n_features) or
(n_timesteps_i,) of possibly different lengths.  Either way it becomes
``rows`` (sum of the lengths, n_features), C-contiguous, with ``start`` and
``lens`` per sample; for an array this is a view, no copy.
"""
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse
from sklearn.utils.validation import check_array


@dataclass
class SeqData:
    rows: np.ndarray        # (sum of lengths, n_features)
    start: np.ndarray       # (n_samples,) first row of each sample
    lens: np.ndarray        # (n_samples,) steps of each sample
    ragged_input: bool      # X was a list of sequences (per-step outputs go back as a list)

    @property
    def n_samples(self):
        return len(self.lens)

    @property
    def n_features(self):
        return self.rows.shape[1]

    @cached_property
    def max_len(self):
        return int(self.lens.max()) if len(self.lens) else 0

    @cached_property
    def uniform(self):
        return len(self.lens) == 0 or bool(np.all(self.lens == self.lens[0]))

    def split_rows(self, arr):
        """Per-sample pieces of an array with a row per step."""
        if not self.ragged_input:
            return arr.reshape((self.n_samples, self.max_len) + arr.shape[1:])
        return [arr[s:s + n] for s, n in zip(self.start, self.lens)]

    def order(self):
        """Samples by decreasing length (stable): the kernels' processing order."""
        if self.uniform:
            return np.arange(self.n_samples, dtype=np.intp)
        return np.argsort(-self.lens, kind="stable").astype(np.intp)


def is_sequence_list(X):
    """Ragged input: an object array of sequences, a list of arrays, or a
    list whose items have different lengths.  (An equal-length list of lists
    of numbers is an ordinary array.)"""
    if isinstance(X, np.ndarray):
        return X.dtype == object and X.ndim == 1 and len(X) > 0 and \
            all(hasattr(x, "__len__") for x in X)
    if isinstance(X, (list, tuple)) and len(X) > 0:
        if all(isinstance(x, np.ndarray) for x in X):
            return True
        try:
            return len({len(x) for x in X}) > 1
        except TypeError:
            return False
    return False


def from_array(X):
    """A checked 3D array -> SeqData (a view)."""
    N, T, D = X.shape
    rows = X.reshape(N * T, D)
    start = np.arange(N, dtype=np.intp) * T
    lens = np.full(N, T, dtype=np.intp)
    data = SeqData(rows, start, lens, False)
    data.__dict__.update(max_len=T, uniform=True)     # known: no pass over lens
    return data


def refuse_non_numbers(a, name):
    """Times, durations and complex numbers are not RNN inputs: numpy would
    cast them to floats (or drop the imaginary part) without a word."""
    kind = getattr(getattr(a, "dtype", None), "kind", None)
    if kind is None and isinstance(a, (list, tuple)):
        try:
            kind = np.asarray(a).dtype.kind
        except (TypeError, ValueError):      # ragged or mixed: the checks after say
            return
    if kind in ("m", "M"):
        raise TypeError(f"{name} holds {'durations' if kind == 'm' else 'dates or times'} "
                        "(numpy timedelta64/datetime64); convert them to numeric features "
                        "first.")
    if kind == "c":
        raise ValueError(f"Complex data not supported: {name} is complex; the network takes "
                         "real numbers.")


def from_list(X, dtype, name="X"):
    """A list of (T_i, D) / (T_i,) sequences -> SeqData (concatenated)."""
    seqs = []
    D = None
    for i, x in enumerate(X):
        if sparse.issparse(x):
            raise TypeError(f"{name}[{i}] is sparse; sequences must be dense arrays.")
        refuse_non_numbers(x, f"{name}[{i}]")
        try:
            a = check_array(x, dtype=dtype, ensure_2d=False, ensure_min_samples=0,
                            ensure_all_finite=True, input_name=f"{name}[{i}]")
        except ValueError as exc:
            if "could not convert" in str(exc) or "Unable to convert" in str(exc):
                raise ValueError(f"{name}[{i}] must hold numbers: {exc}") from exc
            raise
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(
                f"{name}[{i}] has shape {a.shape}; each sequence must be (n_timesteps, "
                "n_features) or (n_timesteps,)."
            )
        if a.shape[0] == 0:
            raise ValueError(f"{name}[{i}] has 0 time steps; at least 1 is required.")
        if D is None:
            D = a.shape[1]
        elif a.shape[1] != D:
            raise ValueError(
                f"{name}[{i}] has {a.shape[1]} features per step, {name}[0] has {D}."
            )
        seqs.append(a)
    if not seqs:
        raise ValueError(f"{name} is an empty list; at least 1 sequence is required.")
    if D == 0:
        raise ValueError(f"{name} has 0 features per time step.")
    lens = np.array([len(a) for a in seqs], dtype=np.intp)
    start = np.zeros(len(seqs), dtype=np.intp)
    start[1:] = np.cumsum(lens)[:-1]
    rows = np.ascontiguousarray(np.concatenate(seqs, axis=0), dtype=dtype)
    return SeqData(rows, start, lens, True)


def shard_batch(batch, lens, n_shards, uniform):
    """Cut a batch (sample indices) into n_shards shards of balanced total
    length, each sorted by decreasing length as the kernels need.  Returns
    (samples in shard order, shard boundaries)."""
    batch = np.asarray(batch, dtype=np.intp)
    B = len(batch)
    if uniform or n_shards == 1:
        if not uniform:
            batch = batch[np.argsort(-lens[batch], kind="stable")]
        bounds = (np.arange(n_shards + 1, dtype=np.intp) * B) // n_shards
        return batch, bounds
    # by decreasing length, dealt out in snake order 0..S-1, S-1..0, ...:
    # shard sizes differ by at most one and the lengths balance
    srt = batch[np.argsort(-lens[batch], kind="stable")]
    p = np.arange(B)
    lap, pos = np.divmod(p, n_shards)
    shard_of = np.where(lap % 2 == 0, pos, n_shards - 1 - pos)
    key = np.argsort(shard_of, kind="stable")       # keeps the length order inside
    bounds = np.zeros(n_shards + 1, dtype=np.intp)
    bounds[1:] = np.cumsum(np.bincount(shard_of, minlength=n_shards))
    return np.ascontiguousarray(srt[key]), bounds


def per_step_targets(data, y, name="y"):
    """Per-step targets -> (an array with a row per step, aligned with
    data.rows; the number of axes of one step's target: 0 or 1).

    For an array X, y is an array (n_samples, n_timesteps[, k]); for a list
    of sequences, a list of per-sequence arrays (n_timesteps_i[, k])."""
    N = data.n_samples
    if data.ragged_input:
        try:
            parts = [np.asarray(part) for part in y]
        except TypeError as exc:
            raise ValueError(f"{name} must be a list of per-sequence arrays: {exc}") from exc
        if len(parts) != N:
            raise ValueError(f"X has {N} sequences but {name} has {len(parts)}.")
        ndims = {a.ndim for a in parts}
        if not ndims <= {1, 2} or len(ndims) != 1:
            raise ValueError(
                f"each {name}[i] must be (n_timesteps_i,) or (n_timesteps_i, n_outputs), all "
                "alike.")
        for i, a in enumerate(parts):
            if a.shape[0] != data.lens[i]:
                raise ValueError(
                    f"{name}[{i}] has {a.shape[0]} steps but sequence {i} of X has "
                    f"{data.lens[i]}.")
        try:
            rows = np.concatenate(parts, axis=0)
        except ValueError as exc:
            raise ValueError(f"the {name}[i] have different numbers of outputs: {exc}") from exc
        return rows, ndims.pop() - 1
    y = np.asarray(y)
    T = data.max_len
    if y.ndim not in (2, 3) or y.shape[0] != N or y.shape[1] != T:
        raise ValueError(
            f"With return_sequences=True, {name} must have shape (n_samples, n_timesteps"
            f"[, n_outputs]) = ({N}, {T}[, n_outputs]) matching X's steps; got shape "
            f"{y.shape}.")
    return y.reshape((N * T,) + y.shape[2:]), y.ndim - 2


def fast_float_array(X, dtype):
    """The common case without check_array's overhead: a plain float ndarray
    of 2 or 3 dimensions, no empty axis, all finite.  Returns X as a
    C-contiguous array of dtype, or None to take the general path."""
    if type(X) is not np.ndarray or X.dtype.kind != "f" or X.ndim not in (2, 3) or X.size == 0:
        return None
    X = np.ascontiguousarray(X, dtype=dtype)
    total = np.add.reduce(X, axis=None)
    if not np.isfinite(total) and not np.isfinite(X).all():
        return None            # let check_array name the NaN or infinity
    return X
