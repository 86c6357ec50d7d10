# The reverse time loop and `backward` (included by recurrent.pyx): per step the cell's pointwise pass
# (_cells.pxi) then dh_{t-1} = dA_t W_hh (and dx_t = dA_t W_ih with KernelOptions.input_gemm); after the loop
# the weight gradients and dx (_wgrad.pxi).

cdef void _backward_block(int cell, Py_ssize_t T, Py_ssize_t B, const int* batch_sizes, const Py_ssize_t* off,
                          int H, Py_ssize_t b0, Py_ssize_t b1, int j0, int j1, int k0, int k1, bint mixed,
                          rf_barrier* barrier, int team, const floating* w_hh, const floating* packed,
                          const floating* h0, const floating* c0, floating* gates, const floating* c,
                          const floating* tanh_c, floating* hn, const floating* out, const floating* dout,
                          const floating* dh_n, const floating* dc_n, floating* da, floating* dh,
                          floating* dc, floating* dbias, int I, const floating* packed_ih,
                          floating* dx) noexcept nogil:
    """Reverse time loop, the pointwise passes over rows [b0, b1) and hidden units [j0, j1), the products
    over units [k0, k1) of rows [b0, b1) (of all rows when mixed): fills da (rows, GH) (GRU: also
    hn := its recurrent n-block gradient r ⊙ dA_n, which the product reads with dA_t's r and z blocks) and
    leaves dh_0, dc_0 in dh, dc. With a barrier, the team meets between the pointwise pass (all of dA_t)
    and the product dA_t W_hh, and when mixed after the product too (all of dh_{t-1}).
    dbias (GH + H,), if not NULL, gets this thread's Σ dA_t (and GRU's Σ of the recurrent n-block
    gradient after it), summed while each step's dA_t is still in cache. With packed_ih (W_ih packed; rows
    plan only), each step also writes its rows of dx (rows, I): dx_t := dA_t W_ih, while dA_t is in cache."""
    cdef int GH = _gate_width(cell, H)
    cdef int nu = j1 - j0
    cdef Py_ssize_t t, m, row0, prev0, b, bt, p0 = 0 if mixed else b0    # p0: the products' first row
    for bt in range(T):
        t = T - 1 - bt
        row0 = off[t] + b0
        prev0 = off[t - 1] + b0 if t > 0 else 0
        # A sequence's gradient starts at its own last step, t: it is a row of step t but not of step t + 1
        # (sorted by decreasing length). Seed the running dh, dc from dh_n, dc_n.
        for b in range(max(b0, _batch_at(batch_sizes, B, T, t + 1)), min(b1, _batch_at(batch_sizes, B, T, t))):
            memcpy(dh + b * H + j0, dh_n + b * H + j0, nu * sizeof(floating))
            if dc != NULL:
                memcpy(dc + b * H + j0, dc_n + b * H + j0, nu * sizeof(floating))
        m = _active(batch_sizes, b0, b1, t)
        if m > 0:
            _backward_step(cell, m, H, j0, j1, row0, b0, _prev_rows(h0, out, t, prev0, b0, H),
                           _prev_rows(c0, c, t, prev0, b0, H), gates, tanh_c, hn, out, dout, dh, dc, da)
            if dbias != NULL:
                _unit_sums(m, GH // H, H, j0, j1, da + row0 * GH, dbias)
                if _recurrent_split(cell, H) < GH:      # GRU: Σ r ⊙ dA_n, the recurrent side's n block
                    _unit_sums(m, 1, H, j0, j1, hn + row0 * H, dbias + GH)
        if barrier != NULL:
            rf_barrier_wait(barrier, team)
        if mixed:             # all rows of step t
            m = _active(batch_sizes, 0, B, t)
        if m > 0:
            _backward_product(cell, m, H, k0, k1, off[t] + p0, packed, w_hh, da, hn, dh + p0 * H)
            if packed_ih != NULL:               # dx_t := dA_t W_ih   (m, I)
                _step_product(m, GH, da + row0 * GH, GH, packed_ih, GH, 0, NULL, False, I, 0, I, dx + row0 * I, I,
                              False)
        if mixed:             # dh_{t-1} whole before the next pointwise pass reads its rows
            rf_barrier_wait(barrier, team)


cdef inline void _unit_sums(Py_ssize_t m, int G, int H, int j0, int j1, const floating* rows,
                            floating* sums) noexcept nogil:
    """sums (G·H,) += Σ over the m rows (each G·H long) of units [j0, j1) of every gate block."""
    cdef int g
    for g in range(G):
        colsum(m, j1 - j0, rows + g * H + j0, G * H, sums + g * H + j0)


def backward(int cell,                                  # ELMAN_*, LSTM or GRU
             Py_ssize_t T,                              # steps
             const int[::1] batch_sizes,                # IN    (T,) rows of each step (packed), or None: B each (padded)
             const floating[:, ::1] x,                  # IN    (rows, I) time-major (_plan.pxi: the layout)
             const floating[:, ::1] w_ih,               # IN    (G·H, I)
             const floating[:, ::1] w_hh,               # IN    (G·H, H)
             const floating[:, ::1] h0,                 # IN    (B, H)
             const floating[:, ::1] c0,                 # IN    (B, H) LSTM, else None
             floating[:, ::1] gates,                    # INOUT (rows, G·H) LSTM, GRU: activated gates in, dA out;
                                                        #       Elman: workspace for dA
             const floating[:, ::1] c,                  # IN    (rows, H) LSTM, else None
             const floating[:, ::1] tanh_c,             # IN    (rows, H) LSTM, else None
             floating[:, ::1] hn,                       # INOUT (rows, H) GRU: hn in, r ⊙ da_n out; else None
             const floating[:, ::1] out,                # IN    (rows, H) h_t from forward
             const floating[:, ::1] dout,               # IN    (rows, H) dL/dout
             const floating[:, ::1] dh_n,               # IN    (B, H) dL/dh_n
             const floating[:, ::1] dc_n,               # IN    (B, H) dL/dc_n, LSTM, else None
             floating[:, ::1] dx,                       # OUT   (rows, I), or None: not wanted (not computed)
             floating[:, ::1] dw_ih,                    # INOUT (G·H, I) accumulated
             floating[:, ::1] dw_hh,                    # INOUT (G·H, H) accumulated
             floating[::1] db_ih,                       # INOUT (G·H,) accumulated, or None
             floating[::1] db_hh,                       # INOUT (G·H,) accumulated, or None
             floating[:, ::1] dh0,                      # OUT   (B, H)
             floating[:, ::1] dc0,                      # OUT   (B, H) LSTM, else None
             floating[:, ::1] h_prev,                   # WORK  (rows, H) packed: h_{t-1} beside each row; padded: None
             floating[::1] packed,                      # WORK  (packed_size) W_hh packed, or None: BLAS per step
             int num_threads,                           # at most this many OpenMP threads
             Py_ssize_t split_bytes,                    # unit split from this W_hh size on (loop_plan)
             int split_h_per_row,                       # pointwise pass by units from H >= this · B on
             bint wgrad_blas,                           # weight gradients by BLAS, not rnnfast_wgrad.h
             bint step_input=False):                    # dx_t inside the loop (_input_by_step); packed then
                                                        #       holds W_hh and W_ih (packed_size(G·H, H + I))
    """Backpropagate through time over the buffers of the last forward. Overwrites `gates` (and GRU's `hn`)."""
    cdef Py_ssize_t B = h0.shape[0], rows = x.shape[0]
    cdef int I = <int> x.shape[1], H = <int> w_hh.shape[1], GH = <int> w_hh.shape[0]
    cdef int split = _recurrent_split(cell, H)
    cdef const int* bs = NULL
    cdef floating* db_ih_p = &db_ih[0] if db_ih is not None else NULL
    cdef floating* db_hh_p = &db_hh[0] if db_hh is not None else NULL
    cdef floating* packed_p = NULL
    cdef floating* packed_ih = NULL
    cdef floating* hn_p = _ptr2(hn)
    cdef floating* h_prev_p = NULL
    cdef Py_ssize_t k, p, lo, hi, g0, g1, nblocks, nteam, wsize, t
    cdef Py_ssize_t* bounds
    cdef Py_ssize_t* off
    cdef floating* dbias = NULL
    cdef floating* work = NULL
    cdef void* work_mem = NULL
    cdef floating* g_iht = NULL
    cdef Py_ssize_t nnz = _sparse_nnz(rows, I, &x[0, 0])
    cdef _Share share
    cdef int plan
    cdef rf_barrier barrier
    _check_layout(T, B, batch_sizes, rows)
    if B == 0:
        return
    if T == 0:
        dh0[...] = dh_n
        if dc0 is not None:
            dc0[...] = dc_n
        return
    if batch_sizes is not None:
        bs = &batch_sizes[0]
        if h_prev is None or h_prev.shape[0] != rows or h_prev.shape[1] != H:
            raise ValueError(f"h_prev must be a ({rows}, {H}) workspace with batch_sizes")
        h_prev_p = &h_prev[0, 0]
    if packed is not None:
        packed_p = &packed[0]
    nteam = _loop_team(num_threads, rows, B, H, GH, sizeof(floating), True,
                       _split_policy(split_bytes, split_h_per_row), &plan)
    if dx is not None and _input_by_step(step_input, packed_p != NULL, bs, NULL, plan, I, sizeof(floating), True):
        # W_hh (K = GH, N = H), then W_ih (N = I), each in whole panels: more than one (GH, H + I) operand
        if packed.shape[0] < _packed_size(sizeof(floating), GH, H) + _packed_size(sizeof(floating), GH, I):
            raise ValueError(f"packed must hold W_hh and W_ih with step_input: "
                             f"{packed_size(sizeof(floating), GH, H) + packed_size(sizeof(floating), GH, I)} "
                             f"elements, got {packed.shape[0]}")
        packed_ih = packed_p + _packed_size(sizeof(floating), GH, H)
    nblocks = _team(num_threads, GH, 2.0 * rows * GH * ((2 * I + H) if packed_ih == NULL else (I + H)))
    off = _offsets(bs, T, B)
    bounds = <Py_ssize_t*> malloc(2 * (nblocks + 1) * sizeof(Py_ssize_t))    # after-loop blocks
    if db_ih_p != NULL or db_hh_p != NULL:    # (nteam, GH + H) each thread's bias sums
        dbias = <floating*> calloc(nteam * (GH + H), sizeof(floating))
    wsize = _wgrad_work_size(sizeof(floating), wgrad_blas)   # (nblocks, wsize) each after-loop thread's workspace
    if wsize:
        work = <floating*> _wgrad_workspace(nblocks, wsize, sizeof(floating), &work_mem)
    if nnz >= 0:                              # a sparse x: dW_ih by its nonzeros, through (I, GH) zeros
        g_iht = <floating*> calloc(<size_t> I * GH, sizeof(floating))
    if (off == NULL or bounds == NULL or (dbias == NULL and (db_ih_p != NULL or db_hh_p != NULL))
            or (wsize and work == NULL) or (nnz >= 0 and g_iht == NULL)):
        free(off)
        free(bounds)
        free(dbias)
        free(work_mem)
        free(g_iht)
        raise MemoryError()
    rf_barrier_init(&barrier)
    with nogil, parallel(num_threads=nteam):
        if packed_p != NULL:
            pack_by_team(False, GH, H, &w_hh[0, 0], packed_p)              # W_hh
        if packed_ih != NULL:
            pack_by_team(False, GH, I, &w_ih[0, 0], packed_ih)             # W_ih
        share = _loop_share(plan, T, B, bs, H, sizeof(floating))
        _backward_block(cell, T, B, bs, off, H, share.b0, share.b1, share.j0, share.j1, share.k0, share.k1,
                        plan == _MIXED and share.team > 1,
                        &barrier if plan != _BY_ROWS and share.team > 1 else NULL, share.team,
                        &w_hh[0, 0], packed_p, &h0[0, 0], _cptr2(c0),
                        &gates[0, 0], &c[0, 0] if c is not None else NULL,
                        &tanh_c[0, 0] if tanh_c is not None else NULL, hn_p,
                        &out[0, 0], &dout[0, 0], &dh_n[0, 0], _cptr2(dc_n),
                        &gates[0, 0], &dh0[0, 0], &dc0[0, 0] if dc0 is not None else NULL,
                        dbias + rf_thread_id() * (GH + H) if dbias != NULL else NULL, I, packed_ih,
                        _ptr2(dx) if packed_ih != NULL else NULL)
    if h_prev_p != NULL:      # packed: h_{t-1} of each row of step t, so that dW_hh is one GEMM over the rows
        with nogil:
            for t in range(T):
                memcpy(h_prev_p + off[t] * H, &h0[0, 0] if t == 0 else &out[0, 0] + off[t - 1] * H,
                       bs[t] * H * sizeof(floating))
    _after_loop_bounds(nblocks, rows, I, H, GH, split, wsize == 0, <double> nnz / rows if nnz >= 0 else I,
                       rows if dx is not None and packed_ih == NULL else 0, bounds, bounds + nblocks + 1)
    with nogil, parallel(num_threads=nblocks):
        for k in prange(nblocks, schedule="static"):
            g0 = bounds[k]
            g1 = bounds[k + 1]
            lo = bounds[nblocks + 1 + k]
            hi = bounds[nblocks + 2 + k]
            _weight_gradients(T, B, rows, I, H, GH, split, g0, g1, lo, hi, &gates[0, 0], hn_p, &x[0, 0],
                              &h0[0, 0], &out[0, 0], h_prev_p, &w_ih[0, 0], _ptr2(dx), &dw_ih[0, 0],
                              &dw_hh[0, 0], work + k * wsize if work != NULL else NULL, g_iht)
    free(off)
    free(bounds)
    free(work_mem)
    free(g_iht)
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
