// A prefix of the model's layers resident on the GPU: weights uploaded as they lie in the
// file (quantized), an f16 KV cache per layer, and the forward pass of context.cpp written
// with the device kernels. The architecture tables drive it the same way as on the CPU.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "core/fp16.h"
#include "cuda/backend.h"
#include "cuda/common.cuh"
#include "cuda/kernels.cuh"
#include "cuda/phase_timer.cuh"
#include "quant/formats.h"

namespace pyllong::cuda {

namespace {

using Matrix = DeviceMatrix;
HostRows rows_of(const QTensorView& w) { return HostRows{w.data, w.row_stride, w.n_out}; }
Matrix upload(const QTensorView& w) { return w.data ? upload_matrix(w.type, w.n_in, {rows_of(w)}) : Matrix{}; }
// a, b, ... stacked into one matrix when they share format and n_in (one launch for all),
// else nothing.
Matrix upload_stacked(std::initializer_list<const QTensorView*> ws) {
    const QTensorView& first = **ws.begin();
    std::vector<HostRows> parts;
    for (const QTensorView* w : ws) {
        if (!w->data || w->type != first.type || w->n_in != first.n_in) return Matrix{};
        parts.push_back(rows_of(*w));
    }
    return upload_matrix(first.type, first.n_in, parts);
}
DeviceBuffer<float> upload(const std::vector<float>& v) { return DeviceBuffer<float>(v.data(), v.size()); }
int64_t bytes_of(const QTensorView& w) { return w.data ? static_cast<int64_t>(quant::row_bytes(w.type, w.n_in)) * w.n_out : 0; }
int64_t bytes_of(const std::vector<float>& v) { return static_cast<int64_t>(v.size() * sizeof(float)); }

struct Layer {
    DeviceBuffer<float> attn_norm, attn_norm_b, bqkv, bo, ffn_norm, b_up, b_down;
    // wqkv: the file's fused matrix, or wq | wk | wv stacked; w_gu: w_gate | w_up stacked (or
    // the file's fused gate|up rows, phi3). The separate ones stay empty then.
    Matrix wq, wk, wv, wqkv, wo, w_gate, w_up, w_gu, w_down;
    DeviceBuffer<__half> k, v, kg;  // (n_ctx, kv_dim) each; kg only with SelfExtend
};

// Times one phase of the forward pass when profiling is on (a scope).
struct Phase {
    Phase(PhaseTimer& t, PhaseTimer::Phase p) : t_(t) { t_.begin(p); }
    ~Phase() { t_.end(); }
    PhaseTimer& t_;
};

class Impl final : public DeviceLayers {
public:
    Impl(const HParams& hp, const ModelWeights& w, const DeviceLayersParams& p);
    ~Impl() override {
        if (decode_graph_) cudaGraphExecDestroy(decode_graph_);
        timer_.reset();
        if (stream_) cudaStreamDestroy(stream_);
    }
    void forward(float* x, const int32_t* cell_pos, int64_t n, int64_t cell, int64_t first_logit, float* logits,
                 int64_t prompt_len) override;
    void shift(int64_t first, int64_t n, int64_t n_used) override;
    void read_kv(int64_t layer, int64_t n, float* k, float* v) const override;
    int64_t kv_bytes() const override { return kv_bytes_; }
    int64_t weight_bytes() const override { return weight_bytes_; }

private:
    void layers(int64_t n, int n_split, int64_t first_logit, bool logits);  // the kernels of one chunk
    // out = norm(x); with q8 also quantized into xq_, for the matmuls that read 8-bit input.
    void norm(const float* x, const DeviceBuffer<float>& w, const DeviceBuffer<float>& b, float* out, int64_t n,
              bool q8);
    // y (+)= x · Wᵀ + bias. x_q8: x already quantized in xq_ (else it is quantized here when W needs it).
    void mul(const Matrix& W, const float* x, float* y, int64_t n, const DeviceBuffer<float>& bias = {},
             bool accumulate = false, bool x_q8 = false);
    // Whether any of these (the consumers of one input) reads it quantized.
    static bool any_q8(std::initializer_list<const Matrix*> ws, int64_t n) {
        for (const Matrix* w : ws)
            if (uses_q8(*w, n)) return true;
        return false;
    }
    template <class F>
    void timed(PhaseTimer::Phase p, F&& f) {
        Phase scope(*timer_, p);
        f();
    }
    // The kNN memory's part of layer l's attention for the chunk's n unrotated queries q,
    // computed by the host into the extra split of the attention scratch; sets b.n_extra.
    void fold_memory(int64_t l, const float* q, int64_t n, StepBuffers& b);
    // Runs of consecutive chunk rows (first, count) in the Transition bands of layer l.
    std::vector<std::pair<int64_t, int64_t>> band_runs(int64_t l, int64_t n) const;
    DeviceKV kv(Layer& L) const { return DeviceKV{L.k.get(), L.v.get(), L.kg.empty() ? nullptr : L.kg.get(), kv_dim_}; }

    const HParams& hp_;
    DeviceLayersParams p_;
    std::vector<float> freq_factors_;  // host copy for rope_delta after a shift
    int64_t q_dim_, kv_dim_, nb_;
    int64_t kv_bytes_ = 0, weight_bytes_ = 0;
    bool positions_dirty_ = true;
    int64_t prompt_len_ = 0;           // of the chunk in flight (forward's prompt_len)
    cudaStream_t stream_ = nullptr;
    std::unique_ptr<PhaseTimer> timer_;
    std::vector<Layer> layers_;
    DeviceBuffer<float> out_norm_, out_norm_b_, out_b_;
    Matrix output_;
    DeviceBuffer<double> inv_freq_;    // (n_rot/2,)
    DeviceBuffer<int32_t> cell_pos_;   // (n_ctx,) positions of the cache cells
    // (2 + 3 n_batch,): cell, n_kv, then the chunk's positions, SelfExtend query and key
    // positions; staged in pinned memory and uploaded in one copy.
    DeviceBuffer<int32_t> chunk_;
    PinnedBuffer<int32_t> chunk_host_;
    // Decode (one token, every layer on the device) replays a captured graph: kernel launches
    // from the host cost more than most of these kernels take.
    PinnedBuffer<float> x_host_, logits_host_;  // (n_embd,), (n_vocab,)
    cudaGraphExec_t decode_graph_ = nullptr;
    bool graphs_ = false;
    // Scratch for one chunk of up to n_batch tokens.
    DeviceBuffer<float> x_, xn_, q_, k_, v_, qkv_, att_, gate_, up_, qg_, partial_, logits_;
    // Attention Transition: (trans_rows_, n_head, n_ctx) probability rows of banded queries.
    DeviceBuffer<float> trans_;
    int64_t trans_rows_ = 0;
    // kNN memory: the chunk's queries (n_batch, q_dim) down, memory states (n_batch * n_head, hd + 2) up.
    PinnedBuffer<float> mem_q_, mem_states_;
    // (kDecodeMaxTokens, max n_in) 8-bit activations, and their (.., max n_in / 32) scales.
    DeviceBuffer<int8_t> xq_bytes_;
    DeviceBuffer<float2> xq_scales_;
    Q8Act xq_;
};

Impl::Impl(const HParams& hp, const ModelWeights& w, const DeviceLayersParams& p)
    : hp_(hp), p_(p), q_dim_(hp.n_head * hp.head_dim), kv_dim_(hp.n_head_kv * hp.head_dim),
      nb_(std::min(p.n_batch, p.n_ctx)) {
    int n_dev = 0;
    if (cudaGetDeviceCount(&n_dev) != cudaSuccess || n_dev == 0) {
        cudaGetLastError();
        throw DeviceError("n_gpu_layers was given but no CUDA device is visible; run with n_gpu_layers=0 "
                          "(or check the driver and CUDA_VISIBLE_DEVICES)");
    }
    const int64_t n_gpu = p.n_gpu_layers, E = hp.n_embd, F = hp.n_ff;
    const bool se = p.self_extend.enabled();
    // Bytes this will take, checked against free device memory before anything is allocated.
    for (int64_t l = 0; l < n_gpu; ++l) {
        const LayerWeights& L = w.layers[l];
        for (const QTensorView* m : {&L.wq, &L.wk, &L.wv, &L.wqkv, &L.wo, &L.w_gate, &L.w_up, &L.w_down})
            weight_bytes_ += bytes_of(*m);
        for (const auto* v : {&L.attn_norm, &L.attn_norm_b, &L.bqkv, &L.bo, &L.ffn_norm, &L.b_up, &L.b_down})
            weight_bytes_ += bytes_of(*v);
    }
    if (p.output) weight_bytes_ += bytes_of(w.output) + bytes_of(w.output_norm) + bytes_of(w.output_b);
    kv_bytes_ = n_gpu * p.n_ctx * kv_dim_ * 2 * (se ? 3 : 2);
    const int extra = p.memory ? 1 : 0;  // the kNN memory's split
    int64_t partial = 0;  // the attention scratch of the largest split of any chunk length
    for (int64_t n = 1; n <= nb_; ++n)
        partial = std::max(partial, attention_scratch_floats(n, hp.n_head, hp.head_dim,
                                                             attention_splits(n, hp.n_head, p.n_ctx, extra) + extra));
    const int64_t max_in = std::max({E, F, q_dim_});
    if (p.transition.enabled) trans_rows_ = transition_scratch_rows(hp.n_head, p.n_ctx, nb_);
    const int64_t scratch = 4 * (nb_ * (3 * E + 3 * q_dim_ + 3 * kv_dim_ + 3 * F + q_dim_ + 2 * kv_dim_) + partial +
                                 (p.output ? nb_ * hp.n_vocab : 0) + trans_rows_ * hp.n_head * p.n_ctx) +
                            kDecodeMaxTokens * (max_in + max_in / 32 * 8);
    const int64_t need = weight_bytes_ + kv_bytes_ + scratch + 8 * p.n_ctx;
    size_t free_b = 0, total_b = 0;
    check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    if (need > static_cast<int64_t>(free_b))
        throw DeviceError("not enough GPU memory: " + std::to_string(n_gpu) + " layers need " +
                          std::to_string(need >> 20) + " MiB (weights " + std::to_string(weight_bytes_ >> 20) +
                          " MiB, KV cache " + std::to_string(kv_bytes_ >> 20) + " MiB), " +
                          std::to_string(free_b >> 20) + " MiB are free; lower n_ctx or n_gpu_layers");

    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    timer_ = std::make_unique<PhaseTimer>(stream_);
    layers_.resize(static_cast<size_t>(n_gpu));
    for (int64_t l = 0; l < n_gpu; ++l) {
        const LayerWeights& S = w.layers[l];
        Layer& L = layers_[l];
        L.attn_norm = upload(S.attn_norm);
        L.attn_norm_b = upload(S.attn_norm_b);
        L.wqkv = S.wqkv.data ? upload(S.wqkv) : upload_stacked({&S.wq, &S.wk, &S.wv});
        if (L.wqkv.empty()) { L.wq = upload(S.wq); L.wk = upload(S.wk); L.wv = upload(S.wv); }
        L.bqkv = upload(S.bqkv);
        L.wo = upload(S.wo);
        L.bo = upload(S.bo);
        L.ffn_norm = upload(S.ffn_norm);
        switch (hp.arch->ffn) {
            case FFNKind::SwiGLU: L.w_gu = upload_stacked({&S.w_gate, &S.w_up}); break;
            case FFNKind::FusedSwiGLU: L.w_gu = upload(S.w_up); break;  // its rows are [gate; up]
            case FFNKind::GELU: break;
        }
        if (L.w_gu.empty()) { L.w_gate = upload(S.w_gate); L.w_up = upload(S.w_up); }
        L.w_down = upload(S.w_down);
        L.b_up = upload(S.b_up);
        L.b_down = upload(S.b_down);
        L.k = DeviceBuffer<__half>(p.n_ctx * kv_dim_);
        L.v = DeviceBuffer<__half>(p.n_ctx * kv_dim_);
        if (se) L.kg = DeviceBuffer<__half>(p.n_ctx * kv_dim_);
    }
    if (p.output) {
        out_norm_ = upload(w.output_norm);
        out_norm_b_ = upload(w.output_norm_b);
        out_b_ = upload(w.output_b);
        output_ = upload(w.output);
        logits_ = DeviceBuffer<float>(nb_ * hp.n_vocab);  // (n_batch, n_vocab)
    }
    if (p.rope.freq_factors) freq_factors_.assign(p.rope.freq_factors, p.rope.freq_factors + p.rope.n_rot / 2);
    p_.rope.freq_factors = freq_factors_.empty() ? nullptr : freq_factors_.data();
    const std::vector<double> inv = rope_inverse_frequencies(p_.rope);
    inv_freq_ = DeviceBuffer<double>(inv.data(), inv.size());
    cell_pos_ = DeviceBuffer<int32_t>(p.n_ctx);
    chunk_ = DeviceBuffer<int32_t>(2 + 3 * nb_);
    chunk_host_ = PinnedBuffer<int32_t>(2 + 3 * nb_);
    const char* env = std::getenv("PYLLONG_CUDA_GRAPHS");
    // Not with the kNN memory: the host computes its part in the middle of the pass.
    graphs_ = p.output && !timer_->on() && !p.memory && !(env && std::string(env) == "0");
    if (graphs_) {
        x_host_ = PinnedBuffer<float>(E);
        logits_host_ = PinnedBuffer<float>(hp.n_vocab);
    }
    x_ = DeviceBuffer<float>(nb_ * E);          // (n_batch, n_embd) residual stream
    xn_ = DeviceBuffer<float>(nb_ * E);         // (n_batch, n_embd) normed
    q_ = DeviceBuffer<float>(nb_ * q_dim_);     // (n_batch, n_head * head_dim)
    att_ = DeviceBuffer<float>(nb_ * q_dim_);
    k_ = DeviceBuffer<float>(nb_ * kv_dim_);    // (n_batch, n_head_kv * head_dim)
    v_ = DeviceBuffer<float>(nb_ * kv_dim_);
    qkv_ = DeviceBuffer<float>(nb_ * (q_dim_ + 2 * kv_dim_));  // (n_batch, q_dim + 2 kv_dim) fused rows
    if (se) qg_ = DeviceBuffer<float>(nb_ * q_dim_);
    xq_bytes_ = DeviceBuffer<int8_t>(kDecodeMaxTokens * max_in);
    xq_scales_ = DeviceBuffer<float2>(kDecodeMaxTokens * max_in / 32);
    xq_ = Q8Act{xq_bytes_.get(), xq_scales_.get()};
    gate_ = DeviceBuffer<float>(nb_ * 2 * F);   // (n_batch, 2 * n_ff): fused gate|up for phi3
    up_ = DeviceBuffer<float>(nb_ * F);         // (n_batch, n_ff)
    partial_ = DeviceBuffer<float>(partial);
    if (p.memory) {
        mem_q_ = PinnedBuffer<float>(nb_ * q_dim_);
        mem_states_ = PinnedBuffer<float>(nb_ * hp.n_head * (hp.head_dim + 2));
    }
    trans_ = DeviceBuffer<float>(trans_rows_ * hp.n_head * p.n_ctx);
}

void Impl::fold_memory(int64_t l, const float* q, int64_t n, StepBuffers& b) {
    b.n_extra = 0;
    if (!p_.memory || !p_.memory->active(l)) return;
    Phase ph(*timer_, PhaseTimer::Transfer);
    const int64_t hd = hp_.head_dim, rows = n * hp_.n_head;
    check(cudaMemcpyAsync(mem_q_.get(), q, n * q_dim_ * sizeof(float), cudaMemcpyDeviceToHost, stream_), "download q");
    check(cudaStreamSynchronize(stream_), "download q");
    p_.memory->fold(l, mem_q_.get(), chunk_host_.get() + 2, n, mem_states_.get());
    const size_t width = (hd + 2) * sizeof(float);  // one (row, split) state
    check(cudaMemcpy2DAsync(b.partial + b.n_split * (hd + 2), (b.n_split + 1) * width, mem_states_.get(), width, width,
                            rows, cudaMemcpyHostToDevice, stream_),
          "upload memory states");
    b.n_extra = 1;
}

void Impl::read_kv(int64_t layer, int64_t n, float* k, float* v) const {
    const Layer& L = layers_.at(layer);
    std::vector<uint16_t> rows(static_cast<size_t>(n * kv_dim_));  // (n, kv_dim) f16 bits
    for (auto [src, dst] : {std::pair{L.k.get(), k}, std::pair{L.v.get(), v}}) {
        check(cudaMemcpy(rows.data(), src, rows.size() * 2, cudaMemcpyDeviceToHost), "download cache");
        for (size_t i = 0; i < rows.size(); ++i) dst[i] = fp16_to_fp32(rows[i]);
    }
}

std::vector<std::pair<int64_t, int64_t>> Impl::band_runs(int64_t l, int64_t n) const {
    std::vector<std::pair<int64_t, int64_t>> runs;
    const TransitionLayer tl = transition_layer(p_.transition, hp_.n_layer, l, prompt_len_);
    if (!tl.active()) return runs;
    const int32_t* pos = chunk_host_.get() + 2;  // (n,) the chunk's positions
    for (int64_t t = 0; t < n; ++t) {
        if (!tl.in_band(pos[t])) continue;
        if (!runs.empty() && runs.back().first + runs.back().second == t) ++runs.back().second;
        else runs.emplace_back(t, 1);
    }
    return runs;
}

void Impl::norm(const float* x, const DeviceBuffer<float>& w, const DeviceBuffer<float>& b, float* out, int64_t n,
                bool q8) {
    Phase ph(*timer_, PhaseTimer::Norm);
    const Q8Act* xq = q8 ? &xq_ : nullptr;
    if (hp_.arch->norm == NormKind::RMSNorm)
        rms_norm(x, w.get(), out, n, hp_.n_embd, static_cast<float>(hp_.norm_eps), stream_, xq);
    else
        layer_norm(x, w.get(), b.empty() ? nullptr : b.get(), out, n, hp_.n_embd, static_cast<float>(hp_.norm_eps),
                   stream_, xq);
}

void Impl::mul(const Matrix& W, const float* x, float* y, int64_t n, const DeviceBuffer<float>& bias,
               bool accumulate, bool x_q8) {
    Phase ph(*timer_, PhaseTimer::Matmul);
    if (uses_q8(W, n) && !x_q8) quantize_q8(x, n, W.n_in, xq_, stream_);
    mat_mul(W, x, &xq_, y, n, stream_, accumulate);
    if (!bias.empty()) add_bias(y, bias.get(), n, W.n_out, stream_);
}

void Impl::forward(float* x, const int32_t* cell_pos, int64_t n, int64_t cell, int64_t first_logit, float* logits,
                   int64_t prompt_len) {
    const int64_t E = hp_.n_embd;
    const SelfExtend& se = p_.self_extend;
    timer_->call_begin();
    timer_->begin(PhaseTimer::Transfer);
    if (positions_dirty_) {  // a shift moved cells: all positions anew (the chunk's come with the chunk)
        check(cudaMemcpyAsync(cell_pos_.get(), cell_pos, cell * sizeof(int32_t), cudaMemcpyHostToDevice, stream_),
              "upload positions");
        positions_dirty_ = false;
    }
    int32_t* c = chunk_host_.get();  // cell, n_kv, then (3, n): positions, grouped query, grouped key
    c[0] = static_cast<int32_t>(cell);
    c[1] = static_cast<int32_t>(cell + n);
    for (int64_t t = 0; t < n; ++t) {
        const int32_t pos = cell_pos[cell + t];
        c[2 + t] = pos;
        c[2 + n + t] = se.enabled() ? se.query_pos(pos) : 0;
        c[2 + 2 * n + t] = se.enabled() ? se.key_pos(pos) : 0;
    }
    prompt_len_ = prompt_len;
    bool banded = false;  // a chunk the Transition edits runs eagerly: the graph has no edits
    for (int64_t l = 0; l < p_.n_gpu_layers && prompt_len > 0 && !banded; ++l) banded = !band_runs(l, n).empty();
    const bool graph = graphs_ && n == 1 && logits && !banded;
    if (graph) {
        std::memcpy(x_host_.get(), x, E * sizeof(float));
        if (!decode_graph_) {  // capture once: every launch reads cell and n_kv from the device
            cudaGraph_t g = nullptr;
            check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "begin capture");
            check(cudaMemcpyAsync(chunk_.get(), c, 5 * sizeof(int32_t), cudaMemcpyHostToDevice, stream_), "upload");
            check(cudaMemcpyAsync(x_.get(), x_host_.get(), E * sizeof(float), cudaMemcpyHostToDevice, stream_), "upload");
            layers(1, attention_splits(1, hp_.n_head, p_.n_ctx, p_.memory ? 1 : 0), 0, true);
            check(cudaMemcpyAsync(logits_host_.get(), logits_.get(), hp_.n_vocab * sizeof(float),
                                  cudaMemcpyDeviceToHost, stream_), "download logits");
            check(cudaStreamEndCapture(stream_, &g), "end capture");
            const cudaError_t e = cudaGraphInstantiate(&decode_graph_, g, 0);
            cudaGraphDestroy(g);
            check(e, "instantiate graph");
        }
        check(cudaGraphLaunch(decode_graph_, stream_), "graph launch");
        check(cudaStreamSynchronize(stream_), "forward");
        std::memcpy(logits, logits_host_.get(), hp_.n_vocab * sizeof(float));
        timer_->end();
        timer_->call_end();
        return;
    }
    check(cudaMemcpyAsync(chunk_.get(), c, (2 + 3 * n) * sizeof(int32_t), cudaMemcpyHostToDevice, stream_), "upload");
    check(cudaMemcpyAsync(x_.get(), x, n * E * sizeof(float), cudaMemcpyHostToDevice, stream_), "upload x");
    timer_->end();
    layers(n, attention_splits(n, hp_.n_head, cell + n, p_.memory ? 1 : 0), first_logit, logits != nullptr);
    if (!p_.output) {
        check(cudaMemcpyAsync(x, x_.get(), n * E * sizeof(float), cudaMemcpyDeviceToHost, stream_), "download x");
    } else if (logits) {
        check(cudaMemcpyAsync(logits, logits_.get(), (n - first_logit) * hp_.n_vocab * sizeof(float),
                              cudaMemcpyDeviceToHost, stream_), "download logits");
    }
    check(cudaStreamSynchronize(stream_), "forward");
    timer_->call_end();
}

void Impl::layers(int64_t n, int n_split, int64_t first_logit, bool logits) {
    const int64_t E = hp_.n_embd, F = hp_.n_ff;
    const ArchTable& arch = *hp_.arch;
    AttentionShape shape;
    shape.n_head = hp_.n_head;
    shape.n_head_kv = hp_.n_head_kv;
    shape.head_dim = hp_.head_dim;
    shape.scale = 1.0f / std::sqrt(static_cast<float>(hp_.head_dim));
    shape.sliding_window = p_.sliding_window;
    shape.self_extend = p_.self_extend;
    StepBuffers sb;
    sb.step = chunk_.get();
    sb.n_split = n_split;
    sb.pos = chunk_.get() + 2;
    sb.cell_pos = cell_pos_.get();
    sb.qpos_g = chunk_.get() + 2 + n;
    sb.kpos_g = chunk_.get() + 2 + 2 * n;
    sb.qg = qg_.get();
    sb.partial = partial_.get();
    sb.partial_floats = static_cast<int64_t>(partial_.size());
    sb.inv_freq = inv_freq_.get();
    sb.n_rot = p_.rope.n_rot;
    sb.neox = p_.rope.mode == RopeMode::NeoX;

    float* xd = x_.get();
    float* xn = xn_.get();
    for (int64_t li = 0; li < static_cast<int64_t>(layers_.size()); ++li) {
        Layer& L = layers_[li];
        // xn is quantized by the norm when a matmul reading it wants 8-bit input (the flag
        // passed to those matmuls); phi2's FFN reads xn after wo has reused xq_, so quantizes anew.
        const bool fused_qkv = !L.wqkv.empty();
        const bool qkv_q8 = any_q8({&L.wqkv, &L.wq, &L.wk, &L.wv}, n);
        norm(xd, L.attn_norm, L.attn_norm_b, xn, n, qkv_q8);
        float *q = q_.get(), *k = k_.get(), *v = v_.get();
        if (fused_qkv) {
            mul(L.wqkv, xn, qkv_.get(), n, L.bqkv, false, qkv_q8);
            if (n == 1) {  // one row: q, k and v are its consecutive slices
                q = qkv_.get();
                k = q + q_dim_;
                v = k + kv_dim_;
            } else {
                split_qkv(qkv_.get(), q, k, v, n, q_dim_, kv_dim_, stream_);
            }
        } else {
            mul(L.wq, xn, q, n, {}, false, qkv_q8);
            mul(L.wk, xn, k, n, {}, false, qkv_q8);
            mul(L.wv, xn, v, n, {}, false, qkv_q8);
        }
        fold_memory(li, q, n, sb);
        // Banded rows are redone after the merge, so it does not quantize for wo then.
        const auto bands = band_runs(li, n);
        const bool wo_q8 = uses_q8(L.wo, n) && hp_.head_dim % 32 == 0 && bands.empty();  // the merge quantizes
        timed(PhaseTimer::Attention, [&] {
            attention_step(q, k, v, n, kv(L), shape, sb, att_.get(), stream_, wo_q8 ? &xq_ : nullptr);
            const TransitionLayer tl = transition_layer(p_.transition, hp_.n_layer, li, prompt_len_);
            for (const auto& [t0, count] : bands)
                transition_rows(q, shape.self_extend.enabled() ? sb.qg : nullptr, sb.pos, t0, count, kv(L),
                                sb.cell_pos, sb.step, shape, tl, trans_.get(), trans_rows_, p_.n_ctx, att_.get(),
                                stream_);
        });
        mul(L.wo, att_.get(), xd, n, L.bo, /*accumulate=*/true, wo_q8);  // x += attention output
        // FFN input: the same normed x (parallel residual, phi2) or a second norm of x + attn.
        const bool ffn_q8 = !arch.parallel_residual && any_q8({&L.w_gu, &L.w_gate, &L.w_up}, n);
        if (!arch.parallel_residual) norm(xd, L.ffn_norm, {}, xn, n, ffn_q8);
        if (!L.w_gu.empty()) {  // [gate | up] rows -> silu(gate) * up, quantized for w_down on the way
            mul(L.w_gu, xn, gate_.get(), n, {}, false, ffn_q8);
            const bool down_q8 = uses_q8(L.w_down, n);
            timed(PhaseTimer::Elementwise,
                  [&] { swiglu_fused(gate_.get(), up_.get(), n, F, stream_, down_q8 ? &xq_ : nullptr); });
            mul(L.w_down, up_.get(), xd, n, L.b_down, /*accumulate=*/true, down_q8);  // x += FFN output
            continue;
        }
        switch (arch.ffn) {
            case FFNKind::SwiGLU:
                mul(L.w_gate, xn, gate_.get(), n, {}, false, ffn_q8);
                mul(L.w_up, xn, up_.get(), n, {}, false, ffn_q8);
                timed(PhaseTimer::Elementwise, [&] { swiglu(gate_.get(), up_.get(), n * F, stream_); });
                break;
            case FFNKind::FusedSwiGLU:  // never here: its matrix is w_gu
                break;
            case FFNKind::GELU:
                mul(L.w_up, xn, up_.get(), n, L.b_up, false, ffn_q8);
                timed(PhaseTimer::Elementwise, [&] { gelu(up_.get(), n * F, stream_); });
                break;
        }
        mul(L.w_down, up_.get(), xd, n, L.b_down, /*accumulate=*/true);  // x += FFN output
    }
    if (p_.output && logits) {
        const int64_t n_out = n - first_logit;
        const bool q8 = uses_q8(output_, n_out);
        norm(xd + first_logit * E, out_norm_, out_norm_b_, xn, n_out, q8);
        mul(output_, xn, logits_.get(), n_out, out_b_, false, q8);
    }
}

void Impl::shift(int64_t first, int64_t n, int64_t n_used) {
    const int64_t tail = n_used - (first + n);
    positions_dirty_ = true;
    if (tail <= 0 || n == 0) return;
    std::vector<uint16_t> rows(static_cast<size_t>(tail * kv_dim_));  // (tail, kv_dim) f16 bits
    std::vector<float> row(static_cast<size_t>(kv_dim_));              // (kv_dim,) one key in f32
    DeviceBuffer<__half> moved(static_cast<size_t>(tail * kv_dim_));
    for (Layer& L : layers_) {
        // Keys: down to the host, rotated back by n positions, up into their new cells.
        check(cudaMemcpy(rows.data(), L.k.get() + (first + n) * kv_dim_, rows.size() * 2, cudaMemcpyDeviceToHost),
              "download keys");
        for (int64_t c = 0; c < tail; ++c) {
            uint16_t* r = rows.data() + c * kv_dim_;
            for (int64_t i = 0; i < kv_dim_; ++i) row[i] = fp16_to_fp32(r[i]);
            rope_delta(row.data(), -static_cast<int32_t>(n), hp_.n_head_kv, hp_.head_dim, p_.rope);
            for (int64_t i = 0; i < kv_dim_; ++i) r[i] = fp32_to_fp16(row[i]);
        }
        check(cudaMemcpy(L.k.get() + first * kv_dim_, rows.data(), rows.size() * 2, cudaMemcpyHostToDevice),
              "upload keys");
        // Values: moved on the device (through a buffer: the ranges may overlap).
        check(cudaMemcpy(moved.get(), L.v.get() + (first + n) * kv_dim_, moved.bytes(), cudaMemcpyDeviceToDevice),
              "move values");
        check(cudaMemcpy(L.v.get() + first * kv_dim_, moved.get(), moved.bytes(), cudaMemcpyDeviceToDevice),
              "move values");
    }
}

}  // namespace

std::unique_ptr<DeviceLayers> make_device_layers(const HParams& hp, const ModelWeights& w,
                                                 const DeviceLayersParams& p) {
    return std::make_unique<Impl>(hp, w, p);
}

std::vector<float> matmul_probe(GGMLType type, const uint8_t* w, int64_t n_in, int64_t n_out, const float* x,
                                int64_t n_tok) {
    // Uploaded as two stacked parts (a third of the rows, then the rest), as the layers stack
    // q|k|v and gate|up, and multiplied as the layers do (8-bit activations where they would be).
    const size_t rb = quant::row_bytes(type, n_in);
    const int64_t first = n_out / 3;
    const Matrix W = upload_matrix(type, n_in, {HostRows{w, rb, first}, HostRows{w + first * rb, rb, n_out - first}});
    DeviceBuffer<float> X(x, n_tok * n_in), Y(n_tok * n_out);
    DeviceBuffer<int8_t> xq(n_tok * n_in);
    DeviceBuffer<float2> xds(n_tok * n_in / 32);
    const Q8Act q8{xq.get(), xds.get()};
    if (uses_q8(W, n_tok)) quantize_q8(X.get(), n_tok, n_in, q8, nullptr);
    mat_mul(W, X.get(), &q8, Y.get(), n_tok, nullptr);
    std::vector<float> y(static_cast<size_t>(n_tok * n_out));
    check(cudaDeviceSynchronize(), "matmul_probe");
    Y.download(y.data(), y.size());
    return y;
}

std::vector<float> attention_probe(const float* q, const float* k, const float* v, int64_t n, int64_t n_head,
                                   int64_t n_head_kv, int64_t head_dim, const RopeParams& rope,
                                   const SelfExtend& se, int64_t chunk) {
    const int64_t q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
    chunk = std::max<int64_t>(1, std::min(chunk, n));
    DeviceBuffer<float> Q(q, n * q_dim), K(k, n * kv_dim), V(v, n * kv_dim), out(n * q_dim);
    DeviceBuffer<float> qg(se.enabled() ? chunk * q_dim : 0);
    DeviceBuffer<__half> kc(n * kv_dim), vc(n * kv_dim), kgc(se.enabled() ? n * kv_dim : 0);
    const int64_t partial_floats = attention_scratch_floats(chunk, n_head, head_dim, attention_splits(1, n_head, n)) +
                                   attention_scratch_floats(chunk, n_head, head_dim, attention_splits(chunk, n_head, n));
    DeviceBuffer<float> partial(partial_floats);
    DeviceBuffer<int32_t> cell_pos(n), steps(2 * ((n + chunk - 1) / chunk));  // (n_chunks, 2): cell, n_kv
    std::vector<int32_t> step_host;
    for (int64_t c = 0; c < n; c += chunk) {
        step_host.push_back(static_cast<int32_t>(c));
        step_host.push_back(static_cast<int32_t>(std::min(n, c + chunk)));
    }
    steps.upload(step_host.data(), step_host.size());
    std::vector<int32_t> pos(static_cast<size_t>(3 * n));  // (3, n): positions, grouped query, grouped key
    for (int64_t i = 0; i < n; ++i) {
        pos[i] = static_cast<int32_t>(i);
        pos[n + i] = se.enabled() ? se.query_pos(static_cast<int32_t>(i)) : 0;
        pos[2 * n + i] = se.enabled() ? se.key_pos(static_cast<int32_t>(i)) : 0;
    }
    DeviceBuffer<int32_t> P(pos.data(), pos.size());
    const std::vector<double> inv = rope_inverse_frequencies(rope);
    DeviceBuffer<double> inv_freq(inv.data(), inv.size());
    AttentionShape s;
    s.n_head = n_head;
    s.n_head_kv = n_head_kv;
    s.head_dim = head_dim;
    s.scale = 1.0f / std::sqrt(static_cast<float>(head_dim));
    s.self_extend = se;
    const DeviceKV kv{kc.get(), vc.get(), se.enabled() ? kgc.get() : nullptr, kv_dim};
    for (int64_t c = 0; c < n; c += chunk) {
        const int64_t len = std::min(chunk, n - c);
        StepBuffers b;
        b.step = steps.get() + 2 * (c / chunk);
        b.n_split = attention_splits(len, n_head, c + len);
        b.pos = P.get() + c;
        b.cell_pos = cell_pos.get();
        b.qpos_g = P.get() + n + c;
        b.kpos_g = P.get() + 2 * n + c;
        b.qg = qg.get();
        b.partial = partial.get();
        b.partial_floats = partial_floats;
        b.inv_freq = inv_freq.get();
        b.n_rot = rope.n_rot;
        b.neox = rope.mode == RopeMode::NeoX;
        attention_step(Q.get() + c * q_dim, K.get() + c * kv_dim, V.get() + c * kv_dim, len, kv, s, b,
                       out.get() + c * q_dim, nullptr);
    }
    check(cudaDeviceSynchronize(), "attention_probe");
    std::vector<float> o(static_cast<size_t>(n * q_dim));
    out.download(o.data(), o.size());
    return o;
}

}  // namespace pyllong::cuda
