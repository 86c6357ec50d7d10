# Each cell's step, forward beside backward (included by recurrent.pyx). The time loops (_forward.pxi,
# _backward.pxi, _step.pxi) are the same for every cell; what a cell computes at a step is here, and nowhere
# else. A new cell adds: a code (recurrent.pyx, and its row in rnnfast/_cells.py), its pointwise passes
# (rnnfast_pointwise.h, wrapped in _fused.pxd), and here its gate width, forward step, backward step and
# streaming step, each in the dispatch below it.
#
# Arrays are time-major (rows, ·) (_plan.pxi: the layout); row0 is the first row of this block at step t, prev0
# its first row at step t-1. h_prev and c_prev are the rows of the state before step t (_prev_rows); `a` holds the step's input projection (without bias) and becomes the
# activated gates, which backward turns into dA.


cdef inline int _gate_width(int cell, int H) noexcept nogil:
    """G·H: the gate rows of W_ih and W_hh."""
    return 4 * H if cell == _LSTM else (3 * H if cell == _GRU else H)


cdef inline int _recurrent_split(int cell, int H) noexcept nogil:
    """The gate rows below which the recurrent gradient dA^h equals dA (GRU: its n block is r ⊙ dA_n, kept
    in hn by backward; the other cells: all G·H rows). In the biases: the part of b_hh that adds to b_ih."""
    return 2 * H if cell == _GRU else _gate_width(cell, H)


cdef inline const floating* _prev_rows(const floating* init, const floating* seq, Py_ssize_t t, Py_ssize_t prev0,
                                       Py_ssize_t b0, int H) noexcept nogil:
    """Rows of a state before step t: the initial state's at t = 0, else step t-1's in seq (from row prev0);
    NULL when the cell has no such state (seq NULL)."""
    if seq == NULL:
        return NULL
    return (init + b0 * H) if t == 0 else (seq + prev0 * H)


# ---- LSTM: [i f g o] = [σ σ tanh σ](a + h W_hhᵀ + b), c = f ⊙ c_prev + i ⊙ g, h = o ⊙ tanh(c) ----------
cdef inline void _lstm_forward(Py_ssize_t m, int H, int j0, int j1, const floating* h_prev,
                               const floating* c_prev, const floating* packed, const floating* w_hh,
                               const floating* bias, floating* a, floating* c, floating* tanh_c,
                               floating* h) noexcept nogil:
    if w_hh != NULL:
        _gate_products(4, H, H, j0, j1, m, h_prev, packed, w_hh, a, True)   # a += h_{t-1} W_hhᵀ
    lstm_fwd(<int> m, H, j0, j1, bias, a, c_prev, c, tanh_c, h)


cdef inline void _lstm_backward(Py_ssize_t m, int H, int j0, int j1, Py_ssize_t row0, Py_ssize_t b0,
                                const floating* c_prev, floating* gates, const floating* tanh_c,
                                const floating* dout, floating* dh, floating* dc) noexcept nogil:
    lstm_bwd(<int> m, H, j0, j1, gates + row0 * 4 * H, c_prev, tanh_c + row0 * H, dout + row0 * H, dh + b0 * H,
             dc + b0 * H, dc + b0 * H)                                      # gates := dA; dc := dc_{t-1}


# ---- GRU: r, z = σ(a_{r,z} + h W_h{r,z}ᵀ + b), n = tanh(a_n + b_n + r ⊙ (h W_hnᵀ + b_hn)), -------------
#      h = (1 − z) ⊙ n + z ⊙ h_prev
cdef inline void _gru_forward(Py_ssize_t m, int H, int j0, int j1, const floating* h_prev,
                              const floating* packed, const floating* w_hh, const floating* bias,
                              const floating* b_hn, floating* a, floating* s, floating* hn,
                              floating* h) noexcept nogil:
    _gate_products(3, H, H, j0, j1, m, h_prev, packed, w_hh, s, False)      # s = h_{t-1} W_hhᵀ
    gru_fwd(<int> m, H, j0, j1, bias, a, s, b_hn, h_prev, hn, h)


cdef inline void _gru_backward(Py_ssize_t m, int H, int j0, int j1, Py_ssize_t row0, Py_ssize_t b0,
                               const floating* h_prev, floating* gates, floating* hn, const floating* dout,
                               floating* dh) noexcept nogil:
    gru_bwd(<int> m, H, j0, j1, gates + row0 * 3 * H, hn + row0 * H, h_prev, dout + row0 * H, dh + b0 * H,
            hn + row0 * H, dh + b0 * H)                 # gates := dA; hn := r ⊙ dA_n; dh := dh ⊙ z


# ---- Elman: h = φ(a + h W_hhᵀ + b) ----------------------------------------------------------------------
cdef inline void _elman_forward(int act, Py_ssize_t m, int H, int j0, int j1, const floating* h_prev,
                                const floating* packed, const floating* w_hh, const floating* bias,
                                floating* a, floating* h) noexcept nogil:
    if w_hh != NULL:
        _gate_products(1, H, H, j0, j1, m, h_prev, packed, w_hh, a, True)   # a += h_{t-1} W_hhᵀ
    elman_fwd(<int> m, H, j0, j1, bias, act, a, h)


cdef inline void _elman_backward(int act, Py_ssize_t m, int H, int j0, int j1, Py_ssize_t row0, Py_ssize_t b0,
                                 const floating* out, const floating* dout, floating* dh,
                                 floating* da) noexcept nogil:
    elman_bwd(<int> m, H, j0, j1, act, out + row0 * H, dout + row0 * H, dh + b0 * H, da + row0 * H)


# ---- dispatch ---------------------------------------------------------------------------------------------
cdef inline void _forward_step(int cell, Py_ssize_t m, int H, int j0, int j1, const floating* h_prev,
                               const floating* c_prev, const floating* packed, const floating* w_hh,
                               const floating* bias, const floating* b_hn, floating* a, floating* s,
                               floating* c, floating* tanh_c, floating* hn, floating* h) noexcept nogil:
    """Step t of m rows, units [j0, j1): a (m, G·H) (the input projection) becomes the activated gates; h_t
    into h, and c_t, tanh(c_t) (LSTM) or hn (GRU) into c, tanh_c or hn (m, H) (kept for BPTT by the training
    forward, scratch at inference; c may be c_prev, updated in place); s: GRU's (m, 3H) scratch. Every
    pointer is at the block's first row. LSTM and Elman with w_hh NULL: a holds h_{t-1} W_hhᵀ already."""
    if cell == _LSTM:
        _lstm_forward(m, H, j0, j1, h_prev, c_prev, packed, w_hh, bias, a, c, tanh_c, h)
    elif cell == _GRU:
        _gru_forward(m, H, j0, j1, h_prev, packed, w_hh, bias, b_hn, a, s, hn, h)
    else:
        _elman_forward(cell, m, H, j0, j1, h_prev, packed, w_hh, bias, a, h)


cdef inline void _backward_step(int cell, Py_ssize_t m, int H, int j0, int j1, Py_ssize_t row0,
                                Py_ssize_t b0, const floating* h_prev,
                                const floating* c_prev, floating* gates, const floating* tanh_c, floating* hn,
                                const floating* out, const floating* dout, floating* dh, floating* dc,
                                floating* da) noexcept nogil:
    """The pointwise part of step t backwards: dA_t into da (LSTM, GRU: over their kept gates), from dh (which
    holds ∂L/∂h_t without dout_t) and dc; GRU also leaves dh := dh ⊙ z and hn := r ⊙ dA_n, LSTM dc := dc_{t-1}."""
    if cell == _LSTM:
        _lstm_backward(m, H, j0, j1, row0, b0, c_prev, gates, tanh_c, dout, dh, dc)
    elif cell == _GRU:
        _gru_backward(m, H, j0, j1, row0, b0, h_prev, gates, hn, dout, dh)
    else:
        _elman_backward(cell, m, H, j0, j1, row0, b0, out, dout, dh, da)


cdef inline void _backward_product(int cell, Py_ssize_t m, int H, int k0, int k1, Py_ssize_t row,
                                   const floating* packed, const floating* w_hh, const floating* da,
                                   const floating* hn, floating* dh) noexcept nogil:
    """Units [k0, k1) of dh_{t-1} for the m rows from `row` (dh points at that row): dA_t W_hh (GRU:
    dh ⊙ z + [dA_r, dA_z] W_h{r,z} + (r ⊙ dA_n) W_hn)."""
    cdef int GH = _gate_width(cell, H)
    if cell == _GRU:
        _step_product(m, 2 * H, da + row * GH, GH, packed, GH, 0, w_hh, False, H, k0, k1 - k0, dh + k0, H, True)
        _step_product(m, H, hn + row * H, H, packed, GH, 2 * H, w_hh, False, H, k0, k1 - k0, dh + k0, H, True)
    else:
        _step_product(m, GH, da + row * GH, GH, packed, GH, 0, w_hh, False, H, k0, k1 - k0, dh + k0, H, False)


cdef inline Py_ssize_t _step_work_size(int cell, Py_ssize_t B, int H) noexcept nogil:
    """Elements of the streaming step's workspace: LSTM tanh(c) (B, H); GRU h W_hhᵀ (B, 3H) then hn (B, H)."""
    return B * H if cell == _LSTM else (B * 4 * H if cell == _GRU else 0)


cdef inline void _stream_step(int cell, int B, int H, const floating* b_hh, const floating* h,
                              const floating* c, floating* gates, floating* work, floating* h_out,
                              floating* c_out) noexcept nogil:
    """The streaming step's pointwise pass, all units of B rows: gates (B, G·H) hold x W_ihᵀ + the biases that
    add (and for the other cells h W_hhᵀ; GRU's is in work, with b_hn still apart in b_hh's n block)."""
    if cell == _LSTM:
        lstm_fwd(B, H, 0, H, NULL, gates, c, c_out, work, h_out)
    elif cell == _GRU:
        gru_fwd(B, H, 0, H, NULL, gates, work, b_hh + 2 * H if b_hh != NULL else NULL, h,
                work + B * 3 * H, h_out)
    else:
        elman_fwd(B, H, 0, H, NULL, cell, gates, h_out)
