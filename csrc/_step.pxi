# The streaming step and the module's small entry points (included by recurrent.pyx): `step` (one timestep,
# matrix-vector products, no BPTT), `openmp_enabled`, the zeroing of gradient arrays, and a test hook.

cdef void _step_rows(int cell, int B, int I, int H, const floating* x, const floating* w_ih,
                     const floating* w_hh, const floating* b_ih, const floating* b_hh, const floating* h,
                     const floating* c, floating* gates, floating* work, floating* h_out,
                     floating* c_out) noexcept nogil:
    """One timestep for B rows by matrix-vector products: no packing, no BLAS, no threads.
    Biases: gates start at b_ih + b_hh (GRU: b_hh's n block, b_hn, stays inside r ⊙ (·))."""
    cdef int GH = _gate_width(cell, H)
    cdef int nb = _recurrent_split(cell, H)      # how much of b_hh joins the input side
    cdef bint apart = nb < GH                    # GRU: h_{t-1} W_hhᵀ kept apart, in work (B, 3H)
    cdef int b, j
    for b in range(B):
        if b_ih != NULL:
            memcpy(gates + b * GH, b_ih, GH * sizeof(floating))
            for j in range(nb):
                gates[b * GH + j] += b_hh[j]
        else:
            memset(gates + b * GH, 0, GH * sizeof(floating))
        if apart:
            memset(work + b * GH, 0, GH * sizeof(floating))
        matvec(GH, I, w_ih, x + b * I, gates + b * GH)
        matvec(GH, H, w_hh, h + b * H, (work if apart else gates) + b * GH)
    _stream_step(cell, B, H, b_hh, h, c, gates, work, h_out, c_out)


cdef inline void* _data(object a):
    return NULL if a is None else cnp.PyArray_DATA(<cnp.ndarray> a)


class StepArgumentsError(ValueError):
    """The streaming step's arrays do not fit together: a parameter or state changed shape, layout or dtype
    in place since the layer checked it (the layer then checks everything again and names it)."""


cdef bint _fits(object a, int typenum, Py_ssize_t rows, Py_ssize_t cols) except -1:
    """``a`` is a C-contiguous ndarray of ``typenum`` and shape (rows, cols), or (rows,) when cols < 0."""
    cdef cnp.ndarray arr
    if type(a) is not cnp.ndarray:
        return False
    arr = <cnp.ndarray> a
    if cnp.PyArray_TYPE(arr) != typenum or not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        return False
    if cols < 0:
        return cnp.PyArray_NDIM(arr) == 1 and cnp.PyArray_DIM(arr, 0) == rows
    return cnp.PyArray_NDIM(arr) == 2 and cnp.PyArray_DIM(arr, 0) == rows and cnp.PyArray_DIM(arr, 1) == cols


def step_work_size(int cell, int B, int H):
    """Length of the `work` buffer that `step` needs."""
    return _step_work_size(cell, B, H)


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
    """One timestep of one layer, for streaming, by raw pointers. x (B, I) and h_out (B, H) are the caller's
    own checked arrays; every other array is checked against them here, in nanoseconds (so that the layer
    need compare only identities per call), and ``StepArgumentsError`` is raised when one does not fit."""
    cdef int B = <int> h_out.shape[0], I = <int> x.shape[1], H = <int> h_out.shape[1]
    cdef int GH = _gate_width(cell, H), t = cnp.PyArray_TYPE(x)
    cdef bint lstm = cell == _LSTM
    if not (_fits(x, t, B, I) and _fits(h_out, t, B, H) and _fits(w_ih, t, GH, I) and _fits(w_hh, t, GH, H)
            and (b_ih is None or _fits(b_ih, t, GH, -1)) and (b_hh is None or _fits(b_hh, t, GH, -1))
            and (b_ih is None) == (b_hh is None) and _fits(h, t, B, H) and _fits(gates, t, B, GH)
            and ((_fits(c, t, B, H) and _fits(c_out, t, B, H)) if lstm else (c is None and c_out is None))
            and (_fits(work, t, _step_work_size(cell, B, H), -1) if _step_work_size(cell, B, H) else True)
            and (t == cnp.NPY_FLOAT32 or t == cnp.NPY_FLOAT64)):
        raise StepArgumentsError("step: the arrays do not fit together (a parameter or the state changed shape, "
                                 "layout or dtype in place)")
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


def _recurrent_product(const floating[:, ::1] a,        # IN  (m, K)
                       const floating[:, ::1] w,        # IN  (N, K)
                       floating[:, ::1] c,              # INOUT (m, N)
                       bint accumulate):
    """c := a @ wᵀ (+ c if accumulate) by the time loop's packed micro-kernel (rnnfast_recgemm.h), w packed
    here as the forward packs W_hh (for the tests of its row tiles)."""
    cdef int m = <int> a.shape[0], K = <int> a.shape[1], N = <int> w.shape[0]
    cdef floating* packed
    if w.shape[1] != K or c.shape[0] != m or c.shape[1] != N:
        raise ValueError(f"a ({m}, {K}), w ({N}, {w.shape[1]}) and c ({c.shape[0]}, {c.shape[1]}) do not fit")
    if m == 0 or N == 0 or K == 0:
        return
    packed = <floating*> malloc(<size_t> K * _panels(N, sizeof(floating)) * _panel_width(sizeof(floating))
                                * sizeof(floating))
    if packed == NULL:
        raise MemoryError()
    with nogil:
        pack_by_team(True, K, N, &w[0, 0], packed)                 # B = wᵀ, as the forward packs W_hhᵀ
        recgemm(m, N, K, &a[0, 0], K, packed, K, &c[0, 0], N, accumulate)
    free(packed)


def _set_isa_limit(int level):
    """Cap the instruction set of the hand-written products (2 AVX-512, 1 AVX2 + FMA, 0 the portable loop; a
    level the CPU lacks falls to the next below) and return the cap before: for the tests, which check each path
    against the others on one machine. Not thread-safe; the pointwise passes pick their clone at load time."""
    if level not in (0, 1, 2):
        raise ValueError(f"level must be 0, 1 or 2, got {level!r}")
    return rf_set_isa_limit(level)


cdef Py_ssize_t _MIN_ZERO_BYTES_PER_THREAD = 1 << 18     # below 256 KB a share, waking a thread costs more
cdef Py_ssize_t _LINE = 64                               # bytes in a cache line


def zero_arrays(list arrays, int num_threads):
    """Fill writable C-contiguous arrays with zeros, each array split evenly (in whole cache lines) among the
    threads. The gradients are zeroed right after the backward whose after-loop threads wrote them, each
    thread an even share of the gate rows (with rnnfast_wgrad.h; BLAS moves one bound for GRU), so thread k
    zeroes the lines it wrote and already holds, instead of one thread pulling the other core's half across."""
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
    nthreads = _memory_team(num_threads, total, _MIN_ZERO_BYTES_PER_THREAD)
    with nogil, parallel(num_threads=nthreads):
        for k in prange(nthreads, schedule="static"):
            for i in range(n):                  # thread k: lines [k/n, (k+1)/n) of each array
                lo = _bound(sizes[i] // _LINE, nthreads, k) * _LINE
                hi = sizes[i] if k == nthreads - 1 else _bound(sizes[i] // _LINE, nthreads, k + 1) * _LINE
                if hi > lo:
                    memset(ptrs[i] + lo, 0, hi - lo)
    free(sizes)
    free(ptrs)


def copy_rows(const floating[:, ::1] src,             # IN  (n_src, F)
              const Py_ssize_t[::1] index,            # IN  (n_dst,) a row of src, or -1 for a row of zeros
              floating[:, ::1] dst,                   # OUT (n_dst, F)
              int num_threads=1):                     # IN  threads, each a static block of the rows
    """dst[r] := src[index[r]] (zeros where index[r] < 0): the padded batch to the packed layout's rows and
    back (rnnfast._layout), in one pass. rnnfast._layout asks for more than one thread only for copies of
    COPY_TEAM_BYTES or more (benchmarks/README.md, variable lengths)."""
    cdef Py_ssize_t n = dst.shape[0], F = dst.shape[1], r, src_rows = src.shape[0]
    cdef size_t row_bytes = F * sizeof(floating)
    if index.shape[0] != n or src.shape[1] != F:
        raise ValueError(f"index ({index.shape[0]},), src (·, {src.shape[1]}) and dst ({n}, {F}) do not fit")
    for r in range(n):
        if index[r] >= src_rows:
            raise ValueError(f"index[{r}] = {index[r]} is past src's {src_rows} rows")
    if n == 0 or F == 0:
        return
    for r in prange(n, nogil=True, num_threads=max(num_threads, 1), schedule="static"):
        if index[r] >= 0:
            memcpy(&dst[r, 0], &src[index[r], 0], row_bytes)
        else:
            memset(&dst[r, 0], 0, row_bytes)


cdef enum:
    _INLINE_COPY = 8            # crop_windows copies rows of at most this many features by a loop, not memcpy


def crop_windows(const floating[:, :, ::1] src,       # IN  (T, n, I) time-major sequences
                 const Py_ssize_t[::1] idx,             # IN  (B,) the sequence of src each column takes
                 const Py_ssize_t[::1] start,           # IN  (B,) its first step φ_b
                 const Py_ssize_t[::1] end,             # IN  (B,) one past its last step T_b
                 floating[:, :, ::1] dst,               # OUT (T', B, w·I) its windows of w steps
                 Py_ssize_t stride=0):                  # IN  s, steps from one window to the next (0: w)
    """dst[τ, b, j·I:(j+1)·I] := src[u, idx_b] with u = φ_b + sτ − (w − s) + j where φ_b <= u < T_b, else 0:
    column b holds sequence idx_b from step φ_b on, in windows of w = dst.shape[2] / I steps every s steps
    (the estimators' time-delay view of a crop). Window τ ends at step φ_b + sτ + s − 1; with s < w it also
    holds the w − s steps before its own s, zeros before φ_b. The windows after the sequence's last (those
    whose own s steps all lie past T_b) are zeros. In one pass written in order, on one thread (a training
    batch's crop took under 0.1 ms: benchmarks/README.md, seventh pass)."""
    cdef Py_ssize_t T = src.shape[0], n = src.shape[1], I = src.shape[2], B = dst.shape[1], Tw = dst.shape[0]
    cdef Py_ssize_t w, s, b, tau, j, i, first, lo, hi
    cdef size_t row_bytes = I * sizeof(floating)
    cdef floating* out
    cdef const floating* row
    if idx.shape[0] != B or start.shape[0] != B or end.shape[0] != B:
        raise ValueError(f"idx ({idx.shape[0]},), start ({start.shape[0]},) and end ({end.shape[0]},) must each "
                         f"hold dst's {B} columns")
    if I == 0 or dst.shape[2] % I:
        raise ValueError(f"dst's last axis ({dst.shape[2]}) must be a whole number of windows of src's {I} "
                         f"features")
    w = dst.shape[2] // I
    s = w if stride == 0 else stride
    if s < 1 or s > w:
        raise ValueError(f"stride must be 0 (the window's {w} steps) or in 1 .. {w}, got {stride}")
    for b in range(B):
        if idx[b] < 0 or idx[b] >= n:
            raise ValueError(f"idx[{b}] = {idx[b]} is not a sequence of src's {n}")
        if start[b] < 0 or start[b] > end[b] or end[b] > T:
            raise ValueError(f"start[{b}] = {start[b]} and end[{b}] = {end[b]} must satisfy "
                             f"0 <= start <= end <= {T}")
    if Tw == 0 or B == 0:
        return
    with nogil:
        for tau in range(Tw):
            for b in range(B):
                out = &dst[tau, b, 0]
                first = start[b] + s * tau - (w - s)    # the window's first step
                lo = min(max(start[b] - first, 0), w)   # its steps before φ_b: zeros
                hi = max(min(end[b] - first, w), lo)    # its steps before the sequence's end
                if start[b] + s * tau >= end[b]:        # past the sequence's last window: zeros, history too
                    hi = lo
                if lo > 0:
                    memset(out, 0, lo * row_bytes)
                if I <= _INLINE_COPY:                   # a few features: a call to memcpy a row costs more
                    for j in range(lo, hi):
                        row = &src[first + j, idx[b], 0]
                        for i in range(I):
                            out[j * I + i] = row[i]
                else:
                    for j in range(lo, hi):
                        memcpy(out + j * I, &src[first + j, idx[b], 0], row_bytes)
                if hi < w:
                    memset(out + hi * I, 0, (w - hi) * row_bytes)


# The packed forward that reads the padded input and writes the padded output itself: the gather and scatter
# of copy_rows, done by the kernel's threads on the rows they are working on.

cdef _check_padded(const floating[:, ::1] padded, const Py_ssize_t[::1] index, Py_ssize_t B, Py_ssize_t rows,
                   Py_ssize_t F, str name):
    """padded (T'·B, F) with index (rows,) into it, or padded None."""
    cdef Py_ssize_t r
    if padded is None:
        return
    if index is None or index.shape[0] != rows:
        raise ValueError(f"{name} needs index ({rows},)")
    if padded.shape[1] != F or B == 0 or padded.shape[0] % B:
        raise ValueError(f"{name} must be (T' * {B}, {F}), got ({padded.shape[0]}, {padded.shape[1]})")
    for r in range(rows):
        if index[r] < 0 or index[r] >= padded.shape[0]:
            raise ValueError(f"index[{r}] = {index[r]} is outside {name}'s {padded.shape[0]} rows")


cdef inline void _gather_rows(Py_ssize_t r0, Py_ssize_t r1, int F, const Py_ssize_t* index,
                              const floating* src, floating* dst) noexcept nogil:
    """dst[r] := src[index[r]] for the rows r in [r0, r1) (rows of F)."""
    cdef Py_ssize_t r
    for r in range(r0, r1):
        memcpy(dst + r * F, src + index[r] * F, F * sizeof(floating))


cdef inline void _scatter_step(Py_ssize_t t, Py_ssize_t B, Py_ssize_t b0, Py_ssize_t b1, Py_ssize_t m, int j0,
                               int j1, int H, const Py_ssize_t* order, const floating* rows,
                               floating* padded) noexcept nogil:
    """Step t of the sorted rows [b0, b1), units [j0, j1), into the padded (·, B, H) batch: padded[t, order[b]]
    := rows[b] (rows: step t's (m_t, H)) for the m of them still running, zeros for the ended ones."""
    cdef Py_ssize_t b
    cdef floating* dst
    for b in range(b0, b1):
        dst = padded + (t * B + order[b]) * H + j0
        if b < b0 + m:
            memcpy(dst, rows + b * H + j0, (j1 - j0) * sizeof(floating))
        else:
            memset(dst, 0, (j1 - j0) * sizeof(floating))
