# The interface of crnn._kernels' core (src/_kernels.pyx: the layers, BPTT,
# the head) to the parts it includes: the attention encoder-decoder
# (src/_seq2seq.pxi) and CTC (src/_ctc.pxi).  Those parts use the core's
# private functions only through what is declared here: each begins with a
# `from crnn._kernels cimport (...)` of exactly the names it uses, and
# tests/kernels/test_kernels.py::test_included_parts_use_only_the_core_interface
# fails when a part names a core definition missing here, or when this file
# declares something no part uses.
#
# This is the module's own .pxd (Cython finds it as src/crnn/_kernels.pxd,
# the path of the module's qualified name under the include path src/):
# Cython checks every definition in _kernels.pyx against the declaration
# here, so a signature change must be made in both.  The functions are also
# exported through crnn._kernels.__pyx_capi__ (nothing uses that today; a
# part built as its own extension could cimport them from here).
#
# Granularity: every function below runs once per shard, chunk or call
# around whole-batch GEMMs and time loops, never per step or element.  The
# element-wise pieces the parts share with the core (the cells, the gate
# GEMMs, the SIMD products) are the inline functions of crnn_net.pxd.
#
# The other direction, core -> CTC (train_step and _train_shard call CTC's
# _ctc_shard, CtcTargets, _check_labeling and _ctc_work_size), is
# _ctc.pxi's own interface: the include places it before _train_shard.
from cython cimport floating

from crnn_net cimport Net, crnn_packed_size


cdef extern from *:
    """
    #ifdef CRNN_DEBUG
        #define CRNN_DEBUG_BUILD 1
    #else
        #define CRNN_DEBUG_BUILD 0
    #endif
    """
    # 1 in a CRNN_BOUNDSCHECK=1 build: the Python entry points then poison
    # their workspaces with NaN before a call (seq2seq's entry points too)
    bint CRNN_DEBUG_BUILD


# Workspace slots: _ws_layout(n, Bs, T, train, varlen, lay) writes into
# lay[WS_NSLOTS] the offset (in elements) of each buffer of a shard's
# workspace of at most Bs sequences of T steps (R <= T Bs packed rows, W =
# ndir H columns).  seq2seq's encoder runs in the first lay[WS_TOTAL]
# elements of its workspace and the decoder's buffers follow; it reads
# WS_X0, WS_Y (the encoder's outputs), WS_DYA / WS_DYB (the top layer's
# output gradient it injects, and _backward_layers' second buffer),
# WS_TOTAL and WS_NSLOTS.
cdef enum:
    WS_X0 = 0           # gathered inputs, R x D (token input: R ids)
    WS_Y = 1            # layer outputs, (T + 2) Bs x W per kept layer, padded by h0
    WS_Z = 2            # gate activations (gated cells)
    WS_C = 3            # LSTM cell states, padded like Y
    WS_R = 4            # recurrent projection of one step, Bs x G H
    WS_DYA = 5          # dLoss/d(layer outputs), R x W (training)
    WS_DYB = 6          # the same for the layer below (training, L > 1)
    WS_DZ = 7           # dLoss/d(pre-activations), R x G H (training, gated)
    WS_DAN = 8          # GRU: dLoss/d(input pre-activation of the n gate)
    WS_DC = 9           # LSTM: dLoss/dc carried between steps
    WS_LOGITS = 10      # head outputs, then dLoss/dlogits
    WS_HSEL = 11        # many-to-one: each sequence's final states
    WS_DHSEL = 12       # their gradient (training)
    WS_RINGA = 13       # truncated BPTT: the chains in flight
    WS_RINGB = 14
    WS_RINGZ = 15
    WS_RINGC = 16
    WS_BSUM = 17        # summed biases, G H
    WS_HPREV = 18       # ragged batches: each row's previous state (training)
    WS_XD = 19          # dropped-out layer inputs (training with dropout)
    WS_XE = 20          # embedded inputs, R x E
    WS_DXE = 21         # their gradient (training)
    WS_TOTAL = 22       # elements in all
    WS_NSLOTS = 23      # entries of lay


cdef struct Seqs:
    # A shard's sequences, its rows sorted by decreasing length; filled by
    # _seqs_init.  Step t of every sequence still running at t is block t:
    # the first bs[t] rows, at packed row off[t].  CTC reads a sequence's
    # frames through off, seq2seq packs its decoder steps the same way.
    Py_ssize_t B                  # sequences
    Py_ssize_t T                  # steps of the longest
    Py_ssize_t R                  # packed rows, the sum of the lengths
    bint uniform                  # all have T steps
    Py_ssize_t* bs                # bs[t], t < T
    Py_ssize_t* off               # off[t], t <= T
    const Py_ssize_t* idx         # sample of each row
    const Py_ssize_t* start       # first data row of each sample (X, per-step targets)
    const Py_ssize_t* lens        # steps of each sample


cdef struct States:
    # initial / final states of every layer and direction, (L * ndir, N, H)
    # arrays indexed by sample; NULL: none.  Only in _forward_layers'
    # signature for seq2seq, which passes NULL (its encoder starts from zeros).
    const void* h0
    const void* c0
    void* hN
    void* cN
    Py_ssize_t N


cdef inline Py_ssize_t _iws_size(Py_ssize_t T) noexcept nogil:
    """Index workspace of a shard of at most T steps: bs[0..T-1], off[0..T]
    (the integers _seqs_init needs; seq2seq puts its own after them)."""
    return 2 * T + 1


cdef inline Py_ssize_t _packed_block(const Net* n, Py_ssize_t itemsize) noexcept nogil:
    """Elements of one packed W_hh (one layer, direction and pass): sizes
    the training's packed weights (Config's and S2SConfig's packed_size)."""
    return crnn_packed_size(n.H, n.G, n.H, itemsize)


# workspace layout of a shard (see the WS_* slots above); once per shard
cdef void _ws_layout(const Net* n, Py_ssize_t Bs, Py_ssize_t T, bint train, bint varlen,
                     Py_ssize_t* lay) noexcept nogil

# q's tables for the rows idx[0..B-1] (sorted by decreasing length) in iws;
# once per shard (seq2seq: also for its decoder's steps)
cdef void _seqs_init(Seqs* q, const Py_ssize_t* idx, Py_ssize_t B, const Py_ssize_t* start,
                     const Py_ssize_t* lens, Py_ssize_t* iws, int tid, int nt) noexcept nogil

# X's rows of the shard's sequences into the packed layout X0; once per shard
cdef void _gather(floating* X0, const floating* X, Py_ssize_t D, const Seqs* q,
                  int tid, int nt) noexcept nogil

# layer 0's embedded input rows (n.E > 0); once per shard
cdef void _embed_gather(const Net* n, const floating* theta, floating* ws,
                        const Py_ssize_t* lay, const Seqs* q, int tid, int nt) noexcept nogil

# every layer and direction forward (seq2seq's encoder); once per shard
cdef void _forward_layers(const Net* n, const floating* theta, floating* ws,
                          const Py_ssize_t* lay, const Seqs* q, Py_ssize_t T,
                          Py_ssize_t Bmax, bint train, const floating* wpack,
                          const States* st, unsigned long long seed, int tid,
                          int nt) noexcept nogil

# BPTT through every layer from dLoss/d(top outputs) (seq2seq's encoder);
# once per shard
cdef void _backward_layers(const Net* n, const floating* theta, floating* grad, floating* ws,
                           const Py_ssize_t* lay, const Seqs* q, Py_ssize_t Tcap,
                           Py_ssize_t Bmax, floating* dYcur, floating* dYnext, Py_ssize_t K,
                           const floating* wpack, unsigned long long seed, floating* dx0,
                           int tid, int nt) noexcept nogil

# the packed W_hh of every layer and direction (the encoder's); once per call
cdef void _pack_all(const Net* n, const floating* theta, floating* wpack, bint train,
                    int tid, int nt) noexcept nogil

# out[j] += sum_i a[i, j] (bias gradients over all rows of a shard); a few
# calls per shard, each over a whole matrix
cdef void _colsum_add(floating* out, const floating* a, Py_ssize_t rows, Py_ssize_t cols,
                      Py_ssize_t ld) noexcept nogil

# Python-level argument checks of an entry point (with the GIL): X's columns
# and token ids; a shard's sample indices, rows and order (returns its
# longest length)
cdef int _check_input(const Net* n, const floating[:, ::1] X) except -1
cdef _check_seqs(Py_ssize_t n_rows, const Py_ssize_t[::1] start,
                 const Py_ssize_t[::1] lens, const Py_ssize_t[::1] idx, Py_ssize_t lo,
                 Py_ssize_t hi)
