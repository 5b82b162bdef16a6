# cython: language_level=3
"""The dtype table of the kernels, as fused types.

``max_t`` is every type the max family keeps (floats and all integers),
``int_t`` its integers; ``real_t`` is what the averaging family and every
gradient compute in.
float16 never reaches a kernel: the facade computes it in float32.
"""

from libc.math cimport INFINITY
from libc.stdint cimport (
    INT8_MIN, INT16_MIN, INT32_MIN, INT64_MIN,
    int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)

from cypool._simd cimport cy_pick1_f32, cy_pick1_f64

# the integers of max_t: what the averaging family casts to float64
ctypedef fused int_t:
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t
    uint64_t

ctypedef fused max_t:
    float
    double
    int_t

ctypedef fused real_t:
    float
    double


cdef inline max_t lowest(const max_t* type_tag) noexcept nogil:
    """Start value of a running max: -inf for floats, the minimum for integers."""
    if max_t is float or max_t is double:
        return -INFINITY
    elif max_t is int8_t:
        return INT8_MIN
    elif max_t is int16_t:
        return INT16_MIN
    elif max_t is int32_t:
        return INT32_MIN
    elif max_t is int64_t:
        return INT64_MIN
    else:
        return 0


cdef inline bint beats(max_t value, max_t best) noexcept nogil:
    """PyTorch's max rule: strictly larger, or NaN (so the last NaN wins).

    Bitwise ``|``, not ``or``: Cython turns ``or`` into branches, which stop
    gcc from vectorising the loops that use this.
    """
    return (value > best) | (value != value)


cdef inline max_t pick_at(max_t best, max_t value, int32_t* at, int32_t idx) noexcept nogil:
    """``best`` after ``value`` by the rule of ``beats``, ``at[0] = idx`` when
    ``value`` wins; without branches, for loops too short to vectorise."""
    cdef bint take
    if max_t is float:
        return cy_pick1_f32(best, value, at, idx)
    elif max_t is double:
        return cy_pick1_f64(best, value, at, idx)
    else:
        take = beats(value, best)
        at[0] = idx if take else at[0]
        return value if take else best
