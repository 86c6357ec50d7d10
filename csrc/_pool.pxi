# The pooled readouts over each sequence's real steps t < T_b (rnnfast.Readout "mean", "max", "meanmax",
# "lastmeanmax"), and their backward:
#
#     s_bf = Σ_{t<T_b} out_{t,b,f}                     (the mean is s / T_b; summed in t's order, as numpy's sum)
#     y_bf = out_{t*,b,f},   t*_bf = the first t < T_b where out_{t,b,f} is largest (a NaN counts as largest,
#                                    as in numpy's argmax)
#     dout_{t,b,f} += g_bf for every t < T_b,   dout_{t*,b,f} += dy_bf
#
# numpy's argmax across the leading (time) axis runs one short inner loop per (b, f), and the masked copies
# that kept the padding out cost as much again; here each step is one pass over a row of F contiguous values.
# One thread: a training batch's call takes microseconds. Under no_grad at B = 250-1,000 the readout is 10-20%
# slower than numpy's max and sum over the whole batch (strided per-sequence rows), a small share of predict.


cdef _check_rows(const floating[:, :, :] seq):
    """The kernels read each (t, b) row of F values through a pointer, step t + 1's row ld = strides[0] /
    itemsize elements after step t's: the last axis must be contiguous, and steps a positive whole number of
    elements apart."""
    if seq.shape[2] > 1 and seq.strides[2] != sizeof(floating):
        raise ValueError("seq's last axis must be contiguous")
    if seq.shape[0] > 1 and (seq.strides[0] <= 0 or seq.strides[0] % sizeof(floating)):
        raise ValueError("seq's steps must lie a positive whole number of elements apart")


cdef inline bint _one_block(const floating[:, :, :] seq, const int64_t[::1] steps) noexcept nogil:
    """Whether every sequence has all T steps and each step's (B, F) block is contiguous."""
    cdef Py_ssize_t b
    if seq.strides[1] != seq.shape[2] * <Py_ssize_t> sizeof(floating):
        return False
    for b in range(seq.shape[1]):
        if steps[b] != seq.shape[0]:
            return False
    return True


cdef _check_steps(const int64_t[::1] steps, Py_ssize_t B, Py_ssize_t T):
    """Each sequence's real steps lie in [1, T]."""
    cdef Py_ssize_t b
    if steps.shape[0] != B:
        raise ValueError(f"steps has {steps.shape[0]} entries for a batch of {B}")
    for b in range(B):
        if steps[b] < 1 or steps[b] > T:
            raise ValueError(f"steps[{b}] = {steps[b]} is outside [1, {T}]")


def sum_over_time(const floating[:, :, :] seq,       # IN  (T, B, F) h_t, rows of F contiguous
                  const int64_t[::1] steps,           # IN  (B,) T_b in [1, T]
                  floating[:, ::1] total):            # OUT (B, F) Σ_{t<T_b} h_t
    cdef Py_ssize_t T = seq.shape[0], B = seq.shape[1], F = seq.shape[2], b
    cdef size_t ld = seq.strides[0] // sizeof(floating)
    if total.shape[0] != B or total.shape[1] != F:
        raise ValueError(f"total must have shape ({B}, {F}), got ({total.shape[0]}, {total.shape[1]})")
    _check_steps(steps, B, T)
    _check_rows(seq)
    if F == 0:
        return
    with nogil:
        if _one_block(seq, steps):              # every sequence all T steps: one sweep over rows of B·F
            memset(&total[0, 0], 0, B * F * sizeof(floating))
            colsum(T, <int> (B * F), &seq[0, 0, 0], ld, &total[0, 0])       # rnnfast_pointwise.h
        else:
            for b in range(B):
                memset(&total[b, 0], 0, F * sizeof(floating))
                colsum(steps[b], <int> F, &seq[0, b, 0], ld, &total[b, 0])


def spread_over_time(const floating[:, :] g,          # IN  (B, F) added at each real step
                     const int64_t[::1] steps,        # IN  (B,) T_b in [1, T]
                     floating[:, :, :] dout):         # IN/OUT (T, B, F), any strides
    cdef Py_ssize_t T = dout.shape[0], B = dout.shape[1], F = dout.shape[2], b, t, f
    if g.shape[0] != B or g.shape[1] != F:
        raise ValueError(f"g must have shape ({B}, {F}), got ({g.shape[0]}, {g.shape[1]})")
    _check_steps(steps, B, T)
    with nogil:
        for b in range(B):
            for t in range(steps[b]):
                for f in range(F):
                    dout[t, b, f] += g[b, f]


def max_over_time(const floating[:, :, :] seq,       # IN  (T, B, F) h_t, rows of F contiguous (a batch-first view too)
                  const int64_t[::1] steps,           # IN  (B,) T_b in [1, T]: each sequence's real steps
                  floating[:, ::1] y,                 # OUT (B, F) the maxima
                  int64_t[:, ::1] argmax=None):       # OUT (B, F) the first step attaining each, or None
    """Two passes per sequence: the maxima (rnnfast_pointwise.h's rf_colmax, vectorised; a NaN sticks once
    seen), then, for backward only, the first step equal to each, or the first NaN where it is (rf_colfirst,
    vectorised too)."""
    cdef Py_ssize_t T = seq.shape[0], B = seq.shape[1], F = seq.shape[2], b
    cdef size_t ld = seq.strides[0] // sizeof(floating)
    cdef bint first = argmax is not None
    if y.shape[0] != B or y.shape[1] != F or (first and (argmax.shape[0] != B or argmax.shape[1] != F)):
        raise ValueError(f"y and argmax must have shape ({B}, {F})")
    _check_steps(steps, B, T)
    _check_rows(seq)
    if F == 0:
        return
    with nogil:
        if _one_block(seq, steps):              # every sequence all T steps: one sweep over rows of B·F each
            colmax(T, <int> (B * F), &seq[0, 0, 0], ld, &y[0, 0])               # rnnfast_pointwise.h
            if first:
                colfirst(T, <int> (B * F), &seq[0, 0, 0], ld, &y[0, 0], &argmax[0, 0])
        else:
            for b in range(B):
                colmax(steps[b], <int> F, &seq[0, b, 0], ld, &y[b, 0])
                if first:
                    colfirst(steps[b], <int> F, &seq[0, b, 0], ld, &y[b, 0], &argmax[b, 0])


def max_over_time_backward(const int64_t[:, ::1] argmax,   # IN  (B, F) from max_over_time
                           const floating[:, :] dy,         # IN  (B, F) ∂L/∂y
                           floating[:, :, :] dout):         # IN/OUT (T, B, F) dy added at each maximum's step
    cdef Py_ssize_t T = dout.shape[0], B = dout.shape[1], F = dout.shape[2], b, f, t
    if argmax.shape[0] != B or argmax.shape[1] != F or dy.shape[0] != B or dy.shape[1] != F:
        raise ValueError(f"argmax ({argmax.shape[0]}, {argmax.shape[1]}), dy ({dy.shape[0]}, {dy.shape[1]}) and "
                         f"dout ({T}, {B}, {F}) do not fit")
    for b in range(B):
        for f in range(F):
            if argmax[b, f] < 0 or argmax[b, f] >= T:
                raise ValueError(f"argmax[{b}, {f}] = {argmax[b, f]} is outside [0, {T})")
    with nogil:
        for b in range(B):
            for f in range(F):
                t = argmax[b, f]
                dout[t, b, f] += dy[b, f]
