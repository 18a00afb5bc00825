// The kernel lists of the fp32 families: one entry per microkernel, best first within each ISA ladder, the
// scalar one last. Dispatch, the test driver and the benchmarks all read these lists, so adding a kernel is
// one line here (and its source file in the build).
#include "f32_ops.h"
#include "f32_train_ops.h"

#define DECLARE_GEMM(name)                                                                              \
  void name(size_t mr, size_t nc, size_t kc, const float* a, size_t a_stride, const float* w, float* c, \
            size_t c_stride, float min, float max)
#define DECLARE_IGEMM(name)                                                                   \
  void name(size_t mr, size_t nc, size_t kc, const float* const* a, const int32_t* k_offsets, \
            const float* w, float* c, size_t c_stride, float min, float max)
#define DECLARE_IGEMM_NARROW(name)                                                     \
  void name(size_t mr, size_t nc, size_t pairs, size_t singles, const float* const* a, \
            const int32_t* offsets, const float* w, float* c, size_t c_stride, float min, float max)
#define DECLARE_PPMM(name) \
  void name(size_t kc, const float* a, const float* b, float* c, size_t ldc, int accumulate)
#define DECLARE_DWCONV(name)                                                                        \
  void name(size_t pixels, size_t channels, size_t taps, const float* const* input, const float* w, \
            float* output, float min, float max)
#define DECLARE_DWCONV3X3(name)                                                                             \
  void name(size_t channels, size_t output_width, const float* const* rows, size_t input_width,             \
            size_t stride, size_t padding_left, const float* pad, const float* w, float* output, float min, \
            float max)

DECLARE_GEMM(f32_gemm_minmax_ukernel_4x4__scalar);
DECLARE_IGEMM(f32_igemm_minmax_ukernel_4x4__scalar);
DECLARE_PPMM(f32_ppmm_ukernel_4x8__scalar);
DECLARE_DWCONV(f32_dwconv_minmax_ukernel_c4__scalar);
DECLARE_DWCONV3X3(f32_dwconv3x3_minmax_ukernel_c4__scalar);
extern const f32_simple_ukernels f32_simple_ukernels__scalar;
#if defined(__x86_64__)
DECLARE_GEMM(f32_gemm_minmax_ukernel_1x16__avx2);
DECLARE_GEMM(f32_gemm_minmax_ukernel_4x16__avx2);
DECLARE_GEMM(f32_gemm_minmax_ukernel_6x16__avx2);
DECLARE_GEMM(f32_gemm_minmax_ukernel_1x32__avx512);
DECLARE_GEMM(f32_gemm_minmax_ukernel_4x32__avx512);
DECLARE_GEMM(f32_gemm_minmax_ukernel_6x32__avx512);
DECLARE_IGEMM(f32_igemm_minmax_ukernel_1x16__avx2);
DECLARE_IGEMM(f32_igemm_minmax_ukernel_6x16__avx2);
DECLARE_IGEMM(f32_igemm_minmax_ukernel_1x32__avx512);
DECLARE_IGEMM(f32_igemm_minmax_ukernel_8x32__avx512);
DECLARE_IGEMM_NARROW(f32_igemm_narrow_minmax_ukernel_8x16c2__avx512);
DECLARE_IGEMM_NARROW(f32_igemm_narrow_minmax_ukernel_12x16c2__avx512);
DECLARE_PPMM(f32_ppmm_ukernel_6x16__avx2);
DECLARE_PPMM(f32_ppmm_ukernel_6x32__avx512);
DECLARE_DWCONV(f32_dwconv_minmax_ukernel_c16__avx2);
DECLARE_DWCONV(f32_dwconv_minmax_ukernel_c32__avx512);
DECLARE_DWCONV3X3(f32_dwconv3x3_minmax_ukernel_c16__avx2);
DECLARE_DWCONV3X3(f32_dwconv3x3_minmax_ukernel_c32__avx512);
extern const f32_simple_ukernels f32_simple_ukernels__avx2;
extern const f32_simple_ukernels f32_simple_ukernels__avx512;
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
DECLARE_GEMM(f32_gemm_minmax_ukernel_1x8__neon);
DECLARE_GEMM(f32_gemm_minmax_ukernel_4x8__neon);
DECLARE_IGEMM(f32_igemm_minmax_ukernel_1x8__neon);
DECLARE_IGEMM(f32_igemm_minmax_ukernel_4x8__neon);
DECLARE_PPMM(f32_ppmm_ukernel_4x8__neon);
DECLARE_DWCONV(f32_dwconv_minmax_ukernel_c8__neon);
DECLARE_DWCONV3X3(f32_dwconv3x3_minmax_ukernel_c8__neon);
extern const f32_simple_ukernels f32_simple_ukernels__neon;
#endif

// fn_1, fn_4: the 1-row and 4-row variants with the same packing, or NULL.
#define GEMM(name, isa, mr, nr, fn_1, fn_4) \
  { #name, isa, name, mr, nr, fn_1, fn_4 }
// fn_1: the 1-row variant with the same packing, or NULL; narrow, narrow_paired: the
// f32_igemm_narrow_ukernels of the same ISA, or NULL.
#define IGEMM(name, isa, mr, nr, fn_1, narrow, narrow_paired) \
  { #name, isa, name, mr, nr, fn_1, narrow, narrow_paired }
#define IGEMM_NARROW(name, mr) \
  { #name, name, mr }
#define PPMM(name, isa, mr, nr) \
  { #name, isa, name, mr, nr }
// fn_3x3: the 3x3 row kernel with the same packing.
#define DWCONV(name, isa, cb, fn_3x3) \
  { #name, isa, name, cb, fn_3x3, #fn_3x3 }

const f32_gemm_ukernel f32_gemm_ukernels[] = {
#if defined(__x86_64__)
    GEMM(f32_gemm_minmax_ukernel_6x32__avx512, WHITTLE_ISA_AVX512, 6, 32,
         f32_gemm_minmax_ukernel_1x32__avx512, f32_gemm_minmax_ukernel_4x32__avx512),
    GEMM(f32_gemm_minmax_ukernel_6x16__avx2, WHITTLE_ISA_AVX2, 6, 16, f32_gemm_minmax_ukernel_1x16__avx2,
         f32_gemm_minmax_ukernel_4x16__avx2),
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    GEMM(f32_gemm_minmax_ukernel_4x8__neon, WHITTLE_ISA_NEON, 4, 8, f32_gemm_minmax_ukernel_1x8__neon, NULL),
#endif
    GEMM(f32_gemm_minmax_ukernel_4x4__scalar, WHITTLE_ISA_SCALAR, 4, 4, NULL, NULL),
};
WHITTLE_DEFINE_UKERNEL_SELECT(f32_gemm)

#if defined(__x86_64__)
static const f32_igemm_narrow_ukernel f32_igemm_narrow_8x16c2__avx512 =
    IGEMM_NARROW(f32_igemm_narrow_minmax_ukernel_8x16c2__avx512, 8);
static const f32_igemm_narrow_ukernel f32_igemm_narrow_12x16c2__avx512 =
    IGEMM_NARROW(f32_igemm_narrow_minmax_ukernel_12x16c2__avx512, 12);
#endif

const f32_igemm_ukernel f32_igemm_ukernels[] = {
#if defined(__x86_64__)
    IGEMM(f32_igemm_minmax_ukernel_8x32__avx512, WHITTLE_ISA_AVX512, 8, 32,
          f32_igemm_minmax_ukernel_1x32__avx512, &f32_igemm_narrow_8x16c2__avx512,
          &f32_igemm_narrow_12x16c2__avx512),
    IGEMM(f32_igemm_minmax_ukernel_6x16__avx2, WHITTLE_ISA_AVX2, 6, 16, f32_igemm_minmax_ukernel_1x16__avx2,
          NULL, NULL),
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    IGEMM(f32_igemm_minmax_ukernel_4x8__neon, WHITTLE_ISA_NEON, 4, 8, f32_igemm_minmax_ukernel_1x8__neon,
          NULL, NULL),
#endif
    IGEMM(f32_igemm_minmax_ukernel_4x4__scalar, WHITTLE_ISA_SCALAR, 4, 4, NULL, NULL, NULL),
};
WHITTLE_DEFINE_UKERNEL_SELECT(f32_igemm)

// The training SGEMM's microkernels (f32_sgemm.c packs both operands for them).
const f32_ppmm_ukernel f32_ppmm_ukernels[] = {
#if defined(__x86_64__)
    PPMM(f32_ppmm_ukernel_6x32__avx512, WHITTLE_ISA_AVX512, 6, 32),
    PPMM(f32_ppmm_ukernel_6x16__avx2, WHITTLE_ISA_AVX2, 6, 16),
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    PPMM(f32_ppmm_ukernel_4x8__neon, WHITTLE_ISA_NEON, 4, 8),
#endif
    PPMM(f32_ppmm_ukernel_4x8__scalar, WHITTLE_ISA_SCALAR, 4, 8),
};
WHITTLE_DEFINE_UKERNEL_SELECT(f32_ppmm)

const f32_dwconv_ukernel f32_dwconv_ukernels[] = {
#if defined(__x86_64__)
    DWCONV(f32_dwconv_minmax_ukernel_c32__avx512, WHITTLE_ISA_AVX512, 32,
           f32_dwconv3x3_minmax_ukernel_c32__avx512),
    DWCONV(f32_dwconv_minmax_ukernel_c16__avx2, WHITTLE_ISA_AVX2, 16, f32_dwconv3x3_minmax_ukernel_c16__avx2),
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    DWCONV(f32_dwconv_minmax_ukernel_c8__neon, WHITTLE_ISA_NEON, 8, f32_dwconv3x3_minmax_ukernel_c8__neon),
#endif
    DWCONV(f32_dwconv_minmax_ukernel_c4__scalar, WHITTLE_ISA_SCALAR, 4,
           f32_dwconv3x3_minmax_ukernel_c4__scalar),
};
WHITTLE_DEFINE_UKERNEL_SELECT(f32_dwconv)

// The simple sets carry their ISA in the table below rather than in the shared source.
typedef struct {
  const f32_simple_ukernels* set;
  whittle_isa isa;
} simple_entry;

static const simple_entry simple_entries[] = {
#if defined(__x86_64__)
    {&f32_simple_ukernels__avx512, WHITTLE_ISA_AVX512},
    {&f32_simple_ukernels__avx2, WHITTLE_ISA_AVX2},
#endif
#if defined(__aarch64__) || defined(__ARM_NEON)
    {&f32_simple_ukernels__neon, WHITTLE_ISA_NEON},
#endif
    {&f32_simple_ukernels__scalar, WHITTLE_ISA_SCALAR},
};

const f32_simple_ukernels* f32_simple_ukernels_select(whittle_isa level) {
  return WHITTLE_KERNEL_LIST_SELECT(simple_entry, simple_entries,
                                    sizeof(simple_entries) / sizeof(simple_entries[0]), level)
      ->set;
}

void f32_maxpool(const whittle_pool2d_shape* shape, const float* input, float* output, float min, float max,
                 whittle_isa level) {
  f32_simple_ukernels_select(level)->maxpool(shape, input, output, min, max);
}

void f32_avgpool(const whittle_pool2d_shape* shape, const float* input, float* output, float min, float max,
                 whittle_isa level) {
  f32_simple_ukernels_select(level)->avgpool(shape, input, output, min, max);
}

void f32_global_avgpool(size_t batch, size_t pixels, size_t channels, const float* input, float* output,
                        float min, float max, whittle_isa level) {
  const whittle_pool2d_shape shape = whittle_global_pool2d_shape(batch, pixels, channels);
  f32_simple_ukernels_select(level)->avgpool(&shape, input, output, min, max);
}

void f32_add(size_t n, const float* a, const float* b, float* output, float min, float max,
             whittle_isa level) {
  f32_simple_ukernels_select(level)->vadd(n, a, b, output, min, max);
}

void f32_clamp(size_t n, const float* input, float* output, float min, float max, whittle_isa level) {
  f32_simple_ukernels_select(level)->vclamp(n, input, output, min, max);
}

void f32_softmax(size_t rows, size_t channels, const float* input, float* output, whittle_isa level) {
  f32_simple_ukernels_select(level)->softmax(rows, channels, input, output);
}

void f32_sigmoid(size_t n, const float* input, float* output, whittle_isa level) {
  f32_simple_ukernels_select(level)->vsigmoid(n, input, output);
}

void f32_hard_sigmoid(size_t n, const float* input, float* output, float alpha, float beta, bool swish,
                      whittle_isa level) {
  f32_simple_ukernels_select(level)->vhard_sigmoid(n, input, output, alpha, beta, swish);
}

void f32_mul_channels(size_t rows, size_t pixels, size_t channels, const float* a, const float* b,
                      float* output, whittle_isa level) {
  f32_simple_ukernels_select(level)->vmul_channels(rows, pixels, channels, a, b, output);
}

void f32_gelu(size_t n, const float* input, float* output, bool tanh_form, whittle_isa level) {
  f32_simple_ukernels_select(level)->vgelu(n, input, output, tanh_form);
}

void f32_layer_norm(size_t rows, size_t channels, const float* input, const float* scale, const float* bias,
                    double epsilon, float* output, whittle_isa level) {
  f32_simple_ukernels_select(level)->layer_norm(rows, channels, input, scale, bias, epsilon, output);
}

void f32_resize_bilinear(const whittle_resize_shape* shape, const float* input, float* output,
                         whittle_isa level) {
  f32_simple_ukernels_select(level)->resize_bilinear(shape, input, output);
}
