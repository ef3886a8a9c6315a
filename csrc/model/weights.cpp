#include "model/weights.h"

#include "core/error.h"
#include "quant/formats.h"

namespace pyllong {

namespace {

QTensorView view(const TensorInfo& t) {
    return QTensorView{static_cast<GGMLType>(t.type), t.data, t.ne[0], t.n_dims > 1 ? t.ne[1] : 1, 0};
}

// A matrix the CPU multiplies: with the repacked copy where the kernels have one.
QTensorView cpu_view(const ModelFile& mf, const TensorInfo& t, bool on_cpu) {
    QTensorView v = view(t);
    if (on_cpu) v.packed = mf.packed(t);
    return v;
}

std::vector<float> to_f32(const TensorInfo* t) {
    if (!t) return {};
    std::vector<float> out(static_cast<size_t>(t->n_elements));
    quant::dequantize_row(static_cast<GGMLType>(t->type), t->data, out.data(), t->n_elements);
    return out;
}

}  // namespace

ModelWeights load_weights(const ModelFile& mf, int64_t n_gpu_layers) {
    const HParams& hp = mf.hparams();
    const ArchTable& arch = *hp.arch;
    ModelWeights w;
    const TensorInfo* emb = mf.tensor("token_embd.weight");
    w.tok_embd_type = static_cast<GGMLType>(emb->type);
    w.tok_embd = emb->data;
    w.tok_embd_row_bytes = quant::row_bytes(w.tok_embd_type, hp.n_embd);
    w.output_norm = to_f32(mf.tensor("output_norm.weight"));
    w.output_norm_b = to_f32(mf.tensor("output_norm.bias"));
    const TensorInfo* out = mf.tensor("output.weight");
    w.output = cpu_view(mf, out ? *out : *emb, n_gpu_layers < hp.n_layer);
    w.output_b = to_f32(mf.tensor("output.bias"));
    w.rope_freq_factors = to_f32(mf.tensor("rope_freqs.weight"));

    auto opt = [&](int64_t l, const char* name) {
        return mf.tensor("blk." + std::to_string(l) + "." + name);
    };
    w.layers.resize(static_cast<size_t>(hp.n_layer));
    for (int64_t l = 0; l < hp.n_layer; ++l) {
        LayerWeights& L = w.layers[l];
        const bool cpu = l >= n_gpu_layers;  // layers [0, n_gpu_layers) run on the device
        auto view = [&](const TensorInfo& t) { return cpu_view(mf, t, cpu); };
        L.attn_norm = to_f32(&mf.layer_tensor(l, "attn_norm.weight"));
        L.attn_norm_b = to_f32(opt(l, "attn_norm.bias"));
        if (const TensorInfo* qkv = opt(l, "attn_qkv.weight")) {
            L.fused_qkv = true;
            L.wqkv = view(*qkv);
            L.bqkv = to_f32(opt(l, "attn_qkv.bias"));
        } else {
            L.wq = view(mf.layer_tensor(l, "attn_q.weight"));
            L.wk = view(mf.layer_tensor(l, "attn_k.weight"));
            L.wv = view(mf.layer_tensor(l, "attn_v.weight"));
        }
        L.wo = view(mf.layer_tensor(l, "attn_output.weight"));
        L.bo = to_f32(opt(l, "attn_output.bias"));
        if (!arch.parallel_residual) L.ffn_norm = to_f32(&mf.layer_tensor(l, "ffn_norm.weight"));
        if (arch.ffn == FFNKind::SwiGLU) L.w_gate = view(mf.layer_tensor(l, "ffn_gate.weight"));
        L.w_up = view(mf.layer_tensor(l, "ffn_up.weight"));
        L.w_down = view(mf.layer_tensor(l, "ffn_down.weight"));
        L.b_up = to_f32(opt(l, "ffn_up.bias"));
        L.b_down = to_f32(opt(l, "ffn_down.bias"));
    }
    return w;
}

}  // namespace pyllong
