// sparse reference and portable kernels (fp32 and qs8), the variant list, and CSR encoding.
#include "sparse_conv2d_impl.h"

// ---- fp32 reference: walks the CSR row and reads each input directly; sums in double. ----

void sparse_f32_conv2d_minmax_ukernel__reference(const whittle_conv2d_geometry* g, size_t oc_begin,
                                                 size_t oc_end, const float* restrict input,
                                                 const uint32_t* restrict row_offsets,
                                                 const uint32_t* restrict column_indices,
                                                 const float* restrict values, const float* restrict bias,
                                                 float output_min, float output_max,
                                                 float* restrict workspace, float* restrict output) {
  (void)workspace;
  const size_t output_channels = g->groups * g->group_output_channels;
  for (size_t p = 0; p < whittle_conv2d_output_pixels(g); p++) {
    const whittle_conv2d_position at = whittle_conv2d_output_position(g, p);
    for (size_t o = oc_begin; o < oc_end; o++) {
      const size_t group = o / g->group_output_channels;
      double acc = 0.0;
      for (uint32_t e = row_offsets[o]; e < row_offsets[o + 1]; e++) {
        size_t index;
        if (!whittle_conv2d_tap_input(g, at, group, column_indices[e], &index)) continue;
        acc += (double)values[e] * (double)input[index];
      }
      output[p * output_channels + o] =
          whittle_clamp_f32((float)acc + (bias != NULL ? bias[o] : 0.0f), output_min, output_max);
    }
  }
}

void sparse_f32_fc_minmax_ukernel__reference(size_t batch, size_t input_channels, size_t output_channels,
                                             size_t oc_begin, size_t oc_end, const float* restrict input,
                                             const uint32_t* restrict row_offsets,
                                             const uint32_t* restrict column_indices,
                                             const float* restrict values, const float* restrict bias,
                                             float output_min, float output_max, float* restrict output) {
  const whittle_conv2d_geometry g = whittle_fc_geometry(batch, input_channels, output_channels);
  sparse_f32_conv2d_minmax_ukernel__reference(&g, oc_begin, oc_end, input, row_offsets, column_indices,
                                              values, bias, output_min, output_max, NULL, output);
}

// ---- fp32 portable: four independent accumulators over the row's nonzeros. ----

static float sparse_f32_dot_scalar(const float* x, const uint32_t* columns, const float* values,
                                   size_t count) {
  float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
  size_t e = 0;
  for (; e + 4 <= count; e += 4) {
    acc0 += values[e] * x[columns[e]];
    acc1 += values[e + 1] * x[columns[e + 1]];
    acc2 += values[e + 2] * x[columns[e + 2]];
    acc3 += values[e + 3] * x[columns[e + 3]];
  }
  for (; e < count; e++) {
    acc0 += values[e] * x[columns[e]];
  }
  return (acc0 + acc1) + (acc2 + acc3);
}

SPARSE_F32_DEFINE_KERNELS(scalar, sparse_f32_dot_scalar)
// 4 lanes: SSE2 in the x86-64 base build, NEON on AArch64 (GCC lowers them to scalars on a VFP-only ARMv7).
typedef float sparse_planes_v4 __attribute__((vector_size(4 * sizeof(float))));
#define SPARSE_PLANES_MADD_PORTABLE(acc, w, x) ((acc) + (w) * (x))
SPARSE_F32_DEFINE_PLANES_KERNEL(scalar, sparse_planes_v4, 4, SPARSE_PLANES_MADD_PORTABLE)

// ---- Planes: packing and offsets (sparse_conv2d.h) ----

static size_t planes_width(const whittle_conv2d_geometry* g) { return g->output_width + g->kernel_width - 1; }
static size_t planes_height(const whittle_conv2d_geometry* g) {
  return g->output_height + g->kernel_height - 1;
}

bool sparse_f32_conv2d_planes_supported(const whittle_conv2d_geometry* g) {
  if (g->stride_height != 1 || g->stride_width != 1) return false;
  const double plane = (double)planes_height(g) * (double)planes_width(g);
  return plane * (double)g->group_input_channels < 4294967295.0;
}

size_t sparse_f32_conv2d_planes_floats(const whittle_conv2d_geometry* g) {
  return g->batch * g->groups * g->group_input_channels * planes_height(g) * planes_width(g);
}

void sparse_f32_conv2d_planes_pack(const whittle_conv2d_geometry* g, size_t row_begin, size_t row_end,
                                   const float* restrict input, float* restrict planes) {
  const size_t ph = planes_height(g), pw = planes_width(g);
  const size_t channels = g->groups * g->group_input_channels;
  for (size_t row = row_begin; row < row_end; row++) {
    const size_t n = row / ph, py = row % ph;
    // Plane row py is input row py - padding_top, and column px input column px - padding_left.
    const ptrdiff_t iy = (ptrdiff_t)py - (ptrdiff_t)g->padding_top;
    const bool row_inside = iy >= 0 && iy < (ptrdiff_t)g->input_height;
    for (size_t px = 0; px < pw; px++) {
      const ptrdiff_t ix = (ptrdiff_t)px - (ptrdiff_t)g->padding_left;
      float* out = planes + (n * channels * ph + py) * pw + px;
      if (!row_inside || ix < 0 || ix >= (ptrdiff_t)g->input_width) {
        for (size_t c = 0; c < channels; c++) out[c * ph * pw] = 0.0f;
        continue;
      }
      const float* in = input + ((n * g->input_height + (size_t)iy) * g->input_width + (size_t)ix) * channels;
      for (size_t c = 0; c < channels; c++) out[c * ph * pw] = in[c];
    }
  }
}

size_t sparse_f32_conv2d_planes_rows(const whittle_conv2d_geometry* g) { return g->batch * planes_height(g); }

void sparse_f32_conv2d_plane_offsets(const whittle_conv2d_geometry* g, size_t nnz,
                                     const uint32_t* restrict column_indices,
                                     uint32_t* restrict plane_offsets) {
  const size_t ph = planes_height(g), pw = planes_width(g), gic = g->group_input_channels;
  for (size_t j = 0; j < nnz; j++) {
    const size_t k = column_indices[j];
    const size_t i = k % gic, tap = k / gic;
    plane_offsets[j] = (uint32_t)(i * ph * pw + (tap / g->kernel_width) * pw + tap % g->kernel_width);
  }
}

const sparse_f32_variant sparse_f32_variants[] = {
#if defined(__x86_64__) || defined(_M_X64)
    {WHITTLE_ISA_AVX2, "avx2", sparse_f32_conv2d_minmax_ukernel__avx2, sparse_f32_fc_minmax_ukernel__avx2,
     sparse_f32_conv2d_planes_minmax_ukernel__avx2},
#endif
    {WHITTLE_ISA_SCALAR, "scalar", sparse_f32_conv2d_minmax_ukernel__scalar,
     sparse_f32_fc_minmax_ukernel__scalar, sparse_f32_conv2d_planes_minmax_ukernel__scalar},
};
WHITTLE_DEFINE_VARIANT_SELECT(sparse_f32)

// ---- qs8 ----

void sparse_qs8_conv2d_minmax_gemmlowp_ukernel__reference(
    const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end, const int8_t* restrict input,
    int32_t input_zero_point, const uint32_t* restrict row_offsets, const uint32_t* restrict column_indices,
    const int8_t* restrict values, const int32_t* restrict bias, const int32_t* restrict multipliers,
    const int32_t* restrict shifts, int32_t output_zero_point, int32_t output_min, int32_t output_max,
    int16_t* restrict workspace, int8_t* restrict output) {
  (void)workspace;
  const size_t output_channels = g->groups * g->group_output_channels;
  for (size_t p = 0; p < whittle_conv2d_output_pixels(g); p++) {
    const whittle_conv2d_position at = whittle_conv2d_output_position(g, p);
    for (size_t o = oc_begin; o < oc_end; o++) {
      const size_t group = o / g->group_output_channels;
      int64_t sum = 0;
      for (uint32_t e = row_offsets[o]; e < row_offsets[o + 1]; e++) {
        size_t index;
        // Padding is the real value 0, i.e. x = input_zero_point: it adds nothing.
        if (!whittle_conv2d_tap_input(g, at, group, column_indices[e], &index)) continue;
        sum += (int64_t)values[e] * ((int64_t)input[index] - input_zero_point);
      }
      output[p * output_channels + o] =
          qs8_finish_gemmlowp((int32_t)sum, bias != NULL ? bias[o] : 0, multipliers[o], shifts[o],
                              output_zero_point, output_min, output_max);
    }
  }
}

void sparse_qs8_fc_minmax_gemmlowp_ukernel__reference(
    size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,
    const int8_t* restrict input, int32_t input_zero_point, const uint32_t* restrict row_offsets,
    const uint32_t* restrict column_indices, const int8_t* restrict values, const int32_t* restrict bias,
    const int32_t* restrict multipliers, const int32_t* restrict shifts, int32_t output_zero_point,
    int32_t output_min, int32_t output_max, int8_t* restrict output) {
  const whittle_conv2d_geometry g = whittle_fc_geometry(batch, input_channels, output_channels);
  sparse_qs8_conv2d_minmax_gemmlowp_ukernel__reference(
      &g, oc_begin, oc_end, input, input_zero_point, row_offsets, column_indices, values, bias, multipliers,
      shifts, output_zero_point, output_min, output_max, NULL, output);
}

static int32_t sparse_qs8_dot(const int16_t* x, const uint32_t* columns, const int8_t* values, size_t count) {
  int32_t acc0 = 0, acc1 = 0;
  size_t e = 0;
  for (; e + 2 <= count; e += 2) {
    acc0 += (int32_t)values[e] * x[columns[e]];
    acc1 += (int32_t)values[e + 1] * x[columns[e + 1]];
  }
  if (e < count) {
    acc0 += (int32_t)values[e] * x[columns[e]];
  }
  return acc0 + acc1;
}

void sparse_qs8_conv2d_minmax_gemmlowp_ukernel__scalar(
    const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end, const int8_t* restrict input,
    int32_t input_zero_point, const uint32_t* restrict row_offsets, const uint32_t* restrict column_indices,
    const int8_t* restrict values, const int32_t* restrict bias, const int32_t* restrict multipliers,
    const int32_t* restrict shifts, int32_t output_zero_point, int32_t output_min, int32_t output_max,
    int16_t* restrict workspace, int8_t* restrict output) {
  const size_t output_channels = g->groups * g->group_output_channels;
  if (oc_begin >= oc_end) {
    return;
  }
  const size_t first_group = oc_begin / g->group_output_channels;
  const size_t last_group = (oc_end - 1) / g->group_output_channels;
  for (size_t p = 0; p < whittle_conv2d_output_pixels(g); p++) {
    const whittle_conv2d_position at = whittle_conv2d_output_position(g, p);
    int8_t* out = output + p * output_channels;
    for (size_t group = first_group; group <= last_group; group++) {
      sparse_qs8_im2col(g, input, at.n, at.oy, at.ox, group, input_zero_point, workspace);
      size_t begin, end;
      whittle_conv2d_group_channel_range(g, group, oc_begin, oc_end, &begin, &end);
      for (size_t o = begin; o < end; o++) {
        const uint32_t first = row_offsets[o];
        const int32_t sum =
            sparse_qs8_dot(workspace, column_indices + first, values + first, row_offsets[o + 1] - first);
        out[o] = qs8_finish_gemmlowp(sum, bias != NULL ? bias[o] : 0, multipliers[o], shifts[o],
                                     output_zero_point, output_min, output_max);
      }
    }
  }
}

void sparse_qs8_fc_minmax_gemmlowp_ukernel__scalar(
    size_t batch, size_t input_channels, size_t output_channels, size_t oc_begin, size_t oc_end,
    const int8_t* restrict input, int32_t input_zero_point, const uint32_t* restrict row_offsets,
    const uint32_t* restrict column_indices, const int8_t* restrict values, const int32_t* restrict bias,
    const int32_t* restrict multipliers, const int32_t* restrict shifts, int32_t output_zero_point,
    int32_t output_min, int32_t output_max, int8_t* restrict output) {
  for (size_t n = 0; n < batch; n++) {
    const int8_t* x = input + n * input_channels;
    for (size_t o = oc_begin; o < oc_end; o++) {
      // sum w * (x - zp) = sum w * x - zp * sum w, both exact in int32 for <= 65536 nonzeros.
      int32_t dot = 0, weight_sum = 0;
      for (uint32_t e = row_offsets[o]; e < row_offsets[o + 1]; e++) {
        dot += (int32_t)values[e] * x[column_indices[e]];
        weight_sum += values[e];
      }
      const int32_t sum = (int32_t)((int64_t)dot - (int64_t)input_zero_point * weight_sum);
      output[n * output_channels + o] =
          qs8_finish_gemmlowp(sum, bias != NULL ? bias[o] : 0, multipliers[o], shifts[o], output_zero_point,
                              output_min, output_max);
    }
  }
}

// ---- CSR encoding ----

#define SPARSE_DEFINE_ENCODE(name, T)                                                                       \
  size_t name(size_t rows, size_t columns, const T* dense, uint32_t* row_offsets, uint32_t* column_indices, \
              T* values) {                                                                                  \
    size_t nnz = 0;                                                                                         \
    row_offsets[0] = 0;                                                                                     \
    for (size_t r = 0; r < rows; r++) {                                                                     \
      for (size_t c = 0; c < columns; c++) {                                                                \
        const T v = dense[r * columns + c];                                                                 \
        if (v != 0) {                                                                                       \
          column_indices[nnz] = (uint32_t)c;                                                                \
          values[nnz] = v;                                                                                  \
          nnz++;                                                                                            \
        }                                                                                                   \
      }                                                                                                     \
      row_offsets[r + 1] = (uint32_t)nnz;                                                                   \
    }                                                                                                       \
    return nnz;                                                                                             \
  }

SPARSE_DEFINE_ENCODE(sparse_f32_csr_encode, float)
SPARSE_DEFINE_ENCODE(sparse_qs8_csr_encode, int8_t)
