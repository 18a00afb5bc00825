#define _GNU_SOURCE
#include "cpu-features.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define WHITTLE_ARCH_X86 1
#elif defined(__aarch64__) || defined(__arm__)
#include <sys/auxv.h>
#define WHITTLE_ARCH_ARM 1
#endif

static whittle_cpu_features features;
static whittle_isa selected_isa = WHITTLE_ISA_SCALAR;
static char selection_error[256];
static bool has_selection_error = false;
static pthread_once_t detect_once = PTHREAD_ONCE_INIT;
static pthread_once_t select_once = PTHREAD_ONCE_INIT;

static const char* const isa_names[WHITTLE_ISA_COUNT] = {"scalar",        "avx2", "avx512", "avx512vnni",
                                                         "avx512vpopcnt", "neon", "neondot"};

#if WHITTLE_ARCH_X86
// XCR0 says which register states the OS saves on a context switch; without them the instructions fault.
static unsigned long long read_xcr0(void) {
  unsigned int eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}

static void detect_x86(void) {
  unsigned int eax, ebx, ecx, edx;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return;
  const bool osxsave = (ecx >> 27) & 1;
  const bool avx = (ecx >> 28) & 1;
  const bool fma = (ecx >> 12) & 1;
  if (!osxsave || !avx) return;
  const unsigned long long xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE + AVX
  const bool zmm_state = (xcr0 & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!ymm_state) return;
  if (__get_cpuid_max(0, NULL) < 7) return;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  features.avx2 = fma && ((ebx >> 5) & 1);
  if (zmm_state) {
    features.avx512f = (ebx >> 16) & 1;
    features.avx512bw = (ebx >> 30) & 1;
    features.avx512vl = (ebx >> 31) & 1;
    features.avx512vnni = features.avx512f && ((ecx >> 11) & 1);
    features.avx512vpopcntdq = features.avx512f && ((ecx >> 14) & 1);
    features.avx512vbmi = features.avx512f && ((ecx >> 1) & 1);
  }
  __cpuid_count(7, 1, eax, ebx, ecx, edx);
  features.avxvnni = features.avx2 && ((eax >> 4) & 1);
}
#endif

#if WHITTLE_ARCH_ARM
static void detect_arm(void) {
#if defined(__aarch64__)
  const unsigned long hwcap = getauxval(AT_HWCAP);
  features.neon = (hwcap & (1UL << 1)) != 0;                       // HWCAP_ASIMD
  features.neondot = features.neon && (hwcap & (1UL << 20)) != 0;  // HWCAP_ASIMDDP
#else
  const unsigned long hwcap = getauxval(AT_HWCAP);
  features.neon = (hwcap & (1UL << 12)) != 0;  // HWCAP_NEON
#endif
}
#endif

static void detect(void) {
  memset(&features, 0, sizeof(features));
#if WHITTLE_ARCH_X86
  detect_x86();
#elif WHITTLE_ARCH_ARM
  detect_arm();
#endif
}

const whittle_cpu_features* whittle_cpu_detect(void) {
  pthread_once(&detect_once, detect);
  return &features;
}

bool whittle_isa_supported(whittle_isa isa) {
  const whittle_cpu_features* f = whittle_cpu_detect();
  switch (isa) {
    case WHITTLE_ISA_SCALAR:
      return true;
#if WHITTLE_ARCH_X86 && defined(__x86_64__)
    case WHITTLE_ISA_AVX2:
      return f->avx2;
    case WHITTLE_ISA_AVX512:
      return f->avx2 && f->avx512f && f->avx512bw && f->avx512vl;
    case WHITTLE_ISA_AVX512VNNI:
      return f->avx2 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni;
    case WHITTLE_ISA_AVX512VPOPCNT:
      return f->avx2 && f->avx512f && f->avx512bw && f->avx512vl && f->avx512vnni && f->avx512vpopcntdq &&
             f->avx512vbmi;
#endif
#if WHITTLE_ARCH_ARM
    case WHITTLE_ISA_NEON:
      return f->neon;
#if defined(__aarch64__)
    case WHITTLE_ISA_NEONDOT:
      return f->neon && f->neondot;
#endif
#endif
    default:
      return false;
  }
}

whittle_isa whittle_isa_best(void) {
  for (int isa = WHITTLE_ISA_COUNT - 1; isa > 0; isa--) {
    if (whittle_isa_supported((whittle_isa)isa)) return (whittle_isa)isa;
  }
  return WHITTLE_ISA_SCALAR;
}

bool whittle_isa_parse(const char* name, whittle_isa* isa) {
  for (int i = 0; i < WHITTLE_ISA_COUNT; i++) {
    if (strcmp(name, isa_names[i]) == 0) {
      *isa = (whittle_isa)i;
      return true;
    }
  }
  return false;
}

const char* whittle_isa_name(whittle_isa isa) {
  return (unsigned)isa < WHITTLE_ISA_COUNT ? isa_names[isa] : "unknown";
}

void whittle_cpu_features_describe(char* buffer, size_t size) {
  if (size == 0) return;
  const whittle_cpu_features* f = whittle_cpu_detect();
  const struct {
    bool present;
    const char* name;
  } list[] = {{f->avx2, "avx2"},
              {f->avx512f, "avx512f"},
              {f->avx512bw, "avx512bw"},
              {f->avx512vl, "avx512vl"},
              {f->avx512vnni, "avx512vnni"},
              {f->avx512vpopcntdq, "avx512vpopcntdq"},
              {f->avxvnni, "avxvnni"},
              {f->neon, "neon"},
              {f->neondot, "neondot"}};
  buffer[0] = '\0';
  size_t used = 0;
  for (size_t i = 0; i < sizeof(list) / sizeof(list[0]); i++) {
    if (!list[i].present) continue;
    const int n = snprintf(buffer + used, size - used, "%s%s", used == 0 ? "" : " ", list[i].name);
    if (n < 0 || (size_t)n >= size - used) break;
    used += (size_t)n;
  }
}

static void select_level(void) {
  selected_isa = whittle_isa_best();
  const char* forced = getenv("WHITTLE_ISA");
  if (forced == NULL || forced[0] == '\0') return;
  whittle_isa isa;
  char described[160];
  whittle_cpu_features_describe(described, sizeof(described));
  if (!whittle_isa_parse(forced, &isa)) {
    snprintf(selection_error, sizeof(selection_error),
             "WHITTLE_ISA=%.32s is not a kernel path; use one of scalar, avx2, avx512, avx512vnni, "
             "avx512vpopcnt, neon, neondot",
             forced);
    has_selection_error = true;
  } else if (!whittle_isa_supported(isa)) {
    snprintf(selection_error, sizeof(selection_error),
             "WHITTLE_ISA=%s is not supported by this CPU (it has: %s; best path: %s)", forced,
             described[0] ? described : "no SIMD extensions", whittle_isa_name(selected_isa));
    has_selection_error = true;
  } else {
    selected_isa = isa;
  }
}

whittle_isa whittle_isa_selected(void) {
  pthread_once(&select_once, select_level);
  return selected_isa;
}

const char* whittle_isa_selection_error(void) {
  pthread_once(&select_once, select_level);
  return has_selection_error ? selection_error : NULL;
}

static bool is_x86_level(whittle_isa isa) {
  return isa >= WHITTLE_ISA_AVX2 && isa <= WHITTLE_ISA_AVX512VPOPCNT;
}
static bool is_arm_level(whittle_isa isa) { return isa == WHITTLE_ISA_NEON || isa == WHITTLE_ISA_NEONDOT; }

bool whittle_isa_allows(whittle_isa level, whittle_isa kernel) {
  if (kernel == WHITTLE_ISA_SCALAR) return true;
  if (is_x86_level(level) && is_x86_level(kernel)) return kernel <= level;
  if (is_arm_level(level) && is_arm_level(kernel)) return kernel <= level;
  return false;
}
