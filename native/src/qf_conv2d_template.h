// Private to the qf kernel files: the drivers, reference kernels and quantizers of ONE word size, written
// once and instantiated for both by qf_conv2d_impl.h (this file has no include guard on purpose). Before each
// inclusion the includer defines:
//   QF_TAG            qf16 or qf8 (the word and bias types are QF_TAG's qf*_word and qf*_bias)
//   QF_DOT            the type of a span's exact dot product: int64_t (qf16) or int32_t (qf8)
//   QF_WEIGHT_LIMIT   the quantizers' saturation bound (QF16_WEIGHT_MAX or QF8_WEIGHT_MAX)
// Everything here is static inline: each ISA file's kernels inline the drivers with its own dot product.
#define QF_PASTE2(a, b) a##_##b
#define QF_PASTE(a, b) QF_PASTE2(a, b)
#define QF_FN(name) QF_PASTE(QF_TAG, name)
#define QF_WORD QF_FN(word)
#define QF_BIAS QF_FN(bias)

typedef QF_DOT (*QF_FN(dot_fn))(const QF_WORD* x, const QF_WORD* w, size_t n);

// Blocked driver (SIMD): output channels in blocks of B. A block's weights are widened once per call into a
// stack buffer of int16 pairs, wt[k / 2][j][k % 2] for channel j of the block, so one broadcast pair of
// inputs feeds B channels through one pair-multiply-add (vpmaddwd / vmlal). block_span adds
// sum_{i < n} x[i] * w[i][j] to acc[j] (n even, wt at an even k), exactly: qf8 pair sums accumulate in int32
// (exact by QF8_MAX_REDUCTION); qf16 ones may add in int32 for `flush` pairs at most before they are widened
// to int64, flush = (2^15 - 1) / max|w| over the block's weights (|a pair sum| <= 2 * 2^15 * max|w|, so a
// partial sum of flush pairs stays below 2^31; flush >= 1 as max|w| <= 32767). Only for even
// group_input_channels, so that every span starts at an even k; returns the first channel it did not compute
// (leftovers, odd or oversized reductions, blocks straddling two groups, layers of < 4 output pixels).
typedef void (*QF_FN(block_span_fn))(const QF_WORD* x, const int16_t* wt, size_t n, size_t flush,
                                     QF_DOT* acc);

QF_DRIVER size_t QF_FN(conv2d_drive_blocked)(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                             const QF_WORD* input, const QF_WORD* weights,
                                             const QF_BIAS* bias, int32_t shift, int32_t output_min,
                                             int32_t output_max, QF_WORD* output, size_t block,
                                             QF_FN(block_span_fn) block_span) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t reduction = g->kernel_height * g->kernel_width * gic;
  // The widening costs as much as a pass over the block's weights: below 4 output pixels (fully-connected
  // layers at batch 1) the one-channel path is cheaper.
  if (gic % 2 != 0 || block * reduction > QF_EXPANDED_WEIGHTS ||
      g->batch * g->output_height * g->output_width < 4) {
    return oc_begin;
  }
  int16_t wt[QF_EXPANDED_WEIGHTS];
  size_t ob = oc_begin;
  for (; ob + block <= oc_end; ob += block) {
    const size_t group = ob / g->group_output_channels;
    if ((ob + block - 1) / g->group_output_channels != group) {
      break;  // the caller's one-channel path takes it from here
    }
    for (size_t k = 0; k < reduction; k++) {
      for (size_t j = 0; j < block; j++) {
        wt[(k / 2) * block * 2 + j * 2 + k % 2] = weights[(ob + j) * reduction + k];
      }
    }
    int32_t max_abs = 1;  // the block's rows are contiguous: one vectorizable pass
    for (size_t i = ob * reduction; i < (ob + block) * reduction; i++) {
      const int32_t w = weights[i] < 0 ? -(int32_t)weights[i] : weights[i];
      max_abs = w > max_abs ? w : max_abs;
    }
    const size_t flush = (size_t)(((INT32_C(1) << 15) - 1) / max_abs);
    for (size_t n = 0; n < g->batch; n++) {
      const QF_WORD* image = input + n * g->input_height * g->input_width * input_channels;
      for (size_t oy = 0; oy < g->output_height; oy++) {
        size_t ky0, ky1;
        whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height,
                                  &ky0, &ky1);
        for (size_t ox = 0; ox < g->output_width; ox++) {
          size_t kx0, kx1;
          whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width,
                                    &kx0, &kx1);
          QF_DOT acc[QF_MAX_BLOCK] = {0};
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const QF_WORD* in_row = image + iy * g->input_width * input_channels + group * gic;
            const size_t ix0 = ox * g->stride_width + kx0 - g->padding_left;
            if (g->groups == 1) {
              block_span(in_row + ix0 * input_channels, wt + (ky * g->kernel_width + kx0) * gic * block,
                         (kx1 - kx0) * gic, flush, acc);
            } else {
              for (size_t kx = kx0; kx < kx1; kx++) {
                block_span(in_row + (ix0 + kx - kx0) * input_channels,
                           wt + (ky * g->kernel_width + kx) * gic * block, gic, flush, acc);
              }
            }
          }
          QF_WORD* out = output + ((n * g->output_height + oy) * g->output_width + ox) * output_channels + ob;
          for (size_t j = 0; j < block; j++) {
            const int64_t total = (int64_t)acc[j] + (bias != NULL ? bias[ob + j] : 0);
            out[j] = (QF_WORD)qf_round_shift_saturate(total, shift, output_min, output_max);
          }
        }
      }
    }
  }
  return ob;
}

// One output channel at a time: the driver walks output positions, the output-channel range and the valid
// kernel taps (padding is skipped, which is exact because padding is 0); `dot` is the ISA's exact dot product
// of a contiguous span.
QF_DRIVER void QF_FN(conv2d_drive)(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                   const QF_WORD* input, const QF_WORD* weights, const QF_BIAS* bias,
                                   int32_t shift, int32_t output_min, int32_t output_max, QF_WORD* output,
                                   QF_FN(dot_fn) dot) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  const size_t gic = g->group_input_channels;
  const size_t reduction = g->kernel_height * g->kernel_width * gic;
  for (size_t n = 0; n < g->batch; n++) {
    const QF_WORD* image = input + n * g->input_height * g->input_width * input_channels;
    for (size_t oy = 0; oy < g->output_height; oy++) {
      size_t ky0, ky1;
      whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height, &ky0,
                                &ky1);
      for (size_t ox = 0; ox < g->output_width; ox++) {
        size_t kx0, kx1;
        whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width, &kx0,
                                  &kx1);
        QF_WORD* out = output + ((n * g->output_height + oy) * g->output_width + ox) * output_channels;
        for (size_t o = oc_begin; o < oc_end; o++) {
          const size_t group = o / g->group_output_channels;
          const QF_WORD* w = weights + o * reduction;
          int64_t acc = bias != NULL ? bias[o] : 0;
          for (size_t ky = ky0; ky < ky1; ky++) {
            const size_t iy = oy * g->stride_height + ky - g->padding_top;
            const QF_WORD* row = image + iy * g->input_width * input_channels + group * gic;
            const size_t ix0 = ox * g->stride_width + kx0 - g->padding_left;
            if (g->groups == 1) {
              // One group: the valid taps of a kernel row are one contiguous span in input and weights.
              acc +=
                  dot(row + ix0 * input_channels, w + (ky * g->kernel_width + kx0) * gic, (kx1 - kx0) * gic);
            } else {
              for (size_t kx = kx0; kx < kx1; kx++) {
                acc +=
                    dot(row + (ix0 + kx - kx0) * input_channels, w + (ky * g->kernel_width + kx) * gic, gic);
              }
            }
          }
          out[o] = (QF_WORD)qf_round_shift_saturate(acc, shift, output_min, output_max);
        }
      }
    }
  }
}

// Depthwise driver (group_input_channels = group_output_channels = 1): vectorized across channels rather
// than along the (9-element) reduction. A chunk of up to 64 channels' weights is transposed once per call
// into wt[tap][channel]; each output position then runs, per valid tap, one plain loop over the chunk's
// contiguous channels, which the compiler vectorizes with this file's ISA. The per-channel sums are QF_DOT
// (at most 64 taps, so exact), the bias is added in int64. Returns oc_end when it computed the range,
// oc_begin when the layer is not depthwise or its kernel has more than 64 taps.
QF_DRIVER size_t QF_FN(conv2d_drive_depthwise)(const whittle_conv2d_geometry* g, size_t oc_begin,
                                               size_t oc_end, const QF_WORD* input, const QF_WORD* weights,
                                               const QF_BIAS* bias, int32_t shift, int32_t output_min,
                                               int32_t output_max, QF_WORD* output) {
  QF_WORD wt[QF_DEPTHWISE_MAX_TAPS * QF_DEPTHWISE_CHUNK];
  if (g->group_input_channels != 1 || g->group_output_channels != 1 ||
      g->kernel_height * g->kernel_width > QF_DEPTHWISE_MAX_TAPS) {
    return oc_begin;
  }
  const size_t channels = g->groups;
  const size_t taps = g->kernel_height * g->kernel_width;
  for (size_t c0 = oc_begin; c0 < oc_end; c0 += QF_DEPTHWISE_CHUNK) {
    const size_t count = oc_end - c0 < QF_DEPTHWISE_CHUNK ? oc_end - c0 : QF_DEPTHWISE_CHUNK;
    for (size_t t = 0; t < taps; t++) {
      for (size_t c = 0; c < count; c++) {
        wt[t * QF_DEPTHWISE_CHUNK + c] = weights[(c0 + c) * taps + t];
      }
    }
    for (size_t n = 0; n < g->batch; n++) {
      for (size_t oy = 0; oy < g->output_height; oy++) {
        size_t ky0, ky1;
        whittle_conv2d_valid_taps(oy, g->stride_height, g->padding_top, g->kernel_height, g->input_height,
                                  &ky0, &ky1);
        for (size_t ox = 0; ox < g->output_width; ox++) {
          size_t kx0, kx1;
          whittle_conv2d_valid_taps(ox, g->stride_width, g->padding_left, g->kernel_width, g->input_width,
                                    &kx0, &kx1);
          QF_DOT acc[QF_DEPTHWISE_CHUNK];
          for (size_t c = 0; c < count; c++) {
            acc[c] = 0;
          }
          for (size_t ky = ky0; ky < ky1; ky++) {
            for (size_t kx = kx0; kx < kx1; kx++) {
              const size_t iy = oy * g->stride_height + ky - g->padding_top;
              const size_t ix = ox * g->stride_width + kx - g->padding_left;
              const size_t t = ky * g->kernel_width + kx;
              const QF_WORD* x = input + ((n * g->input_height + iy) * g->input_width + ix) * channels + c0;
              const QF_WORD* w = wt + t * QF_DEPTHWISE_CHUNK;
              for (size_t c = 0; c < count; c++) {
                acc[c] += (int32_t)x[c] * (int32_t)w[c];
              }
            }
          }
          QF_WORD* out = output + ((n * g->output_height + oy) * g->output_width + ox) * channels + c0;
          for (size_t c = 0; c < count; c++) {
            const int64_t total = (int64_t)acc[c] + (bias != NULL ? bias[c0 + c] : 0);
            out[c] = (QF_WORD)qf_round_shift_saturate(total, shift, output_min, output_max);
          }
        }
      }
    }
  }
  return oc_end;
}

// The definition, written for clarity (direct loops, int64 products): the reference every variant is tested
// against.
static inline void QF_FN(conv2d_reference)(const whittle_conv2d_geometry* g, size_t oc_begin, size_t oc_end,
                                           const QF_WORD* input, const QF_WORD* weights, const QF_BIAS* bias,
                                           int32_t shift, int32_t output_min, int32_t output_max,
                                           QF_WORD* output) {
  const size_t input_channels = g->groups * g->group_input_channels;
  const size_t output_channels = g->groups * g->group_output_channels;
  for (size_t p = 0; p < whittle_conv2d_output_pixels(g); p++) {
    const whittle_conv2d_position at = whittle_conv2d_output_position(g, p);
    for (size_t o = oc_begin; o < oc_end; o++) {
      const size_t group = o / g->group_output_channels;
      int64_t acc = bias != NULL ? bias[o] : 0;
      for (size_t ky = 0; ky < g->kernel_height; ky++) {
        for (size_t kx = 0; kx < g->kernel_width; kx++) {
          size_t pixel;
          if (!whittle_conv2d_tap_pixel(g, at, ky, kx, &pixel)) continue;  // padding: 0 adds nothing
          const QF_WORD* x = input + pixel * input_channels + group * g->group_input_channels;
          const QF_WORD* w =
              weights + ((o * g->kernel_height + ky) * g->kernel_width + kx) * g->group_input_channels;
          for (size_t i = 0; i < g->group_input_channels; i++) {
            acc += (int64_t)x[i] * (int64_t)w[i];
          }
        }
      }
      output[p * output_channels + o] = (QF_WORD)qf_round_shift_saturate(acc, shift, output_min, output_max);
    }
  }
}

static inline void QF_FN(fc_reference)(size_t batch, size_t input_channels, size_t output_channels,
                                       size_t oc_begin, size_t oc_end, const QF_WORD* input,
                                       const QF_WORD* weights, const QF_BIAS* bias, int32_t shift,
                                       int32_t output_min, int32_t output_max, QF_WORD* output) {
  for (size_t n = 0; n < batch; n++) {
    for (size_t o = oc_begin; o < oc_end; o++) {
      int64_t acc = bias != NULL ? bias[o] : 0;
      for (size_t i = 0; i < input_channels; i++) {
        acc += (int64_t)input[n * input_channels + i] * (int64_t)weights[o * input_channels + i];
      }
      output[n * output_channels + o] = (QF_WORD)qf_round_shift_saturate(acc, shift, output_min, output_max);
    }
  }
}

// The portable dot product: int32 products (exact for both words), summed in QF_DOT (exact: see qf_conv2d.h).
static inline QF_DOT QF_FN(dot_scalar)(const QF_WORD* x, const QF_WORD* w, size_t n) {
  QF_DOT acc = 0;
  for (size_t i = 0; i < n; i++) {
    acc += (int32_t)x[i] * (int32_t)w[i];
  }
  return acc;
}

static inline void QF_FN(quantize_nearest_impl)(size_t count, const float* input, int32_t fractional_length,
                                                QF_WORD* output) {
  for (size_t i = 0; i < count; i++) {
    output[i] = (QF_WORD)qf_saturate_floor(ldexp((double)input[i], fractional_length) + 0.5, QF_WEIGHT_LIMIT);
  }
}

static inline void QF_FN(quantize_stochastic_impl)(size_t count, const float* input,
                                                   int32_t fractional_length, uint32_t seed,
                                                   uint32_t first_index, QF_WORD* output) {
  for (size_t i = 0; i < count; i++) {
    const double u = whittle_fixed_point_uniform24(seed, first_index + (uint32_t)i);
    output[i] = (QF_WORD)qf_saturate_floor(ldexp((double)input[i], fractional_length) + u, QF_WEIGHT_LIMIT);
  }
}

static inline void QF_FN(dequantize_impl)(size_t count, const QF_WORD* input, int32_t fractional_length,
                                          float* output) {
  for (size_t i = 0; i < count; i++) {
    output[i] = (float)ldexp((double)input[i], -fractional_length);
  }
}

#undef QF_BIAS
#undef QF_WORD
#undef QF_FN
#undef QF_PASTE
#undef QF_PASTE2
