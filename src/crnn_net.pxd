# What the kernel modules share (crnn._kernels: training and predict;
# crnn._step: the streaming step): the declarations of the C kernels, the
# network description Net, the fused float/double wrappers over the C
# kernels (one call site each, instead of `if floating is float` at every
# use) and the helpers for teams of threads.  Everything here is inline.
from cython cimport floating
from libc.math cimport tanh, tanhf
from libc.string cimport memcpy, memset

from crnn_blas cimport gemm
from crnn_codes cimport CELL_TANH, CELL_RELU, CELL_GRU, CELL_LSTM
from crnn_omp cimport crnn_barrier

cdef extern from "crnn_fast.h" nogil:
    void crnn_tanh_bias_f32(float* z, long rows, long H, long ld, const float* b)
    void crnn_relu_bias_f32(float* z, long rows, long H, long ld, const float* b)
    void crnn_tanh_grad_f32(float* g, long ldg, const float* y, long ldy, long rows, long H)
    void crnn_relu_grad_f32(float* g, long ldg, const float* y, long ldy, long rows, long H)
    void crnn_tanh_array_f32(float* x, long n)
    double crnn_xent_row_f32(float* z, long n, int c, float ws)
    void crnn_sigmoid_array_f32(float* x, long n)
    void crnn_lstm_fwd_f32(long M, long j0, long j1, long H, float* Z, long ldz,
                           const float* R, long ldr, const float* bz, const float* cprev,
                           long ldcp, float* c, long ldc, float* h, long ldh)
    void crnn_lstm_fwd_f64(long M, long j0, long j1, long H, double* Z, long ldz,
                           const double* R, long ldr, const double* bz, const double* cprev,
                           long ldcp, double* c, long ldc, double* h, long ldh)
    void crnn_lstm_bwd_f32(long M, long j0, long j1, long H, const float* Z, long ldz,
                           const float* c, long ldc, const float* cprev, long ldcp,
                           const float* dh, long ldh, float* dc, long lddc, float* dZ,
                           long lddz)
    void crnn_lstm_bwd_f64(long M, long j0, long j1, long H, const double* Z, long ldz,
                           const double* c, long ldc, const double* cprev, long ldcp,
                           const double* dh, long ldh, double* dc, long lddc, double* dZ,
                           long lddz)
    void crnn_gru_fwd_f32(long M, long j0, long j1, long H, float* Z, long ldz,
                          const float* R, long ldr, const float* bz, const float* bhn,
                          const float* hprev, long ldhp, float* h, long ldh)
    void crnn_gru_fwd_f64(long M, long j0, long j1, long H, double* Z, long ldz,
                          const double* R, long ldr, const double* bz, const double* bhn,
                          const double* hprev, long ldhp, double* h, long ldh)
    void crnn_gru_bwd_f32(long M, long j0, long j1, long H, const float* Z, long ldz,
                          const float* hprev, long ldhp, const float* dh, long ldh,
                          float* dZ, long lddz, float* dAn, long ldan, float* dhp,
                          long lddhp, int add_dhp)
    void crnn_gru_bwd_f64(long M, long j0, long j1, long H, const double* Z, long ldz,
                          const double* hprev, long ldhp, const double* dh, long ldh,
                          double* dZ, long lddz, double* dAn, long ldan, double* dhp,
                          long lddhp, int add_dhp)


cdef extern from "crnn_gemm.h" nogil:
    int CRNN_PW_BYTES
    int crnn_simd_detect()
    long crnn_packed_size(long K, long G, long units, long elem_bytes)
    void crnn_pack_f32(const float* W, long ldw, int trans, long K, long G, long Hs,
                       long units, long b0, long b1, float* out)
    void crnn_pack_f64(const double* W, long ldw, int trans, long K, long G, long Hs,
                       long units, long b0, long b1, double* out)
    int crnn_rgemm_f32(int level, long M, long u0, long u1, long G, long Hs, long K,
                       const float* A, long lda, const float* Bp, float* C, long ldc, int beta0)
    int crnn_rgemm_f64(int level, long M, long u0, long u1, long G, long Hs, long K,
                       const double* A, long lda, const double* Bp, double* C, long ldc,
                       int beta0)
    int crnn_gemm_f32(int level, int transA, int transB, long M, long N, long K,
                      const float* A, long lda, const float* B, long ldb, float beta, float* C,
                      long ldc)
    int crnn_gemm_f64(int level, int transA, int transB, long M, long N, long K,
                      const double* A, long lda, const double* B, long ldb, double beta,
                      double* C, long ldc)


cdef extern from "crnn_bf16.h" nogil:
    int crnn_bf16_detect()
    long crnn_bf16_packed_size(long K, long G, long units)
    void crnn_pack_bf16(const float* W, long ldw, int trans, long K, long G, long Hs,
                        long units, long b0, long b1, unsigned int* out)
    int crnn_rgemm_bf16(long M, long u0, long u1, long G, long Hs, long K, const float* A,
                        long lda, const unsigned int* Bp, float* C, long ldc, int beta0)
    int crnn_gemm_bf16(int transA, int transB, long M, long N, long K, const float* A,
                       long lda, const float* B, long ldb, float beta, float* C, long ldc)


# Net.simd: the SIMD levels of crnn_gemm.h (0 BLAS, 1 AVX2, 2 AVX-512) and
# this one: float32 weights and accumulation, every matrix product on
# bfloat16 operands (crnn_bf16.h; compute_dtype="bfloat16")
cdef enum:
    SIMD_BF16 = 3


cdef struct Net:
    int cell        # CELL_*
    int L           # layers
    int ndir        # 1 or 2
    int H           # hidden units per direction
    int G           # gate blocks per cell: 1 Elman, 3 GRU, 4 LSTM
    int D           # input features
    int O           # outputs of the head
    int seq         # 1: an output per step (return_sequences), 0: many-to-one
    int loss        # LOSS_*
    int trunc       # BPTT truncation k (< 0: full BPTT)
    int simd        # SIMD level of the packed products (0: BLAS; see crnn_gemm.h)
    double dropout  # training: probability of zeroing an input of layers 1..L-1
    int tokens      # 1: the input is one column of token ids in [0, D) (a one-hot
                    # input of D features, never materialised): layer 0's input
                    # projection gathers a column of W_ih, its gradient scatters
    int E           # token input through an embedding of E columns (0: none,
                    # the one-hot form above): layer 0 reads row `token` of
                    # the (D x E) embedding, at _off_embed(n)
    const Py_ssize_t* offs


cdef inline int net_init(Net* n, int cell, int num_layers, int ndir, int hidden,
                         int n_features, int n_outputs, bint seq, int loss, int trunc,
                         int simd, double dropout, const Py_ssize_t* offs,
                         bint tokens, int embed) noexcept nogil:
    """Fill n; returns 0, or -1 for an unknown cell, an invalid shape, a
    dropout probability outside [0, 1) or an embedding without token input."""
    if cell != CELL_TANH and cell != CELL_RELU and cell != CELL_GRU and cell != CELL_LSTM:
        return -1
    if num_layers < 1 or (ndir != 1 and ndir != 2) or hidden < 1 or n_features < 1 \
            or n_outputs < 1 or not (0 <= dropout < 1) or embed < 0 or (embed > 0 and not tokens):
        return -1
    n.cell = cell
    n.L = num_layers
    n.ndir = ndir
    n.H = hidden
    n.G = 3 if cell == CELL_GRU else (4 if cell == CELL_LSTM else 1)
    n.D = n_features
    n.O = n_outputs
    n.seq = seq
    n.loss = loss
    n.trunc = trunc
    n.simd = simd
    n.dropout = dropout
    n.tokens = tokens
    n.E = embed
    n.offs = offs
    return 0


# Where each tensor starts in the flat parameter vector: n.offs holds, in
# the order of PyTorch's state_dict (crnn/_nn/layout.py), four entries per
# layer and direction, item = layer * ndir + direction (weight_ih, weight_hh,
# bias_ih, bias_hh), then the head's weight and bias, then with an
# embedding (n.E > 0) its weight.

cdef inline Py_ssize_t _off_w_ih(const Net* n, Py_ssize_t item) noexcept nogil:
    """W_ih of layer/direction `item` ((G H) x Din)."""
    return n.offs[4 * item]


cdef inline Py_ssize_t _off_w_hh(const Net* n, Py_ssize_t item) noexcept nogil:
    """W_hh of layer/direction `item` ((G H) x H)."""
    return n.offs[4 * item + 1]


cdef inline Py_ssize_t _off_b_ih(const Net* n, Py_ssize_t item) noexcept nogil:
    """b_ih of layer/direction `item` (G H)."""
    return n.offs[4 * item + 2]


cdef inline Py_ssize_t _off_b_hh(const Net* n, Py_ssize_t item) noexcept nogil:
    """b_hh of layer/direction `item` (G H)."""
    return n.offs[4 * item + 3]


cdef inline Py_ssize_t _off_w_out(const Net* n) noexcept nogil:
    """The head's W_out (O x ndir H)."""
    return n.offs[4 * n.L * n.ndir]


cdef inline Py_ssize_t _off_b_out(const Net* n) noexcept nogil:
    """The head's b_out (O)."""
    return n.offs[4 * n.L * n.ndir + 1]


cdef inline Py_ssize_t _off_embed(const Net* n) noexcept nogil:
    """The embedding (D x E; only when n.E > 0)."""
    return n.offs[4 * n.L * n.ndir + 2]


cdef inline Py_ssize_t _din0(const Net* n) noexcept nogil:
    """Columns of layer 0's stored input per row: 1 (a token id) or D."""
    return 1 if n.tokens else n.D


cdef inline Py_ssize_t _dlayer0(const Net* n) noexcept nogil:
    """Columns of W_ih of layer 0: E with an embedding, else D (one-hot or
    dense features)."""
    return n.E if n.E > 0 else n.D


cdef inline bint _onehot0(const Net* n) noexcept nogil:
    """Layer 0 reads token ids as one-hot rows (a gather from W_ih)."""
    return n.tokens and n.E == 0


cdef inline void _embed_rows(const floating* emb, Py_ssize_t E, const floating* ids,
                             Py_ssize_t ldi, Py_ssize_t r0, Py_ssize_t r1,
                             floating* out) noexcept nogil:
    """out[r] = emb[ids[r]] (E columns) for rows [r0, r1) (ids checked by
    the entry points)."""
    cdef Py_ssize_t r
    for r in range(r0, r1):
        memcpy(out + r * E, emb + (<Py_ssize_t> ids[r * ldi]) * E, E * sizeof(floating))


cdef inline void _token_gather(Py_ssize_t R, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t G,
                               Py_ssize_t H, Py_ssize_t V, const floating* ids,
                               Py_ssize_t ldi, const floating* w_ih, floating* Z,
                               Py_ssize_t ldz) noexcept nogil:
    """Z[r, g H + j] = W_ih[g H + j, ids[r]] for units [j0, j1) of every gate:
    the input projection of one-hot rows (ids checked by the entry points)."""
    cdef Py_ssize_t r, g, j, v
    cdef floating* z
    for r in range(R):
        v = <Py_ssize_t> ids[r * ldi]
        z = Z + r * ldz
        for g in range(G):
            for j in range(j0, j1):
                z[g * H + j] = w_ih[(g * H + j) * V + v]


cdef inline Py_ssize_t _bad_token(const floating* ids, Py_ssize_t count,
                                  Py_ssize_t V) noexcept nogil:
    """Index of the first of `count` contiguous ids that is not an integer in
    [0, V) (a token id must never index outside W_ih), or -1."""
    cdef Py_ssize_t i
    cdef double v
    for i in range(count):
        v = ids[i]
        if not (v >= 0 and v < V and v == <double> (<Py_ssize_t> v)):
            return i
    return -1


cdef inline Py_ssize_t _zwidth(const Net* n) noexcept nogil:
    """Columns of stored gate activations per row (0: Elman keeps none)."""
    return 4 * n.H if n.G > 1 else 0




# ---------------------------------------------------------------------------
# the C kernels, float or double

cdef inline bint _rgemm(int level, Py_ssize_t M, Py_ssize_t u0, Py_ssize_t u1, Py_ssize_t G,
                        Py_ssize_t Hs, Py_ssize_t K, const floating* A, Py_ssize_t lda,
                        const floating* Bp, floating* C, Py_ssize_t ldc,
                        bint beta0) noexcept nogil:
    """crnn_gemm.h's packed product (crnn_bf16.h's at SIMD_BF16, on weights
    packed by _pack at the same level); False when there is no kernel at
    this level."""
    if floating is float:
        if level == SIMD_BF16:
            return crnn_rgemm_bf16(M, u0, u1, G, Hs, K, A, lda, <const unsigned int*> Bp, C,
                                   ldc, beta0) != 0
        return crnn_rgemm_f32(level, M, u0, u1, G, Hs, K, A, lda, Bp, C, ldc, beta0) != 0
    else:
        return crnn_rgemm_f64(2 if level == SIMD_BF16 else level, M, u0, u1, G, Hs, K, A,
                              lda, Bp, C, ldc, beta0) != 0


cdef inline void _pack(int level, const floating* W, Py_ssize_t ldw, bint trans, Py_ssize_t K,
                       Py_ssize_t G, Py_ssize_t Hs, Py_ssize_t units, Py_ssize_t b0,
                       Py_ssize_t b1, floating* out) noexcept nogil:
    """Pack for _rgemm at `level` (bfloat16 words at SIMD_BF16: they fill
    at most the float32 packed size)."""
    if floating is float:
        if level == SIMD_BF16:
            crnn_pack_bf16(W, ldw, trans, K, G, Hs, units, b0, b1, <unsigned int*> out)
        else:
            crnn_pack_f32(W, ldw, trans, K, G, Hs, units, b0, b1, out)
    else:
        crnn_pack_f64(W, ldw, trans, K, G, Hs, units, b0, b1, out)


cdef inline void _mm(int level, bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                     Py_ssize_t k, const floating* A, Py_ssize_t lda, const floating* B,
                     Py_ssize_t ldb, floating beta, floating* C, Py_ssize_t ldc) noexcept nogil:
    """C (m x n, row-major) = op(A) op(B) + beta C (beta 0 or 1): on
    bfloat16 operands at SIMD_BF16 (float32 only), else on crnn_gemm.h's
    kernels at SIMD level 1 or 2, else (level 0, or no memory) BLAS."""
    if floating is float:
        if level == SIMD_BF16 and crnn_gemm_bf16(trans_a, trans_b, m, n, k, A, lda, B, ldb,
                                                 beta, C, ldc) != 0:
            return
        if level > 0 and crnn_gemm_f32(level, trans_a, trans_b, m, n, k, A, lda, B, ldb, beta,
                                       C, ldc) != 0:
            return
    else:
        if level > 0 and crnn_gemm_f64(level, trans_a, trans_b, m, n, k, A, lda, B, ldb, beta,
                                       C, ldc) != 0:
            return
    gemm(trans_a, trans_b, <int> m, <int> n, <int> k, <floating> 1.0, A, <int> lda, B,
         <int> ldb, beta, C, <int> ldc)


cdef inline void _lstm_fwd(Py_ssize_t M, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t H,
                           floating* Z, Py_ssize_t ldz, const floating* R, Py_ssize_t ldr,
                           const floating* bz, const floating* cprev, Py_ssize_t ldcp,
                           floating* c, Py_ssize_t ldc, floating* h,
                           Py_ssize_t ldh) noexcept nogil:
    if floating is float:
        crnn_lstm_fwd_f32(M, j0, j1, H, Z, ldz, R, ldr, bz, cprev, ldcp, c, ldc, h, ldh)
    else:
        crnn_lstm_fwd_f64(M, j0, j1, H, Z, ldz, R, ldr, bz, cprev, ldcp, c, ldc, h, ldh)


cdef inline void _lstm_bwd(Py_ssize_t M, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t H,
                           const floating* Z, Py_ssize_t ldz, const floating* c, Py_ssize_t ldc,
                           const floating* cprev, Py_ssize_t ldcp, const floating* dh,
                           Py_ssize_t ldh, floating* dc, Py_ssize_t lddc, floating* dZ,
                           Py_ssize_t lddz) noexcept nogil:
    if floating is float:
        crnn_lstm_bwd_f32(M, j0, j1, H, Z, ldz, c, ldc, cprev, ldcp, dh, ldh, dc, lddc, dZ, lddz)
    else:
        crnn_lstm_bwd_f64(M, j0, j1, H, Z, ldz, c, ldc, cprev, ldcp, dh, ldh, dc, lddc, dZ, lddz)


cdef inline void _gru_fwd(Py_ssize_t M, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t H,
                          floating* Z, Py_ssize_t ldz, const floating* R, Py_ssize_t ldr,
                          const floating* bz, const floating* bhn, const floating* hprev,
                          Py_ssize_t ldhp, floating* h, Py_ssize_t ldh) noexcept nogil:
    if floating is float:
        crnn_gru_fwd_f32(M, j0, j1, H, Z, ldz, R, ldr, bz, bhn, hprev, ldhp, h, ldh)
    else:
        crnn_gru_fwd_f64(M, j0, j1, H, Z, ldz, R, ldr, bz, bhn, hprev, ldhp, h, ldh)


cdef inline void _gru_bwd(Py_ssize_t M, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t H,
                          const floating* Z, Py_ssize_t ldz, const floating* hprev,
                          Py_ssize_t ldhp, const floating* dh, Py_ssize_t ldh, floating* dZ,
                          Py_ssize_t lddz, floating* dAn, Py_ssize_t ldan, floating* dhp,
                          Py_ssize_t lddhp, bint add_dhp) noexcept nogil:
    if floating is float:
        crnn_gru_bwd_f32(M, j0, j1, H, Z, ldz, hprev, ldhp, dh, ldh, dZ, lddz, dAn, ldan, dhp,
                         lddhp, add_dhp)
    else:
        crnn_gru_bwd_f64(M, j0, j1, H, Z, ldz, hprev, ldhp, dh, ldh, dZ, lddz, dAn, ldan, dhp,
                         lddhp, add_dhp)


# ---------------------------------------------------------------------------
# element-wise pieces

cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)



cdef inline void _act_forward(int cell, floating* z, Py_ssize_t rows, Py_ssize_t H,
                       Py_ssize_t ld, const floating* bias) noexcept nogil:
    """z <- f(z + bias), in place, on `rows` rows of H values (row stride ld)."""
    cdef Py_ssize_t i, j
    cdef floating* r
    cdef floating v
    if floating is float:
        if cell == CELL_TANH:
            crnn_tanh_bias_f32(z, rows, H, ld, bias)
        else:
            crnn_relu_bias_f32(z, rows, H, ld, bias)
    else:
        # float64 keeps libm's tanh: full double precision
        for i in range(rows):
            r = z + i * ld
            if cell == CELL_TANH:
                for j in range(H):
                    r[j] = _tanh(r[j] + bias[j])
            else:
                for j in range(H):
                    v = r[j] + bias[j]
                    r[j] = v if v > 0 else 0



cdef inline void _act_backward(int cell, floating* g, Py_ssize_t ldg, const floating* y,
                        Py_ssize_t ldy, Py_ssize_t rows, Py_ssize_t H) noexcept nogil:
    """g <- g * f'(z), with f'(z) computed from the output y = f(z)."""
    cdef Py_ssize_t i, j
    cdef floating* gr
    cdef const floating* yr
    if floating is float:
        if cell == CELL_TANH:
            crnn_tanh_grad_f32(g, ldg, y, ldy, rows, H)
        else:
            crnn_relu_grad_f32(g, ldg, y, ldy, rows, H)
    else:
        for i in range(rows):
            gr = g + i * ldg
            yr = y + i * ldy
            if cell == CELL_TANH:
                for j in range(H):
                    gr[j] = gr[j] * (1 - yr[j] * yr[j])
            else:
                for j in range(H):
                    if yr[j] <= 0:
                        gr[j] = 0



# ---------------------------------------------------------------------------
# teams
#
# Two ways to use several threads on one batch:
#
# - batch split: the batch is cut into shards, one per thread, and each
#   shard runs the whole network on its own (a team of one thread: no
#   synchronisation at all, one gradient row per shard);
# - hidden split: one shard, run by a team of all threads; each thread owns a
#   slice of the hidden units (rows of W_hh forward, the matching columns of
#   W_hh backward, rows of the weight gradients), every step ends with one
#   barrier, and row-parallel pieces (gathering, the head, dX) are split by
#   rows.  Better when the batch is too small to give every thread a useful
#   shard (streaming, B = 1) or when H is large and a thread's slice of W_hh
#   then stays in its cache across steps.
#
# Every function below takes (tid, nt) and works on its part; with nt = 1 it
# does everything and the barriers are no-ops.

cdef inline void _split(Py_ssize_t n, int tid, int nt, Py_ssize_t align,
                        Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Part [lo, hi) of range(n) for thread tid of nt (boundaries rounded
    down to multiples of `align`, so SIMD loops stay aligned)."""
    cdef Py_ssize_t a = n * tid // nt, b = n * (tid + 1) // nt
    if align > 1:
        a -= a % align
        b = n if tid == nt - 1 else b - b % align
    lo[0] = a
    hi[0] = b


cdef inline void _sync(int nt) noexcept nogil:
    if nt > 1:
        crnn_barrier()


cdef inline Py_ssize_t _lanes(floating x) noexcept nogil:
    """Hidden-unit slices start at multiples of one panel of packed W_hh
    (128 bytes), which also keeps the element-wise loops vector-aligned."""
    return CRNN_PW_BYTES // sizeof(floating)


cdef inline void _gate_gemm(int level, bint trans_a, Py_ssize_t M, Py_ssize_t j0,
                            Py_ssize_t j1, Py_ssize_t G, Py_ssize_t H, Py_ssize_t K,
                            const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
                            floating beta, floating* C, Py_ssize_t ldc) noexcept nogil:
    """Gate-sliced product for units [j0, j1) of every gate (through _mm at
    SIMD level `level`).

    trans_a false: C[:, g*H + j] = A B[g*H + j, :]^T (input projection);
    trans_a true:  C[g*H + j, :] = A[:, g*H + j]^T B (weight gradients).
    One GEMM over all gates when the slice covers every unit."""
    cdef Py_ssize_t g, ng = G, w = j1 - j0
    if w <= 0:
        return
    if j0 == 0 and j1 == H:
        ng = 1
        w = G * H
    for g in range(ng):
        if trans_a:
            _mm(level, True, False, w, K, M, A + g * H + j0, lda, B, ldb, beta,
                C + (g * H + j0) * ldc, ldc)
        else:
            _mm(level, False, True, M, w, K, A, lda, B + (g * H + j0) * ldb, ldb, beta,
                C + g * H + j0, ldc)


cdef inline void _proj(int level, Py_ssize_t M, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t G,
                       Py_ssize_t H, Py_ssize_t K, const floating* A, Py_ssize_t lda,
                       const floating* packed, const floating* W, floating* C, Py_ssize_t ldc,
                       bint beta0) noexcept nogil:
    """C[:, g*H + j] (+)= A W[g*H + j, :]^T for every gate and the units
    [j0, j1): W is (G*H x K); on its packed transpose when given (and there
    is a kernel at this SIMD level), else through BLAS."""
    if j1 <= j0:
        return
    if packed != NULL and _rgemm(level, M, j0, j1, G, H, K, A, lda, packed, C, ldc, beta0):
        return
    _gate_gemm(level, False, M, j0, j1, G, H, K, A, lda, W, K, <floating> (0.0 if beta0 else 1.0),
               C, ldc)


