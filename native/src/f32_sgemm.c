// Blocked SGEMM (Goto/BLIS structure): B is packed into KC x NC panels of NR-wide strips, A into MC x KC
// blocks of MR-tall strips; an MR x NR microkernel picked by ISA at run time does the arithmetic.
// Transposes are absorbed by the packing, so one driver serves A*B, A^T*B and A*B^T.
#include <string.h>

#include "f32_train_ops.h"

enum { KC = 256, NC = 1024, MC_STRIPS = 16 };

static inline float load_a(int trans, const float* a, size_t lda, size_t i, size_t p) {
  return trans ? a[p * lda + i] : a[i * lda + p];
}

// bpack[strip][p][j] for strips of nr columns; columns past nc are zero.
static void pack_b(int trans, const float* b, size_t ldb, size_t pc, size_t kc, size_t jc, size_t nc,
                   size_t nr, float* bpack) {
  for (size_t js = 0; js < nc; js += nr) {
    const size_t width = nc - js < nr ? nc - js : nr;
    float* dst = bpack + js * kc;
    if (!trans) {
      for (size_t p = 0; p < kc; p++) {
        const float* src = b + (pc + p) * ldb + jc + js;
        memcpy(dst + p * nr, src, width * sizeof(float));
        for (size_t j = width; j < nr; j++) dst[p * nr + j] = 0.0f;
      }
    } else {
      for (size_t j = 0; j < nr; j++) {
        if (j < width) {
          const float* src = b + (jc + js + j) * ldb + pc;
          for (size_t p = 0; p < kc; p++) dst[p * nr + j] = src[p];
        } else {
          for (size_t p = 0; p < kc; p++) dst[p * nr + j] = 0.0f;
        }
      }
    }
  }
}

// apack[strip][p][i] for strips of mr rows; rows past mc are zero.
static void pack_a(int trans, const float* a, size_t lda, size_t ic, size_t mc, size_t pc, size_t kc,
                   size_t mr, float* apack) {
  for (size_t is = 0; is < mc; is += mr) {
    const size_t height = mc - is < mr ? mc - is : mr;
    float* dst = apack + is * kc;
    if (trans) {
      for (size_t p = 0; p < kc; p++) {
        const float* src = a + (pc + p) * lda + ic + is;
        for (size_t i = 0; i < height; i++) dst[p * mr + i] = src[i];
        for (size_t i = height; i < mr; i++) dst[p * mr + i] = 0.0f;
      }
    } else {
      for (size_t i = 0; i < mr; i++) {
        if (i < height) {
          const float* src = a + (ic + is + i) * lda + pc;
          for (size_t p = 0; p < kc; p++) dst[p * mr + i] = src[p];
        } else {
          for (size_t p = 0; p < kc; p++) dst[p * mr + i] = 0.0f;
        }
      }
    }
  }
}

void f32_sgemm_on_thread(const f32_ppmm_ukernel* gemm, size_t scratch, int trans_a, int trans_b, size_t m,
                         size_t n, size_t k, const float* a, size_t lda, const float* b, size_t ldb,
                         float beta, float* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == 0.0f)
      for (size_t i = 0; i < m; i++) memset(c + i * ldc, 0, n * sizeof(float));
    return;
  }
  const size_t mr = gemm->mr, nr = gemm->nr, mc_max = mr * MC_STRIPS;
  float* apack = f32_train_scratch(scratch, 0, mc_max * KC);
  float* bpack = f32_train_scratch(scratch, 1, KC * (NC + 32));
  float edge[6 * 32] __attribute__((aligned(64)));
  if (apack == NULL || bpack == NULL) return;  // unreachable in practice: a few MB per thread
  for (size_t jc = 0; jc < n; jc += NC) {
    const size_t nc = n - jc < NC ? n - jc : NC;
    for (size_t pc = 0; pc < k; pc += KC) {
      const size_t kc = k - pc < KC ? k - pc : KC;
      const int accumulate = pc > 0 || beta != 0.0f;
      pack_b(trans_b, b, ldb, pc, kc, jc, nc, nr, bpack);
      for (size_t ic = 0; ic < m; ic += mc_max) {
        const size_t mc = m - ic < mc_max ? m - ic : mc_max;
        pack_a(trans_a, a, lda, ic, mc, pc, kc, mr, apack);
        for (size_t jr = 0; jr < nc; jr += nr) {
          const size_t width = nc - jr < nr ? nc - jr : nr;
          for (size_t ir = 0; ir < mc; ir += mr) {
            const size_t height = mc - ir < mr ? mc - ir : mr;
            float* ctile = c + (ic + ir) * ldc + jc + jr;
            if (width == nr && height == mr) {
              gemm->fn(kc, apack + ir * kc, bpack + jr * kc, ctile, ldc, accumulate);
            } else {
              gemm->fn(kc, apack + ir * kc, bpack + jr * kc, edge, nr, 0);
              for (size_t i = 0; i < height; i++) {
                float* row = ctile + i * ldc;
                const float* src = edge + i * nr;
                if (accumulate) {
                  for (size_t j = 0; j < width; j++) row[j] += src[j];
                } else {
                  for (size_t j = 0; j < width; j++) row[j] = src[j];
                }
              }
            }
          }
        }
      }
    }
  }
}

typedef struct {
  const f32_ppmm_ukernel* gemm;
  int trans_a, trans_b;
  size_t m, n, k, lda, ldb, ldc;
  const float *a, *b;
  float beta;
  float* c;
  int split_n;  // 1: blocks of columns, 0: blocks of rows
  size_t unit;  // columns or rows per unit: whole microkernel tiles
  size_t blocks;
} sgemm_job;

// Block `block` of `blocks` equal runs of whole units; the pool may run several blocks on one thread.
static void sgemm_task(void* context, size_t thread, size_t first_block, size_t end_block) {
  const sgemm_job* job = (const sgemm_job*)context;
  const size_t total = job->split_n ? job->n : job->m;
  const size_t units = (total + job->unit - 1) / job->unit;
  for (size_t block = first_block; block < end_block; block++) {
    const size_t begin = units * block / job->blocks * job->unit;
    size_t end = units * (block + 1) / job->blocks * job->unit;
    if (end > total) end = total;
    if (begin >= end) continue;
    if (job->split_n) {
      const float* b = job->trans_b ? job->b + begin * job->ldb : job->b + begin;
      f32_sgemm_on_thread(job->gemm, thread, job->trans_a, job->trans_b, job->m, end - begin, job->k, job->a,
                          job->lda, b, job->ldb, job->beta, job->c + begin, job->ldc);
    } else {
      const float* a = job->trans_a ? job->a + begin : job->a + begin * job->lda;
      f32_sgemm_on_thread(job->gemm, thread, job->trans_a, job->trans_b, end - begin, job->n, job->k, a,
                          job->lda, job->b, job->ldb, job->beta, job->c + begin * job->ldc, job->ldc);
    }
  }
}

void f32_sgemm(const f32_train_context* ctx, int trans_a, int trans_b, size_t m, size_t n, size_t k,
               const float* a, size_t lda, const float* b, size_t ldb, float beta, float* c, size_t ldc) {
  const f32_ppmm_ukernel* gemm = ctx->gemm;
  const size_t threads = whittle_threadpool_threads(ctx->pool);
  // Small products are not worth a thread hop (about 2 microseconds).
  if (threads <= 1 || m * n * k < 32768) {
    f32_sgemm_on_thread(gemm, 0, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  // One block per thread, each a whole number of tiles: every thread packs its panels once.
  sgemm_job job = {gemm, trans_a, trans_b, m, n, k, lda, ldb, ldc, a, b, beta, c, 0, gemm->mr, threads};
  // Split the dimension that gives each thread more whole tiles; B panels are the larger pack.
  if (n / gemm->nr >= threads && n >= m) {
    job.split_n = 1;
    job.unit = gemm->nr;
  }
  whittle_threadpool_parallelize(ctx->pool, sgemm_task, &job, threads, 1);
}

void f32_batch_matmul(const f32_train_context* ctx, size_t batch_a, size_t batch_b, size_t m, size_t n,
                      size_t k, int trans_a, int trans_b, const float* a, const float* b, const float* bias,
                      size_t bias_len, f32_activation act, float* c) {
  const size_t batch = batch_a > batch_b ? batch_a : batch_b;
  const size_t lda = trans_a ? m : k, ldb = trans_b ? k : n;
  for (size_t i = 0; i < batch; i++) {
    const float* ai = a + (batch_a == 1 ? 0 : i) * m * k;
    const float* bi = b + (batch_b == 1 ? 0 : i) * k * n;
    float* ci = c + i * m * n;
    f32_sgemm(ctx, trans_a, trans_b, m, n, k, ai, lda, bi, ldb, 0.0f, ci, n);
    if (bias != NULL && bias_len == 1) {
      for (size_t j = 0; j < m * n; j++) ci[j] += bias[0];
      f32_bias_activation(ci, m, n, NULL, act);
    } else {
      f32_bias_activation(ci, m, n, bias, act);
    }
  }
}

void f32_bias_activation(float* y, size_t rows, size_t channels, const float* bias, f32_activation act) {
  if (bias == NULL && act == F32_ACT_LINEAR) return;
  for (size_t r = 0; r < rows; r++) {
    float* row = y + r * channels;
    if (bias != NULL)
      for (size_t c = 0; c < channels; c++) row[c] += bias[c];
    if (act == F32_ACT_RELU) {
      for (size_t c = 0; c < channels; c++) row[c] = row[c] < 0.0f ? 0.0f : row[c];  // NaN stays NaN
    } else if (act == F32_ACT_RELU6) {
      for (size_t c = 0; c < channels; c++) {
        const float v = row[c] < 0.0f ? 0.0f : row[c];
        row[c] = v > 6.0f ? 6.0f : v;
      }
    }
  }
}
