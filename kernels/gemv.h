// Matrix-vector products that read each weight once for all input rows (the guidance rows share
// one pass over the weights): fp32, bf16, or int8 weights with a float32 scale per output row.
// All arrays are contiguous, row-major.
#pragma once
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "vecmath.h"

namespace mg {

// Each weight type reads one 32-byte chunk of a weight row per step and multiplies it with the
// matching chunk of every input row, prepared once per call in the layout the chunk needs. The bf16
// chunk avoids lane shuffles: its even and odd elements are split by shifts, so the input is stored
// per chunk as [even elements | odd elements].
struct F32 {
    using W = float;
    using X = float;
    static constexpr int width = 8;
    using Acc = __m256;
    static Acc zero() { return _mm256_setzero_ps(); }
    static void prepare(const float* x, int K, X* out, float*) { std::copy(x, x + K, out); }
    static Acc fma(const W* w, const X* x, Acc acc) { return _mm256_fmadd_ps(_mm256_loadu_ps(w), _mm256_loadu_ps(x), acc); }
    static float finish(Acc acc, float) { return hsum(acc); }
};

struct BF16 {
    using W = uint16_t;
    using X = float;
    static constexpr int width = 16;
    using Acc = __m256;
    static Acc zero() { return _mm256_setzero_ps(); }
    static void prepare(const float* x, int K, X* out, float*) {
        for (int k = 0; k < K; k += 16)
            for (int j = 0; j < 8; ++j) out[k + j] = x[k + 2 * j], out[k + 8 + j] = x[k + 2 * j + 1];
    }
    static Acc fma(const W* w, const X* x, Acc acc) {  // a bf16 is the high half of an fp32
        __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
        __m256 even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
        __m256 odd = _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xFFFF0000u)));
        return _mm256_fmadd_ps(odd, _mm256_loadu_ps(x + 8), _mm256_fmadd_ps(even, _mm256_loadu_ps(x), acc));
    }
    static float finish(Acc acc, float) { return hsum(acc); }
};

// int8 weights times the input rounded to 14-bit integers (per-row scale): exact integer products
// summed in int32 lanes, which cannot overflow for K <= 8192 (checked by the caller). Each half of a
// chunk is widened to 16 bits as it is loaded (vpmovsxbw), so the input keeps its natural order.
struct I8 {
    using W = int8_t;
    using X = int16_t;
    static constexpr int width = 32;
    static constexpr float levels = 8191.0f;
    using Acc = __m256i;
    static Acc zero() { return _mm256_setzero_si256(); }
    static void prepare(const float* x, int K, X* out, float* xscale) {
        const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
        __m256 top8 = _mm256_setzero_ps();
        for (int k = 0; k < K; k += 8) top8 = _mm256_max_ps(top8, _mm256_and_ps(magnitude, _mm256_loadu_ps(x + k)));
        alignas(32) float lanes[8];
        _mm256_store_ps(lanes, top8);
        const float top = *std::max_element(lanes, lanes + 8);
        const float s = top > 0.0f ? top / levels : 1.0f;
        *xscale = s;
        const __m256 inv = _mm256_set1_ps(1.0f / s);
        for (int k = 0; k < K; k += 16) {  // round to nearest, pack to int16, undo packs' lane interleave
            __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k), inv));
            __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + k + 8), inv));
            __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + k), packed);
        }
    }
    static Acc fma(const W* w, const X* x, Acc acc) {
        __m256i lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w)));
        __m256i hi = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16)));
        __m256i a = _mm256_madd_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x)));
        __m256i b = _mm256_madd_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + 16)));
        return _mm256_add_epi32(acc, _mm256_add_epi32(a, b));
    }
    static float finish(Acc acc, float xscale) { return hsum(_mm256_cvtepi32_ps(acc)) * xscale; }
};

// y[m, n] = wscale[n] * sum_k x[m, k] * w[n, k] for M input rows, each weight read once for all
// of them; NR output rows per pass keep NR * M accumulators in registers.
template <typename T, int M>
void gemv(const typename T::X* x, const float* xscale, int K, const typename T::W* w, const float* wscale, int N,
          float* y) {
    constexpr int NR = M <= 2 ? 4 : 8 / M;
    const int blocks = (N + NR - 1) / NR;
#pragma omp parallel for schedule(static) if ((long)N * K >= (1L << 16))
    for (int blk = 0; blk < blocks; ++blk) {
        const int n0 = blk * NR;
        const int nr = std::min(NR, N - n0);
        typename T::Acc acc[NR][M];
        for (int r = 0; r < NR; ++r)
            for (int m = 0; m < M; ++m) acc[r][m] = T::zero();
        for (int k = 0; k < K; k += T::width) {
            if (nr == NR) {
                for (int r = 0; r < NR; ++r)
                    for (int m = 0; m < M; ++m) acc[r][m] = T::fma(w + (long)(n0 + r) * K + k, x + (long)m * K + k, acc[r][m]);
            } else {
                for (int r = 0; r < nr; ++r)
                    for (int m = 0; m < M; ++m) acc[r][m] = T::fma(w + (long)(n0 + r) * K + k, x + (long)m * K + k, acc[r][m]);
            }
        }
        for (int r = 0; r < nr; ++r) {
            const float s = wscale ? wscale[n0 + r] : 1.0f;
            for (int m = 0; m < M; ++m) y[(long)m * N + n0 + r] = T::finish(acc[r][m], xscale[m]) * s;
        }
    }
}

template <typename T>
int linear(const float* x, int M, int K, const typename T::W* w, const float* wscale, int N, float* y) {
    if (K % T::width != 0 || K > 8192) return 1;
    std::vector<typename T::X> xp((size_t)M * K);
    std::vector<float> xscale(M, 1.0f);
    for (int m = 0; m < M; ++m) T::prepare(x + (long)m * K, K, xp.data() + (long)m * K, &xscale[m]);
    for (int m0 = 0; m0 < M; m0 += 4) {  // at most 4 input rows per pass over the weights
        const int mr = std::min(4, M - m0);
        const typename T::X* xs = xp.data() + (long)m0 * K;
        float* ys = y + (long)m0 * N;
        switch (mr) {
            case 1: gemv<T, 1>(xs, &xscale[m0], K, w, wscale, N, ys); break;
            case 2: gemv<T, 2>(xs, &xscale[m0], K, w, wscale, N, ys); break;
            case 3: gemv<T, 3>(xs, &xscale[m0], K, w, wscale, N, ys); break;
            default: gemv<T, 4>(xs, &xscale[m0], K, w, wscale, N, ys); break;
        }
    }
    return 0;
}

}  // namespace mg
