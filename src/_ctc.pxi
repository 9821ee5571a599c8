# Connectionist Temporal Classification (Graves, Fernandez, Gomez &
# Schmidhuber, ICML 2006): the loss and its gradient, fused with the head's
# softmax, and prefix beam search.  Included by _kernels.pyx; its uses of
# the core are the cimport from crnn._kernels below.
#
# A sequence has T frames of logits z_t (O classes, one of them the blank b)
# and a labeling l_1..l_L (no blanks).  The extended labeling l' (S = 2L + 1)
# puts a blank around every label.  Everything runs in log space, in double:
#   log y_t = log_softmax(z_t)
#   alpha_t(s) = y_t(l'_s) (alpha_{t-1}(s) + alpha_{t-1}(s-1) [+ alpha_{t-1}(s-2)])
#   beta_t(s)  = sum over s' in {s, s+1 [, s+2]} of y_{t+1}(l'_s') beta_{t+1}(s')
#                (beta excludes frame t's own emission)
#   loss = -log p(l | x) = -log(alpha_{T-1}(S-1) + alpha_{T-1}(S-2))
#   dloss/dz_t(k) = y_t(k) - sum_{s: l'_s = k} exp(log alpha_t(s) + log beta_t(s) + loss)
# where the bracketed skip s-2 -> s is allowed iff l'_s is a label that
# differs from l'_{s-2}.  alpha is kept for all frames; beta is rolled
# backwards with the gradient of each frame written as it goes.  The
# notation and the reference are tests/support/ctc_reference.py.
#
# A labeling needs T >= L + (number of repeated neighbours) frames; below
# that the loss is infinite.  As torch.nn.CTCLoss: with zero_infinity the
# sequence contributes a loss of 0 and a zero gradient, otherwise a loss of
# +inf and a gradient of NaN on its frames.

from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport exp, log, log1p, INFINITY, NAN
from libc.stdint cimport int32_t
from libc.stdlib cimport malloc, free, qsort
from libc.string cimport memcpy

import numpy as np

from crnn_net cimport Net, _split
# what CTC uses of the core, and nothing else (src/crnn/_kernels.pxd)
from crnn._kernels cimport Seqs


cdef struct CtcTargets:
    const int32_t* lab          # every sample's labels, concatenated
    const Py_ssize_t* lstart    # sample -> its first label in lab
    const Py_ssize_t* llen      # sample -> its number of labels
    Py_ssize_t stride           # doubles of work per worker (_ctc_work_size)
    bint zero_inf


cdef inline Py_ssize_t _ctc_work_size(Py_ssize_t T, Py_ssize_t L,
                                      Py_ssize_t O) noexcept nogil:
    """Doubles of work for one sequence of T frames, L labels, O classes:
    log y (T x O), log alpha (T x S), two rolling betas, the emissions of a
    frame (S each) and the occupancy of a frame (O)."""
    cdef Py_ssize_t S = 2 * L + 1
    return T * (O + S) + 3 * S + O


cdef inline double _lse(double a, double b) noexcept nogil:
    """log(exp(a) + exp(b)), exact when an operand is -inf."""
    cdef double t
    if a < b:
        t = a
        a = b
        b = t
    if b == -INFINITY:
        return a
    return a + log1p(exp(b - a))


cdef inline int _ext(const int32_t* lab, Py_ssize_t s, int blank) noexcept nogil:
    """l'_s: the blank at even s, label (s - 1) / 2 at odd s."""
    return blank if (s & 1) == 0 else lab[s >> 1]


cdef inline bint _skip(const int32_t* lab, Py_ssize_t s) noexcept nogil:
    """Whether s - 2 -> s is allowed: s odd, s >= 3 and l'_s != l'_{s-2}."""
    return (s & 1) == 1 and s >= 3 and lab[s >> 1] != lab[(s >> 1) - 1]


cdef Py_ssize_t _ctc_min_frames(const int32_t* lab, Py_ssize_t L) noexcept nogil:
    """The fewest frames that can emit lab: L plus one per repeated neighbour."""
    cdef Py_ssize_t j, need = L
    for j in range(1, L):
        if lab[j] == lab[j - 1]:
            need += 1
    return need


cdef double _ctc_seq(floating* z, Py_ssize_t O, const Py_ssize_t* off, Py_ssize_t i,
                     Py_ssize_t T, const int32_t* lab, Py_ssize_t L, int blank,
                     bint zero_inf, double gscale, double* work) noexcept nogil:
    """CTC loss -log p(lab | x) of one sequence of T >= 1 frames whose logits
    are the rows off[t] + i of z (O columns each); those rows are replaced
    by gscale * dloss/dlogits (through the softmax).  work: _ctc_work_size
    doubles.  NaN logits give a NaN loss and gradient."""
    cdef Py_ssize_t S = 2 * L + 1, t, s, k
    cdef double* logy = work
    cdef double* la = work + T * O
    cdef double* bc = la + T * S
    cdef double* bn = bc + S
    cdef double* em = bn + S
    cdef double* occ = em + S
    cdef double* swp
    cdef floating* row
    cdef double mx, se, lse, a, ll, loss
    # log-softmax of every frame
    for t in range(T):
        row = z + (off[t] + i) * O
        mx = row[0]
        for k in range(1, O):
            if row[k] > mx:
                mx = row[k]
        se = 0
        for k in range(O):
            se += exp(<double> row[k] - mx)
        lse = mx + log(se)
        for k in range(O):
            logy[t * O + k] = <double> row[k] - lse
    ll = -INFINITY
    if T >= _ctc_min_frames(lab, L):
        # forward variables
        for s in range(S):
            la[s] = -INFINITY
        la[0] = logy[blank]
        if S > 1:
            la[1] = logy[lab[0]]
        for t in range(1, T):
            for s in range(S):
                a = la[(t - 1) * S + s]
                if s >= 1:
                    a = _lse(a, la[(t - 1) * S + s - 1])
                if _skip(lab, s):
                    a = _lse(a, la[(t - 1) * S + s - 2])
                la[t * S + s] = a + logy[t * O + _ext(lab, s, blank)]
        ll = la[(T - 1) * S + S - 1]
        if S > 1:
            ll = _lse(ll, la[(T - 1) * S + S - 2])
    if ll == -INFINITY:                          # no path emits the labeling
        for t in range(T):
            row = z + (off[t] + i) * O
            for k in range(O):
                row[k] = <floating> 0.0 if zero_inf else <floating> NAN
        return 0.0 if zero_inf else INFINITY
    loss = -ll
    # backward variables, rolled from the last frame; each frame's gradient
    for s in range(S):
        bc[s] = -INFINITY
    bc[S - 1] = 0.0
    if S > 1:
        bc[S - 2] = 0.0
    for t in range(T - 1, -1, -1):
        for k in range(O):
            occ[k] = 0.0
        for s in range(S):
            occ[_ext(lab, s, blank)] += exp(la[t * S + s] + bc[s] + loss)
        row = z + (off[t] + i) * O
        for k in range(O):
            row[k] = <floating> (gscale * (exp(logy[t * O + k]) - occ[k]))
        if t > 0:
            for s in range(S):
                em[s] = bc[s] + logy[t * O + _ext(lab, s, blank)]
            for s in range(S):
                a = em[s]
                if s + 1 < S:
                    a = _lse(a, em[s + 1])
                if s + 2 < S and _skip(lab, s + 2):
                    a = _lse(a, em[s + 2])
                bn[s] = a
            swp = bc
            bc = bn
            bn = swp
    return loss


cdef double _ctc_shard(const Net* n, floating* logits, const Seqs* q, const CtcTargets* ct,
                       double* work, const double* sw, double scale, int tid,
                       int nt) noexcept nogil:
    """This thread's share of a shard's CTC terms: the sum over its
    sequences of w_i * loss_i / max(L_i, 1) (torch's reduction="mean" when
    every w_i = 1 and scale = 1 / B); their logit rows (packed, off[t] + i)
    are replaced by the gradient of scale times that sum.  sw: a weight per
    sample, or NULL.  A sequence of weight 0 contributes nothing, even an
    infeasible one."""
    cdef Py_ssize_t i, i0, i1, smp, L
    cdef double w, norm, li, total = 0
    _split(q.B, tid, nt, 1, &i0, &i1)
    for i in range(i0, i1):
        smp = q.idx[i]
        L = ct.llen[smp]
        w = 1.0 if sw == NULL else sw[smp]
        norm = 1.0 / (L if L > 0 else 1)
        li = _ctc_seq(logits, n.O, q.off, i, q.lens[smp], ct.lab + ct.lstart[smp], L, 0,
                      ct.zero_inf or w == 0, w * norm * scale, work)
        if w != 0:
            total += w * norm * li
    return total


cdef Py_ssize_t _check_labeling(const int32_t[::1] labels, const Py_ssize_t[::1] lstart,
                                const Py_ssize_t[::1] llen, Py_ssize_t i, Py_ssize_t C,
                                int blank) except -1:
    """Sequence i's labeling lies inside labels and holds classes of [0, C)
    other than the blank; returns its length."""
    cdef Py_ssize_t j
    if llen[i] < 0 or lstart[i] < 0 or lstart[i] + llen[i] > labels.shape[0]:
        raise ValueError(f"the labels of sequence {i} lie outside the label array")
    for j in range(lstart[i], lstart[i] + llen[i]):
        if labels[j] < 0 or labels[j] >= C or labels[j] == blank:
            raise ValueError(f"label {labels[j]} of sequence {i} is not a class other than "
                             f"the blank {blank} (0..{C - 1})")
    return llen[i]


def ctc_work_size(Py_ssize_t T, Py_ssize_t L, Py_ssize_t n_classes):
    """Doubles of CTC work one thread (or shard) needs for sequences of at
    most T frames and L labels."""
    return _ctc_work_size(T, L, n_classes)


def ctc_loss(const floating[:, ::1] logits, const Py_ssize_t[::1] start,
             const Py_ssize_t[::1] lens, const int32_t[::1] labels,
             const Py_ssize_t[::1] lstart, const Py_ssize_t[::1] llen,
             floating[:, ::1] grad=None, int blank=0, bint zero_infinity=False,
             int n_threads=1):
    """The CTC loss of every sequence: sequence i is the rows start[i] ..
    start[i] + lens[i] - 1 of logits (unnormalised, a softmax is applied),
    its labeling labels[lstart[i] : lstart[i] + llen[i]].

    Returns a float64 array of the losses -log p(labeling | logits), +inf
    where infeasible (0 with zero_infinity).  grad (logits' shape): the rows
    of each sequence receive the gradient of its own loss (NaN where
    infeasible, 0 with zero_infinity); other rows are left alone.  A
    sequence of 0 frames has loss 0 for an empty labeling, else +inf (0
    with zero_infinity), as torch.nn.CTCLoss.  Sequences run in parallel
    on n_threads threads; rows of two sequences must not overlap when grad
    is given.
    """
    cdef Py_ssize_t N = start.shape[0], C = logits.shape[1], R = logits.shape[0]
    cdef Py_ssize_t i, t, Tmax = 0, wmax = 0
    cdef int nt = max(1, n_threads)
    cdef double[::1] out = np.zeros(N)
    cdef double[:, ::1] work
    cdef Py_ssize_t[::1] off
    cdef floating[:, ::1] g = grad
    if lens.shape[0] != N:
        raise ValueError("start and lens differ in length")
    if C < 1:
        raise ValueError("logits need at least one class")
    if lstart.shape[0] != N or llen.shape[0] != N:
        raise ValueError("label offsets and lengths need one entry per sequence")
    if not (0 <= blank < C):
        raise ValueError(f"blank {blank} is not a class (0..{C - 1})")
    for i in range(N):
        _check_labeling(labels, lstart, llen, i, C, blank)
        if lens[i] < 0 or start[i] < 0 or start[i] + lens[i] > R:
            raise ValueError(f"sequence {i} lies outside the logits")
        Tmax = max(Tmax, lens[i])
        wmax = max(wmax, _ctc_work_size(lens[i], llen[i], C))
    if g is None:
        g = np.empty((R, C), dtype=np.asarray(logits).dtype)
    elif g.shape[0] != R or g.shape[1] != C:
        raise ValueError("grad must have the shape of logits")
    for i in range(N):
        for t in range(start[i], start[i] + lens[i]):
            memcpy(&g[t, 0], &logits[t, 0], C * sizeof(floating))
    if N == 0:
        return np.asarray(out)
    work = np.empty((nt, max(wmax, 1)))
    off = np.arange(Tmax + 1, dtype=np.intp)
    for i in prange(N, nogil=True, schedule='dynamic', num_threads=nt, use_threads_if=nt > 1):
        if lens[i] == 0:
            out[i] = 0.0 if (llen[i] == 0 or zero_infinity) else INFINITY
        else:
            out[i] = _ctc_seq(&g[0, 0], C, &off[0], start[i], lens[i],
                              &labels[0] + lstart[i] if labels.shape[0] > 0 else NULL,
                              llen[i], blank, zero_infinity, 1.0, &work[threadid(), 0])
    return np.asarray(out)


# ---------------------------------------------------------------------------
# prefix beam search (Hannun, Maas, Jurafsky & Ng 2014, no language model)
#
# The prefixes are nodes of a trie (parent, last label); a node exists only
# for a prefix that was once kept, at most beam_size new ones per frame.  At
# frame t every kept prefix g (log p_b, log p_nb: its paths ending in a
# blank / in its last label) contributes
#     blank:                 g       p_b  += p(g) y_t(b)
#     k == last label of g:  g       p_nb += p_nb(g) y_t(k),  g + k  p_nb += p_b(g) y_t(k)
#     any other label k:     g + k   p_nb += p(g) y_t(k)
# to candidates; contributions to one prefix are merged; the beam_size
# candidates with the highest p_b + p_nb are kept (ties: first made first),
# the order of tests/support/ctc_reference.py's prefix_beam_search.

cdef struct Cand:
    double score
    Py_ssize_t order            # creation order (ties)
    Py_ssize_t node             # the prefix's node, or -1: parent + label, no node yet
    Py_ssize_t parent
    int label
    double pb
    double pnb


cdef int _cand_cmp(const void* a, const void* b) noexcept nogil:
    cdef const Cand* x = <const Cand*> a
    cdef const Cand* y = <const Cand*> b
    if x.score > y.score:
        return -1
    if x.score < y.score:
        return 1
    return -1 if x.order < y.order else (1 if x.order > y.order else 0)


cdef Py_ssize_t _cand_of(Cand* cand, Py_ssize_t* nc, Py_ssize_t* mark, Py_ssize_t node,
                         Py_ssize_t parent, int label) noexcept nogil:
    """The candidate of an existing node (made on first touch), or a new
    candidate parent + label (node -1)."""
    cdef Py_ssize_t c
    if node >= 0 and mark[node] >= 0:
        return mark[node]
    c = nc[0]
    nc[0] += 1
    cand[c].order = c
    cand[c].node = node
    cand[c].parent = parent
    cand[c].label = label
    cand[c].pb = -INFINITY
    cand[c].pnb = -INFINITY
    if node >= 0:
        mark[node] = c
    return c


cdef int _beam_seq(const floating* z, Py_ssize_t T, Py_ssize_t C, int blank, Py_ssize_t K,
                   int32_t* out, Py_ssize_t* out_len, double* out_score) noexcept nogil:
    """Prefix beam search over the T rows of logits z (C classes); the best
    labeling into out (at most T labels), its length and log score.
    Returns -1 when memory runs out."""
    cdef Py_ssize_t cap = 1 + T * K, kc = K * C
    cdef Py_ssize_t* par = <Py_ssize_t*> malloc(cap * 5 * sizeof(Py_ssize_t))
    cdef double* logy = <double*> malloc((C + 3 * K) * sizeof(double))
    cdef Cand* cand = <Cand*> malloc(kc * sizeof(Cand))
    cdef Py_ssize_t* child
    cdef Py_ssize_t* sib
    cdef Py_ssize_t* mark
    cdef Py_ssize_t* beam
    cdef double* bpb
    cdef double* bpnb
    cdef double mx, se, lse, p
    cdef Py_ssize_t nb = 1, nn = 1, nc, t, j, c, g, ch, m
    cdef int k, last
    cdef int32_t* lbl
    if par == NULL or logy == NULL or cand == NULL:
        free(par)
        free(logy)
        free(cand)
        return -1
    lbl = <int32_t*> (par + 4 * cap)     # the label of each node (room for cap)
    child = par + cap
    sib = par + 2 * cap
    mark = par + 3 * cap
    beam = <Py_ssize_t*> malloc(K * sizeof(Py_ssize_t))
    if beam == NULL:
        free(par)
        free(logy)
        free(cand)
        return -1
    bpb = logy + C
    bpnb = bpb + K
    par[0] = -1
    lbl[0] = -1
    child[0] = -1
    sib[0] = -1
    mark[0] = -1
    beam[0] = 0
    bpb[0] = 0.0
    bpnb[0] = -INFINITY
    for t in range(T):
        mx = z[t * C]
        for k in range(1, C):
            if z[t * C + k] > mx:
                mx = z[t * C + k]
        se = 0
        for k in range(C):
            se += exp(<double> z[t * C + k] - mx)
        lse = mx + log(se)
        for k in range(C):
            logy[k] = <double> z[t * C + k] - lse
        nc = 0
        for j in range(nb):
            g = beam[j]
            p = _lse(bpb[j], bpnb[j])
            last = lbl[g]
            c = _cand_of(cand, &nc, mark, g, -1, -1)
            cand[c].pb = _lse(cand[c].pb, p + logy[blank])
            for k in range(C):
                if k == blank:
                    continue
                if k == last:
                    c = _cand_of(cand, &nc, mark, g, -1, -1)
                    cand[c].pnb = _lse(cand[c].pnb, bpnb[j] + logy[k])
                # the child g + k, if the trie has it
                ch = child[g]
                while ch >= 0 and lbl[ch] != k:
                    ch = sib[ch]
                c = _cand_of(cand, &nc, mark, ch, g, k)
                cand[c].pnb = _lse(cand[c].pnb, (bpb[j] if k == last else p) + logy[k])
        for c in range(nc):
            cand[c].score = _lse(cand[c].pb, cand[c].pnb)
            if cand[c].node >= 0:
                mark[cand[c].node] = -1
        qsort(cand, nc, sizeof(Cand), _cand_cmp)
        nb = K if nc > K else nc
        for j in range(nb):
            m = cand[j].node
            if m < 0:                            # a new prefix: make its node
                m = nn
                nn += 1
                par[m] = cand[j].parent
                lbl[m] = cand[j].label
                child[m] = -1
                mark[m] = -1
                sib[m] = child[par[m]]
                child[par[m]] = m
            beam[j] = m
            bpb[j] = cand[j].pb
            bpnb[j] = cand[j].pnb
    # the best kept prefix: beam[0] (sorted; the first on ties)
    m = beam[0]
    j = 0
    while m > 0:
        j += 1
        m = par[m]
    out_len[0] = j
    out_score[0] = _lse(bpb[0], bpnb[0])
    m = beam[0]
    while m > 0:
        j -= 1
        out[j] = lbl[m]
        m = par[m]
    free(beam)
    free(cand)
    free(logy)
    free(par)
    return 0


def ctc_beam_search(const floating[:, ::1] logits, const Py_ssize_t[::1] start,
                    const Py_ssize_t[::1] lens, int beam_size, int blank=0, int n_threads=1):
    """CTC prefix beam search of every sequence (rows start[i] .. start[i] +
    lens[i] - 1 of the logits; a softmax is applied per frame).

    Returns (labels, offsets, scores): sequence i's best labeling is
    labels[offsets[i]:offsets[i + 1]] (int32), scores[i] its log(p_b +
    p_nb) at the last frame (a lower bound of its CTC log-probability).
    Sequences run in parallel on n_threads threads.
    """
    cdef Py_ssize_t N = start.shape[0], C = logits.shape[1], R = logits.shape[0]
    cdef Py_ssize_t i, total = 0
    cdef int nt = max(1, n_threads)
    cdef int failed = 0
    if lens.shape[0] != N:
        raise ValueError("start and lens differ in length")
    if beam_size < 1:
        raise ValueError(f"beam_size must be at least 1, got {beam_size}")
    if not (0 <= blank < C):
        raise ValueError(f"blank {blank} is not a class (0..{C - 1})")
    cdef Py_ssize_t[::1] pos = np.zeros(N + 1, dtype=np.intp)
    for i in range(N):
        if lens[i] < 0 or start[i] < 0 or start[i] + lens[i] > R:
            raise ValueError(f"sequence {i} lies outside the logits")
        pos[i + 1] = pos[i] + lens[i]
    cdef int32_t[::1] buf = np.zeros(max(pos[N], 1), dtype=np.int32)
    cdef Py_ssize_t[::1] nlab = np.zeros(N, dtype=np.intp)
    cdef double[::1] score = np.zeros(N)
    for i in prange(N, nogil=True, schedule='dynamic', num_threads=nt, use_threads_if=nt > 1):
        if lens[i] > 0:
            if _beam_seq(&logits[start[i], 0], lens[i], C, blank, beam_size, &buf[pos[i]],
                         &nlab[i], &score[i]) != 0:
                failed = 1
    if failed:
        raise MemoryError("CTC beam search ran out of memory")
    offsets = np.zeros(N + 1, dtype=np.intp)
    np.cumsum(nlab, out=offsets[1:])
    keep = np.concatenate([np.asarray(buf[pos[i]:pos[i] + nlab[i]]) for i in range(N)]) \
        if N else np.zeros(0, np.int32)
    return keep.astype(np.int32), offsets, np.asarray(score)
