# The forward time loop (included by recurrent.pyx): the input projection of all rows, then the steps (or each
# step projecting its own rows: KernelOptions.input_gemm).

cdef void _forward_block(int cell, Py_ssize_t T, const int* batch_sizes, const Py_ssize_t* off, int H,
                         Py_ssize_t b0, Py_ssize_t b1, int j0, int j1, rf_barrier* barrier, int team,
                         const floating* w_hh, const floating* packed, const floating* bias,
                         const floating* b_hn, const floating* h0, const floating* c0,
                         floating* gates, floating* c, floating* tanh_c, floating* hn, floating* out,
                         floating* scratch, Py_ssize_t B, const Py_ssize_t* order,
                         floating* out_padded, int I, const floating* x, const floating* packed_ih) noexcept nogil:
    """The time loop for batch rows [b0, b1) and hidden units [j0, j1); `gates` holds the input projection
    (without bias) on entry, unless packed_ih (W_ihᵀ packed) is given: then each step projects its own rows
    first, a_t := x_t W_ihᵀ (x (rows, I)), by the packed micro-kernel while they are in cache. Step t covers
    the block's rows that step t has (all of them when padded). With a barrier, the team splits the units and
    meets after each step, when h_t is whole. With out_padded (packed only), each step also writes the
    block's h_t into the padded (·, B, H) batch, and zeros where a sequence has ended, while h_t is in cache
    (_step.pxi: _scatter_step)."""
    cdef int GH = _gate_width(cell, H)
    cdef Py_ssize_t t, m, row0, prev0 = 0
    cdef floating* s = scratch + b0 * GH if scratch != NULL else NULL    # (m, GH) GRU: h_{t-1} W_hhᵀ
    for t in range(T):
        m = _active(batch_sizes, b0, b1, t)
        row0 = off[t] + b0                      # first row of this block at step t
        if t > 0:
            prev0 = off[t - 1] + b0
        if m > 0:
            if packed_ih != NULL:               # a_t := x_t W_ihᵀ   (m, GH)
                _gate_products(GH // H, H, I, j0, j1, m, x + row0 * I, packed_ih, NULL, gates + row0 * GH,
                               False)
            _forward_step(cell, m, H, j0, j1, _prev_rows(h0, out, t, prev0, b0, H),
                          _prev_rows(c0, c, t, prev0, b0, H), packed, w_hh, bias, b_hn, gates + row0 * GH, s,
                          _row(c, row0, H), _row(tanh_c, row0, H), _row(hn, row0, H), out + row0 * H)
        if out_padded != NULL:
            _scatter_step(t, B, b0, b1, m, j0, j1, H, order, out + off[t] * H, out_padded)
        if barrier != NULL:
            rf_barrier_wait(barrier, team)


cdef inline floating* _row(floating* a, Py_ssize_t row, int width) noexcept nogil:
    """Row `row` of a (·, width), or NULL when the cell has no such array (a NULL)."""
    return a + row * width if a != NULL else NULL


cdef inline floating* _ptr2(floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a is not None else NULL


cdef inline const floating* _cptr2(const floating[:, ::1] a) noexcept nogil:
    return &a[0, 0] if a is not None else NULL


def forward(int cell,                                   # ELMAN_*, LSTM or GRU
            Py_ssize_t T,                               # steps
            const int[::1] batch_sizes,                 # IN   (T,) rows of each step (packed), or None: B each (padded)
            const floating[:, ::1] x,                   # IN   (rows, I) time-major (_plan.pxi: the layout)
            const floating[:, ::1] w_ih,                # IN   (G·H, I)
            const floating[:, ::1] w_hh,                # IN   (G·H, H)
            const floating[::1] bias,                   # IN   (G·H,) b_ih + b_hh (GRU: b_ih + [b_hr, b_hz, 0]), or None
            const floating[::1] b_hn,                   # IN   (H,) GRU: b_hn, else None
            const floating[:, ::1] h0,                  # IN   (B, H)
            const floating[:, ::1] c0,                  # IN   (B, H) LSTM, else None
            floating[:, ::1] gates,                     # OUT  (rows, G·H) activated gates (LSTM, GRU); Elman: None
            floating[:, ::1] c,                         # OUT  (rows, H) cell states (LSTM), else None
            floating[:, ::1] tanh_c,                    # OUT  (rows, H) tanh(c_t), kept for BPTT (LSTM), else None
            floating[:, ::1] hn,                        # OUT  (rows, H) W_hn h_{t-1} + b_hn, kept for BPTT (GRU), else None
            floating[:, ::1] out,                       # OUT  (rows, H) h_t
            floating[:, ::1] scratch,                   # WORK (B, G·H) GRU, else None
            floating[::1] packed,                       # WORK (packed_size) W_hhᵀ packed, or None: BLAS per step
            int num_threads,                            # at most this many OpenMP threads
            Py_ssize_t split_bytes,                     # unit split from this W_hh size on (loop_plan)
            int split_h_per_row,                        # (backward only; loop_plan)
            const floating[:, ::1] x_padded=None,       # IN   (T'·B, I) packed: x padded; then x is OUT, its rows
                                                        #      gathered from here by the input projection's threads
            const Py_ssize_t[::1] index=None,           # IN   (rows,) packed: the padded row of each row
            const Py_ssize_t[::1] order=None,           # IN   (B,) packed: the original index of each sorted row
            floating[:, ::1] out_padded=None,           # OUT  (T'·B, H) packed: h_t padded (zero past each length;
                                                        #      steps >= T untouched), or None
            bint step_input=False):                     # the input projection inside the loop (_input_by_step);
                                                        #      packed then holds W_hhᵀ and W_ihᵀ (packed_size(H + I, G·H))
    """Run the layer over the sequence, keeping in the OUT buffers everything BPTT needs. Packed, with
    x_padded or out_padded, the gather of x into the layout's rows and the scatter of h_t back into the
    padded batch run inside the kernel's threads, on rows in cache, instead of as passes of their own."""
    cdef Py_ssize_t B = h0.shape[0], rows = x.shape[0]
    cdef int I = <int> x.shape[1], H = <int> w_hh.shape[1], GH = <int> w_hh.shape[0]
    cdef const floating* bias_p = &bias[0] if bias is not None else NULL
    cdef const floating* b_hn_p = &b_hn[0] if b_hn is not None else NULL
    cdef const int* bs = NULL
    cdef floating* packed_p = NULL
    cdef floating* packed_ih = NULL
    cdef floating* w_iht = NULL
    cdef bint finite
    cdef floating* a_p
    cdef Py_ssize_t k, lo, hi, nblocks, nteam
    cdef Py_ssize_t* off
    cdef _Share share
    cdef int plan
    cdef rf_barrier barrier
    cdef floating* x_rows = NULL
    cdef const floating* x_pad = NULL
    cdef floating* out_pad = NULL
    _check_layout(T, B, batch_sizes, rows)
    _check_padded(x_padded, index, B, rows, I, "x_padded")
    _check_padded(out_padded, index, B, rows, H, "out_padded")
    if (x_padded is not None or out_padded is not None) and batch_sizes is None:
        raise ValueError("x_padded and out_padded are for the packed layout (batch_sizes)")
    if out_padded is not None and (order is None or order.shape[0] != B):
        raise ValueError(f"out_padded needs order ({B},)")
    for k in range(B if out_padded is not None else 0):
        if order[k] < 0 or order[k] >= B:
            raise ValueError(f"order[{k}] = {order[k]} is not a sequence of the batch of {B}")
    if T == 0 or B == 0:
        return
    if batch_sizes is not None:
        bs = &batch_sizes[0]
    if x_padded is not None:
        x_pad = &x_padded[0, 0]
        x_rows = <floating*> &x[0, 0]                # the caller's workspace: written here
    if out_padded is not None:
        out_pad = &out_padded[0, 0]
    if packed is not None:
        packed_p = &packed[0]
    off = _offsets(bs, T, B)
    if off == NULL:
        raise MemoryError()
    a_p = &out[0, 0] if gates is None else &gates[0, 0]         # Elman: pre-activations go straight into out
    nblocks = _team(num_threads, rows, 2.0 * rows * GH * I)
    nteam = _loop_team(num_threads, rows, B, H, GH, sizeof(floating), False,
                       _split_policy(split_bytes, split_h_per_row), &plan)
    # a sparse x: the projection by its nonzeros (x_padded's rows when x is the workspace still to be gathered)
    if (_sparse_nnz(x_padded.shape[0], I, x_pad, rows) if x_pad != NULL else _sparse_nnz(rows, I, &x[0, 0])) >= 0:
        w_iht = _transposed(GH, I, &w_ih[0, 0], &finite)        # (I, GH) W_ihᵀ
        if w_iht == NULL:
            free(off)
            raise MemoryError()
        if not finite:                                          # NaN or inf in W_ih: the dense product
            free(w_iht)
            w_iht = NULL
    if _input_by_step(step_input, packed_p != NULL, bs, <void*> w_iht, plan, I, sizeof(floating), False):
        if packed.shape[0] < _packed_size(sizeof(floating), H + I, GH):
            free(off)
            raise ValueError(f"packed must hold W_hhᵀ and W_ihᵀ with step_input: "
                             f"{packed_size(sizeof(floating), H + I, GH)} elements, got {packed.shape[0]}")
        packed_ih = packed_p + _packed_size(sizeof(floating), H, GH)
    rf_barrier_init(&barrier)
    if packed_ih == NULL:
        with nogil, parallel(num_threads=nblocks):
            for k in prange(nblocks, schedule="static"):
                lo = _blas_bound(rows, nblocks, k)
                hi = _blas_bound(rows, nblocks, k + 1)
                if x_pad != NULL:
                    _gather_rows(lo, hi, I, &index[0], x_pad, x_rows)
                _input_projection(lo, hi, I, GH, &x[0, 0], &w_ih[0, 0], w_iht, a_p)
    with nogil, parallel(num_threads=nteam):
        if packed_p != NULL:
            pack_by_team(True, H, GH, &w_hh[0, 0], packed_p)               # W_hhᵀ
        if packed_ih != NULL:
            pack_by_team(True, I, GH, &w_ih[0, 0], packed_ih)              # W_ihᵀ
        share = _loop_share(plan, T, B, bs, H, sizeof(floating))
        _forward_block(cell, T, bs, off, H, share.b0, share.b1, share.j0, share.j1,
                       &barrier if plan != _BY_ROWS and share.team > 1 else NULL, share.team,
                       &w_hh[0, 0], packed_p, bias_p, b_hn_p, &h0[0, 0], _cptr2(c0),
                       a_p, _ptr2(c), _ptr2(tanh_c), _ptr2(hn), &out[0, 0],
                       &scratch[0, 0] if scratch is not None else NULL,
                       B, &order[0] if out_pad != NULL else NULL, out_pad, I, &x[0, 0], packed_ih)
    free(off)
    free(w_iht)
