// The fused sampler on the CPU: guidance, temperature, top-k, top-p and a counter-based draw for
// every (batch row, codebook), written into the delay pattern. kernels/sampler.cu is its CUDA twin.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "philox.h"

namespace {

struct Kept {
    float logit;
    int token;
};

// One (row, codebook): guided, tempered logits in `l` [V] -> a token (see mg_sample).
int draw(std::vector<float>& l, int top_k, float top_p, double u, std::vector<Kept>& kept) {
    const int V = (int)l.size();
    float kth = -INFINITY;
    if (top_k > 0 && top_k < V) {
        std::vector<float> tmp(l);
        std::nth_element(tmp.begin(), tmp.begin() + (top_k - 1), tmp.end(), std::greater<float>());
        kth = tmp[top_k - 1];
    }
    kept.clear();
    for (int i = 0; i < V; ++i)
        if (l[i] >= kth) kept.push_back({l[i], i});
    if (kept.empty()) return 0;  // only when a logit is NaN, which mg_sample refuses before calling
    std::sort(kept.begin(), kept.end(), [](const Kept& a, const Kept& b) {
        return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
    });
    const double top = kept[0].logit;
    std::vector<double> p(kept.size());
    double z = 0.0;
    for (size_t i = 0; i < kept.size(); ++i) z += (p[i] = std::exp((double)kept[i].logit - top));
    size_t n = kept.size();
    if (top_p > 0.0f && top_p < 1.0f) {  // keep a token while the mass ranked above it is < top_p
        double before = 0.0;
        for (n = 0; n < kept.size() && before / z < top_p; ++n) before += p[n];
    }
    double total = 0.0;
    for (size_t i = 0; i < n; ++i) total += p[i];
    const double target = u * total;
    double cum = 0.0;
    for (size_t i = 0; i < n; ++i) {
        cum += p[i];
        if (target < cum) return kept[i].token;
    }
    return kept[n - 1].token;
}

}  // namespace

extern "C" {

// Guidance, temperature, top-k, top-p and a seeded draw for every (batch row b, codebook k) with row b's
// own seed seeds[b] (B of them), the token written into column `col` of seq [B, K, T] unless known[b, k, col] (prompt or special).
// logits: [R, K, V] with R = 2B under guidance (conditional rows, then unconditional), else B.
// greedy: argmax of the guided logits (first index on ties), no draw.
// Returns 0, or 1 without drawing the rest when a logit is NaN or infinite (a damaged model): with no
// finite logit nothing could be kept, and the draw would read past the kept tokens.
int mg_sample(const float* logits, int B, int K, int V, int guided, float cfg, float temperature, int top_k,
               float top_p, int greedy, const uint64_t* seeds, uint64_t step, int64_t* seq, const uint8_t* known, int T,
               int col) {
    std::vector<float> l(V);
    std::vector<Kept> kept;
    kept.reserve(V);
    for (int b = 0; b < B; ++b)
        for (int k = 0; k < K; ++k) {
            const long cell = ((long)b * K + k) * T + col;
            if (known[cell]) continue;
            const float* c = logits + ((long)b * K + k) * V;
            const float* n = logits + ((long)(b + B) * K + k) * V;
            for (int i = 0; i < V; ++i) {
                if (!std::isfinite(c[i]) || (guided && !std::isfinite(n[i]))) return 1;
                l[i] = guided ? n[i] + (c[i] - n[i]) * cfg : c[i];
            }
            if (greedy) {
                seq[cell] = std::max_element(l.begin(), l.end()) - l.begin();
                continue;
            }
            for (int i = 0; i < V; ++i) l[i] = l[i] / temperature;
            seq[cell] = draw(l, top_k, top_p, mg_uniform(seeds[b], step, (uint32_t)k), kept);
        }
    return 0;
}

}  // extern "C"
