// Edge cases for the CPU products (kernels/gemv.h) and the decode step (kernels/decode_step.cpp),
// built by tests/test_sanitizers.py with AddressSanitizer and UndefinedBehaviorSanitizer for each
// build of the library this CPU runs: widths that end in a part chunk, part blocks of rows, 1 to 9
// input rows, and whole steps over every cache type and dtype up to the last cache position. Any
// out-of-bounds access or undefined behaviour aborts; prints one line per case.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

extern "C" {
int mg_linear_f32(const float* x, int M, int K, const float* w, int N, float* y);
int mg_linear_bf16(const float* x, int M, int K, const uint16_t* w, int N, float* y);
int mg_linear_i8(const float* x, int M, int K, const int8_t* w, const float* scale, int N, float* y);
int mg_step(int dtype, const void* const* table, const int* dims, float eps, float* x, int pos, float* logits);
}

static float value(int i) { return std::sin(0.37f * (float)i); }

// Exact-sized buffers, so that any read past one is caught.
static int products(int M, int K, int N) {
    std::vector<float> x(M * K), wf(N * K), scale(N * ((K + 31) / 32), 0.01f), y(M * N);  // int8: a scale per 32
    std::vector<uint16_t> wb(N * K, 0x3F80);  // bf16 1.0
    std::vector<int8_t> wi(N * K);
    for (int i = 0; i < M * K; ++i) x[i] = value(i);
    for (int i = 0; i < N * K; ++i) wf[i] = value(7 * i), wi[i] = (int8_t)(127 * value(3 * i));
    int err = mg_linear_f32(x.data(), M, K, wf.data(), N, y.data());
    err |= mg_linear_bf16(x.data(), M, K, wb.data(), N, y.data()) << 1;
    err |= mg_linear_i8(x.data(), M, K, wi.data(), scale.data(), N, y.data()) << 2;
    for (float v : y) err |= std::isfinite(v) ? 0 : 8;
    return err;
}

// A one-layer model with cross-attention (dim 64, 4 heads, ffn 128, 3 text positions), rows 2,
// `length` cache positions: every position in turn, then one past the end (refused).
static int steps(int dtype, int cache, int length) {
    const int R = 2, D = 64, H = 4, F = 128, T = 3, out = 96, hd = D / H;
    std::vector<std::vector<uint8_t>> store;
    auto buffer = [&](size_t bytes, int seed) {
        std::vector<uint8_t> b(bytes);
        for (size_t i = 0; i < bytes; ++i) b[i] = (uint8_t)(seed * 31 + i * 7);
        store.push_back(b);
        return (const void*)store.back().data();
    };
    auto floats = [&](size_t n, float v) {
        std::vector<float> f(n, v);
        std::vector<uint8_t> b((uint8_t*)f.data(), (uint8_t*)(f.data() + n));
        store.push_back(b);
        return (const void*)store.back().data();
    };
    store.reserve(64);
    auto w = [&](int n, int k, int seed) {  // bf16: pairs of 0 and 2^-7 (the halves of a float)
        return dtype == 2 ? buffer((size_t)n * k, seed) : floats((size_t)n * k / (dtype == 1 ? 2 : 1), dtype == 1 ? 0.0078125f : 0.01f);
    };
    auto s = [&](int n, int k) { return dtype == 2 ? floats((size_t)n * ((k + 31) / 32), 0.001f) : nullptr; };
    const size_t cache_bytes = (size_t)R * H * length * hd * (cache == 0 ? 4 : 1);  // float32 or int8
    std::vector<const void*> table = {
        floats(D, 1.0f), floats(D, 0.0f), w(3 * D, D, 1), s(3 * D, D), w(D, D, 2), s(D, D),
        floats(D, 1.0f), floats(D, 0.0f), w(D, D, 3), s(D, D), w(D, D, 4), s(D, D), floats(R * H * T * hd, 0.1f),
        floats(R * H * T * hd, 0.2f), floats(D, 1.0f), floats(D, 0.0f), w(F, D, 5), s(F, D), w(D, F, 6), s(D, F),
        buffer(cache_bytes, 7), buffer(cache_bytes, 8), cache == 1 ? floats(R * H * length, 0.0f) : nullptr,
        cache == 1 ? floats(R * H * length, 0.0f) : nullptr,
        floats(D, 1.0f), floats(D, 0.0f), w(out, D, 9), s(out, D), floats(R * T, 0.0f)};
    const int dims[] = {R, D, H, F, 1, length, T, out, cache};
    std::vector<float> x(R * D), logits(R * out);
    int err = 0;
    for (int pos = 0; pos < length; ++pos) {
        for (int i = 0; i < R * D; ++i) x[i] = value(i + pos);
        err |= mg_step(dtype, table.data(), dims, 1e-5f, x.data(), pos, logits.data());
        for (float v : logits) err |= std::isfinite(v) ? 0 : 2;
    }
    err |= (mg_step(dtype, table.data(), dims, 1e-5f, x.data(), length, logits.data()) != 1) << 2;
    return err;
}

int main() {
    int failures = 0;
    for (int M : {1, 2, 3, 4, 5, 9})
        for (int K : {32, 96, 160, 1024})
            for (int N : {1, 5, 203}) {
                const int err = products(M, K, N);
                std::printf("products M=%d K=%d N=%d: %d\n", M, K, N, err);
                failures += err != 0;
            }
    for (int dtype = 0; dtype < 3; ++dtype)
        for (int cache = 0; cache < 2; ++cache)
            for (int length : {1, 9}) {
                const int err = steps(dtype, cache, length);
                std::printf("step dtype=%d cache=%d length=%d: %d\n", dtype, cache, length, err);
                failures += err != 0;
            }
    const std::vector<float> x(64), w(64);
    std::vector<float> y(2);
    const int bad = mg_linear_f32(x.data(), 1, 20, w.data(), 2, y.data());  // not a multiple of 8
    std::printf("products, bad width: %d\n", bad);
    return failures + (bad != 1);
}
