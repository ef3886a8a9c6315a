#include "model/context.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "core/fp16.h"
#include "model/memory_budget.h"
#include "ops/norm.h"
#include "ops/swiglu.h"
#include "quant/formats.h"

namespace pyllong {

namespace {

int default_threads(int n) {
    if (n > 0) return n;
    const unsigned hc = std::thread::hardware_concurrency();
    return hc ? static_cast<int>(hc) : 1;
}

inline float silu(float x) { return x / (1.0f + std::exp(-x)); }
inline float gelu(float x) {  // tanh approximation, as ggml
    constexpr float k = 0.7978845608028654f;  // sqrt(2/pi)
    return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
}

}  // namespace

// The caller's options, checked against the model before anything is allocated.
static const ContextParams& validated(const ContextParams& p, const HParams& hp) {
    if (p.n_ctx < 1 || p.n_ctx > (int64_t(1) << 24))
        throw InvalidArgument("n_ctx must be between 1 and 16777216, got " + std::to_string(p.n_ctx));
    if (p.n_batch < 1) throw InvalidArgument("n_batch must be at least 1, got " + std::to_string(p.n_batch));
    if (p.memory.enabled() && p.memory.window > p.n_ctx)
        throw InvalidArgument("memory window W (" + std::to_string(p.memory.window) + ") must fit in n_ctx (" +
                              std::to_string(p.n_ctx) + "); raise n_ctx or lower W");
    if (p.memory.enabled() && p.self_extend.enabled())
        throw InvalidArgument("kNN memory and SelfExtend cannot be combined; choose one");
    if (p.kv_type == KVType::Q8_0 && hp.head_dim % 32 != 0)
        throw InvalidArgument("kv_type q8_0 needs a head dimension that is a multiple of 32; this model's is " +
                              std::to_string(hp.head_dim) + " (use f16)");
    if (p.n_gpu_layers != 0 && p.kv_type != KVType::F16)
        throw InvalidArgument("the GPU keeps its KV cache in f16: use kv_type f16 with n_gpu_layers");
    if (p.memory.enabled() && p.transition.enabled)  // memory windows restart positions; bands need prompt positions
        throw InvalidArgument("kNN memory and the Attention Transition cannot be combined; choose one");
    if (p.n_gpu_layers < -1)
        throw InvalidArgument("n_gpu_layers must be -1 (all), 0 (CPU only) or a layer count, got " +
                              std::to_string(p.n_gpu_layers));
    check_context_memory(p, hp);  // says how many bytes an absurd n_ctx needs instead of dying
    return p;
}

static int64_t gpu_layer_count(const ContextParams& p, const HParams& hp) {
    return p.n_gpu_layers < 0 || p.n_gpu_layers > hp.n_layer ? hp.n_layer : p.n_gpu_layers;
}

Context::Context(std::shared_ptr<const ModelFile> model, const ContextParams& params)
    : model_(std::move(model)), hp_(model_->hparams()), w_(load_weights(*model_, gpu_layer_count(params, model_->hparams()))),
      params_(validated(params, hp_)), n_gpu_(gpu_layer_count(params_, hp_)),
      cache_(hp_.n_layer - n_gpu_, params_.n_ctx, hp_.n_head_kv * hp_.head_dim, params_.kv_type, params_.self_extend.enabled()),
      pool_(default_threads(params_.n_threads)) {
    if (params_.memory.enabled()) {
        memory_ = KVMemory(params_.memory, hp_.n_layer, hp_.n_head_kv, hp_.head_dim);
        attn_.memory = &memory_;
    }
    attn_.first_layer = n_gpu_;
    params_.n_threads = pool_.size();
    rope_.mode = hp_.arch->arch == Arch::Llama ? RopeMode::Normal : RopeMode::NeoX;
    rope_.n_rot = hp_.n_rot;
    rope_.freq_base = static_cast<float>(hp_.rope_freq_base);
    rope_.freq_scale = static_cast<float>(hp_.rope_freq_scale);
    rope_.freq_factors = w_.rope_freq_factors.empty() ? nullptr : w_.rope_freq_factors.data();
    attn_.n_head = hp_.n_head;
    attn_.n_head_kv = hp_.n_head_kv;
    attn_.head_dim = hp_.head_dim;
    // SelfExtend replaces Mistral's sliding window while it is on (as the reference does).
    attn_.self_extend = params_.self_extend;
    attn_.sliding_window = params_.self_extend.enabled() ? 0 : hp_.sliding_window;
    attn_.scale = 1.0f / std::sqrt(static_cast<float>(hp_.head_dim));

    const int64_t nb = std::min(params_.n_batch, params_.n_ctx);
    const int64_t q_dim = hp_.n_head * hp_.head_dim, kv_dim = hp_.n_head_kv * hp_.head_dim;
    x_.resize(nb * hp_.n_embd);             // (n_batch, n_embd) residual stream
    xn_.resize(nb * hp_.n_embd);            // (n_batch, n_embd) normed input
    q_.resize(nb * q_dim);                  // (n_batch, n_head * head_dim)
    k_.resize(nb * kv_dim);                 // (n_batch, n_head_kv * head_dim)
    v_.resize(nb * kv_dim);
    if (hp_.arch->arch != Arch::Llama) qkv_.resize(nb * (q_dim + 2 * kv_dim));  // fused projection
    att_.resize(nb * q_dim);                // (n_batch, n_head * head_dim)
    if (params_.memory.distance > 0) qg_.resize(nb * q_dim);  // (n_batch, n_head * head_dim) queries at the memory distance
    if (params_.self_extend.enabled()) {
        qg_.resize(nb * q_dim);             // (n_batch, n_head * head_dim) queries at grouped positions
        kg_.resize(nb * kv_dim);            // (n_batch, n_head_kv * head_dim) keys at grouped positions
    }
    tmp_.resize(nb * hp_.n_embd);           // (n_batch, n_embd)
    gate_.resize(nb * 2 * hp_.n_ff);        // (n_batch, 2 * n_ff): fused gate|up for phi3
    up_.resize(nb * hp_.n_ff);              // (n_batch, n_ff)
    if (n_gpu_ > 0) {
        cuda::DeviceLayersParams dp;
        dp.n_gpu_layers = n_gpu_;
        dp.output = n_gpu_ == hp_.n_layer;
        dp.n_ctx = params_.n_ctx;
        dp.n_batch = params_.n_batch;
        dp.rope = rope_;
        dp.self_extend = params_.self_extend;
        dp.transition = params_.transition;
        if (memory_.enabled()) {
            device_memory_ = make_device_memory();
            dp.memory = device_memory_.get();
        }
        dp.sliding_window = attn_.sliding_window;
        gpu_ = cuda::make_device_layers(hp_, w_, dp);
    }
}

void Context::norm(const float* x, const std::vector<float>& w, const std::vector<float>& b, float* out, int64_t n) {
    if (hp_.arch->norm == NormKind::RMSNorm)
        rms_norm(x, w.data(), out, n, hp_.n_embd, static_cast<float>(hp_.norm_eps));
    else
        layer_norm(x, w.data(), b.empty() ? nullptr : b.data(), out, n, hp_.n_embd, static_cast<float>(hp_.norm_eps));
}

void Context::matmul_bias(const QTensorView& W, const std::vector<float>& b, const float* x, float* y, int64_t n) {
    matmul(W, x, y, n, pool_, params_.n_threads);
    if (!b.empty())
        for (int64_t t = 0; t < n; ++t)
            for (int64_t i = 0; i < W.n_out; ++i) y[t * W.n_out + i] += b[i];
}

void Context::check_tokens(const int32_t* tokens, int64_t n) const {
    for (int64_t i = 0; i < n; ++i)
        if (tokens[i] < 0 || tokens[i] >= hp_.n_vocab)
            throw InvalidArgument("token id " + std::to_string(tokens[i]) + " at index " + std::to_string(i) +
                                  " is outside the vocabulary [0, " + std::to_string(hp_.n_vocab) + ")");
}

std::vector<float> Context::eval(const int32_t* tokens, int64_t n, bool logits_all, int64_t prompt_len) {
    if (n <= 0) throw InvalidArgument("eval needs at least one token");
    check_tokens(tokens, n);
    if (memory_.enabled()) return eval_windows(tokens, n, logits_all);
    const int64_t n_past = cache_.n_used();
    if (n_past + n > cache_.n_ctx())
        throw ContextOverflowError("context overflow: " + std::to_string(n_past) + " tokens in the cache + " +
                                   std::to_string(n) + " new > n_ctx " + std::to_string(cache_.n_ctx()) +
                                   "; use a larger n_ctx or enable context shift");
    prompt_len_ = prompt_len >= 0 ? prompt_len : n > 1 ? n_past + n : 0;
    std::vector<float> logits(static_cast<size_t>((logits_all ? n : 1) * hp_.n_vocab));
    run_batches(tokens, n, logits_all, logits.data());
    return logits;
}

void Context::run_batches(const int32_t* tokens, int64_t n, bool logits_all, float* logits) {
    const int64_t n_past = cache_.n_used();
    std::vector<int32_t> pos(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(n_past + i);
    const int64_t nb = static_cast<int64_t>(x_.size()) / hp_.n_embd;
    for (int64_t start = 0; start < n; start += nb) {
        const int64_t len = std::min(nb, n - start);
        const bool last = start + len == n;
        if (logits_all)
            forward(tokens + start, pos.data() + start, len, 0, logits + start * hp_.n_vocab);
        else
            forward(tokens + start, pos.data() + start, len, last ? len - 1 : len, last ? logits : nullptr);
    }
}

void Context::forward(const int32_t* tokens, const int32_t* pos, int64_t n, int64_t first_logit, float* logits) {
    const int64_t E = hp_.n_embd, hd = hp_.head_dim;
    const int64_t q_dim = hp_.n_head * hd, kv_dim = hp_.n_head_kv * hd, F = hp_.n_ff;
    const int64_t cell = cache_.n_used();
    const ArchTable& arch = *hp_.arch;
    float *x = x_.data(), *xn = xn_.data(), *q = q_.data(), *k = k_.data(), *v = v_.data();

    for (int64_t t = 0; t < n; ++t)
        quant::dequantize_row(w_.tok_embd_type, w_.tok_embd + tokens[t] * w_.tok_embd_row_bytes, x + t * E, E);
    cache_.set_positions(cell, pos, n);

    if (gpu_) {  // layers [0, n_gpu_) on the device; with all of them, the logits too
        const bool all = n_gpu_ == hp_.n_layer;
        gpu_->forward(x, cache_.positions(), n, cell, first_logit, all ? logits : nullptr, prompt_len_);
        if (all) {
            cache_.set_used(cell + n);
            return;
        }
    }
    for (int64_t l = n_gpu_; l < hp_.n_layer; ++l) {
        const LayerWeights& L = w_.layers[l];
        norm(x, L.attn_norm, L.attn_norm_b, xn, n);

        // q, k, v: (n, q_dim), (n, kv_dim), (n, kv_dim)
        if (L.fused_qkv) {
            const int64_t qkv_dim = q_dim + 2 * kv_dim;
            matmul_bias(L.wqkv, L.bqkv, xn, qkv_.data(), n);
            for (int64_t t = 0; t < n; ++t) {
                const float* r = qkv_.data() + t * qkv_dim;
                std::memcpy(q + t * q_dim, r, q_dim * sizeof(float));
                std::memcpy(k + t * kv_dim, r + q_dim, kv_dim * sizeof(float));
                std::memcpy(v + t * kv_dim, r + q_dim + kv_dim, kv_dim * sizeof(float));
            }
        } else {
            const QTensorView* W[3] = {&L.wq, &L.wk, &L.wv};
            float* y[3] = {q, k, v};
            matmul_multi(W, y, 3, xn, n, pool_, params_.n_threads);
        }
        attn_.transition = transition_layer(params_.transition, hp_.n_layer, l, prompt_len_);
        attn_.capture = capture_ ? capture_->layer(l) : nullptr;
        attention_step(q, k, v, pos, n, cache_, l - n_gpu_, cell, rope_, attn_, qg_.data(), kg_.data(), att_.data(), pool_,
                       params_.n_threads);
        float* attn_out = tmp_.data();  // (n, E)
        matmul_bias(L.wo, L.bo, att_.data(), attn_out, n);

        // FFN input: the same normed x (parallel residual, phi2) or a second norm of x + attn.
        if (arch.parallel_residual) {
            for (int64_t i = 0; i < n * E; ++i) x[i] += attn_out[i];
        } else {
            for (int64_t i = 0; i < n * E; ++i) x[i] += attn_out[i];
            norm(x, L.ffn_norm, {}, xn, n);
        }
        float* up = up_.data();      // (n, F)
        float* gate = gate_.data();  // (n, F) or (n, 2F) fused
        switch (arch.ffn) {
            case FFNKind::SwiGLU: {
                const QTensorView* W[2] = {&L.w_gate, &L.w_up};
                float* y[2] = {gate, up};
                matmul_multi(W, y, 2, xn, n, pool_, params_.n_threads);
                swiglu(gate, up, n * F, pool_, params_.n_threads);  // up *= silu(gate)
                break;
            }
            case FFNKind::FusedSwiGLU:  // ffn_up rows are [gate; up]
                matmul(L.w_up, xn, gate, n, pool_, params_.n_threads);
                for (int64_t t = 0; t < n; ++t)
                    for (int64_t i = 0; i < F; ++i) up[t * F + i] = silu(gate[t * 2 * F + i]) * gate[t * 2 * F + F + i];
                break;
            case FFNKind::GELU:
                matmul_bias(L.w_up, L.b_up, xn, up, n);
                for (int64_t i = 0; i < n * F; ++i) up[i] = gelu(up[i]);
                break;
        }
        matmul_bias(L.w_down, L.b_down, up, attn_out, n);
        for (int64_t i = 0; i < n * E; ++i) x[i] += attn_out[i];
    }
    cache_.set_used(cell + n);

    if (!logits) return;
    const int64_t n_out = n - first_logit;
    norm(x + first_logit * E, w_.output_norm, w_.output_norm_b, xn, n_out);
    matmul_bias(w_.output, w_.output_b, xn, logits, n_out);
}

void Context::truncate(int64_t n_keep) {
    if (n_keep < 0 || n_keep > cache_.n_used())
        throw InvalidArgument("truncate: n_keep " + std::to_string(n_keep) + " is outside [0, " +
                              std::to_string(cache_.n_used()) + "]");
    cache_.set_used(n_keep);
    if (capture_) capture_->forget_from(n_keep);
}

void Context::start_capture(std::vector<int32_t> layers, std::vector<int32_t> heads) {
    if (n_gpu_ > 0)
        throw InvalidArgument("attention capture reads the CPU attention loop: use n_gpu_layers 0 to capture");
    if (memory_.enabled())  // rows would miss the memory's share and windows restart positions
        throw InvalidArgument("attention capture is not available with kNN memory; capture without memory");
    capture_ = std::make_unique<AttentionCapture>(std::move(layers), std::move(heads), hp_.n_layer, hp_.n_head,
                                                  cache_.n_ctx());
}

void Context::shift(int64_t n_keep, int64_t n_discard) {
    const int64_t used = cache_.n_used();
    if (n_keep < 0 || n_discard < 0 || n_keep > used || n_discard > used - n_keep)
        throw InvalidArgument("context shift: n_keep " + std::to_string(n_keep) + " and n_discard " +
                              std::to_string(n_discard) + " must be non-negative with n_keep + n_discard <= " +
                              std::to_string(used) + " cached tokens");
    if (n_discard == 0) return;
    if (memory_.enabled())
        throw InvalidArgument("context shift is not available with kNN memory: the memory already takes what "
                              "leaves the window");
    if (params_.self_extend.enabled())
        throw InvalidArgument("context shift is not available with SelfExtend: SelfExtend reads past the training "
                              "context instead; raise n_ctx");
    if (gpu_) gpu_->shift(n_keep, n_discard, used);
    if (capture_) capture_->forget_from(n_keep);  // shifted rows were computed in another context
    cache_.erase(n_keep, n_discard);
    // Cells after the gap move to earlier positions: rotate their keys back by n_discard.
    std::vector<int32_t> pos(cache_.positions(), cache_.positions() + cache_.n_used());
    for (int64_t c = n_keep; c < cache_.n_used(); ++c) pos[c] -= static_cast<int32_t>(n_discard);
    cache_.set_positions(0, pos.data(), cache_.n_used());
    std::vector<float> row(static_cast<size_t>(cache_.kv_dim()));  // (kv_dim,) one key row in f32
    for (int64_t l = 0; l < cache_.n_layer(); ++l)
        for (int64_t c = n_keep; c < cache_.n_used(); ++c) {
            cache_.load_key(l, c, row.data());
            rope_delta(row.data(), -static_cast<int32_t>(n_discard), hp_.n_head_kv, hp_.head_dim, rope_);
            cache_.store_key(l, c, row.data());
        }
}

}  // namespace pyllong
