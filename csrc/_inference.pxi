# The inference forward (included by recurrent.pyx): a forward that no backward follows, so it keeps nothing
# for BPTT.
#
# The training forward projects every row before its time loop, A = X W_ihᵀ (rows, G·H), streams A through
# memory once to write it and once more to read it back, and keeps the activated gates, c_t, tanh(c_t) (LSTM)
# or hn (GRU) of every step. Here each step projects its own rows just before its recurrent product,
#     a_t = x_t W_ihᵀ          (m_t, G·H), by the packed micro-kernel, W_ih packed once per call as W_hh is,
# into one (B, G·H) buffer that stays in cache; c_t is updated in place in a (B, H) state, and tanh(c_t)
# (LSTM) and hn (GRU) go to (B, H) scratch. What is left afterwards: h_t of every row (the layer's output,
# the next layer's input) and each sequence's final c. The steps are the training forward's (_forward_step,
# the same pointwise passes); only the input projection's order of sums differs (the micro-kernel's instead
# of BLAS's GEMM), so the two agree to rounding, not bit for bit. The threads share the loop as in the
# training forward (_loop_team: by rows, or by units with a barrier per step), each thread projecting the
# rows and units it then steps, so the rows plan needs no barrier at all.
#
# Fused (LSTM and Elman when the threads split the rows): the two products of a step are one,
#     a_t = [x_t | h_{t-1}] [W_ih | W_hh]ᵀ     (m_t, I + H) @ (I + H, G·H),
# with each row's [x_t | h_{t-1}] copied into a (B, I + H) buffer (m_t·(I + H) values against m_t·G·H·(I + H)
# multiply-adds), so a_t is written once instead of written and read back, in one call. GRU keeps the two
# products: its n gate needs h_{t-1} W_hnᵀ apart.
#
# The plan (_inference_team): LSTM and Elman split the rows and run fused whenever the batch has a row for
# each thread the unit split would take; the unit split's barrier per step cost more than the fused rows
# plan's streaming of the whole [W_ih | W_hh] saved, even at B = 8 and H = 512 (benchmarks/inference.py). GRU
# and smaller batches follow the training forward's plan (KernelOptions.unit_split_bytes).


cdef Py_ssize_t _inference_team(int cell, int num_threads, Py_ssize_t rows, Py_ssize_t B, int H, int GH,
                                int itemsize, _SplitPolicy policy, int* plan) noexcept nogil:
    """Threads for the inference time loop, and their plan: _BY_ROWS (fused for LSTM and Elman) or _BY_UNITS."""
    cdef Py_ssize_t n = _loop_team(num_threads, rows, B, H, GH, itemsize, False, policy, plan)
    if cell != _GRU and plan[0] != _BY_ROWS and B >= n:
        policy.nbytes = (<Py_ssize_t> 1) << 62                  # never the unit split
        n = _loop_team(num_threads, rows, B, H, GH, itemsize, False, policy, plan)
    return n


def inference_plan(int cell, int num_threads, Py_ssize_t T, Py_ssize_t B, int H, int itemsize,
                   Py_ssize_t split_bytes):
    """(threads, plan, fused) that forward_inference would use on a padded batch; plan is "rows" or "units"."""
    cdef int plan
    cdef Py_ssize_t n = _inference_team(cell, num_threads, T * B, B, H, _gate_width(cell, H), itemsize,
                                        _split_policy(split_bytes, 0), &plan)
    return n, _PLAN_NAMES[plan], cell != _GRU and plan == _BY_ROWS

cdef void _inference_block(int cell, Py_ssize_t T, const int* batch_sizes, const Py_ssize_t* off, int I, int H,
                           Py_ssize_t b0, Py_ssize_t b1, int j0, int j1, rf_barrier* barrier, int team,
                           const floating* x, const floating* w_ih, const floating* packed_ih,
                           const floating* w_hh, const floating* packed_hh, const floating* bias,
                           const floating* b_hn, const floating* h0, floating* c, floating* gates,
                           floating* tanh_c, floating* hn, floating* scratch, floating* out, const floating* w_cat,
                           const floating* packed_cat, floating* z, const floating* w_iht) noexcept nogil:
    """The time loop for batch rows [b0, b1) and hidden units [j0, j1); gates, c, tanh_c, hn, scratch and z
    are (B, ·), indexed by the batch row (a sequence keeps its row at every step, packed or padded). Fused
    when z is not NULL: w_cat = [W_ih | W_hh] (G·H, I + H), packed_cat its packed copy (or NULL: BLAS).
    With w_iht = W_ihᵀ (I, G·H) (a sparse x, all units), each step's projection goes by x's nonzeros."""
    cdef int GH = _gate_width(cell, H)
    cdef int G = GH // H
    cdef int K = I + H
    cdef Py_ssize_t t, m, r, row0, prev0 = 0
    cdef const floating* h_prev
    cdef floating* zb = _row(z, b0, K)                          # (m, I + H) [x_t | h_{t-1}]
    cdef floating* a
    cdef floating* s = _row(scratch, b0, GH)                    # (m, GH) GRU: h_{t-1} W_hhᵀ
    for t in range(T):
        m = _active(batch_sizes, b0, b1, t)
        row0 = off[t] + b0                                      # first row of this block at step t
        if t > 0:
            prev0 = off[t - 1] + b0
        if m > 0:
            # Elman: the pre-activations go straight into out, as in the training forward
            a = out + row0 * H if gates == NULL else gates + b0 * GH
            h_prev = _prev_rows(h0, out, t, prev0, b0, H)
            if zb != NULL:
                for r in range(m):
                    memcpy(zb + r * K, x + (row0 + r) * I, I * sizeof(floating))
                    memcpy(zb + r * K + I, h_prev + r * H, H * sizeof(floating))
                _gate_products(G, H, K, j0, j1, m, zb, packed_cat, w_cat, a, False)    # a := [x_t | h] W_catᵀ
                _forward_step(cell, m, H, j0, j1, h_prev, _row(c, b0, H), NULL, NULL, bias, b_hn, a, s,
                              _row(c, b0, H), _row(tanh_c, b0, H), NULL, out + row0 * H)
            else:
                if w_iht != NULL:
                    _input_projection(0, m, I, GH, x + row0 * I, w_ih, w_iht, a)           # a := x_t W_ihᵀ
                else:
                    _gate_products(G, H, I, j0, j1, m, x + row0 * I, packed_ih, w_ih, a, False)
                _forward_step(cell, m, H, j0, j1, h_prev, _row(c, b0, H), packed_hh, w_hh, bias, b_hn, a, s,
                              _row(c, b0, H), _row(tanh_c, b0, H), _row(hn, b0, H), out + row0 * H)
        if barrier != NULL:
            rf_barrier_wait(barrier, team)


def forward_inference(int cell,                         # ELMAN_*, LSTM or GRU
                      Py_ssize_t T,                     # steps
                      const int[::1] batch_sizes,       # IN     (T,) rows of each step (packed), or None (padded)
                      const floating[:, ::1] x,         # IN     (rows, I) time-major (_plan.pxi: the layout)
                      const floating[:, ::1] w_ih,      # IN     (G·H, I)
                      const floating[:, ::1] w_hh,      # IN     (G·H, H)
                      const floating[::1] bias,         # IN     (G·H,) as `forward`'s, or None
                      const floating[::1] b_hn,         # IN     (H,) GRU: b_hn, else None
                      const floating[:, ::1] h0,        # IN     (B, H)
                      floating[:, ::1] c,               # IN/OUT (B, H) LSTM: c0 in, each row's c at its last step out; else None
                      floating[:, ::1] out,             # OUT    (rows, H) h_t
                      floating[:, ::1] gates,           # WORK   (B, G·H) LSTM, GRU; Elman: None
                      floating[:, ::1] tanh_c,          # WORK   (B, H) LSTM, else None
                      floating[:, ::1] hn,              # WORK   (B, H) GRU, else None
                      floating[:, ::1] scratch,         # WORK   (B, G·H) GRU, else None
                      floating[::1] packed,             # WORK   (packed_size(I + H, G·H)) W_ihᵀ, W_hhᵀ or [W_ih | W_hh]ᵀ packed, or None: BLAS per step
                      floating[:, ::1] w_cat,           # WORK   (G·H, I + H) [W_ih | W_hh] (LSTM, Elman), else None
                      floating[:, ::1] z,               # WORK   (B, I + H) [x_t | h_{t-1}] (LSTM, Elman), else None
                      int num_threads,                  # at most this many OpenMP threads
                      Py_ssize_t split_bytes,           # unit split from this W_hh size on (loop_plan)
                      int split_h_per_row):             # (backward only; loop_plan)
    """Run the layer over the sequence keeping nothing for BPTT: h_t of every row into out, and (LSTM) the
    final cell states into c."""
    cdef Py_ssize_t B = h0.shape[0], rows = x.shape[0]
    cdef int I = <int> x.shape[1], H = <int> w_hh.shape[1], GH = <int> w_hh.shape[0]
    cdef const floating* bias_p = &bias[0] if bias is not None else NULL
    cdef const floating* b_hn_p = &b_hn[0] if b_hn is not None else NULL
    cdef const int* bs = NULL
    cdef floating* pih = NULL
    cdef floating* phh = NULL
    cdef floating* pz = NULL
    cdef floating* pcat = NULL
    cdef floating* w_iht = NULL
    cdef bint finite
    cdef Py_ssize_t nteam, n
    cdef Py_ssize_t* off
    cdef _Share share
    cdef int plan
    cdef rf_barrier barrier
    _check_layout(T, B, batch_sizes, rows)
    if out.shape[0] != rows or out.shape[1] != H or w_ih.shape[1] != I or w_ih.shape[0] != GH:
        raise ValueError("forward_inference: inconsistent shapes of x, w_ih, w_hh and out")
    if packed is not None and packed.shape[0] < packed_size(sizeof(floating), I + H, GH):
        raise ValueError("forward_inference: packed is too small")
    if (w_cat is None) != (z is None) or (z is not None and (z.shape[0] < B or z.shape[1] != I + H or
                                                             w_cat.shape[0] != GH or w_cat.shape[1] != I + H)):
        raise ValueError("forward_inference: w_cat (G·H, I + H) and z (B, I + H) go together")
    if (gates is None) != (cell != _LSTM and cell != _GRU):
        raise ValueError("forward_inference: gates is needed by LSTM and GRU only")
    if T == 0 or B == 0:
        return
    if batch_sizes is not None:
        bs = &batch_sizes[0]
    off = _offsets(bs, T, B)
    if off == NULL:
        raise MemoryError()
    nteam = _inference_team(cell, num_threads, rows, B, H, GH, sizeof(floating),
                            _split_policy(split_bytes, split_h_per_row), &plan)
    if plan == _BY_ROWS and _sparse_nnz(rows, I, &x[0, 0]) >= 0:   # a sparse x: each step's projection by
        w_iht = _transposed(GH, I, &w_ih[0, 0], &finite)            # its nonzeros, through W_ihᵀ (I, GH)
        if w_iht == NULL:
            free(off)
            raise MemoryError()
        if not finite:                                              # NaN or inf in W_ih: the dense product
            free(w_iht)
            w_iht = NULL
    if z is not None and plan == _BY_ROWS and w_iht == NULL:        # fused: w_cat := [W_ih | W_hh]
        pz = &z[0, 0]
        for n in range(GH):
            memcpy(&w_cat[n, 0], &w_ih[n, 0], I * sizeof(floating))
            memcpy(&w_cat[n, I], &w_hh[n, 0], H * sizeof(floating))
        if packed is not None:
            pcat = &packed[0]
    elif packed is not None:                                        # W_ihᵀ, then W_hhᵀ, in the one buffer
        pih = &packed[0]
        phh = pih + I * _panels(GH, sizeof(floating)) * _panel_width(sizeof(floating))
    rf_barrier_init(&barrier)
    with nogil, parallel(num_threads=nteam):
        if pcat != NULL:
            pack_by_team(True, I + H, GH, &w_cat[0, 0], pcat)              # [W_ih | W_hh]ᵀ
        elif pih != NULL:
            if w_iht == NULL:
                pack_by_team(True, I, GH, &w_ih[0, 0], pih)                 # W_ihᵀ
            pack_by_team(True, H, GH, &w_hh[0, 0], phh)                     # W_hhᵀ
        share = _loop_share(plan, T, B, bs, H, sizeof(floating))
        _inference_block(cell, T, bs, off, I, H, share.b0, share.b1, share.j0, share.j1,
                         &barrier if plan != _BY_ROWS and share.team > 1 else NULL, share.team,
                         &x[0, 0], &w_ih[0, 0], pih, &w_hh[0, 0], phh, bias_p, b_hn_p, &h0[0, 0], _ptr2(c),
                         _ptr2(gates), _ptr2(tanh_c), _ptr2(hn), _ptr2(scratch), &out[0, 0],
                         &w_cat[0, 0] if pz != NULL else NULL, pcat, pz, w_iht)
    free(off)
    free(w_iht)
