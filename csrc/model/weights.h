// Views of a model's weights in the mapped file, resolved once at load. Matrices stay
// quantized (QTensorView); 1-D tensors (norms, biases) are converted to f32 once.
#pragma once
#include <memory>
#include <vector>

#include "model/model_file.h"
#include "ops/matmul.h"

namespace pyllong {

struct LayerWeights {
    std::vector<float> attn_norm, attn_norm_b;  // (n_embd,) ; bias empty unless LayerNorm
    QTensorView wq{}, wk{}, wv{}, wqkv{};        // separate q/k/v, or fused qkv (n_out = q+2kv dims)
    std::vector<float> bqkv;                     // (q+2kv dims,) or empty
    QTensorView wo{};
    std::vector<float> bo;                       // (n_embd,) or empty
    std::vector<float> ffn_norm;                 // (n_embd,) ; empty for parallel-residual archs
    QTensorView w_gate{}, w_up{}, w_down{};      // w_up has 2*n_ff rows when gate/up are fused
    std::vector<float> b_up, b_down;
    bool fused_qkv = false;
};

struct ModelWeights {
    GGMLType tok_embd_type{};
    const uint8_t* tok_embd = nullptr;  // (n_vocab, row_bytes(n_embd))
    size_t tok_embd_row_bytes = 0;
    std::vector<float> output_norm, output_norm_b;
    QTensorView output{};               // token_embd when embeddings are tied
    std::vector<float> output_b;        // (n_vocab,) or empty
    std::vector<float> rope_freq_factors;  // (n_rot/2,) or empty
    std::vector<LayerWeights> layers;
};

// n_gpu_layers: layers [0, n) and, when n covers them all, the output run on the device:
// their matrices get no repacked copy.
ModelWeights load_weights(const ModelFile& mf, int64_t n_gpu_layers = 0);

}  // namespace pyllong
