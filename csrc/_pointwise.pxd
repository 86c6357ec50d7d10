# cython: language_level=3
"""Declarations of the fused pointwise passes written in C (see rnnfast_pointwise.h for the math)."""

cdef extern from "rnnfast_pointwise.h" nogil:
    enum:
        RF_TANH
        RF_RELU
        RF_SIGMOID
    void rf_lstm_fwd_f(int n, int H, float* gates, const float* c_prev, float* c, float* tanh_c, float* h)
    void rf_lstm_fwd_d(int n, int H, double* gates, const double* c_prev, double* c, double* tanh_c, double* h)
    void rf_lstm_bwd_f(int n, int H, float* gates, const float* c_prev, const float* tanh_c,
                       const float* dout, const float* dh_in, const float* dc_in, float* dc_out)
    void rf_lstm_bwd_d(int n, int H, double* gates, const double* c_prev, const double* tanh_c,
                       const double* dout, const double* dh_in, const double* dc_in, double* dc_out)
    void rf_elman_fwd_f(int n, int H, int act, float* a, float* h)
    void rf_elman_fwd_d(int n, int H, int act, double* a, double* h)
    void rf_elman_bwd_f(int n, int H, int act, const float* h, const float* dout, const float* dh_in, float* da)
    void rf_elman_bwd_d(int n, int H, int act, const double* h, const double* dout, const double* dh_in, double* da)
    void rf_expf_array(int n, const float* x, float* y)
    void rf_tanhf_array(int n, const float* x, float* y)
    void rf_sigmoidf_array(int n, const float* x, float* y)
