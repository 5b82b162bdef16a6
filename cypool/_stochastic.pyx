# cython: language_level=3
"""Stochastic pooling (Zeiler & Fergus 2013): forward and backward kernels.

Each window's activations count by their positive part ``a+ = max(a, 0)``
(NaN kept, so it propagates).  With ``S = sum(a+)`` and ``Q = sum(a+**2)``,
both accumulated in float64 in scan order:

- training: given one uniform ``u`` in ``[0, 1)`` per output, take the first
  element in scan order whose running sum of ``a+`` exceeds ``u * S`` (so
  element ``i`` is taken with probability ``a_i+ / S``) or stops being finite
  (the first NaN or +inf, or where the sum overflows); output its ``a+`` and
  its plane offset.  With ``S = 0`` no element qualifies: output 0 and the
  window's first in-bounds element.
- eval: output ``Q / S`` (the expectation of the training output), 0 when
  ``S = 0``.

Padding is never read.  Windows come from the max-pooling tables
(dilation 1).  Layouts as in ``_max.pyx``: channels-first
``(planes, D, H, W)``, channels-last ``(N, D, H, W, C)``; the uniforms come
in the output's layout.
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdint cimport int64_t
from libc.string cimport memset

from cypool._dtypes cimport real_t
from cypool._geometry cimport Axis
from cypool._kernel_common cimport Tables, fill_axes, free_tables, make_tables

cnp.import_array()

cdef enum:
    # Channels of one channels-last backward job (see _max.pyx).
    CHANNEL_BLOCK = 64


cdef struct Window:
    # first in-bounds position and number of taps along depth, height, width
    Py_ssize_t first[3]
    Py_ssize_t count[3]


cdef inline double _positive(real_t a) noexcept nogil:
    """``max(a, 0)`` that keeps NaN."""
    return 0.0 if a <= 0 else <double> a


cdef inline void _window(const Tables* t, const Axis* ax, Py_ssize_t o,
                         Window* w) noexcept nogil:
    """The window of flat output position ``o`` inside one plane."""
    cdef Py_ssize_t ow = o % ax[2].out_size
    cdef Py_ssize_t rest = o // ax[2].out_size
    cdef Py_ssize_t oh = rest % ax[1].out_size
    cdef Py_ssize_t od = rest // ax[1].out_size
    w.first[0] = t.first[t.offset[0] + od]
    w.count[0] = t.count[t.offset[0] + od]
    w.first[1] = t.first[t.offset[1] + oh]
    w.count[1] = t.count[t.offset[1] + oh]
    w.first[2] = t.first[t.offset[2] + ow]
    w.count[2] = t.count[t.offset[2] + ow]


cdef inline void _sums(const real_t* x, Py_ssize_t step, const Axis* ax, const Window* w,
                       double* total, double* squares) noexcept nogil:
    """``S`` and ``Q`` of one window; ``x`` is the plane's first element and
    ``step`` the distance between spatial neighbours (1, or C)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t a, b, e
    cdef double v, s = 0, q = 0
    for a in range(w.first[0], w.first[0] + w.count[0]):
        for b in range(w.first[1], w.first[1] + w.count[1]):
            for e in range(w.first[2], w.first[2] + w.count[2]):
                v = _positive(x[((a * H + b) * W + e) * step])
                s = s + v
                q = q + v * v
    total[0] = s
    squares[0] = q


cdef inline void _sample(const real_t* x, Py_ssize_t step, const Axis* ax, const Window* w,
                         double u, real_t* value, int64_t* index) noexcept nogil:
    """The training output of one window (see the module docstring)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t a, b, e, pos
    cdef double total, squares, threshold, v, running = 0
    _sums(x, step, ax, w, &total, &squares)
    threshold = u * total
    for a in range(w.first[0], w.first[0] + w.count[0]):
        for b in range(w.first[1], w.first[1] + w.count[1]):
            for e in range(w.first[2], w.first[2] + w.count[2]):
                pos = (a * H + b) * W + e
                v = _positive(x[pos * step])
                running = running + v
                if running > threshold or not (running < INFINITY):
                    value[0] = <real_t> v
                    index[0] = pos
                    return
    value[0] = 0
    index[0] = (w.first[0] * H + w.first[1]) * W + w.first[2]


cdef inline void _pool_one(const real_t* x, Py_ssize_t step, const Axis* ax, const Window* w,
                           bint training, double u, real_t* value,
                           int64_t* index) noexcept nogil:
    cdef double total, squares
    cdef int64_t unused
    if training:
        _sample(x, step, ax, w, u, value, index if index != NULL else &unused)
    else:
        _sums(x, step, ax, w, &total, &squares)
        value[0] = <real_t> (squares / total) if total != 0 else 0


# ---------------------------------------------------------------- forward

cdef void _forward_plane(const real_t* x, const double* u, real_t* out, int64_t* ind,
                         const Axis* ax, const Tables* t, bint training) noexcept nogil:
    """One channels-first plane."""
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t o
    cdef Window w
    for o in range(out_plane):
        _window(t, ax, o, &w)
        _pool_one(x, 1, ax, &w, training, u[o] if training else 0, &out[o],
                  &ind[o] if ind != NULL else NULL)


cdef void _forward_pixel_cl(const real_t* x, const double* u, real_t* out, int64_t* ind,
                            Py_ssize_t pixel, Py_ssize_t channels, const Axis* ax,
                            const Tables* t, bint training) noexcept nogil:
    """One channels-last output pixel, all channels."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t n = pixel // out_plane
    cdef Py_ssize_t c, at
    cdef Window w
    _window(t, ax, pixel % out_plane, &w)
    for c in range(channels):
        at = pixel * channels + c
        _pool_one(x + n * in_plane * channels + c, channels, ax, &w, training,
                  u[at] if training else 0, &out[at], &ind[at] if ind != NULL else NULL)


cdef void _forward(const real_t* x, const double* u, real_t* out, int64_t* ind,
                   Py_ssize_t lead, Py_ssize_t channels, bint channels_last, const Axis* ax,
                   const Tables* t, bint training, int nthreads) noexcept nogil:
    """``lead`` is planes (channels-first) or batch (channels-last); jobs are
    planes or output pixels."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t p
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='static', num_threads=nthreads):
                _forward_plane(x + p * in_plane, u + p * out_plane if training else NULL,
                               out + p * out_plane, ind + p * out_plane if ind != NULL else NULL,
                               ax, t, training)
        else:
            for p in range(lead):
                _forward_plane(x + p * in_plane, u + p * out_plane if training else NULL,
                               out + p * out_plane, ind + p * out_plane if ind != NULL else NULL,
                               ax, t, training)
    else:
        if nthreads > 1:
            for p in prange(lead * out_plane, schedule='static', num_threads=nthreads):
                _forward_pixel_cl(x, u, out, ind, p, channels, ax, t, training)
        else:
            for p in range(lead * out_plane):
                _forward_pixel_cl(x, u, out, ind, p, channels, ax, t, training)


def stochastic_pool_forward(cnp.ndarray x, cnp.ndarray uniforms, cnp.ndarray out,
                            cnp.ndarray indices, tuple geometry, bint training,
                            bint channels_last, int nthreads):
    """Fill ``out`` (and ``indices`` unless None) from ``x``.

    x: IN, float32/float64, C-contiguous ``(planes, D, H, W)`` or ``(N, D, H, W, C)``.
    uniforms: IN, float64 shaped like ``out`` (training), or None (eval).
    out: OUT, same layout with the output sizes, same dtype as ``x``.
    indices: OUT, int64 shaped like ``out``, or None (training only).
    """
    cdef Axis ax[3]
    cdef Tables t
    fill_axes(ax, geometry)
    cdef Py_ssize_t lead = x.shape[0]
    cdef Py_ssize_t channels = x.shape[4] if channels_last else 1
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef const double* up = <const double*> cnp.PyArray_DATA(uniforms) if training else NULL
    cdef int64_t* ip = <int64_t*> cnp.PyArray_DATA(indices) if indices is not None else NULL
    cdef int typenum = cnp.PyArray_TYPE(x)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"stochastic pooling kernel has no loop for dtype {x.dtype}")
    if make_tables(ax, &t, False) != 0:
        raise MemoryError("cypool: out of memory for window tables")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _forward[float](<float*> xp, up, <float*> op, ip, lead, channels, channels_last, ax, &t, training, nthreads)
        else:
            _forward[double](<double*> xp, up, <double*> op, ip, lead, channels, channels_last, ax, &t, training, nthreads)
        free_tables(&t)


# --------------------------------------------------------------- backward

cdef void _route_plane(const real_t* grad_out, const int64_t* ind, const real_t* x,
                       real_t* grad_in, Py_ssize_t out_plane, Py_ssize_t in_plane) noexcept nogil:
    """Training: add each gradient at its sampled element (skipping elements
    that are not positive when ``x`` is given)."""
    cdef Py_ssize_t o, i
    memset(grad_in, 0, in_plane * sizeof(real_t))
    for o in range(out_plane):
        i = ind[o]
        if x == NULL or not (x[i] <= 0):
            grad_in[i] += grad_out[o]


cdef void _route_block_cl(const real_t* grad_out, const int64_t* ind, const real_t* x,
                          real_t* grad_in, Py_ssize_t job, Py_ssize_t blocks,
                          Py_ssize_t channels, Py_ssize_t out_plane,
                          Py_ssize_t in_plane) noexcept nogil:
    """Training, channels ``[c0, c1)`` of one batch element, channels-last."""
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t c1 = c0 + CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels
    cdef Py_ssize_t s, c, at
    cdef real_t* gi = grad_in + n * in_plane * channels
    cdef const real_t* xi = x + n * in_plane * channels if x != NULL else NULL
    cdef const real_t* go = grad_out + n * out_plane * channels
    cdef const int64_t* ii = ind + n * out_plane * channels
    for s in range(in_plane):
        for c in range(c0, c1):
            gi[s * channels + c] = 0
    for s in range(out_plane):
        for c in range(c0, c1):
            at = ii[s * channels + c] * channels + c
            if xi == NULL or not (xi[at] <= 0):
                gi[at] += go[s * channels + c]


cdef void _spread(const real_t* x, real_t* grad_in, Py_ssize_t step, const Axis* ax,
                  const Window* w, double grad) noexcept nogil:
    """Eval: add ``grad * d(Q/S)/da_i = grad * (2 a_i S - Q) / S**2`` to every
    element with ``a_i > 0`` (0 where ``a_i <= 0``, the clamped side)."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t a, b, e, pos
    cdef double total, squares, v, scale
    _sums(x, step, ax, w, &total, &squares)
    if total == 0:
        return
    scale = grad / (total * total)
    for a in range(w.first[0], w.first[0] + w.count[0]):
        for b in range(w.first[1], w.first[1] + w.count[1]):
            for e in range(w.first[2], w.first[2] + w.count[2]):
                pos = ((a * H + b) * W + e) * step
                v = _positive(x[pos])
                if v != 0:
                    grad_in[pos] += <real_t> ((2 * v * total - squares) * scale)


cdef void _eval_plane(const real_t* grad_out, const real_t* x, real_t* grad_in,
                      const Axis* ax, const Tables* t) noexcept nogil:
    """Eval backward of one channels-first plane."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t o
    cdef Window w
    memset(grad_in, 0, in_plane * sizeof(real_t))
    for o in range(out_plane):
        _window(t, ax, o, &w)
        _spread(x, grad_in, 1, ax, &w, grad_out[o])


cdef void _eval_block_cl(const real_t* grad_out, const real_t* x, real_t* grad_in,
                         Py_ssize_t job, Py_ssize_t blocks, Py_ssize_t channels,
                         const Axis* ax, const Tables* t) noexcept nogil:
    """Eval backward of channels ``[c0, c1)`` of one batch element, channels-last;
    windows in the same order as channels-first, so the layouts agree."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t c1 = c0 + CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels
    cdef const real_t* xi = x + n * in_plane * channels
    cdef real_t* gi = grad_in + n * in_plane * channels
    cdef const real_t* go = grad_out + n * out_plane * channels
    cdef Py_ssize_t s, c, o
    cdef Window w
    for s in range(in_plane):
        for c in range(c0, c1):
            gi[s * channels + c] = 0
    for o in range(out_plane):
        _window(t, ax, o, &w)
        for c in range(c0, c1):
            _spread(xi + c, gi + c, channels, ax, &w, go[o * channels + c])


cdef void _backward_eval(const real_t* grad_out, const real_t* x, real_t* grad_in,
                         Py_ssize_t lead, Py_ssize_t channels, bint channels_last,
                         const Axis* ax, const Tables* t, int nthreads) noexcept nogil:
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    cdef Py_ssize_t p
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='static', num_threads=nthreads):
                _eval_plane(grad_out + p * out_plane, x + p * in_plane, grad_in + p * in_plane,
                            ax, t)
        else:
            for p in range(lead):
                _eval_plane(grad_out + p * out_plane, x + p * in_plane, grad_in + p * in_plane,
                            ax, t)
    else:
        if nthreads > 1:
            for p in prange(lead * blocks, schedule='static', num_threads=nthreads):
                _eval_block_cl(grad_out, x, grad_in, p, blocks, channels, ax, t)
        else:
            for p in range(lead * blocks):
                _eval_block_cl(grad_out, x, grad_in, p, blocks, channels, ax, t)


cdef void _backward_training(const real_t* grad_out, const int64_t* ind, const real_t* x,
                             real_t* grad_in, Py_ssize_t lead, Py_ssize_t channels,
                             bint channels_last, Py_ssize_t out_plane, Py_ssize_t in_plane,
                             int nthreads) noexcept nogil:
    cdef Py_ssize_t p, jobs
    cdef Py_ssize_t blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='static', num_threads=nthreads):
                _route_plane(grad_out + p * out_plane, ind + p * out_plane,
                             x + p * in_plane if x != NULL else NULL,
                             grad_in + p * in_plane, out_plane, in_plane)
        else:
            for p in range(lead):
                _route_plane(grad_out + p * out_plane, ind + p * out_plane,
                             x + p * in_plane if x != NULL else NULL,
                             grad_in + p * in_plane, out_plane, in_plane)
    else:
        jobs = lead * blocks
        if nthreads > 1:
            for p in prange(jobs, schedule='static', num_threads=nthreads):
                _route_block_cl(grad_out, ind, x, grad_in, p, blocks, channels, out_plane, in_plane)
        else:
            for p in range(jobs):
                _route_block_cl(grad_out, ind, x, grad_in, p, blocks, channels, out_plane, in_plane)


def stochastic_pool_backward(cnp.ndarray grad_out, cnp.ndarray indices, cnp.ndarray x,
                             cnp.ndarray grad_in, tuple geometry, bint training,
                             bint channels_last, int nthreads):
    """Fill ``grad_in``.

    grad_out: IN, float32/float64 C-contiguous, the pooled shape in the kernels' layout.
    indices: IN, int64 shaped like ``grad_out``, every entry inside the input plane
        (training), or None (eval).
    x: IN, the pooled input, same dtype and shape as ``grad_in``; required in eval,
        optional in training (then gradients at elements ``<= 0`` are dropped).
    grad_in: OUT, ``(planes, D, H, W)`` or ``(N, D, H, W, C)``.
    """
    cdef Axis ax[3]
    cdef Tables t
    fill_axes(ax, geometry)
    cdef Py_ssize_t lead = grad_in.shape[0]
    cdef Py_ssize_t channels = grad_in.shape[4] if channels_last else 1
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef void* xp = cnp.PyArray_DATA(x) if x is not None else NULL
    cdef const int64_t* ip = <const int64_t*> cnp.PyArray_DATA(indices) if training else NULL
    cdef int typenum = cnp.PyArray_TYPE(grad_out)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError(f"stochastic pooling backward has no loop for dtype {grad_out.dtype}")
    if training:
        with nogil:
            if typenum == cnp.NPY_FLOAT32:
                _backward_training[float](<float*> gop, ip, <float*> xp, <float*> gip, lead, channels, channels_last, out_plane, in_plane, nthreads)
            else:
                _backward_training[double](<double*> gop, ip, <double*> xp, <double*> gip, lead, channels, channels_last, out_plane, in_plane, nthreads)
        return
    if make_tables(ax, &t, False) != 0:
        raise MemoryError("cypool: out of memory for window tables")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _backward_eval[float](<float*> gop, <float*> xp, <float*> gip, lead, channels, channels_last, ax, &t, nthreads)
        else:
            _backward_eval[double](<double*> gop, <double*> xp, <double*> gip, lead, channels, channels_last, ax, &t, nthreads)
        free_tables(&t)
