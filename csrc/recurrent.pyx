# cython: language_level=3
"""Forward and backpropagation-through-time kernels for Elman, LSTM and GRU layers (one direction, one layer).

Elman (G = 1):  h_t = φ(x_t W_ihᵀ + h_{t-1} W_hhᵀ + b),            φ ∈ {tanh, relu, sigmoid}
LSTM  (G = 4):  [i f g o] = [σ σ tanh σ](x_t W_ihᵀ + h_{t-1} W_hhᵀ + b),  gates in PyTorch's order
                c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t)
GRU   (G = 3):  [r z] = σ(x_t W_i{r,z}ᵀ + h_{t-1} W_h{r,z}ᵀ + b),   n = tanh(x_t W_inᵀ + b_in + r ⊙ (h_{t-1} W_hnᵀ + b_hn))
                h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}                     gates in PyTorch's order r, z, n
with b = b_ih + b_hh (GRU's n gate keeps b_hn inside r ⊙ (·), so its recurrent part is kept apart). BPTT sums
every path back through time; with the pre-activation gradients dA_t (T, B, G·H) kept for all steps, the
weight gradients are single GEMMs after the loop:
    dW_ih = Σ_t dA_tᵀ x_t,   dW_hh = Σ_t dA_tᵀ h_{t-1},   dx_t = dA_t W_ih;
db = Σ_t Σ_b dA_t is summed inside the loop, while each step's dA_t is still in cache. Inside the loop the
only recurrent term is  dh_{t-1} = dA_t W_hh  (GRU: dh ⊙ z + dA^h_t W_hh, where the recurrent gradient dA^h
differs from dA in the n block by the factor r). rnnfast.reference is the specification these implement.

Structure (oneDNN's and haste's):
  1. input projection A = X W_ihᵀ for all rows, as GEMMs over row blocks, one per thread;
  2. the time loop, with the batch split into contiguous chunks, one per thread: per step one recurrent
     GEMM of the chunk's rows and one fused pointwise pass (rnnfast_pointwise.h) that adds the bias and keeps
     what BPTT needs. When W_hh is too big for one core's cache, the threads split the hidden units instead
     and meet at a barrier once per step (_loop_team, rnnfast_team.h);
  3. backward: the time loop in reverse (pointwise pass, then dh_{t-1} = dA_t W_hh; with a big W_hh and
     batch, the pass by rows and the product by units), then the after-loop GEMMs, split across threads by
     output block: dx by BLAS (or inside the loop, step by step, with input_gemm), the weight gradients by
     rnnfast_wgrad.h where the CPU has AVX-512 (else BLAS).
Nothing is allocated and no Python runs inside the time loop; the caller owns every buffer but three that
backward allocates before it (each thread's bias sums, the after-loop block bounds, and each after-loop
thread's workspace for rnnfast_wgrad.h). BLAS must be held to one thread by the caller (rnnfast._threads does
it), since the threads here are OpenMP's.

Variable lengths: the packed layout (_plan.pxi), as cuDNN's and torch's PackedSequence: the batch sorted by
decreasing length, step t holds the batch_sizes[t] sequences still running, contiguous. Every array is
(rows, ·) with rows = Σ batch_sizes, so the input projection, dx and the weight gradients are GEMMs over the
real steps only (dW_hh reads h_{t-1} gathered beside each row), and each thread's block of the batch shrinks
as its sequences end. Without batch_sizes the layout is padded: T·B rows, B a step.

One file per concern, included here in order (the float/double branch of every C helper is written once, in
the fused wrappers of _fused.pxd; the GEMM in _blas.pxd):
  _plan.pxi      how the threads share the work: teams, the batch or hidden-unit split, block bounds;
  _products.pxi  the recurrent product of a step (packed micro-kernel or BLAS) and the input projection;
  _cells.pxi     each cell's step, forward beside backward: the one file a new cell adds to;
  _forward.pxi   the forward time loop and `forward`;
  _inference.pxi the forward that keeps nothing for BPTT (`forward_inference`: each step projects its own rows);
  _backward.pxi  the reverse time loop and `backward`;
  _wgrad.pxi     the after-loop weight gradients and dx;
  _step.pxi      the streaming step (`step`), and the small entry points (zeroing, test hooks);
  _jordan.pxi    the Jordan network (output fed back), forward, backward and step, on the pieces above;
  _linear.pxi    the per-timestep Linear's products (rnnfast.Linear), split by rows over the same threads;
  _loss.pxi      softmax cross-entropy, loss and gradient in one pass (rnnfast.cross_entropy);
  _pool.pxi      the pooled readouts' sum and max over each sequence's real steps, and their backward (Readout);
  _optim.pxi     Adam's update of a parameter in one pass, and Σ g² for clip_grad_norm_;
  _random.pxi    standard normal numbers, the same for every thread count (the estimators' input noise).
Python reaches all of it through rnnfast._kernels only.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport isfinite
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy, memset
cimport numpy as cnp

cnp.import_array()

from _blas cimport gemm
from _fused cimport (lstm_fwd, lstm_bwd, elman_fwd, elman_bwd, gru_fwd, gru_bwd, colsum, colmax, colfirst, pack_by_team,
                     recgemm, matvec, wgrad)
from _pointwise cimport (RF_TANH, RF_RELU, RF_SIGMOID, RF_NR_BYTES, rf_expf_array, rf_tanhf_array,
                         rf_sigmoidf_array, rf_wgrad_work_size, rf_wgrad_available, RF_HAVE_BARRIER, rf_barrier,
                         rf_barrier_init, rf_barrier_wait, rf_team_size, rf_thread_id, rf_set_isa_limit)

# Cell codes (rnnfast._cells.CELLS holds the same numbers; rnnfast._kernels checks they agree).
ELMAN_TANH = RF_TANH
ELMAN_RELU = RF_RELU
ELMAN_SIGMOID = RF_SIGMOID
cdef enum:
    _LSTM = 3
    _GRU = 4
LSTM = _LSTM
GRU = _GRU

include "_plan.pxi"
include "_products.pxi"
include "_cells.pxi"
include "_forward.pxi"
include "_inference.pxi"
include "_backward.pxi"
include "_wgrad.pxi"
include "_step.pxi"
include "_jordan.pxi"
include "_linear.pxi"
include "_loss.pxi"
include "_pool.pxi"
include "_optim.pxi"
include "_random.pxi"
