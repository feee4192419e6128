// Fused sampler for the CUDA backend: the GPU twin of mg_sample/draw in kernels/sampler.cpp.
// Compiled at run time with NVRTC (--fmad=false); the loader pastes philox.h in front of this text,
// so mg_uniform, u32 and u64 are defined above. No other includes.
//
// Launch: grid = (B*K, 1, 1), one block per (row b, codebook k); blockDim = (256, 1, 1) (MG_THREADS).
// Dynamic shared memory, in bytes: 8*P + 2*V, P = the smallest power of two >= V
//   (V = 2048: 20480; V = 4096: 40960), plus 256 bytes of static shared memory.
//
// Per block, as in sampler.cpp:
//   guidance      l = n + (c - n) * cfg in float, explicit _rn intrinsics (no FMA contraction)
//   greedy        argmax over l, first index on ties (std::max_element)
//   temperature   l / temperature (float division)
//   top-k + sort  a bitonic sort of (value desc, index asc) over P slots, padded with (-inf, 0x7fffffff),
//                 gives the same order as draw's std::sort; kth = sorted[top_k-1]; kept = prefix >= kth
//   p, top-p, draw  p_i = exp((double)v_i - top) in parallel; then thread 0 sums in sorted order,
//                 exactly as draw does, so the sums (and so the draw) are those of the CPU, provided
//                 CUDA's double exp() and glibc's std::exp agree (both within 1 ulp, nearly always equal).
// cfg, temperature and top_p arrive as double but the CPU takes them as C float: rounded to float first.
// NaN logits (e.g. guidance of two -inf logits) are dropped as sampler.cpp's `l[i] >= kth` filter drops them:
// they sort as (-inf, MG_DROP | index), after every real entry, and are never kept. Greedy follows
// std::max_element: NaNs are skipped, unless l[0] is NaN, which then wins.
// Shared memory layout: slot[P] (u64): first (float value bits << 32 | index) sort keys, then, for the
// kept prefix, p_i as double bits; tok[V] (u16): the token of each kept sorted position.

#define MG_THREADS 256
#define MG_DROP 0x40000000u  // index flag: NaN entries and padding, never kept

__device__ __forceinline__ unsigned long long mg_pack(float v, u32 i) {
    return ((unsigned long long)__float_as_uint(v) << 32) | (unsigned long long)i;
}
__device__ __forceinline__ float mg_val(unsigned long long s) { return __uint_as_float((u32)(s >> 32)); }
__device__ __forceinline__ u32 mg_idx(unsigned long long s) { return (u32)s; }
// true if (va, ia) ranks strictly before (vb, ib): larger value first, smaller index on ties
__device__ __forceinline__ bool mg_before(float va, u32 ia, float vb, u32 ib) {
    return va > vb || (va == vb && ia < ib);
}
__device__ __forceinline__ double mg_p(const unsigned long long* slot, int i) {
    return __longlong_as_double((long long)slot[i]);
}

extern "C" __global__ void __launch_bounds__(MG_THREADS)
mg_sample_cuda(const float* logits, int B, int K, int V, int guided, double cfg, double temperature, int top_k,
               double top_p, int greedy, const long long* seeds, const long long* step, long long* seq,
               const unsigned char* known, int T, const long long* col_ptr) {
    extern __shared__ unsigned long long mg_smem[];
    __shared__ float warp_v[32];
    __shared__ u32 warp_i[32];
    const int tid = threadIdx.x, nt = blockDim.x;
    const int b = blockIdx.x / K, k = blockIdx.x % K;
    const long long cell = ((long long)b * K + k) * T + *col_ptr;
    if (known[cell]) return;  // the same for the whole block
    const float* c = logits + ((long long)b * K + k) * V;
    const float* n = logits + ((long long)(b + B) * K + k) * V;
    const float cfgf = (float)cfg, temp = (float)temperature, topp = (float)top_p;
    const float NEG_INF = __int_as_float(0xff800000);
#define MG_LOGIT(i) (guided ? __fadd_rn(n[i], __fmul_rn(__fsub_rn(c[i], n[i]), cfgf)) : c[i])

    if (greedy) {  // block argmax, first index on ties
        float bv = NEG_INF;
        u32 bi = 0x7fffffffu;
        for (int i = tid; i < V; i += nt) {
            const float v = MG_LOGIT(i);
            if (mg_before(v, (u32)i, bv, bi)) bv = v, bi = (u32)i;
        }
        for (int off = 16; off > 0; off >>= 1) {
            const float ov = __shfl_down_sync(0xffffffffu, bv, off);
            const u32 oi = __shfl_down_sync(0xffffffffu, bi, off);
            if (mg_before(ov, oi, bv, bi)) bv = ov, bi = oi;
        }
        if ((tid & 31) == 0) warp_v[tid >> 5] = bv, warp_i[tid >> 5] = bi;
        __syncthreads();
        if (tid == 0) {
            for (int w = 1; w < (nt + 31) / 32; ++w)
                if (mg_before(warp_v[w], warp_i[w], bv, bi)) bv = warp_v[w], bi = warp_i[w];
            const float l0 = MG_LOGIT(0);
            seq[cell] = l0 == l0 ? (long long)bi : 0;  // std::max_element never leaves a NaN l[0]
        }
        return;
    }

    int P = 1;
    while (P < V) P <<= 1;
    unsigned long long* slot = mg_smem;
    unsigned short* tok = (unsigned short*)(mg_smem + P);
    for (int i = tid; i < P; i += nt) {
        const float v = i < V ? __fdiv_rn(MG_LOGIT(i), temp) : NEG_INF;
        slot[i] = i < V && v == v ? mg_pack(v, (u32)i) : mg_pack(NEG_INF, i < V ? MG_DROP | (u32)i : 0x7fffffffu);
    }
    __syncthreads();

    // bitonic sort into "before" order; NaNs and padding (-inf, index >= MG_DROP) end up after every real entry
    for (int size = 2; size <= P; size <<= 1)
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = tid; i < P; i += nt) {
                const int j = i ^ stride;
                if (j > i) {
                    const unsigned long long a = slot[i], s = slot[j];
                    const bool first = (i & size) == 0;  // this run is sorted in "before" order
                    const bool swap = first ? mg_before(mg_val(s), mg_idx(s), mg_val(a), mg_idx(a))
                                            : mg_before(mg_val(a), mg_idx(a), mg_val(s), mg_idx(s));
                    if (swap) slot[i] = s, slot[j] = a;
                }
            }
            __syncthreads();
        }

    const float kth = (top_k > 0 && top_k < V) ? mg_val(slot[top_k - 1]) : NEG_INF;
    const double top = (double)mg_val(slot[0]);
    int kept = 0;  // the kept entries are a prefix (values >= kth, then NaNs and padding)
    for (int base = 0; base < V; base += nt) {  // every thread runs the same iterations (barriers inside)
        const int i = base + tid;
        kept += __syncthreads_count(i < V && mg_val(slot[i]) >= kth && !(mg_idx(slot[i]) & MG_DROP));
    }
    if (kept < 1) kept = 1;  // only if every logit is NaN (undefined on the CPU); keeps the draw defined
    for (int i = tid; i < kept; i += nt) {  // each thread overwrites only the slots it reads
        const unsigned long long s = slot[i];
        tok[i] = (unsigned short)(mg_idx(s) & ~MG_DROP);
        slot[i] = (unsigned long long)__double_as_longlong(exp(__dsub_rn((double)mg_val(s), top)));
    }
    __syncthreads();

    if (tid == 0) {  // draw() from here on, sums in sorted order
        double z = 0.0;
        for (int i = 0; i < kept; ++i) z = __dadd_rn(z, mg_p(slot, i));
        int cnt = kept;
        if (topp > 0.0f && topp < 1.0f) {  // keep a token while the mass ranked above it is < top_p
            double before = 0.0;
            for (cnt = 0; cnt < kept && __ddiv_rn(before, z) < (double)topp; ++cnt)
                before = __dadd_rn(before, mg_p(slot, cnt));
        }
        double total = 0.0;
        for (int i = 0; i < cnt; ++i) total = __dadd_rn(total, mg_p(slot, i));
        const double u = mg_uniform((u64)seeds[b], (u64)*step, (u32)k);  // row b's own seed
        const double target = __dmul_rn(u, total);
        int pick = cnt > 0 ? cnt - 1 : 0;
        double cum = 0.0;
        for (int i = 0; i < cnt; ++i) {
            cum = __dadd_rn(cum, mg_p(slot, i));
            if (target < cum) {
                pick = i;
                break;
            }
        }
        seq[cell] = (long long)tok[pick];
    }
#undef MG_LOGIT
}
