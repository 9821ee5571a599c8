/* The fp32 FMA peak of one core, per vector width: 12 independent chains of
 * 256-bit (ymm, AVX2 + FMA) and of 512-bit (zmm, AVX-512F) FMAs, each only
 * where the CPU has it.
 *
 *     gcc -O3 -o /tmp/fma_peak benches/fma_peak.c && /tmp/fma_peak
 *
 * (x86-64, GCC or Clang.)  Counts 2 FLOPs per lane per FMA.  These are the
 * ceilings benches/report.py's GFLOP/s columns compare against: the ymm one
 * for CRNN_MAX_SIMD=avx2 / --isa avx2, the zmm one for AVX-512.  On a CPU
 * that splits zmm FMAs into two 256-bit halves (AMD Zen 4) the two are
 * equal; on one with two 512-bit FMA units (Intel server cores) zmm doubles
 * ymm.
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#define CHAINS(V, SET1, FMA, ADD)                                                        \
    V a0 = SET1(1.f), a1 = SET1(1.1f), a2 = SET1(1.2f), a3 = SET1(1.3f), a4 = SET1(1.4f),  \
      a5 = SET1(1.5f), a6 = SET1(1.6f), a7 = SET1(1.7f), a8 = SET1(1.8f), a9 = SET1(1.9f), \
      a10 = SET1(2.f), a11 = SET1(2.1f);                                                 \
    const V b = SET1(0.999999f), c = SET1(1e-7f);                                        \
    double t0 = now();                                                                   \
    for (long k = 0; k < n; k++) {                                                       \
        a0 = FMA(a0, b, c); a1 = FMA(a1, b, c); a2 = FMA(a2, b, c); a3 = FMA(a3, b, c);  \
        a4 = FMA(a4, b, c); a5 = FMA(a5, b, c); a6 = FMA(a6, b, c); a7 = FMA(a7, b, c);  \
        a8 = FMA(a8, b, c); a9 = FMA(a9, b, c); a10 = FMA(a10, b, c);                    \
        a11 = FMA(a11, b, c);                                                            \
        __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5), \
                         "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));  \
    }                                                                                    \
    double t = now() - t0;                                                               \
    V s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(ADD(a6, a7),           \
              ADD(ADD(a8, a9), ADD(a10, a11)))));                                        \
    float lanes[sizeof(V) / 4];                                                          \
    memcpy(lanes, &s, sizeof(lanes));                                                    \
    sink += lanes[0];

#include <string.h>
static volatile float sink;

__attribute__((target("avx2,fma"), noinline)) static double ymm(long n)
{
    CHAINS(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps)
    return n * 12.0 * 16 / t / 1e9;
}

__attribute__((target("avx512f"), noinline)) static double zmm(long n)
{
    CHAINS(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps)
    return n * 12.0 * 32 / t / 1e9;
}

int main(void)
{
    __builtin_cpu_init();
    int any = 0;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        for (int r = 0; r < 3; r++)
            printf("ymm FMA (AVX2), 12 chains: %.1f GFLOP/s\n", ymm(200000000));
        any = 1;
    }
    if (__builtin_cpu_supports("avx512f")) {
        for (int r = 0; r < 3; r++)
            printf("zmm FMA (AVX-512), 12 chains: %.1f GFLOP/s\n", zmm(200000000));
        any = 1;
    }
    if (!any)
        printf("no AVX2+FMA or AVX-512F on this CPU\n");
    return 0;
}
