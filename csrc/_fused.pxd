# cython: language_level=3
"""The float/double branch, written once: fused wrappers of the C helpers' _f/_d pairs, as scikit-learn's
_cython_blas wraps sgemm/dgemm (the GEMM itself is in _blas.pxd). Each is `noexcept nogil` and inlined, so a
call costs what the C call costs."""
from cython cimport floating
from libc.stdint cimport int64_t

from _pointwise cimport (rf_lstm_fwd_f, rf_lstm_fwd_d, rf_lstm_bwd_f, rf_lstm_bwd_d,
                         rf_elman_fwd_f, rf_elman_fwd_d, rf_elman_bwd_f, rf_elman_bwd_d,
                         rf_gru_fwd_f, rf_gru_fwd_d, rf_gru_bwd_f, rf_gru_bwd_d, rf_colsum_f, rf_colsum_d,
                         rf_colmax_f, rf_colmax_d, rf_colfirst_f, rf_colfirst_d, rf_pack_by_team_f,
                         rf_pack_by_team_d, rf_recgemm_f, rf_recgemm_d, rf_matvec_f, rf_matvec_d, rf_wgrad_f,
                         rf_wgrad_d)


# ---- pointwise passes (rnnfast_pointwise.h): units [j0, j1) of n rows -----------------------------------
cdef inline void lstm_fwd(int n, int H, int j0, int j1, const floating* bias, floating* gates,
                          const floating* c_prev, floating* c, floating* tanh_c, floating* h) noexcept nogil:
    """gates := σ σ tanh σ (gates + bias);  c := f ⊙ c_prev + i ⊙ g;  h := o ⊙ tanh(c), tanh(c) kept."""
    if floating is float:
        rf_lstm_fwd_f(n, H, j0, j1, bias, gates, c_prev, c, tanh_c, h)
    else:
        rf_lstm_fwd_d(n, H, j0, j1, bias, gates, c_prev, c, tanh_c, h)


cdef inline void lstm_bwd(int n, int H, int j0, int j1, floating* gates, const floating* c_prev,
                          const floating* tanh_c, const floating* dout, const floating* dh_in,
                          const floating* dc_in, floating* dc_out) noexcept nogil:
    """gates := dA (the activated gates in, their pre-activation gradients out);  dc_out := dc_{t-1}."""
    if floating is float:
        rf_lstm_bwd_f(n, H, j0, j1, gates, c_prev, tanh_c, dout, dh_in, dc_in, dc_out)
    else:
        rf_lstm_bwd_d(n, H, j0, j1, gates, c_prev, tanh_c, dout, dh_in, dc_in, dc_out)


cdef inline void elman_fwd(int n, int H, int j0, int j1, const floating* bias, int act, const floating* a,
                           floating* h) noexcept nogil:
    """h := φ(a + bias), φ = act (RF_TANH, RF_RELU, RF_SIGMOID)."""
    if floating is float:
        rf_elman_fwd_f(n, H, j0, j1, bias, act, a, h)
    else:
        rf_elman_fwd_d(n, H, j0, j1, bias, act, a, h)


cdef inline void elman_bwd(int n, int H, int j0, int j1, int act, const floating* h, const floating* dout,
                           const floating* dh_in, floating* da) noexcept nogil:
    """da := (dout + dh_in) ⊙ φ'(·), read from h = φ(·)."""
    if floating is float:
        rf_elman_bwd_f(n, H, j0, j1, act, h, dout, dh_in, da)
    else:
        rf_elman_bwd_d(n, H, j0, j1, act, h, dout, dh_in, da)


cdef inline void gru_fwd(int n, int H, int j0, int j1, const floating* bias, floating* gx, const floating* gh,
                         const floating* b_hn, const floating* h_prev, floating* hn, floating* h) noexcept nogil:
    """gx := r, z, n from gx + bias and gh = h_prev W_hhᵀ;  hn := gh_n + b_hn;  h := (1 − z) ⊙ n + z ⊙ h_prev."""
    if floating is float:
        rf_gru_fwd_f(n, H, j0, j1, bias, gx, gh, b_hn, h_prev, hn, h)
    else:
        rf_gru_fwd_d(n, H, j0, j1, bias, gx, gh, b_hn, h_prev, hn, h)


cdef inline void gru_bwd(int n, int H, int j0, int j1, floating* gates, const floating* hn,
                         const floating* h_prev, const floating* dout, const floating* dh_in, floating* dhn,
                         floating* dh_out) noexcept nogil:
    """gates := dA;  dhn := r ⊙ dA_n (the recurrent side's n block);  dh_out := dh ⊙ z."""
    if floating is float:
        rf_gru_bwd_f(n, H, j0, j1, gates, hn, h_prev, dout, dh_in, dhn, dh_out)
    else:
        rf_gru_bwd_d(n, H, j0, j1, gates, hn, h_prev, dout, dh_in, dhn, dh_out)


cdef inline void colsum(size_t rows, int n, const floating* a, size_t lda, floating* out) noexcept nogil:
    """out (n,) += Σ over the rows of a (rows, n), rows lda apart."""
    if floating is float:
        rf_colsum_f(rows, n, a, lda, out)
    else:
        rf_colsum_d(rows, n, a, lda, out)


cdef inline void colmax(size_t rows, int n, const floating* a, size_t lda, floating* out) noexcept nogil:
    """out (n,) := the maximum over the rows of a (rows >= 1, n), rows lda apart (a NaN, once met, stays)."""
    if floating is float:
        rf_colmax_f(rows, n, a, lda, out)
    else:
        rf_colmax_d(rows, n, a, lda, out)


cdef inline void colfirst(size_t rows, int n, const floating* a, size_t lda, const floating* m,
                          int64_t* first) noexcept nogil:
    """first (n,) := the first row of a (rows, n), rows lda apart, equal to m (n,) in each column, or the first
    NaN where m is NaN; −1 where none is."""
    if floating is float:
        rf_colfirst_f(rows, n, a, lda, m, first)
    else:
        rf_colfirst_d(rows, n, a, lda, m, first)


# ---- the recurrent product (rnnfast_recgemm.h) --------------------------------------------------------
cdef inline void pack_by_team(bint trans, int K, int N, const floating* w, floating* packed) noexcept nogil:
    """packed := panels of B (K, N), B = wᵀ (w is (N, K)) when trans, else B = w; the threads of the
    enclosing parallel region share the panels and all see the whole when it returns."""
    if floating is float:
        rf_pack_by_team_f(trans, K, N, w, packed)
    else:
        rf_pack_by_team_d(trans, K, N, w, packed)


cdef inline void recgemm(int m, int N, int K, const floating* a, int lda, const floating* packed, int kp,
                         floating* c, int ldc, bint accumulate) noexcept nogil:
    """c (m, N) := a (m, K) @ the packed B (+ c if accumulate), kp rows a panel."""
    if floating is float:
        rf_recgemm_f(m, N, K, a, lda, packed, kp, c, ldc, accumulate)
    else:
        rf_recgemm_d(m, N, K, a, lda, packed, kp, c, ldc, accumulate)


cdef inline void matvec(int N, int K, const floating* w, const floating* x, floating* a) noexcept nogil:
    """a (N,) += w (N, K) @ x (K,)."""
    if floating is float:
        rf_matvec_f(N, K, w, x, a)
    else:
        rf_matvec_d(N, K, w, x, a)


# ---- the weight-gradient GEMM (rnnfast_wgrad.h) ---------------------------------------------------------
cdef inline void wgrad(int M, int N, int K, const floating* a, int lda, const floating* b, int ldb, floating* c,
                       int ldc, floating* work) noexcept nogil:
    """c (M, N) += aᵀ b, a (K, M) and b (K, N) row-major, with one thread's workspace."""
    if floating is float:
        rf_wgrad_f(M, N, K, a, lda, b, ldb, c, ldc, work)
    else:
        rf_wgrad_d(M, N, K, a, lda, b, ldb, c, ldc, work)
