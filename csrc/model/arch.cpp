#include "model/arch.h"

#include "model/hparams.h"

namespace pyllong {

namespace {
using D = Dim;
const ArchTable kArchs[] = {
    {Arch::Llama, "llama", NormKind::RMSNorm, FFNKind::SwiGLU, false, "attention.layer_norm_rms_epsilon",
     {
         {"token_embd.weight", D::Embd, D::Vocab, true, false},
         {"output_norm.weight", D::Embd, D::One, true, true},
         {"output.weight", D::Embd, D::Vocab, false, false},  // absent: tied to token_embd
         {"rope_freqs.weight", D::HalfRot, D::One, false, false},  // LLaMA-3.1 rope scaling
     },
     {
         {"attn_norm.weight", D::Embd, D::One, true, true},
         {"attn_q.weight", D::Embd, D::QDim, true, false},
         {"attn_k.weight", D::Embd, D::KVDim, true, false},
         {"attn_v.weight", D::Embd, D::KVDim, true, false},
         {"attn_output.weight", D::QDim, D::Embd, true, false},
         {"ffn_norm.weight", D::Embd, D::One, true, true},
         {"ffn_gate.weight", D::Embd, D::FF, true, false},
         {"ffn_up.weight", D::Embd, D::FF, true, false},
         {"ffn_down.weight", D::FF, D::Embd, true, false},
     }},
    {Arch::Phi2, "phi2", NormKind::LayerNorm, FFNKind::GELU, true, "attention.layer_norm_epsilon",
     {
         {"token_embd.weight", D::Embd, D::Vocab, true, false},
         {"output_norm.weight", D::Embd, D::One, true, true},
         {"output_norm.bias", D::Embd, D::One, true, true},
         {"output.weight", D::Embd, D::Vocab, true, false},
         {"output.bias", D::Vocab, D::One, true, false},
     },
     {
         {"attn_norm.weight", D::Embd, D::One, true, true},
         {"attn_norm.bias", D::Embd, D::One, true, true},
         {"attn_qkv.weight", D::Embd, D::QKVDim, true, false},
         {"attn_qkv.bias", D::QKVDim, D::One, true, false},
         {"attn_output.weight", D::QDim, D::Embd, true, false},
         {"attn_output.bias", D::Embd, D::One, true, false},
         {"ffn_up.weight", D::Embd, D::FF, true, false},
         {"ffn_up.bias", D::FF, D::One, true, false},
         {"ffn_down.weight", D::FF, D::Embd, true, false},
         {"ffn_down.bias", D::Embd, D::One, true, false},
     }},
    {Arch::Phi3, "phi3", NormKind::RMSNorm, FFNKind::FusedSwiGLU, false, "attention.layer_norm_rms_epsilon",
     {
         {"token_embd.weight", D::Embd, D::Vocab, true, false},
         {"output_norm.weight", D::Embd, D::One, true, true},
         {"output.weight", D::Embd, D::Vocab, false, false},
         {"rope_factors_long.weight", D::HalfRot, D::One, false, false},
         {"rope_factors_short.weight", D::HalfRot, D::One, false, false},
     },
     {
         {"attn_norm.weight", D::Embd, D::One, true, true},
         {"attn_qkv.weight", D::Embd, D::QKVDim, true, false},
         {"attn_output.weight", D::QDim, D::Embd, true, false},
         {"ffn_norm.weight", D::Embd, D::One, true, true},
         {"ffn_up.weight", D::Embd, D::FF2, true, false},
         {"ffn_down.weight", D::FF, D::Embd, true, false},
     }},
};
}  // namespace

const ArchTable* find_arch(const std::string& name) {
    for (const auto& a : kArchs)
        if (name == a.name) return &a;
    return nullptr;
}

std::string supported_arch_names() {
    std::string s;
    for (const auto& a : kArchs) s += (s.empty() ? "" : ", ") + std::string(a.name);
    return s;
}

int64_t dim_value(Dim d, const HParams& hp) {
    switch (d) {
        case Dim::One: return 1;
        case Dim::Embd: return hp.n_embd;
        case Dim::Vocab: return hp.n_vocab;
        case Dim::FF: return hp.n_ff;
        case Dim::FF2: return 2 * hp.n_ff;
        case Dim::QDim: return hp.n_head * hp.head_dim;
        case Dim::KVDim: return hp.n_head_kv * hp.head_dim;
        case Dim::QKVDim: return (hp.n_head + 2 * hp.n_head_kv) * hp.head_dim;
        case Dim::HalfRot: return hp.n_rot / 2;
    }
    return 0;
}

}  // namespace pyllong
