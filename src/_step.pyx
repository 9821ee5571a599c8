# One time step of a unidirectional network for many independent streams,
# with the states carried by the caller: the streaming path (crnn.Stepper).
# It shares the C kernels and helpers of the training and predict kernels
# through crnn_net.pxd, and runs at the SIMD level of the Config it is given.
from cython cimport floating
from cython.parallel cimport parallel, threadid
from libc.math cimport exp, isfinite
from libc.stdint cimport int64_t
from libc.string cimport memset

import threading

import numpy as np
cimport numpy as cnp

from crnn_codes cimport CELL_GRU, CELL_LSTM
from crnn_net cimport *
from crnn_isa cimport isa_init, isa_ran_levels

# the SIMD cap (CRNN_MAX_SIMD), before any kernel of this module can run
isa_init()
from crnn_omp cimport crnn_ftz_enter, crnn_ftz_leave, omp_get_num_threads

cnp.import_array()


cdef void _step_layers(const Net* n, const floating* theta, const floating* pk,
                       const Py_ssize_t* pofs, const floating* bz, Py_ssize_t S,
                       const floating* x, const floating* h0, const floating* c0,
                       floating* hN, floating* cN, floating* Zb, floating* Rb,
                       floating* out, bint softmax, int tid, int nt) noexcept nogil:
    """One time step of a unidirectional network for S streams, by a team of
    nt threads that split the hidden units (nt = 1: one thread does all).

    pk: packed W_ih^T, W_hh^T of every layer and W_out^T at offsets pofs
    (3 L + 1 entries), or NULL for BLAS; bz: summed biases per layer (G*H).
    h0, c0: (L, S, H) or NULL for zeros; hN, cN: (L, S, H) outputs."""
    cdef Py_ssize_t H = n.H, G = n.G, GH = n.G * n.H, ZW = _zwidth(n), O = n.O
    cdef Py_ssize_t l, i, j, g, Din, ldz, j0, j1
    cdef const floating* xin = x
    cdef const floating* hp
    cdef const floating* cp
    cdef const floating* wp
    cdef floating* z
    cdef floating* hl
    cdef const floating* w_out = theta + _off_w_out(n)
    cdef const floating* b_out = theta + _off_b_out(n)
    cdef unsigned int csr = crnn_ftz_enter()
    cdef double mx, se
    _split(H, tid, nt, _lanes(theta[0]), &j0, &j1)
    for l in range(n.L):                # layer l is item l: one direction
        Din = _dlayer0(n) if l == 0 else H
        hl = hN + l * S * H
        hp = h0 + l * S * H if h0 != NULL else NULL
        if G == 1:
            z = hl                      # Elman: pre-activation in place of the new state
            ldz = H
        else:
            z = Zb
            ldz = ZW
        # input projection (token ids: a column of W_ih per stream); the
        # recurrent one onto it (Elman) or into R
        if l == 0 and _onehot0(n):
            _token_gather(S, j0, j1, G, H, n.D, xin, 1, theta + _off_w_ih(n, l), z, ldz)
        else:
            _proj(n.simd, S, j0, j1, G, H, Din, xin, Din,
                  pk + pofs[3 * l] if pk != NULL else NULL, theta + _off_w_ih(n, l), z, ldz,
                  True)
        if hp != NULL:
            wp = pk + pofs[3 * l + 1] if pk != NULL else NULL
            if G == 1:
                _proj(n.simd, S, j0, j1, 1, H, H, hp, H, wp, theta + _off_w_hh(n, l), z, ldz,
                      False)
            else:
                _proj(n.simd, S, j0, j1, G, H, H, hp, H, wp, theta + _off_w_hh(n, l), Rb, GH,
                      True)
        elif G > 1:
            for i in range(S):
                for g in range(G):
                    memset(Rb + i * GH + g * H + j0, 0, (j1 - j0) * sizeof(floating))
        if G == 1:
            _act_forward(n.cell, z + j0, S, j1 - j0, H, bz + l * GH + j0)
        elif n.cell == CELL_LSTM:
            cp = c0 + l * S * H if c0 != NULL else NULL
            if cp == NULL:
                for i in range(S):                                 # as c_prev: zeros
                    memset(cN + (l * S + i) * H + j0, 0, (j1 - j0) * sizeof(floating))
                cp = cN + l * S * H
            _lstm_fwd(S, j0, j1, H, z, ZW, Rb, GH, bz + l * GH, cp, H, cN + l * S * H, H, hl, H)
        else:
            if hp == NULL:
                for i in range(S):                                 # as h_prev: zeros
                    memset(hl + i * H + j0, 0, (j1 - j0) * sizeof(floating))
                hp = hl
            _gru_fwd(S, j0, j1, H, z, ZW, Rb, GH, bz + l * GH, theta + _off_b_hh(n, l) + 2 * H,
                     hp, H, hl, H)
        _sync(nt)                       # the next layer and the head read every unit
        xin = hl
    if tid == 0:
        _proj(n.simd, S, 0, O, 1, O, H, xin, H, pk + pofs[3 * n.L] if pk != NULL else NULL, w_out,
              out, O, True)
        for i in range(S):
            for j in range(O):
                out[i * O + j] += b_out[j]
            if softmax:
                mx = out[i * O]
                for j in range(1, O):
                    if out[i * O + j] > mx:
                        mx = out[i * O + j]
                se = 0
                for j in range(O):
                    out[i * O + j] = <floating> exp(out[i * O + j] - mx)
                    se += out[i * O + j]
                for j in range(O):
                    out[i * O + j] = <floating> (out[i * O + j] / se)
    crnn_ftz_leave(csr)


cdef Py_ssize_t _pick(const floating* z, Py_ssize_t V, double temperature, double u,
                      double* p) noexcept nogil:
    """A token drawn from softmax(z / temperature) over ids 1..V-1 (id 0,
    the unknown token, never) with the uniform draw u in [0, 1): the first
    id whose cumulative probability passes u times the total (as
    crnn._text.tokens.sample_next); temperature 0: the first most likely id."""
    cdef Py_ssize_t j, best = 1
    cdef double mx, total = 0, c = 0, target
    for j in range(2, V):
        if z[j] > z[best]:
            best = j
    if temperature == 0:
        return best
    mx = z[best]
    for j in range(1, V):
        # shifted before the division, as sample_next: never inf - inf
        p[j] = exp((z[j] - mx) / temperature)
        total += p[j]
    target = u * total
    for j in range(1, V):
        c += p[j]
        if c > target:
            return j
    # rounding left the total just above the sum: the last id with p > 0
    for j in range(V - 1, 0, -1):
        if p[j] > 0:
            return j
    return best


cdef void _sample_loop(const Net* n, const floating* theta, const floating* pk,
                       const Py_ssize_t* pofs, const floating* bz, floating* hA, floating* hB,
                       floating* cA, floating* cB, floating* Zb, floating* Rb,
                       floating* logits, floating* xbuf, floating* xe, double* pbuf,
                       const double* u, Py_ssize_t count, double temperature, int64_t* out,
                       int tid, int nt) noexcept nogil:
    """Generation for one stream: draw token i from logits with u[i]
    (_pick), feed it to the network (states hA/cA -> hB/cB, swapped every
    step) for the next logits; count tokens.  Thread 0 draws; a team splits
    each step's hidden units."""
    cdef Py_ssize_t i, tok
    cdef floating* hin = hA
    cdef floating* hout = hB
    cdef floating* cin = cA
    cdef floating* cout = cB
    cdef floating* swap
    for i in range(count):
        if tid == 0:
            tok = _pick(logits, n.O, temperature, u[i], pbuf)
            out[i] = tok
            xbuf[0] = <floating> tok
            if n.E > 0:
                _embed_rows(theta + _off_embed(n), n.E, xbuf, 1, 0, 1, xe)
        _sync(nt)                       # the token is everyone's input
        if i + 1 == count:
            break
        _step_layers(n, theta, pk, pofs, bz, 1, xe if n.E > 0 else xbuf, hin, cin, hout, cout,
                     Zb, Rb, logits, False, tid, nt)
        swap = hin
        hin = hout
        hout = swap
        swap = cin
        cin = cout
        cout = swap


cdef class StepKernel:
    """One time step of a unidirectional network for `n_streams` independent
    streams, with the states carried by the caller.

    Holds its own copy of the weights, packed for the single-step products
    (W_ih^T, W_hh^T of every layer, W_out^T), the summed biases and scratch,
    so a step is one call that allocates only its outputs.  step() takes x
    (n_streams, n_features), or (n_streams, 1) token ids for a token
    network, and the states (num_layers, n_streams, H), and
    returns new arrays: the head's outputs (softmax probabilities when built
    with softmax=True) and the new states.
    """
    cdef Net net
    cdef const Py_ssize_t[::1] _offs
    cdef cnp.ndarray theta, packed, bz, Zb, Rb
    cdef Py_ssize_t pofs[256]
    cdef readonly int n_streams
    cdef public int n_threads
    cdef object _scratch_lock
    cdef bint softmax, is_float, lstm, use_packed
    cdef object dtype
    cdef cnp.npy_intp state_shape[3]
    cdef cnp.npy_intp out_shape[2]

    def __init__(self, cfg, theta, int n_streams, bint softmax, int n_threads=1):
        """cfg: the network's crnn._kernels.Config (its shape, codes and SIMD
        level are copied); n_threads: the team that splits the hidden
        units (crnn._nn.engine.plan_threads picks it)."""
        cdef const Net* n = &self.net
        # a Config pickles as its constructor's arguments: the same Net here
        (cell, L, ndir, H, D, O, seq, loss, trunc, offs, n_params, simd,
         _dropout, tokens, embed) = cfg.__reduce__()[1]
        self._offs = np.array(offs, dtype=np.intp)
        if net_init(&self.net, cell, L, ndir, H, D, O, seq, loss, trunc, simd, 0.0,
                    &self._offs[0], tokens, embed) != 0:
            raise ValueError("invalid network shape")
        cdef Py_ssize_t l, k, g, j, pos = 0, Din, itemsize
        if n.ndir != 1:
            raise ValueError("a bidirectional network cannot run step by step: its reverse "
                             "direction needs the whole sequence")
        if n_streams < 1:
            raise ValueError("n_streams must be positive")
        if 3 * n.L + 1 > 256:
            raise ValueError("too many layers for the step kernel")
        self.theta = np.array(theta, copy=True, order="C")
        self.dtype = self.theta.dtype
        if self.dtype not in (np.float32, np.float64) or self.theta.ndim != 1 \
                or self.theta.shape[0] != n_params:
            raise ValueError("parameter vector does not match the network")
        itemsize = self.dtype.itemsize
        self.is_float = self.dtype == np.float32
        self.lstm = n.cell == CELL_LSTM
        self.use_packed = n.simd > 0
        # packed transposes: per layer W_ih (K = Din) and W_hh (K = H), then W_out
        for l in range(n.L):
            Din = _dlayer0(n) if l == 0 else n.H
            self.pofs[3 * l] = pos
            if not (l == 0 and _onehot0(n)):          # token ids gather from W_ih itself
                pos += crnn_packed_size(Din, n.G, n.H, itemsize)
            self.pofs[3 * l + 1] = pos
            pos += crnn_packed_size(n.H, n.G, n.H, itemsize)
        self.pofs[3 * n.L] = pos
        pos += crnn_packed_size(n.H, 1, n.O, itemsize)
        self.packed = np.zeros(pos if self.use_packed else 0, dtype=self.dtype)
        if self.use_packed:
            for l in range(n.L):
                Din = _dlayer0(n) if l == 0 else n.H
                for k, K, off in ((0, Din, _off_w_ih(n, l)), (1, n.H, _off_w_hh(n, l))):
                    if not (l == 0 and k == 0 and _onehot0(n)):
                        self._pack(self.theta[off:], K, n.G, n.H,
                                   self.packed[self.pofs[3 * l + k]:])
            self._pack(self.theta[_off_w_out(n):], n.H, 1, n.O, self.packed[self.pofs[3 * n.L]:])
        self.bz = np.empty(n.L * n.G * n.H, dtype=self.dtype)
        t = self.theta
        for l in range(n.L):
            for g in range(n.G):
                for j in range(n.H):
                    self.bz[(l * n.G + g) * n.H + j] = t[_off_b_ih(n, l) + g * n.H + j] + (
                        0 if (n.cell == CELL_GRU and g == 2) else t[_off_b_hh(n, l) + g * n.H + j])
        self.Zb = np.empty(n_streams * max(_zwidth(n), 1), dtype=self.dtype)
        self.Rb = np.empty(n_streams * n.G * n.H, dtype=self.dtype)
        self.n_streams = n_streams
        self.softmax = softmax
        self.n_threads = max(1, n_threads)     # crnn._nn.engine.plan_threads decides
        self._scratch_lock = threading.Lock()
        self.state_shape[0] = n.L
        self.state_shape[1] = n_streams
        self.state_shape[2] = n.H
        self.out_shape[0] = n_streams
        self.out_shape[1] = n.O

    def _pack(self, floating[::1] W, Py_ssize_t K, Py_ssize_t G, Py_ssize_t units,
              floating[::1] out):
        """out <- W^T packed (W: G*units x K, row-major)."""
        cdef Py_ssize_t PW = CRNN_PW_BYTES // sizeof(floating)
        _pack(self.net.simd, &W[0], K, 1, K, G, units, units, 0, (units + PW - 1) // PW,
              &out[0])

    cdef cnp.ndarray _as_array(self, obj, int ndim, cnp.npy_intp* shape, str name):
        cdef cnp.ndarray a
        cdef int k
        if type(obj) is np.ndarray and (<cnp.ndarray> obj).dtype is self.dtype and \
                cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray> obj):
            a = <cnp.ndarray> obj
        else:
            if np.iscomplexobj(obj):
                raise ValueError(f"Complex data not supported: {name} is complex")
            a = np.ascontiguousarray(obj, dtype=self.dtype)
        if cnp.PyArray_NDIM(a) != ndim:
            raise ValueError(f"{name} must have {ndim} dimensions, got shape {(<object> a).shape}")
        for k in range(ndim):
            if cnp.PyArray_DIMS(a)[k] != shape[k]:
                raise ValueError(f"{name} has shape {(<object> a).shape}; expected "
                                 f"{tuple(shape[i] for i in range(ndim))}")
        return a

    cdef int _check_tokens(self, cnp.ndarray a) except -1:
        """Token ids: integers in [0, n_features), so no id reads outside W_ih."""
        cdef Py_ssize_t i, size = cnp.PyArray_SIZE(a), V = self.net.D
        if self.is_float:
            i = _bad_token(<const float*> cnp.PyArray_DATA(a), size, V)
        else:
            i = _bad_token(<const double*> cnp.PyArray_DATA(a), size, V)
        if i >= 0:
            raise ValueError(f"token id {float(a.ravel()[i])!r} of stream {i} is not an "
                             f"integer in [0, {V})")
        return 0

    cdef cnp.ndarray _embed(self, cnp.ndarray ids):
        """(n_streams, E) embedding rows of checked token ids: layer 0's input."""
        cdef const Net* n = &self.net
        cdef cnp.npy_intp shape[2]
        shape[0] = self.n_streams
        shape[1] = n.E
        cdef cnp.ndarray out = cnp.PyArray_EMPTY(2, shape, cnp.PyArray_TYPE(self.theta), 0)
        cdef Py_ssize_t off = _off_embed(n)
        if self.is_float:
            _embed_rows(<const float*> cnp.PyArray_DATA(self.theta) + off, n.E,
                        <const float*> cnp.PyArray_DATA(ids), 1, 0, self.n_streams,
                        <float*> cnp.PyArray_DATA(out))
        else:
            _embed_rows(<const double*> cnp.PyArray_DATA(self.theta) + off, n.E,
                        <const double*> cnp.PyArray_DATA(ids), 1, 0, self.n_streams,
                        <double*> cnp.PyArray_DATA(out))
        return out

    cdef bint _all_finite(self, cnp.ndarray a):
        cdef Py_ssize_t i, size = cnp.PyArray_SIZE(a)
        cdef bint finite = True
        if self.is_float:
            for i in range(size):
                finite = finite and isfinite((<float*> cnp.PyArray_DATA(a))[i])
        else:
            for i in range(size):
                finite = finite and isfinite((<double*> cnp.PyArray_DATA(a))[i])
        return finite

    def sample(self, logits, h, c, uniforms, double temperature):
        """Generate len(uniforms) tokens for one stream in the kernel.

        Token i is drawn from softmax(logits / temperature) over the ids
        1..V-1 with the uniform draw uniforms[i] (temperature 0: the most
        likely id; the unknown id 0 is never drawn), then fed to the network
        to give the next logits.  logits (1, V), h (and c for the LSTM):
        the outputs and states after the prompt.  Returns the int64 ids."""
        cdef const Net* n = &self.net
        cdef cnp.npy_intp lshape[2]
        if self.n_streams != 1:
            raise ValueError("sample runs one stream")
        if self.softmax:
            raise ValueError("sample needs a kernel that returns logits (softmax=False)")
        if not n.tokens:
            raise ValueError("sample needs a token network")
        if not (temperature >= 0 and temperature < float("inf")):
            raise ValueError("temperature must be a finite number >= 0")
        lshape[0] = 1
        lshape[1] = n.O
        cdef cnp.ndarray lg = self._as_array(logits, 2, lshape, "logits").copy()
        cdef cnp.ndarray hA = self._as_array(h, 3, self.state_shape, "h").copy()
        cdef cnp.ndarray hB = np.empty_like(hA)
        cdef cnp.ndarray cA = None, cB = None
        if self.lstm:
            cA = self._as_array(c, 3, self.state_shape, "c").copy()
            cB = np.empty_like(cA)
        for arr, what in ((lg, "logits"), (hA, "h"), (cA, "c")):
            if arr is not None and not self._all_finite(arr):
                raise ValueError(f"{what} contains NaN or infinity")
        cdef double[::1] u = np.ascontiguousarray(uniforms, dtype=np.float64)
        cdef Py_ssize_t i, count = u.shape[0]
        for i in range(count):
            if not (0 <= u[i] < 1):
                raise ValueError("uniforms must lie in [0, 1)")
        out = np.empty(count, dtype=np.int64)
        if count == 0:
            return out
        cdef int64_t[::1] ov = out
        cdef cnp.ndarray xbuf = np.zeros(1, dtype=self.dtype)
        cdef cnp.ndarray xe = np.zeros(max(n.E, 1), dtype=self.dtype)
        cdef double[::1] pbuf = np.zeros(n.O, dtype=np.float64)
        cdef cnp.ndarray zb = np.empty_like(self.Zb), rb = np.empty_like(self.Rb)
        cdef void* pk = cnp.PyArray_DATA(self.packed) if self.use_packed else NULL
        cdef void* th = cnp.PyArray_DATA(self.theta)
        cdef void* bzp = cnp.PyArray_DATA(self.bz)
        cdef void* ha = cnp.PyArray_DATA(hA)
        cdef void* hb = cnp.PyArray_DATA(hB)
        cdef void* ca = cnp.PyArray_DATA(cA) if cA is not None else NULL
        cdef void* cb = cnp.PyArray_DATA(cB) if cB is not None else NULL
        cdef void* zp = cnp.PyArray_DATA(zb)
        cdef void* rp = cnp.PyArray_DATA(rb)
        cdef void* lp = cnp.PyArray_DATA(lg)
        cdef void* xp = cnp.PyArray_DATA(xbuf)
        cdef void* xep = cnp.PyArray_DATA(xe)
        cdef const Py_ssize_t* pofs = self.pofs
        cdef bint isf = self.is_float
        cdef int team = self.n_threads, tid, nth
        with nogil, parallel(num_threads=team):
            tid = threadid()
            nth = omp_get_num_threads()
            if isf:
                _sample_loop(n, <const float*> th, <const float*> pk, pofs, <const float*> bzp,
                             <float*> ha, <float*> hb, <float*> ca, <float*> cb, <float*> zp,
                             <float*> rp, <float*> lp, <float*> xp, <float*> xep, &pbuf[0],
                             &u[0], count, temperature, &ov[0], tid, nth)
            else:
                _sample_loop(n, <const double*> th, <const double*> pk, pofs,
                             <const double*> bzp, <double*> ha, <double*> hb, <double*> ca,
                             <double*> cb, <double*> zp, <double*> rp, <double*> lp,
                             <double*> xp, <double*> xep, &pbuf[0], &u[0], count,
                             temperature, &ov[0], tid, nth)
        return out

    def step(self, x, h=None, c=None):
        """(outputs, h_new, c_new) of one step; h, c None: zero states
        (c_new is None except for the LSTM)."""
        cdef cnp.npy_intp xshape[2]
        cdef cnp.ndarray xa, ha = None, ca = None, out, hN, cN = None
        cdef const Net* n = &self.net
        cdef void* pk
        if self.n_streams == 1 and type(x) is np.ndarray and cnp.PyArray_NDIM(<cnp.ndarray> x) == 1:
            xshape[0] = _din0(n)        # one stream: x may be (n_features,)
            xa = self._as_array(x, 1, xshape, "x")
        else:
            xshape[0] = self.n_streams
            xshape[1] = _din0(n)
            xa = self._as_array(x, 2, xshape, "x")
        if n.tokens:
            self._check_tokens(xa)
            if n.E > 0:
                xa = self._embed(xa)
        if h is not None:
            ha = self._as_array(h, 3, self.state_shape, "h")
        if c is not None:
            if not self.lstm:
                raise ValueError("only the LSTM has cell states")
            if h is None:
                raise ValueError("c needs h")
            ca = self._as_array(c, 3, self.state_shape, "c")
        for arr, what in ((xa, "x"), (ha, "h"), (ca, "c")):
            if arr is not None and not self._all_finite(arr):
                raise ValueError(f"{what} contains NaN or infinity")
        out = cnp.PyArray_EMPTY(2, self.out_shape, cnp.PyArray_TYPE(self.theta), 0)
        hN = cnp.PyArray_EMPTY(3, self.state_shape, cnp.PyArray_TYPE(self.theta), 0)
        if self.lstm:
            cN = cnp.PyArray_EMPTY(3, self.state_shape, cnp.PyArray_TYPE(self.theta), 0)
        pk = cnp.PyArray_DATA(self.packed) if self.use_packed else NULL
        # the object's scratch, unless another thread is stepping with it
        # right now (the GIL is released while stepping): then its own
        cdef bint own = self._scratch_lock.acquire(False)
        cdef cnp.ndarray zbA = self.Zb, rbA = self.Rb
        if not own:
            zbA = np.empty_like(self.Zb)
            rbA = np.empty_like(self.Rb)
        try:
            if self.n_threads > 1:
                self._step_team(xa, ha, ca, hN, cN, out, pk, zbA, rbA)
            else:
                self._step_one(xa, ha, ca, hN, cN, out, pk, zbA, rbA)
        finally:
            if own:
                self._scratch_lock.release()
        return out, hN, cN

    cdef void _step_one(self, cnp.ndarray xa, cnp.ndarray ha, cnp.ndarray ca,
                        cnp.ndarray hN, cnp.ndarray cN, cnp.ndarray out, void* pk,
                        cnp.ndarray zbA, cnp.ndarray rbA):
        cdef const Net* n = &self.net
        with nogil:
            if self.is_float:
                _step_layers(n, <const float*> cnp.PyArray_DATA(self.theta),
                             <const float*> pk, self.pofs,
                             <const float*> cnp.PyArray_DATA(self.bz), self.n_streams,
                             <const float*> cnp.PyArray_DATA(xa),
                             <const float*> (cnp.PyArray_DATA(ha) if ha is not None else NULL),
                             <const float*> (cnp.PyArray_DATA(ca) if ca is not None else NULL),
                             <float*> cnp.PyArray_DATA(hN),
                             <float*> (cnp.PyArray_DATA(cN) if cN is not None else NULL),
                             <float*> cnp.PyArray_DATA(zbA),
                             <float*> cnp.PyArray_DATA(rbA),
                             <float*> cnp.PyArray_DATA(out), self.softmax, 0, 1)
            else:
                _step_layers(n, <const double*> cnp.PyArray_DATA(self.theta),
                             <const double*> pk, self.pofs,
                             <const double*> cnp.PyArray_DATA(self.bz), self.n_streams,
                             <const double*> cnp.PyArray_DATA(xa),
                             <const double*> (cnp.PyArray_DATA(ha) if ha is not None else NULL),
                             <const double*> (cnp.PyArray_DATA(ca) if ca is not None else NULL),
                             <double*> cnp.PyArray_DATA(hN),
                             <double*> (cnp.PyArray_DATA(cN) if cN is not None else NULL),
                             <double*> cnp.PyArray_DATA(zbA),
                             <double*> cnp.PyArray_DATA(rbA),
                             <double*> cnp.PyArray_DATA(out), self.softmax, 0, 1)

    cdef void _step_team(self, cnp.ndarray xa, cnp.ndarray ha, cnp.ndarray ca,
                         cnp.ndarray hN, cnp.ndarray cN, cnp.ndarray out, void* pk,
                         cnp.ndarray zbA, cnp.ndarray rbA):
        cdef const Net* n = &self.net
        cdef int tid, nth
        cdef void* h0 = cnp.PyArray_DATA(ha) if ha is not None else NULL
        cdef void* c0 = cnp.PyArray_DATA(ca) if ca is not None else NULL
        cdef void* cNp = cnp.PyArray_DATA(cN) if cN is not None else NULL
        cdef void* th = cnp.PyArray_DATA(self.theta)
        cdef void* bzp = cnp.PyArray_DATA(self.bz)
        cdef void* xp = cnp.PyArray_DATA(xa)
        cdef void* hNp = cnp.PyArray_DATA(hN)
        cdef void* zb = cnp.PyArray_DATA(zbA)
        cdef void* rb = cnp.PyArray_DATA(rbA)
        cdef void* op = cnp.PyArray_DATA(out)
        cdef Py_ssize_t S = self.n_streams
        cdef bint sm = self.softmax, isf = self.is_float
        cdef const Py_ssize_t* pofs = self.pofs
        cdef int team = self.n_threads
        # only locals inside the parallel block (no attribute access that a
        # debug build would check for None there)
        with nogil, parallel(num_threads=team):
            tid = threadid()
            nth = omp_get_num_threads()
            if isf:
                _step_layers(n, <const float*> th, <const float*> pk, pofs,
                             <const float*> bzp, S, <const float*> xp, <const float*> h0,
                             <const float*> c0, <float*> hNp, <float*> cNp, <float*> zb,
                             <float*> rb, <float*> op, sm, tid, nth)
            else:
                _step_layers(n, <const double*> th, <const double*> pk, pofs,
                             <const double*> bzp, S, <const double*> xp, <const double*> h0,
                             <const double*> c0, <double*> hNp, <double*> cNp, <double*> zb,
                             <double*> rb, <double*> op, sm, tid, nth)


def isa_ran():
    """The SIMD levels (crnn._isa.LEVELS) this module's kernels have run at
    since it loaded, per family: {"products": packed float products,
    "bf16": bfloat16 products, "vector": element-wise loops}.  For tests."""
    return isa_ran_levels()
