# The Jordan network (included by recurrent.pyx): the previous *output*, not the previous hidden state, is fed
# back, so the head is inside the recurrence.
#
#   s_t = φ(x_t W_ihᵀ + y_{t-1} W_yhᵀ + b_h)          φ ∈ {tanh, relu, sigmoid}            s_t (B, H)
#   y_t = g(s_t W_hyᵀ + b_y)                          g ∈ {identity, tanh, relu, sigmoid}  y_t (B, O)
#
# BPTT, with dy_t = ∂L/∂y_t from the loss (dout_t, plus dy_n at t = T-1) and from step t+1:
#   dz_t = (dout_t + dz_{t+1}-path) ⊙ g'(y_t)        dz_t = ∂L/∂(s_t W_hyᵀ + b_y)          (B, O)
#   da_t = (dz_t W_hy) ⊙ φ'(s_t)                      da_t = ∂L/∂(pre-activation of s_t)     (B, H)
#   the recurrent term  ∂L/∂y_{t-1} += da_t W_yh                                              (B, O)
# and after the loop, as GEMMs over all T·B rows:
#   dW_ih = Σ_t da_tᵀ x_t,  dW_yh = Σ_t da_tᵀ y_{t-1},  dW_hy = Σ_t dz_tᵀ s_t,
#   db_h = Σ da_t,  db_y = Σ dz_t,  dx_t = da_t W_ih.
# rnnfast.reference.jordan_forward / jordan_backward are the specification.
#
# Structure, as the Elman kernel's: the input projection x W_ihᵀ as GEMMs over all T·B rows; then the time
# loop with the batch split into contiguous chunks, one per thread (each thread runs every step of its rows
# and never waits for another); per step two small products, (m, O) x (O, H) and (m, H) x (H, O), by the
# packed micro-kernel (both operands packed once per call) or BLAS, and the Elman pointwise passes
# (rnnfast_pointwise.h) for φ, g and their derivatives. Nothing is allocated inside the time loop.

cdef enum:
    _ACT_IDENTITY = -1          # g = identity (the others are RF_TANH, RF_RELU, RF_SIGMOID)

# φ and g by name -> the code the Jordan kernels take (rnnfast._kernels reads this)
JORDAN_ACTIVATIONS = {"tanh": RF_TANH, "relu": RF_RELU, "sigmoid": RF_SIGMOID, "identity": _ACT_IDENTITY}


cdef inline void _add_rows(Py_ssize_t m, int n, const floating* v, floating* c) noexcept nogil:
    """c (m, n) := v (n,) broadcast over the rows (zeros when v is NULL)."""
    cdef Py_ssize_t b
    for b in range(m):
        if v != NULL:
            memcpy(c + b * n, v, n * sizeof(floating))
        else:
            memset(c + b * n, 0, n * sizeof(floating))


cdef void _jordan_forward_block(int act, int out_act, Py_ssize_t T, Py_ssize_t B, int H, int O,
                                Py_ssize_t b0, Py_ssize_t b1, const floating* w_yh, const floating* w_hy,
                                const floating* p_yh, const floating* p_hy, const floating* b_h,
                                const floating* b_y, floating* s, floating* ys, int I, const floating* x,
                                const floating* w_ih, const floating* p_ih) noexcept nogil:
    """The time loop for batch rows [b0, b1); ys (T + 1, B, O) holds y_0 in ys[0] and gets y_t in ys[t + 1].
    Training (x NULL): s (T, B, H) holds the input projection on entry and s_t on exit. Inference (x given,
    (T, B, I)): s is one step's (B, H), and each step projects its own rows, s_t := x_t W_ihᵀ (p_ih: W_ihᵀ
    packed, or NULL: BLAS), so nothing of size T·B·H is written."""
    cdef Py_ssize_t t, m = b1 - b0
    cdef floating* s_t
    cdef floating* y_t
    if m <= 0:
        return
    for t in range(T):
        if x != NULL:
            s_t = s + b0 * H
            _step_product(m, I, x + (t * B + b0) * I, I, p_ih, I, 0, w_ih, True, H, 0, H, s_t, H, False)
        else:
            s_t = s + (t * B + b0) * H
        y_t = ys + ((t + 1) * B + b0) * O
        # s_t += y_{t-1} W_yhᵀ, then s_t = φ(s_t + b_h)
        _step_product(m, O, y_t - B * O, O, p_yh, O, 0, w_yh, True, H, 0, H, s_t, H, True)
        elman_fwd(<int> m, H, 0, H, b_h, act, s_t, s_t)
        if out_act == _ACT_IDENTITY:       # y_t = b_y + s_t W_hyᵀ
            _add_rows(m, O, b_y, y_t)
            _step_product(m, H, s_t, H, p_hy, H, 0, w_hy, True, O, 0, O, y_t, O, True)
        else:                              # y_t = g(s_t W_hyᵀ + b_y)
            _step_product(m, H, s_t, H, p_hy, H, 0, w_hy, True, O, 0, O, y_t, O, False)
            elman_fwd(<int> m, O, 0, O, b_y, out_act, y_t, y_t)


cdef inline floating* _cptr1(const floating[::1] a) noexcept nogil:
    return <floating*> &a[0] if a is not None else NULL


def jordan_forward(int act,                                 # φ: RF_TANH, RF_RELU or RF_SIGMOID
                   int out_act,                             # g: _ACT_IDENTITY or one of φ's codes
                   const floating[:, :, ::1] x,             # IN    (T, B, I)
                   const floating[:, ::1] w_ih,             # IN    (H, I)
                   const floating[:, ::1] w_yh,             # IN    (H, O) output feedback
                   const floating[::1] b_h,                 # IN    (H,) or None
                   const floating[:, ::1] w_hy,             # IN    (O, H) the head
                   const floating[::1] b_y,                 # IN    (O,) or None
                   floating[:, :, ::1] s,                   # OUT   (T, B, H) s_t, kept for BPTT; inference:
                                                            #       WORK (1, B, H), one step's s_t
                   floating[:, :, ::1] ys,                  # INOUT (T + 1, B, O) y_0 in ys[0]; y_t out in ys[t + 1]
                   floating[::1] packed_yh,                 # WORK  (packed_size(O, H)) W_yhᵀ packed, or None: BLAS
                   floating[::1] packed_hy,                 # WORK  (packed_size(H, O)) W_hyᵀ packed, or None
                   int num_threads,                         # at most this many OpenMP threads
                   bint inference=False,                    # keep nothing for BPTT: s is (1, B, H)
                   floating[::1] packed_ih=None):           # WORK  (packed_size(I, H)) W_ihᵀ packed (inference), or None
    """Run the Jordan network over the sequence, keeping s_t and y_t for BPTT; with `inference`, keeping only
    y_t (each step projects its own x_t, into one step's s)."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1]
    cdef int I = <int> x.shape[2], H = <int> w_ih.shape[0], O = <int> w_hy.shape[0]
    cdef floating* p_yh = NULL
    cdef floating* p_hy = NULL
    cdef floating* p_ih = NULL
    cdef Py_ssize_t k, lo, hi, nblocks, nteam
    cdef _Share share
    if s.shape[0] != (1 if inference else T) or s.shape[1] != B or s.shape[2] != H:
        raise ValueError(f"s must be ({1 if inference else T}, {B}, {H}), got ({s.shape[0]}, {s.shape[1]}, {s.shape[2]})")
    if T == 0 or B == 0:
        return
    if (packed_yh is None) != (packed_hy is None) or (packed_ih is not None and (packed_yh is None or not inference)):
        raise ValueError("packed_yh and packed_hy must both be given or both be None, and packed_ih only with "
                         "them, at inference")
    if packed_yh is not None:
        p_yh, p_hy = &packed_yh[0], &packed_hy[0]
    if packed_ih is not None:
        p_ih = &packed_ih[0]
    nblocks = _team(num_threads, T * B, 2.0 * T * B * H * I)
    nteam = _team(num_threads, B, (4.0 * O + (2.0 * I if inference else 0)) * T * B * H)
    if not inference:
        with nogil, parallel(num_threads=nblocks):
            for k in prange(nblocks, schedule="static"):
                lo = _blas_bound(T * B, nblocks, k)
                hi = _blas_bound(T * B, nblocks, k + 1)
                _input_projection(lo, hi, I, H, &x[0, 0, 0], &w_ih[0, 0], NULL, &s[0, 0, 0])    # s := x W_ihᵀ
    with nogil, parallel(num_threads=nteam):
        if p_yh != NULL:
            pack_by_team(True, O, H, &w_yh[0, 0], p_yh)                                 # W_yhᵀ (O, H)
            pack_by_team(True, H, O, &w_hy[0, 0], p_hy)                                 # W_hyᵀ (H, O)
        if p_ih != NULL:
            pack_by_team(True, I, H, &w_ih[0, 0], p_ih)                                 # W_ihᵀ (I, H)
        share = _loop_share(_BY_ROWS, T, B, NULL, H, sizeof(floating))  # this thread's rows
        _jordan_forward_block(act, out_act, T, B, H, O, share.b0, share.b1, &w_yh[0, 0], &w_hy[0, 0], p_yh, p_hy,
                              _cptr1(b_h), _cptr1(b_y), &s[0, 0, 0], &ys[0, 0, 0], I,
                              &x[0, 0, 0] if inference else NULL, &w_ih[0, 0], p_ih)


cdef void _jordan_backward_block(int act, int out_act, Py_ssize_t T, Py_ssize_t B, int H, int O,
                                 Py_ssize_t b0, Py_ssize_t b1, const floating* w_yh, const floating* w_hy,
                                 const floating* p_yh, const floating* p_hy, const floating* s,
                                 const floating* ys, floating* dz, floating* da, floating* dy0,
                                 const floating* zero) noexcept nogil:
    """Reverse time loop for batch rows [b0, b1): dz (T, B, O) holds ∂L/∂y_t from outside (dout, + dy_n at
    the last step) on entry and dz_t on exit; da (T, B, H) gets da_t; dy0 (B, O) gets ∂L/∂y_0. zero: (B, ≥ H, O)
    zeros (the pointwise passes' second gradient input)."""
    cdef Py_ssize_t t, bt, m = b1 - b0
    cdef floating* dz_t
    cdef floating* da_t
    cdef const floating* z0 = zero + b0 * max(H, O)
    if m <= 0:
        return
    for bt in range(T):
        t = T - 1 - bt
        dz_t = dz + (t * B + b0) * O
        da_t = da + (t * B + b0) * H
        if out_act != _ACT_IDENTITY:       # dz_t = dy_t ⊙ g'(y_t), g' read off y_t
            elman_bwd(<int> m, O, 0, O, out_act, ys + ((t + 1) * B + b0) * O, dz_t, z0, dz_t)
        # da_t = (dz_t W_hy) ⊙ φ'(s_t)
        _step_product(m, O, dz_t, O, p_hy, O, 0, w_hy, False, H, 0, H, da_t, H, False)
        elman_bwd(<int> m, H, 0, H, act, s + (t * B + b0) * H, da_t, z0, da_t)
        # ∂L/∂y_{t-1} += da_t W_yh (into dz_{t-1}, which holds dout_{t-1}), or ∂L/∂y_0 = da_0 W_yh
        if t > 0:
            _step_product(m, H, da_t, H, p_yh, H, 0, w_yh, False, O, 0, O, dz_t - B * O, O, True)
        else:
            _step_product(m, H, da_t, H, p_yh, H, 0, w_yh, False, O, 0, O, dy0 + b0 * O, O, False)


cdef void _jordan_weight_gradients(Py_ssize_t TB, int I, int H, int O, int h0, int h1, int o0, int o1,
                                   Py_ssize_t r0, Py_ssize_t r1, const floating* x, const floating* s,
                                   const floating* ys, const floating* w_ih, const floating* dz,
                                   const floating* da, floating* dx, floating* dw_ih, floating* dw_yh,
                                   floating* db_h, floating* dw_hy, floating* db_y, floating* work) noexcept nogil:
    """Rows [h0, h1) of dW_ih, dW_yh, db_h, rows [o0, o1) of dW_hy, db_y (accumulated) and rows [r0, r1) of
    dx (overwritten), over all TB = T·B rows; work: the thread's rnnfast_wgrad.h workspace, or NULL for BLAS."""
    if h1 > h0:
        _wgrad(h1 - h0, I, <int> TB, da + h0, H, x, I, dw_ih + h0 * I, I, work)           # Σ_t da_tᵀ x_t
        _wgrad(h1 - h0, O, <int> TB, da + h0, H, ys, O, dw_yh + h0 * O, O, work)          # Σ_t da_tᵀ y_{t-1}
        if db_h != NULL:
            colsum(<size_t> TB, h1 - h0, da + h0, <size_t> H, db_h + h0)
    if o1 > o0:
        _wgrad(o1 - o0, H, <int> TB, dz + o0, O, s, H, dw_hy + o0 * H, H, work)           # Σ_t dz_tᵀ s_t
        if db_y != NULL:
            colsum(<size_t> TB, o1 - o0, dz + o0, <size_t> O, db_y + o0)
    if r1 > r0:
        gemm(False, False, <int> (r1 - r0), I, H, <floating> 1, da + r0 * H, H, w_ih, I,
             <floating> 0, dx + r0 * I, I)                                                 # dx_t = da_t W_ih


def jordan_backward(int act,                                # φ, as forward
                    int out_act,                            # g, as forward
                    const floating[:, :, ::1] x,            # IN    (T, B, I)
                    const floating[:, ::1] w_ih,            # IN    (H, I)
                    const floating[:, ::1] w_yh,            # IN    (H, O)
                    const floating[:, ::1] w_hy,            # IN    (O, H)
                    const floating[:, :, ::1] s,            # IN    (T, B, H) s_t from forward
                    const floating[:, :, ::1] ys,           # IN    (T + 1, B, O) y_0 .. y_T from forward
                    floating[:, :, ::1] dz,                 # INOUT (T, B, O) ∂L/∂y_t from outside in (dout, with
                                                            #       dy_n added at T-1); dz_t out
                    floating[:, :, ::1] da,                 # OUT   (T, B, H) da_t
                    floating[:, :, ::1] dx,                 # OUT   (T, B, I)
                    floating[:, ::1] dw_ih,                 # INOUT (H, I) accumulated
                    floating[:, ::1] dw_yh,                 # INOUT (H, O) accumulated
                    floating[::1] db_h,                     # INOUT (H,) accumulated, or None
                    floating[:, ::1] dw_hy,                 # INOUT (O, H) accumulated
                    floating[::1] db_y,                     # INOUT (O,) accumulated, or None
                    floating[:, ::1] dy0,                   # OUT   (B, O) ∂L/∂y_0
                    floating[::1] packed_yh,                # WORK  (packed_size(H, O)) W_yh packed, or None: BLAS
                    floating[::1] packed_hy,                # WORK  (packed_size(O, H)) W_hy packed, or None
                    int num_threads,                        # at most this many OpenMP threads
                    bint wgrad_blas):                       # weight gradients by BLAS, not rnnfast_wgrad.h
    """Backpropagate through time over the buffers of the last forward."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1]
    cdef int I = <int> x.shape[2], H = <int> w_ih.shape[0], O = <int> w_hy.shape[0]
    cdef floating* p_yh = NULL
    cdef floating* p_hy = NULL
    cdef floating* zero
    cdef floating* work = NULL
    cdef void* work_mem = NULL
    cdef Py_ssize_t k, nblocks, nteam, wsize
    cdef _Share share
    if B == 0:
        return
    if T == 0:
        dy0[...] = 0
        return
    if (packed_yh is None) != (packed_hy is None):
        raise ValueError("packed_yh and packed_hy must both be given or both be None")
    if packed_yh is not None:
        p_yh, p_hy = &packed_yh[0], &packed_hy[0]
    nteam = _team(num_threads, B, 4.0 * T * B * H * O)
    nblocks = _team(num_threads, H + O, 2.0 * T * B * (H * (2 * I + O) + O * H))
    zero = <floating*> calloc(B * max(H, O), sizeof(floating))                  # (B, max(H, O)) zeros
    wsize = _wgrad_work_size(sizeof(floating), wgrad_blas)       # (nblocks, wsize) after-loop workspaces
    if wsize:
        work = <floating*> _wgrad_workspace(nblocks, wsize, sizeof(floating), &work_mem)
    if zero == NULL or (wsize and work == NULL):
        free(zero)
        free(work_mem)
        raise MemoryError()
    with nogil, parallel(num_threads=nteam):
        if p_yh != NULL:
            pack_by_team(False, H, O, &w_yh[0, 0], p_yh)                                # W_yh (H, O)
            pack_by_team(False, O, H, &w_hy[0, 0], p_hy)                                # W_hy (O, H)
        share = _loop_share(_BY_ROWS, T, B, NULL, H, sizeof(floating))  # this thread's rows
        _jordan_backward_block(act, out_act, T, B, H, O, share.b0, share.b1, &w_yh[0, 0], &w_hy[0, 0], p_yh, p_hy,
                               &s[0, 0, 0], &ys[0, 0, 0], &dz[0, 0, 0], &da[0, 0, 0], &dy0[0, 0], zero)
    free(zero)
    with nogil, parallel(num_threads=nblocks):
        for k in prange(nblocks, schedule="static"):
            # block k: an even share of the H rows, of the O rows and of the T·B rows of dx
            _jordan_weight_gradients(T * B, I, H, O, <int> _blas_bound(H, nblocks, k),
                                     <int> _blas_bound(H, nblocks, k + 1),
                                     <int> _blas_bound(O, nblocks, k), <int> _blas_bound(O, nblocks, k + 1),
                                     _blas_bound(T * B, nblocks, k), _blas_bound(T * B, nblocks, k + 1),
                                     &x[0, 0, 0], &s[0, 0, 0], &ys[0, 0, 0], &w_ih[0, 0], &dz[0, 0, 0],
                                     &da[0, 0, 0], &dx[0, 0, 0], &dw_ih[0, 0], &dw_yh[0, 0], _cptr1(db_h),
                                     &dw_hy[0, 0], _cptr1(db_y), work + k * wsize if work != NULL else NULL)
    free(work_mem)


cdef void _jordan_step_rows(int act, int out_act, int B, int I, int H, int O, const floating* x,
                            const floating* w_ih, const floating* w_yh, const floating* b_h,
                            const floating* w_hy, const floating* b_y, const floating* y,
                            floating* s_out, floating* y_out) noexcept nogil:
    """One timestep for B rows by matrix-vector products: no packing, no BLAS, no threads."""
    cdef int b
    for b in range(B):
        _add_rows(1, H, b_h, s_out + b * H)
        matvec(H, I, w_ih, x + b * I, s_out + b * H)
        matvec(H, O, w_yh, y + b * O, s_out + b * H)
    elman_fwd(B, H, 0, H, NULL, act, s_out, s_out)
    for b in range(B):
        _add_rows(1, O, b_y, y_out + b * O)
        matvec(O, H, w_hy, s_out + b * H, y_out + b * O)
    if out_act != _ACT_IDENTITY:
        elman_fwd(B, O, 0, O, NULL, out_act, y_out, y_out)


def jordan_step(int act, int out_act,
                const floating[:, ::1] x,               # IN  (B, I)
                const floating[:, ::1] w_ih,            # IN  (H, I)
                const floating[:, ::1] w_yh,            # IN  (H, O)
                const floating[::1] b_h,                # IN  (H,) or None
                const floating[:, ::1] w_hy,            # IN  (O, H)
                const floating[::1] b_y,                # IN  (O,) or None
                const floating[:, ::1] y,               # IN  (B, O) y_{t-1}
                floating[:, ::1] s_out,                 # OUT (B, H) s_t
                floating[:, ::1] y_out):                # OUT (B, O) y_t
    """One timestep of the Jordan network, for streaming (the layer checks the shapes)."""
    cdef int B = <int> x.shape[0], I = <int> x.shape[1], H = <int> w_ih.shape[0], O = <int> w_hy.shape[0]
    if B == 0:
        return
    with nogil:
        _jordan_step_rows(act, out_act, B, I, H, O, &x[0, 0], &w_ih[0, 0], &w_yh[0, 0], _cptr1(b_h),
                          &w_hy[0, 0], _cptr1(b_y), &y[0, 0], &s_out[0, 0], &y_out[0, 0])
