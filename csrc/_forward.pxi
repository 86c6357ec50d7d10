# The forward time loop (included by recurrent.pyx): the input projection of all T·B rows, then the steps.

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
    cdef floating* s = scratch + b0 * GH if scratch != NULL else NULL    # (m, GH) GRU: h_{t-1} W_hhᵀ
    for t in range(T):
        m = _active_rows(lens, b0, b1, t)
        row0 = t * B + b0                      # first row of this block at step t in (T·B, ·) arrays
        _forward_step(cell, m, H, j0, j1, row0, _prev_rows(h0, out, t, row0, B, b0, H),
                      _prev_rows(c0, c, t, row0, B, b0, H), packed, w_hh, bias, b_hn, gates + row0 * GH, s, c,
                      tanh_c, hn, out)
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
            pack_by_team(True, H, GH, &w_hh[0, 0], packed_p)               # W_hhᵀ
        share = _loop_share(plan, B, H, sizeof(floating))
        _forward_block(cell, T, B, H, share.b0, share.b1, share.j0, share.j1,
                       &barrier if plan != _BY_ROWS and share.team > 1 else NULL, share.team,
                       &w_hh[0, 0], packed_p, bias_p, b_hn_p, &h0[0, 0], _cptr2(c0), lens,
                       a_p, _ptr3(c), _ptr3(tanh_c), _ptr3(hn), &out[0, 0, 0],
                       &scratch[0, 0] if scratch is not None else NULL)
