// int8 affine operators in NHWC layout: per-output-channel weight scales, int32 accumulation and gemmlowp
// (TFLite) fixed-point requantization, bit-exact against the __reference functions on every ISA.
//
// Activations are int8 (qs8) or uint8 (qu8), chosen per operator by `unsigned_activations`. Kernels work in
// the signed domain: a uint8 value u is the int8 value u ^ 0x80 with zero point, min and max moved by -128,
// which leaves every (x - zero_point) and every clamp unchanged; the flip is applied while loading (im2col,
// or an XOR in the kernel) and storing. Weights are always int8, symmetric (zero point 0).
//
// Requantization of accumulator acc for output channel o (see qs8_requantize_gemmlowp.h):
//   out = clamp(output_zero_point + qs8_requantize_gemmlowp(acc, multipliers[o], shifts[o]), min, max)
// Kernel name grammar: <dtype>_<op>_<activation>_<requant>_ukernel_<MRxNRcKR | cCB>__<isa>.
#ifndef WHITTLE_QS8_OPS_H_
#define WHITTLE_QS8_OPS_H_

#include <stdbool.h>

#include "conv2d_geometry.h"
#include "f32_ops.h"
#include "qs8_requantize_gemmlowp.h"
#include "threadpool.h"

WHITTLE_EXTERN_C_BEGIN

// Quantization of an operator's activations, in the raw domain of its dtype: [-128, 127] for int8,
// [0, 255] for uint8.
typedef struct qs8_activation_quantization {
  bool unsigned_activations;
  int32_t input_zero_point;
  int32_t output_zero_point;
  int32_t output_min;  // a fused ReLU is output_min = output_zero_point
  int32_t output_max;
} qs8_activation_quantization;

// NULL when valid; otherwise the name of the first field out of range.
const char* qs8_activation_quantization_problem(const qs8_activation_quantization* q);

// Output stage of a kernel, in the signed domain.
typedef struct qs8_gemmlowp_params {
  int32_t output_zero_point, output_min, output_max;  // signed domain, min <= max
  uint8_t input_flip;   // XORed into loaded activations (0x80 for uint8), for kernels that read input
  uint8_t output_flip;  // XORed into stored bytes (0x80 for uint8)
} qs8_gemmlowp_params;

// ---------------------------------------------------------------------------------------------------------
// Microkernels

// Packed weights of one block of NR output channels (GEMM) or CB channels (depthwise), 4-byte aligned:
//   int32 bias'[NR]         bias - zero_point_in_kernel_domain * sum_k w[k][n] (wrapping)
//   int32 multiplier[NR]
//   int32 left_shift[NR]    max(shift, 0)
//   int32 right_shift[NR]   max(-shift, 0)
//   int8  weights[kc / KR][NR][KR]   (depthwise: [taps][CB])
//
// GEMM: c[m][n] = output stage of (bias'[n] + sum_k a[m][k] * w[k][n]); a rows hold kc bytes (kc a multiple
// of the kernel's k_align; w is zero past K) in the kernel's domain: int8, or uint8 (= int8 ^ 0x80) for
// kernels with a_unsigned (VNNI's vpdpbusd multiplies u8 x s8).
typedef void (*qs8_gemm_ukernel_fn)(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride,
                                    const void* packed_w, int8_t* c, size_t c_stride,
                                    const qs8_gemmlowp_params* params);
// The indirect GEMM of the convolutions with groups == 1 (f32_ops.h's f32_igemm_ukernel_fn, in int8): row m
// is an output pixel, a[m] the byte its first tap reads in the padded input, which the operator fills in the
// kernel's domain (flipped for a_unsigned, padding = the input zero point). The reduction runs over
// segments, each one contiguous span of the padded input (a kernel row of kernel_width * cin bytes, or one
// tap of cin bytes under horizontal dilation), each padded with zero weights to a multiple of the kernel's
// k_align; group g of k_align bytes starts at a[m] + k_offsets[g]. Reads may run up to k_align - 1 bytes
// past a segment (into the next pixels or the buffer's slack), which zero weights cancel. MR <= 8.
typedef void (*qs8_igemm_ukernel_fn)(size_t mr, size_t nc, size_t kc, const int8_t* const* a,
                                     const int32_t* k_offsets, const void* packed_w, int8_t* c,
                                     size_t c_stride, const qs8_gemmlowp_params* params);
#define QS8_IGEMM_MAX_MR 8

// A run of the indirect GEMM over real taps only (qs8_igemm_runs_ukernel_fn): reduction bytes
// [k_begin, k_end) (multiples of k_align, inside one segment), multiplied for the tile rows
// row[0 .. rows - 1] only.
typedef struct qs8_igemm_run {
  uint32_t k_begin, k_end;
  uint8_t rows;
  uint8_t row[QS8_IGEMM_MAX_MR];
} qs8_igemm_run;

// The indirect GEMM of qs8_igemm_ukernel_fn (same arguments and packing) where each row multiplies only the
// reduction runs that list it: a layer of few pixels skips the taps that read padding (ResNet-18's 2 x 2
// layers: 16 of the 36 (pixel, tap) pairs are real). Row r's accumulator then lacks the zero point times the
// weights of its skipped taps, which row_bias[r][n] (one int32 per output column of the call) adds back
// before the output stage (row_bias[r] holds nc rounded up to nr entries). mr <= QS8_IGEMM_MAX_MR; a run
// lists rows < mr.
typedef void (*qs8_igemm_runs_ukernel_fn)(size_t mr, size_t nc, size_t kc, const int8_t* const* a,
                                          const int32_t* k_offsets, const qs8_igemm_run* runs,
                                          size_t run_count, const int32_t* const* row_bias,
                                          const void* packed_w, int8_t* c, size_t c_stride,
                                          const qs8_gemmlowp_params* params);

// Depthwise: output[c] = output stage of (bias'[c] + sum_t (input[t][c] ^ input_flip) * w[t][c]).
typedef void (*qs8_dwconv_ukernel_fn)(size_t channels, size_t taps, const int8_t* const* input,
                                      const void* packed_w, int8_t* output,
                                      const qs8_gemmlowp_params* params);

// Output rows of a 3x3 depthwise convolution (dilation 1, the same packing as qs8_dwconv_ukernel_fn with
// taps = 9): output row y (at output + y * output_width * channels, y < output_rows) is output[x][c] = output
// stage of (bias'[c] + sum_t (tap_t(x)[c] ^ input_flip) * w[t][c]) for x < output_width, c < channels, with
// the tap pointers of whittle_dwconv3x3_taps over its three input rows rows[3 * y .. 3 * y + 2] (`pad`: the
// input zero point in `channels` bytes). Each block of CB channels keeps its weights (and output-stage
// constants) in registers across the rows: a layer of few, wide pixels (4 x 4 x 576) sets a block up once
// per call, not once per row.
typedef void (*qs8_dwconv3x3_ukernel_fn)(size_t channels, size_t output_rows, size_t output_width,
                                         const int8_t* const* rows, size_t input_width, size_t stride,
                                         size_t padding_left, const int8_t* pad, const void* packed_w,
                                         int8_t* output, const qs8_gemmlowp_params* params);

// The fields a GEMM and an IGEMM kernel share, in this order (qs8_ukernels.c fills both by position): the
// kernel's name, ISA and function; MR x NR tile; kr: k per packed column group; k_align: A rows are padded to
// a multiple of it; a_unsigned: A is uint8 (the kernel's domain, reached with input_flip).
#define QS8_GEMM_UKERNEL_FIELDS(fn_type) \
  const char* name;                      \
  whittle_isa isa;                       \
  fn_type fn;                            \
  uint8_t mr, nr, kr, k_align;           \
  bool a_unsigned

typedef struct qs8_gemm_ukernel {
  QS8_GEMM_UKERNEL_FIELDS(qs8_gemm_ukernel_fn);
  // A 1-row variant with the same packing (NULL if none): runs tiles of 1 or 2 rows (fully-connected with
  // batch 1, and the last rows of a conv) without computing MR rows.
  qs8_gemm_ukernel_fn fn_1;
  const char* name_1;
  // A variant with the same packing and fewer rows (NULL if none): runs tiles of 3 to mr_short rows (a 1x1
  // layer of few output pixels, e.g. MobileNet-v2's last stages at 2 x 2) without computing MR rows.
  qs8_gemm_ukernel_fn fn_short;
  uint8_t mr_short;
  const char* name_short;
} qs8_gemm_ukernel;

// Batch-1 fully-connected (GEMV): c[n] = output stage of (bias'[n] + sum_k (a[k] ^ input_flip) * w[n][k])
// for n < nc, k < kc. The kernel reads the k input bytes in place; input_flip maps them to the kernel's
// domain (uint8 for a_unsigned kernels, as for GEMM). packed_w: per block of 16 output channels (4-byte
// aligned), the header of a GEMM block with NR = 16 (bias', multiplier, left and right shift), then int8
// w[16][kc] with kc = k rounded up to kr, one row per output channel (zero past k, rows past nc zero).
typedef void (*qs8_gemv_ukernel_fn)(size_t nc, size_t k, const int8_t* a, const void* packed_w, int8_t* c,
                                    const qs8_gemmlowp_params* params);

typedef struct qs8_gemv_ukernel {
  const char* name;
  whittle_isa isa;
  qs8_gemv_ukernel_fn fn;
  uint8_t kr;
  bool a_unsigned;
  // The widest layer (output channels) this kernel is used for, 0 for any: wider ones run the GEMM kernel's
  // 1-row variant, when that is faster there.
  uint16_t max_channels;
} qs8_gemv_ukernel;

typedef struct qs8_igemm_ukernel {
  QS8_GEMM_UKERNEL_FIELDS(qs8_igemm_ukernel_fn);
  // The longest segment (bytes) the operator uses this kernel for, 0 for any: the c2 kernels widen A group by
  // group, which costs more than the GEMM's im2col once a segment is long (a kernel row of many channels,
  // e.g. 3 x 64 in a VGG layer); such layers keep the GEMM of the same ISA.
  uint16_t max_segment;
  // A variant with the same packing and fewer rows (NULL if none): runs tiles of at most mr_short rows (a
  // layer of few output pixels, e.g. ResNet-18's last stage at 2 x 2) without computing MR rows.
  qs8_igemm_ukernel_fn fn_short;
  uint8_t mr_short;
  const char* name_short;
  // The variant over real taps only, with the same packing (NULL if none): layers whose pixels read much
  // padding (qs8_conv2d.c's runs_pay).
  qs8_igemm_runs_ukernel_fn fn_runs;
  const char* name_runs;
} qs8_igemm_ukernel;

typedef struct qs8_dwconv_ukernel {
  const char* name;
  whittle_isa isa;
  qs8_dwconv_ukernel_fn fn;
  uint8_t cb;
  // The 3x3 row kernel with the same packing (every entry has one), and its name.
  qs8_dwconv3x3_ukernel_fn fn_3x3;
  const char* name_3x3;
} qs8_dwconv_ukernel;

// TFLite-style quantized add: each input is rescaled to a common 2^-20 grid by its own multiplier, summed,
// and requantized to the output. Multipliers/shifts as for requantization (shifts normally <= 0).
typedef struct qs8_add_params {
  bool unsigned_activations;
  int32_t a_zero_point, a_multiplier, a_shift;
  int32_t b_zero_point, b_multiplier, b_shift;
  int32_t output_zero_point, output_multiplier, output_shift;
  int32_t output_min, output_max;
} qs8_add_params;

#define QS8_ADD_LEFT_SHIFT 20

// The two input rescales of a qs8_add_params, as tables: an int8 / uint8 input has 256 values, so each
// input's requantized (x - zero_point) << QS8_ADD_LEFT_SHIFT is looked up by its raw byte (the reference's
// arithmetic, done once per parameter set by qs8_add_tables_init). Entry i of a table is the int32 whose
// byte k is plane[k][i]: the layout of byte-permute lookups (AVX-512 VBMI's VPERMT2B over 4 x 64 bytes).
typedef struct qs8_add_tables {
  uint8_t a[4][256] __attribute__((aligned(64)));
  uint8_t b[4][256] __attribute__((aligned(64)));
} qs8_add_tables;

void qs8_add_tables_init(const qs8_add_params* params, qs8_add_tables* tables);

// The add of qs8_add_params with its input rescales looked up in `tables` (built from the same params): the
// sum requantized, offset and clamped as qs8_add__reference does, the same bits.
typedef void (*qs8_vadd_tables_ukernel_fn)(size_t n, const void* a, const void* b, void* y,
                                           const qs8_add_params* params, const qs8_add_tables* tables);

typedef struct qs8_vadd_tables_ukernel {
  const char* name;
  whittle_isa isa;
  qs8_vadd_tables_ukernel_fn fn;
} qs8_vadd_tables_ukernel;

// TFLite-style quantized mul: out = clamp(output_zero_point + gemmlowp((a - a_zero_point) * (b -
// b_zero_point), multiplier, shift)), (multiplier, shift) the Q31 form of scale_a * scale_b / scale_out. Raw
// domain of the dtype; the product of two offsets (|offset| <= 255) cannot overflow int32.
typedef struct qs8_mul_params {
  bool unsigned_activations;
  int32_t a_zero_point, b_zero_point;
  int32_t output_zero_point, multiplier, shift;
  int32_t output_min, output_max;
} qs8_mul_params;

// Global average pool from one quantization to another (per tensor), requantized in the kernel:
//   out[n][c] = clamp(output_zero_point + gemmlowp(sum_p (x[n][p][c] - input_zero_point), multiplier, shift),
//                     output_min, output_max)
// with (multiplier, shift) the Q31 form of input_scale / (output_scale * pixels) (the runtime's
// quantizeMultiplier). Raw domain of the dtype (as qs8_activation_quantization); the int32 sum is exact
// for pixels <= QS8_GLOBAL_AVGPOOL_MAX_PIXELS.
typedef struct qs8_global_avgpool_params {
  bool unsigned_activations;
  int32_t input_zero_point;
  int32_t multiplier, shift;
  int32_t output_zero_point, output_min, output_max;
} qs8_global_avgpool_params;

#define QS8_GLOBAL_AVGPOOL_MAX_PIXELS ((size_t)1 << 23)

// Quantization of fp32 values (ONNX QuantizeLinear) and back (DequantizeLinear), per tensor or per channel:
// element i of [outer][channels][inner] belongs to channel (i / inner) % channels (per tensor: channels 1).
//   quantize:   y = clamp(round_half_even((double)x / scale[c]) + zero_point[c], lo, hi), NaN -> 0
//   dequantize: y = (float)((double)(x - zero_point[c]) * scale[c])
// in double precision, as the runtime's reference ops compute them, so both give the same bits.
typedef struct qs8_quantization_layout {
  size_t outer, channels, inner;
  const double* scales;        // [channels]
  const int32_t* zero_points;  // [channels], raw domain of the dtype
  bool unsigned_values;        // uint8 (else int8)
} qs8_quantization_layout;

// The integer average of an int8 / uint8 pool: sum / count (count > 0) rounded to the nearest integer, ties
// to even (the runtime's reference rounds the mean so, in agent/runtime/ops/pool.ts; TFLite rounds ties away
// from zero, which differs on exact halves only). |sum| < 2^31 for the windows pooling shapes allow.
static inline int32_t qs8_average_round_half_even(int32_t sum, int32_t count) {
  int32_t quotient = sum / count, remainder = sum % count;
  if (remainder < 0) {  // C truncates toward zero: make it the floor
    quotient -= 1;
    remainder += count;
  }
  if (2 * remainder > count || (2 * remainder == count && (quotient & 1) != 0)) quotient += 1;
  return quotient;
}

typedef struct qs8_simple_ukernels {
  const char* name;
  // y = clamp(x, min, max), raw domain (ReLU/ReLU6 in int8 are this clamp)
  void (*vclamp)(size_t n, const void* x, void* y, bool unsigned_activations, int32_t min, int32_t max);
  void (*vadd)(size_t n, const void* a, const void* b, void* y, const qs8_add_params* params);
  // Pooling keeps the input's scale and zero point. Average: sum / count rounded half to even
  // (qs8_average_round_half_even), as the runtime's reference executor rounds the mean.
  void (*maxpool)(const whittle_pool2d_shape* shape, const void* input, void* output,
                  bool unsigned_activations, int32_t min, int32_t max);
  void (*avgpool)(const whittle_pool2d_shape* shape, const void* input, void* output,
                  bool unsigned_activations, int32_t min, int32_t max);
  void (*global_avgpool_requant)(size_t batch, size_t pixels, size_t channels, const void* input,
                                 void* output, const qs8_global_avgpool_params* params);
  void (*quantize)(const qs8_quantization_layout* layout, const float* input, void* output);
  void (*dequantize)(const qs8_quantization_layout* layout, const void* input, float* output);
  // y[i] = table[(uint8_t)x[i]]: a unary activation through its 256-entry table (int8 or uint8 alike: the
  // table is indexed by the raw byte).
  void (*vlut)(size_t n, const uint8_t* x, uint8_t* y, const uint8_t* table);
  // The quantized mul of [rows][pixels][channels] by [rows][channels] (rows = pixels = 1: two tensors of
  // one shape).
  void (*vmul_channels)(size_t rows, size_t pixels, size_t channels, const void* a, const void* b, void* y,
                        const qs8_mul_params* params);
  // Bilinear resize (whittle_resize_shape) with qs8_resize_bilinear__reference's arithmetic, bit for bit.
  void (*resize_bilinear)(const whittle_resize_shape* shape, const void* input, void* output,
                          bool unsigned_activations);
} qs8_simple_ukernels;

WHITTLE_DECLARE_UKERNELS(qs8_gemm)
WHITTLE_DECLARE_UKERNELS(qs8_igemm)
WHITTLE_DECLARE_UKERNELS(qs8_dwconv)
// A fully-connected operator with one row runs the GEMV entry when that entry's ISA is at least the GEMM
// kernel's (same ladder); otherwise (no GEMV kernel for the ISA) the GEMM kernel's 1-row variant.
WHITTLE_DECLARE_UKERNELS(qs8_gemv)
WHITTLE_DECLARE_UKERNELS(qs8_vadd_tables)
// The tables kernel the residual add of a conv at `level` runs: the list's entry when its ISA is at least
// the element-wise set's (same ladder; qs8_add_tables_init once per parameter set), else NULL (the set's
// vadd, whose SIMD beats the portable tables kernel).
const qs8_vadd_tables_ukernel* qs8_vadd_tables_for(whittle_isa level);
const qs8_simple_ukernels* qs8_simple_ukernels_select(whittle_isa level);

// ---------------------------------------------------------------------------------------------------------
// References. Tensors are int8_t or uint8_t per unsigned_activations (hence void*).

void qs8_conv2d__reference(const whittle_conv2d_shape* shape, const void* input, const int8_t* weights,
                           const int32_t* bias, const int32_t* multipliers, const int32_t* shifts,
                           const qs8_activation_quantization* q, void* output);
void qs8_fully_connected__reference(size_t batch, size_t input_channels, size_t output_channels,
                                    const void* input, const int8_t* weights, const int32_t* bias,
                                    const int32_t* multipliers, const int32_t* shifts,
                                    const qs8_activation_quantization* q, void* output);
void qs8_maxpool__reference(const whittle_pool2d_shape* shape, const void* input, void* output,
                            bool unsigned_activations, int32_t min, int32_t max);
void qs8_avgpool__reference(const whittle_pool2d_shape* shape, const void* input, void* output,
                            bool unsigned_activations, int32_t min, int32_t max);
void qs8_global_avgpool__reference(size_t batch, size_t pixels, size_t channels, const void* input,
                                   void* output, bool unsigned_activations, int32_t min, int32_t max);
void qs8_global_avgpool_requant__reference(size_t batch, size_t pixels, size_t channels, const void* input,
                                           void* output, const qs8_global_avgpool_params* params);
void qs8_quantize__reference(const qs8_quantization_layout* layout, const float* input, void* output);
void qs8_dequantize__reference(const qs8_quantization_layout* layout, const void* input, float* output);
void qs8_add__reference(size_t n, const void* a, const void* b, void* output, const qs8_add_params* params);
void qs8_clamp__reference(size_t n, const void* input, void* output, bool unsigned_activations, int32_t min,
                          int32_t max);
void qs8_lut__reference(size_t n, const uint8_t* input, uint8_t* output, const uint8_t* table);
void qs8_mul_channels__reference(size_t rows, size_t pixels, size_t channels, const void* a, const void* b,
                                 void* output, const qs8_mul_params* params);
// Bilinear resize in the raw domain (input and output share their scale and zero point, as the layout ops),
// as the runtime's reference executor computes it (ops/resize.ts): the sum of f32_resize_bilinear__reference
// in double over the raw values, rounded half up (JavaScript's Math.round). The weights sum to 1 (within a
// double's rounding), so the sum stays in the dtype's range. Exact on every ISA: the kernels are built with
// -ffp-contract=off and the double operations are IEEE, so each path rounds the same products and sums.
void qs8_resize_bilinear__reference(const whittle_resize_shape* shape, const void* input, void* output,
                                    bool unsigned_activations);
// Dequantizes each row, computes the softmax in double precision and quantizes the result: softmax is the
// one int8 operator that does not stay in integers (its output range is fixed, [0, 1]).
void qs8_softmax__reference(size_t rows, size_t channels, const void* input, float input_scale,
                            int32_t input_zero_point, float output_scale, int32_t output_zero_point,
                            bool unsigned_activations, void* output);

// ---------------------------------------------------------------------------------------------------------
// Optimized operators

typedef struct qs8_conv2d_op qs8_conv2d_op;

// NULL on a bad shape or quantization, a shift outside [QS8_REQUANT_MIN_SHIFT, QS8_REQUANT_MAX_SHIFT], or
// when memory runs out. Copies everything it needs; the arrays may be freed afterwards.
qs8_conv2d_op* qs8_conv2d_create(const whittle_conv2d_shape* shape, const int8_t* weights,
                                 const int32_t* bias, const int32_t* multipliers, const int32_t* shifts,
                                 const qs8_activation_quantization* q, whittle_isa level);
qs8_conv2d_op* qs8_fully_connected_create(size_t batch, size_t input_channels, size_t output_channels,
                                          const int8_t* weights, const int32_t* bias,
                                          const int32_t* multipliers, const int32_t* shifts,
                                          const qs8_activation_quantization* q, whittle_isa level);
// A fixed-point Q(IL.FL) layer with 8-bit words (qf_conv2d.h: int8 input and weights, int32 bias at the
// input + weight fractional length, shift = input_fl + weight_fl - output_fl, rounding half up, saturation
// to [output_min, output_max]) on these int8 kernels, bit-exact. The accumulator is requantized by
// multiplier INT32_MAX (x 1 exactly below 2^30) and the shift; for a positive shift, offset * 2^shift is
// added through the bias and taken back by the output zero point, which makes every accumulator positive,
// where the kernels' rounding (half away from zero) is rounding half up. NULL with *unsupported when a
// layer's accumulators can reach 2^30 with the offset (or shifted left) or the shape is not one these
// kernels take (the caller keeps the qf8 kernels); NULL with !*unsupported when memory runs out.
qs8_conv2d_op* qs8_conv2d_create_fixed_point(const whittle_conv2d_shape* shape, const int8_t* weights,
                                             const int32_t* bias, int32_t shift, int32_t output_min,
                                             int32_t output_max, whittle_isa level, bool* unsupported);
bool qs8_conv2d_run(qs8_conv2d_op* op, const void* input, void* output, whittle_threadpool* pool);
// The conv followed by a residual add (issue 13's conv + add fusion): the conv's requantized output tile
// (as qs8_conv2d_run writes it: the op's own output quantization and clamp) is added in place to `addend`
// (the output's shape and dtype) by TFLite's quantized add, `add` (a = the conv's output, b = the addend;
// its output_min / output_max are the clamp after the add), right after the kernel wrote it. Bit-exact with
// qs8_conv2d_run followed by qs8_add. addend == NULL is qs8_conv2d_run. `addend` must not overlap `output`.
bool qs8_conv2d_run_add(qs8_conv2d_op* op, const void* input, const void* addend, const qs8_add_params* add,
                        void* output, whittle_threadpool* pool);
const char* qs8_conv2d_kernel_name(const qs8_conv2d_op* op);
void qs8_conv2d_destroy(qs8_conv2d_op* op);

void qs8_maxpool(const whittle_pool2d_shape* shape, const void* input, void* output,
                 bool unsigned_activations, int32_t min, int32_t max, whittle_isa level);
void qs8_avgpool(const whittle_pool2d_shape* shape, const void* input, void* output,
                 bool unsigned_activations, int32_t min, int32_t max, whittle_isa level);
void qs8_global_avgpool(size_t batch, size_t pixels, size_t channels, const void* input, void* output,
                        bool unsigned_activations, int32_t min, int32_t max, whittle_isa level);
// The caller checks pixels <= QS8_GLOBAL_AVGPOOL_MAX_PIXELS and the shift range.
void qs8_global_avgpool_requant(size_t batch, size_t pixels, size_t channels, const void* input, void* output,
                                const qs8_global_avgpool_params* params, whittle_isa level);
void qs8_quantize(const qs8_quantization_layout* layout, const float* input, void* output, whittle_isa level);
void qs8_dequantize(const qs8_quantization_layout* layout, const void* input, float* output,
                    whittle_isa level);
void qs8_add(size_t n, const void* a, const void* b, void* output, const qs8_add_params* params,
             whittle_isa level);
void qs8_clamp(size_t n, const void* input, void* output, bool unsigned_activations, int32_t min, int32_t max,
               whittle_isa level);
void qs8_lut(size_t n, const uint8_t* input, uint8_t* output, const uint8_t* table, whittle_isa level);
void qs8_mul_channels(size_t rows, size_t pixels, size_t channels, const void* a, const void* b, void* output,
                      const qs8_mul_params* params, whittle_isa level);
void qs8_resize_bilinear(const whittle_resize_shape* shape, const void* input, void* output,
                         bool unsigned_activations, whittle_isa level);
void qs8_softmax(size_t rows, size_t channels, const void* input, float input_scale, int32_t input_zero_point,
                 float output_scale, int32_t output_zero_point, bool unsigned_activations, void* output);

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_QS8_OPS_H_
