# cython: language_level=3
"""Declarations of the C helpers: fused pointwise passes (rnnfast_pointwise.h), the packed
recurrent GEMM (rnnfast_recgemm.h), the weight-gradient GEMM (rnnfast_wgrad.h) and the team barrier for the
hidden-unit split (rnnfast_team.h). The kernels call the _f/_d pairs through the fused wrappers of _fused.pxd."""

from libc.stdint cimport int64_t

cdef extern from "rnnfast_pointwise.h" nogil:
    enum:
        RF_TANH
        RF_RELU
        RF_SIGMOID
    void rf_lstm_fwd_f(int n, int H, int j0, int j1, const float* bias, float* gates, const float* c_prev, float* c, float* tanh_c, float* h)
    void rf_lstm_fwd_d(int n, int H, int j0, int j1, const double* bias, double* gates, const double* c_prev, double* c, double* tanh_c, double* h)
    void rf_lstm_bwd_f(int n, int H, int j0, int j1, float* gates, const float* c_prev, const float* tanh_c,
                       const float* dout, const float* dh_in, const float* dc_in, float* dc_out)
    void rf_lstm_bwd_d(int n, int H, int j0, int j1, double* gates, const double* c_prev, const double* tanh_c,
                       const double* dout, const double* dh_in, const double* dc_in, double* dc_out)
    void rf_elman_fwd_f(int n, int H, int j0, int j1, const float* bias, int act, const float* a, float* h)
    void rf_elman_fwd_d(int n, int H, int j0, int j1, const double* bias, int act, const double* a, double* h)
    void rf_elman_bwd_f(int n, int H, int j0, int j1, int act, const float* h, const float* dout, const float* dh_in, float* da)
    void rf_elman_bwd_d(int n, int H, int j0, int j1, int act, const double* h, const double* dout, const double* dh_in, double* da)
    void rf_gru_fwd_f(int n, int H, int j0, int j1, const float* bias, float* gx, const float* gh, const float* b_hn, const float* h_prev,
                      float* hn, float* h)
    void rf_gru_fwd_d(int n, int H, int j0, int j1, const double* bias, double* gx, const double* gh, const double* b_hn, const double* h_prev,
                      double* hn, double* h)
    void rf_gru_bwd_f(int n, int H, int j0, int j1, float* gates, const float* hn, const float* h_prev, const float* dout,
                      const float* dh_in, float* dhn, float* dh_out)
    void rf_gru_bwd_d(int n, int H, int j0, int j1, double* gates, const double* hn, const double* h_prev, const double* dout,
                      const double* dh_in, double* dhn, double* dh_out)
    void rf_colsum_f(size_t rows, int n, const float* a, size_t lda, float* out)
    void rf_colsum_d(size_t rows, int n, const double* a, size_t lda, double* out)
    void rf_colmax_f(size_t rows, int n, const float* a, size_t lda, float* out)
    void rf_colmax_d(size_t rows, int n, const double* a, size_t lda, double* out)
    void rf_colfirst_f(size_t rows, int n, const float* a, size_t lda, const float* m, int64_t* first)
    void rf_colfirst_d(size_t rows, int n, const double* a, size_t lda, const double* m, int64_t* first)
    void rf_expf_array(int n, const float* x, float* y)
    void rf_tanhf_array(int n, const float* x, float* y)
    void rf_sigmoidf_array(int n, const float* x, float* y)


cdef extern from "rnnfast_recgemm.h" nogil:
    enum:
        RF_NR_BYTES             # packed panel width in bytes
    void rf_pack_by_team_f(int trans, int K, int N, const float* W, float* P)
    void rf_pack_by_team_d(int trans, int K, int N, const double* W, double* P)
    void rf_recgemm_f(int m, int N, int K, const float* A, int lda, const float* P, int kp, float* C, int ldc,
                      int accumulate)
    void rf_recgemm_d(int m, int N, int K, const double* A, int lda, const double* P, int kp, double* C, int ldc,
                      int accumulate)
    void rf_matvec_f(int N, int K, const float* W, const float* x, float* a)
    void rf_matvec_d(int N, int K, const double* W, const double* x, double* a)
    int rf_set_isa_limit(int level)


cdef extern from "rnnfast_wgrad.h" nogil:
    size_t rf_wgrad_work_size(size_t itemsize)
    int rf_wgrad_available()
    void rf_wgrad_f(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                    float* work)
    void rf_wgrad_d(int M, int N, int K, const double* A, int lda, const double* B, int ldb, double* C, int ldc,
                    double* work)


cdef extern from "rnnfast_team.h" nogil:
    enum:
        RF_HAVE_BARRIER
    ctypedef struct rf_barrier:
        pass
    int rf_team_size()
    int rf_thread_id()
    void rf_barrier_init(rf_barrier* b)
    void rf_barrier_wait(rf_barrier* b, int n)
