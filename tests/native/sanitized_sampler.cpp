// Edge cases for the CPU sampler (kernels/sampler.cpp) and products, built by
// tests/test_sanitizers.py with AddressSanitizer and UndefinedBehaviorSanitizer: any out-of-bounds
// read or undefined behaviour aborts. Prints one line per case.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

extern "C" int mg_sample(const float* logits, int B, int K, int V, int guided, float cfg, float temperature, int top_k,
                         float top_p, int greedy, const uint64_t* seeds, uint64_t step, int64_t* seq, const uint8_t* known,
                         int T, int col);
extern "C" int mg_linear_f32(const float* x, int M, int K, const float* w, int N, float* y);

static int sample(std::vector<float> logits, int guided, int top_k, float top_p, int greedy) {
    const int B = 1, K = 1, V = guided ? (int)logits.size() / 2 : (int)logits.size(), T = 2;
    std::vector<int64_t> seq(B * K * T, -1);
    std::vector<uint8_t> known(B * K * T, 0);
    const uint64_t seeds[B] = {7};
    const int err = mg_sample(logits.data(), B, K, V, guided, 3.0f, 1.0f, top_k, top_p, greedy, seeds, 0, seq.data(),
                              known.data(), T, 1);
    if (!err && (seq[1] < 0 || seq[1] >= V)) return 99;  // a token outside the codebook
    return err;
}

int main() {
    const float nan = NAN, inf = INFINITY;
    const int V = 16;
    int failures = 0;
    auto check = [&](const char* name, int got, int want) {
        std::printf("%s: %d\n", name, got);
        failures += got != want;
    };
    check("all NaN", sample(std::vector<float>(V, nan), 0, 4, 0.9f, 0), 1);
    check("all NaN, guided", sample(std::vector<float>(2 * V, nan), 1, 0, 0.0f, 0), 1);
    check("all NaN, greedy", sample(std::vector<float>(V, nan), 0, 1, 0.0f, 1), 1);
    std::vector<float> one_nan(V, 0.5f);
    one_nan[3] = nan;
    check("one NaN", sample(one_nan, 0, 4, 0.0f, 0), 1);
    std::vector<float> plus_inf(V, 0.5f);
    plus_inf[5] = inf;
    check("+inf", sample(plus_inf, 0, 0, 0.0f, 0), 1);
    check("all -inf", sample(std::vector<float>(V, -inf), 0, 0, 0.0f, 0), 1);
    std::vector<float> fine(V);
    for (int i = 0; i < V; ++i) fine[i] = 0.1f * i;
    check("finite, top-k past V", sample(fine, 0, 1 << 30, 0.0f, 0), 0);
    check("finite, top-p tiny", sample(fine, 0, 0, 1e-9f, 0), 0);
    check("finite, guided", sample(std::vector<float>(2 * V, 0.25f), 1, 4, 0.5f, 0), 0);
    std::vector<float> x(3 * 16, 0.5f), w(5 * 16, 0.25f), y(3 * 5);
    check("linear", mg_linear_f32(x.data(), 3, 16, w.data(), 5, y.data()), 0);
    check("linear, bad width", mg_linear_f32(x.data(), 3, 12, w.data(), 5, y.data()) != 0, 1);
    return failures;
}
