# How the threads share the work of a kernel call (included by recurrent.pyx).
#
# A team is only as big as the work pays for; the time loop's threads split either the batch or the hidden
# units (the plan), and every split is into near-equal contiguous blocks.

cdef double _MIN_FLOPS_PER_THREAD = 2e6   # below this much GEMM work a woken thread costs more than it saves


cdef inline Py_ssize_t _team(int num_threads, Py_ssize_t units, double flops) noexcept nogil:
    """Threads worth using for `units` independent blocks of `flops` work in all."""
    cdef Py_ssize_t n = min(<Py_ssize_t> num_threads, units)
    return max(1, min(n, <Py_ssize_t> (flops / _MIN_FLOPS_PER_THREAD)))


cdef inline Py_ssize_t _memory_team(int num_threads, Py_ssize_t size, Py_ssize_t minimum) noexcept nogil:
    """Threads worth using for a memory-bound pass over `size` elements (or bytes): at least `minimum` a
    thread, since below that a woken thread costs more than it saves."""
    return max(1, min(<Py_ssize_t> num_threads, size // minimum))


cdef inline Py_ssize_t _bound(Py_ssize_t n, Py_ssize_t parts, Py_ssize_t k) noexcept nogil:
    """Start of the k-th of `parts` near-equal contiguous blocks of range(n) (k = parts gives n)."""
    return (n * k) // parts


cdef Py_ssize_t _BLAS_ROWS = 48   # a multiple of every BLAS micro-kernel's row unroll (OpenBLAS: 12 Haswell sgemm, 2-16 others)


cdef inline Py_ssize_t _blas_bound(Py_ssize_t n, Py_ssize_t parts, Py_ssize_t k) noexcept nogil:
    """:func:`_bound` moved to the nearest multiple of _BLAS_ROWS (k = parts gives n), for blocks of rows that
    each go to one BLAS call. A BLAS kernel sums a row by another code path at the ragged end of its unroll
    (OpenBLAS's Haswell sgemm: the last n % 12 rows of a call), so blocks that start on such multiples give
    every row the sums of one call over all rows: the results do not depend on the thread count."""
    if k >= parts:
        return n
    return min(n, (_bound(n, parts, k) + _BLAS_ROWS // 2) // _BLAS_ROWS * _BLAS_ROWS)


cdef inline int _panel_width(Py_ssize_t itemsize) noexcept nogil:
    """Columns of a packed panel (rnnfast_recgemm.h: RF_NR_BYTES wide): 32 floats or 16 doubles."""
    return <int> (RF_NR_BYTES // itemsize)


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


cdef inline Py_ssize_t _loop_team(int num_threads, Py_ssize_t rows, Py_ssize_t B, int H, int GH, int itemsize,
                                  bint backward, _SplitPolicy policy, int* plan) noexcept nogil:
    """Threads for the time loop, and their plan (above): the products split by units when W_hh is big
    and H is a whole number of packed panels, so that each thread's columns are whole panels."""
    cdef int nr = _panel_width(itemsize)
    cdef Py_ssize_t n
    cdef double flops = 2.0 * rows * GH * H
    plan[0] = _BY_ROWS
    if RF_HAVE_BARRIER and <Py_ssize_t> GH * H * itemsize >= policy.nbytes and H % nr == 0:
        n = _team(num_threads, H // nr, flops)
        if n > 1:
            plan[0] = _MIXED if backward and H < policy.backward_h_per_row * B else _BY_UNITS
            return n
    return _team(num_threads, B, flops)


cdef inline bint _input_by_step(bint wanted, bint packed, const int* batch_sizes, const void* w_iht, int plan,
                               int I, Py_ssize_t itemsize, bint backward) noexcept nogil:
    """Whether the time loop does the input side's product of each step itself, on the packed micro-kernel
    while the step's rows are in cache (forward a_t = x_t W_ihᵀ, backward dx_t = dA_t W_ih), instead of one
    BLAS GEMM over all rows before (after) the loop: when asked (KernelOptions.input_gemm), with the packed
    micro-kernel, the padded layout, a dense x (w_iht NULL) and the threads splitting the batch rows.
    Backward also needs I to fill its packed panels nearly (dx's columns are whole panels: I = 2 computes
    32 columns), within 1/8."""
    cdef Py_ssize_t nr = _panel_width(itemsize)
    if not wanted or not packed or batch_sizes != NULL or w_iht != NULL or plan != _BY_ROWS:
        return False
    return not backward or 8 * nr * ((I + nr - 1) // nr) <= 9 * I


def loop_plan(int num_threads, Py_ssize_t T, Py_ssize_t B, int H, int GH, int itemsize, bint backward,
              Py_ssize_t split_bytes, int split_h_per_row):
    """(threads, plan) that forward or backward would use for its time loop; plan is "rows", "units" or
    "mixed" (see above)."""
    cdef int plan
    cdef _SplitPolicy policy = _split_policy(split_bytes, split_h_per_row)
    cdef Py_ssize_t n = _loop_team(num_threads, T * B, B, H, GH, itemsize, backward, policy, &plan)
    return n, _PLAN_NAMES[plan]


def input_plan(int num_threads, Py_ssize_t T, Py_ssize_t B, int I, int H, int GH, int itemsize, bint backward,
               Py_ssize_t split_bytes, int split_h_per_row, bint step_input, bint packed, bint packed_layout,
               bint sparse):
    """"step" or "blas": whether forward or backward would run the input side's products inside the time loop
    (_input_by_step), given the request step_input and whether the recurrent product is packed."""
    cdef int plan
    cdef int one = 1
    _loop_team(num_threads, T * B, B, H, GH, itemsize, backward, _split_policy(split_bytes, split_h_per_row),
               &plan)
    return "step" if _input_by_step(step_input, packed, &one if packed_layout else NULL,
                                    <void*> &one if sparse else NULL, plan, I, itemsize, backward) else "blas"


cdef struct _Share:                 # a thread's share of the time loop
    Py_ssize_t b0, b1               # batch rows [b0, b1) of the pointwise passes
    int j0, j1                      # hidden units [j0, j1) of the pointwise passes
    int k0, k1                      # hidden units [k0, k1) of the products (of rows [b0, b1), or all: _MIXED)
    int team                        # threads in the team


cdef inline Py_ssize_t _steps_before(Py_ssize_t T, const int* batch_sizes, Py_ssize_t b) noexcept nogil:
    """Σ_{i<b} lengths[i]: the rows of sequences 0 .. b-1 (sorted by decreasing length) over all steps."""
    cdef Py_ssize_t t, n = 0
    for t in range(T):
        n += min(<Py_ssize_t> batch_sizes[t], b)
    return n


cdef inline Py_ssize_t _batch_bound(Py_ssize_t T, Py_ssize_t B, const int* batch_sizes, Py_ssize_t parts,
                                    Py_ssize_t k) noexcept nogil:
    """Start of the k-th of `parts` contiguous blocks of the batch: near-equal rows when padded; packed, the
    first b whose sequences before it hold k/parts of all real steps, so that each thread's time loop does
    about the same work (the longest sequences in fewer rows)."""
    cdef Py_ssize_t lo = 0, hi = B, mid, target
    if batch_sizes == NULL or k == 0 or k >= parts:
        return _bound(B, parts, k)
    target = (_steps_before(T, batch_sizes, B) * k) // parts
    while lo < hi:                              # the least b with _steps_before(b) >= target
        mid = (lo + hi) // 2
        if _steps_before(T, batch_sizes, mid) < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef inline _Share _loop_share(int plan, Py_ssize_t T, Py_ssize_t B, const int* batch_sizes, int H,
                               int itemsize) noexcept nogil:
    """The calling thread's share of the time loop. Assign the result directly to a variable of the
    Cython parallel block: only variables assigned there are made thread-private (bounds written through
    pointers once stayed shared, and the threads raced on them)."""
    cdef _Share share
    cdef int nr = _panel_width(itemsize)    # with the unit split, a thread's units are whole packed panels
    cdef int tid = rf_thread_id()
    share.team = rf_team_size()
    share.b0 = _batch_bound(T, B, batch_sizes, share.team, tid)
    share.b1 = _batch_bound(T, B, batch_sizes, share.team, tid + 1)
    share.j0, share.j1 = 0, H
    share.k0, share.k1 = 0, H
    if plan != _BY_ROWS:
        share.k0 = nr * <int> _bound(H // nr, share.team, tid)
        share.k1 = nr * <int> _bound(H // nr, share.team, tid + 1)
    if plan == _BY_UNITS:
        share.b0, share.b1 = 0, B
        share.j0, share.j1 = share.k0, share.k1
    return share


# The layout of the time-major row arrays (x, gates, out, ...: (rows, ·)). Padded: step t's B rows start at
# row t·B. Packed (batch_sizes, as cuDNN's and torch's PackedSequence): the batch is sorted by decreasing length,
# step t holds the m_t = batch_sizes[t] sequences still running, rows 0 .. m_t - 1 of the batch, contiguous from
# row off[t] = Σ_{s<t} m_s. No row of a finished sequence exists, so no step, product or GEMM touches one.

cdef inline Py_ssize_t _batch_at(const int* batch_sizes, Py_ssize_t B, Py_ssize_t T, Py_ssize_t t) noexcept nogil:
    """m_t: rows of step t (0 for t >= T)."""
    if t >= T:
        return 0
    return B if batch_sizes == NULL else batch_sizes[t]


cdef inline Py_ssize_t _active(const int* batch_sizes, Py_ssize_t b0, Py_ssize_t b1, Py_ssize_t t) noexcept nogil:
    """Rows of the block [b0, b1) that step t has (the batch is sorted by decreasing length)."""
    if batch_sizes == NULL:
        return b1 - b0
    return max(0, min(b1, <Py_ssize_t> batch_sizes[t]) - b0)


cdef Py_ssize_t* _offsets(const int* batch_sizes, Py_ssize_t T, Py_ssize_t B) noexcept nogil:
    """off (T + 1,): step t's first row, off[T] the number of rows (malloc'd: the caller frees; NULL when
    malloc fails)."""
    cdef Py_ssize_t t
    cdef Py_ssize_t* off = <Py_ssize_t*> malloc((T + 1) * sizeof(Py_ssize_t))
    if off == NULL:
        return NULL
    off[0] = 0
    for t in range(T):
        off[t + 1] = off[t] + _batch_at(batch_sizes, B, T, t)
    return off


cdef Py_ssize_t _check_layout(Py_ssize_t T, Py_ssize_t B, const int[::1] batch_sizes, Py_ssize_t rows) except -1:
    """ValueError unless batch_sizes (T,) is None (padded: rows = T·B) or non-increasing from B down to >= 1
    with Σ = rows."""
    cdef Py_ssize_t t, total = 0
    if batch_sizes is None:
        if rows != T * B:
            raise ValueError(f"the arrays have {rows} rows, not T·B = {T * B}")
        return 0
    if batch_sizes.shape[0] != T:
        raise ValueError(f"batch_sizes must have T = {T} entries, got {batch_sizes.shape[0]}")
    for t in range(T):
        if batch_sizes[t] < 1 or batch_sizes[t] > (B if t == 0 else batch_sizes[t - 1]) or (t == 0 and batch_sizes[0] != B):
            raise ValueError("batch_sizes must start at B and not increase, each >= 1")
        total += batch_sizes[t]
    if total != rows:
        raise ValueError(f"the arrays have {rows} rows, not Σ batch_sizes = {total}")
    return 0
