# Forward pass and backpropagation through time for stacked, optionally
# bidirectional, recurrent networks (Elman, GRU, LSTM cells) with a linear
# output head.
#
# Layout.  A batch is split into contiguous shards of samples (see "teams"
# below for how threads share the work).  Inside a shard everything is
# time-major: block t holds the Bs rows of time step t, so the rows of all
# steps form one matrix and the input projection, the weight gradients and
# the input gradient are each one GEMM over all steps.  Only h_{t-1} W_hh^T
# (forward) and dz_t W_hh (backward) stay inside the time loop.
#
# A layer's output buffer Y holds T + 2 blocks of width W = ndir * H: block 0
# is the forward direction's initial state h_{-1}, blocks 1..T the outputs of
# steps 0..T-1 (forward direction in columns [0, H), reverse in [H, 2H)), and
# block T + 1 the reverse direction's initial state.  With this padding the
# previous states of all steps are one contiguous matrix too.  The LSTM's
# cell states C (width H, one buffer per layer and direction) are padded the
# same way.  Gated cells keep their gate activations in Z (width 4H).
#
# Gates follow PyTorch: GRU (r, z, n) with b_hn inside the reset product,
# LSTM (i, f, g, o).  Parameters live in one flat vector; `offs` gives the
# offset of every tensor in the order of PyTorch's state_dict (see
# crnn/_nn/layout.py).
from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport tanh, exp, log, isfinite
from libc.string cimport memset, memcpy
from libc.stdint cimport int32_t

import numpy as np

from crnn_blas cimport gemm
from crnn_omp cimport crnn_ftz_enter, crnn_ftz_leave, omp_get_num_threads
from crnn_net cimport *
from crnn_isa cimport (isa_init, isa_ran_levels, crnn_isa_level, crnn_isa_cpu, crnn_isa_vec,
                      CRNN_MULTIVERSION)

# the SIMD cap (CRNN_MAX_SIMD), before any kernel of this module can run
isa_init()

from crnn_codes cimport (CELL_TANH, CELL_RELU, CELL_GRU, CELL_LSTM, LOSS_MSE, LOSS_XENT,
                         LOSS_CTC, LOSS_GIVEN, SOLVER_SGD, SOLVER_ADAM)

# the codes for Python (crnn/_nn/layout.py, crnn/_nn/training.py)
CELL_CODES = {("rnn", "tanh"): CELL_TANH, ("rnn", "relu"): CELL_RELU, ("gru", None): CELL_GRU,
              ("lstm", None): CELL_LSTM}
LOSS_CODES = {"mse": LOSS_MSE, "xent": LOSS_XENT, "ctc": LOSS_CTC, "given": LOSS_GIVEN}
SOLVER_CODES = {"sgd": SOLVER_SGD, "adam": SOLVER_ADAM}

# predict's input projections go through Z in blocks of about this many bytes
# (a few steps' gates: they stay in the cache until the cells read them)
cdef enum:
    CRNN_PROJ_BLOCK_BYTES = 262144

# The workspace slots WS_*, the structs Seqs and States, _iws_size,
# _packed_block and CRNN_DEBUG_BUILD are declared in src/crnn/_kernels.pxd,
# this module's interface to the parts it includes (_ctc.pxi, _seq2seq.pxi).


cdef class Config:
    """Shape of a network, shared by every kernel call of one fit/predict."""
    cdef Net net
    cdef const Py_ssize_t[::1] _offs
    cdef readonly Py_ssize_t n_params
    cdef object _args

    def __init__(self, int cell, int num_layers, int ndir, int hidden, int n_features,
                 int n_outputs, bint seq, int loss, int trunc, const Py_ssize_t[::1] offs,
                 Py_ssize_t n_params, int simd=-1, double dropout=0.0, bint tokens=False,
                 int embedding_dim=0):
        cdef int best = crnn_simd_detect()
        if cell not in (CELL_TANH, CELL_RELU, CELL_GRU, CELL_LSTM):
            raise ValueError(f"unknown cell code {cell}")
        if offs.shape[0] != 4 * num_layers * ndir + 2 + (1 if embedding_dim > 0 else 0):
            raise ValueError("offset table does not match the network shape")
        if loss not in (LOSS_MSE, LOSS_XENT, LOSS_CTC, LOSS_GIVEN):
            raise ValueError(f"unknown loss code {loss}")
        if loss == LOSS_CTC and not seq:
            raise ValueError("the CTC loss needs an output per step (seq)")
        # the SIMD level of the packed products: at most the CPU's (-1: that);
        # SIMD_BF16 (bfloat16 products) only where the CPU has them
        if simd == SIMD_BF16:
            if not crnn_bf16_detect():
                raise ValueError(bf16_unsupported_message())
        else:
            simd = best if simd < 0 or simd > best else simd
        if not (0 <= dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self._args = (cell, num_layers, ndir, hidden, n_features, n_outputs, seq, loss, trunc,
                      np.asarray(offs).copy(), n_params, simd, dropout, bool(tokens),
                      embedding_dim)
        self._offs = self._args[9]
        self.n_params = n_params
        if net_init(&self.net, cell, num_layers, ndir, hidden, n_features, n_outputs, seq,
                    loss, trunc, simd, dropout, &self._offs[0], tokens, embedding_dim) != 0:
            raise ValueError("invalid network shape")

    def __reduce__(self):
        return (Config, self._args)

    @property
    def simd(self):
        """SIMD level of the recurrent products on packed weights (0: none,
        the products go through BLAS)."""
        return self.net.simd

    def packed_size(self, bint train, Py_ssize_t itemsize):
        """Elements of the packed weights: W_hh for the forward pass (and
        the backward pass when training) of all layers and directions; for
        predict also W_ih of each and W_out, so that every product of
        prediction runs on the row-independent packed kernel."""
        if train:
            return _packed_block(&self.net, itemsize) * self.net.L * self.net.ndir * 2
        return _head_offset(&self.net, itemsize) + \
            crnn_packed_size(self.net.ndir * self.net.H, 1, self.net.O, itemsize)

    def index_workspace_size(self, Py_ssize_t n_steps):
        """Integers of index workspace (the per-step tables of Seqs) one
        shard or chunk of sequences of at most n_steps steps needs."""
        return _iws_size(n_steps)

    def workspace_size(self, Py_ssize_t shard_rows, Py_ssize_t n_steps, bint train,
                       bint varlen=False, bint input_grad=False):
        """Elements of workspace one shard of `shard_rows` sequences of at most
        `n_steps` steps needs (varlen: the lengths may differ; input_grad:
        train_step also returns dLoss/dX, through shard_rows * n_steps * D
        more)."""
        cdef Py_ssize_t lay[WS_NSLOTS]
        _ws_layout(&self.net, shard_rows, n_steps, train, varlen, lay)
        return lay[WS_TOTAL] + (shard_rows * n_steps * self.net.D if input_grad else 0)


def panel(Py_ssize_t itemsize):
    """Elements in one panel of packed weights: hidden-unit slices of a
    thread team start at multiples of it."""
    return CRNN_PW_BYTES // itemsize


cdef inline Py_ssize_t _ring_slots(const Net* n, Py_ssize_t T, bint varlen) noexcept nogil:
    """Chains kept in flight by truncated BPTT (0: no ring needed)."""
    if n.trunc < 0 or n.trunc >= T - 1:
        return 0                     # truncation at or beyond T-1 steps is full BPTT
    if not n.seq and n.L == 1 and not varlen:
        return 0                     # a single injection point: a plain truncated carry
    return n.trunc + 1


cdef void _ws_layout(const Net* n, Py_ssize_t Bs, Py_ssize_t T, bint train, bint varlen,
                     Py_ssize_t* lay) noexcept nogil:
    """Offsets of the workspace buffers of a shard of at most Bs sequences of
    at most T steps (the packed rows of all steps are at most T * Bs)."""
    cdef Py_ssize_t W = n.ndir * n.H, GH = n.G * n.H, ZW = _zwidth(n)
    cdef Py_ssize_t nY = n.L if train else (1 if n.L == 1 else 2)
    cdef Py_ssize_t nZ = n.L * n.ndir if train else 1
    cdef Py_ssize_t rows_out = T * Bs if n.seq else Bs
    cdef Py_ssize_t K = _ring_slots(n, T, varlen) if train else 0
    cdef bint gated = n.G > 1, lstm = n.cell == CELL_LSTM
    cdef Py_ssize_t pos = 0
    lay[WS_X0] = pos;      pos += T * Bs * _din0(n)
    lay[WS_Y] = pos;       pos += nY * (T + 2) * Bs * W
    # predict projects the inputs of a block of steps at a time into the start
    # of Z (_layer_forward: at most CRNN_PROJ_BLOCK_BYTES of float32 gates, or
    # one step's rows): Z need not hold every step, so a predict chunk of a
    # given workspace holds several times the sequences
    cdef Py_ssize_t zrows = T * Bs
    if not train:
        zrows = min(zrows, max(Bs, (CRNN_PROJ_BLOCK_BYTES // 4) // max(1, ZW)))
    lay[WS_Z] = pos;       pos += nZ * zrows * ZW
    lay[WS_C] = pos;       pos += nZ * (T + 2) * Bs * n.H if lstm else 0
    lay[WS_R] = pos;       pos += Bs * GH if gated else 0
    lay[WS_DYA] = pos;     pos += T * Bs * W if train else 0
    lay[WS_DYB] = pos;     pos += T * Bs * W if (train and n.L > 1) else 0
    lay[WS_DZ] = pos;      pos += T * Bs * GH if (train and gated) else 0
    lay[WS_DAN] = pos;     pos += T * Bs * n.H if (train and n.cell == CELL_GRU) else 0
    lay[WS_DC] = pos;      pos += Bs * n.H if (train and lstm) else 0
    lay[WS_LOGITS] = pos;  pos += rows_out * n.O
    lay[WS_HSEL] = pos;    pos += Bs * W
    lay[WS_DHSEL] = pos;   pos += Bs * W if train else 0
    lay[WS_RINGA] = pos;   pos += K * Bs * n.H
    lay[WS_RINGB] = pos;   pos += K * Bs * n.H
    lay[WS_RINGZ] = pos;   pos += K * Bs * GH if gated else 0
    lay[WS_RINGC] = pos;   pos += K * Bs * n.H if lstm else 0
    lay[WS_BSUM] = pos;    pos += GH
    lay[WS_HPREV] = pos;   pos += T * Bs * n.H if (train and varlen) else 0
    lay[WS_XD] = pos;      pos += (n.L - 1) * T * Bs * W if (train and n.dropout > 0) else 0
    lay[WS_XE] = pos;      pos += T * Bs * n.E
    lay[WS_DXE] = pos;     pos += T * Bs * n.E if train else 0
    lay[WS_TOTAL] = pos


cdef void _colsum_add(floating* out, const floating* a, Py_ssize_t rows, Py_ssize_t cols,
                      Py_ssize_t ld) noexcept nogil:
    """out[j] += sum_i a[i, j]."""
    cdef Py_ssize_t i, j
    cdef const floating* r
    for i in range(rows):
        r = a + i * ld
        for j in range(cols):
            out[j] += r[j]


cdef inline void _rec_gemm(int level, Py_ssize_t M, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t Gout,
                           Py_ssize_t H, Py_ssize_t K, const floating* A, Py_ssize_t lda,
                           const floating* packed, const floating* W, bint trans_w,
                           floating* C, Py_ssize_t ldc, bint beta0) noexcept nogil:
    """The time loop's product, on the columns of units [j0, j1):

    forward (trans_w): C[:, g*H + j] (+)= A W[g*H + j, :]^T, g < Gout, K = H;
    backward:          C[:, j] (+)= A W[:, j], K = G*H (Gout = 1);

    W is the recurrent matrix (G*H x H).  On the packed copy with
    crnn_gemm.h's kernel when there is one, else through BLAS."""
    cdef Py_ssize_t g
    if j1 <= j0 or M <= 0:
        return
    if packed != NULL and _rgemm(level, M, j0, j1, Gout, H, K, A, lda, packed, C, ldc, beta0):
        return
    if trans_w:
        for g in range(Gout):
            _mm(level, False, True, <int> M, <int> (j1 - j0), <int> K, A, <int> lda,
                 W + (g * H + j0) * K, <int> K, <floating> (0.0 if beta0 else 1.0),
                 C + g * H + j0, <int> ldc)
    else:
        _mm(level, False, False, <int> M, <int> (j1 - j0), <int> K, A, <int> lda,
             W + j0, <int> H, <floating> (0.0 if beta0 else 1.0), C + j0, <int> ldc)


cdef inline Py_ssize_t _ih_block(const Net* n, int item, Py_ssize_t itemsize) noexcept nogil:
    """Elements of the packed W_ih^T of layer/direction `item` (predict)."""
    return crnn_packed_size(_dlayer0(n) if item < n.ndir else n.ndir * n.H, n.G, n.H, itemsize)


cdef inline Py_ssize_t _ih_offset(const Net* n, int item, Py_ssize_t itemsize) noexcept nogil:
    """Where predict's packed W_ih^T of `item` starts: after every W_hh^T."""
    cdef Py_ssize_t off = _packed_block(n, itemsize) * n.L * n.ndir
    cdef int i
    for i in range(item):
        off += _ih_block(n, i, itemsize)
    return off


cdef inline Py_ssize_t _head_offset(const Net* n, Py_ssize_t itemsize) noexcept nogil:
    """Where predict's packed W_out^T starts: after every W_ih^T."""
    return _ih_offset(n, n.L * n.ndir, itemsize)


cdef void _pack_all(const Net* n, const floating* theta, floating* wpack, bint train,
                    int tid, int nt) noexcept nogil:
    """Pack W_hh of every layer and direction: W_hh^T for the forward pass
    (and W_hh for the backward pass when training); for predict also W_ih^T
    of each and W_out^T.  Split over the team by unit blocks; ends with a
    barrier."""
    cdef Py_ssize_t pb = _packed_block(n, sizeof(floating)), PW = _lanes(theta[0])
    cdef Py_ssize_t nb = (n.H + PW - 1) // PW, b0, b1, item, Din, W = n.ndir * n.H
    cdef int npass = 2 if train else 1, which
    cdef const floating* w_hh
    _split(nb, tid, nt, 1, &b0, &b1)
    for item in range(n.L * n.ndir):
        w_hh = theta + _off_w_hh(n, item)
        for which in range(npass):
            # forward: B = W_hh^T (K = H, G gates); backward: B = W_hh (K = G*H)
            _pack(n.simd, w_hh, n.H, which == 0, n.H if which == 0 else n.G * n.H,
                  n.G if which == 0 else 1, n.H, n.H, b0, b1, wpack + (item * npass + which) * pb)
        if not train and not (_onehot0(n) and item < n.ndir):
            Din = _dlayer0(n) if item < n.ndir else W
            _pack(n.simd, theta + _off_w_ih(n, item), Din, True, Din, n.G, n.H, n.H, b0, b1,
                  wpack + _ih_offset(n, item, sizeof(floating)))
    if not train:
        _split((n.O + PW - 1) // PW, tid, nt, 1, &b0, &b1)
        _pack(n.simd, theta + _off_w_out(n), W, True, W, 1, n.O, n.O, b0, b1,
              wpack + _head_offset(n, sizeof(floating)))
    _sync(nt)


# ---------------------------------------------------------------------------
# one layer, one direction

cdef struct Bufs:
    # per layer and direction
    void* Z           # gate activations, R rows x ZW (gated cells)
    void* C           # cell states, B + R + B rows x H, padded like Y (LSTM)
    # shared scratch
    void* R           # recurrent projection of one step, B x G*H (gated)
    void* bsum        # summed biases, G*H
    void* dZ          # dLoss/d(recurrent pre-activation), R x G*H
    void* dAn         # GRU: dLoss/d(input pre-activation) of the n gate, R x H
    void* dc          # LSTM: dLoss/dc carried between steps, B x H
    void* ringA       # truncated BPTT: dh of the chains in flight, K x B x H
    void* ringB
    void* ringZ       # their pre-activation gradients, K x B x G*H
    void* ringC       # LSTM: their dc, K x B x H
    void* hprev       # ragged batches: the previous state of every row, R x H


# ---------------------------------------------------------------------------
# the sequences of a shard
#
# A shard's sequences are its rows, sorted by decreasing length: row i is
# sample idx[i].  Step t of every sequence still running at t forms block t,
# the first bs[t] rows, at row off[t] of the packed layout (R = off[T] rows
# in all), so no computation touches padding.  With equal lengths bs[t] = B
# and off[t] = t * B.  Buffers with initial states (Y, C) hold B rows of
# padding before and after the R packed rows: the forward direction's
# initial states, and the reverse direction's, which a sequence starts from
# at its own last step.

# (struct Seqs: see src/crnn/_kernels.pxd)


cdef void _seqs_init(Seqs* q, const Py_ssize_t* idx, Py_ssize_t B, const Py_ssize_t* start,
                     const Py_ssize_t* lens, Py_ssize_t* iws, int tid, int nt) noexcept nogil:
    """Fill q for the rows idx[0..B-1] (sorted by decreasing length); iws
    holds _iws_size(T) integers.  Thread 0 writes the tables; ends with a barrier."""
    cdef Py_ssize_t t, p
    q.B = B
    q.idx = idx
    q.start = start
    q.lens = lens
    q.T = lens[idx[0]] if B > 0 else 0
    q.bs = iws
    q.off = iws + q.T
    q.uniform = B == 0 or lens[idx[B - 1]] == q.T
    if tid == 0:
        p = B
        for t in range(q.T):
            while p > 0 and lens[idx[p - 1]] <= t:
                p -= 1
            q.bs[t] = p
        q.off[0] = 0
        for t in range(q.T):
            q.off[t + 1] = q.off[t] + q.bs[t]
    _sync(nt)
    q.R = q.off[q.T] if q.T > 0 else 0


cdef inline Py_ssize_t _next_bs(const Seqs* q, Py_ssize_t t) noexcept nogil:
    """Rows of block t + 1 (0 past the end)."""
    return q.bs[t + 1] if t + 1 < q.T else 0


# ---------------------------------------------------------------------------
# one layer, one direction

cdef inline void _token_scatter(Py_ssize_t rows, Py_ssize_t j0, Py_ssize_t j1,
                                Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t H, Py_ssize_t V,
                                const floating* ids, Py_ssize_t ldi, const floating* dz,
                                Py_ssize_t lddz, floating* g_wih) noexcept nogil:
    """dW_ih[g H + j, ids[r]] += dz[r, g H + j] for gates [g0, g1) and units
    [j0, j1): the weight gradient of one-hot rows (each thread owns its
    units, so no two threads write one entry)."""
    cdef Py_ssize_t r, g, j, v
    cdef const floating* d
    for r in range(rows):
        v = <Py_ssize_t> ids[r * ldi]
        d = dz + r * lddz
        for g in range(g0, g1):
            for j in range(j0, j1):
                g_wih[(g * H + j) * V + v] += d[g * H + j]


cdef inline void _project(const Net* n, int l, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t rows,
                          const floating* Xin, Py_ssize_t ldx, Py_ssize_t Din,
                          const floating* w_ih, const floating* wih, floating* out,
                          Py_ssize_t ldo) noexcept nogil:
    """out[r, g H + j] = (W_ih x_r)[g H + j] for `rows` rows of Xin, units
    [j0, j1) of every gate: a gather for one-hot rows, else the packed
    product on W_ih^T (wih, predict) or a GEMM."""
    cdef Py_ssize_t H = n.H, G = n.G
    if rows <= 0:
        return
    if l == 0 and _onehot0(n):
        # one-hot input: W_ih x is column `token` of W_ih (D = vocabulary)
        _token_gather(rows, j0, j1, G, H, n.D, Xin, ldx, w_ih, out, ldo)
    elif wih != NULL and _rgemm(n.simd, rows, j0, j1, G, H, Din, Xin, ldx, wih, out, ldo,
                                True):
        pass
    elif G == 1:
        _mm(n.simd, False, True, rows, j1 - j0, Din, Xin, ldx, w_ih + j0 * Din, Din,
            <floating> 0.0, out + j0, ldo)
    else:
        _gate_gemm(n.simd, False, rows, j0, j1, G, H, Din, Xin, ldx, w_ih, Din,
                   <floating> 0.0, out, ldo)


cdef void _layer_forward(const Net* n, int l, int d, const floating* theta,
                         const floating* Xin, Py_ssize_t ldx, Py_ssize_t Din,
                         floating* Y, const Bufs* b, const Seqs* q, bint has_h0,
                         const floating* wpk, const floating* wih, bint blocked, int tid,
                         int nt) noexcept nogil:
    """Outputs of layer l, direction d into Y (see the layouts above).
    blocked (predict): the gate activations of a step are not kept past
    it, so Z holds the input projections of a few steps at a time.

    The initial-state rows of this direction (Y's padding, and C's for the
    LSTM) must hold h0 (c0); when has_h0 is false they hold zeros and the
    recurrent product skips them.  wpk: packed W_hh^T of this layer and
    direction, or NULL (BLAS)."""
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, B = q.B, R = q.R
    cdef Py_ssize_t G = n.G, GH = n.G * n.H, ZW = _zwidth(n)
    cdef Py_ssize_t item = l * n.ndir + d
    cdef const floating* w_ih = theta + _off_w_ih(n, item)
    cdef const floating* w_hh = theta + _off_w_hh(n, item)
    cdef const floating* b_ih = theta + _off_b_ih(n, item)
    cdef const floating* b_hh = theta + _off_b_hh(n, item)
    cdef floating* y0 = Y + B * W + d * H        # block 0, own columns
    cdef floating* pad = Y + (0 if d == 0 else (B + R) * W) + d * H
    cdef floating* Z = <floating*> b.Z
    cdef floating* C = <floating*> b.C
    cdef floating* cpad = C + (0 if d == 0 else (B + R) * H)
    cdef floating* Rb = <floating*> b.R
    cdef floating* bsum = <floating*> b.bsum
    cdef floating* cur
    cdef floating* prev
    cdef floating* zt
    cdef floating* ct
    cdef const floating* cprev
    cdef Py_ssize_t s, t, j, g, i, j0, j1, m, m1, tb, nb, r0, r1, zoff = 0
    _split(H, tid, nt, _lanes(y0[0]), &j0, &j1)
    for g in range(G):
        for j in range(j0, j1):
            # GRU: b_hn stays inside the reset product, added by the cell
            bsum[g * H + j] = b_ih[g * H + j] + (0 if (n.cell == CELL_GRU and g == 2)
                                                 else b_hh[g * H + j])
    # input projections (own units of every gate): of all steps at once in
    # training, which keeps every step's gates; in predict, of `tb` steps at
    # a time into the start of Z, so the gates go from the product to the
    # cells through the cache rather than through memory (per row the result
    # is the same: the packed product is row-independent)
    tb = q.T
    if blocked and G > 1:
        tb = (CRNN_PROJ_BLOCK_BYTES // sizeof(floating)) // max(1, B * ZW)
        tb = 1 if tb < 1 else (q.T if tb > q.T else tb)
    for s in range(q.T):
        t = s if d == 0 else q.T - 1 - s
        if s % tb == 0:
            # rows of steps s .. s + tb - 1 (in time: t .. t + nb - 1 forward,
            # t - nb + 1 .. t reverse), contiguous in the packed layout
            nb = tb if s + tb <= q.T else q.T - s
            r0 = q.off[t] if d == 0 else q.off[t - nb + 1]
            r1 = q.off[t + nb] if d == 0 else q.off[t + 1]
            zoff = r0 if tb < q.T else 0
            _project(n, l, j0, j1, r1 - r0, Xin + r0 * ldx, ldx, Din, w_ih, wih,
                     y0 + r0 * W if G == 1 else Z + (r0 - zoff) * ZW, W if G == 1 else ZW)
        m = q.bs[t]
        cur = y0 + q.off[t] * W
        # rows [0, m1) continue from the neighbouring block, rows [m1, m)
        # start from their initial state (reverse direction, ragged batches)
        if d == 0:
            m1 = m if t > 0 else 0
            prev = cur - q.bs[t - 1] * W if t > 0 else pad
        else:
            m1 = _next_bs(q, t)
            prev = y0 + q.off[t + 1] * W if m1 > 0 else pad
        if G == 1:
            # Elman: the recurrent product accumulates onto the projection
            _rec_gemm(n.simd, m1, j0, j1, 1, H, H, prev, W, wpk, w_hh, True, cur, W, False)
            if has_h0 and m > m1:
                _rec_gemm(n.simd, m - m1, j0, j1, 1, H, H, pad + m1 * W, W, wpk, w_hh, True,
                          cur + m1 * W, W, False)
            _act_forward(n.cell, cur + j0, m, j1 - j0, W, bsum + j0)
        else:
            zt = Z + (q.off[t] - zoff) * ZW
            _rec_gemm(n.simd, m1, j0, j1, G, H, H, prev, W, wpk, w_hh, True, Rb, GH, True)
            if has_h0 and m > m1:
                _rec_gemm(n.simd, m - m1, j0, j1, G, H, H, pad + m1 * W, W, wpk, w_hh, True,
                          Rb + m1 * GH, GH, True)
            else:
                for i in range(m1, m):
                    for g in range(G):
                        memset(Rb + i * GH + g * H + j0, 0, (j1 - j0) * sizeof(floating))
            ct = C + (B + q.off[t]) * H
            if d == 0:
                cprev = ct - q.bs[t - 1] * H if t > 0 else cpad
            else:
                cprev = C + (B + q.off[t + 1]) * H if m1 > 0 else cpad
            _cell_forward(n, 0, m1, j0, j1, zt, Rb, bsum, b_hh, prev, cprev, ct, cur)
            _cell_forward(n, m1, m, j0, j1, zt, Rb, bsum, b_hh, pad, cpad, ct, cur)
        _sync(nt)                                # h_t complete before the next step reads it


cdef inline void _cell_forward(const Net* n, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t j0,
                               Py_ssize_t j1, floating* zt, const floating* Rb,
                               const floating* bsum, const floating* b_hh,
                               const floating* hprev, const floating* cprev, floating* ct,
                               floating* cur) noexcept nogil:
    """Gated cells, rows [i0, i1) of one step; hprev/cprev are indexed by the
    same rows."""
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, GH = n.G * n.H, ZW = _zwidth(n)
    if i1 <= i0:
        return
    if n.cell == CELL_LSTM:
        _lstm_fwd(i1 - i0, j0, j1, H, zt + i0 * ZW, ZW, Rb + i0 * GH, GH, bsum,
                  cprev + i0 * H, H, ct + i0 * H, H, cur + i0 * W, W)
    else:
        _gru_fwd(i1 - i0, j0, j1, H, zt + i0 * ZW, ZW, Rb + i0 * GH, GH, bsum,
                 b_hh + 2 * H, hprev + i0 * W, W, cur + i0 * W, W)


cdef void _cell_backward(const Net* n, Py_ssize_t M, Py_ssize_t j0, Py_ssize_t j1,
                         const floating* zt, const floating* ct, const floating* cprev,
                         const floating* yt, const floating* hprev, const floating* dh,
                         Py_ssize_t ldh, floating* dc, floating* dz, Py_ssize_t lddz,
                         floating* dan, floating* dhp, Py_ssize_t lddhp,
                         bint add_dhp) noexcept nogil:
    """One step of one chain, M rows, own units: from dh (and dc) to the
    pre-activation gradients dz, plus what flows to t-1 without W_hh: dc
    (LSTM, in place) and dh z (GRU, into dhp).  Elman works in place: dz may
    alias dh."""
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, ZW = _zwidth(n), i
    if M <= 0:
        return
    if n.cell == CELL_TANH or n.cell == CELL_RELU:
        if dz != dh:
            for i in range(M):
                memcpy(dz + i * lddz + j0, dh + i * ldh + j0, (j1 - j0) * sizeof(floating))
        _act_backward(n.cell, dz + j0, lddz, yt + j0, W, M, j1 - j0)
    elif n.cell == CELL_LSTM:
        _lstm_bwd(M, j0, j1, H, zt, ZW, ct, H, cprev, H, dh, ldh, dc, H, dz, lddz)
    else:
        _gru_bwd(M, j0, j1, H, zt, ZW, hprev, W, dh, ldh, dz, lddz, dan, H, dhp, lddhp, add_dhp)


cdef struct Bptt:
    # BPTT through one layer and direction: what every step reads (pointers
    # of the kernel's floating type)
    int d                    # direction
    Py_ssize_t j0, j1        # own hidden units
    Py_ssize_t nsteps        # steps walked back from the last one
    Py_ssize_t lddz          # row stride of dz
    void* g0                 # dLoss/dh, block 0, own direction's columns
    void* dzb                # dLoss/dz of every row (b.dZ; Elman: in place in g0)
    const void* y0           # outputs h, block 0, own direction's columns
    const void* pad          # initial states of this direction
    const void* cpad         # LSTM: initial cell states (else NULL)
    const void* w_hh


cdef struct BStep:
    # step t of a Bptt.  Rows [0, m1) continue from the neighbouring block
    # (previous states hpv, cpv; their dh flows into nxt), rows [m1, m)
    # start from the initial states.
    Py_ssize_t t, m, m1
    void* cur                # dLoss/dh of block t
    void* dzt                # dLoss/dz of block t
    void* nxt                # dLoss/dh of the neighbouring block (NULL: none)
    const void* ycur         # h of block t
    const void* zt           # gate activations (gated cells)
    const void* ct           # cell states (LSTM)
    const void* hpv
    const void* cpv


cdef void _bptt_init(const Net* n, int l, int d, const floating* theta, const floating* Y,
                     floating* dY, const Bufs* b, const Seqs* q, bint last_only, int tid,
                     int nt, Bptt* c) noexcept nogil:
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, B = q.B, R = q.R, i
    cdef const floating* y0 = Y + B * W + d * H
    c.d = d
    c.y0 = y0
    c.pad = Y + (0 if d == 0 else (B + R) * W) + d * H
    c.g0 = dY + d * H
    c.cpad = <const floating*> b.C + (0 if d == 0 else (B + R) * H) \
        if n.cell == CELL_LSTM else NULL
    c.w_hh = theta + _off_w_hh(n, l * n.ndir + d)
    if n.G > 1:
        c.dzb = b.dZ
        c.lddz = n.G * H
    else:
        c.dzb = c.g0
        c.lddz = W
    _split(H, tid, nt, _lanes(y0[0]), &c.j0, &c.j1)
    c.nsteps = q.T
    if last_only and 0 <= n.trunc < q.T - 1:
        c.nsteps = n.trunc + 1
    if n.cell == CELL_LSTM:
        for i in range(B):
            memset(<floating*> b.dc + i * H + c.j0, 0, (c.j1 - c.j0) * sizeof(floating))


cdef inline void _bptt_step(const Net* n, const Bufs* b, const Seqs* q, const Bptt* c,
                            Py_ssize_t s, const floating* y0, BStep* st) noexcept nogil:
    """The pointers of step s of the walk back (y0: c.y0, typed)."""
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, B = q.B, ZW = _zwidth(n)
    cdef Py_ssize_t t = q.T - 1 - s if c.d == 0 else s
    cdef floating* g0 = <floating*> c.g0
    cdef const floating* C = <const floating*> b.C
    cdef const floating* ycur = y0 + q.off[t] * W
    cdef const floating* ct = C + (B + q.off[t]) * H if n.cell == CELL_LSTM else NULL
    cdef floating* cur = g0 + q.off[t] * W
    st.t = t
    st.m = q.bs[t]
    st.cur = cur
    st.ycur = ycur
    st.dzt = <floating*> c.dzb + q.off[t] * c.lddz
    st.zt = <const floating*> b.Z + q.off[t] * ZW if n.G > 1 else NULL
    st.ct = ct
    if c.d == 0:
        st.m1 = st.m if t > 0 else 0
        st.hpv = ycur - q.bs[t - 1] * W if t > 0 else c.pad
        st.nxt = cur - q.bs[t - 1] * W if t > 0 else NULL
        st.cpv = (ct - q.bs[t - 1] * H if t > 0 else c.cpad) if ct != NULL else NULL
    else:
        st.m1 = _next_bs(q, t)
        st.hpv = y0 + q.off[t + 1] * W if st.m1 > 0 else c.pad
        st.nxt = g0 + q.off[t + 1] * W if st.m1 > 0 else NULL
        st.cpv = (C + (B + q.off[t + 1]) * H if st.m1 > 0 else c.cpad) \
            if ct != NULL else NULL


cdef void _bptt_full(const Net* n, const Bufs* b, const Seqs* q, const Bptt* c,
                     const floating* wpk, int tid, int nt) noexcept nogil:
    """Full BPTT (or the plain truncated carry of a last_only layer): one
    chain, dh_{t-1} += dz_t W_hh after every step."""
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, GH = n.G * n.H, ZW = _zwidth(n)
    cdef Py_ssize_t lddz = c.lddz, j0 = c.j0, j1 = c.j1, s, m, m1
    cdef bint gated = n.G > 1, gru = n.cell == CELL_GRU, lstm = n.cell == CELL_LSTM
    cdef const floating* y0 = <const floating*> c.y0
    cdef const floating* pad = <const floating*> c.pad
    cdef const floating* cpad = <const floating*> c.cpad
    cdef floating* dAn = <floating*> b.dAn
    cdef floating* dc = <floating*> b.dc
    cdef floating* scratch = <floating*> b.R
    cdef floating* cur
    cdef floating* dzt
    cdef floating* nxt
    cdef const floating* zt
    cdef const floating* ct
    cdef const floating* ycur
    cdef bint propagate
    cdef BStep st
    for s in range(c.nsteps):
        _bptt_step(n, b, q, c, s, y0, &st)
        m, m1 = st.m, st.m1
        cur, dzt, nxt = <floating*> st.cur, <floating*> st.dzt, <floating*> st.nxt
        zt, ct, ycur = <const floating*> st.zt, <const floating*> st.ct, <const floating*> st.ycur
        propagate = s < c.nsteps - 1 and m1 > 0
        # GRU's direct term dh z goes to dh_{t-1}, or to scratch at the end
        _cell_backward(n, m1, j0, j1, zt, ct, <const floating*> st.cpv, ycur,
                       <const floating*> st.hpv, cur, W, dc, dzt, lddz,
                       dAn + q.off[st.t] * H if gru else NULL,
                       nxt if propagate else scratch, W if propagate else H, propagate)
        if m > m1:
            _cell_backward(n, m - m1, j0, j1,
                           zt + m1 * ZW if gated else NULL,
                           ct + m1 * H if lstm else NULL,
                           cpad + m1 * H if lstm else NULL,
                           ycur + m1 * W, pad + m1 * W, cur + m1 * W, W,
                           dc + m1 * H if lstm else NULL, dzt + m1 * lddz, lddz,
                           dAn + (q.off[st.t] + m1) * H if gru else NULL,
                           scratch, H, False)
        _sync(nt)                            # dz_t complete
        if propagate:
            # dh_{t-1} += dz_t W_hh  (own columns; onto the injected gradient)
            _rec_gemm(n.simd, m1, j0, j1, 1, H, GH, dzt, lddz, wpk,
                      <const floating*> c.w_hh, False, nxt, W, False)


cdef void _bptt_truncated(const Net* n, const Bufs* b, const Seqs* q, const Bptt* c,
                          Py_ssize_t K, const floating* wpk, int tid, int nt) noexcept nogil:
    """Truncated BPTT with injections at many steps: each injection travels
    back at most n.trunc steps, tracked as K = trunc + 1 chains in flight
    (each with its own dh, and dc for the LSTM, in the rings of b); the
    chains' dz sum into the step's dz."""
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, B = q.B, T = q.T
    cdef Py_ssize_t G = n.G, GH = n.G * n.H, ZW = _zwidth(n)
    cdef Py_ssize_t lddz = c.lddz, j0 = c.j0, j1 = c.j1, ringblk = B * H
    cdef Py_ssize_t ldrz = GH if n.G > 1 else H
    cdef Py_ssize_t s, t, i, j, g, qq, m, m1
    cdef bint gated = n.G > 1, gru = n.cell == CELL_GRU, lstm = n.cell == CELL_LSTM
    cdef const floating* y0 = <const floating*> c.y0
    cdef const floating* pad = <const floating*> c.pad
    cdef const floating* cpad = <const floating*> c.cpad
    cdef floating* dAn = <floating*> b.dAn
    cdef floating* scratch = <floating*> b.R
    cdef floating* ringA = <floating*> b.ringA
    cdef floating* ringB = <floating*> b.ringB
    cdef floating* ringZ = <floating*> b.ringZ
    cdef floating* ringC = <floating*> b.ringC
    cdef floating* cur
    cdef floating* dzt
    cdef floating* rz
    cdef floating* sw
    cdef const floating* zt
    cdef const floating* ct
    cdef const floating* ycur
    cdef BStep st
    for i in range(K * B):
        memset(ringA + i * H + j0, 0, (j1 - j0) * sizeof(floating))
        if lstm:
            memset(ringC + i * H + j0, 0, (j1 - j0) * sizeof(floating))
    for s in range(c.nsteps):
        _bptt_step(n, b, q, c, s, y0, &st)
        t, m, m1 = st.t, st.m, st.m1
        cur, dzt = <floating*> st.cur, <floating*> st.dzt
        zt, ct, ycur = <const floating*> st.zt, <const floating*> st.ct, <const floating*> st.ycur
        # the chain starting here replaces the one that started K steps
        # ago; rows not running at this step carry nothing in it
        qq = s % K
        for i in range(B):
            if i < m:
                memcpy(ringA + (qq * B + i) * H + j0, cur + i * W + j0,
                       (j1 - j0) * sizeof(floating))
            else:
                memset(ringA + (qq * B + i) * H + j0, 0, (j1 - j0) * sizeof(floating))
            if lstm:
                memset(ringC + (qq * B + i) * H + j0, 0, (j1 - j0) * sizeof(floating))
        # every chain through this step; their dz sum into the step's dz
        # (the chains' dz: in place in ringA for Elman, which swaps each step)
        rz = ringZ if gated else ringA
        for i in range(m):
            for g in range(G):
                memset(dzt + i * lddz + g * H + j0, 0, (j1 - j0) * sizeof(floating))
            if gru:
                memset(dAn + (q.off[t] + i) * H + j0, 0, (j1 - j0) * sizeof(floating))
        for qq in range(K):
            _cell_backward(n, m1, j0, j1, zt, ct, <const floating*> st.cpv, ycur,
                           <const floating*> st.hpv, ringA + qq * ringblk, H,
                           ringC + qq * ringblk if lstm else NULL,
                           rz + qq * B * ldrz, ldrz, scratch,
                           ringB + qq * ringblk, H, False)
            if m > m1:
                _cell_backward(n, m - m1, j0, j1,
                               zt + m1 * ZW if gated else NULL,
                               ct + m1 * H if lstm else NULL,
                               cpad + m1 * H if lstm else NULL,
                               ycur + m1 * W, pad + m1 * W, ringA + qq * ringblk + m1 * H,
                               H, ringC + qq * ringblk + m1 * H if lstm else NULL,
                               rz + (qq * B + m1) * ldrz, ldrz, scratch + m1 * H,
                               ringB + qq * ringblk + m1 * H, H, False)
            if gated:
                # rows not running at this step must carry nothing into
                # the product (their ringZ rows are stale, and the GRU's
                # ringB rows hold stale direct terms)
                for i in range(m, B):
                    for g in range(G):
                        memset(rz + (qq * B + i) * ldrz + g * H + j0, 0,
                               (j1 - j0) * sizeof(floating))
                    if gru:
                        memset(ringB + (qq * B + i) * H + j0, 0,
                               (j1 - j0) * sizeof(floating))
            for i in range(m):
                for g in range(G):
                    for j in range(j0, j1):
                        dzt[i * lddz + g * H + j] += rz[(qq * B + i) * ldrz + g * H + j]
                if gru:
                    for j in range(j0, j1):
                        dAn[(q.off[t] + i) * H + j] += scratch[i * H + j]
        _sync(nt)
        if s < T - 1:
            # each chain's dh_{t-1}: its direct part (GRU, in ringB) + dz W_hh
            _rec_gemm(n.simd, K * B, j0, j1, 1, H, GH, rz, ldrz, wpk,
                      <const floating*> c.w_hh, False, ringB, H, not gru)
            if gated:
                # ringZ is rewritten next step (Elman's dz live in ringA,
                # which alternates with ringB and needs no barrier)
                _sync(nt)
            sw = ringA
            ringA = ringB
            ringB = sw


cdef void _weight_grads(const Net* n, int l, int d, const floating* theta, floating* grad,
                        const floating* Xin, Py_ssize_t ldx, Py_ssize_t Din,
                        const floating* Y, floating* dX, const Bufs* b, const Seqs* q,
                        const Bptt* c, int tid, int nt) noexcept nogil:
    """After the walk back: the own rows of dW_hh, dW_ih, the biases (one
    GEMM or column sum over all steps each), and dLoss/dx into dX (written
    for d == 0, added for d == 1; none when dX is NULL), split by rows."""
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, B = q.B, R = q.R, T = q.T
    cdef Py_ssize_t G = n.G, GH = n.G * n.H, lddz = c.lddz, j0 = c.j0, j1 = c.j1
    cdef Py_ssize_t item = l * n.ndir + d
    cdef bint gru = n.cell == CELL_GRU
    cdef const floating* w_ih = theta + _off_w_ih(n, item)
    cdef floating* g_wih = grad + _off_w_ih(n, item)
    cdef floating* g_whh = grad + _off_w_hh(n, item)
    cdef floating* g_bih = grad + _off_b_ih(n, item)
    cdef floating* g_bhh = grad + _off_b_hh(n, item)
    cdef const floating* y0 = <const floating*> c.y0
    cdef const floating* pad = <const floating*> c.pad
    cdef floating* dzb = <floating*> c.dzb
    cdef floating* dAn = <floating*> b.dAn
    cdef floating* tmp = <floating*> b.bsum
    cdef floating* hp = <floating*> b.hprev
    cdef const floating* hpv
    cdef const floating* hprev_all
    cdef floating* dzt
    cdef Py_ssize_t rlo, rhi, rows, a, e, i, j, g, t, i0, i1, r0, r1
    # packed rows [rlo, rhi) can hold a non-zero dz (a suffix or prefix of
    # blocks only for an equal-length last_only layer)
    if d == 0:
        rlo = q.off[T - c.nsteps]
        rhi = R
    else:
        rlo = 0
        rhi = q.off[c.nsteps]
    rows = rhi - rlo
    dzt = dzb + rlo * lddz
    # the previous state of every row: with equal lengths a shifted view of
    # Y (padded block t or t + 2); ragged batches gather it
    if q.uniform:
        hprev_all = Y + (rlo + (0 if d == 0 else 2 * B)) * W + d * H
        a = W
    else:
        _split(B, tid, nt, 1, &i0, &i1)
        for i in range(i0, i1):
            for t in range(q.lens[q.idx[i]]):
                if d == 0:
                    hpv = y0 + (q.off[t - 1] + i) * W if t > 0 else pad + i * W
                else:
                    hpv = y0 + (q.off[t + 1] + i) * W if t + 1 < q.lens[q.idx[i]] \
                        else pad + i * W
                memcpy(hp + (q.off[t] + i) * H, hpv, H * sizeof(floating))
        _sync(nt)
        hprev_all = hp + rlo * H
        a = H
    # own rows of the weight gradients
    _gate_gemm(n.simd, True, rows, j0, j1, G, H, H, dzt, lddz, hprev_all, a, <floating> 1.0, g_whh, H)
    if l == 0 and _onehot0(n):
        # one-hot rows: scatter into the columns of their tokens (D = vocabulary)
        _token_scatter(rows, j0, j1, 0, 2 if gru else G, H, n.D, Xin + rlo * ldx, ldx, dzt,
                       lddz, g_wih)
        if gru:          # W_ih's n block sees dAn instead of dz_n = dAn * r
            _token_scatter(rows, j0, j1, 0, 1, H, n.D, Xin + rlo * ldx, ldx,
                           dAn + rlo * H, H, g_wih + 2 * H * n.D)
    elif gru:
        # W_ih's n block sees dAn instead of dz_n = dAn * r
        _gate_gemm(n.simd, True, rows, j0, j1, 2, H, Din, dzt, lddz, Xin + rlo * ldx, ldx,
                   <floating> 1.0, g_wih, Din)
        _mm(n.simd, True, False, <int> (j1 - j0), <int> Din, <int> rows,
             dAn + rlo * H + j0, <int> H, Xin + rlo * ldx, <int> ldx,
             <floating> 1.0, g_wih + (2 * H + j0) * Din, <int> Din)
    else:
        _gate_gemm(n.simd, True, rows, j0, j1, G, H, Din, dzt, lddz, Xin + rlo * ldx, ldx,
                   <floating> 1.0, g_wih, Din)
    for g in range(G):
        for j in range(j0, j1):
            tmp[g * H + j] = 0
        _colsum_add(tmp + g * H + j0, dzt + g * H + j0, rows, j1 - j0, lddz)
        for j in range(j0, j1):
            g_bhh[g * H + j] += tmp[g * H + j]
            if not (gru and g == 2):
                g_bih[g * H + j] += tmp[g * H + j]
    if gru:
        for j in range(j0, j1):
            tmp[j] = 0
        _colsum_add(tmp + j0, dAn + rlo * H + j0, rows, j1 - j0, H)
        for j in range(j0, j1):
            g_bih[2 * H + j] += tmp[j]
    _sync(nt)                                    # every unit's dz before dX reads them all
    if dX != NULL:
        # dX = dz_in W_ih, split by rows
        _split(R, tid, nt, 1, &r0, &r1)
        if d == 0:
            # rows outside [rlo, rhi) get no gradient from this direction
            for i in range(r0, r1):
                if i < rlo or i >= rhi:
                    memset(dX + i * ldx, 0, Din * sizeof(floating))
        a = r0 if r0 > rlo else rlo
        e = r1 if r1 < rhi else rhi
        if e > a:
            _mm(n.simd, False, False, e - a, Din, 2 * H if gru else GH, dzb + a * lddz, lddz,
                w_ih, Din, <floating> (1.0 if d == 1 else 0.0), dX + a * ldx, ldx)
            if gru:
                _mm(n.simd, False, False, <int> (e - a), <int> Din, <int> H,
                     dAn + a * H, <int> H, w_ih + 2 * H * Din, <int> Din, <floating> 1.0,
                     dX + a * ldx, <int> ldx)
    _sync(nt)


cdef void _layer_backward(const Net* n, int l, int d, const floating* theta, floating* grad,
                          const floating* Xin, Py_ssize_t ldx, Py_ssize_t Din,
                          const floating* Y, floating* dY, floating* dX, const Bufs* b,
                          const Seqs* q, bint last_only, Py_ssize_t K,
                          const floating* wpk, int tid, int nt) noexcept nogil:
    """BPTT through one layer and direction.

    dY holds dLoss/dh for this layer's outputs (the R packed rows); for the
    Elman cell its columns of direction d are overwritten with dLoss/dz,
    gated cells use b.dZ.  Weight gradients are added to `grad`.  When dX is
    not NULL, dLoss/dx is written (d == 0) or added (d == 1) there, in the
    layout of Xin.

    last_only (equal lengths only): the loss reaches this layer only at its
    final step (top layer of a many-to-one network), so truncated BPTT is a
    plain carry that stops.  K > 0: truncated BPTT with injections at many
    steps (_bptt_truncated).  wpk: packed W_hh of this layer and direction,
    or NULL (BLAS).
    """
    cdef Bptt c
    _bptt_init(n, l, d, theta, Y, dY, b, q, last_only, tid, nt, &c)
    if K == 0:
        _bptt_full(n, b, q, &c, wpk, tid, nt)
    else:
        _bptt_truncated(n, b, q, &c, K, wpk, tid, nt)
    _weight_grads(n, l, d, theta, grad, Xin, ldx, Din, Y, dX, b, q, &c, tid, nt)


# ---------------------------------------------------------------------------
# head and loss

cdef void _head_forward(const Net* n, const floating* theta, const floating* Ytop,
                        floating* logits, floating* Hsel, const Seqs* q, Py_ssize_t r0,
                        Py_ssize_t r1, const floating* wout) noexcept nogil:
    """Rows [r0, r1) of logits = h W_out^T + b_out.

    Rows are the shard's sequences (many-to-one) or its packed rows
    (return_sequences).  Many-to-one reads each sequence's forward state
    after its own last step and the reverse state after its last step
    (time 0), concatenated, into Hsel.  wout: packed W_out^T (predict: a
    row's logits then do not depend on the other rows) or NULL (BLAS).
    """
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, B = q.B
    cdef const floating* w_out = theta + _off_w_out(n)
    cdef const floating* b_out = theta + _off_b_out(n)
    cdef const floating* hin
    cdef const floating* y0 = Ytop + B * W
    cdef Py_ssize_t i, j
    cdef floating* r
    if r1 <= r0:
        return
    if n.seq:
        hin = y0
    else:
        for i in range(r0, r1):
            memcpy(Hsel + i * W, y0 + (q.off[q.lens[q.idx[i]] - 1] + i) * W,
                   H * sizeof(floating))
            if n.ndir == 2:
                memcpy(Hsel + i * W + H, y0 + i * W + H, H * sizeof(floating))
        hin = Hsel
    if wout == NULL or not _rgemm(n.simd, r1 - r0, 0, n.O, 1, n.O, W, hin + r0 * W, W, wout,
                                  logits + r0 * n.O, n.O, True):
        _mm(n.simd, False, True, <int> (r1 - r0), <int> n.O, <int> W, hin + r0 * W,
             <int> W, w_out, <int> W, <floating> 0.0, logits + r0 * n.O, <int> n.O)
    for i in range(r0, r1):
        r = logits + i * n.O
        for j in range(n.O):
            r[j] += b_out[j]


cdef inline Py_ssize_t _target_row(const Net* n, const Seqs* q, Py_ssize_t r) noexcept nogil:
    """Row of the targets (and of the output) for logit row r: the sample
    (many-to-one) or the sample's data row of that step (return_sequences)."""
    cdef Py_ssize_t lo = 0, hi = q.T, mid
    if not n.seq:
        return q.idx[r]
    # the block holding packed row r: off[t] <= r < off[t + 1]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if q.off[mid] <= r:
            lo = mid
        else:
            hi = mid
    return q.start[q.idx[r - q.off[lo]]] + lo


cdef double _loss_grad(const Net* n, floating* logits, const Seqs* q, Py_ssize_t r0,
                       Py_ssize_t r1, const floating* yreg, const int32_t* ylab,
                       const double* sw, double scale) noexcept nogil:
    """Sum of the (weighted) losses of logit rows [r0, r1); those rows are
    replaced by dLoss/dlogits.

    sw: a weight per target row (NULL: all 1).  scale is 1 / (the batch's
    total weight, times n.O for MSE): the batch loss is a weighted mean, of
    squared errors (MSE) or of softmax cross-entropies.  LOSS_GIVEN: yreg
    holds dLoss/dlogits itself (from a network stacked above; no weights,
    scale 1), and the value is sum(logits * yreg), the loss's linear part.
    """
    cdef Py_ssize_t O = n.O
    cdef Py_ssize_t j, row, tr
    cdef floating* z
    cdef const floating* yt
    cdef double total = 0, diff, mx, se, lse, w = 1, ws
    cdef int32_t c
    for row in range(r0, r1):
        z = logits + row * O
        tr = _target_row(n, q, row)
        if sw != NULL:
            w = sw[tr]
        ws = w * scale
        if n.loss == LOSS_GIVEN:
            yt = yreg + tr * O
            for j in range(O):
                total += <double> z[j] * <double> yt[j]
                z[j] = yt[j]
        elif n.loss == LOSS_MSE:
            yt = yreg + tr * O
            for j in range(O):
                diff = <double> z[j] - <double> yt[j]
                total += w * diff * diff
                z[j] = <floating> (2.0 * ws * diff)
        elif floating is float:
            total += w * crnn_xent_row_f32(z, O, ylab[tr], <float> ws)
        else:
            c = ylab[tr]
            mx = z[0]
            for j in range(1, O):
                if z[j] > mx:
                    mx = z[j]
            se = 0
            for j in range(O):
                se += exp(<double> z[j] - mx)
            lse = mx + log(se)
            total += w * (lse - <double> z[c])
            for j in range(O):
                z[j] = <floating> (ws * exp(<double> z[j] - lse))
            z[c] -= <floating> ws
    return total


cdef void _head_backward(const Net* n, const floating* theta, floating* grad,
                         const floating* Ytop, floating* dYtop, const floating* dlogits,
                         const floating* Hsel, floating* dHsel, const Seqs* q,
                         int tid, int nt) noexcept nogil:
    """Gradients of the head; dLoss/dh of the top layer into dYtop.  Must be
    entered after every thread's rows of dlogits are final."""
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, B = q.B
    cdef const floating* w_out = theta + _off_w_out(n)
    cdef Py_ssize_t rows = q.R if n.seq else B
    cdef const floating* hin = Ytop + B * W if n.seq else Hsel
    cdef Py_ssize_t c0, c1, o0, o1, r0, r1, t, i
    # dW_out = dlogits^T h (own columns), db_out (own outputs)
    _split(W, tid, nt, 1, &c0, &c1)
    _mm(n.simd, True, False, <int> n.O, <int> (c1 - c0), <int> rows, dlogits,
         <int> n.O, hin + c0, <int> W, <floating> 1.0, grad + _off_w_out(n) + c0, <int> W)
    _split(n.O, tid, nt, 1, &o0, &o1)
    _colsum_add(grad + _off_b_out(n) + o0, dlogits + o0, rows, o1 - o0, n.O)
    # dh = dlogits W_out (own rows)
    _split(rows, tid, nt, 1, &r0, &r1)
    if n.seq:
        _mm(n.simd, False, False, <int> (r1 - r0), <int> W, <int> n.O,
             dlogits + r0 * n.O, <int> n.O, w_out, <int> W, <floating> 0.0,
             dYtop + r0 * W, <int> W)
    else:
        _mm(n.simd, False, False, <int> (r1 - r0), <int> W, <int> n.O,
             dlogits + r0 * n.O, <int> n.O, w_out, <int> W, <floating> 0.0,
             dHsel + r0 * W, <int> W)
        # each own sequence's rows of dYtop: zero but at its last step (forward)
        # and at time 0 (reverse)
        for i in range(r0, r1):
            for t in range(q.lens[q.idx[i]]):
                memset(dYtop + (q.off[t] + i) * W, 0, W * sizeof(floating))
            memcpy(dYtop + (q.off[q.lens[q.idx[i]] - 1] + i) * W, dHsel + i * W,
                   H * sizeof(floating))
            if n.ndir == 2:
                memcpy(dYtop + i * W + H, dHsel + i * W + H, H * sizeof(floating))
    _sync(nt)


include "_ctc.pxi"


# ---------------------------------------------------------------------------
# whole network on one shard

cdef void _gather(floating* X0, const floating* X, Py_ssize_t D, const Seqs* q,
                  int tid, int nt) noexcept nogil:
    """X0 packed row off[t] + i = step t of sample idx[i]."""
    cdef Py_ssize_t i, t, sample, i0, i1
    _split(q.B, tid, nt, 1, &i0, &i1)
    for i in range(i0, i1):
        sample = q.idx[i]
        for t in range(q.lens[sample]):
            memcpy(X0 + (q.off[t] + i) * D, X + (q.start[sample] + t) * D,
                   D * sizeof(floating))
    _sync(nt)


cdef void _scatter_rows(floating* X, const floating* X0, Py_ssize_t D, const Seqs* q,
                        int tid, int nt) noexcept nogil:
    """The inverse of _gather: row start[idx[i]] + t of X = packed row
    off[t] + i of X0."""
    cdef Py_ssize_t i, t, sample, i0, i1
    _split(q.B, tid, nt, 1, &i0, &i1)
    for i in range(i0, i1):
        sample = q.idx[i]
        for t in range(q.lens[sample]):
            memcpy(X + (q.start[sample] + t) * D, X0 + (q.off[t] + i) * D,
                   D * sizeof(floating))
    _sync(nt)


cdef void _embed_gather(const Net* n, const floating* theta, floating* ws,
                        const Py_ssize_t* lay, const Seqs* q, int tid, int nt) noexcept nogil:
    """With an embedding: layer 0's input rows, the embedding rows of the
    gathered token ids (the team splits the rows; ends with a barrier)."""
    cdef Py_ssize_t r0, r1
    if n.E == 0:
        return
    _split(q.R, tid, nt, 1, &r0, &r1)
    _embed_rows(theta + _off_embed(n), n.E, ws + lay[WS_X0], 1, r0, r1,
                ws + lay[WS_XE])
    _sync(nt)


cdef void _embed_scatter(const Net* n, floating* grad, const floating* ws,
                         const Py_ssize_t* lay, Py_ssize_t R, int tid, int nt) noexcept nogil:
    """The embedding's gradient: dEmb[ids[r]] += dLoss/d(layer 0 input row r),
    the team splitting the E columns (no two threads write one entry).  Ends
    with a barrier (the workspace is reused by the next shard)."""
    cdef Py_ssize_t r, e, e0, e1, E = n.E
    cdef const floating* ids = ws + lay[WS_X0]
    cdef const floating* dx = ws + lay[WS_DXE]
    cdef floating* g = grad + _off_embed(n)
    cdef floating* gr
    _split(E, tid, nt, 1, &e0, &e1)
    for r in range(R):
        gr = g + (<Py_ssize_t> ids[r]) * E
        for e in range(e0, e1):
            gr[e] += dx[r * E + e]
    _sync(nt)


cdef int _check_input(const Net* n, const floating[:, ::1] X) except -1:
    """X's columns match the network; token ids (n.tokens) are integers in
    [0, D), so no id can index outside W_ih."""
    cdef Py_ssize_t bad = -1
    if not n.tokens:
        if X.shape[1] != n.D:
            raise ValueError(f"X has {X.shape[1]} features, the network expects {n.D}")
        return 0
    if X.shape[1] != 1:
        raise ValueError(f"token input: X must be one column of token ids, got {X.shape[1]} "
                         "columns")
    if X.shape[0] > 0:
        with nogil:
            bad = _bad_token(&X[0, 0], X.shape[0], n.D)     # one column: contiguous
    if bad >= 0:
        raise ValueError(f"token id {X[bad, 0]!r} at row {bad} is not an integer in "
                         f"[0, {n.D})")
    return 0


# (struct States: see src/crnn/_kernels.pxd)


cdef int _check_state_shape(const Net* n, Py_ssize_t N, const floating[:, :, ::1] a,
                            str name) except -1:
    """a (any of h0, c0, hN, cN; None: absent) has shape (L * ndir, N, H)."""
    if a is not None and (a.shape[0] != n.L * n.ndir or a.shape[1] != N or a.shape[2] != n.H):
        raise ValueError(f"{name} must have shape ({n.L * n.ndir}, {N}, {n.H})")
    return 0


cdef int _init_states(const Net* n, Py_ssize_t N, const floating[:, :, ::1] h0,
                      const floating[:, :, ::1] c0, floating[:, :, ::1] hN,
                      floating[:, :, ::1] cN, States* st) except -1:
    """Check the optional initial (h0, c0) and final (hN, cN) state arrays,
    (num_layers * ndir, N, H) as in PyTorch, and point st at them.  Returns
    1 when there are any (pass st to the kernels), 0 when there are none."""
    st.h0 = NULL
    st.c0 = NULL
    st.hN = NULL
    st.cN = NULL
    st.N = N
    # one typed call per array: a loop over a tuple of them left the loop
    # variable's memoryview type to Cython's inference (const or writable,
    # varying between Cython versions), which could refuse a read-only h0
    _check_state_shape(n, N, h0, "h0")
    _check_state_shape(n, N, c0, "c0")
    _check_state_shape(n, N, hN, "hN")
    _check_state_shape(n, N, cN, "cN")
    if (c0 is not None or cN is not None) and n.cell != CELL_LSTM:
        raise ValueError("only the LSTM has cell states")
    if c0 is not None and h0 is None:
        raise ValueError("c0 needs h0")
    if N == 0:
        return 0
    if h0 is not None:
        st.h0 = &h0[0, 0, 0]
    if c0 is not None:
        st.c0 = &c0[0, 0, 0]
    if hN is not None:
        st.hN = &hN[0, 0, 0]
    if cN is not None:
        st.cN = &cN[0, 0, 0]
    return 1 if (st.h0 != NULL or st.hN != NULL) else 0


cdef void _bufs(const Net* n, floating* ws, const Py_ssize_t* lay, const Seqs* q,
                Py_ssize_t T, Py_ssize_t Bmax, bint train, int l, int d, Bufs* b) noexcept nogil:
    """Workspace pointers for layer l, direction d (per-layer buffers are
    spaced for the workspace's capacity: Bmax sequences of T steps)."""
    cdef Py_ssize_t item = (l * n.ndir + d) if train else 0
    b.Z = ws + lay[WS_Z] + item * T * Bmax * _zwidth(n)
    b.C = ws + lay[WS_C] + item * (T + 2) * Bmax * n.H
    b.R = ws + lay[WS_R]
    b.bsum = ws + lay[WS_BSUM]
    b.dZ = ws + lay[WS_DZ]
    b.dAn = ws + lay[WS_DAN]
    b.dc = ws + lay[WS_DC]
    b.ringA = ws + lay[WS_RINGA]
    b.ringB = ws + lay[WS_RINGB]
    b.ringZ = ws + lay[WS_RINGZ]
    b.ringC = ws + lay[WS_RINGC]
    b.hprev = ws + lay[WS_HPREV]


cdef inline unsigned long long _mix64(unsigned long long x) noexcept nogil:
    """splitmix64: x advanced by the golden-ratio increment, then mixed."""
    x = x + <unsigned long long> 0x9E3779B97F4A7C15
    x = (x ^ (x >> 30)) * <unsigned long long> 0xBF58476D1CE4E5B9
    x = (x ^ (x >> 27)) * <unsigned long long> 0x94D049BB133111EB
    return x ^ (x >> 31)


cdef void _dropout(const Net* n, int l, const floating* src, floating* dst, Py_ssize_t W,
                   const Seqs* q, unsigned long long seed, int tid, int nt) noexcept nogil:
    """dst = src * mask / (1 - p) on the packed rows (width W) of the team's
    own sequences: the dropout between layer l - 1 and layer l (PyTorch's
    nn.RNN(dropout=p)).  Entry j of step t of data sample s is dropped when
    splitmix64(splitmix64(splitmix64(splitmix64(seed + l) + s) + t) + j),
    as a 53-bit fraction, is below p: the same mask for any sharding or
    thread count.  In place when src == dst.  Ends with a barrier."""
    cdef double p = n.dropout, scale = 1.0 / (1.0 - n.dropout)
    cdef double unit = 1.0 / 9007199254740992.0          # 2**-53
    cdef unsigned long long lkey = _mix64(seed + <unsigned long long> l), skey, rkey
    cdef Py_ssize_t i, i0, i1, t, j, row, sample
    _split(q.B, tid, nt, 1, &i0, &i1)
    for i in range(i0, i1):
        sample = q.idx[i]
        skey = _mix64(lkey + <unsigned long long> sample)
        for t in range(q.lens[sample]):
            rkey = _mix64(skey + <unsigned long long> t)
            row = (q.off[t] + i) * W
            for j in range(W):
                if <double> (_mix64(rkey + <unsigned long long> j) >> 11) * unit < p:
                    dst[row + j] = 0
                else:
                    dst[row + j] = <floating> (src[row + j] * scale)
    _sync(nt)


cdef inline const floating* _layer_input(const Net* n, floating* ws, const Py_ssize_t* lay,
                                         int l, bint train, Py_ssize_t T, Py_ssize_t Bmax,
                                         Py_ssize_t B, Py_ssize_t* ldx) noexcept nogil:
    """What layer l reads: the gathered inputs (l = 0), else layer l - 1's
    outputs, or in training with dropout their dropped-out copy."""
    cdef Py_ssize_t W = n.ndir * n.H, ysz = (T + 2) * Bmax * W
    if l == 0 and n.E > 0:
        ldx[0] = n.E
        return ws + lay[WS_XE]
    if l == 0:
        ldx[0] = _din0(n)
        return ws + lay[WS_X0]
    ldx[0] = W
    if train and n.dropout > 0:
        return ws + lay[WS_XD] + (l - 1) * T * Bmax * W
    return ws + lay[WS_Y] + ((l - 1) if train else (l - 1) % 2) * ysz + B * W


cdef void _forward_layers(const Net* n, const floating* theta, floating* ws,
                          const Py_ssize_t* lay, const Seqs* q, Py_ssize_t T,
                          Py_ssize_t Bmax, bint train, const floating* wpack,
                          const States* st, unsigned long long seed, int tid,
                          int nt) noexcept nogil:
    """All layers; layer l's outputs land in Y slot l (train) or l % 2.
    wpack: the packed weights (see _pack_all) or NULL.  st: initial states
    to start from and final states to report (NULL: zero initial states).
    T, Bmax: the workspace's capacity (it spaces the per-layer buffers).
    Training with dropout: layer l reads layer l - 1's outputs dropped out
    with the masks of `seed` (see _dropout)."""
    cdef Py_ssize_t pb = _packed_block(n, sizeof(floating))
    cdef int npass = 2 if train else 1
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, B = q.B, R = q.R
    cdef Py_ssize_t ysz = (T + 2) * Bmax * n.ndir * n.H
    cdef floating* Y
    cdef const floating* Xin
    cdef Py_ssize_t ldx, i0, i1, i, item, row, last
    cdef int l, d
    cdef Bufs b
    cdef bint lstm = n.cell == CELL_LSTM
    cdef bint has_h0 = st != NULL and st.h0 != NULL
    cdef floating* pad
    cdef floating* cpad
    _split(B, tid, nt, 1, &i0, &i1)
    for l in range(n.L):
        Y = ws + lay[WS_Y] + (l if train else l % 2) * ysz
        Xin = _layer_input(n, ws, lay, l, train, T, Bmax, B, &ldx)
        if train and n.dropout > 0 and l > 0:
            _dropout(n, l, ws + lay[WS_Y] + (l - 1) * ysz + B * W, <floating*> Xin, W, q, seed,
                     tid, nt)
        for d in range(n.ndir):
            _bufs(n, ws, lay, q, T, Bmax, train, l, d, &b)
            item = l * n.ndir + d
            # initial states (own rows): padding before (forward) or after
            # (reverse) the packed rows
            pad = Y + (0 if d == 0 else (B + R) * W) + d * H
            cpad = <floating*> b.C + (0 if d == 0 else (B + R) * H)
            for i in range(i0, i1):
                row = (item * st.N + q.idx[i]) * H if has_h0 else 0
                if has_h0:
                    memcpy(pad + i * W, <const floating*> st.h0 + row, H * sizeof(floating))
                else:
                    memset(pad + i * W, 0, H * sizeof(floating))
                if lstm:
                    if has_h0 and st.c0 != NULL:
                        memcpy(cpad + i * H, <const floating*> st.c0 + row, H * sizeof(floating))
                    else:
                        memset(cpad + i * H, 0, H * sizeof(floating))
            _sync(nt)
            _layer_forward(n, l, d, theta, Xin, ldx, ldx, Y, &b, q, has_h0,
                           wpack + (l * n.ndir + d) * npass * pb if wpack != NULL else NULL,
                           wpack + _ih_offset(n, l * n.ndir + d, sizeof(floating))
                           if (wpack != NULL and not train) else NULL,
                           not train, tid, nt)
            if st != NULL and st.hN != NULL:
                # final states: after each sequence's own last step (forward)
                # or after time 0 (reverse)
                for i in range(i0, i1):
                    row = (item * st.N + q.idx[i]) * H
                    last = q.off[q.lens[q.idx[i]] - 1] + i if d == 0 else i
                    memcpy(<floating*> st.hN + row, Y + (B + last) * W + d * H,
                           H * sizeof(floating))
                    if lstm and st.cN != NULL:
                        memcpy(<floating*> st.cN + row, <floating*> b.C + (B + last) * H,
                               H * sizeof(floating))


cdef double _train_shard(const Net* n, const floating* theta, floating* grad,
                         Py_ssize_t P, const floating* X, const Py_ssize_t* start,
                         const Py_ssize_t* lens, const Py_ssize_t* idx, Py_ssize_t B,
                         const floating* yreg, const int32_t* ylab, floating* ws,
                         Py_ssize_t* iws, Py_ssize_t Tcap, Py_ssize_t Bmax, bint varlen,
                         const double* sw, double scale, unsigned long long seed,
                         const floating* wpack, const States* st, const CtcTargets* ct,
                         double* ctcw, floating* dx0, floating* dX, int tid,
                         int nt) noexcept nogil:
    """Loss (this thread's part of the sum) and gradient of one shard (rows
    idx[0..B-1], sorted by decreasing length), run by a team of nt threads
    (nt = 1: one thread does it all).  sw: a weight per target row (CTC: per
    sample), or NULL.  ct: the labelings (CTC loss; else NULL), ctcw: the
    team's CTC work, ct.stride doubles per thread.
    seed: the dropout masks' (n.dropout > 0).  wpack: packed weights for the
    forward and backward passes, or NULL.  Tcap, Bmax, varlen: the
    workspace's layout.  st: initial states to start from and final states
    to report, or NULL (zeros); no gradient flows into the initial states
    (truncated backpropagation through time across calls).  dX: NULL, or
    where dLoss/dX goes (the rows of X: this shard's samples' rows are
    written), through dx0, R x D of workspace."""
    cdef Py_ssize_t lay[WS_NSLOTS]
    cdef unsigned int csr
    cdef Py_ssize_t ysz = (Tcap + 2) * Bmax * n.ndir * n.H
    cdef Py_ssize_t K, p0, p1, r0, r1
    cdef double loss
    cdef floating* Ytop
    cdef floating* dYcur
    cdef floating* dYnext
    cdef Seqs q

    _split(P, tid, nt, 1, &p0, &p1)
    memset(grad + p0, 0, (p1 - p0) * sizeof(floating))
    if B <= 0:
        return 0.0
    csr = crnn_ftz_enter()
    _ws_layout(n, Bmax, Tcap, True, varlen, lay)
    _seqs_init(&q, idx, B, start, lens, iws, tid, nt)
    K = _ring_slots(n, q.T, not q.uniform)
    _gather(ws + lay[WS_X0], X, _din0(n), &q, tid, nt)
    _embed_gather(n, theta, ws, lay, &q, tid, nt)
    _forward_layers(n, theta, ws, lay, &q, Tcap, Bmax, True, wpack, st, seed, tid, nt)

    Ytop = ws + lay[WS_Y] + (n.L - 1) * ysz
    dYcur = ws + lay[WS_DYA]
    dYnext = ws + lay[WS_DYB]
    _split(q.R if n.seq else B, tid, nt, 1, &r0, &r1)
    _head_forward(n, theta, Ytop, ws + lay[WS_LOGITS], ws + lay[WS_HSEL], &q, r0, r1, NULL)
    if n.loss == LOSS_CTC:
        _sync(nt)                    # a sequence's frames span every thread's rows
        loss = _ctc_shard(n, ws + lay[WS_LOGITS], &q, ct, ctcw + tid * ct.stride, sw, scale,
                          tid, nt)
    else:
        loss = _loss_grad(n, ws + lay[WS_LOGITS], &q, r0, r1, yreg, ylab, sw, scale)
    _sync(nt)
    _head_backward(n, theta, grad, Ytop, dYcur, ws + lay[WS_LOGITS],
                   ws + lay[WS_HSEL], ws + lay[WS_DHSEL], &q, tid, nt)
    _backward_layers(n, theta, grad, ws, lay, &q, Tcap, Bmax, dYcur, dYnext, K, wpack, seed,
                     dx0 if dX != NULL else NULL, tid, nt)
    if dX != NULL:
        _scatter_rows(dX, dx0, n.D, &q, tid, nt)
    crnn_ftz_leave(csr)
    return loss


cdef void _backward_layers(const Net* n, const floating* theta, floating* grad, floating* ws,
                           const Py_ssize_t* lay, const Seqs* q, Py_ssize_t Tcap,
                           Py_ssize_t Bmax, floating* dYcur, floating* dYnext, Py_ssize_t K,
                           const floating* wpack, unsigned long long seed, floating* dx0,
                           int tid, int nt) noexcept nogil:
    """BPTT through every layer, top first, from dLoss/d(top layer's
    outputs) in dYcur (the R packed rows; dYnext: a buffer as large), after
    a training _forward_layers; gradients added to grad (the embedding's
    too).  K: _ring_slots of the shard.  dx0: where dLoss/d(the inputs)
    goes, in the packed rows of WS_X0 (R x D), or NULL for none (the
    network has no embedding then)."""
    cdef Py_ssize_t pb = _packed_block(n, sizeof(floating))
    cdef Py_ssize_t W = n.ndir * n.H, ysz = (Tcap + 2) * Bmax * n.ndir * n.H
    cdef Py_ssize_t ldx
    cdef const floating* Xin
    cdef floating* swap
    cdef bint last_only
    cdef int l, d
    cdef Bufs b
    for l in range(n.L - 1, -1, -1):
        Xin = _layer_input(n, ws, lay, l, True, Tcap, Bmax, q.B, &ldx)
        last_only = (l == n.L - 1) and not n.seq and q.uniform
        for d in range(n.ndir):
            _bufs(n, ws, lay, q, Tcap, Bmax, True, l, d, &b)
            _layer_backward(n, l, d, theta, grad, Xin, ldx, ldx,
                            ws + lay[WS_Y] + l * ysz, dYcur,
                            dYnext if l > 0 else (ws + lay[WS_DXE] if n.E > 0 else dx0),
                            &b, q,
                            last_only, 0 if last_only else K,
                            wpack + ((l * n.ndir + d) * 2 + 1) * pb if wpack != NULL else NULL,
                            tid, nt)
        if l > 0 and n.dropout > 0:
            # dLoss/d(layer l - 1's outputs) = dLoss/d(layer l's input) * mask / (1 - p)
            _dropout(n, l, dYnext, dYnext, W, q, seed, tid, nt)
        swap = dYcur
        dYcur = dYnext
        dYnext = swap
    if n.E > 0:
        _embed_scatter(n, grad, ws, lay, q.R, tid, nt)


cdef void _predict_chunk(const Net* n, const floating* theta, const floating* X,
                         const Py_ssize_t* start, const Py_ssize_t* lens,
                         const Py_ssize_t* idx, Py_ssize_t B, floating* out, floating* ws,
                         Py_ssize_t* iws, Py_ssize_t Tcap, Py_ssize_t Bmax,
                         const floating* wpack, const States* st, int tid,
                         int nt) noexcept nogil:
    """Head outputs for the samples idx[0..B-1] (sorted by decreasing
    length): out row = sample (many-to-one) or the sample's data row of each
    step (return_sequences)."""
    cdef Py_ssize_t lay[WS_NSLOTS]
    cdef unsigned int csr
    cdef Py_ssize_t ysz = (Tcap + 2) * Bmax * n.ndir * n.H
    cdef Py_ssize_t O = n.O, r, r0, r1
    cdef floating* logits
    cdef Seqs q
    if B <= 0:
        return
    csr = crnn_ftz_enter()
    _ws_layout(n, Bmax, Tcap, False, False, lay)
    _seqs_init(&q, idx, B, start, lens, iws, tid, nt)
    _gather(ws + lay[WS_X0], X, _din0(n), &q, tid, nt)
    _embed_gather(n, theta, ws, lay, &q, tid, nt)
    _forward_layers(n, theta, ws, lay, &q, Tcap, Bmax, False, wpack, st, 0, tid, nt)
    logits = ws + lay[WS_LOGITS]
    _split(q.R if n.seq else B, tid, nt, 1, &r0, &r1)
    _head_forward(n, theta, ws + lay[WS_Y] + ((n.L - 1) % 2) * ysz, logits,
                  ws + lay[WS_HSEL], &q, r0, r1,
                  wpack + _head_offset(n, sizeof(floating)) if wpack != NULL else NULL)
    for r in range(r0, r1):
        memcpy(out + _target_row(n, &q, r) * O, logits + r * O, O * sizeof(floating))
    _sync(nt)                                    # the workspace is free again
    crnn_ftz_leave(csr)


# ---------------------------------------------------------------------------
# Python entry points
#
# Test-only entry points that run a kernel on arrays a test gives (the
# vector tanh and sigmoid, the general and bfloat16 products) live in the
# test-only module crnn._kernel_hooks (src/_kernel_hooks.pyx), not here.

def debug_build():
    """True for a CRNN_BOUNDSCHECK=1 build."""
    return bool(CRNN_DEBUG_BUILD)


def simd_level():
    """The SIMD level of the recurrent product: 2 AVX-512, 1 AVX2+FMA, 0 none
    (BLAS): the CPU's best, capped by CRNN_MAX_SIMD.  A Config runs at this
    level unless told a lower one."""
    return crnn_simd_detect()


def isa_level():
    """The level every kernel family runs at (crnn._isa.LEVELS: 0 none,
    1 AVX2, 2 AVX-512, 3 AVX-512 + BF16): the CPU's, capped by CRNN_MAX_SIMD."""
    return crnn_isa_level()


def cpu_isa_level():
    """The level the CPU (and OS) could run, whatever the cap."""
    return crnn_isa_cpu()


def vector_level():
    """The version of the element-wise loops this module calls: 0 baseline,
    1 AVX2, 2 AVX-512 (always 0 in builds without per-level versions: not
    GCC on x86-64 Linux)."""
    return crnn_isa_vec


MULTIVERSION = bool(CRNN_MULTIVERSION)


# predict's input projections of gated cells go through Z in blocks of steps
# of about this many bytes (tests size problems to cross block boundaries)
PROJ_BLOCK_BYTES = CRNN_PROJ_BLOCK_BYTES

# Config(simd=SIMD_BF16_LEVEL): float32 weights, bfloat16 products (crnn_bf16.h)
SIMD_BF16_LEVEL = SIMD_BF16
BF16_UNSUPPORTED = (
    "bfloat16 compute needs a CPU with AVX512-BF16 (AMD Zen 4 or later, Intel Cooper Lake, "
    "Sapphire Rapids or later) and an x86-64 build with GCC or Clang; this one has none: "
    "use compute_dtype=None (float32)")


def bf16_supported():
    """True where this build and CPU run the bfloat16 products (and
    CRNN_MAX_SIMD allows them)."""
    return bool(crnn_bf16_detect())


def bf16_unsupported_message():
    """Why bfloat16 compute is refused here: the CPU or build, or the cap."""
    if crnn_isa_cpu() >= 3 and crnn_isa_level() < 3:
        from crnn import _isa
        return (f"bfloat16 compute needs SIMD level avx512_bf16, which this CPU has, but "
                f"{_isa.ENV}={_isa.VALUE!r} caps crnn at {_isa.NAMES[crnn_isa_level()]}: "
                f"unset {_isa.ENV} (or set it to avx512_bf16) before importing crnn, or use "
                "compute_dtype=None (float32)")
    return BF16_UNSUPPORTED


def pack_weights(Config cfg, const floating[::1] theta, floating[::1] wpack, bint train,
                 int n_threads=1):
    """Fill wpack (cfg.packed_size(train, itemsize) elements) with the packed
    W_hh of every layer and direction, for predict(); train_step packs its
    own."""
    cdef const Net* n = &cfg.net
    cdef int tid, nth
    if theta.shape[0] != cfg.n_params:
        raise ValueError("parameter vector does not match the network")
    if wpack.shape[0] != cfg.packed_size(train, sizeof(floating)):
        raise ValueError("packed-weight buffer has the wrong size")
    with nogil, parallel(num_threads=n_threads):
        tid = threadid()
        nth = omp_get_num_threads()
        _pack_all(n, &theta[0], &wpack[0], train, tid, nth)


cdef _check_seqs(Py_ssize_t n_rows, const Py_ssize_t[::1] start,
                 const Py_ssize_t[::1] lens, const Py_ssize_t[::1] idx, Py_ssize_t lo,
                 Py_ssize_t hi):
    """idx[lo:hi] name samples in range, with rows inside the data, sorted by
    decreasing length; returns the longest length."""
    cdef Py_ssize_t i, s, N = start.shape[0]
    for i in range(lo, hi):
        s = idx[i]
        if s < 0 or s >= N:
            raise IndexError("sample index out of range")
        if lens[s] < 1 or start[s] < 0 or start[s] + lens[s] > n_rows:
            raise ValueError("sequence outside the data")
        if i > lo and lens[s] > lens[idx[i - 1]]:
            raise ValueError("a shard's sequences must be sorted by decreasing length")
    return lens[idx[lo]] if hi > lo else 0


def train_step(Config cfg, const floating[::1] theta, floating[:, ::1] grads,
               const floating[:, ::1] X, const Py_ssize_t[::1] start,
               const Py_ssize_t[::1] lens, const floating[:, ::1] yreg,
               const int32_t[::1] ylab, const Py_ssize_t[::1] idx,
               const Py_ssize_t[::1] shard_off, floating[:, ::1] ws,
               Py_ssize_t[:, ::1] iws, Py_ssize_t T_cap, Py_ssize_t B_cap, bint varlen,
               int n_threads, bint hidden_split=False, floating[::1] wpack=None,
               const double[::1] sample_weight=None, unsigned long long seed=0,
               const floating[:, :, ::1] h0=None, const floating[:, :, ::1] c0=None,
               floating[:, :, ::1] hN=None, floating[:, :, ::1] cN=None,
               const int32_t[::1] ctc_labels=None, const Py_ssize_t[::1] ctc_lstart=None,
               const Py_ssize_t[::1] ctc_llen=None, double[:, ::1] ctc_ws=None,
               bint zero_infinity=False, floating[:, ::1] dX=None):
    """Loss of a batch and its gradient, one row of `grads` per shard.

    Data: sample i is rows start[i] .. start[i] + lens[i] - 1 of X (one row
    per step).  Targets: yreg (regression, rows x n_outputs) or ylab (class
    codes), with a row per sample (many-to-one) or per data row
    (return_sequences).  The batch is idx; shard s is idx[shard_off[s] :
    shard_off[s + 1]], sorted by decreasing length.  Batch split: the
    grads.shape[0] shards run in parallel, one thread each; hidden_split: one
    shard run by a team of n_threads threads that split the hidden units.
    The caller sums the rows of `grads` in order (see _optim).

    ws (one row per shard) and iws (one row per shard) were sized with
    cfg.workspace_size(B_cap, T_cap, True, varlen) and
    cfg.index_workspace_size(T_cap).  wpack
    (cfg.packed_size(True, itemsize) elements): scratch for packed copies of
    W_hh, which the recurrent products then use; None or empty: BLAS.

    sample_weight: a non-negative weight per target row (None: all 1); the
    loss is then the weighted mean over the batch's terms (0, with a zero
    gradient, when the batch's weights sum to 0).  seed: the dropout masks
    of this call when cfg has dropout (see _dropout).
    h0 (c0 for the LSTM): initial states, (num_layers * ndir, N, H) indexed
    by sample as in predict (None: zeros); no gradient flows into them, so
    consecutive chunks of a long sequence carrying hN over train by
    truncated BPTT across calls, as char-rnn does.  hN (cN): filled with the
    batch's samples' final states (rows of other samples untouched).

    CTC loss (cfg's loss code LOSS_CTC, an output per step): sample i's
    labeling is ctc_labels[ctc_lstart[i] : ctc_lstart[i] + ctc_llen[i]]
    (classes 1..n_outputs - 1; class 0 is the blank); sample_weight then
    has one weight per sample, and the loss is the weighted mean over the
    batch of loss_i / max(len(labeling_i), 1), torch.nn.CTCLoss's "mean".
    ctc_ws: CTC work, a row per shard (hidden split: per thread) of at least
    ctc_work_size(T_cap, longest labeling, n_outputs) doubles.
    zero_infinity: a labeling its sequence is too short to emit contributes
    0 (else the loss is inf and its gradient NaN, as torch.nn.CTCLoss).
    dX: None, or an array of X's shape that receives dLoss/dX in the rows
    of the batch's samples (other rows untouched): the gradient a layer
    below the network (a convolutional front-end) trains on.  ws rows are
    then sized with cfg.workspace_size(B_cap, T_cap, True, varlen, True).
    Not for token inputs.
    Given output gradient (cfg's loss code LOSS_GIVEN): yreg holds
    dLoss/d(head outputs), a row per target row, from a network stacked
    above this one (with dX, a stack of networks trains by the chain rule);
    the value returned is then sum(outputs * yreg).
    Returns the (weighted) mean loss of the batch (without the L2 term).
    """
    cdef const Net* n = &cfg.net
    cdef Py_ssize_t B = idx.shape[0], P = theta.shape[0]
    cdef Py_ssize_t S = grads.shape[0], s, lo, hi, i, j, Tmax = 0, nb
    cdef double scale, loss = 0, terms = 0
    cdef const double* swp = NULL
    cdef const floating* yp = NULL
    cdef const int32_t* lp = NULL
    cdef double[::1] part_loss
    cdef int tid, nth
    cdef floating* wp = NULL
    cdef bint ctc = n.loss == LOSS_CTC
    cdef bint per_step = n.seq and not ctc          # a loss term per step
    cdef Py_ssize_t rows_y = (X.shape[0] if per_step else start.shape[0])
    cdef States st
    cdef const States* stp = NULL
    cdef CtcTargets ct
    cdef const CtcTargets* ctp = NULL
    cdef double* cw = NULL
    cdef Py_ssize_t Lmax = 0, dxoff = 0
    cdef floating* dxp = NULL

    _check_input(n, X)
    if P != cfg.n_params or grads.shape[1] != P:
        raise ValueError("parameter vector does not match the network")
    if lens.shape[0] != start.shape[0]:
        raise ValueError("start and lens differ in length")
    if shard_off.shape[0] != S + 1 or shard_off[0] != 0 or shard_off[S] != B:
        raise ValueError("shard offsets do not cover the batch")
    if _init_states(n, start.shape[0], h0, c0, hN, cN, &st):
        stp = &st
    if hidden_split and S != 1:
        raise ValueError("the hidden split runs one shard")
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    if B < 1:
        raise ValueError("empty batch")
    for s in range(S):
        if shard_off[s + 1] < shard_off[s] or shard_off[s + 1] - shard_off[s] > B_cap:
            raise ValueError("a shard is larger than the workspace")
        Tmax = max(Tmax, _check_seqs(X.shape[0], start, lens, idx, shard_off[s],
                                     shard_off[s + 1]))
    if Tmax > T_cap or ws.shape[0] < S or iws.shape[0] < S or iws.shape[1] < _iws_size(T_cap) \
            or ws.shape[1] < cfg.workspace_size(B_cap, T_cap, True, varlen, dX is not None):
        raise ValueError("workspace too small")
    if dX is not None:
        if n.tokens:
            raise ValueError("token inputs have no input gradient")
        if dX.shape[0] != X.shape[0] or dX.shape[1] != X.shape[1]:
            raise ValueError(f"dX must have X's shape {(X.shape[0], X.shape[1])}, got "
                             f"{(dX.shape[0], dX.shape[1])}")
        # each row's gradient is written by one sample: samples may not
        # share rows (a sample twice in idx, or overlapping windows)
        taken = np.zeros(X.shape[0], dtype=np.bool_)
        for i in range(B):
            lo = start[idx[i]]
            if taken[lo:lo + lens[idx[i]]].any():
                raise ValueError("with dX, the batch's samples must not share rows of X "
                                 "(a sample twice in the batch, or overlapping sequences)")
            taken[lo:lo + lens[idx[i]]] = True
        dxoff = cfg.workspace_size(B_cap, T_cap, True, varlen)
        dxp = &dX[0, 0]
    if not varlen:
        for i in range(B):
            if lens[idx[i]] != T_cap:
                raise ValueError("sequences of different lengths need a varlen workspace")
    if wpack is not None and wpack.shape[0] > 0:
        if wpack.shape[0] != cfg.packed_size(True, sizeof(floating)):
            raise ValueError("packed-weight buffer has the wrong size")
        wp = &wpack[0]
    if sample_weight is None:
        for i in range(B):
            terms += lens[idx[i]] if per_step else 1
    else:
        if sample_weight.shape[0] != rows_y:
            raise ValueError("sample weights do not match the targets")
        swp = &sample_weight[0]
        for i in range(B):               # the batch's total weight
            nb = lens[idx[i]] if per_step else 1
            lo = start[idx[i]] if per_step else idx[i]
            for j in range(lo, lo + nb):
                if not (swp[j] >= 0 and isfinite(swp[j])):
                    raise ValueError("sample weights must be finite and non-negative")
                terms += swp[j]
    if n.loss == LOSS_MSE or n.loss == LOSS_GIVEN:
        if yreg.shape[0] != rows_y or yreg.shape[1] != n.O:
            raise ValueError("regression targets do not match X and the network")
        yp = &yreg[0, 0]
        scale = 1.0 / (terms * n.O) if terms > 0 else 0.0
        if n.loss == LOSS_GIVEN:
            if sample_weight is not None:
                raise ValueError("a given output gradient takes no sample weights")
            scale = 1.0
    elif ctc:
        if ctc_labels is None or ctc_lstart is None or ctc_llen is None or ctc_ws is None:
            raise ValueError("the CTC loss needs ctc_labels, ctc_lstart, ctc_llen and ctc_ws")
        if ctc_lstart.shape[0] != start.shape[0] or ctc_llen.shape[0] != start.shape[0]:
            raise ValueError("label offsets and lengths need one entry per sample")
        for i in range(B):               # only the batch's labelings (blank: class 0)
            Lmax = max(Lmax, _check_labeling(ctc_labels, ctc_lstart, ctc_llen, idx[i], n.O, 0))
        if ctc_ws.shape[0] < max(S, n_threads if hidden_split else 1) or \
                ctc_ws.shape[1] < _ctc_work_size(Tmax, Lmax, n.O):
            raise ValueError("CTC workspace too small")
        ct.lab = &ctc_labels[0] if ctc_labels.shape[0] > 0 else NULL
        ct.lstart = &ctc_lstart[0]
        ct.llen = &ctc_llen[0]
        ct.stride = ctc_ws.shape[1]
        ct.zero_inf = zero_infinity
        ctp = &ct
        cw = &ctc_ws[0, 0]
        scale = 1.0 / terms if terms > 0 else 0.0
    else:
        if ylab.shape[0] != rows_y:
            raise ValueError("labels do not match X")
        for i in range(B):               # only the batch's labels
            nb = lens[idx[i]] if n.seq else 1
            lo = start[idx[i]] if n.seq else idx[i]
            for j in range(lo, lo + nb):
                if ylab[j] < 0 or ylab[j] >= n.O:
                    raise ValueError("label out of range")
        lp = &ylab[0]
        scale = 1.0 / terms if terms > 0 else 0.0

    part_loss = np.zeros(max(S, n_threads))
    if CRNN_DEBUG_BUILD:
        # debug build: poison the workspace so a read of unwritten memory shows
        np.asarray(ws)[...] = np.nan
    if hidden_split and n_threads > 1:
        with nogil, parallel(num_threads=n_threads):
            tid = threadid()
            nth = omp_get_num_threads()
            if wp != NULL:
                _pack_all(n, &theta[0], wp, True, tid, nth)
            part_loss[tid] = _train_shard(n, &theta[0], &grads[0, 0], P, &X[0, 0], &start[0],
                                          &lens[0], &idx[0], B, yp, lp, &ws[0, 0], &iws[0, 0],
                                          T_cap, B_cap, varlen, swp, scale, seed, wp, stp, ctp,
                                          cw, &ws[0, dxoff], dxp, tid, nth)
    else:
        if wp != NULL:
            with nogil, parallel(num_threads=n_threads):
                _pack_all(n, &theta[0], wp, True, threadid(), omp_get_num_threads())
        for s in prange(S, nogil=True, schedule='static', num_threads=n_threads,
                        use_threads_if=n_threads > 1 and S > 1):
            lo = shard_off[s]
            hi = shard_off[s + 1]
            part_loss[s] = _train_shard(n, &theta[0], &grads[s, 0], P, &X[0, 0], &start[0],
                                        &lens[0], &idx[lo], hi - lo, yp, lp, &ws[s, 0],
                                        &iws[s, 0], T_cap, B_cap, varlen, swp, scale, seed, wp,
                                        stp, ctp, cw + s * ct.stride if cw != NULL else NULL,
                                        &ws[s, dxoff], dxp, 0, 1)
    for s in range(part_loss.shape[0]):
        loss += part_loss[s]
    return loss * scale


def predict(Config cfg, const floating[::1] theta, const floating[:, ::1] X,
            const Py_ssize_t[::1] start, const Py_ssize_t[::1] lens,
            const Py_ssize_t[::1] idx, floating[:, ::1] out, floating[:, ::1] ws,
            Py_ssize_t[:, ::1] iws, Py_ssize_t chunk, Py_ssize_t T_cap, int n_threads,
            bint hidden_split=False, const floating[::1] wpack=None,
            const floating[:, :, ::1] h0=None, const floating[:, :, ::1] c0=None,
            floating[:, :, ::1] hN=None, floating[:, :, ::1] cN=None,
            const Py_ssize_t[::1] chunk_off=None):
    """Raw head outputs of every sample: out row = sample (many-to-one) or
    the sample's data row of each step (return_sequences).

    idx: the samples in processing order; consecutive pieces of `chunk`
    samples (or the pieces idx[chunk_off[c]:chunk_off[c + 1]], at most
    `chunk` each), each sorted by decreasing length, go to the threads, each
    thread using its rows of `ws` and `iws` (sized with
    cfg.workspace_size(chunk, T_cap, False) and cfg.index_workspace_size(T_cap)); with
    hidden_split all threads work on each chunk in turn (split over hidden
    units, one row of each).  A sample's result does not depend on the other
    samples.  wpack: weights packed by pack_weights(train=False) for the
    recurrent products (None or empty: BLAS).

    h0 (c0 for the LSTM): initial states, (num_layers * ndir, N, H) as in
    PyTorch (None: zeros).  hN (cN): filled with the final states, same shape.
    """
    cdef const Net* n = &cfg.net
    cdef Py_ssize_t N = start.shape[0], Nb = idx.shape[0]
    cdef Py_ssize_t nchunks, c, lo, hi, Tmax
    cdef int nt = n_threads, tid, nth
    cdef const floating* wp = NULL
    cdef States st
    cdef const States* stp = NULL
    _check_input(n, X)
    if theta.shape[0] != cfg.n_params:
        raise ValueError("parameter vector does not match the network")
    if lens.shape[0] != N:
        raise ValueError("start and lens differ in length")
    if out.shape[0] != (X.shape[0] if n.seq else N) or out.shape[1] != n.O:
        raise ValueError("output array has the wrong shape")
    if chunk < 1:
        raise ValueError("chunk must be positive")
    if nt < 1:
        raise ValueError("n_threads must be positive")
    if wpack is not None and wpack.shape[0] > 0:
        if wpack.shape[0] != cfg.packed_size(False, sizeof(floating)):
            raise ValueError("packed-weight buffer has the wrong size")
        wp = &wpack[0]
    if _init_states(n, N, h0, c0, hN, cN, &st):
        stp = &st
    if Nb == 0:
        return
    cdef Py_ssize_t[::1] offs
    if chunk_off is None:
        offs = np.minimum(np.arange(0, Nb + chunk, chunk, dtype=np.intp)[:(Nb + chunk - 1) // chunk + 1], Nb)
    else:
        offs = np.array(chunk_off, dtype=np.intp)
        if offs.shape[0] < 2 or offs[0] != 0 or offs[offs.shape[0] - 1] != Nb:
            raise ValueError("chunk offsets do not cover the samples")
    nchunks = offs.shape[0] - 1
    Tmax = 0
    for c in range(nchunks):
        if offs[c + 1] < offs[c] or offs[c + 1] - offs[c] > chunk:
            raise ValueError("a chunk is larger than the workspace")
        Tmax = max(Tmax, _check_seqs(X.shape[0], start, lens, idx, offs[c], offs[c + 1]))
    if Tmax > T_cap:
        raise ValueError("workspace too small")
    if not hidden_split and nt > nchunks:
        nt = <int> nchunks
    if ws.shape[0] < (1 if hidden_split else nt) or iws.shape[0] < ws.shape[0] \
            or iws.shape[1] < _iws_size(T_cap) \
            or ws.shape[1] < cfg.workspace_size(chunk, T_cap, False):
        raise ValueError("workspace too small")
    if CRNN_DEBUG_BUILD:
        np.asarray(ws)[...] = np.nan
    if hidden_split and nt > 1:
        with nogil, parallel(num_threads=nt):
            tid = threadid()
            nth = omp_get_num_threads()
            for c in range(nchunks):
                lo = offs[c]
                hi = offs[c + 1]
                _predict_chunk(n, &theta[0], &X[0, 0], &start[0], &lens[0], &idx[lo], hi - lo,
                               &out[0, 0], &ws[0, 0], &iws[0, 0], T_cap, chunk, wp, stp,
                               tid, nth)
        return
    for c in prange(nchunks, nogil=True, schedule='dynamic', num_threads=nt,
                    use_threads_if=nt > 1):
        lo = offs[c]
        hi = offs[c + 1]
        _predict_chunk(n, &theta[0], &X[0, 0], &start[0], &lens[0], &idx[lo], hi - lo,
                       &out[0, 0], &ws[threadid(), 0], &iws[threadid(), 0], T_cap, chunk, wp,
                       stp, 0, 1)


include "_seq2seq.pxi"


def isa_ran():
    """The SIMD levels (crnn._isa.LEVELS) this module's kernels have run at
    since it loaded, per family: {"products": packed float products,
    "bf16": bfloat16 products, "vector": element-wise loops}.  For tests."""
    return isa_ran_levels()
