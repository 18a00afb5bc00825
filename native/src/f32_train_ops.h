// fp32 training kernels: forward passes and gradients of the heavy TensorFlow.js ops, NHWC layout.
//
// Shapes follow TensorFlow.js: activations are [batch, height, width, channels], conv filters are
// [filter_h, filter_w, in_c, out_c] (HWIO), depthwise filters are [filter_h, filter_w, in_c, multiplier].
// Every function trusts its arguments: the Node-API binding (binding_train.cc) checks every size before
// calling here. These are more families of the one kernel library: the SGEMM microkernels are a list chosen
// by ISA level like every other family (f32_ukernels.c), and the ops run on the library's thread pool.
#ifndef WHITTLE_F32_TRAIN_OPS_H_
#define WHITTLE_F32_TRAIN_OPS_H_

#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu-features.h"
#include "kernel_abi.h"
#include "threadpool.h"

#ifdef __cplusplus
extern "C" {
#endif

// Activation fused after a conv or matmul (tfjs names: linear, relu, relu6).
typedef enum { F32_ACT_LINEAR = 0, F32_ACT_RELU = 1, F32_ACT_RELU6 = 2 } f32_activation;

// One 2-D window op (conv, depthwise conv, pooling). For depthwise, out_c = in_c * multiplier; for
// pooling, out_c = in_c. pad_top/pad_left are the zero rows/columns before the input (tfjs padInfo).
typedef struct {
  int32_t batch, in_h, in_w, in_c;
  int32_t out_h, out_w, out_c;
  int32_t filter_h, filter_w;
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  int32_t pad_top, pad_left;
} f32_window_shape;

// ---- Microkernels and the context every training op runs in ----

// An MR x NR SGEMM microkernel over packed panels ("ppmm": both operands pre-packed): a holds kc columns of
// MR values, b holds kc rows of NR values (64-byte aligned). Writes a full tile:
//   c[i * ldc + j] = (accumulate ? c[i * ldc + j] : 0) + sum_p a[p * MR + i] * b[p * NR + j]
// Each element is one sequential sum over p, whatever the tile shape, so every path computes the same
// products in the same order (the FMA paths round once per step, the scalar one twice).
typedef void (*f32_ppmm_ukernel_fn)(size_t kc, const float* a, const float* b, float* c, size_t ldc,
                                    int accumulate);

typedef struct f32_ppmm_ukernel {
  const char* name;
  whittle_isa isa;
  f32_ppmm_ukernel_fn fn;
  uint8_t mr, nr;
} f32_ppmm_ukernel;

// The list (f32_ukernels.c), best first within each ISA ladder, the scalar entry last.
// f32_ppmm_ukernel_select(level): the entry the one variant rule picks (kernel_abi.h: the first the level
// allows and the CPU supports).
WHITTLE_DECLARE_UKERNELS(f32_ppmm)

// Where a training op runs: the thread pool (NULL = the calling thread only; the same pool the inference
// operators use) and the SGEMM microkernel. Training ops share per-thread scratch (f32_train_scratch), so
// calls must be serialized by the caller (the binding holds one lock around each).
typedef struct f32_train_context {
  whittle_threadpool* pool;
  const f32_ppmm_ukernel* gemm;
} f32_train_context;

// Per-thread scratch that grows and is kept (index < WHITTLE_MAX_THREADS, slot 0..3; 64-byte aligned).
// NULL when out of memory. Slots 0 and 1 hold the SGEMM packs, 2 im2col columns, 3 partial gradients (or a
// channel-major conv output before its transpose).
float* f32_train_scratch(size_t index, int slot, size_t floats);

// Applies bias (per last-axis channel, may be NULL) and activation to rows x channels values.
void f32_bias_activation(float* y, size_t rows, size_t channels, const float* bias, f32_activation act);

// ---- SGEMM ----

// Row-major C[m][n] = op(A)[m][k] * op(B)[k][n] + beta * C, beta 0 or 1.
// op(A)(i, p) = trans_a ? a[p * lda + i] : a[i * lda + p]; op(B)(p, j) = trans_b ? b[j * ldb + p] : b[p * ldb
// + j]. Splits the work over the context's pool when it is large enough to pay for the hand-over.
void f32_sgemm(const f32_train_context* ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
               const float* a, size_t lda, const float* b, size_t ldb, float beta, float* c, size_t ldc);
// f32_sgemm on the calling thread only, with the scratch of index `scratch` (a task's thread index).
void f32_sgemm_on_thread(const f32_ppmm_ukernel* gemm, size_t scratch, int trans_a, int trans_b, size_t m,
                         size_t n, size_t k, const float* a, size_t lda, const float* b, size_t ldb,
                         float beta, float* c, size_t ldc);

// Batched matmul with broadcasting of a batch of 1 (tfjs BatchMatMul / _FusedMatMul).
// a: [batch_a][m][k] (or [k][m] when trans_a), b: [batch_b][k][n] (or [n][k]), c: [max(batch_a,
// batch_b)][m][n]. bias: NULL, or bias_len (1 or n) values added per row; then the activation.
void f32_batch_matmul(const f32_train_context* ctx, size_t batch_a, size_t batch_b, size_t m, size_t n,
                      size_t k, int trans_a, int trans_b, const float* a, const float* b, const float* bias,
                      size_t bias_len, f32_activation act, float* c);

// ---- Conv2D ----

// y[batch][out_h][out_w][out_c] = conv(x, filter) + bias, then act. bias: NULL or out_c values.
void f32_conv2d_forward(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                        const float* filter, const float* bias, f32_activation act, float* y);
// dx[batch][in_h][in_w][in_c] from dy[batch][out_h][out_w][out_c] and the filter.
void f32_conv2d_backprop_input(const f32_train_context* ctx, const f32_window_shape* s, const float* dy,
                               const float* filter, float* dx);
// dfilter[filter_h][filter_w][in_c][out_c] from x and dy.
void f32_conv2d_backprop_filter(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                                const float* dy, float* dfilter);

// ---- Depthwise Conv2D ----

void f32_dwconv2d_forward(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                          const float* filter, const float* bias, f32_activation act, float* y);
void f32_dwconv2d_backprop_input(const f32_train_context* ctx, const f32_window_shape* s, const float* dy,
                                 const float* filter, float* dx);
void f32_dwconv2d_backprop_filter(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                                  const float* dy, float* dfilter);

// ---- Pooling (no dilation; padded cells never win a max and never count in an average) ----

void f32_maxpool_forward(const f32_train_context* ctx, const f32_window_shape* s, const float* x, float* y);
// dx gets each dy at the first maximum of its window in row-major window order (as tfjs's cpu kernel).
void f32_maxpool_backward(const f32_train_context* ctx, const f32_window_shape* s, const float* x,
                          const float* dy, float* dx);
// The average over the window's cells inside the input.
void f32_avgpool_forward(const f32_train_context* ctx, const f32_window_shape* s, const float* x, float* y);
// dx = sum of dy over the windows covering a cell, / (filter_h * filter_w) (tfjs's AvgPoolGrad).
void f32_avgpool_backward(const f32_train_context* ctx, const f32_window_shape* s, const float* dy,
                          float* dx);

// ---- Batch normalization over the last axis ----

// y = (x - mean) * scale / sqrt(var + eps) + offset for count rows of channels values; scale and offset may
// be NULL (1 and 0).
void f32_batchnorm_forward(size_t count, size_t channels, const float* x, const float* mean, const float* var,
                           const float* scale, const float* offset, float eps, float* y);
// Gradients of f32_batchnorm_forward with mean and var as inputs (tfjs's FusedBatchNorm gradient):
//   dx = dy * scale * r,  dmean = -sum(dy) * scale * r,  dvar = -0.5 * sum(dy * (x - mean)) * scale * r^3,
//   dscale = sum(dy * (x - mean)) * r,  doffset = sum(dy),  with r = 1 / sqrt(var + eps), sums over rows.
// Any of the outputs but dx may be NULL.
void f32_batchnorm_backward(size_t count, size_t channels, const float* x, const float* mean,
                            const float* var, const float* scale, const float* dy, float eps, float* dx,
                            float* dmean, float* dvar, float* dscale, float* doffset);

// Batch norm in training mode, where mean and var are the batch's own moments over all but the last axis.
// The biased per-channel mean and variance of x[count][channels]; -1 when out of memory.
int f32_batchnorm_moments(size_t count, size_t channels, const float* x, float* mean, float* var);
// The full gradient through y = scale (x - mean) / sqrt(var + eps) + offset including mean's and var's
// dependence on x (scale may be NULL for 1): dx, dscale, doffset; -1 when out of memory.
int f32_batchnorm_train_backward(size_t count, size_t channels, const float* x, const float* mean,
                                 const float* var, const float* scale, const float* dy, float eps, float* dx,
                                 float* dscale, float* doffset);

// ---- Elementwise, reductions, transpose, optimizer ----

typedef enum {
  F32_BINARY_ADD = 0,
  F32_BINARY_SUB = 1,
  F32_BINARY_MUL = 2,
  F32_BINARY_DIV = 3,
  F32_BINARY_MAX = 4,
  F32_BINARY_MIN = 5,
  F32_BINARY_SQUARED_DIFFERENCE = 6
} f32_binary_op;

// y[i] = op(a[(i / a_div) % a_len], b[(i / b_div) % b_len]) for i < n.
void f32_binary(f32_binary_op op, size_t n, const float* a, size_t a_div, size_t a_len, const float* b,
                size_t b_div, size_t b_len, float* y);

typedef enum {
  F32_UNARY_RELU = 0,
  F32_UNARY_RELU6 = 1,
  F32_UNARY_STEP = 2,  // x > 0 ? 1 : alpha (NaN stays NaN)
  F32_UNARY_NEG = 3,
  F32_UNARY_SQUARE = 4,
  F32_UNARY_SQRT = 5,
  F32_UNARY_ABS = 6
} f32_unary_op;

void f32_unary(f32_unary_op op, size_t n, const float* x, float alpha, float* y);

// Fused gradients of elementwise ops: dx = dy * step(x) (ReLU), dx = dy * (2 x) (Square).
typedef enum { F32_UNARY_GRAD_RELU = 0, F32_UNARY_GRAD_SQUARE = 1 } f32_unary_grad_op;

void f32_unary_grad(f32_unary_grad_op op, size_t n, const float* dy, const float* x, float* dx);
// f32_unary_grad over rows x channels values, and dbias[c] = the sum over rows of dx[row][c] (summed row by
// row in order, as f32_sum_axes does): the gradients of a layer's activation and of its bias in one pass.
void f32_unary_grad_bias(f32_unary_grad_op op, size_t rows, size_t channels, const float* dy, const float* x,
                         float* dx, float* dbias);

typedef enum {
  F32_COMPARE_GREATER = 0,
  F32_COMPARE_GREATER_EQUAL = 1,
  F32_COMPARE_LESS = 2,
  F32_COMPARE_LESS_EQUAL = 3
} f32_compare_op;

// y[i] = dy[i] * (op(a[(i / a_div) % a_len], b[(i / b_div) % b_len]) ? 1 : 0) for i < n: the gradient of
// Minimum and Maximum (and so of ReLU6 written as min(relu(x), 6)) in one pass.
void f32_compare_mask(f32_compare_op op, size_t n, const float* dy, const float* a, size_t a_div,
                      size_t a_len, const float* b, size_t b_div, size_t b_len, float* y);

// dx[outer][m][inner] = dy[outer][inner] / mid for m < mid: the gradient of a mean over a block of axes.
void f32_mean_grad(size_t outer, size_t mid, size_t inner, const float* dy, float* dx);

// y[outer][inner] = sum over m of x[outer][m][inner].
void f32_sum_axes(size_t outer, size_t mid, size_t inner, const float* x, float* y);

#define F32_MAX_RANK 8
// y = transpose(x, perm) for x of the given shape (rank 1..F32_MAX_RANK).
void f32_transpose(size_t rank, const size_t* shape, const size_t* perm, const float* x, float* y);

// One Adam step in place (Kingma & Ba, as tfjs's AdamOptimizer computes it):
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr / bias1 * m / (sqrt(v / bias2) + eps).
void f32_adam_update(size_t n, float* param, const float* grad, float* m, float* v, float lr, float beta1,
                     float beta2, float epsilon, float bias1, float bias2);

#ifdef __cplusplus
}
#endif

#endif  // WHITTLE_F32_TRAIN_OPS_H_
