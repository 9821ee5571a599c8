# The attention encoder-decoder of crnn.RNNTranslator (included by
# _kernels.pyx: the encoder is that module's layers, run by the same
# functions as every other network).
#
# Model (tests/support/seq2seq_reference.py is its independent numpy reference):
# the encoder is a token network with an embedding (Net with tokens = 1,
# E > 0, seq = 1; its head is unused); its top layer's outputs h_j (C = ndir
# * H columns) are the attention's memory, and e = [h^f at the last step;
# h^r at step 0] feeds the bridge s_0 = tanh(W_b e + b_b) (LSTM: c_0 = 0).
# The decoder is one GRU or LSTM cell over the target embedding:
#
#   bahdanau: score_kj = v . tanh(W_q s_{k-1} + W_k h_j), alpha_k = softmax,
#             c_k = sum_j alpha_kj h_j, s_k = cell([emb_k; c_k], s_{k-1}),
#             o_k = [s_k; c_k]
#   luong:    s_k = cell(emb_k, s_{k-1}), score_kj = s_k . (W h_j),
#             o_k = tanh(W_c [c_k; s_k] + b_c)
#   none:     s_k = cell(emb_k, s_{k-1}), o_k = s_k
#
# then logits_k = W_o o_k + b_o and the softmax cross-entropy, a mean over
# every target token of the batch (BOS feeds step 0; EOS is the last target).
#
# Layout.  A shard's sentences are the encoder's rows (sorted by decreasing
# source length, as every shard of the encoder) and, for the decoder, the
# same sentences sorted by decreasing target length (decoder row b is
# encoder row dec_enc[b]); the decoder's steps are packed the same way (a
# Seqs over the target lengths + 1), so no work touches padding.  The
# memory of decoder row b is bank row b: Tcap steps of C (and the
# attention keys, Tcap steps of A), zero past the sentence's own length.
# Parallelism: the batch split (one shard per thread, a gradient row per
# shard); every GEMM is a BLAS call on the shard's rows.
#
# What this part uses of the core is the cimport from crnn._kernels below
# (declared in src/crnn/_kernels.pxd): the encoder's layers and their
# workspace, called once per shard or call, never per step.  The cells and
# gate GEMMs it shares with the core are crnn_net.pxd's inline functions.

from cython cimport floating
from cython.parallel cimport parallel, prange, threadid
from libc.math cimport tanh, exp, log
from libc.stdint cimport int32_t
from libc.string cimport memset, memcpy

import numpy as np

from crnn_blas cimport gemm
from crnn_codes cimport CELL_GRU, CELL_LSTM, LOSS_XENT
from crnn_net cimport (Net, net_init, crnn_simd_detect, crnn_tanh_array_f32,
                       crnn_xent_row_f32, _gate_gemm, _lstm_fwd, _lstm_bwd, _gru_fwd,
                       _gru_bwd)
from crnn_omp cimport crnn_ftz_enter, crnn_ftz_leave, omp_get_num_threads
from crnn._kernels cimport (CRNN_DEBUG_BUILD, WS_X0, WS_Y, WS_DYA, WS_DYB, WS_TOTAL,
                            WS_NSLOTS, Seqs, _iws_size, _packed_block, _ws_layout,
                            _seqs_init, _gather, _embed_gather, _forward_layers,
                            _backward_layers, _pack_all, _colsum_add, _check_input,
                            _check_seqs)

cdef enum:
    ATT_NONE = 0
    ATT_BAHDANAU = 1
    ATT_LUONG = 2

# the decoder's offset table (after the encoder's in S2SConfig's offsets)
cdef enum:
    DO_TEMB = 0
    DO_BW = 1
    DO_BB = 2
    DO_WIH = 3
    DO_WHH = 4
    DO_BIH = 5
    DO_BHH = 6
    DO_A1 = 7        # bahdanau W_query (A, H); luong W (H, C)
    DO_A2 = 8        # bahdanau W_key (A, C); luong combine.weight (H, C + H)
    DO_A3 = 9        # bahdanau v (A); luong combine.bias (H)
    DO_HW = 10
    DO_HB = 11
    DO_N = 12

# decoder workspace slots
cdef enum:
    DW_XD = 0        # R x Din: decoder input rows [emb; ctx] (bahdanau) or emb
    DW_Z = 1         # R x ZW: gate activations
    DW_S = 2         # (B + R) x H: s_0 block, then the packed states
    DW_C = 3         # (B + R) x H: LSTM cell states
    DW_SP = 4        # R x H: each row's previous state
    DW_R = 5         # B x GH: recurrent projection of one step
    DW_BSUM = 6      # GH
    DW_M = 7         # B x Tcap x C: memory
    DW_KB = 8        # B x Tcap x A: bahdanau keys
    DW_ACT = 9       # R x Tcap x A: bahdanau tanh(q + k)
    DW_ALPHA = 10    # R x Tcap
    DW_Q = 11        # B x A: bahdanau queries of one step
    DW_CTX = 12      # R x C: luong contexts
    DW_P = 13        # R x C: luong s W
    DW_O = 14        # R x H: luong combined outputs
    DW_LOG = 15      # R x Vt
    DW_DO = 16       # R x Dout
    DW_DZ = 17       # R x GH
    DW_DAN = 18      # R x H (GRU)
    DW_DH = 19       # B x H
    DW_DH2 = 20      # B x H
    DW_DC = 21       # B x H (LSTM)
    DW_DCTX = 22     # B x C
    DW_DQ = 23       # R x A
    DW_DKB = 24      # B x Tcap x A
    DW_DM = 25       # B x Tcap x C
    DW_U = 26        # B x C (luong)
    DW_EB = 27       # B x C: bridge inputs
    DW_DE = 28       # B x C
    DW_DXE = 29      # R x E
    DW_DSD = 30      # B x H: dLoss/ds_k from the step's own output
    DW_DSC = 31      # Tcap: dLoss/dscore of one row
    DW_TOTAL = 32
    DW_NSLOTS = 33


cdef struct Dec:
    int att
    int cell
    Py_ssize_t G, H, E, C, A, V, Din, Dout
    const Py_ssize_t* o       # DO_N offsets into theta


cdef inline Py_ssize_t _dec_zw(const Dec* d) noexcept nogil:
    return 4 * d.H


cdef void _dec_layout(const Dec* d, Py_ssize_t B, Py_ssize_t T, Py_ssize_t K, bint train,
                      Py_ssize_t* lay) noexcept nogil:
    """Offsets of the decoder's buffers for at most B sentences, T source
    and K decoder steps (R = K B rows at most).  Decoding (train false) uses
    B rows of one step."""
    cdef Py_ssize_t R = K * B if train else B, H = d.H, C = d.C, A = d.A
    cdef Py_ssize_t GH = d.G * d.H, pos = 0
    cdef bint bah = d.att == ATT_BAHDANAU, lu = d.att == ATT_LUONG
    cdef bint lstm = d.cell == CELL_LSTM
    lay[DW_XD] = pos;    pos += R * d.Din
    lay[DW_Z] = pos;     pos += R * _dec_zw(d)
    lay[DW_S] = pos;     pos += (B + R) * H
    lay[DW_C] = pos;     pos += (B + R) * H if lstm else 0
    lay[DW_SP] = pos;    pos += R * H if train else 0
    lay[DW_R] = pos;     pos += B * GH
    lay[DW_BSUM] = pos;  pos += GH
    lay[DW_M] = pos;     pos += B * T * C if d.att != ATT_NONE else 0
    lay[DW_KB] = pos;    pos += B * T * A if bah else 0
    lay[DW_ACT] = pos;   pos += R * T * A if bah else 0
    lay[DW_ALPHA] = pos; pos += R * T if d.att != ATT_NONE else 0
    lay[DW_Q] = pos;     pos += B * A if bah else 0
    lay[DW_CTX] = pos;   pos += R * C if lu else 0
    lay[DW_P] = pos;     pos += R * C if lu else 0
    lay[DW_O] = pos;     pos += R * H if lu else 0
    lay[DW_LOG] = pos;   pos += R * d.V
    lay[DW_DO] = pos;    pos += R * d.Dout if train else 0
    lay[DW_DZ] = pos;    pos += R * GH if train else 0
    lay[DW_DAN] = pos;   pos += R * H if (train and not lstm) else 0
    lay[DW_DH] = pos;    pos += B * H if train else 0
    lay[DW_DH2] = pos;   pos += B * H if train else 0
    lay[DW_DC] = pos;    pos += B * H if (train and lstm) else 0
    lay[DW_DCTX] = pos;  pos += B * C if train else 0
    lay[DW_DQ] = pos;    pos += R * A if (train and bah) else 0
    lay[DW_DKB] = pos;   pos += B * T * A if (train and bah) else 0
    lay[DW_DM] = pos;    pos += B * T * C if train else 0
    lay[DW_U] = pos;     pos += B * C if (train and lu) else 0
    lay[DW_EB] = pos;    pos += B * C
    lay[DW_DE] = pos;    pos += B * C if train else 0
    lay[DW_DXE] = pos;   pos += R * d.E if train else 0
    lay[DW_DSD] = pos;   pos += B * H if train else 0
    lay[DW_DSC] = pos;   pos += T if train else 0
    lay[DW_TOTAL] = pos


cdef inline void _tanh_n(floating* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if floating is float:
        crnn_tanh_array_f32(x, n)
    else:
        for i in range(n):
            x[i] = tanh(x[i])


cdef inline void _softmax_n(floating* x, Py_ssize_t n) noexcept nogil:
    """x <- softmax(x), n >= 1 (accumulated in double)."""
    cdef Py_ssize_t i
    cdef double mx = x[0], s = 0
    for i in range(1, n):
        if x[i] > mx:
            mx = x[i]
    for i in range(n):
        x[i] = <floating> exp(<double> x[i] - mx)
        s += x[i]
    for i in range(n):
        x[i] = <floating> (x[i] / s)


cdef inline void _context(const floating* alpha, const floating* Mb, Py_ssize_t T,
                          Py_ssize_t C, floating* ctx) noexcept nogil:
    """ctx = sum_j alpha_j Mb[j]."""
    cdef Py_ssize_t j, c
    cdef floating a
    for c in range(C):
        ctx[c] = 0
    for j in range(T):
        a = alpha[j]
        for c in range(C):
            ctx[c] += a * Mb[j * C + c]


cdef inline floating _dot(const floating* a, const floating* b, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating s = 0
    for i in range(n):
        s += a[i] * b[i]
    return s


cdef void _attend_backward(const floating* dctx, const floating* alpha, const floating* Mb,
                           floating* dMb, Py_ssize_t T, Py_ssize_t C,
                           floating* dscore) noexcept nogil:
    """ctx = alpha Mb, alpha = softmax(score): dMb += alpha dctx^T; dscore
    (T) <- dLoss/dscore."""
    cdef Py_ssize_t j, c
    cdef double s = 0
    cdef floating a
    for j in range(T):
        dscore[j] = _dot(Mb + j * C, dctx, C)
        s += alpha[j] * dscore[j]
        a = alpha[j]
        for c in range(C):
            dMb[j * C + c] += a * dctx[c]
    for j in range(T):
        dscore[j] = <floating> (alpha[j] * (dscore[j] - s))


cdef struct DecRows:
    # the buffers of one decoder step, m rows (pointers of the kernel's type)
    const void* sprev         # m x H (ld H)
    const void* cprev         # LSTM
    void* s                   # m x H out
    void* c                   # LSTM
    void* xd                  # m x Din: emb filled by the caller; bahdanau writes ctx
    void* z                   # m x ZW
    void* act                 # bahdanau: m x Tcap x A
    void* alpha               # m x Tcap
    void* ctx                 # luong: m x C
    void* p                   # luong: m x C
    void* o                   # luong: m x H
    const Py_ssize_t* brow    # bank row of each row (NULL: row b is bank row b)
    const Py_ssize_t* srcT    # source length of each bank row


cdef void _dec_step(const Dec* d, const floating* theta, const floating* ws,
                    const Py_ssize_t* lay, Py_ssize_t Tcap, Py_ssize_t m, bint zpre,
                    const DecRows* r) noexcept nogil:
    """One decoder step of m rows (see DecRows).  zpre: z already holds the
    embedding's part of the input projection (training computes it for all
    steps at once)."""
    cdef Py_ssize_t H = d.H, C = d.C, A = d.A, E = d.E, Din = d.Din, G = d.G
    cdef Py_ssize_t GH = G * H, ZW = _dec_zw(d), b, T, br
    cdef const floating* w_ih = theta + d.o[DO_WIH]
    cdef const floating* w_hh = theta + d.o[DO_WHH]
    cdef const floating* b_hh = theta + d.o[DO_BHH]
    cdef const floating* a1 = theta + d.o[DO_A1]
    cdef const floating* a2 = theta + d.o[DO_A2]
    cdef const floating* a3 = theta + d.o[DO_A3]
    cdef const floating* M = ws + lay[DW_M]
    cdef const floating* KB = ws + lay[DW_KB]
    cdef const floating* bsum = ws + lay[DW_BSUM]
    cdef floating* Q = <floating*> ws + lay[DW_Q]
    cdef floating* Rb = <floating*> ws + lay[DW_R]
    cdef const floating* sprev = <const floating*> r.sprev
    cdef floating* s = <floating*> r.s
    cdef floating* xd = <floating*> r.xd
    cdef floating* z = <floating*> r.z
    cdef floating* act = <floating*> r.act
    cdef floating* alpha = <floating*> r.alpha
    cdef floating* ctx = <floating*> r.ctx
    cdef floating* P = <floating*> r.p
    cdef floating* O = <floating*> r.o
    cdef floating* ab
    cdef floating* actb
    cdef Py_ssize_t j, a
    if m <= 0:
        return
    if d.att == ATT_BAHDANAU:
        # q = W_query s_{k-1}; a_j = tanh(q + k_j); score_j = v . a_j
        gemm(False, True, <int> m, <int> A, <int> H, <floating> 1.0, sprev, <int> H, a1,
             <int> H, <floating> 0.0, Q, <int> A)
        for b in range(m):
            br = r.brow[b] if r.brow != NULL else b
            T = r.srcT[br]
            actb = act + b * Tcap * A
            ab = alpha + b * Tcap
            for j in range(T):
                for a in range(A):
                    actb[j * A + a] = Q[b * A + a] + KB[(br * Tcap + j) * A + a]
            _tanh_n(actb, T * A)
            for j in range(T):
                ab[j] = _dot(actb + j * A, a3, A)
            _softmax_n(ab, T)
            _context(ab, M + br * Tcap * C, T, C, xd + b * Din + E)
    # input projection: the embedding's part (unless given), the context's
    if not zpre:
        _gate_gemm(0, False, m, 0, H, G, H, E, xd, Din, w_ih, Din, <floating> 0.0, z, ZW)
    if d.att == ATT_BAHDANAU:
        _gate_gemm(0, False, m, 0, H, G, H, C, xd + E, Din, w_ih + E, Din, <floating> 1.0, z, ZW)
    # recurrent projection and the cell
    gemm(False, True, <int> m, <int> GH, <int> H, <floating> 1.0, sprev, <int> H, w_hh,
         <int> H, <floating> 0.0, Rb, <int> GH)
    if d.cell == CELL_LSTM:
        _lstm_fwd(m, 0, H, H, z, ZW, Rb, GH, bsum, <const floating*> r.cprev, H,
                  <floating*> r.c, H, s, H)
    else:
        _gru_fwd(m, 0, H, H, z, ZW, Rb, GH, bsum, b_hh + 2 * H, sprev, H, s, H)
    if d.att == ATT_LUONG:
        # p = W^T s; score_j = p . h_j; o = tanh(W_c [c; s] + b_c)
        gemm(False, False, <int> m, <int> C, <int> H, <floating> 1.0, s, <int> H, a1, <int> C,
             <floating> 0.0, P, <int> C)
        for b in range(m):
            br = r.brow[b] if r.brow != NULL else b
            T = r.srcT[br]
            ab = alpha + b * Tcap
            for j in range(T):
                ab[j] = _dot(M + (br * Tcap + j) * C, P + b * C, C)
            _softmax_n(ab, T)
            _context(ab, M + br * Tcap * C, T, C, ctx + b * C)
        gemm(False, True, <int> m, <int> H, <int> C, <floating> 1.0, ctx, <int> C, a2,
             <int> (C + H), <floating> 0.0, O, <int> H)
        gemm(False, True, <int> m, <int> H, <int> H, <floating> 1.0, s, <int> H, a2 + C,
             <int> (C + H), <floating> 1.0, O, <int> H)
        for b in range(m):
            for j in range(H):
                O[b * H + j] += a3[j]
        _tanh_n(O, m * H)


cdef void _dec_head(const Dec* d, const floating* theta, Py_ssize_t m, const floating* s,
                    const floating* xd, const floating* O, floating* logits) noexcept nogil:
    """logits = W_o o + b_o for m rows: o = [s; ctx] (bahdanau, ctx in xd),
    the combined output (luong) or s."""
    cdef const floating* w = theta + d.o[DO_HW]
    cdef const floating* bo = theta + d.o[DO_HB]
    cdef Py_ssize_t H = d.H, V = d.V, i, j
    if m <= 0:
        return
    gemm(False, True, <int> m, <int> V, <int> H, <floating> 1.0, O if d.att == ATT_LUONG else s,
         <int> H, w, <int> d.Dout, <floating> 0.0, logits, <int> V)
    if d.att == ATT_BAHDANAU:
        gemm(False, True, <int> m, <int> V, <int> d.C, <floating> 1.0, xd + d.E, <int> d.Din,
             w + H, <int> d.Dout, <floating> 1.0, logits, <int> V)
    for i in range(m):
        for j in range(V):
            logits[i * V + j] += bo[j]


cdef void _dec_bsum(const Dec* d, const floating* theta, floating* bsum) noexcept nogil:
    """The decoder cell's summed biases (GRU: b_hn stays in the reset product)."""
    cdef Py_ssize_t j, H = d.H
    cdef const floating* bi = theta + d.o[DO_BIH]
    cdef const floating* bh = theta + d.o[DO_BHH]
    for j in range(d.G * H):
        bsum[j] = bi[j] + (0 if (d.cell == CELL_GRU and j >= 2 * H) else bh[j])


cdef void _s2s_encode(const Net* n, const Dec* d, const floating* theta, const floating* X,
                      const Seqs* q, floating* ws, const Py_ssize_t* lay,
                      const Py_ssize_t* dlay_, floating* dws, Py_ssize_t Tcap, Py_ssize_t Bmax,
                      bint train, const Py_ssize_t* dec_enc, Py_ssize_t* srcT,
                      unsigned long long seed, const floating* wpack) noexcept nogil:
    """The encoder over the shard's sentences (q), then the decoder's start:
    memory bank and keys (bank row b = encoder row dec_enc[b], or b when
    NULL), source lengths srcT[b], bridge inputs, s_0 (and c_0 = 0) in the
    first rows of DW_S (DW_C).  wpack: the encoder's packed W_hh (training
    only) or NULL."""
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, B = q.B, C = d.C, A = d.A, b, i, j, T
    cdef Py_ssize_t ysz = (Tcap + 2) * Bmax * W
    cdef floating* Ytop
    cdef floating* M = dws + dlay_[DW_M]
    cdef floating* EB = dws + dlay_[DW_EB]
    cdef floating* S = dws + dlay_[DW_S]
    _gather(ws + lay[WS_X0], X, 1, q, 0, 1)
    _embed_gather(n, theta, ws, lay, q, 0, 1)
    _forward_layers(n, theta, ws, lay, q, Tcap, Bmax, train, wpack, NULL, seed, 0, 1)
    Ytop = ws + lay[WS_Y] + ((n.L - 1) if train else (n.L - 1) % 2) * ysz + B * W
    for b in range(B):
        i = dec_enc[b] if dec_enc != NULL else b
        T = q.lens[q.idx[i]]
        srcT[b] = T
        if d.att != ATT_NONE:
            for j in range(T):
                memcpy(M + (b * Tcap + j) * C, Ytop + (q.off[j] + i) * W, W * sizeof(floating))
            memset(M + (b * Tcap + T) * C, 0, (Tcap - T) * C * sizeof(floating))
        memcpy(EB + b * C, Ytop + (q.off[T - 1] + i) * W, H * sizeof(floating))
        if n.ndir == 2:
            memcpy(EB + b * C + H, Ytop + i * W + H, H * sizeof(floating))
    if d.att == ATT_BAHDANAU:
        gemm(False, True, <int> (B * Tcap), <int> A, <int> C, <floating> 1.0, M, <int> C,
             theta + d.o[DO_A2], <int> C, <floating> 0.0, dws + dlay_[DW_KB], <int> A)
    gemm(False, True, <int> B, <int> H, <int> C, <floating> 1.0, EB, <int> C,
         theta + d.o[DO_BW], <int> C, <floating> 0.0, S, <int> H)
    for b in range(B):
        for j in range(H):
            S[b * H + j] += theta[d.o[DO_BB] + j]
    _tanh_n(S, B * H)
    if d.cell == CELL_LSTM:
        memset(dws + dlay_[DW_C], 0, B * H * sizeof(floating))
    _dec_bsum(d, theta, dws + dlay_[DW_BSUM])


cdef inline double _xent_row(floating* z, Py_ssize_t V, Py_ssize_t c, double ws) noexcept nogil:
    """-log softmax(z)[c]; z <- ws * (softmax(z) - onehot(c))."""
    cdef double mx, se, lse
    cdef Py_ssize_t j
    if floating is float:
        return crnn_xent_row_f32(z, V, <int> c, <float> ws)
    mx = z[0]
    for j in range(1, V):
        if z[j] > mx:
            mx = z[j]
    se = 0
    for j in range(V):
        se += exp(<double> z[j] - mx)
    lse = mx + log(se)
    se = lse - <double> z[c]
    for j in range(V):
        z[j] = <floating> (ws * exp(<double> z[j] - lse))
    z[c] -= <floating> ws
    return se


cdef double _s2s_shard(const Net* n, const Dec* d, const floating* theta, floating* grad,
                       Py_ssize_t P, const floating* X, const Py_ssize_t* start,
                       const Py_ssize_t* lens, const Py_ssize_t* idx, Py_ssize_t B,
                       const int32_t* tgt, const Py_ssize_t* tstart, const Py_ssize_t* klen,
                       const Py_ssize_t* didx, const Py_ssize_t* dec_enc, int bos, int eos,
                       floating* ws, Py_ssize_t* iws, Py_ssize_t Tcap, Py_ssize_t Kcap,
                       Py_ssize_t Bmax, double scale, unsigned long long seed,
                       const floating* wpack, const Py_ssize_t* ostart, floating* tok_loss,
                       floating* att, Py_ssize_t ldatt) noexcept nogil:
    """Loss (sum over the shard's target tokens) and gradient (into grad,
    zeroed first) of one shard, one thread: encoder rows idx[0..B-1] sorted
    by decreasing source length; decoder rows didx[0..B-1] (the same
    sentences by decreasing klen = target length + 1), decoder row b being
    encoder row dec_enc[b].  scale: 1 / the batch's target tokens.

    grad NULL: the forward pass only, writing token k of sample s's loss
    into tok_loss[ostart[s] + k] (unscaled) and, with attention and att not
    NULL, its attention weights into row ostart[s] + k of att (ldatt
    columns, the first srcT written)."""
    cdef Py_ssize_t lay[WS_NSLOTS]
    cdef Py_ssize_t dl[DW_NSLOTS]
    cdef unsigned int csr
    cdef Py_ssize_t H = n.H, W = n.ndir * n.H, C = d.C, A = d.A, E = d.E, V = d.V
    cdef Py_ssize_t G = d.G, GH = d.G * d.H, ZW = _dec_zw(d), Din = d.Din, Dout = d.Dout
    cdef Py_ssize_t ysz = (Tcap + 2) * Bmax * W, enc_sz
    cdef Py_ssize_t k, m, mn, b, r, R, i, j, a, T, row, smp, K
    cdef bint lstm = d.cell == CELL_LSTM, bah = d.att == ATT_BAHDANAU
    cdef bint lu = d.att == ATT_LUONG
    cdef double loss = 0
    cdef floating* dws
    cdef Py_ssize_t* srcT
    cdef Py_ssize_t* intok
    cdef Py_ssize_t* tgtok
    cdef Seqs q, qd
    cdef DecRows rr
    cdef floating* S
    cdef floating* Cs
    cdef floating* XD
    cdef floating* Z
    cdef floating* SP
    cdef floating* LOG
    cdef floating* DO
    cdef floating* DZ
    cdef floating* DAN
    cdef floating* DH
    cdef floating* DH2
    cdef floating* DC
    cdef floating* DCTX
    cdef floating* DSD
    cdef floating* DM
    cdef floating* dsc
    cdef floating* swp
    cdef floating* dY
    cdef const floating* w_ih = theta + d.o[DO_WIH]
    cdef const floating* w_hh = theta + d.o[DO_WHH]
    cdef const floating* a1 = theta + d.o[DO_A1]
    cdef const floating* a2 = theta + d.o[DO_A2]
    cdef const floating* a3 = theta + d.o[DO_A3]
    cdef const floating* w_out = theta + d.o[DO_HW]
    cdef floating* g_wih = grad + d.o[DO_WIH]
    cdef floating* tmp
    cdef floating* actb
    cdef floating* ab
    cdef floating* mb
    cdef floating* dmb
    cdef floating v, dv

    if grad != NULL:
        memset(grad, 0, P * sizeof(floating))
    if B <= 0:
        return 0.0
    csr = crnn_ftz_enter()
    _ws_layout(n, Bmax, Tcap, True, True, lay)
    enc_sz = lay[WS_TOTAL]
    dws = ws + enc_sz
    _dec_layout(d, Bmax, Tcap, Kcap, True, dl)
    _seqs_init(&q, idx, B, start, lens, iws, 0, 1)
    _seqs_init(&qd, didx, B, tstart, klen, iws + _iws_size(Tcap), 0, 1)
    srcT = iws + _iws_size(Tcap) + _iws_size(Kcap)
    intok = srcT + Bmax
    tgtok = intok + Kcap * Bmax
    R = qd.R
    K = qd.T
    S = dws + dl[DW_S]
    Cs = dws + dl[DW_C]
    XD = dws + dl[DW_XD]
    Z = dws + dl[DW_Z]
    SP = dws + dl[DW_SP]
    LOG = dws + dl[DW_LOG]
    DO = dws + dl[DW_DO]
    DZ = dws + dl[DW_DZ]
    DAN = dws + dl[DW_DAN]
    DH = dws + dl[DW_DH]
    DH2 = dws + dl[DW_DH2]
    DC = dws + dl[DW_DC]
    DCTX = dws + dl[DW_DCTX]
    DSD = dws + dl[DW_DSD]
    DM = dws + dl[DW_DM]

    # ---- forward
    _s2s_encode(n, d, theta, X, &q, ws, lay, dl, dws, Tcap, Bmax, True, dec_enc, srcT, seed,
                wpack)
    # the decoder's input and target tokens, its embedding rows and their
    # part of the input projection, all steps at once
    for k in range(K):
        for b in range(qd.bs[k]):
            smp = didx[b]
            r = qd.off[k] + b
            intok[r] = bos if k == 0 else tgt[tstart[smp] + k - 1]
            tgtok[r] = tgt[tstart[smp] + k] if k < klen[smp] - 1 else eos
            memcpy(XD + r * Din, theta + d.o[DO_TEMB] + intok[r] * E, E * sizeof(floating))
    _gate_gemm(0, False, R, 0, H, G, H, E, XD, Din, w_ih, Din, <floating> 0.0, Z, ZW)
    rr.brow = NULL                     # decoder row b reads bank row b
    rr.srcT = srcT
    for k in range(K):
        m = qd.bs[k]
        r = qd.off[k]
        rr.sprev = S + (0 if k == 0 else (B + qd.off[k - 1]) * H)
        rr.cprev = Cs + (0 if k == 0 else (B + qd.off[k - 1]) * H)
        rr.s = S + (B + r) * H
        rr.c = Cs + (B + r) * H
        rr.xd = XD + r * Din
        rr.z = Z + r * ZW
        rr.act = dws + dl[DW_ACT] + r * Tcap * A
        rr.alpha = dws + dl[DW_ALPHA] + r * Tcap
        rr.ctx = dws + dl[DW_CTX] + r * C
        rr.p = dws + dl[DW_P] + r * C
        rr.o = dws + dl[DW_O] + r * H
        memcpy(SP + r * H, <const floating*> rr.sprev, m * H * sizeof(floating))
        _dec_step(d, theta, dws, dl, Tcap, m, True, &rr)
    _dec_head(d, theta, R, S + B * H, XD, dws + dl[DW_O], LOG)
    if grad == NULL:
        for k in range(K):
            for b in range(qd.bs[k]):
                r = qd.off[k] + b
                row = ostart[didx[b]] + k
                tok_loss[row] = <floating> _xent_row(LOG + r * V, V, tgtok[r], 1.0)
                loss += tok_loss[row]
                if att != NULL and d.att != ATT_NONE:
                    memcpy(att + row * ldatt, dws + dl[DW_ALPHA] + r * Tcap,
                           srcT[b] * sizeof(floating))
        crnn_ftz_leave(csr)
        return loss
    for r in range(R):
        loss += _xent_row(LOG + r * V, V, tgtok[r], scale)

    # ---- backward: the head (dLoss/dlogits in LOG)
    if lu:
        gemm(True, False, <int> V, <int> H, <int> R, <floating> 1.0, LOG, <int> V,
             dws + dl[DW_O], <int> H, <floating> 1.0, grad + d.o[DO_HW], <int> Dout)
    else:
        gemm(True, False, <int> V, <int> H, <int> R, <floating> 1.0, LOG, <int> V,
             S + B * H, <int> H, <floating> 1.0, grad + d.o[DO_HW], <int> Dout)
    if bah:
        gemm(True, False, <int> V, <int> C, <int> R, <floating> 1.0, LOG, <int> V,
             XD + E, <int> Din, <floating> 1.0, grad + d.o[DO_HW] + H, <int> Dout)
    _colsum_add(grad + d.o[DO_HB], LOG, R, V, V)
    gemm(False, False, <int> R, <int> Dout, <int> V, <floating> 1.0, LOG, <int> V, w_out,
         <int> Dout, <floating> 0.0, DO, <int> Dout)
    if lu:
        # through o = tanh(W_c [c; s] + b_c): DO <- dLoss/d(pre-activation)
        tmp = dws + dl[DW_O]
        for r in range(R * H):
            DO[r] = DO[r] * (1 - tmp[r] * tmp[r])
        gemm(True, False, <int> H, <int> C, <int> R, <floating> 1.0, DO, <int> H,
             dws + dl[DW_CTX], <int> C, <floating> 1.0, grad + d.o[DO_A2], <int> (C + H))
        gemm(True, False, <int> H, <int> H, <int> R, <floating> 1.0, DO, <int> H,
             S + B * H, <int> H, <floating> 1.0, grad + d.o[DO_A2] + C, <int> (C + H))
        _colsum_add(grad + d.o[DO_A3], DO, R, H, H)
    if d.att != ATT_NONE:
        memset(DM, 0, B * Tcap * C * sizeof(floating))
    if bah:
        memset(dws + dl[DW_DKB], 0, B * Tcap * A * sizeof(floating))
    memset(DH, 0, B * H * sizeof(floating))
    if lstm:
        memset(DC, 0, B * H * sizeof(floating))
    dsc = dws + dl[DW_DSC]

    # ---- BPTT through the decoder
    for k in range(K - 1, -1, -1):
        m = qd.bs[k]
        r = qd.off[k]
        # dLoss/ds_k from this step's output, and (luong) the attention
        if lu:
            gemm(False, False, <int> m, <int> H, <int> H, <floating> 1.0, DO + r * H, <int> H,
                 a2 + C, <int> (C + H), <floating> 0.0, DSD, <int> H)
            gemm(False, False, <int> m, <int> C, <int> H, <floating> 1.0, DO + r * H, <int> H,
                 a2, <int> (C + H), <floating> 0.0, DCTX, <int> C)
            for b in range(m):
                T = srcT[b]
                _attend_backward(DCTX + b * C, dws + dl[DW_ALPHA] + (r + b) * Tcap,
                                 dws + dl[DW_M] + b * Tcap * C, DM + b * Tcap * C, T, C, dsc)
                # score_j = p . h_j, p = W^T s: u = sum_j dscore_j h_j; dh_j += dscore_j p
                mb = dws + dl[DW_M] + b * Tcap * C
                dmb = DM + b * Tcap * C
                tmp = dws + dl[DW_U] + b * C
                for i in range(C):
                    tmp[i] = 0
                for j in range(T):
                    for i in range(C):
                        tmp[i] += dsc[j] * mb[j * C + i]
                        dmb[j * C + i] += dsc[j] * (dws + dl[DW_P])[(r + b) * C + i]
            # dW += s^T u; ds += u W^T
            gemm(True, False, <int> H, <int> C, <int> m, <floating> 1.0, S + (B + r) * H,
                 <int> H, dws + dl[DW_U], <int> C, <floating> 1.0, grad + d.o[DO_A1], <int> C)
            gemm(False, True, <int> m, <int> H, <int> C, <floating> 1.0, dws + dl[DW_U],
                 <int> C, a1, <int> C, <floating> 1.0, DSD, <int> H)
        for b in range(m):
            for j in range(H):
                DH[b * H + j] += DSD[b * H + j] if lu else DO[(r + b) * Dout + j]
        # the cell: dZ (and dAn), what flows to s_{k-1} directly (GRU), dc (LSTM)
        if lstm:
            _lstm_bwd(m, 0, H, H, Z + r * ZW, ZW, Cs + (B + r) * H, H,
                      Cs + (0 if k == 0 else (B + qd.off[k - 1]) * H), H, DH, H, DC, H,
                      DZ + r * GH, GH)
        else:
            _gru_bwd(m, 0, H, H, Z + r * ZW, ZW, SP + r * H, H, DH, H, DZ + r * GH, GH,
                     DAN + r * H, H, DH2, H, False)
        # ds_{k-1} (+)= dz W_hh
        gemm(False, False, <int> m, <int> H, <int> GH, <floating> 1.0, DZ + r * GH, <int> GH,
             w_hh, <int> H, <floating> (0.0 if lstm else 1.0), DH2, <int> H)
        if bah:
            # dLoss/dc_k: from the output and from the cell's input
            for b in range(m):
                memcpy(DCTX + b * C, DO + (r + b) * Dout + H, C * sizeof(floating))
            if lstm:
                gemm(False, False, <int> m, <int> C, <int> GH, <floating> 1.0, DZ + r * GH,
                     <int> GH, w_ih + E, <int> Din, <floating> 1.0, DCTX, <int> C)
            else:
                gemm(False, False, <int> m, <int> C, <int> (2 * H), <floating> 1.0,
                     DZ + r * GH, <int> GH, w_ih + E, <int> Din, <floating> 1.0, DCTX, <int> C)
                gemm(False, False, <int> m, <int> C, <int> H, <floating> 1.0, DAN + r * H,
                     <int> H, w_ih + 2 * H * Din + E, <int> Din, <floating> 1.0, DCTX, <int> C)
            tmp = dws + dl[DW_DQ] + r * A
            for b in range(m):
                T = srcT[b]
                ab = dws + dl[DW_ALPHA] + (r + b) * Tcap
                actb = dws + dl[DW_ACT] + (r + b) * Tcap * A
                _attend_backward(DCTX + b * C, ab, dws + dl[DW_M] + b * Tcap * C,
                                 DM + b * Tcap * C, T, C, dsc)
                for a in range(A):
                    tmp[b * A + a] = 0
                for j in range(T):
                    for a in range(A):
                        v = actb[j * A + a]
                        grad[d.o[DO_A3] + a] += dsc[j] * v
                        dv = dsc[j] * a3[a] * (1 - v * v)
                        (dws + dl[DW_DKB])[(b * Tcap + j) * A + a] += dv
                        tmp[b * A + a] += dv
            # ds_{k-1} += dq W_query
            gemm(False, False, <int> m, <int> H, <int> A, <floating> 1.0, tmp, <int> A, a1,
                 <int> H, <floating> 1.0, DH2, <int> H)
        # rows that start at this step carry nothing further
        mn = qd.bs[k - 1] if k > 0 else B
        if mn > m:
            memset(DH2 + m * H, 0, (mn - m) * H * sizeof(floating))
        swp = DH
        DH = DH2
        DH2 = swp

    # ---- the decoder's weight gradients, all steps at once
    _dec_weight_grads(d, grad, w_ih, XD, SP, DZ, DAN, R)
    # the target embedding: dx = dz_in W_ih[:, :E], scattered by input token
    dY = dws + dl[DW_DXE]
    _dec_input_grad(d, w_ih, DZ, DAN, R, 0, E, dY, E)
    for r in range(R):
        for j in range(E):
            grad[d.o[DO_TEMB] + intok[r] * E + j] += dY[r * E + j]
    if bah:
        gemm(True, False, <int> A, <int> H, <int> R, <floating> 1.0, dws + dl[DW_DQ], <int> A,
             SP, <int> H, <floating> 1.0, grad + d.o[DO_A1], <int> H)
        gemm(True, False, <int> A, <int> C, <int> (B * Tcap), <floating> 1.0,
             dws + dl[DW_DKB], <int> A, dws + dl[DW_M], <int> C, <floating> 1.0,
             grad + d.o[DO_A2], <int> C)
        gemm(False, False, <int> (B * Tcap), <int> C, <int> A, <floating> 1.0,
             dws + dl[DW_DKB], <int> A, a2, <int> C, <floating> 1.0, DM, <int> C)

    # ---- the bridge: s_0 = tanh(W_b e + b_b); DH holds dLoss/ds_0
    for i in range(B * H):
        DH[i] = DH[i] * (1 - S[i] * S[i])
    gemm(True, False, <int> H, <int> C, <int> B, <floating> 1.0, DH, <int> H,
         dws + dl[DW_EB], <int> C, <floating> 1.0, grad + d.o[DO_BW], <int> C)
    _colsum_add(grad + d.o[DO_BB], DH, B, H, H)
    gemm(False, False, <int> B, <int> C, <int> H, <floating> 1.0, DH, <int> H,
         theta + d.o[DO_BW], <int> C, <floating> 0.0, dws + dl[DW_DE], <int> C)

    # ---- into the encoder's top layer: dLoss/dh_j from the memory, plus
    # the final states' from the bridge
    dY = ws + lay[WS_DYA]
    tmp = dws + dl[DW_DE]
    for b in range(B):
        i = dec_enc[b]
        T = srcT[b]
        for j in range(T):
            row = (q.off[j] + i) * W
            if d.att != ATT_NONE:
                memcpy(dY + row, DM + (b * Tcap + j) * C, W * sizeof(floating))
            else:
                memset(dY + row, 0, W * sizeof(floating))
        row = (q.off[T - 1] + i) * W
        for j in range(H):
            dY[row + j] += tmp[b * C + j]
        if n.ndir == 2:
            for j in range(H):
                dY[i * W + H + j] += tmp[b * C + H + j]
    _backward_layers(n, theta, grad, ws, lay, &q, Tcap, Bmax, dY, ws + lay[WS_DYB], 0,
                     wpack, seed, NULL, 0, 1)
    crnn_ftz_leave(csr)
    return loss


cdef void _dec_weight_grads(const Dec* d, floating* grad, const floating* w_ih,
                            const floating* XD, const floating* SP, const floating* DZ,
                            const floating* DAN, Py_ssize_t R) noexcept nogil:
    """dW_ih, dW_hh and the biases of the decoder cell over R rows (GRU: the
    n block of W_ih and b_ih sees dAn)."""
    cdef Py_ssize_t H = d.H, G = d.G, GH = d.G * d.H, Din = d.Din, j, r
    cdef bint gru = d.cell == CELL_GRU
    cdef floating* g_wih = grad + d.o[DO_WIH]
    cdef floating* g_bih = grad + d.o[DO_BIH]
    cdef floating* g_bhh = grad + d.o[DO_BHH]
    if R <= 0:
        return
    _gate_gemm(0, True, R, 0, H, G, H, H, DZ, GH, SP, H, <floating> 1.0, grad + d.o[DO_WHH], H)
    _gate_gemm(0, True, R, 0, H, 2 if gru else G, H, Din, DZ, GH, XD, Din, <floating> 1.0, g_wih,
               Din)
    if gru:
        gemm(True, False, <int> H, <int> Din, <int> R, <floating> 1.0, DAN, <int> H, XD,
             <int> Din, <floating> 1.0, g_wih + 2 * H * Din, <int> Din)
    _colsum_add(g_bhh, DZ, R, GH, GH)
    _colsum_add(g_bih, DZ, R, 2 * H if gru else GH, GH)
    if gru:
        _colsum_add(g_bih + 2 * H, DAN, R, H, H)


cdef void _dec_input_grad(const Dec* d, const floating* w_ih, const floating* DZ,
                          const floating* DAN, Py_ssize_t R, Py_ssize_t c0, Py_ssize_t c1,
                          floating* out, Py_ssize_t ldo) noexcept nogil:
    """out = dLoss/d(input columns [c0, c1)) = dz_in W_ih[:, c0:c1] for R rows."""
    cdef Py_ssize_t H = d.H, GH = d.G * d.H, Din = d.Din
    if R <= 0:
        return
    if d.cell == CELL_GRU:
        gemm(False, False, <int> R, <int> (c1 - c0), <int> (2 * H), <floating> 1.0, DZ,
             <int> GH, w_ih + c0, <int> Din, <floating> 0.0, out, <int> ldo)
        gemm(False, False, <int> R, <int> (c1 - c0), <int> H, <floating> 1.0, DAN, <int> H,
             w_ih + 2 * H * Din + c0, <int> Din, <floating> 1.0, out, <int> ldo)
    else:
        gemm(False, False, <int> R, <int> (c1 - c0), <int> GH, <floating> 1.0, DZ, <int> GH,
             w_ih + c0, <int> Din, <floating> 0.0, out, <int> ldo)


cdef void _s2s_greedy_chunk(const Net* n, const Dec* d, const floating* theta,
                            const floating* X, const Py_ssize_t* start, const Py_ssize_t* lens,
                            const Py_ssize_t* idx, Py_ssize_t nsent, floating* ws,
                            Py_ssize_t* iws,
                            Py_ssize_t Tcap, Py_ssize_t Bmax, int bos, int eos,
                            const Py_ssize_t* maxlen, int32_t* out, Py_ssize_t ldo,
                            Py_ssize_t* outlen) noexcept nogil:
    """Greedy decoding of the chunk idx[0..nsent-1] (sorted by decreasing
    source length; one thread): every sentence steps
    until it emits EOS (not written) or maxlen[sample] tokens; finished rows
    leave the batch (the last live row takes their place), so the work
    follows the live sentences.  Sample s's tokens go to out[s, :outlen[s]]."""
    cdef Py_ssize_t lay[WS_NSLOTS]
    cdef Py_ssize_t dl[DW_NSLOTS]
    cdef unsigned int csr = crnn_ftz_enter()
    cdef Seqs qs
    cdef Seqs* q = &qs
    cdef Py_ssize_t H = n.H, V = d.V, E = d.E, Din = d.Din, B = nsent, m, row, j, best, smp
    cdef Py_ssize_t k, kmax = 0
    cdef floating* dws
    cdef floating* LOG
    cdef floating* XD
    cdef floating* Scur
    cdef floating* Snext
    cdef floating* Ccur
    cdef floating* Cnext
    cdef floating* swp
    cdef floating* lg
    cdef Py_ssize_t* srcT = iws + _iws_size(Tcap)
    cdef Py_ssize_t* brow = srcT + Bmax
    cdef Py_ssize_t* tok = brow + Bmax
    cdef bint lstm = d.cell == CELL_LSTM, done
    cdef DecRows rr
    _seqs_init(q, idx, nsent, start, lens, iws, 0, 1)
    _ws_layout(n, Bmax, Tcap, False, False, lay)
    dws = ws + lay[WS_TOTAL]
    _dec_layout(d, Bmax, Tcap, 1, False, dl)
    _s2s_encode(n, d, theta, X, q, ws, lay, dl, dws, Tcap, Bmax, False, NULL, srcT, 0, NULL)
    LOG = dws + dl[DW_LOG]
    XD = dws + dl[DW_XD]
    Scur = dws + dl[DW_S]
    Snext = Scur + Bmax * H
    Ccur = dws + dl[DW_C]
    Cnext = Ccur + Bmax * H
    m = 0
    for row in range(B):
        smp = q.idx[row]
        outlen[smp] = 0
        kmax = max(kmax, maxlen[smp])
        if maxlen[smp] > 0:
            if m != row:       # (rows with no budget never start)
                memcpy(Scur + m * H, Scur + row * H, H * sizeof(floating))
            brow[m] = row
            tok[m] = bos
            m += 1
    rr.brow = brow
    rr.srcT = srcT
    rr.act = dws + dl[DW_ACT]
    rr.alpha = dws + dl[DW_ALPHA]
    rr.ctx = dws + dl[DW_CTX]
    rr.p = dws + dl[DW_P]
    rr.o = dws + dl[DW_O]
    rr.z = dws + dl[DW_Z]
    rr.xd = XD
    for k in range(kmax):
        if m == 0:
            break
        for row in range(m):
            memcpy(XD + row * Din, theta + d.o[DO_TEMB] + tok[row] * E, E * sizeof(floating))
        rr.sprev = Scur
        rr.cprev = Ccur
        rr.s = Snext
        rr.c = Cnext
        _dec_step(d, theta, dws, dl, Tcap, m, False, &rr)
        _dec_head(d, theta, m, Snext, XD, dws + dl[DW_O], LOG)
        # rows from the last: a finished row takes the last live row, already seen
        for row in range(m - 1, -1, -1):
            lg = LOG + row * V
            best = 0
            for j in range(1, V):
                if lg[j] > lg[best]:
                    best = j
            smp = q.idx[brow[row]]
            done = best == eos
            if not done:
                out[smp * ldo + outlen[smp]] = <int32_t> best
                outlen[smp] += 1
                tok[row] = best
                done = outlen[smp] >= maxlen[smp]
            if done:
                m -= 1
                if row != m:
                    memcpy(Snext + row * H, Snext + m * H, H * sizeof(floating))
                    if lstm:
                        memcpy(Cnext + row * H, Cnext + m * H, H * sizeof(floating))
                    brow[row] = brow[m]
                    tok[row] = tok[m]
        swp = Scur
        Scur = Snext
        Snext = swp
        swp = Ccur
        Ccur = Cnext
        Cnext = swp
    crnn_ftz_leave(csr)


# ---------------------------------------------------------------------------
# Python entry points

cdef class S2SConfig:
    """Shape of an encoder-decoder (see _seq2seq.pxi).  offs: the encoder's
    offset table (4 num_layers ndir + 3 entries, as Config's: its head
    entries are unused) then the decoder's DO_N offsets."""
    cdef Net net
    cdef Dec dec
    cdef const Py_ssize_t[::1] _offs
    cdef readonly Py_ssize_t n_params
    cdef object _args

    def __init__(self, int cell, int num_layers, int ndir, int hidden, int src_vocab,
                 int embedding_dim, int tgt_vocab, int attention, int attention_dim,
                 const Py_ssize_t[::1] offs, Py_ssize_t n_params, int simd=-1,
                 double dropout=0.0):
        cdef int best = crnn_simd_detect()
        cdef Py_ssize_t ne = 4 * num_layers * ndir + 3, i
        if cell not in (CELL_GRU, CELL_LSTM):
            raise ValueError("the encoder-decoder has GRU or LSTM cells")
        if attention not in (ATT_NONE, ATT_BAHDANAU, ATT_LUONG):
            raise ValueError(f"unknown attention code {attention}")
        if embedding_dim < 1 or tgt_vocab < 1 or (attention == ATT_BAHDANAU and attention_dim < 1):
            raise ValueError("invalid encoder-decoder shape")
        if offs.shape[0] != ne + DO_N:
            raise ValueError("offset table does not match the network shape")
        for i in range(offs.shape[0]):
            if offs[i] < 0 or offs[i] >= n_params:
                raise ValueError("offset outside the parameter vector")
        simd = best if simd < 0 or simd > best else simd
        self._args = (cell, num_layers, ndir, hidden, src_vocab, embedding_dim, tgt_vocab,
                      attention, attention_dim, np.asarray(offs).copy(), n_params, simd,
                      dropout)
        self._offs = self._args[9]
        self.n_params = n_params
        if net_init(&self.net, cell, num_layers, ndir, hidden, src_vocab, 1, True, LOSS_XENT,
                    -1, simd, dropout, &self._offs[0], True, embedding_dim) != 0:
            raise ValueError("invalid encoder-decoder shape")
        self.dec.att = attention
        self.dec.cell = cell
        self.dec.G = self.net.G
        self.dec.H = hidden
        self.dec.E = embedding_dim
        self.dec.C = ndir * hidden
        self.dec.A = attention_dim if attention == ATT_BAHDANAU else 0
        self.dec.V = tgt_vocab
        self.dec.Din = embedding_dim + (ndir * hidden if attention == ATT_BAHDANAU else 0)
        self.dec.Dout = hidden + (ndir * hidden if attention == ATT_BAHDANAU else 0)
        self.dec.o = &self._offs[ne]

    def __reduce__(self):
        return (S2SConfig, self._args)

    def packed_size(self, Py_ssize_t itemsize):
        """Elements of the encoder's packed W_hh (training)."""
        return _packed_block(&self.net, itemsize) * self.net.L * self.net.ndir * 2

    def workspace_size(self, Py_ssize_t B, Py_ssize_t T, Py_ssize_t K, bint train):
        """Elements of workspace for a shard (train) or chunk (decoding) of at
        most B sentences of at most T source tokens and K decoder steps."""
        cdef Py_ssize_t lay[WS_NSLOTS]
        cdef Py_ssize_t dl[DW_NSLOTS]
        _ws_layout(&self.net, B, T, train, train, lay)
        _dec_layout(&self.dec, B, T, K, train, dl)
        return lay[WS_TOTAL] + dl[DW_TOTAL]

    def index_workspace_size(self, Py_ssize_t B, Py_ssize_t T, Py_ssize_t K, bint train):
        """Integers of index workspace for the same."""
        if train:
            return _iws_size(T) + _iws_size(K) + B + 2 * K * B
        return _iws_size(T) + 3 * B


ATTENTION_CODES = {None: ATT_NONE, "bahdanau": ATT_BAHDANAU, "luong": ATT_LUONG}


cdef _check_s2s_batch(S2SConfig cfg, const floating[:, ::1] X, const Py_ssize_t[::1] start,
                      const Py_ssize_t[::1] lens, const int32_t[::1] tgt,
                      const Py_ssize_t[::1] tstart, const Py_ssize_t[::1] klen,
                      const Py_ssize_t[::1] idx, const Py_ssize_t[::1] didx,
                      const Py_ssize_t[::1] dec_enc, const Py_ssize_t[::1] shard_off,
                      int bos, int eos, Py_ssize_t T_cap, Py_ssize_t K_cap, Py_ssize_t B_cap):
    """Everything a shard reads is inside its arrays and sorted as the
    kernels need; returns the batch's target tokens."""
    cdef Py_ssize_t N = start.shape[0], B = idx.shape[0], S = shard_off.shape[0] - 1
    cdef Py_ssize_t s, lo, hi, i, j, smp, terms = 0
    _check_input(&cfg.net, X)
    if lens.shape[0] != N or tstart.shape[0] != N or klen.shape[0] != N:
        raise ValueError("per-sentence arrays differ in length")
    if didx.shape[0] != B or dec_enc.shape[0] != B:
        raise ValueError("decoder order does not match the batch")
    if S < 1 or shard_off[0] != 0 or shard_off[S] != B:
        raise ValueError("shard offsets do not cover the batch")
    if not (0 <= bos < cfg.dec.V and 0 <= eos < cfg.dec.V):
        raise ValueError("BOS / EOS ids outside the target vocabulary")
    for s in range(S):
        lo = shard_off[s]
        hi = shard_off[s + 1]
        if hi < lo or hi - lo > B_cap:
            raise ValueError("a shard is larger than the workspace")
        if _check_seqs(X.shape[0], start, lens, idx, lo, hi) > T_cap:
            raise ValueError("a source sentence is longer than the workspace")
        for i in range(lo, hi):
            j = dec_enc[i]
            if j < 0 or j >= hi - lo:
                raise IndexError("decoder row out of the shard")
            if didx[i] != idx[lo + j]:
                raise ValueError("decoder order does not name the shard's sentences")
            smp = didx[i]
            if klen[smp] < 1 or klen[smp] > K_cap or tstart[smp] < 0 \
                    or tstart[smp] + klen[smp] - 1 > tgt.shape[0]:
                raise ValueError("target sentence outside the data or the workspace")
            if i > lo and klen[smp] > klen[didx[i - 1]]:
                raise ValueError("decoder rows must be sorted by decreasing target length")
            for j in range(tstart[smp], tstart[smp] + klen[smp] - 1):
                if tgt[j] < 0 or tgt[j] >= cfg.dec.V:
                    raise ValueError(f"target token id {tgt[j]} is not in [0, {cfg.dec.V})")
            terms += klen[smp]
    return terms


def s2s_train_step(S2SConfig cfg, const floating[::1] theta, floating[:, ::1] grads,
                   const floating[:, ::1] X, const Py_ssize_t[::1] start,
                   const Py_ssize_t[::1] lens, const int32_t[::1] tgt,
                   const Py_ssize_t[::1] tstart, const Py_ssize_t[::1] klen,
                   const Py_ssize_t[::1] idx, const Py_ssize_t[::1] didx,
                   const Py_ssize_t[::1] dec_enc, const Py_ssize_t[::1] shard_off, int bos,
                   int eos, floating[:, ::1] ws, Py_ssize_t[:, ::1] iws, Py_ssize_t T_cap,
                   Py_ssize_t K_cap, Py_ssize_t B_cap, int n_threads,
                   floating[::1] wpack=None, unsigned long long seed=0):
    """Mean cross-entropy of a batch of sentence pairs (teacher forcing) and
    its gradient, one row of `grads` per shard (the caller sums them).

    Source sentence s: token ids X[start[s] : start[s] + lens[s], 0]; its
    target: tgt[tstart[s] : tstart[s] + klen[s] - 1] (klen: target length
    + 1, the decoder's steps: BOS then the tokens in, the tokens then EOS
    out).  Shard k is idx[shard_off[k] : shard_off[k + 1]] sorted by
    decreasing source length, and the same sentences in didx sorted by
    decreasing klen, decoder row i being row dec_enc[i] of the shard.  ws and
    iws: a row per shard, sized by cfg.workspace_size(B_cap, T_cap, K_cap,
    True) and cfg.index_workspace_size(B_cap, T_cap, K_cap, True).  wpack
    (cfg.packed_size elements): scratch for the encoder's packed W_hh, or
    None (BLAS).  seed: the encoder's dropout masks."""
    cdef Py_ssize_t S = grads.shape[0], P = theta.shape[0], s, lo, hi
    cdef double terms, scale, loss = 0
    cdef double[::1] part
    cdef floating* wp = NULL
    if P != cfg.n_params or grads.shape[1] != P:
        raise ValueError("parameter vector does not match the network")
    if shard_off.shape[0] != S + 1:
        raise ValueError("shard offsets do not match the gradient rows")
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    if idx.shape[0] < 1:
        raise ValueError("empty batch")
    terms = _check_s2s_batch(cfg, X, start, lens, tgt, tstart, klen, idx, didx, dec_enc,
                             shard_off, bos, eos, T_cap, K_cap, B_cap)
    if ws.shape[0] < S or iws.shape[0] < S \
            or ws.shape[1] < cfg.workspace_size(B_cap, T_cap, K_cap, True) \
            or iws.shape[1] < cfg.index_workspace_size(B_cap, T_cap, K_cap, True):
        raise ValueError("workspace too small")
    if wpack is not None and wpack.shape[0] > 0:
        if wpack.shape[0] != cfg.packed_size(sizeof(floating)):
            raise ValueError("packed-weight buffer has the wrong size")
        wp = &wpack[0]
        with nogil, parallel(num_threads=n_threads):
            _pack_all(&cfg.net, &theta[0], wp, True, threadid(), omp_get_num_threads())
    scale = 1.0 / terms
    part = np.zeros(S)
    if CRNN_DEBUG_BUILD:
        np.asarray(ws)[...] = np.nan
    for s in prange(S, nogil=True, schedule='static', num_threads=n_threads,
                    use_threads_if=n_threads > 1 and S > 1):
        lo = shard_off[s]
        hi = shard_off[s + 1]
        part[s] = _s2s_shard(&cfg.net, &cfg.dec, &theta[0], &grads[s, 0], P, &X[0, 0],
                             &start[0], &lens[0], &idx[lo], hi - lo, &tgt[0], &tstart[0],
                             &klen[0], &didx[lo], &dec_enc[lo], bos, eos, &ws[s, 0],
                             &iws[s, 0], T_cap, K_cap, B_cap, scale, seed, wp, NULL, NULL,
                             NULL, 0)
    for s in range(S):
        loss += part[s]
    return loss * scale


def s2s_forward(S2SConfig cfg, const floating[::1] theta, const floating[:, ::1] X,
                const Py_ssize_t[::1] start, const Py_ssize_t[::1] lens,
                const int32_t[::1] tgt, const Py_ssize_t[::1] tstart,
                const Py_ssize_t[::1] klen, const Py_ssize_t[::1] idx,
                const Py_ssize_t[::1] didx, const Py_ssize_t[::1] dec_enc,
                const Py_ssize_t[::1] shard_off, int bos, int eos,
                const Py_ssize_t[::1] ostart, floating[::1] tok_loss, floating[:, ::1] att,
                floating[:, ::1] ws, Py_ssize_t[:, ::1] iws, Py_ssize_t T_cap,
                Py_ssize_t K_cap, Py_ssize_t B_cap, int n_threads):
    """Teacher-forced forward pass only (s2s_train_step's arguments): the
    loss of token k of sentence s (k < klen[s], the last being EOS) into
    tok_loss[ostart[s] + k] and, with attention and att not None, its
    attention weights over the sentence's source tokens into
    att[ostart[s] + k, :lens[s]] (the rest untouched).  Shards run in
    parallel.  Returns the summed loss."""
    cdef Py_ssize_t S = shard_off.shape[0] - 1, s, lo, hi, i, smp
    cdef double loss = 0
    cdef double[::1] part
    cdef floating* ap = NULL
    cdef Py_ssize_t lda = 0
    if theta.shape[0] != cfg.n_params:
        raise ValueError("parameter vector does not match the network")
    if n_threads < 1:
        raise ValueError("n_threads must be positive")
    if idx.shape[0] == 0:
        return 0.0
    _check_s2s_batch(cfg, X, start, lens, tgt, tstart, klen, idx, didx, dec_enc, shard_off,
                     bos, eos, T_cap, K_cap, B_cap)
    if ostart.shape[0] != start.shape[0]:
        raise ValueError("ostart does not match the sentences")
    for i in range(idx.shape[0]):
        smp = idx[i]
        if ostart[smp] < 0 or ostart[smp] + klen[smp] > tok_loss.shape[0]:
            raise ValueError("tok_loss is too small")
        if att is not None and (ostart[smp] + klen[smp] > att.shape[0]
                                or lens[smp] > att.shape[1]):
            raise ValueError("att is too small")
    if att is not None and att.shape[0] > 0:
        ap = &att[0, 0]
        lda = att.shape[1]
    if ws.shape[0] < S or iws.shape[0] < S \
            or ws.shape[1] < cfg.workspace_size(B_cap, T_cap, K_cap, True) \
            or iws.shape[1] < cfg.index_workspace_size(B_cap, T_cap, K_cap, True):
        raise ValueError("workspace too small")
    part = np.zeros(S)
    if CRNN_DEBUG_BUILD:
        np.asarray(ws)[...] = np.nan
    for s in prange(S, nogil=True, schedule='dynamic', num_threads=n_threads,
                    use_threads_if=n_threads > 1 and S > 1):
        lo = shard_off[s]
        hi = shard_off[s + 1]
        part[s] = _s2s_shard(&cfg.net, &cfg.dec, &theta[0], NULL, 0, &X[0, 0], &start[0],
                             &lens[0], &idx[lo], hi - lo, &tgt[0], &tstart[0], &klen[0],
                             &didx[lo], &dec_enc[lo], bos, eos, &ws[threadid(), 0],
                             &iws[threadid(), 0], T_cap, K_cap, B_cap, 1.0, 0, NULL,
                             &ostart[0], &tok_loss[0], ap, lda)
    for s in range(S):
        loss += part[s]
    return loss


def s2s_greedy(S2SConfig cfg, const floating[::1] theta, const floating[:, ::1] X,
               const Py_ssize_t[::1] start, const Py_ssize_t[::1] lens,
               const Py_ssize_t[::1] idx, const Py_ssize_t[::1] chunk_off, int bos, int eos,
               const Py_ssize_t[::1] maxlen, int32_t[:, ::1] out, Py_ssize_t[::1] outlen,
               floating[:, ::1] ws, Py_ssize_t[:, ::1] iws, Py_ssize_t T_cap,
               Py_ssize_t B_cap, int n_threads):
    """Greedy decoding (the argmax each step, the lowest id on ties) of the
    sentences idx, cut into the chunks idx[chunk_off[c] : chunk_off[c + 1]]
    (each sorted by decreasing source length, at most B_cap), the chunks
    spread over the threads (a row of ws / iws each, sized by
    cfg.workspace_size(B_cap, T_cap, 1, False) and
    cfg.index_workspace_size(B_cap, T_cap, 1, False)).  Sentence s stops at
    EOS or after maxlen[s] tokens (<= out.shape[1]); its tokens (without
    EOS) go to out[s, :outlen[s]]."""
    cdef Py_ssize_t N = start.shape[0], nb = idx.shape[0], nchunks = chunk_off.shape[0] - 1
    cdef Py_ssize_t c, lo, hi, i, smp
    cdef int nt = n_threads
    if theta.shape[0] != cfg.n_params:
        raise ValueError("parameter vector does not match the network")
    _check_input(&cfg.net, X)
    if lens.shape[0] != N or maxlen.shape[0] != N or outlen.shape[0] != N \
            or out.shape[0] != N:
        raise ValueError("per-sentence arrays differ in length")
    if not (0 <= bos < cfg.dec.V and 0 <= eos < cfg.dec.V):
        raise ValueError("BOS / EOS ids outside the target vocabulary")
    if nchunks < 1 or chunk_off[0] != 0 or chunk_off[nchunks] != nb:
        raise ValueError("chunk offsets do not cover the sentences")
    if nt < 1:
        raise ValueError("n_threads must be positive")
    for c in range(nchunks):
        lo = chunk_off[c]
        hi = chunk_off[c + 1]
        if hi < lo or hi - lo > B_cap:
            raise ValueError("a chunk is larger than the workspace")
        if _check_seqs(X.shape[0], start, lens, idx, lo, hi) > T_cap:
            raise ValueError("a source sentence is longer than the workspace")
        for i in range(lo, hi):
            smp = idx[i]
            if maxlen[smp] < 0 or maxlen[smp] > out.shape[1]:
                raise ValueError("maxlen outside [0, out.shape[1]]")
    if nt > nchunks:
        nt = <int> nchunks
    if ws.shape[0] < nt or iws.shape[0] < nt \
            or ws.shape[1] < cfg.workspace_size(B_cap, T_cap, 1, False) \
            or iws.shape[1] < cfg.index_workspace_size(B_cap, T_cap, 1, False):
        raise ValueError("workspace too small")
    if CRNN_DEBUG_BUILD:
        np.asarray(ws)[...] = np.nan
    for c in prange(nchunks, nogil=True, schedule='dynamic', num_threads=nt,
                    use_threads_if=nt > 1):
        lo = chunk_off[c]
        hi = chunk_off[c + 1]
        if hi > lo:
            _s2s_greedy_chunk(&cfg.net, &cfg.dec, &theta[0], &X[0, 0], &start[0], &lens[0],
                              &idx[lo], hi - lo, &ws[threadid(), 0],
                              &iws[threadid(), 0], T_cap, B_cap, bos, eos, &maxlen[0],
                              &out[0, 0], out.shape[1], &outlen[0])


# ---------------------------------------------------------------------------
# step-by-step decoding (beam search): one chunk of sentences, encoded once,
# then any number of hypothesis rows per sentence stepped together

def s2s_encode(S2SConfig cfg, const floating[::1] theta, const floating[:, ::1] X,
               const Py_ssize_t[::1] start, const Py_ssize_t[::1] lens,
               const Py_ssize_t[::1] idx, floating[::1] ws, Py_ssize_t[::1] iws,
               Py_ssize_t T_cap, Py_ssize_t R_cap):
    """Encode the sentences idx (sorted by decreasing source length, at most
    R_cap) into ws / iws (sized by cfg.workspace_size(R_cap, T_cap, 1, False)
    and cfg.index_workspace_size(R_cap, T_cap, 1, False)) for s2s_step:
    sentence idx[i] is memory row i, and row i of the first step's states."""
    cdef Py_ssize_t lay[WS_NSLOTS]
    cdef Py_ssize_t dl[DW_NSLOTS]
    cdef Py_ssize_t N = start.shape[0], B = idx.shape[0], i, smp
    cdef Seqs q
    cdef unsigned int csr
    if theta.shape[0] != cfg.n_params:
        raise ValueError("parameter vector does not match the network")
    _check_input(&cfg.net, X)
    if lens.shape[0] != N:
        raise ValueError("start and lens differ in length")
    if B < 1 or B > R_cap:
        raise ValueError("between 1 and R_cap sentences")
    if _check_seqs(X.shape[0], start, lens, idx, 0, B) > T_cap:
        raise ValueError("a source sentence is longer than the workspace")
    if ws.shape[0] < cfg.workspace_size(R_cap, T_cap, 1, False) \
            or iws.shape[0] < cfg.index_workspace_size(R_cap, T_cap, 1, False):
        raise ValueError("workspace too small")
    if CRNN_DEBUG_BUILD:
        np.asarray(ws)[...] = np.nan
    with nogil:
        csr = crnn_ftz_enter()
        _seqs_init(&q, &idx[0], B, &start[0], &lens[0], &iws[0], 0, 1)
        _ws_layout(&cfg.net, R_cap, T_cap, False, False, lay)
        _dec_layout(&cfg.dec, R_cap, T_cap, 1, False, dl)
        _s2s_encode(&cfg.net, &cfg.dec, &theta[0], &X[0, 0], &q, &ws[0], lay, dl,
                    &ws[0] + lay[WS_TOTAL], T_cap, R_cap, False, NULL,
                    &iws[0] + _iws_size(T_cap), 0, NULL)
        crnn_ftz_leave(csr)
    return None


def s2s_step(S2SConfig cfg, const floating[::1] theta, floating[::1] ws, Py_ssize_t[::1] iws,
             Py_ssize_t T_cap, Py_ssize_t R_cap, Py_ssize_t n_prev, bint first,
             const Py_ssize_t[::1] tokens, const Py_ssize_t[::1] parents,
             floating[:, ::1] logp):
    """One decoder step of R rows after s2s_encode: row r continues row
    parents[r] of the previous call (of n_prev rows; on the first call,
    sentence parents[r]) with input token tokens[r]; its log-probabilities
    of the next token go to logp[r]."""
    cdef Py_ssize_t lay[WS_NSLOTS]
    cdef Py_ssize_t dl[DW_NSLOTS]
    cdef Py_ssize_t R = tokens.shape[0], H = cfg.dec.H, V = cfg.dec.V, E = cfg.dec.E
    cdef Py_ssize_t Din = cfg.dec.Din, r, j, p
    cdef const Dec* d = &cfg.dec
    cdef floating* dws
    cdef floating* S
    cdef floating* Cs
    cdef floating* lg
    cdef Py_ssize_t* srcT
    cdef Py_ssize_t* brow
    cdef Py_ssize_t* tmp
    cdef double mx, se
    cdef unsigned int csr
    cdef DecRows rr
    cdef bint lstm = cfg.dec.cell == CELL_LSTM
    if theta.shape[0] != cfg.n_params:
        raise ValueError("parameter vector does not match the network")
    if ws.shape[0] < cfg.workspace_size(R_cap, T_cap, 1, False) \
            or iws.shape[0] < cfg.index_workspace_size(R_cap, T_cap, 1, False):
        raise ValueError("workspace too small")
    if R < 1 or R > R_cap or parents.shape[0] != R or logp.shape[0] != R \
            or logp.shape[1] != V:
        raise ValueError("tokens, parents and logp must have 1 to R_cap matching rows")
    if n_prev < 1 or n_prev > R_cap:
        raise ValueError("n_prev outside [1, R_cap]")
    for r in range(R):
        if parents[r] < 0 or parents[r] >= n_prev:
            raise IndexError(f"parent {parents[r]} of row {r} is not a row of the previous step")
        if tokens[r] < 0 or tokens[r] >= V:
            raise ValueError(f"token id {tokens[r]} is not in [0, {V})")
    with nogil:
        csr = crnn_ftz_enter()
        _ws_layout(&cfg.net, R_cap, T_cap, False, False, lay)
        dws = &ws[0] + lay[WS_TOTAL]
        _dec_layout(d, R_cap, T_cap, 1, False, dl)
        S = dws + dl[DW_S]
        Cs = dws + dl[DW_C]
        srcT = &iws[0] + _iws_size(T_cap)
        brow = srcT + R_cap
        tmp = brow + R_cap
        # the rows' previous states (first half of DW_S / DW_C) gathered into
        # the second half; the step then writes the new states into the first
        for r in range(R):
            p = parents[r]
            memcpy(S + (R_cap + r) * H, S + p * H, H * sizeof(floating))
            if lstm:
                memcpy(Cs + (R_cap + r) * H, Cs + p * H, H * sizeof(floating))
            tmp[r] = p if first else brow[p]
        for r in range(R):
            brow[r] = tmp[r]
            memcpy(dws + dl[DW_XD] + r * Din, &theta[0] + d.o[DO_TEMB] + tokens[r] * E,
                   E * sizeof(floating))
        rr.sprev = S + R_cap * H
        rr.cprev = Cs + R_cap * H
        rr.s = S
        rr.c = Cs
        rr.xd = dws + dl[DW_XD]
        rr.z = dws + dl[DW_Z]
        rr.act = dws + dl[DW_ACT]
        rr.alpha = dws + dl[DW_ALPHA]
        rr.ctx = dws + dl[DW_CTX]
        rr.p = dws + dl[DW_P]
        rr.o = dws + dl[DW_O]
        rr.brow = brow
        rr.srcT = srcT
        _dec_step(d, &theta[0], dws, dl, T_cap, R, False, &rr)
        _dec_head(d, &theta[0], R, S, dws + dl[DW_XD], dws + dl[DW_O], dws + dl[DW_LOG])
        for r in range(R):
            lg = dws + dl[DW_LOG] + r * V
            mx = lg[0]
            for j in range(1, V):
                if lg[j] > mx:
                    mx = lg[j]
            se = 0
            for j in range(V):
                se += exp(<double> lg[j] - mx)
            se = mx + log(se)
            for j in range(V):
                logp[r, j] = <floating> (lg[j] - se)
        crnn_ftz_leave(csr)
