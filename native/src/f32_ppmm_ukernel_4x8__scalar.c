// Portable 4x8 SGEMM microkernel: plain loops the compiler may vectorize for the base ISA.
#include "f32_train_ops.h"

void f32_ppmm_ukernel_4x8__scalar(size_t kc, const float* a, const float* b, float* c, size_t ldc,
                                  int accumulate) {
  float acc[4][8] = {{0}};
  for (size_t p = 0; p < kc; p++) {
    for (int i = 0; i < 4; i++) {
      const float ai = a[i];
      for (int j = 0; j < 8; j++) acc[i][j] += ai * b[j];
    }
    a += 4;
    b += 8;
  }
  for (int i = 0; i < 4; i++) {
    float* row = c + (size_t)i * ldc;
    if (accumulate) {
      for (int j = 0; j < 8; j++) row[j] += acc[i][j];
    } else {
      for (int j = 0; j < 8; j++) row[j] = acc[i][j];
    }
  }
}
