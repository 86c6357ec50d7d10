# The max over time of the pooled readouts (rnnfast.Readout "max", "meanmax", "lastmeanmax"), and its backward:
#
#     y_bf = out_{t*,b,f},   t*_bf = the first t < T_b where out_{t,b,f} is largest (a NaN counts as largest,
#                                    as in numpy's argmax)
#     dout_{t*,b,f} += dy_bf
#
# numpy's argmax across the leading (time) axis runs one short inner loop per (b, f) and cost more than the
# rest of the readout; here each step is one pass over a row of F contiguous values. One thread: a training
# batch's call takes microseconds, and predict's chunks are as fast as numpy's max.


def max_over_time(const floating[:, :, :] seq,       # IN  (T, B, F) h_t, rows of F contiguous (a batch-first view too)
                  const int64_t[::1] steps,           # IN  (B,) T_b in [1, T]: each sequence's real steps
                  floating[:, ::1] y,                 # OUT (B, F) the maxima
                  int64_t[:, ::1] argmax=None):       # OUT (B, F) the first step attaining each, or None
    """Two passes per sequence: the maxima, branch-free over each contiguous row (it vectorises; a NaN
    sticks once seen), then, for backward only, the first step equal to each (or NaN where it is)."""
    cdef Py_ssize_t T = seq.shape[0], B = seq.shape[1], F = seq.shape[2], b, t, f
    cdef const floating* row
    cdef floating* peak
    cdef int64_t* first
    cdef floating v, m
    if (steps.shape[0] != B or y.shape[0] != B or y.shape[1] != F
            or (argmax is not None and (argmax.shape[0] != B or argmax.shape[1] != F))):
        raise ValueError(f"seq ({T}, {B}, {F}), steps ({steps.shape[0]},), y ({y.shape[0]}, {y.shape[1]}) and "
                         f"argmax do not fit")
    for b in range(B):
        if steps[b] < 1 or steps[b] > T:
            raise ValueError(f"steps[{b}] = {steps[b]} is outside [1, {T}]")
    if F == 0:
        return
    if seq.strides[2] != sizeof(floating):
        raise ValueError("seq's last axis must be contiguous")
    with nogil:
        for b in range(B):
            peak = &y[b, 0]
            row = &seq[0, b, 0]
            for f in range(F):
                peak[f] = row[f]
            for t in range(1, steps[b]):
                row = &seq[t, b, 0]
                for f in range(F):
                    v = row[f]
                    m = peak[f]
                    peak[f] = v if (v > m) | (v != v) else m
            if argmax is None:
                continue
            first = &argmax[b, 0]
            for f in range(F):
                first[f] = -1
            for t in range(steps[b]):
                row = &seq[t, b, 0]
                for f in range(F):
                    v = row[f]
                    m = peak[f]
                    if first[f] < 0 and (v == m or (v != v and m != m)):
                        first[f] = t


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
