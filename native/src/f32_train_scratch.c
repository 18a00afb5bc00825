#define _POSIX_C_SOURCE 200112L  // posix_memalign
// Per-thread scratch of the training ops: grown on demand and kept, so a training step allocates no
// scratch after the first (im2col columns and packed panels are megabytes per thread).
#include <stdlib.h>

#include "f32_train_ops.h"

typedef struct {
  float* data;
  size_t floats;
} scratch_block;

static scratch_block scratch[WHITTLE_MAX_THREADS][4];

float* f32_train_scratch(size_t index, int slot, size_t floats) {
  scratch_block* block = &scratch[index][slot];
  if (block->floats < floats) {
    free(block->data);
    block->data = NULL;
    block->floats = 0;
    const size_t bytes = (floats * sizeof(float) + 63) & ~(size_t)63;
    void* p = NULL;
    if (posix_memalign(&p, 64, bytes) != 0) return NULL;
    block->data = (float*)p;
    block->floats = floats;
  }
  return block->data;
}
