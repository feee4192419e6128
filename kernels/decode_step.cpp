// The CPU fast path's entry points: the matrix-vector products on their own (mg_linear_*), and the
// whole decode step of the LM in one call (mg_step): every layer's norms, products, attention over
// the KV cache and the text, GELU and residual adds, then the output heads, for one new token per
// row. kernels/fast_lm.py packs the weights and passes a table of pointers (the Slot order below).
// Compiled at run time by kernels/cpu.py with sampler.cpp and called through ctypes.
#include <cmath>
#include <cstdint>
#include <vector>

#include "gemv.h"

namespace {

using namespace mg;

// One layer's entries in the pointer table; kernels/fast_lm.py (LAYER_SLOTS) writes them in this
// order. The *_S entries are int8 weights' scales, one per block of 32 values of a row (null
// otherwise); the cross-attention entries are null for melody models, which have no
// cross-attention; CACHE_*_S are the int8 KV cache's scales (null for a float32 cache).
enum Slot {
    NORM1_W, NORM1_B, QKV, QKV_S, OUT, OUT_S,
    NORM2_W, NORM2_B, CROSS_Q, CROSS_Q_S, CROSS_OUT, CROSS_OUT_S, CROSS_K, CROSS_V,
    NORM3_W, NORM3_B, FC1, FC1_S, FC2, FC2_S,
    CACHE_K, CACHE_V, CACHE_K_S, CACHE_V_S, LAYER_SLOTS
};
enum FinalSlot { NORM_W, NORM_B, HEADS, HEADS_S, CROSS_MASK };  // after the layers' entries
enum Cache { CACHE_F32, CACHE_I8 };

struct Dims {  // int32[9], as kernels/fast_lm.py writes it
    int rows, dim, heads, ffn, layers, cache_len, cross_len, out, cache;
};

// The KV cache holds float32; or for the lossy dtypes (bfloat16 and int8 weights) int8 with a
// float scale per head and position (max |x| / 127): a quarter of the bytes for attention to read
// late in a window.
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}
inline void store(const float* from, int n, float* to, float*) { std::copy(from, from + n, to); }
inline void store(const float* from, int n, int8_t* to, float* scale) {  // n: a multiple of 8
    const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 top = _mm256_setzero_ps();
    for (int i = 0; i < n; i += 8) top = _mm256_max_ps(top, _mm256_and_ps(magnitude, _mm256_loadu_ps(from + i)));
    const float t = hmax(top);
    *scale = t / 127.0f;
    const __m256 inv = _mm256_set1_ps(t > 0.0f ? 127.0f / t : 0.0f);
    for (int i = 0; i < n; i += 8) {
        alignas(32) int32_t q[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(q), _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(from + i), inv)));
        for (int j = 0; j < 8; ++j) to[i + j] = (int8_t)q[j];
    }
}

void layer_norm(const float* x, int R, int D, const float* w, const float* b, float eps, float* out) {
    for (int r = 0; r < R; ++r) {
        const float* xr = x + (long)r * D;
        double sum = 0.0, sq = 0.0;
        for (int i = 0; i < D; ++i) sum += xr[i];
        const float mean = (float)(sum / D);
        for (int i = 0; i < D; ++i) sq += (double)(xr[i] - mean) * (xr[i] - mean);
        const float rstd = (float)(1.0 / std::sqrt(sq / D + eps));
        for (int i = 0; i < D; ++i) out[(long)r * D + i] = (xr[i] - mean) * rstd * w[i] + b[i];
    }
}

// The keys or values of one (row, head): n rows of hd values, and for an int8 cache their scales.
template <typename KV>
struct Keys {
    const KV* at;
    const float* scale;
};

// The horizontal sums of four accumulators (lane i: acc[i]'s), each in the same order.
inline __m128 hsum4(const __m256* acc) {
    const __m256 sums = _mm256_hadd_ps(_mm256_hadd_ps(acc[0], acc[1]), _mm256_hadd_ps(acc[2], acc[3]));
    return _mm_add_ps(_mm256_castps256_ps128(sums), _mm256_extractf128_ps(sums, 1));
}

// out = softmax_j(q . K[j] / sqrt(hd) + mask[j]) V[j] over j < n, for one row and head; s: room
// for n + 8 floats. The scores go four keys at a time (one horizontal sum for four); the last one
// to three keys are summed in the same order, so that a key's score does not depend on n (a row of
// a batch attends to as many text keys as the batch's longest prompt has, padding masked).
template <typename KV>
void attend(const float* q, Keys<KV> K, Keys<KV> V, int n, const float* mask, int hd, float* s, float* out) {
    const float scale = 1.0f / std::sqrt((float)hd);
    int j = 0;
    for (; j + 4 <= n; j += 4) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int d = 0; d < hd; d += 8) {
            const __m256 qd = _mm256_loadu_ps(q + d);
            for (int i = 0; i < 4; ++i) acc[i] = _mm256_fmadd_ps(qd, load8(K.at + (long)(j + i) * hd + d), acc[i]);
        }
        _mm_storeu_ps(s + j, hsum4(acc));
    }
    for (; j < n; ++j) {
        __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
        for (int d = 0; d < hd; d += 8) acc[0] = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), load8(K.at + (long)j * hd + d), acc[0]);
        s[j] = _mm_cvtss_f32(hsum4(acc));
    }
    float top = -INFINITY;
    for (j = 0; j < n; ++j) {
        s[j] = s[j] * scale * (K.scale ? K.scale[j] : 1.0f) + (mask ? mask[j] : 0.0f);
        top = std::max(top, s[j]);
    }
    std::fill(s + n, s + n + 8, -INFINITY);
    __m256 total = _mm256_setzero_ps();
    for (j = 0; j < n; j += 8) {
        __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), _mm256_set1_ps(top)));
        _mm256_storeu_ps(s + j, e);
        total = _mm256_add_ps(total, e);
    }
    const __m256 inv = _mm256_set1_ps(1.0f / hsum(total));
    if (V.scale)
        for (j = 0; j < n; ++j) s[j] *= V.scale[j];
    for (int d0 = 0; d0 < hd; d0 += 64) {  // 64 output dims (8 registers) per pass over V
        const int width = std::min(64, hd - d0) / 8;
        __m256 acc[8];
        for (int u = 0; u < 8; ++u) acc[u] = _mm256_setzero_ps();
        for (j = 0; j < n; ++j) {
            const __m256 p = _mm256_set1_ps(s[j]);
            for (int u = 0; u < width; ++u) acc[u] = _mm256_fmadd_ps(p, load8(V.at + (long)j * hd + d0 + 8 * u), acc[u]);
        }
        for (int u = 0; u < width; ++u) _mm256_storeu_ps(out + d0 + 8 * u, _mm256_mul_ps(acc[u], inv));
    }
}

// For every row r and head h: attention of q[r, h] (at q + r * qstride + h * hd) over the (r, h)
// keys and values, rows of hd floats from (r * H + h) * kvstride (scales from (r * H + h) *
// sstride), with mask row r (at mask + r * maskstride). hd is a multiple of 8.
template <typename KV>
void attention(const float* q, long qstride, const KV* K, const KV* V, const float* kscale, const float* vscale,
               long kvstride, long sstride, int n, const float* mask, long maskstride, int R, int H, int hd, float* out) {
#pragma omp parallel
    {
        std::vector<float> s(n + 8);
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < R * H; ++task) {
            const int r = task / H, h = task % H;
            auto keys = [&](const KV* at, const float* scale) {
                return Keys<KV>{at + task * kvstride, scale ? scale + task * sstride : nullptr};
            };
            attend(q + r * qstride + (long)h * hd, keys(K, kscale), keys(V, vscale), n, mask ? mask + r * maskstride : nullptr,
                   hd, s.data(), out + (long)r * H * hd + (long)h * hd);
        }
    }
}

// qkv [R, q | k | v]: the new keys and values go into the cache at `pos`, then q attends to 0 .. pos.
template <typename KV>
void self_attention(const Dims& d, int pos, const float* qkv, void* cache_k, void* cache_v, void* scale_k,
                    void* scale_v, float* out) {
    const int D = d.dim, H = d.heads, hd = D / H;
    const long kvstride = (long)d.cache_len * hd;
    KV* ck = static_cast<KV*>(cache_k);
    KV* cv = static_cast<KV*>(cache_v);
    float* sk = static_cast<float*>(scale_k);
    float* sv = static_cast<float*>(scale_v);
    for (int r = 0; r < d.rows; ++r)
        for (int head = 0; head < H; ++head) {
            const float* kv = qkv + (long)r * 3 * D + (long)head * hd;
            const long at = (r * H + head) * (long)d.cache_len + pos;
            store(kv + D, hd, ck + at * hd, sk ? sk + at : nullptr);
            store(kv + 2 * D, hd, cv + at * hd, sv ? sv + at : nullptr);
        }
    attention(qkv, 3 * D, ck, cv, sk, sv, kvstride, d.cache_len, pos + 1, (const float*)nullptr, 0, d.rows, H, hd, out);
}

template <typename T>
int step(const void* const* table, const Dims& d, float eps, float* x, int pos, float* logits) {
    const int R = d.rows, D = d.dim, H = d.heads, hd = D / H, F = d.ffn;
    if (D % H || hd % 8 || F % 8 || pos < 0 || pos >= d.cache_len || d.cache < CACHE_F32 || d.cache > CACHE_I8) return 1;
    std::vector<float> h((size_t)R * D), wide((size_t)R * std::max(3 * D, F)), att((size_t)R * D), y((size_t)R * D);
    int err = 0;
    auto f = [](const void* p) { return static_cast<const float*>(p); };
    auto product = [&](const float* in, int K, const void* w, const void* scale, int N, float* out) {
        err |= linear<T>(in, R, K, static_cast<const typename T::W*>(w), f(scale), N, out);
    };
    auto add_y = [&]() {
        for (long i = 0; i < (long)R * D; ++i) x[i] += y[i];
    };
    for (int l = 0; l < d.layers && !err; ++l) {
        const void* const* s = table + (long)l * LAYER_SLOTS;
        layer_norm(x, R, D, f(s[NORM1_W]), f(s[NORM1_B]), eps, h.data());
        product(h.data(), D, s[QKV], s[QKV_S], 3 * D, wide.data());  // [R, q | k | v]
        void* cache[4];
        for (int i = 0; i < 4; ++i) cache[i] = const_cast<void*>(s[CACHE_K + i]);
        if (d.cache == CACHE_I8)
            self_attention<int8_t>(d, pos, wide.data(), cache[0], cache[1], cache[2], cache[3], att.data());
        else
            self_attention<float>(d, pos, wide.data(), cache[0], cache[1], nullptr, nullptr, att.data());
        product(att.data(), D, s[OUT], s[OUT_S], D, y.data());
        add_y();
        if (s[CROSS_Q]) {  // cross-attention to the text's keys and values [R, H, cross_len, hd]
            layer_norm(x, R, D, f(s[NORM2_W]), f(s[NORM2_B]), eps, h.data());
            product(h.data(), D, s[CROSS_Q], s[CROSS_Q_S], D, wide.data());
            const float* mask = f(table[(long)d.layers * LAYER_SLOTS + CROSS_MASK]);
            attention(wide.data(), D, f(s[CROSS_K]), f(s[CROSS_V]), nullptr, nullptr, (long)d.cross_len * hd, 0,
                      d.cross_len, mask, d.cross_len, R, H, hd, att.data());
            product(att.data(), D, s[CROSS_OUT], s[CROSS_OUT_S], D, y.data());
            add_y();
        }
        layer_norm(x, R, D, f(s[NORM3_W]), f(s[NORM3_B]), eps, h.data());
        product(h.data(), D, s[FC1], s[FC1_S], F, wide.data());
        for (long i = 0; i < (long)R * F; i += 8) _mm256_storeu_ps(&wide[i], gelu8(_mm256_loadu_ps(&wide[i])));
        product(wide.data(), F, s[FC2], s[FC2_S], D, y.data());
        add_y();
    }
    const void* const* last = table + (long)d.layers * LAYER_SLOTS;
    layer_norm(x, R, D, f(last[NORM_W]), f(last[NORM_B]), eps, h.data());
    product(h.data(), D, last[HEADS], last[HEADS_S], d.out, logits);
    return err;
}

}  // namespace

extern "C" {

int mg_linear_f32(const float* x, int M, int K, const float* w, int N, float* y) {
    return linear<F32>(x, M, K, w, nullptr, N, y);
}
int mg_linear_bf16(const float* x, int M, int K, const uint16_t* w, int N, float* y) {
    return linear<BF16>(x, M, K, w, nullptr, N, y);
}
int mg_linear_i8(const float* x, int M, int K, const int8_t* w, const float* scale, int N, float* y) {
    return linear<I8>(x, M, K, w, scale, N, y);
}

// One decode step: x [rows, dim] (token embeddings plus position) at cache position `pos` ->
// logits [rows, out]; x is overwritten (it carries the residual stream). dtype: 0 float32,
// 1 bfloat16, 2 int8 weights. Returns 0, or 1 when the shapes do not suit the kernels.
int mg_step(int dtype, const void* const* table, const int* dims, float eps, float* x, int pos, float* logits) {
    const Dims d{dims[0], dims[1], dims[2], dims[3], dims[4], dims[5], dims[6], dims[7], dims[8]};
    switch (dtype) {
        case 0: return step<F32>(table, d, eps, x, pos, logits);
        case 1: return step<BF16>(table, d, eps, x, pos, logits);
        case 2: return step<I8>(table, d, eps, x, pos, logits);
        default: return 1;
    }
}

}  // extern "C"
