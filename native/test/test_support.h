// What the C kernel test drivers (kernels_test.c, train_test.c) share: the pass/fail counters and report(),
// the fixed-seed random numbers and an allocation that exits on failure. A driver defines TEST_RNG_SEED (its
// own sequence, the same on every target) before including this file.
#ifndef WHITTLE_TEST_SUPPORT_H_
#define WHITTLE_TEST_SUPPORT_H_

#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef TEST_RNG_SEED
#error "define TEST_RNG_SEED before including test_support.h"
#endif

static size_t passed, failed;
static bool verbose;  // -v: print passing checks too
static const char*
    report_where;  // when set, printed before each message (e.g. "<level> <kernel> <threads>t")

static void report(bool ok, const char* format, ...) {
  if (ok) {
    passed++;
  } else {
    failed++;
  }
  if (!ok || verbose) {
    va_list args;
    va_start(args, format);
    printf(ok ? "ok   " : "FAIL ");
    if (report_where != NULL) printf("%s: ", report_where);
    vprintf(format, args);
    printf("\n");
    va_end(args);
  }
}

// xorshift64*: fixed seed, same sequence on every target.
static uint64_t rng_state = TEST_RNG_SEED;
static uint32_t rand_u32(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}
static int32_t rand_range(int32_t lo, int32_t hi) {
  return lo + (int32_t)(rand_u32() % (uint32_t)(hi - lo + 1));
}
static float rand_float(void) { return (float)rand_u32() / 4294967296.0f * 2.0f - 1.0f; }

static void* xmalloc(size_t bytes) {
  void* p = malloc(bytes == 0 ? 1 : bytes);
  if (p == NULL) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

static void fill_float(float* p, size_t n) {
  for (size_t i = 0; i < n; i++) p[i] = rand_float();
}

// Defines `static bool name(const float* got, const want_type* want, size_t n, size_t* where)`: true when
// |got - want| <= relative * (|want| + mean |want| of the tensor) + absolute everywhere; else false with the
// first index that is not in *where. The mean term covers sums with cancellation, where a float sum in any
// order differs from the double reference by a few ulps of the terms rather than of the (small) result.
// `name##_around(got, want, scale, n, where)` takes that mean from `scale` instead: the same sums before an
// output clamp, which would otherwise hide how large the summed terms were.
#define DEFINE_CLOSE_ENOUGH(name, want_type, relative, absolute)                                    \
  static inline bool name##_around(const float* got, const want_type* want, const want_type* scale, \
                                   size_t n, size_t* where) {                                       \
    double mean = 0.0;                                                                              \
    for (size_t i = 0; i < n; i++) mean += fabs((double)scale[i]);                                  \
    mean = n ? mean / (double)n : 0.0;                                                              \
    for (size_t i = 0; i < n; i++) {                                                                \
      const double tolerance = (relative) * (fabs((double)want[i]) + mean) + (absolute);            \
      if (!(fabs((double)got[i] - (double)want[i]) <= tolerance)) {                                 \
        *where = i;                                                                                 \
        return false;                                                                               \
      }                                                                                             \
    }                                                                                               \
    return true;                                                                                    \
  }                                                                                                 \
  static bool name(const float* got, const want_type* want, size_t n, size_t* where) {              \
    return name##_around(got, want, want, n, where);                                                \
  }

#endif  // WHITTLE_TEST_SUPPORT_H_
