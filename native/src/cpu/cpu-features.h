// CPU feature detection and kernel-path selection, done once per process.
//
// An ISA level names a family of kernels. Levels form two ladders, and a level allows every kernel of a
// lower level on its own ladder (and the scalar ones):
//   x86-64:  scalar < avx2 (+FMA) < avx512 (F, BW, VL) < avx512vnni (+VNNI) < avx512vpopcnt (+VPOPCNTDQ,
//   VBMI) ARM:     scalar < neon (ARMv7 NEON or AArch64 Advanced SIMD) < neondot (AArch64 + SDOT/UDOT)
// Every CPU with AVX512_VPOPCNTDQ that matters (Ice Lake, Zen 4) also has VNNI, which is why vpopcnt sits
// above vnni rather than beside it; those CPUs have VBMI too (byte permutes: the int8 residual add's table
// lookups), which the level also requires.
//
// The environment variable WHITTLE_ISA (scalar, avx2, avx512, avx512vnni, avx512vpopcnt, neon, neondot)
// forces a level so that every path can be tested on one machine. Forcing a level the CPU lacks, or a
// name that is not a level, is an error: whittle_isa_selection_error() returns its message and
// whittle_isa_selected() falls back to the best detected level, so nothing ever runs an instruction the
// CPU lacks. Callers that must honour the variable (the binding, the test driver) check the error.
#ifndef WHITTLE_CPU_FEATURES_H_
#define WHITTLE_CPU_FEATURES_H_

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum whittle_isa {
  WHITTLE_ISA_SCALAR = 0,
  WHITTLE_ISA_AVX2 = 1,
  WHITTLE_ISA_AVX512 = 2,
  WHITTLE_ISA_AVX512VNNI = 3,
  WHITTLE_ISA_AVX512VPOPCNT = 4,
  WHITTLE_ISA_NEON = 5,
  WHITTLE_ISA_NEONDOT = 6,
} whittle_isa;

#define WHITTLE_ISA_COUNT 7

// What the CPU and the operating system support (the OS must save the wider registers: XGETBV on x86).
typedef struct whittle_cpu_features {
  bool avx2;     // AVX2 and FMA3, YMM state enabled by the OS
  bool avx512f;  // with ZMM/opmask state enabled by the OS
  bool avx512bw;
  bool avx512vl;
  bool avx512vnni;
  bool avx512vpopcntdq;
  bool avx512vbmi;
  bool avxvnni;  // VEX-encoded VNNI (not used by any level yet; reported for profiles)
  bool neon;     // ARMv7 HWCAP_NEON, or AArch64 HWCAP_ASIMD
  bool neondot;  // AArch64 HWCAP_ASIMDDP
} whittle_cpu_features;

// Detected once (thread-safe); the pointer stays valid for the life of the process.
const whittle_cpu_features* whittle_cpu_detect(void);

// Whether this CPU can run kernels of the given level (compiled in for this architecture, and detected).
bool whittle_isa_supported(whittle_isa isa);

// The best level this CPU supports.
whittle_isa whittle_isa_best(void);

// The level kernels should use: WHITTLE_ISA if set and valid, otherwise whittle_isa_best(). Decided once.
whittle_isa whittle_isa_selected(void);

// NULL when WHITTLE_ISA is unset or valid; otherwise a message naming the value and what this CPU has.
const char* whittle_isa_selection_error(void);

// Whether a kernel written for `kernel` may run when `level` is selected: same ladder and not above it.
bool whittle_isa_allows(whittle_isa level, whittle_isa kernel);

// "scalar", "avx2", ...; "unknown" for a value outside the enum.
const char* whittle_isa_name(whittle_isa isa);

// Parses a level name; returns false (and leaves *isa alone) when the name is not a level.
bool whittle_isa_parse(const char* name, whittle_isa* isa);

// Writes the detected feature names, space-separated, into buffer (always NUL-terminated when size > 0).
void whittle_cpu_features_describe(char* buffer, size_t size);

#ifdef __cplusplus
}
#endif

#endif  // WHITTLE_CPU_FEATURES_H_
