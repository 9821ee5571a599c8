/* The fp32 FMA peak of one core: 12 independent chains of 512-bit FMAs.
 *
 *     gcc -O3 -o /tmp/fma_peak benches/fma_peak.c && /tmp/fma_peak
 *
 * (x86-64 with AVX-512F.)  Counts 2 FLOPs per lane per FMA, 16 lanes.  The
 * ceiling that benches/report.py's GFLOP/s columns compare against.
 */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>
#define F(x) x = _mm512_fmadd_ps(x, b, c)
__attribute__((target("avx512f"), noinline)) double run(long n) {
    __m512 a0=_mm512_set1_ps(1.f),a1=_mm512_set1_ps(1.1f),a2=_mm512_set1_ps(1.2f),a3=_mm512_set1_ps(1.3f),a4=_mm512_set1_ps(1.4f),a5=_mm512_set1_ps(1.5f),a6=_mm512_set1_ps(1.6f),a7=_mm512_set1_ps(1.7f),a8=_mm512_set1_ps(1.8f),a9=_mm512_set1_ps(1.9f),a10=_mm512_set1_ps(2.f),a11=_mm512_set1_ps(2.1f);
    const __m512 b = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    struct timespec t0, t1; clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long k = 0; k < n; k++) { F(a0);F(a1);F(a2);F(a3);F(a4);F(a5);F(a6);F(a7);F(a8);F(a9);F(a10);F(a11); __asm__ volatile("" : "+v"(a0),"+v"(a1),"+v"(a2),"+v"(a3),"+v"(a4),"+v"(a5),"+v"(a6),"+v"(a7),"+v"(a8),"+v"(a9),"+v"(a10),"+v"(a11)); }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0,a1),_mm512_add_ps(a2,a3)),_mm512_add_ps(_mm512_add_ps(a4,a5),_mm512_add_ps(_mm512_add_ps(a6,a7),_mm512_add_ps(_mm512_add_ps(a8,a9),_mm512_add_ps(a10,a11)))));
    double t = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("%g ", _mm512_reduce_add_ps(s)); return n * 12.0 * 32 / t / 1e9;
}
int main() { for (int r = 0; r < 3; r++) printf("zmm FMA, 12 chains: %.1f GFLOP/s\n", run(200000000)); }
