// Private to the sparse kernel files: the im2col-per-pixel convolution driver shared by every ISA. An ISA
// supplies the fp32 sparse dot product of one CSR row with a dense vector.
#ifndef WHITTLE_SPARSE_CONV2D_IMPL_H_
#define WHITTLE_SPARSE_CONV2D_IMPL_H_

#include <string.h>

#include "sparse_conv2d.h"

// The drivers are inlined into each ISA's kernel so that the ISA's span function, passed as a constant
// function pointer, is inlined too (GCC otherwise clones the driver and keeps an indirect call per span).
#if defined(__GNUC__)
#define SPARSE_DRIVER static inline __attribute__((always_inline))
#else
#define SPARSE_DRIVER static inline
#endif

typedef float (*sparse_f32_dot_fn)(const float* x, const uint32_t* columns, const float* values,
                                   size_t count);

// workspace[k] = input at tap (ky, kx), channel i of `group`, for output position (n, oy, ox); 0 for padding.
// T is float (x, zero_point 0) or int16_t (x - zero_point); padding holds 0 (real value 0).
#define SPARSE_DEFINE_IM2COL(name, T, IN)                                                                    \
  static inline void name(const whittle_conv2d_geometry* g, const IN* input, size_t n, size_t oy, size_t ox, \
                          size_t group, int32_t zero_point, T* workspace) {                                  \
    const size_t input_channels = g->groups * g->group_input_channels;                                       \
    const size_t gic = g->group_input_channels;                                                              \
    size_t ky0, ky1, kx0, kx1;                                                                               \
    whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height, &ky0, \
                              &ky1);                                                                         \
    whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width, &kx0,   \
                              &kx1);                                                                         \
    for (size_t ky = 0; ky < g->kernel_height; ky++) {                                                       \
      for (size_t kx = 0; kx < g->kernel_width; kx++) {                                                      \
        T* out = workspace + (ky * g->kernel_width + kx) * gic;                                              \
        if (ky < ky0 || ky >= ky1 || kx < kx0 || kx >= kx1) {                                                \
          for (size_t i = 0; i < gic; i++) out[i] = 0;                                                       \
          continue;                                                                                          \
        }                                                                                                    \
        const size_t iy = oy * g->stride_height + ky - g->padding_top;                                       \
        const size_t ix = ox * g->stride_width + kx - g->padding_left;                                       \
        const IN* x =                                                                                        \
            input + ((n * g->input_height + iy) * g->input_width + ix) * input_channels + group * gic;       \
        for (size_t i = 0; i < gic; i++) out[i] = (T)((T)x[i] - (T)zero_point);                              \
      }                                                                                                      \
    }                                                                                                        \
  }

SPARSE_DEFINE_IM2COL(sparse_f32_im2col, float, float)
SPARSE_DEFINE_IM2COL(sparse_qs8_im2col, int16_t, int8_t)

SPARSE_DRIVER void sparse_f32_conv2d_drive(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                           const float* input, const uint32_t* row_offsets,
                                           const uint32_t* column_indices, const float* values,
                                           const float* bias, float output_min, float output_max,
                                           float* workspace, float* output, sparse_f32_dot_fn dot) {
  const size_t output_channels = g->groups * g->group_output_channels;
  if (oc_begin >= oc_end) {
    return;
  }
  const size_t first_group = oc_begin / g->group_output_channels;
  const size_t last_group = (oc_end - 1) / g->group_output_channels;
  for (size_t p = 0; p < whittle_conv2d_output_pixels(g); p++) {
    const whittle_conv2d_position at = whittle_conv2d_output_position(g, p);
    float* out = output + p * output_channels;
    for (size_t group = first_group; group <= last_group; group++) {
      sparse_f32_im2col(g, input, at.n, at.oy, at.ox, group, 0, workspace);
      size_t begin, end;
      whittle_conv2d_group_channel_range(g, group, oc_begin, oc_end, &begin, &end);
      for (size_t o = begin; o < end; o++) {
        const uint32_t first = row_offsets[o];
        const float sum = dot(workspace, column_indices + first, values + first, row_offsets[o + 1] - first);
        out[o] = whittle_clamp_f32(sum + (bias != NULL ? bias[o] : 0.0f), output_min, output_max);
      }
    }
  }
}

#define SPARSE_F32_DEFINE_KERNELS(isa, dot)                                                                 \
  void sparse_f32_conv2d_minmax_ukernel__##isa(                                                             \
      const whittle_conv2d_geometry* geometry, size_t oc_begin, size_t oc_end, const float* restrict input, \
      const uint32_t* restrict row_offsets, const uint32_t* restrict column_indices,                        \
      const float* restrict values, const float* restrict bias, float output_min, float output_max,         \
      float* restrict workspace, float* restrict output) {                                                  \
    sparse_f32_conv2d_drive(geometry, oc_begin, oc_end, input, row_offsets, column_indices, values, bias,   \
                            output_min, output_max, workspace, output, dot);                                \
  }                                                                                                         \
  void sparse_f32_fc_minmax_ukernel__##isa(                                                                 \
      size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,          \
      const float* restrict input, const uint32_t* restrict row_offsets,                                    \
      const uint32_t* restrict column_indices, const float* restrict values, const float* restrict bias,    \
      float output_min, float output_max, float* restrict output) {                                         \
    for (size_t n = 0; n < batch; n++) {                                                                    \
      for (size_t o = oc_begin; o < oc_end; o++) {                                                          \
        const uint32_t first = row_offsets[o];                                                              \
        const float sum = dot(input + n * input_channels, column_indices + first, values + first,           \
                              row_offsets[o + 1] - first);                                                  \
        output[n * output_channels + o] =                                                                   \
            whittle_clamp_f32(sum + (bias != NULL ? bias[o] : 0.0f), output_min, output_max);               \
      }                                                                                                     \
    }                                                                                                       \
  }

// ---- Stride-1 convolutions over channel planes (sparse_conv2d.h, "planes") ----
// Output channel o's plane is a sum over o's nonzeros of values[j] times a shifted input plane. A tile is R
// output rows by C vectors of N output columns, kept in registers (R x C accumulators of the ISA's native
// vector type V, 8 of them in the wide tiles so that the multiply-add chains overlap); each nonzero costs one
// broadcast and R x C loads and multiply-adds. Tiles are clamped and stored lane by lane into the NHWC
// output (stride output_channels). V must be the ISA's native width: GCC splits wider generic vectors
// through memory.

// One tile of R rows by C vectors of V (N lanes). MADD(acc, w, x) is acc + w * x in V.
#define SPARSE_DEFINE_PLANES_TILE(name, V, N, C, R, MADD)                                                 \
  static inline void name(const float* src, size_t src_row, const uint32_t* offsets, const float* values, \
                          size_t count, float bias, float lo, float hi, float* out, size_t out_row,       \
                          size_t out_column) {                                                            \
    V acc[R][C];                                                                                          \
    for (size_t r = 0; r < R; r++) {                                                                      \
      for (size_t c = 0; c < C; c++) acc[r][c] = (V){0} + bias;                                           \
    }                                                                                                     \
    for (size_t j = 0; j < count; j++) {                                                                  \
      const float* x = src + offsets[j];                                                                  \
      const V w = (V){0} + values[j];                                                                     \
      for (size_t r = 0; r < R; r++) {                                                                    \
        for (size_t c = 0; c < C; c++) {                                                                  \
          V v;                                                                                            \
          memcpy(&v, x + r * src_row + c * N, sizeof(v));                                                 \
          acc[r][c] = MADD(acc[r][c], w, v);                                                              \
        }                                                                                                 \
      }                                                                                                   \
    }                                                                                                     \
    for (size_t r = 0; r < R; r++) {                                                                      \
      for (size_t c = 0; c < C; c++) {                                                                    \
        for (size_t l = 0; l < N; l++) {                                                                  \
          out[r * out_row + (c * N + l) * out_column] = whittle_clamp_f32(acc[r][c][l], lo, hi);          \
        }                                                                                                 \
      }                                                                                                   \
    }                                                                                                     \
  }

// The kernel of one ISA, from its native vector type V of N lanes. Each row is covered by tiles of 2N, N or
// 1 columns (the widest that fits the output), the last one shifted left to end at the edge (it recomputes a
// few columns, with the same result). Rows go 4 at a time with 2N-column tiles, 8 then 4 with N-column
// tiles (8 accumulators either way), then one at a time.
#define SPARSE_F32_DEFINE_PLANES_KERNEL(isa, V, N, MADD)                                                     \
  typedef float sparse_planes_v1_##isa __attribute__((vector_size(sizeof(float))));                          \
  static inline sparse_planes_v1_##isa sparse_planes_madd1_##isa(                                            \
      sparse_planes_v1_##isa acc, sparse_planes_v1_##isa w, sparse_planes_v1_##isa x) {                      \
    return acc + w * x;                                                                                      \
  }                                                                                                          \
  SPARSE_DEFINE_PLANES_TILE(sparse_planes_2n_r4_##isa, V, N, 2, 4, MADD)                                     \
  SPARSE_DEFINE_PLANES_TILE(sparse_planes_2n_r1_##isa, V, N, 2, 1, MADD)                                     \
  SPARSE_DEFINE_PLANES_TILE(sparse_planes_n_r8_##isa, V, N, 1, 8, MADD)                                      \
  SPARSE_DEFINE_PLANES_TILE(sparse_planes_n_r4_##isa, V, N, 1, 4, MADD)                                      \
  SPARSE_DEFINE_PLANES_TILE(sparse_planes_n_r1_##isa, V, N, 1, 1, MADD)                                      \
  SPARSE_DEFINE_PLANES_TILE(sparse_planes_1_r4_##isa, sparse_planes_v1_##isa, 1, 1, 4,                       \
                            sparse_planes_madd1_##isa)                                                       \
  SPARSE_DEFINE_PLANES_TILE(sparse_planes_1_r1_##isa, sparse_planes_v1_##isa, 1, 1, 1,                       \
                            sparse_planes_madd1_##isa)                                                       \
  void sparse_f32_conv2d_planes_minmax_ukernel__##isa(                                                       \
      const whittle_conv2d_geometry* g, size_t row_begin, size_t row_end, size_t oc_begin, size_t oc_end,    \
      const float* restrict planes, const uint32_t* restrict row_offsets,                                    \
      const uint32_t* restrict plane_offsets, const float* restrict values, const float* restrict bias,      \
      float output_min, float output_max, float* restrict output) {                                          \
    const size_t oh = g->output_height, ow = g->output_width;                                                \
    const size_t pw = ow + g->kernel_width - 1, plane = (oh + g->kernel_height - 1) * pw;                    \
    const size_t channels = g->groups * g->group_input_channels;                                             \
    const size_t output_channels = g->groups * g->group_output_channels;                                     \
    const size_t width = ow >= 2 * (N) ? 2 * (N) : ow >= (N) ? (N) : 1;                                      \
    const size_t out_row = ow * output_channels;                                                             \
    for (size_t row = row_begin; row < row_end;) {                                                           \
      const size_t n = row / oh, y = row % oh;                                                               \
      /* A group of output rows stays inside one image and the range. */                                     \
      const size_t left = (row_end - row < oh - y) ? row_end - row : oh - y;                                 \
      const size_t rows = width == (N) && left >= 8 ? 8 : left >= 4 ? 4 : 1;                                 \
      for (size_t o = oc_begin; o < oc_end; o++) {                                                           \
        const size_t group = o / g->group_output_channels;                                                   \
        const float* src = planes + (n * channels + group * g->group_input_channels) * plane + y * pw;       \
        const uint32_t* offsets = plane_offsets + row_offsets[o];                                            \
        const float* v = values + row_offsets[o];                                                            \
        const size_t count = row_offsets[o + 1] - row_offsets[o];                                            \
        const float b = bias != NULL ? bias[o] : 0.0f;                                                       \
        float* out = output + row * out_row + o;                                                             \
        for (size_t x0 = 0; x0 < ow; x0 += width) {                                                          \
          const size_t x = x0 + width > ow ? ow - width : x0;                                                \
          const float* s = src + x;                                                                          \
          float* d = out + x * output_channels;                                                              \
          if (width == 2 * (N)) {                                                                            \
            (rows == 4 ? sparse_planes_2n_r4_##isa : sparse_planes_2n_r1_##isa)(                             \
                s, pw, offsets, v, count, b, output_min, output_max, d, out_row, output_channels);           \
          } else if (width == (N)) {                                                                         \
            (rows == 8   ? sparse_planes_n_r8_##isa                                                          \
             : rows == 4 ? sparse_planes_n_r4_##isa                                                          \
                         : sparse_planes_n_r1_##isa)(s, pw, offsets, v, count, b, output_min, output_max, d, \
                                                     out_row, output_channels);                              \
          } else {                                                                                           \
            (rows == 4 ? sparse_planes_1_r4_##isa : sparse_planes_1_r1_##isa)(                               \
                s, pw, offsets, v, count, b, output_min, output_max, d, out_row, output_channels);           \
          }                                                                                                  \
        }                                                                                                    \
      }                                                                                                      \
      row += rows;                                                                                           \
    }                                                                                                        \
  }

#endif  // WHITTLE_SPARSE_CONV2D_IMPL_H_
