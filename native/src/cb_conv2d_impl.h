// Body of the SIMD codebook conv kernels: CB_LANES output pixels at once, one vector lane per pixel. Each
// cb_conv2d__<isa>.c defines CB_LANES and CB_CONV2D_NAME, then includes this file; compiled with that ISA's
// flags, GCC's vector extensions become its loads, adds and multiplies (the kernel needs nothing else).
//
// Per block of CB_LANES output pixels and per group, the taps of those pixels are gathered once into a
// tile [K][CB_LANES] (0 for padding). Then, per output channel, every weight adds its tap vector to the bin
// of its centroid (bins [CB_BIN_SETS][codebook_size][CB_LANES]), and the output is sum_c codebook[c] *
// bins[c]: one vector add per weight for CB_LANES pixels, where the scalar kernel does one add per weight and
// pixel. A layer whose reduction is shorter than the codebook multiplies each tap by its centroid directly
// instead (zeroing and reading 256 bins would cost more than 9 taps). Fewer than CB_LANES / 2 output pixels
// in all: the scalar kernel (most lanes would be idle).
#include <string.h>

#include "cb_conv2d.h"

#if CB_LANES > CB_MAX_LANES
#error "CB_LANES exceeds the workspace's CB_MAX_LANES"
#endif

typedef float cb_vec __attribute__((vector_size(CB_LANES * sizeof(float))));

// memcpy: the workspace and the tile rows are not aligned to the vector size.
static inline cb_vec cb_vload(const float* p) {
  cb_vec v;
  memcpy(&v, p, sizeof(v));
  return v;
}

static inline void cb_vstore(float* p, cb_vec v) { memcpy(p, &v, sizeof(v)); }

// bins[set(k)][index_k] += tile[k] for every k of the row, set(k) = k % CB_BIN_SETS: consecutive weights
// with the same centroid then update different bins, so an update rarely waits for the store of the one
// before it (a bin update is a load, an add and a store; a chain of them through one bin runs at the
// store-to-load forwarding latency, several times the add's).
static inline void cb_vaccumulate(float* restrict bins, size_t set_stride, const float* restrict tile,
                                  const uint8_t* row, size_t row_bytes, size_t kernel, uint32_t bits) {
  size_t k = 0;
#define CB_ADD(set, index, kk)                                        \
  do {                                                                \
    float* bin_ = bins + (set)*set_stride + (size_t)(index)*CB_LANES; \
    cb_vstore(bin_, cb_vload(bin_) + cb_vload(tile + (kk)*CB_LANES)); \
  } while (0)
  if (bits == 8) {
    for (; k + 4 <= kernel; k += 4) {
      CB_ADD(0, row[k], k);
      CB_ADD(1, row[k + 1], k + 1);
      CB_ADD(2, row[k + 2], k + 2);
      CB_ADD(3, row[k + 3], k + 3);
    }
  } else if (bits == 4) {
    for (; k + 4 <= kernel; k += 4) {
      const uint8_t b0 = row[k / 2], b1 = row[k / 2 + 1];
      CB_ADD(0, b0 & 15, k);
      CB_ADD(1, b0 >> 4, k + 1);
      CB_ADD(2, b1 & 15, k + 2);
      CB_ADD(3, b1 >> 4, k + 3);
    }
  }
  const uint32_t mask = (UINT32_C(1) << bits) - 1;
  for (; k < kernel; k++) {
    const size_t bit = k * bits;
    uint32_t window = row[bit / 8];
    if (bit / 8 + 1 < row_bytes) window |= (uint32_t)row[bit / 8 + 1] << 8;
    CB_ADD(k % CB_BIN_SETS, (window >> (bit % 8)) & mask, k);
  }
#undef CB_ADD
}

void CB_CONV2D_NAME(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                    const float* restrict input, const uint8_t* restrict indices, uint32_t index_bits,
                    const float* restrict codebook, size_t codebook_size, const float* restrict bias,
                    float output_min, float output_max, float* restrict workspace, float* restrict output) {
  const size_t pixels = g->output_height * g->output_width;
  const size_t total = g->batch * pixels;
  const size_t kernel = g->kernel_height * g->kernel_width * g->group_input_channels;
  if (oc_begin >= oc_end) return;
  // Few output pixels (most lanes would idle), or a reduction shorter than the bins (depthwise: the scalar
  // kernel's direct order, without the tile): the scalar kernel.
  if (total < CB_LANES / 2 || kernel < CB_BIN_SETS * codebook_size) {
    cb_conv2d_minmax_ukernel__scalar(g, oc_begin, oc_end, input, indices, index_bits, codebook, codebook_size,
                                     bias, output_min, output_max, workspace, output);
    return;
  }
  const size_t gic = g->group_input_channels, gout = g->group_output_channels;
  const size_t input_channels = g->groups * gic, output_channels = g->groups * gout;
  const size_t row_bytes = cb_row_bytes(kernel, index_bits);
  float* restrict tile = workspace;
  float* restrict bins = workspace + kernel * CB_LANES;
  for (size_t p0 = 0; p0 < total; p0 += CB_LANES) {
    const size_t lanes = total - p0 < CB_LANES ? total - p0 : CB_LANES;
    for (size_t group = oc_begin / gout; group <= (oc_end - 1) / gout; group++) {
      // The tile: tile[k][j] = tap k of output pixel p0 + j, 0 in the padding and in unused lanes.
      for (size_t j = 0; j < CB_LANES; j++) {
        if (j >= lanes) {
          for (size_t k = 0; k < kernel; k++) tile[k * CB_LANES + j] = 0.0f;
          continue;
        }
        const size_t p = p0 + j, n = p / pixels, oy = (p % pixels) / g->output_width,
                     ox = p % g->output_width;
        const float* image = input + n * g->input_height * g->input_width * input_channels + group * gic;
        for (size_t ky = 0; ky < g->kernel_height; ky++) {
          const ptrdiff_t iy = (ptrdiff_t)(oy * g->stride_height + ky) - (ptrdiff_t)g->padding_top;
          for (size_t kx = 0; kx < g->kernel_width; kx++) {
            const ptrdiff_t ix = (ptrdiff_t)(ox * g->stride_width + kx) - (ptrdiff_t)g->padding_left;
            float* column = tile + (ky * g->kernel_width + kx) * gic * CB_LANES + j;
            if (iy < 0 || ix < 0 || iy >= (ptrdiff_t)g->input_height || ix >= (ptrdiff_t)g->input_width) {
              for (size_t i = 0; i < gic; i++) column[i * CB_LANES] = 0.0f;
            } else {
              const float* x = image + ((size_t)iy * g->input_width + (size_t)ix) * input_channels;
              for (size_t i = 0; i < gic; i++) column[i * CB_LANES] = x[i];
            }
          }
        }
      }
      const size_t o_first = group * gout > oc_begin ? group * gout : oc_begin;
      const size_t o_last = (group + 1) * gout < oc_end ? (group + 1) * gout : oc_end;
      for (size_t o = o_first; o < o_last; o++) {
        const uint8_t* row = indices + o * row_bytes;
        const size_t set_stride = codebook_size * CB_LANES;
        memset(bins, 0, CB_BIN_SETS * set_stride * sizeof(float));
        cb_vaccumulate(bins, set_stride, tile, row, row_bytes, kernel, index_bits);
        cb_vec acc = {0};
        for (size_t c = 0; c < codebook_size; c++) {
          const float* bin = bins + c * CB_LANES;
          acc += codebook[c] * ((cb_vload(bin) + cb_vload(bin + set_stride)) +
                                (cb_vload(bin + 2 * set_stride) + cb_vload(bin + 3 * set_stride)));
        }
        float sums[CB_LANES];
        cb_vstore(sums, acc);
        const float b = bias != NULL ? bias[o] : 0.0f;
        for (size_t j = 0; j < lanes; j++) {
          output[(p0 + j) * output_channels + o] = whittle_clamp_f32(sums[j] + b, output_min, output_max);
        }
      }
    }
  }
}
