# cython: language_level=3
"""The C declarations of ``_simd.h``, the one header with intrinsics, for
every kernel module to cimport (see the header for what each function does
and the vector paths it picks at run time)."""

from libc.stdint cimport int32_t, int64_t

cdef extern from "_simd.h" nogil:
    # the vector path in use (CY_SIMD_SCALAR, CY_SIMD_SSE2 or CY_SIMD_AVX2), and
    # a lower cap on it (tests only)
    enum:
        CY_SIMD_SCALAR
        CY_SIMD_SSE2
        CY_SIMD_AVX2
    int cy_simd_level()
    int cy_simd_cap(int cap)

    # one element: best after value by PyTorch's max rule, *at = idx when value wins
    float cy_pick1_f32(float best, float value, int32_t* at, int32_t idx)
    double cy_pick1_f64(double best, double value, int32_t* at, int32_t idx)

    # rows: windows 2 or 3 wide at stride 2, and windows at stride 1 (any kernel and
    # dilation), over n_rows rows
    void cy_max_s2_f32(const float** rows, Py_ssize_t n_rows, Py_ssize_t width, float* out,
                       Py_ssize_t n)
    void cy_max_s2_f64(const double** rows, Py_ssize_t n_rows, Py_ssize_t width, double* out,
                       Py_ssize_t n)
    void cy_max_s1_f32(const float** rows, Py_ssize_t n_rows, Py_ssize_t kernel,
                       Py_ssize_t dilation, float* out, Py_ssize_t n)
    void cy_max_s1_f64(const double** rows, Py_ssize_t n_rows, Py_ssize_t kernel,
                       Py_ssize_t dilation, double* out, Py_ssize_t n)
    # the same rows of many 1-D planes, in_stride and out_stride apart
    void cy_max_s1_rows_f32(const float* first, Py_ssize_t in_stride, Py_ssize_t rows,
                            Py_ssize_t kernel, Py_ssize_t dilation, float* out,
                            Py_ssize_t out_stride, Py_ssize_t n)
    void cy_max_s1_rows_f64(const double* first, Py_ssize_t in_stride, Py_ssize_t rows,
                            Py_ssize_t kernel, Py_ssize_t dilation, double* out,
                            Py_ssize_t out_stride, Py_ssize_t n)
    void cy_max_s2_rows_f32(const float* first, Py_ssize_t in_stride, Py_ssize_t rows,
                            Py_ssize_t width, float* out, Py_ssize_t out_stride, Py_ssize_t n)
    void cy_max_s2_rows_f64(const double* first, Py_ssize_t in_stride, Py_ssize_t rows,
                            Py_ssize_t width, double* out, Py_ssize_t out_stride, Py_ssize_t n)
    # averages at stride 2 with a divisor per output; sums at stride 1, divided when
    # divisors is not NULL
    void cy_avg_s2_f32(const float** rows, Py_ssize_t n_rows, Py_ssize_t width, float* out,
                       const float* divisors, Py_ssize_t n)
    void cy_avg_s2_f64(const double** rows, Py_ssize_t n_rows, Py_ssize_t width, double* out,
                       const double* divisors, Py_ssize_t n)
    void cy_sum_s1_f32(const float** rows, Py_ssize_t n_rows, Py_ssize_t kernel, float* out,
                       const float* divisors, Py_ssize_t n)
    void cy_sum_s1_f64(const double** rows, Py_ssize_t n_rows, Py_ssize_t kernel, double* out,
                       const double* divisors, Py_ssize_t n)

    # channels-last windows of at most CY_SUM_MAX_TAPS taps, the channel vectors in
    # registers; they return the channels done
    enum: CY_SUM_MAX_TAPS
    Py_ssize_t cy_max_taps_f32(const float** taps, Py_ssize_t n_taps, Py_ssize_t channels,
                               float* out, const int64_t* tap_pos, int64_t* index)
    Py_ssize_t cy_max_taps_f64(const double** taps, Py_ssize_t n_taps, Py_ssize_t channels,
                               double* out, const int64_t* tap_pos, int64_t* index)
    Py_ssize_t cy_avg_taps_f32(const float** taps, Py_ssize_t n_taps, Py_ssize_t channels,
                               float* out, float divisor)
    Py_ssize_t cy_avg_taps_f64(const double** taps, Py_ssize_t n_taps, Py_ssize_t channels,
                               double* out, double divisor)
    # n windows of a row at once: window i's taps i * step further on, its tap positions
    # i * pos_step further on (max) or its divisor divisors[i] (avg)
    Py_ssize_t cy_max_taps_row_f32(const float** taps, Py_ssize_t n_taps, Py_ssize_t channels,
                                   float* out, const int64_t* tap_pos, int64_t* index,
                                   Py_ssize_t n, Py_ssize_t step, int64_t pos_step)
    Py_ssize_t cy_max_taps_row_f64(const double** taps, Py_ssize_t n_taps,
                                   Py_ssize_t channels, double* out, const int64_t* tap_pos,
                                   int64_t* index, Py_ssize_t n, Py_ssize_t step,
                                   int64_t pos_step)
    Py_ssize_t cy_avg_taps_row_f32(const float** taps, Py_ssize_t n_taps, Py_ssize_t channels,
                                   float* out, const float* divisors, Py_ssize_t n,
                                   Py_ssize_t step)
    Py_ssize_t cy_avg_taps_row_f64(const double** taps, Py_ssize_t n_taps,
                                   Py_ssize_t channels, double* out, const double* divisors,
                                   Py_ssize_t n, Py_ssize_t step)

    # the small-plane paths: moves between planes and 16 lanes ...
    void cy_to_lanes_f32(const float* src, Py_ssize_t plane, Py_ssize_t width, float* lanes)
    void cy_to_lanes_f64(const double* src, Py_ssize_t plane, Py_ssize_t width, double* lanes)
    void cy_from_lanes_f32(const float* lanes, Py_ssize_t plane, Py_ssize_t width, float* dst)
    void cy_from_lanes_f64(const double* lanes, Py_ssize_t plane, Py_ssize_t width, double* dst)
    void cy_lane_index_f32(const float* where, Py_ssize_t plane, Py_ssize_t width,
                           int64_t* index)
    void cy_lane_index_f64(const double* where, Py_ssize_t plane, Py_ssize_t width,
                           int64_t* index)
    # ... and 16 small planes side by side pooled as one channels-last plane
    void cy_max_lanes_f32(const float* lanes, const int32_t* tap, const int32_t* start,
                          Py_ssize_t n_out, float* out, float* where)
    void cy_max_lanes_f64(const double* lanes, const int32_t* tap, const int32_t* start,
                          Py_ssize_t n_out, double* out, double* where)
    void cy_avg_lanes_f32(const float* lanes, const int32_t* win, Py_ssize_t plane_step,
                          Py_ssize_t row_step, Py_ssize_t n_out, const float* divisors,
                          float* out)
    void cy_avg_lanes_f64(const double* lanes, const int32_t* win, Py_ssize_t plane_step,
                          Py_ssize_t row_step, Py_ssize_t n_out, const double* divisors,
                          double* out)
    void cy_avg_col_lanes_f32(const float* lanes, const int32_t* win, Py_ssize_t plane_step,
                              Py_ssize_t row_step, Py_ssize_t n_out, const float* divisors,
                              float* out)
    void cy_avg_col_lanes_f64(const double* lanes, const int32_t* win, Py_ssize_t plane_step,
                              Py_ssize_t row_step, Py_ssize_t n_out, const double* divisors,
                              double* out)
    void cy_avg_back_lanes_f32(const float* grad_out, const int32_t* win,
                               Py_ssize_t plane_step, Py_ssize_t row_step, Py_ssize_t n_out,
                               const float* divisors, float* grad_in)
    void cy_avg_back_lanes_f64(const double* grad_out, const int32_t* win,
                               Py_ssize_t plane_step, Py_ssize_t row_step, Py_ssize_t n_out,
                               const double* divisors, double* grad_in)

    # planes [block * 16, ...) of planes moved into the lanes, pooled by cy_max_lanes and
    # moved out; scratch: (in_plane + 2 * out_plane) * 16 values
    void cy_max_lanes_block_f32(const float* x, float* out, int64_t* index, Py_ssize_t block,
                                Py_ssize_t planes, Py_ssize_t in_plane, Py_ssize_t out_plane,
                                const int32_t* tap, const int32_t* start, float* lanes)
    void cy_max_lanes_block_f64(const double* x, double* out, int64_t* index, Py_ssize_t block,
                                Py_ssize_t planes, Py_ssize_t in_plane, Py_ssize_t out_plane,
                                const int32_t* tap, const int32_t* start, double* lanes)

    # the maximum of row[start, start + count) and its position in at
    float cy_window_max_f32(const float* row, Py_ssize_t start, Py_ssize_t count, int32_t* at)
    double cy_window_max_f64(const double* row, Py_ssize_t start, Py_ssize_t count,
                             int32_t* at)
    # its value alone
    float cy_window_value_f32(const float* row, Py_ssize_t start, Py_ssize_t count)
    double cy_window_value_f64(const double* row, Py_ssize_t start, Py_ssize_t count)

    # sums in 32 (float32) or 16 (float64) partial sums, the same bits at every vector level
    float cy_wide_sum_f32(const float* v, Py_ssize_t n)
    double cy_wide_sum_f64(const double* v, Py_ssize_t n)

    # out[i]: the sum of row[i * stride + j] for j in [0, kernel), left to right
    void cy_window_sums_f32(const float* row, Py_ssize_t stride, Py_ssize_t kernel, float* out,
                            Py_ssize_t n)
    void cy_window_sums_f64(const double* row, Py_ssize_t stride, Py_ssize_t kernel,
                            double* out, Py_ssize_t n)

    # out[i]: the scan-order max (values alone) of row[i * stride + j] for j in [0, kernel)
    void cy_max_strided_f32(const float* row, Py_ssize_t stride, Py_ssize_t kernel,
                            float* out, Py_ssize_t n)
    void cy_max_strided_f64(const double* row, Py_ssize_t stride, Py_ssize_t kernel,
                            double* out, Py_ssize_t n)

    # memcpy with non-temporal stores and a store fence (large results built in cache)
    void cy_stream_copy(void* dst, const void* src, size_t nbytes)

    # best[c], probe[c]: channel c's maximum over a channels-last plane (values alone) and
    # its sum (NaN: scan the channel again in order)
    void cy_channel_maxima_f32(const float* x, float* best, float* probe, Py_ssize_t channels,
                               Py_ssize_t plane, Py_ssize_t width)
    void cy_channel_maxima_f64(const double* x, double* best, double* probe,
                               Py_ssize_t channels, Py_ssize_t plane, Py_ssize_t width)
    # the same maxima and their pixel offsets folded into best/at, channels [0, the
    # returned count); 0 at vector level 0
    Py_ssize_t cy_channel_argmax_f32(const float* x, float* best, int32_t* at,
                                     Py_ssize_t channels, Py_ssize_t plane, Py_ssize_t width)
    Py_ssize_t cy_channel_argmax_f64(const double* x, double* best, int64_t* at,
                                     Py_ssize_t channels, Py_ssize_t plane, Py_ssize_t width)
