// The residual add over rescale tables (qs8_add_tables): the tables' set-up, and the portable kernel, one
// element at a time.
#include "qs8_ops.h"

void qs8_add_tables_init(const qs8_add_params* p, qs8_add_tables* t) {
  for (size_t i = 0; i < 256; i++) {
    // Raw byte i is the value i (uint8) or (int8_t)i, rescaled as qs8_add__reference does.
    const int32_t x = p->unsigned_activations ? (int32_t)i : (int32_t)(int8_t)(uint8_t)i;
    const uint32_t sa = (uint32_t)qs8_requantize_gemmlowp((x - p->a_zero_point) * (1 << QS8_ADD_LEFT_SHIFT),
                                                          p->a_multiplier, p->a_shift);
    const uint32_t sb = (uint32_t)qs8_requantize_gemmlowp((x - p->b_zero_point) * (1 << QS8_ADD_LEFT_SHIFT),
                                                          p->b_multiplier, p->b_shift);
    for (size_t k = 0; k < 4; k++) {
      t->a[k][i] = (uint8_t)(sa >> (8 * k));
      t->b[k][i] = (uint8_t)(sb >> (8 * k));
    }
  }
}

static inline int32_t table_entry(const uint8_t (*plane)[256], uint8_t i) {
  return (int32_t)((uint32_t)plane[0][i] | (uint32_t)plane[1][i] << 8 | (uint32_t)plane[2][i] << 16 |
                   (uint32_t)plane[3][i] << 24);
}

void qs8_vadd_tables_minmax_gemmlowp_ukernel_1__scalar(size_t n, const void* a, const void* b, void* y,
                                                       const qs8_add_params* p, const qs8_add_tables* t) {
  const uint8_t* a8 = a;
  const uint8_t* b8 = b;
  uint8_t* y8 = y;
  for (size_t i = 0; i < n; i++) {
    const int32_t sum = (int32_t)((uint32_t)table_entry(t->a, a8[i]) + (uint32_t)table_entry(t->b, b8[i]));
    int64_t v = (int64_t)qs8_requantize_gemmlowp_inline(sum, p->output_multiplier, p->output_shift) +
                p->output_zero_point;
    v = v < p->output_min ? p->output_min : v;
    v = v > p->output_max ? p->output_max : v;
    y8[i] = (uint8_t)v;  // the raw byte of the int8 or uint8 value
  }
}
