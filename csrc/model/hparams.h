// Hyper-parameters read from GGUF metadata, each range-checked (hardening item 12).
#pragma once
#include <cstdint>
#include <string>

#include "model/arch.h"

namespace pyllong {

class GGUFFile;

struct HParams {
    const ArchTable* arch = nullptr;
    int64_t n_layer = 0;
    int64_t n_ctx_train = 0;
    int64_t n_embd = 0;
    int64_t n_ff = 0;
    int64_t n_head = 0;
    int64_t n_head_kv = 0;
    int64_t head_dim = 0;     // n_embd / n_head unless attention.key_length says otherwise
    int64_t n_rot = 0;        // rotary dims per head (partial rotary for phi2)
    int64_t n_vocab = 0;
    int64_t sliding_window = 0;  // 0 = full attention (Mistral/phi3 may set it)
    double rope_freq_base = 10000.0;
    double rope_freq_scale = 1.0;   // 1 / rope.scaling.factor for linear scaling
    std::string rope_scaling_type = "none";
    double norm_eps = 1e-5;

    // KV-cache bytes for n_ctx tokens with `bytes_per_elem` (2 for f16).
    int64_t kv_bytes(int64_t n_ctx, double bytes_per_elem) const;
};

// Reads and validates; throws GGUFError naming the key and its byte offset.
HParams read_hparams(const GGUFFile& f);

}  // namespace pyllong
