# cython: language_level=3
"""Power-average (LP) pooling kernels, forward and backward.

Layouts as in ``_max.pyx``.  Windows are average pooling's without padding
(``_kernel_common.make_tables``).  PyTorch defines ``lp_poolNd`` as
``(avg_pool(x**p) * K) ** (1/p)`` with ``K`` the kernel's element count;
these kernels compute exactly that per window (so a ceil-mode window with
``n < K`` elements in bounds gives ``(sum * K / n) ** (1/p)``), with every
power taken as PyTorch's ``pow`` takes it (see ``_raise``).  ``p = inf`` is
the maximum of ``|x|`` with max pooling's rules.

Backward follows PyTorch's autograd through that formula: a window with
``q = sum/n`` contributes ``g * (1/p) * (q*K)**(1/p - 1) * K / n`` to each of
its elements (0 when ``q == 0``), and each element's total ``G`` is then
multiplied by ``p * x**(p-1)`` -- except that ``G == 0`` stays 0 (PyTorch
gives NaN there from ``0 * inf`` when ``x`` is 0 with ``p < 1`` or +-inf).
For ``p = inf`` the gradient goes to the window's maximum of ``|x|``, times
``sign(x)``.
"""

cimport numpy as cnp
from cython.parallel cimport prange
from libc.math cimport INFINITY, pow, powf, sqrt, sqrtf
from libc.string cimport memset

from cypool._dtypes cimport beats, real_t
from cypool._geometry cimport Axis
from cypool._kernel_common cimport Tables, fill_axes, free_tables, make_tables

cnp.import_array()

cdef enum:
    # Channels of one channels-last backward job (see _max.pyx).
    CHANNEL_BLOCK = 64

cdef enum PowerKind:
    POWER_ZERO
    POWER_ONE
    POWER_SQUARE
    POWER_CUBE
    POWER_SQRT
    POWER_RSQRT
    POWER_RECIPROCAL
    POWER_RECIPROCAL_SQUARE
    POWER_GENERIC


cdef struct Power:
    PowerKind kind
    double exponent


cdef struct Norm:
    bint is_inf
    double p
    Power forward          # x ** p
    Power root             # z ** (1/p)
    Power root_slope       # z ** (1/p - 1)
    Power slope            # x ** (p - 1)
    double kernel_numel    # K


cdef Power _power(double exponent) noexcept nogil:
    """How PyTorch's ``pow(tensor, scalar)`` computes this exponent."""
    cdef Power power
    power.exponent = exponent
    if exponent == 0:
        power.kind = POWER_ZERO
    elif exponent == 1:
        power.kind = POWER_ONE
    elif exponent == 2:
        power.kind = POWER_SQUARE
    elif exponent == 3:
        power.kind = POWER_CUBE
    elif exponent == 0.5:
        power.kind = POWER_SQRT
    elif exponent == -0.5:
        power.kind = POWER_RSQRT
    elif exponent == -1:
        power.kind = POWER_RECIPROCAL
    elif exponent == -2:
        power.kind = POWER_RECIPROCAL_SQUARE
    else:
        power.kind = POWER_GENERIC
    return power


cdef inline real_t _raise(real_t x, const Power* power) noexcept nogil:
    """``x ** exponent`` with PyTorch's special cases (they differ from C's
    ``pow`` at -0 and -inf, e.g. ``sqrt(-inf)`` is NaN, ``pow(-inf, 0.5)`` inf)."""
    if power.kind == POWER_ONE:
        return x
    if power.kind == POWER_SQUARE:
        return x * x
    if power.kind == POWER_ZERO:
        return 1
    if power.kind == POWER_CUBE:
        return x * x * x
    if power.kind == POWER_SQRT:
        return _sqrt(x)
    if power.kind == POWER_RSQRT:
        return 1 / _sqrt(x)
    if power.kind == POWER_RECIPROCAL:
        return 1 / x
    if power.kind == POWER_RECIPROCAL_SQUARE:
        return 1 / (x * x)
    if real_t is float:
        return powf(x, <float> power.exponent)  # float32 stays in float, as in PyTorch
    return pow(x, power.exponent)


cdef inline real_t _sqrt(real_t x) noexcept nogil:
    if real_t is float:
        return sqrtf(x)
    return sqrt(x)


cdef inline real_t _sign(real_t x) noexcept nogil:
    """PyTorch's ``sgn``: 0 for 0 and for NaN."""
    return (x > 0) - (x < 0)


cdef inline real_t _mean_power(real_t total, Py_ssize_t count) noexcept nogil:
    """``avg_pool(x**p)`` of a window: its power sum over its in-bounds count."""
    return total / <real_t> count


cdef inline real_t _window_value(real_t total, Py_ssize_t count, const Norm* norm) noexcept nogil:
    """PyTorch's ``(sign(q) * relu(|q|) * K) ** (1/p)`` with ``q = total / count``."""
    cdef real_t q = _mean_power(total, count)
    if q == 0:
        q = 0  # sign(q) * relu(|q|) has no negative zero
    return _raise(q * <real_t> norm.kernel_numel, &norm.root)


cdef inline real_t _window_slope(real_t grad, real_t total, Py_ssize_t count,
                                 const Norm* norm) noexcept nogil:
    """Autograd of :func:`_window_value` down to each window element's ``x**p``:
    ``((g * (1/p) * z**(1/p - 1)) * K) / n``, 0 where ``q == 0``."""
    cdef real_t q = _mean_power(total, count)
    cdef real_t k = <real_t> norm.kernel_numel
    if q == 0:
        return 0
    return (grad * (<real_t> (1 / norm.p) * _raise(q * k, &norm.root_slope)) * k) / <real_t> count


cdef inline real_t _element_slope(real_t accumulated, real_t x, const Norm* norm) noexcept nogil:
    """Autograd of ``x**p``: ``G * (p * x**(p-1))``; a zero ``G`` stays 0."""
    if accumulated == 0:
        return 0
    return accumulated * (<real_t> norm.p * _raise(x, &norm.slope))


# ---------------------------------------------------------------- windows

cdef struct Window:
    Py_ssize_t at[3]        # output position along D, H, W
    Py_ssize_t start[3]     # first input position along D, H, W
    Py_ssize_t count[3]     # elements along D, H, W
    Py_ssize_t batch        # the batch element of a channels-last pixel


cdef inline void _set_axis(const Tables* t, Window* w, Py_ssize_t a, Py_ssize_t o) noexcept nogil:
    w.at[a] = o
    w.start[a] = t.first[t.offset[a] + o]
    w.count[a] = t.count[t.offset[a] + o]


cdef inline void _window(const Tables* t, const Axis* ax, Py_ssize_t pixel,
                         Window* w) noexcept nogil:
    """Window of output ``pixel``, a row-major offset over ``(N, OD, OH, OW)``."""
    cdef Py_ssize_t a
    for a in range(2, -1, -1):
        _set_axis(t, w, a, pixel % ax[a].out_size)
        pixel = pixel // ax[a].out_size
    w.batch = pixel


cdef inline void _step(const Tables* t, const Axis* ax, Py_ssize_t o, Window* w) noexcept nogil:
    """Window of output ``o`` of a plane when ``w`` holds ``o - 1``: an odometer
    step, since a division per output costs more than a small window's work."""
    cdef Py_ssize_t a = 2
    if o == 0:
        _window(t, ax, 0, w)
        return
    while a > 0 and w.at[a] + 1 == ax[a].out_size:
        _set_axis(t, w, a, 0)
        a -= 1
    _set_axis(t, w, a, w.at[a] + 1)


cdef inline Py_ssize_t _size(const Window* w) noexcept nogil:
    return w.count[0] * w.count[1] * w.count[2]


cdef inline real_t _reduce(const real_t* x, Py_ssize_t H, Py_ssize_t W, const Window* w,
                           const Norm* norm, Py_ssize_t* at) noexcept nogil:
    """One channels-first window: its sum of ``x**p``, or for ``p = inf`` its
    largest ``|x|`` (max pooling's rule) with that element's offset in ``at``."""
    cdef Py_ssize_t id_, ih, iw
    cdef real_t total = -INFINITY if norm.is_inf else 0
    cdef real_t value
    cdef const real_t* row
    at[0] = (w.start[0] * H + w.start[1]) * W + w.start[2]
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            row = x + (id_ * H + ih) * W
            if norm.is_inf:
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    value = abs(row[iw])
                    if beats(value, total):
                        total = value
                        at[0] = (id_ * H + ih) * W + iw
            else:
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    total = total + _raise(row[iw], &norm.forward)
    return total


cdef inline void _reduce_cl(const real_t* x, Py_ssize_t H, Py_ssize_t W, Py_ssize_t channels,
                            Py_ssize_t width, const Window* w, const Norm* norm, real_t* total,
                            Py_ssize_t* at) noexcept nogil:
    """:func:`_reduce` for ``width`` channels-last channels at once, the channel
    loop innermost; ``x`` points at the first channel of the batch element's
    first pixel; ``at`` (offsets for ``p = inf``) may be NULL."""
    cdef Py_ssize_t id_, ih, iw, c, pos
    cdef real_t value
    cdef const real_t* src
    for c in range(width):
        total[c] = -INFINITY if norm.is_inf else 0
    if at != NULL:
        for c in range(width):
            at[c] = (w.start[0] * H + w.start[1]) * W + w.start[2]
    for id_ in range(w.start[0], w.start[0] + w.count[0]):
        for ih in range(w.start[1], w.start[1] + w.count[1]):
            for iw in range(w.start[2], w.start[2] + w.count[2]):
                pos = (id_ * H + ih) * W + iw
                src = x + pos * channels
                if norm.forward.kind == POWER_SQUARE:
                    # p = 2, the common case, without the per-element switch: it vectorises
                    for c in range(width):
                        total[c] = total[c] + src[c] * src[c]
                elif not norm.is_inf:
                    for c in range(width):
                        total[c] = total[c] + _raise(src[c], &norm.forward)
                elif at == NULL:
                    for c in range(width):
                        value = abs(src[c])
                        total[c] = value if beats(value, total[c]) else total[c]
                else:
                    for c in range(width):
                        value = abs(src[c])
                        if beats(value, total[c]):
                            total[c] = value
                            at[c] = pos


# -------------------------------------------------------- channels-first

cdef void _forward_plane(const real_t* x, real_t* out, const Axis* ax, const Tables* t,
                         const Norm* norm) noexcept nogil:
    cdef Py_ssize_t o, at
    cdef Window w
    cdef real_t total
    for o in range(ax[0].out_size * ax[1].out_size * ax[2].out_size):
        _step(t, ax, o, &w)
        total = _reduce(x, ax[1].in_size, ax[2].in_size, &w, norm, &at)
        out[o] = total if norm.is_inf else _window_value(total, _size(&w), norm)


cdef void _backward_plane(const real_t* grad_out, const real_t* x, real_t* grad_in,
                          const Axis* ax, const Tables* t, const Norm* norm) noexcept nogil:
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t in_plane = ax[0].in_size * H * W
    cdef Py_ssize_t o, id_, ih, iw, i, at
    cdef Window w
    cdef real_t total, slope
    cdef real_t* row
    memset(grad_in, 0, in_plane * sizeof(real_t))
    for o in range(ax[0].out_size * ax[1].out_size * ax[2].out_size):
        _step(t, ax, o, &w)
        total = _reduce(x, H, W, &w, norm, &at)
        if norm.is_inf:
            grad_in[at] += grad_out[o] * _sign(x[at])
            continue
        slope = _window_slope(grad_out[o], total, _size(&w), norm)
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                row = grad_in + (id_ * H + ih) * W
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    row[iw] += slope
    if not norm.is_inf:
        for i in range(in_plane):
            grad_in[i] = _element_slope(grad_in[i], x[i], norm)


# --------------------------------------------------------- channels-last

cdef void _forward_pixel_cl(const real_t* x, real_t* out, Py_ssize_t pixel, Py_ssize_t channels,
                            const Axis* ax, const Tables* t, const Norm* norm) noexcept nogil:
    """One channels-last output pixel, all channels; channel loop innermost."""
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t c
    cdef Window w
    cdef real_t* o = out + pixel * channels
    _window(t, ax, pixel, &w)
    _reduce_cl(x + w.batch * in_plane * channels, ax[1].in_size, ax[2].in_size, channels,
               channels, &w, norm, o, NULL)
    if not norm.is_inf:
        for c in range(channels):
            o[c] = _window_value(o[c], _size(&w), norm)


cdef void _backward_block_cl(const real_t* grad_out, const real_t* x, real_t* grad_in,
                             Py_ssize_t job, Py_ssize_t blocks, Py_ssize_t channels,
                             const Axis* ax, const Tables* t, const Norm* norm) noexcept nogil:
    """Channels ``[c0, c0 + width)`` of one batch element, channels-last."""
    cdef Py_ssize_t H = ax[1].in_size, W = ax[2].in_size
    cdef Py_ssize_t in_plane = ax[0].in_size * H * W
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    cdef Py_ssize_t n = job // blocks
    cdef Py_ssize_t c0 = (job % blocks) * CHANNEL_BLOCK
    cdef Py_ssize_t width = CHANNEL_BLOCK if c0 + CHANNEL_BLOCK < channels else channels - c0
    cdef Py_ssize_t o, id_, ih, iw, c, p, pos
    cdef Window w
    cdef real_t total[CHANNEL_BLOCK]
    cdef Py_ssize_t best_at[CHANNEL_BLOCK]
    cdef real_t* gi = grad_in + n * in_plane * channels + c0
    cdef const real_t* xi = x + n * in_plane * channels + c0
    cdef const real_t* go = grad_out + n * out_plane * channels + c0
    cdef real_t* dst
    for p in range(in_plane):
        for c in range(width):
            gi[p * channels + c] = 0
    for o in range(out_plane):
        _step(t, ax, o, &w)
        _reduce_cl(xi, H, W, channels, width, &w, norm, total, best_at)
        if norm.is_inf:
            for c in range(width):
                pos = best_at[c] * channels + c
                gi[pos] += go[o * channels + c] * _sign(xi[pos])
            continue
        for c in range(width):
            total[c] = _window_slope(go[o * channels + c], total[c], _size(&w), norm)
        for id_ in range(w.start[0], w.start[0] + w.count[0]):
            for ih in range(w.start[1], w.start[1] + w.count[1]):
                for iw in range(w.start[2], w.start[2] + w.count[2]):
                    dst = gi + ((id_ * H + ih) * W + iw) * channels
                    for c in range(width):
                        dst[c] += total[c]
    if not norm.is_inf:
        for p in range(in_plane):
            for c in range(width):
                gi[p * channels + c] = _element_slope(gi[p * channels + c],
                                                      xi[p * channels + c], norm)


# ---------------------------------------------------------------- drivers

cdef Norm _norm(double p, const Axis* ax):
    cdef Norm norm
    norm.is_inf = p == INFINITY
    norm.p = p
    norm.forward = _power(p)
    norm.root = _power(1 / p)
    norm.root_slope = _power(1 / p - 1)
    norm.slope = _power(p - 1)
    norm.kernel_numel = <double> (ax[0].kernel * ax[1].kernel * ax[2].kernel)
    return norm


cdef int _forward(const real_t* x, real_t* out, Py_ssize_t lead, Py_ssize_t channels,
                  bint channels_last, const Axis* ax, const Norm* norm,
                  int nthreads) noexcept nogil:
    cdef Tables t
    cdef Py_ssize_t p, pixels
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    if make_tables(ax, &t, True) != 0:
        return -1
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='static', num_threads=nthreads):
                _forward_plane(x + p * in_plane, out + p * out_plane, ax, &t, norm)
        else:
            for p in range(lead):
                _forward_plane(x + p * in_plane, out + p * out_plane, ax, &t, norm)
    else:
        pixels = lead * out_plane
        if nthreads > 1:
            for p in prange(pixels, schedule='static', num_threads=nthreads):
                _forward_pixel_cl(x, out, p, channels, ax, &t, norm)
        else:
            for p in range(pixels):
                _forward_pixel_cl(x, out, p, channels, ax, &t, norm)
    free_tables(&t)
    return 0


cdef int _backward(const real_t* grad_out, const real_t* x, real_t* grad_in, Py_ssize_t lead,
                   Py_ssize_t channels, bint channels_last, const Axis* ax, const Norm* norm,
                   int nthreads) noexcept nogil:
    cdef Tables t
    cdef Py_ssize_t p, blocks, jobs
    cdef Py_ssize_t in_plane = ax[0].in_size * ax[1].in_size * ax[2].in_size
    cdef Py_ssize_t out_plane = ax[0].out_size * ax[1].out_size * ax[2].out_size
    if make_tables(ax, &t, True) != 0:
        return -1
    if not channels_last:
        if nthreads > 1:
            for p in prange(lead, schedule='static', num_threads=nthreads):
                _backward_plane(grad_out + p * out_plane, x + p * in_plane,
                                grad_in + p * in_plane, ax, &t, norm)
        else:
            for p in range(lead):
                _backward_plane(grad_out + p * out_plane, x + p * in_plane,
                                grad_in + p * in_plane, ax, &t, norm)
    else:
        blocks = (channels + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK
        jobs = lead * blocks
        if nthreads > 1:
            for p in prange(jobs, schedule='static', num_threads=nthreads):
                _backward_block_cl(grad_out, x, grad_in, p, blocks, channels, ax, &t, norm)
        else:
            for p in range(jobs):
                _backward_block_cl(grad_out, x, grad_in, p, blocks, channels, ax, &t, norm)
    free_tables(&t)
    return 0


def lp_pool_forward(cnp.ndarray x, cnp.ndarray out, tuple geometry, double norm_type,
                    bint channels_last, int nthreads):
    """Fill ``out`` with the LP norms of the windows of ``x``.

    x: IN, float32/float64, C-contiguous ``(planes, D, H, W)`` or ``(N, D, H, W, C)``.
    out: OUT, same dtype and layout with the output sizes.
    geometry: the facade's 3-axis window geometry (no padding, dilation 1).
    norm_type: ``p > 0``, finite or inf.
    """
    cdef Axis ax[3]
    fill_axes(ax, geometry)
    cdef Norm norm = _norm(norm_type, ax)
    cdef Py_ssize_t lead = x.shape[0]
    cdef Py_ssize_t channels = x.shape[4] if channels_last else 1
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* op = cnp.PyArray_DATA(out)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int status = 0
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _forward[float](<float*> xp, <float*> op, lead, channels, channels_last, ax, &norm, nthreads)
        elif typenum == cnp.NPY_FLOAT64:
            status = _forward[double](<double*> xp, <double*> op, lead, channels, channels_last, ax, &norm, nthreads)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"LP pooling kernel has no loop for dtype {x.dtype}")


def lp_pool_backward(cnp.ndarray grad_out, cnp.ndarray x, cnp.ndarray grad_in, tuple geometry,
                     double norm_type, bint channels_last, int nthreads):
    """Fill ``grad_in`` with the gradient of LP pooling at ``x``.

    grad_out: IN, ``(planes, OD, OH, OW)`` or ``(N, OD, OH, OW, C)``.
    x: IN, the pooled input, same dtype, the input's layout and sizes.
    grad_in: OUT, shaped and typed like ``x``.
    """
    cdef Axis ax[3]
    fill_axes(ax, geometry)
    cdef Norm norm = _norm(norm_type, ax)
    cdef Py_ssize_t lead = x.shape[0]
    cdef Py_ssize_t channels = x.shape[4] if channels_last else 1
    cdef void* gop = cnp.PyArray_DATA(grad_out)
    cdef void* xp = cnp.PyArray_DATA(x)
    cdef void* gip = cnp.PyArray_DATA(grad_in)
    cdef int typenum = cnp.PyArray_TYPE(x)
    cdef int status = 0
    if cnp.PyArray_TYPE(grad_out) != typenum or cnp.PyArray_TYPE(grad_in) != typenum:
        raise TypeError("LP pooling backward needs grad_output, x and grad_input of one dtype")
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            status = _backward[float](<float*> gop, <float*> xp, <float*> gip, lead, channels, channels_last, ax, &norm, nthreads)
        elif typenum == cnp.NPY_FLOAT64:
            status = _backward[double](<double*> gop, <double*> xp, <double*> gip, lead, channels, channels_last, ax, &norm, nthreads)
        else:
            status = -2
    if status == -1:
        raise MemoryError("cypool: out of memory for window tables")
    if status == -2:
        raise TypeError(f"LP pooling backward has no loop for dtype {x.dtype}")
