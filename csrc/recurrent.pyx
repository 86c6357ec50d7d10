# cython: language_level=3
"""Forward and backpropagation-through-time kernels for Elman, LSTM and GRU layers (one direction, one layer).

Elman (G = 1):  h_t = φ(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b),            φ ∈ {tanh, relu, sigmoid}
LSTM  (G = 4):  [i f g o] = [σ σ tanh σ](x_t W_ihᵀ + h_{t-1} W_hhᵀ + b),  gates in PyTorch's order
                c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
GRU   (G = 3):  [r z] = σ(x_t W_i{r,z}ᵀ + h_{t-1} W_h{r,z}ᵀ + b),   n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t-1} W_hnᵀ + b_hn))
                h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}                     gates in PyTorch's order r, z, n
with b = b_ih + b_hh (GRU's n gate keeps b_hn inside r ⊙ (·), so its recurrent part is kept apart). BPTT sums every path back through time; with the pre-activation gradients dA_t
(T, B, G·H) kept for all steps, the weight gradients are single GEMMs after the loop:
    dW_ih = Σ_t dA_tᵀ x_t,   dW_hh = Σ_t dA_tᵀ h_{t-1},   dx_t = dA_t W_ih;
db = Σ_t Σ_b dA_t is summed inside the loop, while each step's dA_t is still in cache. Inside the loop the
only recurrent term is  dh_{t-1} = dA_t W_hh  (GRU: dh ⊙ z + dA^h_t W_hh, where the recurrent gradient dA^h
differs from dA in the n block by the factor r).

Structure (oneDNN's and haste's):
  1. input projection A = X W_ihᵀ for all T·B rows, as GEMMs over row blocks, one per thread;
  2. the time loop, with the batch split into contiguous chunks, one per thread: per step one recurrent
     GEMM of the chunk's rows and one fused pointwise pass (rnnfast_pointwise.h) that adds the bias and keeps
     what BPTT needs. When W_hh is too big for one core's cache, the threads split the hidden units instead
     and meet at a barrier once per step (_loop_team, rnnfast_team.h);
  3. backward: the time loop in reverse (pointwise pass, then dh_{t-1} = dA_t W_hh; with a big W_hh and
     batch, the pass by rows and the product by units), then the after-loop GEMMs, split across threads by
     output block: dx by BLAS, the weight gradients by rnnfast_wgrad.h where the CPU has AVX-512 (else BLAS).
Nothing is allocated and no Python runs inside the time loop; the caller owns every buffer but three that
backward allocates before it (each thread's bias sums, the after-loop block bounds, and each after-loop
thread's workspace for rnnfast_wgrad.h). BLAS must be held
to one thread by the caller (rnnfast._threads does it), since the threads here are OpenMP's.

Variable lengths: lengths[b] in [1, T]. For t >= lengths[b], row b's output is zero, its state is frozen
(h_n is its state at its own last step) and it receives no gradient. The recurrent GEMM of a step covers only
the chunk's rows up to its last active one, so a batch sorted by decreasing length skips finished rows.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
cimport numpy as cnp

cnp.import_array()

from _blas cimport gemm
from _pointwise cimport (RF_TANH, RF_RELU, RF_SIGMOID,
                         rf_lstm_fwd_f, rf_lstm_fwd_d, rf_lstm_bwd_f, rf_lstm_bwd_d,
                         rf_elman_fwd_f, rf_elman_fwd_d, rf_elman_bwd_f, rf_elman_bwd_d,
                         rf_gru_fwd_f, rf_gru_fwd_d, rf_gru_bwd_f, rf_gru_bwd_d,
                         rf_expf_array, rf_tanhf_array, rf_sigmoidf_array, rf_colsum_f, rf_colsum_d,
                         rf_pack_by_team_f, rf_pack_by_team_d, rf_recgemm_f, rf_recgemm_d, rf_matvec_f, rf_matvec_d,
                         rf_wgrad_work_size, rf_wgrad_available, rf_wgrad_f, rf_wgrad_d,
                         RF_HAVE_BARRIER, rf_barrier, rf_barrier_init, rf_barrier_wait, rf_team_size,
                         rf_thread_id)

# Cell codes shared with the Python layer.
ELMAN_TANH = RF_TANH
ELMAN_RELU = RF_RELU
ELMAN_SIGMOID = RF_SIGMOID
cdef enum:
    _LSTM = 3
    _GRU = 4
LSTM = _LSTM
GRU = _GRU


cdef inline Py_ssize_t _active_rows(const int* lens, Py_ssize_t b0, Py_ssize_t b1, Py_ssize_t t) noexcept nogil:
    """Number of rows from b0 up to and including the last row of [b0, b1) still running at step t."""
    cdef Py_ssize_t b
    if lens == NULL:
        return b1 - b0
    b = b1
    while b > b0 and lens[b - 1] <= t:
        b -= 1
    return b - b0


cdef inline void _zero_finished(const int* lens, Py_ssize_t b0, Py_ssize_t b1, Py_ssize_t t,
                                floating* rows, int G, int H, int j0, int j1) noexcept nogil:
    """Zero units [j0, j1) of each of the G gate blocks in the rows (each G·H long, rows[0] is row b0) of
    sequences that ended before step t."""
    cdef Py_ssize_t b
    cdef int g
    if lens == NULL:
        return
    for b in range(b0, b1):
        if lens[b] <= t:
            for g in range(G):
                memset(rows + (b - b0) * G * H + g * H + j0, 0, (j1 - j0) * sizeof(floating))


cdef double _MIN_FLOPS_PER_THREAD = 2e6   # ≈ 20 µs of GEMM; below it a woken thread costs more than it saves


cdef inline Py_ssize_t _team(int num_threads, Py_ssize_t units, double flops) noexcept nogil:
    """Threads worth using for `units` independent blocks of `flops` work in all."""
    cdef Py_ssize_t n = min(<Py_ssize_t> num_threads, units)
    return max(1, min(n, <Py_ssize_t> (flops / _MIN_FLOPS_PER_THREAD)))


cdef inline Py_ssize_t _bound(Py_ssize_t n, Py_ssize_t parts, Py_ssize_t k) noexcept nogil:
    """Start of the k-th of `parts` near-equal contiguous blocks of range(n) (k = parts gives n)."""
    return (n * k) // parts


# How the threads share a time loop (rnnfast_team.h):
#   _BY_ROWS   each thread runs the whole loop for its chunk of the batch, and never waits for another;
#   _BY_UNITS  each thread computes its share of the hidden units for every row, in the products and the
#              pointwise passes, and the team meets at a barrier once per step;
#   _MIXED     (backward only) the pointwise pass by rows, then a barrier, the product dA_t W_hh by units
#              over all rows, and a barrier again.
# The products split by units when W_hh is big (KernelOptions.unit_split_bytes, 1 MiB by default): a few
# threads × a few rows against the whole of a big W_hh stream it from L3 at every step, while all the rows
# against a share of it keep that share in L2. Backward, the pointwise pass by units reads and writes every
# row in short segments, which costs more than the split saves unless the batch is small; so below
# H = unit_split_backward_h_per_row · B (64 by default), _MIXED keeps the pointwise pass by rows and still
# splits the product. The measurements behind both thresholds are in benchmarks/README.md (unit split).
cdef enum:
    _BY_ROWS = 0
    _BY_UNITS = 1
    _MIXED = 2
cdef tuple _PLAN_NAMES = ("rows", "units", "mixed")


cdef struct _SplitPolicy:           # when the time loop splits the hidden units (per call: KernelOptions)
    Py_ssize_t nbytes               # the products split by units when W_hh has at least nbytes bytes
    int backward_h_per_row          # backward's pointwise pass too when also H >= this · B, else _MIXED


cdef _SplitPolicy _split_policy(Py_ssize_t nbytes, int backward_h_per_row) except *:
    cdef _SplitPolicy policy
    if nbytes < 0 or backward_h_per_row < 0:
        raise ValueError(f"nbytes and backward_h_per_row must be >= 0, got {nbytes}, {backward_h_per_row}")
    policy.nbytes = nbytes
    policy.backward_h_per_row = backward_h_per_row
    return policy


cdef inline Py_ssize_t _loop_team(int num_threads, Py_ssize_t T, Py_ssize_t B, int H, int GH, int itemsize,
                                  bint backward, _SplitPolicy policy, int* plan) noexcept nogil:
    """Threads for the time loop, and their plan (above): the products split by units when W_hh is big
    and H is a whole number of packed panels, so that each thread's columns are whole panels."""
    cdef int nr = 128 // itemsize             # packed panel width (rnnfast_recgemm.h: RF_NR_BYTES)
    cdef Py_ssize_t n
    cdef double flops = 2.0 * T * B * GH * H
    plan[0] = _BY_ROWS
    if RF_HAVE_BARRIER and <Py_ssize_t> GH * H * itemsize >= policy.nbytes and H % nr == 0:
        n = _team(num_threads, H // nr, flops)
        if n > 1:
            plan[0] = _MIXED if backward and H < policy.backward_h_per_row * B else _BY_UNITS
            return n
    return _team(num_threads, B, flops)


def loop_plan(int num_threads, Py_ssize_t T, Py_ssize_t B, int H, int GH, int itemsize, bint backward,
              Py_ssize_t split_bytes, int split_h_per_row):
    """(threads, plan) that forward or backward would use for its time loop; plan is "rows", "units" or
    "mixed" (see above)."""
    cdef int plan
    cdef _SplitPolicy policy = _split_policy(split_bytes, split_h_per_row)
    cdef Py_ssize_t n = _loop_team(num_threads, T, B, H, GH, itemsize, backward, policy, &plan)
    return n, _PLAN_NAMES[plan]


cdef struct _Share:                 # a thread's share of the time loop
    Py_ssize_t b0, b1               # batch rows [b0, b1) of the pointwise passes
    int j0, j1                      # hidden units [j0, j1) of the pointwise passes
    int k0, k1                      # hidden units [k0, k1) of the products (of rows [b0, b1), or all: _MIXED)
    int team                        # threads in the team


cdef inline _Share _loop_share(int plan, Py_ssize_t B, int H, int itemsize) noexcept nogil:
    """The calling thread's share of the time loop. Assign the result directly to a variable of the
    Cython parallel block: only variables assigned there are made thread-private (bounds written through
    pointers once stayed shared, and the threads raced on them)."""
    cdef _Share share
    cdef int nr = 128 // itemsize   # with the unit split, a thread's units are whole packed panels
    cdef int tid = rf_thread_id()
    share.team = rf_team_size()
    share.b0, share.b1 = _bound(B, share.team, tid), _bound(B, share.team, tid + 1)
    share.j0, share.j1 = 0, H
    share.k0, share.k1 = 0, H
    if plan != _BY_ROWS:
        share.k0 = nr * <int> _bound(H // nr, share.team, tid)
        share.k1 = nr * <int> _bound(H // nr, share.team, tid + 1)
    if plan == _BY_UNITS:
        share.b0, share.b1 = 0, B
        share.j0, share.j1 = share.k0, share.k1
    return share


cdef inline Py_ssize_t _panels(Py_ssize_t N, Py_ssize_t itemsize) noexcept nogil:
    """Number of packed panels (RF_NR_BYTES = 128 bytes wide) that hold N columns."""
    cdef Py_ssize_t nr = 128 // itemsize
    return (N + nr - 1) // nr


def packed_size(int itemsize, int K, int N):
    """Length of the buffer that holds a (K, N) recurrent operand packed for the step product."""
    return K * _panels(N, itemsize) * (128 // itemsize)


cdef inline void _pack_by_team(bint trans, int K, int N, const floating* w, floating* packed) noexcept nogil:
    """packed := panels of B (K, N), B = wᵀ (w is (N, K)) when trans, else B = w; the threads of the
    enclosing parallel region share the panels and all see the whole when it returns."""
    if floating is float:
        rf_pack_by_team_f(trans, K, N, w, packed)
    else:
        rf_pack_by_team_d(trans, K, N, w, packed)


cdef inline void _step_product(Py_ssize_t m, int K, const floating* a, int lda, const floating* packed, int kp,
                               int koff, const floating* w, bint trans_w, int ncols, int n0, int N,
                               floating* c, int ldc, bint accumulate) noexcept nogil:
    """c (m, N) := a (m, K) @ B[koff:koff+K, n0:n0+N] + (c if accumulate), a's rows lda apart, c's ldc apart;
    B = wᵀ or w (kp, ncols). With a packed copy of B (rf_pack_panel_*, kp rows a panel), n0 must start a panel
    (a multiple of RF_NR_BYTES / itemsize)."""
    cdef Py_ssize_t nr = 128 // sizeof(floating)
    if packed != NULL:
        if floating is float:
            rf_recgemm_f(<int> m, N, K, a, lda, packed + <Py_ssize_t> n0 * kp + koff * nr, kp, c, ldc, accumulate)
        else:
            rf_recgemm_d(<int> m, N, K, a, lda, packed + <Py_ssize_t> n0 * kp + koff * nr, kp, c, ldc, accumulate)
    elif trans_w:
        gemm(False, True, <int> m, N, K, <floating> 1, a, lda, w + <Py_ssize_t> n0 * kp + koff, kp,
             <floating> (1 if accumulate else 0), c, ldc)
    else:
        gemm(False, False, <int> m, N, K, <floating> 1, a, lda, w + <Py_ssize_t> koff * ncols + n0, ncols,
             <floating> (1 if accumulate else 0), c, ldc)


cdef inline void _gate_products(int G, int H, int j0, int j1, Py_ssize_t m, const floating* h,
                                const floating* packed, const floating* w_hh, floating* c,
                                bint accumulate) noexcept nogil:
    """Units [j0, j1) of every gate block of c (m, G·H) (+)= h (m, H) @ W_hhᵀ (forward recurrent product)."""
    cdef int g
    if j0 == 0 and j1 == H:                     # one product over all gates: panels may straddle gate blocks
        _step_product(m, H, h, H, packed, H, 0, w_hh, True, G * H, 0, G * H, c, G * H, accumulate)
        return
    for g in range(G):
        _step_product(m, H, h, H, packed, H, 0, w_hh, True, G * H, g * H + j0, j1 - j0, c + g * H + j0, G * H,
                      accumulate)


# ------------------------------------------------------------------------------------------------- forward
cdef void _input_projection(Py_ssize_t r0, Py_ssize_t r1, int I, int GH,
                            const floating* x, const floating* w_ih, floating* a) noexcept nogil:
    """a[r0:r1] (rows, GH) := x[r0:r1] (rows, I) @ W_ihᵀ (the pointwise passes add the bias)."""
    if r1 > r0:
        gemm(False, True, <int> (r1 - r0), GH, I, <floating> 1, x + r0 * I, I, w_ih, I, <floating> 0,
             a + r0 * GH, GH)


cdef inline int _gate_width(int cell, int H) noexcept nogil:
    return 4 * H if cell == _LSTM else (3 * H if cell == _GRU else H)


cdef void _forward_block(int cell, Py_ssize_t T, Py_ssize_t B, int H, Py_ssize_t b0, Py_ssize_t b1,
                         int j0, int j1, rf_barrier* barrier, int team,
                         const floating* w_hh, const floating* packed, const floating* bias,
                         const floating* b_hn, const floating* h0, const floating* c0, const int* lens,
                         floating* gates, floating* c, floating* tanh_c, floating* hn, floating* out,
                         floating* scratch) noexcept nogil:
    """The time loop for batch rows [b0, b1) and hidden units [j0, j1); `gates` holds the input projection
    (without bias) on entry. With a barrier, the team splits the units and meets after each step, when h_t
    is whole."""
    cdef int GH = _gate_width(cell, H)
    cdef Py_ssize_t t, m, row0
    cdef const floating* h_prev
    cdef const floating* c_prev
    cdef floating* a
    cdef floating* s = scratch + b0 * GH if scratch != NULL else NULL    # (m, GH) GRU: h_{t-1} W_hhᵀ
    for t in range(T):
        m = _active_rows(lens, b0, b1, t)
        row0 = t * B + b0                      # first row of this block at step t in (T·B, ·) arrays
        a = gates + row0 * GH                   # (m, GH)
        h_prev = (h0 + b0 * H) if t == 0 else (out + (row0 - B) * H)
        if cell == _LSTM:
            _gate_products(4, H, j0, j1, m, h_prev, packed, w_hh, a, True)     # a += h_{t-1} W_hhᵀ
            c_prev = (c0 + b0 * H) if t == 0 else (c + (row0 - B) * H)
            if floating is float:
                rf_lstm_fwd_f(<int> m, H, j0, j1, bias, a, c_prev, c + row0 * H, tanh_c + row0 * H, out + row0 * H)
            else:
                rf_lstm_fwd_d(<int> m, H, j0, j1, bias, a, c_prev, c + row0 * H, tanh_c + row0 * H, out + row0 * H)
        elif cell == _GRU:
            _gate_products(3, H, j0, j1, m, h_prev, packed, w_hh, s, False)    # s = h_{t-1} W_hhᵀ
            if floating is float:
                rf_gru_fwd_f(<int> m, H, j0, j1, bias, a, s, b_hn, h_prev, hn + row0 * H, out + row0 * H)
            else:
                rf_gru_fwd_d(<int> m, H, j0, j1, bias, a, s, b_hn, h_prev, hn + row0 * H, out + row0 * H)
        else:
            _gate_products(1, H, j0, j1, m, h_prev, packed, w_hh, a, True)     # a += h_{t-1} W_hhᵀ
            if floating is float:
                rf_elman_fwd_f(<int> m, H, j0, j1, bias, cell, a, out + row0 * H)
            else:
                rf_elman_fwd_d(<int> m, H, j0, j1, bias, cell, a, out + row0 * H)
        _zero_finished(lens, b0, b1, t, out + row0 * H, 1, H, j0, j1)
        if barrier != NULL:
            rf_barrier_wait(barrier, team)


cdef inline floating* _ptr3(floating[:, :, ::1] a) noexcept nogil:
    return &a[0, 0, 0] if a is not None else NULL


cdef inline const floating* _cptr2(const floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a is not None else NULL


def forward(int cell,                                   # ELMAN_*, LSTM or GRU
            const floating[:, :, ::1] x,                # IN   (T, B, I)
            const floating[:, ::1] w_ih,                # IN   (G·H, I)
            const floating[:, ::1] w_hh,                # IN   (G·H, H)
            const floating[::1] bias,                   # IN   (G·H,) b_ih + b_hh (GRU: b_ih + [b_hr, b_hz, 0]), or None
            const floating[::1] b_hn,                   # IN   (H,) GRU: b_hn, else None
            const floating[:, ::1] h0,                  # IN   (B, H)
            const floating[:, ::1] c0,                  # IN   (B, H) LSTM, else None
            const int[::1] lengths,                     # IN   (B,) in [1, T], or None for all T
            floating[:, :, ::1] gates,                  # OUT  (T, B, G·H) activated gates (LSTM, GRU); Elman: None
            floating[:, :, ::1] c,                      # OUT  (T, B, H) cell states (LSTM), else None
            floating[:, :, ::1] tanh_c,                 # OUT  (T, B, H) tanh(c_t), kept for BPTT (LSTM), else None
            floating[:, :, ::1] hn,                     # OUT  (T, B, H) W_hn h_{t-1} + b_hn, kept for BPTT (GRU), else None
            floating[:, :, ::1] out,                    # OUT  (T, B, H) h_t, zero past each length
            floating[:, ::1] scratch,                   # WORK (B, G·H) GRU, else None
            floating[::1] packed,                       # WORK (packed_size) W_hhᵀ packed, or None: BLAS per step
            int num_threads,                            # at most this many OpenMP threads
            Py_ssize_t split_bytes,                     # unit split from this W_hh size on (loop_plan)
            int split_h_per_row):                       # (backward only; loop_plan)
    """Run the layer over the sequence, keeping in the OUT buffers everything BPTT needs."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1]
    cdef int I = <int> x.shape[2], H = <int> w_hh.shape[1], GH = <int> w_hh.shape[0]
    cdef const floating* bias_p = &bias[0] if bias is not None else NULL
    cdef const floating* b_hn_p = &b_hn[0] if b_hn is not None else NULL
    cdef const int* lens = &lengths[0] if lengths is not None else NULL
    cdef floating* packed_p = NULL
    cdef floating* a_p
    cdef Py_ssize_t k, lo, hi, nblocks, nteam
    cdef _Share share
    cdef int plan
    cdef rf_barrier barrier
    if T == 0 or B == 0:
        return
    if packed is not None:
        packed_p = &packed[0]
    a_p = &out[0, 0, 0] if gates is None else &gates[0, 0, 0]   # Elman: pre-activations go straight into out
    nblocks = _team(num_threads, T * B, 2.0 * T * B * GH * I)
    nteam = _loop_team(num_threads, T, B, H, GH, sizeof(floating), False, _split_policy(split_bytes, split_h_per_row),
                       &plan)
    rf_barrier_init(&barrier)
    with nogil, parallel(num_threads=nblocks):
        for k in prange(nblocks, schedule="static"):
            lo = _bound(T * B, nblocks, k)
            hi = _bound(T * B, nblocks, k + 1)
            _input_projection(lo, hi, I, GH, &x[0, 0, 0], &w_ih[0, 0], a_p)
    with nogil, parallel(num_threads=nteam):
        if packed_p != NULL:
            _pack_by_team(True, H, GH, &w_hh[0, 0], packed_p)              # W_hhᵀ
        share = _loop_share(plan, B, H, sizeof(floating))
        _forward_block(cell, T, B, H, share.b0, share.b1, share.j0, share.j1,
                       &barrier if plan != _BY_ROWS and share.team > 1 else NULL, share.team,
                       &w_hh[0, 0], packed_p, bias_p, b_hn_p, &h0[0, 0], _cptr2(c0), lens,
                       a_p, _ptr3(c), _ptr3(tanh_c), _ptr3(hn), &out[0, 0, 0],
                       &scratch[0, 0] if scratch is not None else NULL)


# ------------------------------------------------------------------------------------------------ backward
cdef void _backward_block(int cell, Py_ssize_t T, Py_ssize_t B, int H, Py_ssize_t b0, Py_ssize_t b1,
                          int j0, int j1, int k0, int k1, bint mixed, rf_barrier* barrier, int team,
                          const floating* w_hh, const floating* packed, const floating* h0,
                          const floating* c0, const int* lens, floating* gates, const floating* c,
                          const floating* tanh_c, floating* hn, const floating* out, const floating* dout,
                          const floating* dh_n, const floating* dc_n, floating* da, floating* dh,
                          floating* dc, floating* dbias) noexcept nogil:
    """Reverse time loop, the pointwise passes over rows [b0, b1) and hidden units [j0, j1), the products
    over units [k0, k1) of rows [b0, b1) (of all rows when mixed): fills da (T, B, GH) (GRU: also
    hn := its recurrent n-block gradient r ⊙ dA_n, which the product reads with dA_t's r and z blocks) and
    leaves dh_0, dc_0 in dh, dc. With a barrier, the team meets
    between the pointwise pass (all of dA_t) and the product dA_t W_hh, and when mixed after the product
    too (all of dh_{t-1}).
    dbias (GH + H,), if not NULL, gets this thread's Σ dA_t (and GRU's Σ of the recurrent n-block
    gradient after it), summed while each step's dA_t is still in cache."""
    cdef int GH = _gate_width(cell, H)
    cdef int nu = j1 - j0
    cdef Py_ssize_t t, m, row0, b, bt, p0 = 0 if mixed else b0    # p0: the products' first row
    cdef const floating* c_prev
    cdef const floating* h_prev
    for bt in range(T):
        t = T - 1 - bt
        row0 = t * B + b0
        # A sequence's gradient starts at its own last step: seed the running dh, dc from dh_n, dc_n.
        for b in range(b0, b1):
            if (lens == NULL and t == T - 1) or (lens != NULL and lens[b] - 1 == t):
                memcpy(dh + b * H + j0, dh_n + b * H + j0, nu * sizeof(floating))
                if cell == _LSTM:
                    memcpy(dc + b * H + j0, dc_n + b * H + j0, nu * sizeof(floating))
        m = _active_rows(lens, b0, b1, t)
        if cell == _LSTM:
            c_prev = (c0 + b0 * H) if t == 0 else (c + (row0 - B) * H)
            if floating is float:
                rf_lstm_bwd_f(<int> m, H, j0, j1, gates + row0 * GH, c_prev, tanh_c + row0 * H,
                              dout + row0 * H, dh + b0 * H, dc + b0 * H, dc + b0 * H)
            else:
                rf_lstm_bwd_d(<int> m, H, j0, j1, gates + row0 * GH, c_prev, tanh_c + row0 * H,
                              dout + row0 * H, dh + b0 * H, dc + b0 * H, dc + b0 * H)
        elif cell == _GRU:
            h_prev = (h0 + b0 * H) if t == 0 else (out + (row0 - B) * H)
            if floating is float:
                rf_gru_bwd_f(<int> m, H, j0, j1, gates + row0 * GH, hn + row0 * H, h_prev, dout + row0 * H,
                             dh + b0 * H, hn + row0 * H, dh + b0 * H)
            else:
                rf_gru_bwd_d(<int> m, H, j0, j1, gates + row0 * GH, hn + row0 * H, h_prev, dout + row0 * H,
                             dh + b0 * H, hn + row0 * H, dh + b0 * H)
            _zero_finished(lens, b0, b1, t, hn + row0 * H, 1, H, j0, j1)   # finished rows carry nothing back
            _zero_finished(lens, b0, b1, t, dh + b0 * H, 1, H, j0, j1)
        else:
            if floating is float:
                rf_elman_bwd_f(<int> m, H, j0, j1, cell, out + row0 * H, dout + row0 * H, dh + b0 * H,
                               da + row0 * H)
            else:
                rf_elman_bwd_d(<int> m, H, j0, j1, cell, out + row0 * H, dout + row0 * H, dh + b0 * H,
                               da + row0 * H)
        _zero_finished(lens, b0, b1, t, da + row0 * GH, GH // H, H, j0, j1)
        if dbias != NULL:
            _unit_sums(m, GH // H, H, j0, j1, da + row0 * GH, dbias)
            if cell == _GRU:
                _unit_sums(m, 1, H, j0, j1, hn + row0 * H, dbias + GH)
        if barrier != NULL:
            rf_barrier_wait(barrier, team)
        if mixed:             # all rows up to the last active one (finished rows' dA is zero)
            m = _active_rows(lens, 0, B, t)
        if cell == _GRU:      # dh_{t-1} = dh ⊙ z + [dA_r, dA_z] W_h{r,z} + (r ⊙ dA_n) W_hn
            _step_product(m, 2 * H, da + (t * B + p0) * GH, GH, packed, GH, 0, w_hh, False, H, k0, k1 - k0,
                          dh + p0 * H + k0, H, True)
            _step_product(m, H, hn + (t * B + p0) * H, H, packed, GH, 2 * H, w_hh, False, H, k0, k1 - k0,
                          dh + p0 * H + k0, H, True)
        else:                 # dh_{t-1} = dA_t W_hh
            _step_product(m, GH, da + (t * B + p0) * GH, GH, packed, GH, 0, w_hh, False, H, k0, k1 - k0,
                          dh + p0 * H + k0, H, False)
        if mixed:             # dh_{t-1} whole before the next pointwise pass reads its rows
            rf_barrier_wait(barrier, team)


cdef inline void _unit_sums(Py_ssize_t m, int G, int H, int j0, int j1, const floating* rows,
                            floating* sums) noexcept nogil:
    """sums (G·H,) += Σ over the m rows (each G·H long) of units [j0, j1) of every gate block."""
    cdef int g
    for g in range(G):
        if floating is float:
            rf_colsum_f(m, j1 - j0, rows + g * H + j0, G * H, sums + g * H + j0)
        else:
            rf_colsum_d(m, j1 - j0, rows + g * H + j0, G * H, sums + g * H + j0)


cdef inline Py_ssize_t _wgrad_work_size(int itemsize, bint use_blas) noexcept nogil:
    """Elements of one thread's workspace for rnnfast_wgrad.h; 0 when BLAS does the work (use_blas, or no
    AVX-512 on this CPU)."""
    if use_blas or not rf_wgrad_available():
        return 0
    return <Py_ssize_t> rf_wgrad_work_size(itemsize)


cdef inline void _wgrad(int M, int N, int K, const floating* a, int lda, const floating* b, int ldb,
                        floating* c, int ldc, floating* work) noexcept nogil:
    """c (M, N) += aᵀ b, a (K, M) and b (K, N) row-major: rnnfast_wgrad.h with a workspace, else BLAS."""
    if work == NULL:
        gemm(True, False, M, N, K, <floating> 1, a, lda, b, ldb, <floating> 1, c, ldc)
    elif floating is float:
        rf_wgrad_f(M, N, K, a, lda, b, ldb, c, ldc, work)
    else:
        rf_wgrad_d(M, N, K, a, lda, b, ldb, c, ldc, work)


cdef inline void* _wgrad_workspace(Py_ssize_t threads, Py_ssize_t wsize, size_t itemsize,
                                   void** mem) noexcept nogil:
    """Room for `threads` workspaces of wsize elements from one malloc (*mem, for free), starting on a 64-byte
    cache line, so that the packed blocks' vector loads do not straddle lines (malloc's large blocks start
    16 bytes into one); NULL when malloc fails."""
    mem[0] = malloc(threads * wsize * itemsize + 64)
    return <void*> ((<size_t> mem[0] + 63) & ~(<size_t> 63)) if mem[0] != NULL else NULL


def _wgrad_product(const floating[:, ::1] a, const floating[:, ::1] b, floating[:, ::1] c, int col0,
                   bint use_blas):
    """c (M, N) += a[:, col0:col0 + M]ᵀ b through _wgrad, as the layers call it (for the kernel tests)."""
    cdef int K = <int> a.shape[0], M = <int> c.shape[0], N = <int> c.shape[1]
    cdef Py_ssize_t size = _wgrad_work_size(sizeof(floating), use_blas)
    cdef void* work_mem = NULL
    cdef floating* work = NULL
    if b.shape[0] != K or b.shape[1] != N or col0 < 0 or col0 + M > a.shape[1]:
        raise ValueError("a (K, ≥ col0 + M), b (K, N) and c (M, N) do not fit together")
    if M == 0 or N == 0:
        return
    if size:
        work = <floating*> _wgrad_workspace(1, size, sizeof(floating), &work_mem)
        if work == NULL:
            raise MemoryError()
    with nogil:
        _wgrad(M, N, K, &a[0, 0] + col0 if K else NULL, <int> a.shape[1], &b[0, 0] if K else NULL, N,
               &c[0, 0], N, work)
    free(work_mem)


cdef void _weight_gradients(Py_ssize_t T, Py_ssize_t B, int I, int H, int GH, int split,
                            Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t r0, Py_ssize_t r1,
                            const floating* da, const floating* da_n, const floating* x,
                            const floating* h0, const floating* out, const floating* w_ih,
                            floating* dx, floating* dw_ih, floating* dw_hh, floating* work) noexcept nogil:
    """Gate rows [g0, g1) of dW_ih, dW_hh (accumulated) and rows [r0, r1) of dx (overwritten); work: the
    thread's workspace for rnnfast_wgrad.h, or NULL for BLAS.

    The input side reads dA (T·B, GH). The recurrent side reads dA for gate rows < split and, for rows
    from split on (GRU's n block, whose recurrent gradient is r ⊙ da_n), da_n (T·B, GH − split)."""
    cdef Py_ssize_t lo, hi, ld
    cdef const floating* src
    cdef int ng = <int> (g1 - g0)
    cdef bint joined = T > 1 and h0 + B * H == out     # h_0 stored just before h_1: [h_0 .. h_{T-1}] is one operand
    if ng > 0:
        _wgrad(ng, I, <int> (T * B), da + g0, GH, x, I, dw_ih + g0 * I, I, work)       # Σ_t dA_tᵀ x_t
        for part in range(2):                  # recurrent side: rows below split, then from split on
            lo = g0 if part == 0 else max(g0, <Py_ssize_t> split)
            hi = min(g1, <Py_ssize_t> split) if part == 0 else g1
            if hi <= lo:
                continue
            src = (da + lo) if part == 0 else (da_n + (lo - split))
            ld = GH if part == 0 else GH - split
            if joined:
                _wgrad(<int> (hi - lo), H, <int> (T * B), src, <int> ld, h0, H, dw_hh + lo * H, H,
                       work)                                                    # Σ_t dA_tᵀ h_{t-1}
                continue
            _wgrad(<int> (hi - lo), H, <int> B, src, <int> ld, h0, H, dw_hh + lo * H, H, work)  # dA_0ᵀ h_0
            if T > 1:
                _wgrad(<int> (hi - lo), H, <int> ((T - 1) * B), src + B * ld, <int> ld, out, H,
                       dw_hh + lo * H, H, work)                                 # Σ_{t≥1} dA_tᵀ h_{t-1}
    if r1 > r0:
        gemm(False, False, <int> (r1 - r0), I, GH, <floating> 1, da + r0 * GH, GH, w_ih, I,
             <floating> 0, dx + r0 * I, I)                                      # dx_t = dA_t W_ih


cdef inline Py_ssize_t _distance(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a - b if a >= b else b - a


cdef void _after_loop_bounds(Py_ssize_t n, Py_ssize_t rows, int I, int H, int GH, int split,
                             bint blas_wgrad, Py_ssize_t* gate_bounds, Py_ssize_t* row_bounds) noexcept nogil:
    """Block k of the after-loop work: gate rows [gate_bounds[k], gate_bounds[k+1]) of the weight
    gradients and rows [row_bounds[k], row_bounds[k+1]) of dx, k < n.

    The gate rows are split evenly, except that when BLAS computes the weight gradients and there is a split
    (GRU's n block), the nearest inner bound moves onto it, so that no block runs two recurrent GEMMs (each
    packing h again) where one would do. rnnfast_wgrad.h packs h in blocks anyway, and loses more to the
    bigger share of C that the moved bound gives one thread (GRU 32×50×512 after-loop: 30.3 ms moved,
    29.4 ms even). The dx rows then even out the work: a block with more gate rows gets fewer dx rows."""
    cdef Py_ssize_t k, best = 0
    cdef double per_gate = <double> rows * (I + H)        # dW_ih and dW_hh work of one gate row
    cdef double per_row = <double> GH * I                 # dx work of one row
    cdef double target, total = 0, acc = 0
    for k in range(n + 1):
        gate_bounds[k] = _bound(GH, n, k)
    if split < GH and n > 1 and blas_wgrad:
        for k in range(1, n):                             # the inner bound nearest to split
            if best == 0 or _distance(gate_bounds[k], split) < _distance(gate_bounds[best], split):
                best = k
        gate_bounds[best] = split
    target = (GH * per_gate + rows * per_row) / n
    for k in range(n):
        total += max(0.0, target - (gate_bounds[k + 1] - gate_bounds[k]) * per_gate)
    row_bounds[0] = 0
    for k in range(n):
        acc += max(0.0, target - (gate_bounds[k + 1] - gate_bounds[k]) * per_gate)
        row_bounds[k + 1] = rows if k == n - 1 else <Py_ssize_t> (rows * acc / total + 0.5)


def backward(int cell,                                  # ELMAN_*, LSTM or GRU
             const floating[:, :, ::1] x,               # IN    (T, B, I)
             const floating[:, ::1] w_ih,               # IN    (G·H, I)
             const floating[:, ::1] w_hh,               # IN    (G·H, H)
             const floating[:, ::1] h0,                 # IN    (B, H)
             const floating[:, ::1] c0,                 # IN    (B, H) LSTM, else None
             const int[::1] lengths,                    # IN    (B,) or None
             floating[:, :, ::1] gates,                 # INOUT (T, B, G·H) LSTM, GRU: activated gates in, dA out;
                                                        #       Elman: workspace for dA
             const floating[:, :, ::1] c,               # IN    (T, B, H) LSTM, else None
             const floating[:, :, ::1] tanh_c,          # IN    (T, B, H) LSTM, else None
             floating[:, :, ::1] hn,                    # INOUT (T, B, H) GRU: hn in, r ⊙ da_n out; else None
             const floating[:, :, ::1] out,             # IN    (T, B, H) h_t from forward
             const floating[:, :, ::1] dout,            # IN    (T, B, H) dL/dout
             const floating[:, ::1] dh_n,               # IN    (B, H) dL/dh_n
             const floating[:, ::1] dc_n,               # IN    (B, H) dL/dc_n, LSTM, else None
             floating[:, :, ::1] dx,                    # OUT   (T, B, I)
             floating[:, ::1] dw_ih,                    # INOUT (G·H, I) accumulated
             floating[:, ::1] dw_hh,                    # INOUT (G·H, H) accumulated
             floating[::1] db_ih,                       # INOUT (G·H,) accumulated, or None
             floating[::1] db_hh,                       # INOUT (G·H,) accumulated, or None
             floating[:, ::1] dh0,                      # OUT   (B, H)
             floating[:, ::1] dc0,                      # OUT   (B, H) LSTM, else None
             floating[::1] packed,                      # WORK  (packed_size) W_hh packed, or None: BLAS per step
             int num_threads,                           # at most this many OpenMP threads
             Py_ssize_t split_bytes,                    # unit split from this W_hh size on (loop_plan)
             int split_h_per_row,                       # pointwise pass by units from H >= this · B on
             bint wgrad_blas):                          # weight gradients by BLAS, not rnnfast_wgrad.h
    """Backpropagate through time over the buffers of the last forward. Overwrites `gates` (and GRU's `hn`)."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1]
    cdef int I = <int> x.shape[2], H = <int> w_hh.shape[1], GH = <int> w_hh.shape[0]
    cdef int split = 2 * H if cell == _GRU else GH
    cdef const int* lens = &lengths[0] if lengths is not None else NULL
    cdef floating* db_ih_p = &db_ih[0] if db_ih is not None else NULL
    cdef floating* db_hh_p = &db_hh[0] if db_hh is not None else NULL
    cdef floating* packed_p = NULL
    cdef floating* hn_p = _ptr3(hn)
    cdef Py_ssize_t k, p, lo, hi, g0, g1, nblocks, nteam, wsize
    cdef Py_ssize_t* bounds
    cdef floating* dbias = NULL
    cdef floating* work = NULL
    cdef void* work_mem = NULL
    cdef _Share share
    cdef int plan
    cdef rf_barrier barrier
    if B == 0:
        return
    if T == 0:
        dh0[...] = dh_n
        if cell == _LSTM:
            dc0[...] = dc_n
        return
    if packed is not None:
        packed_p = &packed[0]
    nteam = _loop_team(num_threads, T, B, H, GH, sizeof(floating), True, _split_policy(split_bytes, split_h_per_row),
                       &plan)
    nblocks = _team(num_threads, GH, 2.0 * T * B * GH * (2 * I + H))
    bounds = <Py_ssize_t*> malloc(2 * (nblocks + 1) * sizeof(Py_ssize_t))    # after-loop blocks
    if db_ih_p != NULL or db_hh_p != NULL:    # (nteam, GH + H) each thread's bias sums
        dbias = <floating*> calloc(nteam * (GH + H), sizeof(floating))
    wsize = _wgrad_work_size(sizeof(floating), wgrad_blas)   # (nblocks, wsize) each after-loop thread's workspace
    if wsize:
        work = <floating*> _wgrad_workspace(nblocks, wsize, sizeof(floating), &work_mem)
    if bounds == NULL or (dbias == NULL and (db_ih_p != NULL or db_hh_p != NULL)) or (wsize and work == NULL):
        free(bounds)
        free(dbias)
        free(work_mem)
        raise MemoryError()
    rf_barrier_init(&barrier)
    with nogil, parallel(num_threads=nteam):
        if packed_p != NULL:
            _pack_by_team(False, GH, H, &w_hh[0, 0], packed_p)             # W_hh
        share = _loop_share(plan, B, H, sizeof(floating))
        _backward_block(cell, T, B, H, share.b0, share.b1, share.j0, share.j1, share.k0, share.k1,
                        plan == _MIXED and share.team > 1,
                        &barrier if plan != _BY_ROWS and share.team > 1 else NULL, share.team,
                        &w_hh[0, 0], packed_p, &h0[0, 0], _cptr2(c0), lens,
                        &gates[0, 0, 0], &c[0, 0, 0] if c is not None else NULL,
                        &tanh_c[0, 0, 0] if tanh_c is not None else NULL, hn_p,
                        &out[0, 0, 0], &dout[0, 0, 0], &dh_n[0, 0], _cptr2(dc_n),
                        &gates[0, 0, 0], &dh0[0, 0], &dc0[0, 0] if dc0 is not None else NULL,
                        dbias + rf_thread_id() * (GH + H) if dbias != NULL else NULL)
    _after_loop_bounds(nblocks, T * B, I, H, GH, split, wsize == 0, bounds, bounds + nblocks + 1)
    with nogil, parallel(num_threads=nblocks):
        for k in prange(nblocks, schedule="static"):
            g0 = bounds[k]
            g1 = bounds[k + 1]
            lo = bounds[nblocks + 1 + k]
            hi = bounds[nblocks + 2 + k]
            _weight_gradients(T, B, I, H, GH, split, g0, g1, lo, hi, &gates[0, 0, 0], hn_p, &x[0, 0, 0],
                              &h0[0, 0], &out[0, 0, 0], &w_ih[0, 0], &dx[0, 0, 0], &dw_ih[0, 0],
                              &dw_hh[0, 0], work + k * wsize if work != NULL else NULL)
    free(bounds)
    free(work_mem)
    if dbias != NULL:      # db = Σ dA over the threads' sums; db_hh the same but for GRU's n block
        for k in range(1, nteam):
            for p in range(GH + H):
                dbias[p] += dbias[k * (GH + H) + p]
        for p in range(GH):
            if db_ih_p != NULL:
                db_ih_p[p] += dbias[p]
            if db_hh_p != NULL:
                db_hh_p[p] += dbias[p] if p < split else dbias[GH + p - split]
        free(dbias)


# ----------------------------------------------------------------------------------------- streaming step
cdef void _step_rows(int cell, int B, int I, int H, const floating* x, const floating* w_ih,
                     const floating* w_hh, const floating* b_ih, const floating* b_hh, const floating* h,
                     const floating* c, floating* gates, floating* work, floating* h_out,
                     floating* c_out) noexcept nogil:
    """One timestep for B rows by matrix-vector products: no packing, no BLAS, no threads.
    Biases: gates start at b_ih + b_hh (GRU: b_hh's n block, b_hn, stays inside r ⊙ (·))."""
    cdef int GH = _gate_width(cell, H)
    cdef int nb = 2 * H if cell == _GRU else GH    # how much of b_hh joins the input side
    cdef int b, j
    cdef floating* gh = work                     # GRU: (B, 3H) h_{t-1} W_hhᵀ, then (B, H) hn
    for b in range(B):
        if b_ih != NULL:
            memcpy(gates + b * GH, b_ih, GH * sizeof(floating))
            for j in range(nb):
                gates[b * GH + j] += b_hh[j]
        else:
            memset(gates + b * GH, 0, GH * sizeof(floating))
        if cell == _GRU:
            memset(gh + b * GH, 0, GH * sizeof(floating))
        if floating is float:
            rf_matvec_f(GH, I, w_ih, x + b * I, gates + b * GH)
            rf_matvec_f(GH, H, w_hh, h + b * H, (gh if cell == _GRU else gates) + b * GH)
        else:
            rf_matvec_d(GH, I, w_ih, x + b * I, gates + b * GH)
            rf_matvec_d(GH, H, w_hh, h + b * H, (gh if cell == _GRU else gates) + b * GH)
    if cell == _LSTM:
        if floating is float:
            rf_lstm_fwd_f(B, H, 0, H, NULL, gates, c, c_out, work, h_out)
        else:
            rf_lstm_fwd_d(B, H, 0, H, NULL, gates, c, c_out, work, h_out)
    elif cell == _GRU:
        if floating is float:
            rf_gru_fwd_f(B, H, 0, H, NULL, gates, gh, b_hh + 2 * H if b_hh != NULL else NULL, h, gh + B * GH, h_out)
        else:
            rf_gru_fwd_d(B, H, 0, H, NULL, gates, gh, b_hh + 2 * H if b_hh != NULL else NULL, h, gh + B * GH, h_out)
    else:
        if floating is float:
            rf_elman_fwd_f(B, H, 0, H, NULL, cell, gates, h_out)
        else:
            rf_elman_fwd_d(B, H, 0, H, NULL, cell, gates, h_out)


cdef inline void* _data(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray> a)


def step_work_size(int cell, int B, int H):
    """Length of the `work` buffer that `step` needs."""
    return B * H if cell == _LSTM else (B * 4 * H if cell == _GRU else 0)


def step(int cell,
         cnp.ndarray x,             # IN   (B, I)
         cnp.ndarray w_ih,          # IN   (G·H, I)
         cnp.ndarray w_hh,          # IN   (G·H, H)
         object b_ih,               # IN   (G·H,) or None (no bias)
         object b_hh,               # IN   (G·H,) or None (no bias)
         cnp.ndarray h,             # IN   (B, H) h_{t-1}
         object c,                  # IN   (B, H) c_{t-1} (LSTM), else None
         cnp.ndarray gates,         # WORK (B, G·H)
         object work,               # WORK (step_work_size,) LSTM, GRU, else None
         cnp.ndarray h_out,         # OUT  (B, H) h_t
         object c_out):             # OUT  (B, H) c_t (LSTM), else None
    """One timestep of one layer, for streaming. The caller guarantees C-contiguous arrays of one float
    dtype and consistent shapes (layers.py checks them); taking raw pointers keeps the call cheap."""
    cdef int B = <int> x.shape[0], I = <int> x.shape[1], H = <int> w_hh.shape[1]
    cdef void* px = cnp.PyArray_DATA(x)
    cdef void* pw_ih = cnp.PyArray_DATA(w_ih)
    cdef void* pw_hh = cnp.PyArray_DATA(w_hh)
    cdef void* pb_ih = _data(b_ih)
    cdef void* pb_hh = _data(b_hh)
    cdef void* ph = cnp.PyArray_DATA(h)
    cdef void* pc = _data(c)
    cdef void* pg = cnp.PyArray_DATA(gates)
    cdef void* pw = _data(work)
    cdef void* pho = cnp.PyArray_DATA(h_out)
    cdef void* pco = _data(c_out)
    if B == 0:
        return
    if cnp.PyArray_ITEMSIZE(x) == 4:
        with nogil:
            _step_rows[float](cell, B, I, H, <float*> px, <float*> pw_ih, <float*> pw_hh, <float*> pb_ih,
                              <float*> pb_hh, <float*> ph, <float*> pc, <float*> pg, <float*> pw,
                              <float*> pho, <float*> pco)
    else:
        with nogil:
            _step_rows[double](cell, B, I, H, <double*> px, <double*> pw_ih, <double*> pw_hh, <double*> pb_ih,
                               <double*> pb_hh, <double*> ph, <double*> pc, <double*> pg, <double*> pw,
                               <double*> pho, <double*> pco)


def openmp_enabled():
    """True when the kernels were compiled with OpenMP."""
    return _OPENMP_ENABLED


cdef extern from *:
    """
    #ifdef _OPENMP
    #define RF_OPENMP_ENABLED 1
    #else
    #define RF_OPENMP_ENABLED 0
    #endif
    """
    int RF_OPENMP_ENABLED

_OPENMP_ENABLED = bool(RF_OPENMP_ENABLED)


def _float32_approximation(str name, const float[::1] x, float[::1] y):
    """y := the kernels' float32 exp, tanh or sigmoid of x (for the accuracy tests)."""
    if x.shape[0] != y.shape[0]:
        raise ValueError("x and y must have the same length")
    if x.shape[0] == 0:
        return
    if name == "exp":
        rf_expf_array(<int> x.shape[0], &x[0], &y[0])
    elif name == "tanh":
        rf_tanhf_array(<int> x.shape[0], &x[0], &y[0])
    elif name == "sigmoid":
        rf_sigmoidf_array(<int> x.shape[0], &x[0], &y[0])
    else:
        raise ValueError(f"name must be 'exp', 'tanh' or 'sigmoid', got {name!r}")


cdef Py_ssize_t _MIN_ZERO_BYTES_PER_THREAD = 1 << 18     # below 256 KB a share, waking a thread costs more


def zero_arrays(list arrays, int num_threads):
    """Fill writable C-contiguous arrays with zeros, each array split evenly (in whole cache lines) among the
    threads. The gradients are zeroed right after the backward whose after-loop threads wrote them, each
    thread an even share of the gate rows (with rnnfast_wgrad.h; BLAS moves one bound for GRU), so thread k
    zeroes the lines it wrote and already holds: one thread pulling the other core's half across cost twice
    as long (GRU 32×50×512: 0.68 → 0.35 ms)."""
    cdef Py_ssize_t n = len(arrays), i, k, nthreads, lo, hi, total = 0
    cdef Py_ssize_t* sizes
    cdef char** ptrs
    for a in arrays:
        if not (isinstance(a, cnp.ndarray) and (<cnp.ndarray> a).flags.c_contiguous
                and (<cnp.ndarray> a).flags.writeable):
            raise ValueError(f"zero_arrays takes writable C-contiguous arrays, got {type(a).__name__}")
    sizes = <Py_ssize_t*> malloc((n + 1) * sizeof(Py_ssize_t))
    ptrs = <char**> malloc((n + 1) * sizeof(char*))
    if sizes == NULL or ptrs == NULL:
        free(sizes)
        free(ptrs)
        raise MemoryError()
    for i in range(n):
        ptrs[i] = <char*> cnp.PyArray_DATA(<cnp.ndarray> arrays[i])
        sizes[i] = cnp.PyArray_NBYTES(<cnp.ndarray> arrays[i])
        total += sizes[i]
    nthreads = max(1, min(<Py_ssize_t> num_threads, total // _MIN_ZERO_BYTES_PER_THREAD))
    with nogil, parallel(num_threads=nthreads):
        for k in prange(nthreads, schedule="static"):
            for i in range(n):                  # thread k: lines [k/n, (k+1)/n) of each array
                lo = _bound(sizes[i] // 64, nthreads, k) * 64
                hi = sizes[i] if k == nthreads - 1 else _bound(sizes[i] // 64, nthreads, k + 1) * 64
                if hi > lo:
                    memset(ptrs[i] + lo, 0, hi - lo)
    free(sizes)
    free(ptrs)
