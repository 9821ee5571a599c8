"""Plain-numpy float64 reference of Connectionist Temporal Classification
(CTC; Graves, Fernandez, Gomez & Schmidhuber, ICML 2006): the loss, its
gradient, greedy decoding and prefix beam search, for testing future kernels.

Written for clarity, not speed: one sequence at a time, on its own length (no
padding), one time step at a time, in log space throughout.

Notation
--------
A sequence has T >= 0 frames of unnormalised scores ``logits`` (T, C) over C
classes, one of which is the blank b (``blank``, default 0).  Per frame,
y_t(k) = softmax(logits_t)(k) and log y_t = log_softmax(logits_t).  A labeling
is l = l_1 .. l_L (L >= 0, every l_i in [0, C) and != b).

Paths and the collapse map B
----------------------------
A path pi = pi_0 .. pi_{T-1} picks one class per frame, with probability
p(pi | x) = prod_t y_t(pi_t).  B(pi) merges runs of equal symbols, then drops
the blanks: B(a a b a c c b) = (a, a, c).  A repeated label therefore needs a
blank between its copies, and l can only be emitted if
T >= L + #{i >= 2 : l_i == l_{i-1}} (:func:`min_input_length`).  The CTC
likelihood and loss are::

    p(l | x) = sum over paths pi with B(pi) = l of p(pi | x)
    loss     = -log p(l | x)          (+inf when no path collapses to l)

For T = 0 the only path is the empty one: p = 1 if L = 0, else 0.

Forward (alpha) recursion
-------------------------
The extended labeling l' (length S = 2L + 1) puts a blank around every label:
l' = (b, l_1, b, l_2, ..., b, l_L, b), i.e. l'_{2i} = b, l'_{2i+1} = l_{i+1}
(0-based s).  alpha_t(s) is the total probability of the prefixes pi_0..pi_t
that sit at position s of l' at frame t and whose collapse is the labeling
read so far::

    alpha_0(0) = y_0(b),  alpha_0(1) = y_0(l_1) (if L >= 1),  alpha_0(s) = 0 else
    alpha_t(s) = y_t(l'_s) * (alpha_{t-1}(s) + alpha_{t-1}(s-1)
                              + [skip(s-2, s)] alpha_{t-1}(s-2))
    p(l | x)   = alpha_{T-1}(S-1) + alpha_{T-1}(S-2)     (the second if L >= 1)

with alpha_{t-1}(s) = 0 for s < 0.  The skip s-2 -> s jumps over a blank and
is allowed iff l'_s != b and l'_s != l'_{s-2} (never into a blank, never
between two copies of the same label).

Backward (beta) recursion
-------------------------
Here beta_t(s) is the total probability of the suffixes pi_{t+1}..pi_{T-1}
that complete the labeling from position s at frame t; it does *not* include
frame t's own y_t (Graves' beta does, hence his division by y_t)::

    beta_{T-1}(S-1) = beta_{T-1}(S-2) = 1,  beta_{T-1}(s) = 0 else
    beta_t(s) = y_{t+1}(l'_s) beta_{t+1}(s) + y_{t+1}(l'_{s+1}) beta_{t+1}(s+1)
                + [skip(s, s+2)] y_{t+1}(l'_{s+2}) beta_{t+1}(s+2)

with beta_{t+1}(s) = 0 for s >= S.  Then for every frame t,
p(l | x) = sum_s alpha_t(s) beta_t(s), and gamma_t(s) = alpha_t(s) beta_t(s) /
p(l | x) is the posterior probability that the path sits at s at frame t.

Gradient
--------
With respect to the unnormalised logits z_t(k) (through the softmax)::

    d loss / d z_t(k) = y_t(k) - (1 / p(l | x)) * sum_{s : l'_s = k} alpha_t(s) beta_t(s)

computed in log space as y_t(k) - sum_{s : l'_s = k} exp(log alpha_t(s) +
log beta_t(s) + loss).  Each row sums to zero (in floating point up to the
roundoff of the loss: ~1e-11 at T = 2000, where loss ~ 6e3).  All sums of probabilities
above are evaluated as ``np.logaddexp`` / log-sum-exp of log-probabilities, so
nothing over- or underflows for long inputs.

Infinite losses (PyTorch's ``torch.nn.CTCLoss``, checked on torch 2.13.0)
-------------------------------------------------------------------------
When p(l | x) = 0 the loss is +inf.  With ``zero_infinity=False`` torch
returns loss = inf and a gradient of NaN at every frame of that sequence
(both w.r.t. its log-probabilities and, through log_softmax, its logits; the
other sequences of the batch are unaffected); this reference mirrors that
(a (T, C) array of NaN).  With ``zero_infinity=True`` both the loss and the
gradient of that sequence are zero (the zero still counts in the "mean").

Decoding
--------
* Best path (greedy): the argmax class of each frame, collapsed by B.
* Prefix beam search (Hannun, Maas, Jurafsky & Ng 2014, arXiv:1408.2873,
  without a language model): see :func:`prefix_beam_search`.
"""
import itertools

import numpy as np

NEG_INF = -np.inf


def log_softmax(logits):
    """Row-wise log-softmax of a (T, C) array, float64."""
    z = np.asarray(logits, dtype=np.float64)
    if z.shape[0] == 0:
        return z.copy()
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def _check(logits, labels, blank):
    """Validated float64 logits (T, C) and int64 labels (L,)."""
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be (T, C), got shape {z.shape}")
    C = z.shape[1]
    if not 0 <= blank < C:
        raise ValueError(f"blank {blank} not in [0, {C})")
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    if lab.size and (lab.min() < 0 or lab.max() >= C or np.any(lab == blank)):
        raise ValueError(f"labels must be in [0, {C}) and differ from blank {blank}")
    return z, lab


def collapse(path, blank=0):
    """B(path): merge runs of equal symbols, then remove the blanks.

    Parameters
    ----------
    path : sequence of int
    blank : int

    Returns
    -------
    tuple of int
    """
    merged = [k for i, k in enumerate(path) if i == 0 or k != path[i - 1]]
    return tuple(int(k) for k in merged if k != blank)


def min_input_length(labels):
    """The fewest frames that can emit ``labels``: L plus one blank between
    each pair of equal consecutive labels."""
    lab = np.asarray(labels).reshape(-1)
    return int(lab.size + np.count_nonzero(lab[1:] == lab[:-1]))


def extend_labels(labels, blank=0):
    """The extended labeling l' = (b, l_1, b, ..., l_L, b), length 2L + 1."""
    lab = np.asarray(labels, dtype=np.int64).reshape(-1)
    ext = np.full(2 * lab.size + 1, blank, dtype=np.int64)
    ext[1::2] = lab
    return ext


def _skip_allowed(ext, blank):
    """skip[s] is True iff the transition s - 2 -> s is allowed (s >= 2,
    l'_s != blank, l'_s != l'_{s-2})."""
    skip = np.zeros(ext.size, dtype=bool)
    skip[2:] = (ext[2:] != blank) & (ext[2:] != ext[:-2])
    return skip


def ctc_alpha(logy, ext, blank=0):
    """Forward variables log alpha_t(s), (T, S); see the module docstring.

    Parameters
    ----------
    logy : ndarray (T, C)
        Log-probabilities (log-softmax of the logits), T >= 1.
    ext : ndarray (S,)
        Extended labeling (:func:`extend_labels`).
    blank : int
    """
    T, S = logy.shape[0], ext.size
    skip = _skip_allowed(ext, blank)
    la = np.full((T, S), NEG_INF)
    la[0, 0] = logy[0, ext[0]]
    if S > 1:
        la[0, 1] = logy[0, ext[1]]
    for t in range(1, T):
        prev = la[t - 1]
        acc = prev.copy()                                   # stay at s
        acc[1:] = np.logaddexp(acc[1:], prev[:-1])          # from s - 1
        acc[2:] = np.where(skip[2:], np.logaddexp(acc[2:], prev[:-2]), acc[2:])
        la[t] = acc + logy[t, ext]
    return la


def ctc_beta(logy, ext, blank=0):
    """Backward variables log beta_t(s), (T, S), excluding frame t's own
    emission; see the module docstring.  Same parameters as :func:`ctc_alpha`."""
    T, S = logy.shape[0], ext.size
    skip = _skip_allowed(ext, blank)
    lb = np.full((T, S), NEG_INF)
    lb[T - 1, S - 1] = 0.0
    if S > 1:
        lb[T - 1, S - 2] = 0.0
    for t in range(T - 2, -1, -1):
        nxt = lb[t + 1] + logy[t + 1, ext]                  # y_{t+1}(l'_s) beta_{t+1}(s)
        acc = nxt.copy()                                    # to s
        acc[:-1] = np.logaddexp(acc[:-1], nxt[1:])          # to s + 1
        acc[:-2] = np.where(skip[2:], np.logaddexp(acc[:-2], nxt[2:]), acc[:-2])
        lb[t] = acc
    return lb


def _log_likelihood(logy, lab, blank):
    """log p(l | x) by the forward recursion (-inf when infeasible)."""
    T = logy.shape[0]
    if T == 0:
        return 0.0 if lab.size == 0 else NEG_INF
    if T < min_input_length(lab):
        return NEG_INF
    ext = extend_labels(lab, blank)
    last = ctc_alpha(logy, ext, blank)[T - 1]
    return float(np.logaddexp(last[-1], last[-2]) if ext.size > 1 else last[-1])


def ctc_loss(logits, labels, blank=0):
    """CTC negative log-likelihood of one sequence, by the forward recursion.

    Parameters
    ----------
    logits : array_like (T, C)
        Unnormalised scores; a log-softmax over C is applied.
    labels : array_like of int (L,)
        The target labeling, L >= 0, no blanks.
    blank : int

    Returns
    -------
    float
        -log p(labels | logits); +inf when T < :func:`min_input_length`.
    """
    z, lab = _check(logits, labels, blank)
    return -_log_likelihood(log_softmax(z), lab, blank)


def ctc_loss_and_grad(logits, labels, blank=0, zero_infinity=False):
    """CTC loss of one sequence and its gradient w.r.t. the logits.

    Parameters
    ----------
    logits : array_like (T, C)
    labels : array_like of int (L,)
    blank : int
    zero_infinity : bool
        What to do when the loss is infinite: if True, return loss 0 and a
        zero gradient; if False, loss +inf and a gradient full of NaN (as
        ``torch.nn.CTCLoss`` does).

    Returns
    -------
    loss : float
    grad : ndarray (T, C)
        y_t(k) - sum_{s : l'_s = k} exp(log alpha_t(s) + log beta_t(s) + loss).
    """
    z, lab = _check(logits, labels, blank)
    logy = log_softmax(z)
    loss = -_log_likelihood(logy, lab, blank)
    if np.isinf(loss):
        return (0.0, np.zeros_like(z)) if zero_infinity else (loss, np.full_like(z, np.nan))
    T, C = z.shape
    if T == 0:
        return loss, np.zeros_like(z)
    ext = extend_labels(lab, blank)
    log_post = ctc_alpha(logy, ext, blank) + ctc_beta(logy, ext, blank) + loss  # log gamma
    occupancy = np.zeros((T, C))                            # the sum over s, per class
    for k in np.unique(ext):
        occupancy[:, k] = np.exp(np.logaddexp.reduce(log_post[:, ext == k], axis=1))
    return loss, np.exp(logy) - occupancy


def ctc_grad(logits, labels, blank=0, zero_infinity=False):
    """The gradient part of :func:`ctc_loss_and_grad`."""
    return ctc_loss_and_grad(logits, labels, blank, zero_infinity)[1]


def ctc_loss_batch(logits_list, labels_list, blank=0, reduction="mean",
                   zero_infinity=False):
    """CTC loss of a batch of sequences with ``torch.nn.CTCLoss``'s reductions.

    Parameters
    ----------
    logits_list : list of array_like (T_i, C)
        Each sequence on its own length T_i >= 0.
    labels_list : list of array_like of int (L_i,)
    blank : int
    reduction : {"mean", "sum", "none"}
        "none": the per-sequence losses, shape (N,); "sum": their sum;
        "mean": mean over the batch of loss_i / max(L_i, 1).
    zero_infinity : bool
        Infinite losses (and their gradients) become 0 if True; else the loss
        is inf and that sequence's gradient NaN (see the module docstring).

    Returns
    -------
    loss : float, or ndarray (N,) for "none"
    grads : list of ndarray (T_i, C)
        d(reduced loss) / d(logits_i); for "none", the gradient of each
        sequence's own loss (i.e. of their sum).
    """
    if len(logits_list) != len(labels_list):
        raise ValueError("logits_list and labels_list differ in length")
    N = len(logits_list)
    losses, grads = np.zeros(N), []
    for i, (z, lab) in enumerate(zip(logits_list, labels_list)):
        losses[i], g = ctc_loss_and_grad(z, lab, blank, zero_infinity)
        grads.append(g)
    if reduction == "none":
        return losses, grads
    if reduction == "sum":
        return float(losses.sum()), grads
    if reduction == "mean":
        lengths = np.array([max(np.asarray(lab).size, 1) for lab in labels_list], float)
        w = 1.0 / (lengths * N)
        return float((losses * w).sum()), [g * wi for g, wi in zip(grads, w)]
    raise ValueError(f"unknown reduction {reduction!r}")


def brute_force_distribution(logits, blank=0):
    """log p(l | x) of every labeling l of non-zero probability, by the
    definition: enumerate all C**T paths, collapse each, and sum the path
    probabilities per labeling.  Tiny T, C only.

    Returns
    -------
    dict
        tuple of int (the labeling) -> float (its log-probability).
    """
    z, _ = _check(logits, [], blank)
    logy = log_softmax(z)
    T, C = z.shape
    dist = {}
    for path in itertools.product(range(C), repeat=T):
        lp = float(sum(logy[t, k] for t, k in enumerate(path)))
        lab = collapse(path, blank)
        dist[lab] = float(np.logaddexp(dist.get(lab, NEG_INF), lp))
    return dist


def brute_force_ctc_loss(logits, labels, blank=0):
    """-log p(labels | logits) by the definition: the sum over all C**T paths
    of the probabilities of those whose collapse is ``labels``.  Tiny T, C only.

    Returns
    -------
    float
        +inf when no path collapses to ``labels``.
    """
    _, lab = _check(logits, labels, blank)
    return -brute_force_distribution(logits, blank).get(tuple(int(k) for k in lab), NEG_INF)


def best_path_decode(logits, blank=0):
    """Greedy (best path) decoding: the argmax class of each frame (the first
    on ties), collapsed by B (merge repeats, drop blanks).

    Returns
    -------
    ndarray of int64 (L,)
    """
    z = np.asarray(logits, dtype=np.float64)
    return np.array(collapse(z.argmax(axis=1).tolist(), blank), dtype=np.int64)


def most_likely_labeling_brute_force(logits, max_len, alphabet=None, blank=0):
    """The labeling of length <= ``max_len`` over ``alphabet`` with the highest
    CTC probability, by enumerating them all (a reference for beam search).

    Parameters
    ----------
    logits : array_like (T, C)
    max_len : int
        Longest labeling tried; max_len >= T covers every labeling of non-zero
        probability.
    alphabet : iterable of int, optional
        The labels; default every class but the blank.
    blank : int

    Returns
    -------
    labels : ndarray of int64
        The first best in order of length, then lexicographic.
    log_prob : float
        Its log p(labels | logits).
    """
    z = np.asarray(logits, dtype=np.float64)
    if alphabet is None:
        alphabet = [k for k in range(z.shape[1]) if k != blank]
    alphabet = sorted(int(k) for k in alphabet)
    best, best_lp = (), NEG_INF
    for n in range(max_len + 1):
        for lab in itertools.product(alphabet, repeat=n):
            lp = -ctc_loss(z, np.array(lab, dtype=np.int64), blank)
            if lp > best_lp:
                best, best_lp = lab, lp
    return np.array(best, dtype=np.int64), float(best_lp)


def _add(beams, prefix, lb=NEG_INF, lnb=NEG_INF):
    """beams[prefix] += (exp(lb), exp(lnb)), in log space."""
    ob, onb = beams.get(prefix, (NEG_INF, NEG_INF))
    beams[prefix] = (np.logaddexp(ob, lb), np.logaddexp(onb, lnb))


def prefix_beam_search(logits, beam_size, blank=0):
    """CTC prefix beam search (Hannun et al. 2014), no language model.

    Each kept prefix (a labeling so far) carries two log-probabilities: p_b,
    of the paths over frames 0..t that collapse to it and end in a blank, and
    p_nb, of those that end in a label (its last one).  Start: the empty
    prefix, p_b = 1, p_nb = 0.  At frame t, for each kept prefix g with total
    p = p_b + p_nb, and each class k (probabilities y = y_t(k)), contribute::

        k == blank:                 g      p_b  += p * y
        k == last label of g:       g      p_nb += p_nb * y   (repeat, merged)
                                    g + k  p_nb += p_b * y    (blank separated)
        any other label k:          g + k  p_nb += p * y

    Contributions to the same prefix (from different parents or the same one)
    are summed, so identical prefixes are merged.  Then only the
    ``beam_size`` prefixes with the highest p_b + p_nb are kept (stable on
    ties).  After the last frame, the kept prefix with the highest
    p_b + p_nb is returned.  Without pruning (beam_size at least the number
    of labelings of length <= T) each prefix's p_b + p_nb is exactly its CTC
    probability, so the search is exact; with pruning, the returned score is
    a lower bound of the returned labeling's probability.  All sums are
    ``np.logaddexp`` of log-probabilities.

    Parameters
    ----------
    logits : array_like (T, C)
    beam_size : int
        >= 1.
    blank : int

    Returns
    -------
    labels : ndarray of int64
        The best labeling (never contains the blank).
    log_prob : float
        Its score log(p_b + p_nb) at the last frame.
    """
    if beam_size < 1:
        raise ValueError("beam_size must be >= 1")
    z = np.asarray(logits, dtype=np.float64)
    logy = log_softmax(z)
    T, C = z.shape
    beams = {(): (0.0, NEG_INF)}                            # prefix -> (log p_b, log p_nb)
    for t in range(T):
        nxt = {}
        for prefix, (pb, pnb) in beams.items():
            ptot = np.logaddexp(pb, pnb)
            _add(nxt, prefix, lb=ptot + logy[t, blank])
            for k in range(C):
                if k == blank:
                    continue
                y = logy[t, k]
                if prefix and prefix[-1] == k:
                    _add(nxt, prefix, lnb=pnb + y)
                    _add(nxt, prefix + (k,), lnb=pb + y)
                else:
                    _add(nxt, prefix + (k,), lnb=ptot + y)
        ranked = sorted(nxt.items(), key=lambda kv: -np.logaddexp(*kv[1]))
        beams = dict(ranked[:beam_size])
    best = max(beams, key=lambda g: np.logaddexp(*beams[g]))   # first on ties
    return np.array(best, dtype=np.int64), float(np.logaddexp(*beams[best]))
