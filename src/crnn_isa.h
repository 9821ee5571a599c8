/* The SIMD level crnn's kernels run at, and its cap (CRNN_MAX_SIMD).
 *
 * Levels: 0 none (baseline x86-64 / the compiler's default; the recurrent
 * products go through BLAS), 1 AVX2 + FMA, 2 AVX-512 (F, BW, DQ, VL, CD),
 * 3 AVX-512 with BF16 (the bfloat16 products of compute_dtype="bfloat16").
 * crnn_isa_cpu() is what the CPU and OS run; crnn_isa_level() that, capped
 * by crnn_isa_set_cap() (crnn._isa reads CRNN_MAX_SIMD once and every
 * extension module passes it here when it loads, before any kernel runs).
 *
 * Every family of kernels picks its code from the capped level:
 * - the packed products (crnn_gemm.h) take a level per call, at most
 *   crnn_simd_detect() = min(crnn_isa_level(), 2);
 * - the bfloat16 products (crnn_bf16.h) need level 3;
 * - the element-wise loops (crnn_fast.h, crnn_optim.h) are compiled three
 *   times (baseline, AVX2 + FMA, x86-64-v4) and CRNN_PICK calls the
 *   version of crnn_isa_vec (GCC's target_clones would pick by the CPU
 *   alone, at load time, out of the cap's reach).
 *
 * Each module is its own translation unit with its own copy of this state:
 * written once when the module loads, read-only after.  crnn_isa_ran
 * records, per family, which levels have run (a bit per level, set the
 * first time only, so threads do not write a shared line on every call):
 * the tests check that a capped process really runs the capped code.
 */
#ifndef CRNN_ISA_H
#define CRNN_ISA_H

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(CRNN_NO_SIMD)
#define CRNN_HAVE_SIMD 1
#else
#define CRNN_HAVE_SIMD 0
#endif

/* element-wise loops compiled per level: GCC on x86-64 Linux (the builds
 * whose target_clones these replace) */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(__linux__) && !defined(CRNN_NO_CLONES)
#define CRNN_MULTIVERSION 1
#else
#define CRNN_MULTIVERSION 0
#endif

#define CRNN_ISA_NONE 0
#define CRNN_ISA_AVX2 1
#define CRNN_ISA_AVX512 2
#define CRNN_ISA_AVX512_BF16 3

/* families of crnn_isa_ran */
#define CRNN_RAN_PRODUCTS 0     /* packed float products (crnn_gemm.h), level 0-2 */
#define CRNN_RAN_BF16 1         /* bfloat16 products (level 3) */
#define CRNN_RAN_VECTOR 2       /* element-wise loops, by the version run (0-2) */
#define CRNN_RAN_FAMILIES 3

static int crnn_isa_cap = CRNN_ISA_AVX512_BF16;
static int crnn_isa_vec = 0;             /* the element-wise version: 0, 1 or 2 */
static int crnn_isa_ran[CRNN_RAN_FAMILIES];

static int crnn_isa_cpu(void)
{
#if CRNN_HAVE_SIMD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")
        && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx2")
        && __builtin_cpu_supports("fma") && __builtin_cpu_supports("bmi2"))
        return __builtin_cpu_supports("avx512bf16") ? CRNN_ISA_AVX512_BF16 : CRNN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
        && __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c")
        && __builtin_cpu_supports("movbe"))
        return CRNN_ISA_AVX2;
#endif
    return CRNN_ISA_NONE;
}

static int crnn_isa_level(void)
{
    const int cpu = crnn_isa_cpu();
    return cpu < crnn_isa_cap ? cpu : crnn_isa_cap;
}

static void crnn_isa_set_cap(int cap)
{
    int level;
    crnn_isa_cap = cap < 0 ? 0 : cap;
    level = crnn_isa_level();
    crnn_isa_vec = level > CRNN_ISA_AVX512 ? CRNN_ISA_AVX512 : level;
#if !CRNN_MULTIVERSION
    crnn_isa_vec = 0;
#endif
}

#if defined(__GNUC__) || defined(__clang__)
static inline void crnn_isa_note(int family, int level)
{
    const int bit = 1 << level;
    if (!(__atomic_load_n(&crnn_isa_ran[family], __ATOMIC_RELAXED) & bit))
        __atomic_fetch_or(&crnn_isa_ran[family], bit, __ATOMIC_RELAXED);
}

static int crnn_isa_ran_mask(int family)
{
    return family >= 0 && family < CRNN_RAN_FAMILIES
               ? __atomic_load_n(&crnn_isa_ran[family], __ATOMIC_RELAXED) : 0;
}
#else   /* no SIMD kernels: only level 0 ever runs */
static inline void crnn_isa_note(int family, int level)
{
    if (!crnn_isa_ran[family])
        crnn_isa_ran[family] = 1 << level;
}

static int crnn_isa_ran_mask(int family)
{
    return family >= 0 && family < CRNN_RAN_FAMILIES ? crnn_isa_ran[family] : 0;
}
#endif

/* ---- element-wise loops, one version per level --------------------------
 * DEF(NAME, ..., ATTR) defines a function NAME with attribute ATTR;
 * CRNN_VERSIONS makes NAME##_v0 (baseline), _v1 (AVX2, FMA, BMI2: Haswell on)
 * and _v2 (x86-64-v4: AVX-512); CRNN_PICK(NAME, (args)) calls the version of
 * crnn_isa_vec (an expression: void or a value). */
#if CRNN_MULTIVERSION
/* ISA lists, not arch=haswell: a function of another "arch" than its
 * callee's does not inline it (GCC's rule for non-always_inline callees), and
 * the loops rely on crnn_tanhf & co. being inlined to vectorize.
 * (x86-64-v4 keeps the baseline's arch.) */
#define CRNN_ATTR_V1 __attribute__((target("avx2,fma,bmi,bmi2,f16c,lzcnt,popcnt,movbe")))
#define CRNN_ATTR_V2 __attribute__((target("arch=x86-64-v4")))
#define CRNN_VERSIONS(DEF, NAME, ...)              \
    DEF(NAME##_v0, __VA_ARGS__, )                  \
    DEF(NAME##_v1, __VA_ARGS__, CRNN_ATTR_V1)      \
    DEF(NAME##_v2, __VA_ARGS__, CRNN_ATTR_V2)
#define CRNN_PICK(NAME, ARGS)                                                  \
    (crnn_isa_note(CRNN_RAN_VECTOR, crnn_isa_vec),                              \
     crnn_isa_vec >= 2 ? NAME##_v2 ARGS : crnn_isa_vec == 1 ? NAME##_v1 ARGS : NAME##_v0 ARGS)
#else
#define CRNN_VERSIONS(DEF, NAME, ...) DEF(NAME##_v0, __VA_ARGS__, )
#define CRNN_PICK(NAME, ARGS) (crnn_isa_note(CRNN_RAN_VECTOR, 0), NAME##_v0 ARGS)
#endif

#endif
