// The kernel lists of the int8 families: one entry per microkernel, best first within each ISA ladder, the
// scalar one last. Dispatch, the test driver and the benchmarks all read these lists.
#include "qs8_ops.h"

#define DECLARE_GEMM(name)                                                                           \
  void name(size_t mr, size_t nc, size_t kc, const int8_t* a, size_t a_stride, const void* packed_w, \
            int8_t* c, size_t c_stride, const qs8_gemmlowp_params* params)
#define DECLARE_GEMV(name)                                                          \
  void name(size_t nc, size_t kc, const int8_t* a, const void* packed_w, int8_t* c, \
            const qs8_gemmlowp_params* params)
#define DECLARE_IGEMM(name)                                                                    \
  void name(size_t mr, size_t nc, size_t kc, const int8_t* const* a, const int32_t* k_offsets, \
            const void* packed_w, int8_t* c, size_t c_stride, const qs8_gemmlowp_params* params)
#define DECLARE_DWCONV(name)                                                                                \
  void name(size_t channels, size_t taps, const int8_t* const* input, const void* packed_w, int8_t* output, \
            const qs8_gemmlowp_params* params)
#define DECLARE_DWCONV3X3(name)                                                                              \
  void name(size_t channels, size_t output_rows, size_t output_width, const int8_t* const* rows,             \
            size_t input_width, size_t stride, size_t padding_left, const int8_t* pad, const void* packed_w, \
            int8_t* output, const qs8_gemmlowp_params* params)

DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_2x4__scalar);
DECLARE_GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__scalar);
DECLARE_IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_2x4__scalar);
DECLARE_DWCONV(qs8_dwconv_minmax_gemmlowp_ukernel_c4__scalar);
DECLARE_DWCONV3X3(qs8_dwconv3x3_minmax_gemmlowp_ukernel_c4__scalar);
extern const qs8_simple_ukernels qs8_simple_ukernels__scalar;
void qs8_vadd_tables_minmax_gemmlowp_ukernel_1__scalar(size_t n, const void* a, const void* b, void* y,
                                                       const qs8_add_params* params,
                                                       const qs8_add_tables* tables);
#if defined(__x86_64__)
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_1x16c2__avx2);
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_4x16c2__avx2);
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_1x32c2__avx512);
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_4x32c2__avx512);
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_1x32c4__avx512vnni);
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_4x32c4__avx512vnni);
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_8x32c4__avx512vnni);
DECLARE_GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512vnni);
DECLARE_GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512);
DECLARE_GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx2);
DECLARE_IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_4x16c2__avx2);
DECLARE_IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_4x32c2__avx512);
DECLARE_IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_4x32c4__avx512vnni);
DECLARE_IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_8x32c4__avx512vnni);
void qs8_igemm_runs_minmax_gemmlowp_ukernel_8x32c4__avx512vnni(
    size_t mr, size_t nc, size_t kc, const int8_t* const* a, const int32_t* k_offsets,
    const qs8_igemm_run* runs, size_t run_count, const int32_t* const* row_bias, const void* packed_w,
    int8_t* c, size_t c_stride, const qs8_gemmlowp_params* params);
DECLARE_DWCONV(qs8_dwconv_minmax_gemmlowp_ukernel_c16__avx2);
DECLARE_DWCONV(qs8_dwconv_minmax_gemmlowp_ukernel_c32__avx512);
DECLARE_DWCONV3X3(qs8_dwconv3x3_minmax_gemmlowp_ukernel_c16__avx2);
DECLARE_DWCONV3X3(qs8_dwconv3x3_minmax_gemmlowp_ukernel_c32__avx512);
DECLARE_DWCONV3X3(qs8_dwconv3x3_minmax_gemmlowp_ukernel_c32__avx512vnni);
extern const qs8_simple_ukernels qs8_simple_ukernels__avx2;
extern const qs8_simple_ukernels qs8_simple_ukernels__avx512;
void qs8_vadd_tables_minmax_gemmlowp_ukernel_64__avx512vpopcnt(size_t n, const void* a, const void* b,
                                                               void* y, const qs8_add_params* params,
                                                               const qs8_add_tables* tables);
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_1x8__neon);
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_4x8__neon);
DECLARE_IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_4x8__neon);
DECLARE_DWCONV(qs8_dwconv_minmax_gemmlowp_ukernel_c8__neon);
DECLARE_DWCONV3X3(qs8_dwconv3x3_minmax_gemmlowp_ukernel_c8__neon);
DECLARE_GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__neon);
extern const qs8_simple_ukernels qs8_simple_ukernels__neon;
#endif
#if defined(__aarch64__)
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_1x8c4__neondot);
DECLARE_GEMM(qs8_gemm_minmax_gemmlowp_ukernel_4x8c4__neondot);
DECLARE_IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_4x8c4__neondot);
#endif

// kr: k per packed column group; k_align: A rows are padded to a multiple of it; a_unsigned: A is uint8;
// fn_1: the 1-row variant with the same packing, or NULL; fn_short: the variant of mr_short rows with the
// same packing, or NULL (mr_short 0).
#define GEMM(name, isa, mr, nr, kr, k_align, a_unsigned, fn_1, fn_short, mr_short) \
  { #name, isa, name, mr, nr, kr, k_align, a_unsigned, fn_1, #fn_1, fn_short, mr_short, #fn_short }
// fn_short: the variant of mr_short rows with the same packing, or NULL (mr_short 0).
// fn_runs: the variant over real taps only (qs8_igemm_runs_ukernel_fn), or NULL.
#define IGEMM(name, isa, mr, nr, kr, k_align, a_unsigned, max_segment, fn_short, mr_short, fn_runs)         \
  {                                                                                                         \
#name, isa, name, mr, nr, kr, k_align, a_unsigned, max_segment, fn_short, mr_short, #fn_short, fn_runs, \
        #fn_runs                                                                                            \
  }
// fn_3x3: the 3x3 row kernel with the same packing.
#define DWCONV(name, isa, cb, fn_3x3) \
  { #name, isa, name, cb, fn_3x3, #fn_3x3 }

const qs8_gemm_ukernel qs8_gemm_ukernels[] = {
#if defined(__x86_64__)
    GEMM(qs8_gemm_minmax_gemmlowp_ukernel_8x32c4__avx512vnni, WHITTLE_ISA_AVX512VNNI, 8, 32, 4, 4, true,
         qs8_gemm_minmax_gemmlowp_ukernel_1x32c4__avx512vnni,
         qs8_gemm_minmax_gemmlowp_ukernel_4x32c4__avx512vnni, 4),
    GEMM(qs8_gemm_minmax_gemmlowp_ukernel_4x32c2__avx512, WHITTLE_ISA_AVX512, 4, 32, 2, 4, false,
         qs8_gemm_minmax_gemmlowp_ukernel_1x32c2__avx512, NULL, 0),
    GEMM(qs8_gemm_minmax_gemmlowp_ukernel_4x16c2__avx2, WHITTLE_ISA_AVX2, 4, 16, 2, 4, false,
         qs8_gemm_minmax_gemmlowp_ukernel_1x16c2__avx2, NULL, 0),
#endif
#if defined(__aarch64__)
    GEMM(qs8_gemm_minmax_gemmlowp_ukernel_4x8c4__neondot, WHITTLE_ISA_NEONDOT, 4, 8, 4, 16, false,
         qs8_gemm_minmax_gemmlowp_ukernel_1x8c4__neondot, NULL, 0),
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    GEMM(qs8_gemm_minmax_gemmlowp_ukernel_4x8__neon, WHITTLE_ISA_NEON, 4, 8, 1, 8, false,
         qs8_gemm_minmax_gemmlowp_ukernel_1x8__neon, NULL, 0),
#endif
    GEMM(qs8_gemm_minmax_gemmlowp_ukernel_2x4__scalar, WHITTLE_ISA_SCALAR, 2, 4, 1, 4, false, NULL, NULL, 0),
};
WHITTLE_DEFINE_UKERNEL_SELECT(qs8_gemm)

// max_channels: wider layers take the GEMM kernel's 1-row variant (0: none do).
#define GEMV(name, isa, kr, a_unsigned, max_channels) \
  { #name, isa, name, kr, a_unsigned, max_channels }

const qs8_gemv_ukernel qs8_gemv_ukernels[] = {
#if defined(__x86_64__)
    // Past 32 channels the 1x32c4 kernel's rows of two blocks (8 VPDPBUSD chains, no horizontal sums) win.
    GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512vnni, WHITTLE_ISA_AVX512VNNI, 64, true, 32),
    GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx512, WHITTLE_ISA_AVX512, 64, false, 0),
    GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__avx2, WHITTLE_ISA_AVX2, 64, false, 0),
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__neon, WHITTLE_ISA_NEON, 64, false, 0),
#endif
    GEMV(qs8_gemv_minmax_gemmlowp_ukernel_1x4c64__scalar, WHITTLE_ISA_SCALAR, 64, false, 0),
};
WHITTLE_DEFINE_UKERNEL_SELECT(qs8_gemv)

// The same kernels as the GEMM list, reading A in place (qs8_igemm_ukernel_fn).
const qs8_igemm_ukernel qs8_igemm_ukernels[] = {
#if defined(__x86_64__)
    IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_8x32c4__avx512vnni, WHITTLE_ISA_AVX512VNNI, 8, 32, 4, 4, true, 0,
          qs8_igemm_minmax_gemmlowp_ukernel_4x32c4__avx512vnni, 4,
          qs8_igemm_runs_minmax_gemmlowp_ukernel_8x32c4__avx512vnni),
    IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_4x32c2__avx512, WHITTLE_ISA_AVX512, 4, 32, 2, 4, false, 64, NULL,
          0, NULL),
    IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_4x16c2__avx2, WHITTLE_ISA_AVX2, 4, 16, 2, 4, false, 64, NULL, 0,
          NULL),
#endif
#if defined(__aarch64__)
    IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_4x8c4__neondot, WHITTLE_ISA_NEONDOT, 4, 8, 4, 16, false, 0, NULL,
          0, NULL),
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_4x8__neon, WHITTLE_ISA_NEON, 4, 8, 1, 8, false, 0, NULL, 0, NULL),
#endif
    IGEMM(qs8_igemm_minmax_gemmlowp_ukernel_2x4__scalar, WHITTLE_ISA_SCALAR, 2, 4, 1, 4, false, 0, NULL, 0,
          NULL),
};
WHITTLE_DEFINE_UKERNEL_SELECT(qs8_igemm)

const qs8_dwconv_ukernel qs8_dwconv_ukernels[] = {
#if defined(__x86_64__)
    // VNNI speeds up only the 3x3 row kernel; the per-pixel kernel is the AVX-512 one.
    DWCONV(qs8_dwconv_minmax_gemmlowp_ukernel_c32__avx512, WHITTLE_ISA_AVX512VNNI, 32,
           qs8_dwconv3x3_minmax_gemmlowp_ukernel_c32__avx512vnni),
    DWCONV(qs8_dwconv_minmax_gemmlowp_ukernel_c32__avx512, WHITTLE_ISA_AVX512, 32,
           qs8_dwconv3x3_minmax_gemmlowp_ukernel_c32__avx512),
    DWCONV(qs8_dwconv_minmax_gemmlowp_ukernel_c16__avx2, WHITTLE_ISA_AVX2, 16,
           qs8_dwconv3x3_minmax_gemmlowp_ukernel_c16__avx2),
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    DWCONV(qs8_dwconv_minmax_gemmlowp_ukernel_c8__neon, WHITTLE_ISA_NEON, 8,
           qs8_dwconv3x3_minmax_gemmlowp_ukernel_c8__neon),
#endif
    DWCONV(qs8_dwconv_minmax_gemmlowp_ukernel_c4__scalar, WHITTLE_ISA_SCALAR, 4,
           qs8_dwconv3x3_minmax_gemmlowp_ukernel_c4__scalar),
};
WHITTLE_DEFINE_UKERNEL_SELECT(qs8_dwconv)

typedef struct {
  const qs8_simple_ukernels* set;
  whittle_isa isa;
} simple_entry;

static const simple_entry simple_entries[] = {
#if defined(__x86_64__)
    {&qs8_simple_ukernels__avx512, WHITTLE_ISA_AVX512},
    {&qs8_simple_ukernels__avx2, WHITTLE_ISA_AVX2},
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    {&qs8_simple_ukernels__neon, WHITTLE_ISA_NEON},
#endif
    {&qs8_simple_ukernels__scalar, WHITTLE_ISA_SCALAR},
};

const qs8_vadd_tables_ukernel qs8_vadd_tables_ukernels[] = {
#if defined(__x86_64__)
    {"qs8_vadd_tables_minmax_gemmlowp_ukernel_64__avx512vpopcnt", WHITTLE_ISA_AVX512VPOPCNT,
     qs8_vadd_tables_minmax_gemmlowp_ukernel_64__avx512vpopcnt},
#endif
    {"qs8_vadd_tables_minmax_gemmlowp_ukernel_1__scalar", WHITTLE_ISA_SCALAR,
     qs8_vadd_tables_minmax_gemmlowp_ukernel_1__scalar},
};
WHITTLE_DEFINE_UKERNEL_SELECT(qs8_vadd_tables)

const qs8_simple_ukernels* qs8_simple_ukernels_select(whittle_isa level) {
  return WHITTLE_KERNEL_LIST_SELECT(simple_entry, simple_entries,
                                    sizeof(simple_entries) / sizeof(simple_entries[0]), level)
      ->set;
}

const qs8_vadd_tables_ukernel* qs8_vadd_tables_for(whittle_isa level) {
  const qs8_vadd_tables_ukernel* tables = qs8_vadd_tables_ukernel_select(level);
  const whittle_isa simple =
      WHITTLE_KERNEL_LIST_SELECT(simple_entry, simple_entries,
                                 sizeof(simple_entries) / sizeof(simple_entries[0]), level)
          ->isa;
  return whittle_isa_allows(tables->isa, simple) ? tables : NULL;
}

void qs8_maxpool(const whittle_pool2d_shape* shape, const void* input, void* output,
                 bool unsigned_activations, int32_t min, int32_t max, whittle_isa level) {
  qs8_simple_ukernels_select(level)->maxpool(shape, input, output, unsigned_activations, min, max);
}

void qs8_avgpool(const whittle_pool2d_shape* shape, const void* input, void* output,
                 bool unsigned_activations, int32_t min, int32_t max, whittle_isa level) {
  qs8_simple_ukernels_select(level)->avgpool(shape, input, output, unsigned_activations, min, max);
}

void qs8_global_avgpool(size_t batch, size_t pixels, size_t channels, const void* input, void* output,
                        bool unsigned_activations, int32_t min, int32_t max, whittle_isa level) {
  const whittle_pool2d_shape shape = whittle_global_pool2d_shape(batch, pixels, channels);
  qs8_simple_ukernels_select(level)->avgpool(&shape, input, output, unsigned_activations, min, max);
}

void qs8_global_avgpool_requant(size_t batch, size_t pixels, size_t channels, const void* input, void* output,
                                const qs8_global_avgpool_params* params, whittle_isa level) {
  qs8_simple_ukernels_select(level)->global_avgpool_requant(batch, pixels, channels, input, output, params);
}

void qs8_quantize(const qs8_quantization_layout* layout, const float* input, void* output,
                  whittle_isa level) {
  qs8_simple_ukernels_select(level)->quantize(layout, input, output);
}

void qs8_dequantize(const qs8_quantization_layout* layout, const void* input, float* output,
                    whittle_isa level) {
  qs8_simple_ukernels_select(level)->dequantize(layout, input, output);
}

void qs8_add(size_t n, const void* a, const void* b, void* output, const qs8_add_params* params,
             whittle_isa level) {
  qs8_simple_ukernels_select(level)->vadd(n, a, b, output, params);
}

void qs8_clamp(size_t n, const void* input, void* output, bool unsigned_activations, int32_t min, int32_t max,
               whittle_isa level) {
  qs8_simple_ukernels_select(level)->vclamp(n, input, output, unsigned_activations, min, max);
}

void qs8_lut(size_t n, const uint8_t* input, uint8_t* output, const uint8_t* table, whittle_isa level) {
  qs8_simple_ukernels_select(level)->vlut(n, input, output, table);
}

void qs8_mul_channels(size_t rows, size_t pixels, size_t channels, const void* a, const void* b, void* output,
                      const qs8_mul_params* params, whittle_isa level) {
  qs8_simple_ukernels_select(level)->vmul_channels(rows, pixels, channels, a, b, output, params);
}

void qs8_resize_bilinear(const whittle_resize_shape* shape, const void* input, void* output,
                         bool unsigned_activations, whittle_isa level) {
  qs8_simple_ukernels_select(level)->resize_bilinear(shape, input, output, unsigned_activations);
}
