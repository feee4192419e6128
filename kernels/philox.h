// Counter-based random numbers shared by the CPU and CUDA samplers (Philox4x32-10, Salmon et al. 2011).
// A draw depends only on (seed, step, codebook), so a seed repeats exactly and no generator state has
// to be carried between decode steps or captured in a CUDA graph. Each batch row draws with its own
// seed: a row's tokens do not depend on which rows share its batch.
#pragma once
#ifdef __CUDACC_RTC__
typedef unsigned int u32;
typedef unsigned long long u64;
#define MG_HD __device__ __forceinline__
#else
#include <cstdint>
typedef uint32_t u32;
typedef uint64_t u64;
#define MG_HD static inline
#endif

MG_HD void mg_mulhilo(u32 a, u32 b, u32* hi, u32* lo) {
    u64 p = (u64)a * (u64)b;
    *hi = (u32)(p >> 32);
    *lo = (u32)p;
}

// Uniform double in [0, 1) for the draw of `codebook` at decode step `step` under a row's `seed`.
MG_HD double mg_uniform(u64 seed, u64 step, u32 codebook) {
    u32 c0 = (u32)step, c1 = (u32)(step >> 32), c2 = 0, c3 = codebook;
    u32 k0 = (u32)seed, k1 = (u32)(seed >> 32);
    for (int round = 0; round < 10; ++round) {
        u32 hi0, lo0, hi1, lo1;
        mg_mulhilo(0xD2511F53u, c0, &hi0, &lo0);
        mg_mulhilo(0xCD9E8D57u, c2, &hi1, &lo1);
        u32 n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    // 53 random bits from two words
    u64 bits = ((u64)(c0 >> 5) << 26) | (u64)(c1 >> 6);
    return (double)bits * (1.0 / 9007199254740992.0);
}
