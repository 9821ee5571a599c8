"""Batched beam search for sequence-to-sequence decoding, in numpy.

The model is the caller's: a stateful ``step(tokens, parents)`` that
reorders (and duplicates) its state rows by ``parents``, advances every row
by one token and returns the next-token log-probabilities of every row.
:func:`beam_search` drives it for many sentences at once: one ``step`` call
per time step for the live hypotheses of all unfinished sentences, with a
vectorized top-k per sentence.
"""
import math
import numbers

import numpy as np

from .._base.params import check_int_arg

__all__ = ["beam_search"]


def _topk_rows(x, k):
    """Column indices of the k best entries of each row of the 2-D array x,
    best first: by decreasing value, ties by increasing column (what a
    stable argsort of -x gives, in O(columns) per row rather than a full
    sort).  x holds no NaN; k <= x.shape[1]."""
    n_rows, n_cols = x.shape
    if k >= n_cols:
        return np.argsort(-x, axis=1, kind="stable")
    # the k-th best value of each row; every entry above it is taken, and
    # of those equal to it the leftmost ones until there are k
    thresh = -np.partition(-x, k - 1, axis=1)[:, k - 1:k]
    above = x > thresh
    tied = x == thresh
    need = k - above.sum(axis=1, keepdims=True)
    take = above | (tied & (np.cumsum(tied, axis=1) <= need))
    cols = np.nonzero(take)[1].reshape(n_rows, k)
    order = np.argsort(-np.take_along_axis(x, cols, axis=1), axis=1, kind="stable")
    return np.take_along_axis(cols, order, axis=1)


def _call_step(step, tokens, parents, n_vocab, bos, eos):
    """step(tokens, parents) as float64 (R, V), checked; returns (logp, V)."""
    out = step(tokens, parents)
    try:
        logp = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"step must return an array of log-probabilities; got "
                         f"{type(out).__name__} ({exc}).") from None
    R = len(tokens)
    if logp.ndim != 2 or logp.shape[0] != R:
        raise ValueError(f"step returned log-probabilities of shape {logp.shape}; "
                         f"expected (R, V) with R = {R} rows, one per token passed.")
    V = logp.shape[1]
    if n_vocab is None:
        if V <= max(bos, eos):
            raise ValueError(f"step returned V = {V} columns, but bos = {bos} and "
                             f"eos = {eos} need V > {max(bos, eos)}.")
    elif V != n_vocab:
        raise ValueError(f"step returned V = {V} columns after returning {n_vocab} "
                         f"before; the vocabulary size must not change.")
    if np.isnan(logp).any() or np.isposinf(logp).any():
        raise ValueError("step returned NaN or +inf log-probabilities.")
    return logp, V


def beam_search(step, n_sentences, *, beam_size, bos, eos, max_len, length_penalty=1.0):
    """Beam search of ``n_sentences`` sentences at once with a stateful step model.

    Parameters
    ----------
    step : callable
        ``step(tokens, parents) -> logp``, the caller's model.  ``tokens`` and
        ``parents`` are 1-D ``np.intp`` arrays of the same length R, one entry
        per live hypothesis row.  ``parents[r]`` is the index of row r's parent
        among the rows of the *previous* call; the model must reorder (and
        duplicate) its state rows by ``parents``, then advance each row by
        one step with its token, and return ``logp``, a float array of shape
        (R, V): the log-probabilities of the next token of every row (each
        row's ``exp`` summing to 1; ``-inf`` allowed, NaN and ``+inf`` not).
        The first call has R = ``n_sentences``, every token ``bos`` and
        ``parents = arange(n_sentences)``: row i is sentence i's initial
        state.  Later calls order their rows by sentence, then by hypothesis
        rank (best first); a sentence that has stopped contributes no rows,
        and no sentence has more than ``beam_size`` rows.  There are at most
        ``max_len`` calls, and none once every sentence has stopped.
    n_sentences : int
        Number of sentences (initial state rows), >= 0.  With 0, ``step`` is
        not called.
    beam_size : int
        Number of hypotheses kept per sentence, >= 1.  1 is greedy decoding
        (the most probable token at every step, the lowest id on ties).
    bos, eos : int
        Begin- and end-of-sentence token ids (>= 0, < V; they may be equal).
    max_len : int
        Most generated tokens per sentence, the ``eos`` included, >= 1.
    length_penalty : float, default 1.0
        Finite, >= 0.  A finished hypothesis is scored as its cumulative
        log-probability divided by ``length ** length_penalty``, its length
        counting the generated tokens and ``eos`` when it has one (``bos`` not
        counted): 0 ranks by the raw log-probability, 1 by the mean
        log-probability per token.

    Returns
    -------
    sequences : list of ndarray
        Per sentence, the chosen hypothesis's token ids (``np.intp``),
        without ``bos`` and without ``eos``.
    scores : ndarray
        Per sentence, the chosen hypothesis's normalized score (float64,
        shape ``(n_sentences,)``).

    Raises
    ------
    ValueError
        On an invalid argument, or when ``step`` returns an array that is not
        (R, V), has a V that changes between calls or does not exceed ``bos``
        and ``eos``, or holds NaN or ``+inf``.

    Notes
    -----
    This is the simple standard variant, which lets the beam shrink.  At
    each step a sentence with F finished hypotheses extends each of its live
    hypotheses by every token (cumulative log-probability: the parent's plus
    the token's) and keeps the best ``beam_size - F`` candidates by
    cumulative raw log-probability; ties go to the lower flat index (parent
    rank, then token id), and candidates of log-probability ``-inf`` are
    dropped.  Kept candidates that end with ``eos`` are finished; the others
    stay live, so a sentence has ``beam_size - F`` live hypotheses at most,
    fewer as hypotheses finish.  A sentence stops when it has ``beam_size``
    finished hypotheses or no live one left; after ``max_len`` steps the
    live hypotheses join the finished ones as they are (without ``eos``,
    length ``max_len``).  Each sentence returns its finished hypothesis of
    best normalized score; on ties, the one that finished first (then the
    better ranked).
    """
    if not callable(step):
        raise ValueError(f"step must be callable; got {type(step).__name__}.")
    n = check_int_arg(n_sentences, "n_sentences", 0)
    beam_size = check_int_arg(beam_size, "beam_size", 1)
    max_len = check_int_arg(max_len, "max_len", 1)
    bos = check_int_arg(bos, "bos", 0)
    eos = check_int_arg(eos, "eos", 0)
    if (isinstance(length_penalty, bool) or not isinstance(length_penalty, numbers.Real)
            or not math.isfinite(length_penalty) or length_penalty < 0):
        raise ValueError(f"length_penalty must be a finite number >= 0; got "
                         f"{length_penalty!r}.")
    length_penalty = float(length_penalty)
    if n == 0:
        return [], np.zeros(0, np.float64)

    # the best finished hypothesis so far, per sentence
    best_score = np.full(n, -np.inf)
    best_tok = np.zeros((n, max_len), np.intp)
    best_ntok = np.zeros(n, np.intp)
    n_fin = np.zeros(n, np.intp)

    # the live hypotheses, one per row of the latest step call, sorted by
    # sentence then rank
    l_sent = np.arange(n, dtype=np.intp)
    l_rank = np.zeros(n, np.intp)
    l_score = np.zeros(n, np.float64)
    l_seq = np.zeros((n, 0), np.intp)
    tokens = np.full(n, bos, np.intp)
    parents = np.arange(n, dtype=np.intp)
    V = None

    for t in range(1, max_len + 1):
        logp, V = _call_step(step, tokens, parents, V, bos, eos)
        R = len(l_sent)
        # the active sentences, and each row's position among them
        starts = np.flatnonzero(np.r_[True, l_sent[1:] != l_sent[:-1]])
        act = l_sent[starts]
        S = len(act)
        pos = np.repeat(np.arange(S, dtype=np.intp), np.diff(np.r_[starts, R]))
        L = int(l_rank.max()) + 1
        # candidates: (sentence, parent rank * V + token), -inf where no parent
        cand = np.full((S, L, V), -np.inf)
        cand[pos, l_rank] = l_score[:, None] + logp
        cand = cand.reshape(S, L * V)
        row_of = np.zeros((S, L), np.intp)
        row_of[pos, l_rank] = np.arange(R, dtype=np.intp)

        quota = beam_size - n_fin[act]            # >= 1 for an active sentence
        K = min(beam_size, L * V)
        sel = _topk_rows(cand, K)
        sel_score = np.take_along_axis(cand, sel, axis=1)
        keep = (np.arange(K) < quota[:, None]) & np.isfinite(sel_score)
        s_pos, s_k = np.nonzero(keep)            # row-major: by sentence, then rank
        flat = sel[s_pos, s_k]
        c_score = sel_score[s_pos, s_k]
        c_tok = flat % V
        c_parent = row_of[s_pos, flat // V]
        c_sent = act[s_pos]
        is_eos = c_tok == eos

        # hypotheses finishing now: those ending with eos, and at max_len all
        done = is_eos if t < max_len else np.ones(len(c_tok), bool)
        if done.any():
            d_sent, d_score = c_sent[done], c_score[done]
            d_norm = d_score / float(t) ** length_penalty
            # the first best per sentence (entries are in sentence, rank order)
            order = np.lexsort((-d_norm, d_sent))
            first = np.r_[True, d_sent[order][1:] != d_sent[order][:-1]]
            pick = np.flatnonzero(done)[order[first]]
            p_sent, p_norm = c_sent[pick], d_norm[order[first]]
            better = p_norm > best_score[p_sent]      # scores are finite
            pick, p_sent, p_norm = pick[better], p_sent[better], p_norm[better]
            best_score[p_sent] = p_norm
            best_tok[p_sent, :t - 1] = l_seq[c_parent[pick]]
            best_tok[p_sent, t - 1] = c_tok[pick]
            best_ntok[p_sent] = np.where(is_eos[pick], t - 1, t)
            n_fin += np.bincount(d_sent, minlength=n)
        if t == max_len:
            break

        live = ~is_eos & (n_fin[c_sent] < beam_size)
        if not live.any():
            break
        c_parent, c_tok = c_parent[live], c_tok[live]
        l_sent, l_score = c_sent[live], c_score[live]
        l_seq = np.concatenate([l_seq[c_parent], c_tok[:, None]], axis=1)
        starts = np.flatnonzero(np.r_[True, l_sent[1:] != l_sent[:-1]])
        l_rank = np.arange(len(l_sent), dtype=np.intp) - np.repeat(
            starts, np.diff(np.r_[starts, len(l_sent)]))
        tokens = np.ascontiguousarray(c_tok, dtype=np.intp)
        parents = np.ascontiguousarray(c_parent, dtype=np.intp)

    sequences = [best_tok[i, :best_ntok[i]].copy() for i in range(n)]
    return sequences, best_score
