// What every kernel header of the library shares: C linkage when included from the C++ binding, the
// restrict qualifier under one name for both languages, the fp32 output clamp, and the one rule that picks a
// kernel variant for an ISA level.
//
// The variant rule, the same for every kernel list (the fp32 and int8 microkernels of f32_ops.h and
// qs8_ops.h, and the seven compressed formats):
//   - a list holds one entry per compiled-in kernel, ordered BEST FIRST, and its LAST entry is the scalar
//     one, which every CPU runs;
//   - the chosen entry is the FIRST one whose ISA `level` allows (whittle_isa_allows: same ladder, not above
//     the level) and this CPU supports (whittle_isa_supported); the scalar entry always qualifies, so the
//     choice is never empty.
// Callers pass whittle_isa_selected() as the level (WHITTLE_ISA can force a lower one); tests pass every
// level to check each path.
#ifndef WHITTLE_KERNEL_ABI_H_
#define WHITTLE_KERNEL_ABI_H_

#include <stddef.h>
#include <stdint.h>

#include "cpu/cpu-features.h"

#ifdef __cplusplus
#define WHITTLE_RESTRICT __restrict
#define WHITTLE_EXTERN_C_BEGIN extern "C" {
#define WHITTLE_EXTERN_C_END }
#else
#define WHITTLE_RESTRICT restrict
#define WHITTLE_EXTERN_C_BEGIN
#define WHITTLE_EXTERN_C_END
#endif

// Code a model run executes at every frame: the plan's loop and the frame's way in and out
// (binding_plan.cc), the operators' bound runs, the layers' run drivers and the thread pool's entry points.
// The linker puts every function so marked next to the others (.text.hot), so that a frame coming 33 ms
// after the last, its code gone cold, touches a few code pages instead of pages spread over the addon: each
// page touched costs a fetch of about 0.3 us (docs/benchmarks.md, issue 13). Not for the kernels themselves:
// each is contiguous already, and the ones a model runs depend on the CPU.
#if defined(__GNUC__)
#define WHITTLE_HOT __attribute__((hot))
#else
#define WHITTLE_HOT
#endif

WHITTLE_EXTERN_C_BEGIN

// The variant rule above over a list of `count` entries of `entry_size` bytes whose whittle_isa field sits
// at byte `isa_offset`. Returns a pointer into the list; the family's *_select casts it back. Not a hot
// path: operators and layers choose once, when they are created.
static inline const void* whittle_kernel_list_select(const void* list, size_t count, size_t entry_size,
                                                     size_t isa_offset, whittle_isa level) {
  const unsigned char* entries = (const unsigned char*)list;
  for (size_t i = 0; i + 1 < count; i++) {
    const whittle_isa isa = *(const whittle_isa*)(const void*)(entries + i * entry_size + isa_offset);
    if (whittle_isa_allows(level, isa) && whittle_isa_supported(isa)) return entries + i * entry_size;
  }
  return entries + (count - 1) * entry_size;
}

// The "minmax" activation every fp32 kernel applies to its outputs (ReLU is [0, inf), ReLU6 [0, 6]).
static inline float whittle_clamp_f32(float value, float output_min, float output_max) {
  value = value < output_min ? output_min : value;
  return value > output_max ? output_max : value;
}

// Full unrolling of a short constant loop, so that arrays indexed by its counter (a kernel's weight
// vectors) live in registers.
#if defined(__clang__) || defined(__GNUC__)
#define WHITTLE_UNROLL3 _Pragma("GCC unroll 3")
#define WHITTLE_UNROLL4 _Pragma("GCC unroll 4")
#define WHITTLE_UNROLL9 _Pragma("GCC unroll 9")
#else
#define WHITTLE_UNROLL3
#define WHITTLE_UNROLL4
#define WHITTLE_UNROLL9
#endif

// `list` is an array (not a pointer) of a struct with a field `isa`.
#define WHITTLE_KERNEL_LIST_SELECT(type, list, count, level) \
  ((const type*)whittle_kernel_list_select((list), (count), sizeof(type), offsetof(type, isa), (level)))

// A kernel list: `list`, an array of `type` (a struct with a field `isa`) in the order above, declared in a
// header with its length `count` and `select(level)`, the entry the rule picks (never NULL; dispatch passes
// whittle_isa_selected()). The .c file that defines the list adds WHITTLE_DEFINE_LIST_SELECT after it.
#define WHITTLE_DECLARE_LIST(type, list, count, select) \
  extern const type list[];                             \
  extern const size_t count;                            \
  const type* select(whittle_isa level);

#define WHITTLE_DEFINE_LIST_SELECT(type, list, count, select) \
  const size_t count = sizeof(list) / sizeof(list[0]);        \
  const type* select(whittle_isa level) { return WHITTLE_KERNEL_LIST_SELECT(type, list, count, level); }

// Calls `macro` with the arguments a list macro below expands to.
#define WHITTLE_LIST_APPLY(macro, ...) macro(__VA_ARGS__)

// A format family's variants (struct family##_variant): family##_variants, family##_variant_count and
// family##_select(level).
#define WHITTLE_VARIANT_LIST(family) \
  family##_variant, family##_variants, family##_variant_count, family##_select
#define WHITTLE_DECLARE_VARIANTS(family) \
  WHITTLE_LIST_APPLY(WHITTLE_DECLARE_LIST, WHITTLE_VARIANT_LIST(family))
#define WHITTLE_DEFINE_VARIANT_SELECT(family) \
  WHITTLE_LIST_APPLY(WHITTLE_DEFINE_LIST_SELECT, WHITTLE_VARIANT_LIST(family))

// A format family's variants of two kernels each (`first`, `second`: the kernels' names without their
// __isa suffix) on the usual ISAs, best first: NEON on Arm; AVX-512 and AVX2 on x86-64; scalar. Defines
// family##_variants and its select.
#if defined(__arm__) || defined(__aarch64__)
#define WHITTLE_VARIANTS_ARM(first, second) {WHITTLE_ISA_NEON, "neon", first##__neon, second##__neon},
#else
#define WHITTLE_VARIANTS_ARM(first, second)
#endif
#if defined(__x86_64__) || defined(_M_X64)
#define WHITTLE_VARIANTS_X86(first, second)                          \
  {WHITTLE_ISA_AVX512, "avx512", first##__avx512, second##__avx512}, \
      {WHITTLE_ISA_AVX2, "avx2", first##__avx2, second##__avx2},
#else
#define WHITTLE_VARIANTS_X86(first, second)
#endif
#define WHITTLE_DEFINE_VARIANTS(family, first, second)                                                    \
  const family##_variant family##_variants[] = {WHITTLE_VARIANTS_ARM(first, second) WHITTLE_VARIANTS_X86( \
      first, second){WHITTLE_ISA_SCALAR, "scalar", first##__scalar, second##__scalar}};                   \
  WHITTLE_DEFINE_VARIANT_SELECT(family)

// A microkernel list (struct kind##_ukernel): kind##_ukernels, kind##_ukernel_count and
// kind##_ukernel_select(level).
#define WHITTLE_UKERNEL_LIST(kind) \
  kind##_ukernel, kind##_ukernels, kind##_ukernel_count, kind##_ukernel_select
#define WHITTLE_DECLARE_UKERNELS(kind) WHITTLE_LIST_APPLY(WHITTLE_DECLARE_LIST, WHITTLE_UKERNEL_LIST(kind))
#define WHITTLE_DEFINE_UKERNEL_SELECT(kind) \
  WHITTLE_LIST_APPLY(WHITTLE_DEFINE_LIST_SELECT, WHITTLE_UKERNEL_LIST(kind))

WHITTLE_EXTERN_C_END

#endif  // WHITTLE_KERNEL_ABI_H_
