// Matrix-vector products that read each weight once for all input rows (the guidance rows share
// one pass over the weights): fp32, bf16, or int8 weights with a float32 scale per block of 32
// values of a row (I8_BLOCK; kernels/fast_lm.py's quantise_blocks).
// All arrays are contiguous, row-major. build.py compiles the library twice: for AVX2 + FMA, and
// for AVX-512 with VNNI and BF16 (__AVX512VNNI__ below), whose bf16 and int8 products use the dot
// product instructions; cpu.py loads the one this CPU runs.
#pragma once
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "vecmath.h"

namespace mg {

// A weight type reads `width` values of a weight row at a time (load) and multiplies them with the
// same values of every input row (madd), which its Input prepared once per call, in the layout the
// chunk wants, zero-padded to a whole chunk; Input::finish turns an accumulator into the sum. K
// must be a multiple of `unit`; where `width` is larger (the AVX-512 types), the last chunk of each
// row is read under a mask (load(w, s, k, count)). A row's scales (s: int8 only) come with its
// values: load(w + k, s, k) reads the chunk at k and its block's scale.
constexpr int I8_BLOCK = 32;

struct F32 {
    using W = float;
    static constexpr int width = 8, unit = 8;
    static int scales(int) { return 0; }
    using Acc = __m256;
    using Wv = __m256;
    static Acc zero() { return _mm256_setzero_ps(); }
    static Wv load(const W* w, const float*, int, int = width) { return _mm256_loadu_ps(w); }
    static void madd(Wv w, Wv x, Acc& acc) { acc = _mm256_fmadd_ps(w, x, acc); }
    struct Input {
        const float* x;
        int K;
        Input(const float* x, int, int K) : x(x), K(K) {}
        Wv at(int m, int k) const { return _mm256_loadu_ps(x + (long)m * K + k); }
        float finish(Acc acc, int) const { return hsum(acc); }
    };
};

// Rows of K values, padded to a multiple of `pad`, in one buffer.
template <typename X>
struct Rows {
    int stride;
    std::vector<X> data;
    Rows(int M, int K, int pad) : stride((K + pad - 1) / pad * pad), data((size_t)M * stride) {}
    X* row(int m) { return data.data() + (long)m * stride; }
    const X* at(int m, int k) const { return data.data() + (long)m * stride + k; }
};

// The inputs of an int8 product rounded to 14-bit integers (|q| <= 8191), one float scale per row
// (max |x| / 8191, round to nearest): with int8 weights, exact integer products summed in int32.
struct Rounded {
    Rows<int16_t> q;
    std::vector<float> scale;
    Rounded(const float* x, int M, int K, int pad) : q(M, K, pad), scale(M) {
        const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
        for (int m = 0; m < M; ++m) {
            const float* xm = x + (long)m * K;
            __m256 top = _mm256_setzero_ps();
            for (int k = 0; k < K; k += 8) top = _mm256_max_ps(top, _mm256_and_ps(magnitude, _mm256_loadu_ps(xm + k)));
            const float t = hmax(top), s = t > 0.0f ? t / 8191.0f : 1.0f;
            scale[m] = s;
            const __m256 inv = _mm256_set1_ps(1.0f / s);
            for (int k = 0; k < K; k += 16) {  // round to nearest, pack to int16, undo packs' lane interleave
                __m256i a = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xm + k), inv));
                __m256i b = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xm + k + 8), inv));
                __m256i packed = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(q.row(m) + k), packed);
            }
        }
    }
};

#if defined(__AVX512VNNI__) && defined(__AVX512BF16__)

inline __mmask64 first(int count) { return count >= 64 ? ~0ULL : (1ULL << count) - 1; }

// acc + the dot products of a (unsigned bytes) and b (signed bytes), or of bf16 pairs, accumulated
// in place: through the intrinsics GCC 12 copies the accumulator there and back at every use,
// which puts two moves into each accumulator's chain of dependencies.
inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
    asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}
inline __m512 dpbf16(__m512 acc, __m512bh a, __m512bh b) {
    asm("vdpbf16ps %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
}

// bf16 weights times the input split in two bf16 (x = hi + lo to about 2^-17), by vdpbf16ps: each
// product of two bf16 is exact in float32.
struct BF16 {
    using W = uint16_t;
    static constexpr int width = 32, unit = 16;
    static int scales(int) { return 0; }
    using Acc = __m512;
    using Wv = __m512bh;
    struct Xv {
        __m512bh hi, lo;
    };
    static Acc zero() { return _mm512_setzero_ps(); }
    static Wv load(const W* w, const float*, int) { return (__m512bh)_mm512_loadu_si512(w); }
    static Wv load(const W* w, const float*, int, int count) { return (__m512bh)_mm512_maskz_loadu_epi16((__mmask32)first(count), w); }
    static void madd(Wv w, const Xv& x, Acc& acc) { acc = dpbf16(dpbf16(acc, w, x.hi), w, x.lo); }
    struct Input {
        Rows<uint16_t> hi, lo;
        Input(const float* x, int M, int K) : hi(M, K, width), lo(M, K, width) {
            for (int m = 0; m < M; ++m)
                for (int k = 0; k < K; k += 16) {
                    const __m512 v = _mm512_loadu_ps(x + (long)m * K + k);
                    const __m256bh h = _mm512_cvtneps_pbh(v);
                    const __m512 back = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32((__m256i)h), 16));
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi.row(m) + k), (__m256i)h);
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo.row(m) + k), (__m256i)_mm512_cvtneps_pbh(_mm512_sub_ps(v, back)));
                }
        }
        Xv at(int m, int k) const {
            return {(__m512bh)_mm512_loadu_si512(hi.at(m, k)), (__m512bh)_mm512_loadu_si512(lo.at(m, k))};
        }
        float finish(Acc acc, int) const { return _mm512_reduce_add_ps(acc); }
    };
};

// int8 weights times the 14-bit inputs by vpdpbusd (unsigned by signed bytes, four products summed
// into each int32 lane), twice: q = 128 hi + lo, with lo = q & 127 (unsigned) and hi = q >> 7
// (signed, |hi| <= 64). lo multiplies the weights as they are; hi multiplies the weights offset to
// w + 128 (unsigned), from a start of -128 times the lane's sum of hi (Input::start), which takes the
// offset off. A block's sum of q w, 128 times the first plus the second, is exact in int32 and in
// its float32 conversion (|lane| < 2^24); times the block's scale it goes into a float accumulator.
struct I8 {
    using W = int8_t;
    static constexpr int width = 64, unit = 32;
    static int scales(int K) { return (K + I8_BLOCK - 1) / I8_BLOCK; }
    using Acc = __m512;
    struct Wv {
        __m512i w, offset;
        __m512 scale;
    };
    struct Xv {
        __m512i hi, lo, start;
    };
    static Acc zero() { return _mm512_setzero_ps(); }
    static Wv with_offset(__m512i w, __m512 scale) { return {w, _mm512_xor_si512(w, _mm512_set1_epi8(-128)), scale}; }
    // the scales of the two blocks a chunk spans, each over the 8 lanes that sum its values
    static __m512 pair(const float* s) {
        const __m512 two = _mm512_castps128_ps512(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s))));
        return _mm512_permutexvar_ps(_mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0), two);
    }
    static Wv load(const W* w, const float* s, int k) { return with_offset(_mm512_loadu_si512(w), pair(s + k / I8_BLOCK)); }
    static Wv load(const W* w, const float* s, int k, int count) {  // the row's last chunk: one block or two
        const __m512 scale = count > I8_BLOCK ? pair(s + k / I8_BLOCK) : _mm512_set1_ps(s[k / I8_BLOCK]);
        return with_offset(_mm512_maskz_loadu_epi8(first(count), w), scale);
    }
    static void madd(const Wv& w, const Xv& x, Acc& acc) {
        const __m512i block = dpbusd(_mm512_slli_epi32(dpbusd(x.start, w.offset, x.hi), 7), x.lo, w.w);
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(block), w.scale, acc);
    }
    struct Input : Rounded {
        Rows<int8_t> hi, lo;
        Rows<int32_t> start;  // per chunk of 64 values, 16 lanes: -128 times the lane's four hi
        Input(const float* x, int M, int K) : Rounded(x, M, K, width), hi(M, K, width), lo(M, K, width), start(M, K / 4, 16) {
            for (int m = 0; m < M; ++m) {
                for (int k = 0; k < q.stride; k += 32) {
                    const __m512i v = _mm512_loadu_si512(q.at(m, k));
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(hi.row(m) + k), _mm512_cvtepi16_epi8(_mm512_srai_epi16(v, 7)));
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lo.row(m) + k), _mm512_cvtepi16_epi8(_mm512_and_si512(v, _mm512_set1_epi16(127))));
                }
                for (int k = 0; k < q.stride; k += width) {
                    const __m512i sums = dpbusd(_mm512_setzero_si512(), _mm512_set1_epi8(1), _mm512_loadu_si512(hi.at(m, k)));
                    _mm512_storeu_si512(start.row(m) + k / 4, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sums, 7)));
                }
            }
        }
        Xv at(int m, int k) const {
            return {_mm512_loadu_si512(hi.at(m, k)), _mm512_loadu_si512(lo.at(m, k)), _mm512_loadu_si512(start.at(m, k / 4))};
        }
        float finish(Acc acc, int m) const { return _mm512_reduce_add_ps(acc) * scale[m]; }
    };
};

#else

// bf16 weights widened to float32 by shifts (a bf16 is the high half of an fp32), which splits the
// even and odd elements of a chunk: the input is stored per chunk as [even elements | odd elements].
struct BF16 {
    using W = uint16_t;
    static constexpr int width = 16, unit = 16;
    static int scales(int) { return 0; }
    using Acc = __m256;
    struct Wv {
        __m256 even, odd;
    };
    static Acc zero() { return _mm256_setzero_ps(); }
    static Wv load(const W* w, const float*, int, int = width) {
        __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w));
        return {_mm256_castsi256_ps(_mm256_slli_epi32(v, 16)),
                _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xFFFF0000u)))};
    }
    static void madd(const Wv& w, const Wv& x, Acc& acc) { acc = _mm256_fmadd_ps(w.odd, x.odd, _mm256_fmadd_ps(w.even, x.even, acc)); }
    struct Input {
        Rows<float> x;
        Input(const float* in, int M, int K) : x(M, K, width) {
            for (int m = 0; m < M; ++m)
                for (int k = 0; k < K; k += 16)
                    for (int j = 0; j < 8; ++j)
                        x.row(m)[k + j] = in[(long)m * K + k + 2 * j], x.row(m)[k + 8 + j] = in[(long)m * K + k + 2 * j + 1];
        }
        Wv at(int m, int k) const { return {_mm256_loadu_ps(x.at(m, k)), _mm256_loadu_ps(x.at(m, k + 8))}; }
        float finish(Acc acc, int) const { return hsum(acc); }
    };
};

// int8 weights widened to 16 bits as they load (vpmovsxbw), times the 14-bit inputs by vpmaddwd:
// pairs of exact products summed into int32 lanes (|lane| < 2^24 for a chunk), converted to float
// and times the block's scale into a float accumulator.
struct I8 {
    using W = int8_t;
    static constexpr int width = 32, unit = 32;
    static int scales(int K) { return (K + I8_BLOCK - 1) / I8_BLOCK; }
    using Acc = __m256;
    struct Wv {
        __m256i lo, hi;
        __m256 scale;
    };
    struct Xv {
        __m256i lo, hi;
    };
    static Acc zero() { return _mm256_setzero_ps(); }
    static Wv load(const W* w, const float* s, int k, int = width) {
        return {_mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w))),
                _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w + 16))), _mm256_set1_ps(s[k / I8_BLOCK])};
    }
    static void madd(const Wv& w, const Xv& x, Acc& acc) {
        const __m256i chunk = _mm256_add_epi32(_mm256_madd_epi16(w.lo, x.lo), _mm256_madd_epi16(w.hi, x.hi));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(chunk), w.scale, acc);
    }
    struct Input : Rounded {
        Input(const float* x, int M, int K) : Rounded(x, M, K, width) {}
        Xv at(int m, int k) const {
            return {_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.at(m, k))),
                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q.at(m, k + 16)))};
        }
        float finish(Acc acc, int m) const { return hsum(acc) * scale[m]; }
    };
};

#endif

// Output rows n0 .. n0 + R - 1 for M input rows from m0: R * M accumulators in registers, and
// each chunk of a weight row loaded once for all M input rows. The products are bound by memory
// reads: each chunk asks for the same chunk of the block of rows two blocks ahead (the thread's
// work to come), which the hardware prefetchers, confined to 4 KB pages, do not fetch early
// enough. The request goes to L2 (T1), not L1 (T0): prefetches into L1 take the few L1 miss
// buffers the loads themselves need, and an int8 product on one thread of an AVX-512 EPYC read
// its weights at about half the speed it does with T1 (one thread, a shared 2-core machine).
template <typename T, int M, int R>
inline void rows(const typename T::Input& in, int m0, int K, const typename T::W* w, const float* wscale, int n0,
                 int N, float* y) {
    typename T::Acc acc[R][M];
    for (int r = 0; r < R; ++r)
        for (int m = 0; m < M; ++m) acc[r][m] = T::zero();
    const typename T::W* wr[R];
    const float* sr[R];  // the rows' scales (int8)
    for (int r = 0; r < R; ++r) wr[r] = w + (long)(n0 + r) * K, sr[r] = wscale + (long)(n0 + r) * T::scales(K);
    int k = 0;
    for (; k + T::width <= K; k += T::width)  // one weight row at a time: few registers on AVX2
        for (int r = 0; r < R; ++r) {
            if (sizeof(typename T::W) * T::width >= 64 || k * sizeof(typename T::W) % 64 == 0)  // once a cache line
                _mm_prefetch(reinterpret_cast<const char*>(wr[r] + k + 2L * R * K), _MM_HINT_T1);
            const auto wv = T::load(wr[r] + k, sr[r], k);
            for (int m = 0; m < M; ++m) T::madd(wv, in.at(m0 + m, k), acc[r][m]);
        }
    if (k < K)
        for (int r = 0; r < R; ++r) {
            const auto wv = T::load(wr[r] + k, sr[r], k, K - k);
            for (int m = 0; m < M; ++m) T::madd(wv, in.at(m0 + m, k), acc[r][m]);
        }
    for (int r = 0; r < R; ++r)
        for (int m = 0; m < M; ++m) y[(long)m * N + n0 + r] = in.finish(acc[r][m], m0 + m);
}

// y[m, n] = sum_k x[m, k] * w[n, k] (int8: times the scale of k's block of row n) for input rows m0 .. m0 + M - 1.
template <typename T, int M>
void gemv(const typename T::Input& in, int m0, int K, const typename T::W* w, const float* wscale, int N, float* y) {
    constexpr int NR = M <= 2 ? 4 : 8 / M;
    const int blocks = (N + NR - 1) / NR;
#pragma omp parallel for schedule(guided) if ((long)N * K >= (1L << 16))  // large first parts, then a busy core does less
    for (int blk = 0; blk < blocks; ++blk) {
        const int n0 = blk * NR;
        if (n0 + NR <= N)
            rows<T, M, NR>(in, m0, K, w, wscale, n0, N, y);
        else
            for (int n = n0; n < N; ++n) rows<T, M, 1>(in, m0, K, w, wscale, n, N, y);
    }
}

template <typename T>
int linear(const float* x, int M, int K, const typename T::W* w, const float* wscale, int N, float* y) {
    if (K <= 0 || K % T::unit != 0 || K > 8192) return 1;
    const typename T::Input in(x, M, K);
    for (int m0 = 0; m0 < M; m0 += 4) {  // at most 4 input rows per pass over the weights
        float* ys = y + (long)m0 * N;
        switch (std::min(4, M - m0)) {
            case 1: gemv<T, 1>(in, m0, K, w, wscale, N, ys); break;
            case 2: gemv<T, 2>(in, m0, K, w, wscale, N, ys); break;
            case 3: gemv<T, 3>(in, m0, K, w, wscale, N, ys); break;
            default: gemv<T, 4>(in, m0, K, w, wscale, N, ys); break;
        }
    }
    return 0;
}

}  // namespace mg
