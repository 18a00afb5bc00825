// Elementwise and reduction kernels under autograd's many small ops: binary ops with the broadcasts that
// training produces, unary activations and their gradients, sums over a block of axes, transposes, and
// the fused Adam update. Memory-bound, so single-threaded: a thread hop costs more than it saves here.
#include <math.h>
#include <string.h>

#include "f32_train_ops.h"

// An operand read at index (i / div) % len for output index i: full (div 1, len n), scalar (len 1),
// trailing rows (div 1, len = inner size) or leading columns (div = inner size). The cursor walks that
// index with counters: a division and a modulo per element cost more than the arithmetic they feed.
typedef struct {
  size_t index;  // (i / div) % len
  size_t count;  // i % div
  size_t div, len;
} broadcast_cursor;

static inline void cursor_next(broadcast_cursor* c) {
  if (++c->count == c->div) {
    c->count = 0;
    if (++c->index == c->len) c->index = 0;
  }
}

#define BINARY_LOOP(EXPR)                                                    \
  do {                                                                       \
    if (a_div == 1 && a_len == n && b_div == 1 && b_len == n) {              \
      for (size_t i = 0; i < n; i++) {                                       \
        const float x = a[i], z = b[i];                                      \
        y[i] = (EXPR);                                                       \
      }                                                                      \
    } else if (a_div == 1 && a_len == n && b_len == 1) {                     \
      const float z = b[0];                                                  \
      for (size_t i = 0; i < n; i++) {                                       \
        const float x = a[i];                                                \
        y[i] = (EXPR);                                                       \
      }                                                                      \
    } else if (a_len == 1 && b_div == 1 && b_len == n) {                     \
      const float x = a[0];                                                  \
      for (size_t i = 0; i < n; i++) {                                       \
        const float z = b[i];                                                \
        y[i] = (EXPR);                                                       \
      }                                                                      \
    } else if (a_div == 1 && a_len == n && b_div == 1 && n % b_len == 0) {   \
      for (size_t r = 0; r < n; r += b_len) {                                \
        for (size_t j = 0; j < b_len; j++) {                                 \
          const float x = a[r + j], z = b[j];                                \
          y[r + j] = (EXPR);                                                 \
        }                                                                    \
      }                                                                      \
    } else if (a_div == 1 && n % a_len == 0 && b_div == 1 && b_len == n) {   \
      for (size_t r = 0; r < n; r += a_len) {                                \
        for (size_t j = 0; j < a_len; j++) {                                 \
          const float x = a[j], z = b[r + j];                                \
          y[r + j] = (EXPR);                                                 \
        }                                                                    \
      }                                                                      \
    } else {                                                                 \
      broadcast_cursor ca = {0, 0, a_div, a_len}, cb = {0, 0, b_div, b_len}; \
      for (size_t i = 0; i < n; i++) {                                       \
        const float x = a[ca.index], z = b[cb.index];                        \
        y[i] = (EXPR);                                                       \
        cursor_next(&ca);                                                    \
        cursor_next(&cb);                                                    \
      }                                                                      \
    }                                                                        \
  } while (0)

void f32_binary(f32_binary_op op, size_t n, const float* a, size_t a_div, size_t a_len, const float* b,
                size_t b_div, size_t b_len, float* y) {
  switch (op) {
    case F32_BINARY_ADD:
      BINARY_LOOP(x + z);
      break;
    case F32_BINARY_SUB:
      BINARY_LOOP(x - z);
      break;
    case F32_BINARY_MUL:
      BINARY_LOOP(x * z);
      break;
    case F32_BINARY_DIV:
      BINARY_LOOP(x / z);
      break;
    case F32_BINARY_MAX:
      BINARY_LOOP(((x != x) | (z != z)) ? NAN : (x > z ? x : z));
      break;
    case F32_BINARY_MIN:
      BINARY_LOOP(((x != x) | (z != z)) ? NAN : (x < z ? x : z));
      break;
    case F32_BINARY_SQUARED_DIFFERENCE:
      BINARY_LOOP((x - z) * (x - z));
      break;
  }
}

void f32_unary(f32_unary_op op, size_t n, const float* x, float alpha, float* y) {
  switch (op) {
    case F32_UNARY_RELU:
      for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
      break;
    case F32_UNARY_RELU6:
      for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : (x[i] > 6.0f ? 6.0f : x[i]);
      break;
    case F32_UNARY_STEP:
      for (size_t i = 0; i < n; i++) y[i] = isnan(x[i]) ? NAN : (x[i] > 0.0f ? 1.0f : alpha);
      break;
    case F32_UNARY_NEG:
      for (size_t i = 0; i < n; i++) y[i] = -x[i];
      break;
    case F32_UNARY_SQUARE:
      for (size_t i = 0; i < n; i++) y[i] = x[i] * x[i];
      break;
    case F32_UNARY_SQRT:
      for (size_t i = 0; i < n; i++) y[i] = sqrtf(x[i]);
      break;
    case F32_UNARY_ABS:
      for (size_t i = 0; i < n; i++) y[i] = fabsf(x[i]);
      break;
  }
}

void f32_unary_grad(f32_unary_grad_op op, size_t n, const float* dy, const float* x, float* dx) {
  // The same products tfjs's gradients compute (dy * step(x), dy * (x * 2)), so results match bit for bit.
  // Written without branches (selects of constants, NaN as x != x) so the loops vectorize: activations'
  // signs are random and a branch per element mispredicts half the time.
  switch (op) {
    case F32_UNARY_GRAD_RELU:
      for (size_t i = 0; i < n; i++) {
        const float v = x[i];
        const float step = (v > 0.0f ? 1.0f : 0.0f) + (v != v ? NAN : 0.0f);
        dx[i] = dy[i] * step;
      }
      break;
    case F32_UNARY_GRAD_SQUARE:
      for (size_t i = 0; i < n; i++) dx[i] = dy[i] * (x[i] * 2.0f);
      break;
  }
}

void f32_unary_grad_bias(f32_unary_grad_op op, size_t rows, size_t channels, const float* dy, const float* x,
                         float* dx, float* dbias) {
  memset(dbias, 0, channels * sizeof(float));
  // Blocks of rows small enough to be summed while still in cache.
  const size_t block = channels >= 4096 ? 1 : 4096 / channels;
  for (size_t r0 = 0; r0 < rows; r0 += block) {
    const size_t count = rows - r0 < block ? rows - r0 : block;
    const size_t first = r0 * channels;
    f32_unary_grad(op, count * channels, dy + first, x + first, dx + first);
    for (size_t r = 0; r < count; r++) {
      const float* row = dx + first + r * channels;
      for (size_t c = 0; c < channels; c++) dbias[c] += row[c];
    }
  }
}

#define MASK_LOOP(COND)                                                      \
  do {                                                                       \
    if (a_len == 1 && b_div == 1 && b_len == n) {                            \
      const float x = a[0];                                                  \
      for (size_t i = 0; i < n; i++) {                                       \
        const float z = b[i];                                                \
        y[i] = dy[i] * (float)(COND);                                        \
      }                                                                      \
    } else if (a_div == 1 && a_len == n && b_len == 1) {                     \
      const float z = b[0];                                                  \
      for (size_t i = 0; i < n; i++) {                                       \
        const float x = a[i];                                                \
        y[i] = dy[i] * (float)(COND);                                        \
      }                                                                      \
    } else {                                                                 \
      broadcast_cursor ca = {0, 0, a_div, a_len}, cb = {0, 0, b_div, b_len}; \
      for (size_t i = 0; i < n; i++) {                                       \
        const float x = a[ca.index], z = b[cb.index];                        \
        y[i] = dy[i] * (float)(COND);                                        \
        cursor_next(&ca);                                                    \
        cursor_next(&cb);                                                    \
      }                                                                      \
    }                                                                        \
  } while (0)

void f32_compare_mask(f32_compare_op op, size_t n, const float* dy, const float* a, size_t a_div,
                      size_t a_len, const float* b, size_t b_div, size_t b_len, float* y) {
  // Comparisons with NaN are false, as tfjs's Greater/LessEqual/... are. The quiet comparison macros
  // (no floating-point exception on NaN) let the compiler turn the loops into vector compares.
  switch (op) {
    case F32_COMPARE_GREATER:
      MASK_LOOP(isgreater(x, z));
      break;
    case F32_COMPARE_GREATER_EQUAL:
      MASK_LOOP(isgreaterequal(x, z));
      break;
    case F32_COMPARE_LESS:
      MASK_LOOP(isless(x, z));
      break;
    case F32_COMPARE_LESS_EQUAL:
      MASK_LOOP(islessequal(x, z));
      break;
  }
}

void f32_mean_grad(size_t outer, size_t mid, size_t inner, const float* dy, float* dx) {
  // tfjs divides (dy * 1) by the float32 reduce size; dividing (not multiplying by the reciprocal) keeps
  // the results identical.
  // Each row of quotients is computed once and copied mid times.
  const float size = (float)mid;
  for (size_t o = 0; o < outer; o++) {
    const float* src = dy + o * inner;
    float* dst = dx + o * mid * inner;
    for (size_t i = 0; i < inner; i++) dst[i] = src[i] / size;
    for (size_t m = 1; m < mid; m++) memcpy(dst + m * inner, dst, inner * sizeof(float));
  }
}

void f32_sum_axes(size_t outer, size_t mid, size_t inner, const float* x, float* y) {
  for (size_t o = 0; o < outer; o++) {
    float* out = y + o * inner;
    const float* in = x + o * mid * inner;
    if (inner == 1) {
      float sum = 0.0f;
      for (size_t m = 0; m < mid; m++) sum += in[m];
      out[0] = sum;
    } else {
      memset(out, 0, inner * sizeof(float));
      for (size_t m = 0; m < mid; m++) {
        const float* row = in + m * inner;
        for (size_t i = 0; i < inner; i++) out[i] += row[i];
      }
    }
  }
}

void f32_transpose(size_t rank, const size_t* shape, const size_t* perm, const float* x, float* y) {
  // y's axis d is x's axis perm[d]; walk y in order with a mixed-radix counter over y's shape.
  size_t x_strides[F32_MAX_RANK], y_shape[F32_MAX_RANK], step[F32_MAX_RANK], index[F32_MAX_RANK];
  size_t n = 1;
  for (size_t d = rank; d-- > 0;) {
    x_strides[d] = n;
    n *= shape[d];
  }
  for (size_t d = 0; d < rank; d++) {
    y_shape[d] = shape[perm[d]];
    step[d] = x_strides[perm[d]];
    index[d] = 0;
  }
  if (n == 0) return;
  const size_t last = rank - 1, last_len = y_shape[last], last_step = step[last];
  size_t offset = 0;
  for (size_t i = 0; i < n; i += last_len) {
    const float* src = x + offset;
    float* dst = y + i;
    if (last_step == 1) {
      memcpy(dst, src, last_len * sizeof(float));
    } else {
      for (size_t j = 0; j < last_len; j++) dst[j] = src[j * last_step];
    }
    for (size_t d = last; d-- > 0;) {
      offset += step[d];
      if (++index[d] < y_shape[d]) break;
      offset -= step[d] * y_shape[d];
      index[d] = 0;
    }
  }
}

void f32_adam_update(size_t n, float* param, const float* grad, float* m, float* v, float lr, float beta1,
                     float beta2, float epsilon, float bias1, float bias2) {
  // bias1 = 1 - beta1^t, bias2 = 1 - beta2^t (tfjs's Adam: the corrections apply to m and v).
  const float step = lr / bias1, inv_bias2 = 1.0f / bias2;
  for (size_t i = 0; i < n; i++) {
    const float g = grad[i];
    m[i] = beta1 * m[i] + (1.0f - beta1) * g;
    v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
    param[i] -= step * m[i] / (sqrtf(v[i] * inv_bias2) + epsilon);
  }
}
