#include "model/hparams.h"

#include <cmath>

#include "core/error.h"
#include "gguf/gguf.h"

namespace pyllong {

namespace {

// Generous caps: larger than any released model, small enough that per-layer or
// per-head arrays sized from them are harmless.
constexpr int64_t kMaxLayers = 1024;
constexpr int64_t kMaxEmbd = 1 << 17;
constexpr int64_t kMaxHeads = 1 << 12;
constexpr int64_t kMaxFF = 1 << 20;
constexpr int64_t kMaxCtx = int64_t(1) << 24;
constexpr int64_t kMaxVocab = int64_t(1) << 22;

struct Reader {
    const GGUFFile& f;
    std::string prefix;

    std::string key(const std::string& k) const { return prefix + "." + k; }

    [[noreturn]] void bad(const std::string& k, const std::string& msg) const {
        const GGUFKV* kv = f.find(k);
        throw GGUFError(f.where("metadata key '" + k + "'", kv ? kv->offset : 0) + ": " + msg);
    }

    int64_t integer(const std::string& k, bool required, int64_t dflt, int64_t lo, int64_t hi) const {
        auto v = f.get_int(k);
        if (!v) {
            if (required)
                throw GGUFError(f.path() + ": required metadata key '" + k + "' is missing");
            return dflt;
        }
        if (*v < lo || *v > hi)
            bad(k, "value " + std::to_string(*v) + " is outside the valid range [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "]");
        return *v;
    }
};

}  // namespace

int64_t HParams::kv_bytes(int64_t n_ctx, double bytes_per_elem) const {
    return static_cast<int64_t>(2.0 * n_layer * n_ctx * n_head_kv * head_dim * bytes_per_elem);
}

HParams read_hparams(const GGUFFile& f) {
    HParams hp;
    auto arch_name = f.get_string("general.architecture");
    if (!arch_name) throw GGUFError(f.path() + ": required metadata key 'general.architecture' is missing");
    hp.arch = find_arch(std::string(*arch_name));
    if (!hp.arch) {
        const GGUFKV* kv = f.find("general.architecture");
        throw GGUFError(f.where("metadata key 'general.architecture'", kv->offset) + ": architecture '" +
                        std::string(*arch_name) + "' is not supported (supported: " + supported_arch_names() + ")");
    }
    Reader r{f, hp.arch->name};
    hp.n_layer = r.integer(r.key("block_count"), true, 0, 1, kMaxLayers);
    hp.n_ctx_train = r.integer(r.key("context_length"), true, 0, 1, kMaxCtx);
    hp.n_embd = r.integer(r.key("embedding_length"), true, 0, 1, kMaxEmbd);
    hp.n_ff = r.integer(r.key("feed_forward_length"), true, 0, 1, kMaxFF);
    hp.n_head = r.integer(r.key("attention.head_count"), true, 0, 1, kMaxHeads);
    hp.n_head_kv = r.integer(r.key("attention.head_count_kv"), false, hp.n_head, 1, kMaxHeads);
    if (hp.n_head % hp.n_head_kv != 0)
        r.bad(r.key("attention.head_count_kv"), "head_count " + std::to_string(hp.n_head) +
                                                    " is not a multiple of head_count_kv " + std::to_string(hp.n_head_kv));
    if (hp.n_embd % hp.n_head != 0)
        r.bad(r.key("attention.head_count"), "embedding_length " + std::to_string(hp.n_embd) +
                                                 " is not a multiple of head_count " + std::to_string(hp.n_head));
    hp.head_dim = r.integer(r.key("attention.key_length"), false, hp.n_embd / hp.n_head, 1, 4096);
    const int64_t v_len = r.integer(r.key("attention.value_length"), false, hp.head_dim, 1, 4096);
    if (v_len != hp.head_dim)
        r.bad(r.key("attention.value_length"), "value_length must equal key_length (" + std::to_string(hp.head_dim) + ")");
    hp.n_rot = r.integer(r.key("rope.dimension_count"), false, hp.head_dim, 0, 1 << 30);
    if (hp.n_rot > hp.head_dim)
        r.bad(r.key("rope.dimension_count"), "rotary dimension " + std::to_string(hp.n_rot) +
                                                 " exceeds the head dimension " + std::to_string(hp.head_dim));
    if (hp.n_rot % 2 != 0) r.bad(r.key("rope.dimension_count"), "rotary dimension must be even");
    hp.sliding_window = r.integer(r.key("attention.sliding_window"), false, 0, 0, kMaxCtx);

    if (auto v = f.get_float(r.key("rope.freq_base"))) {
        if (!std::isfinite(*v) || *v <= 0) r.bad(r.key("rope.freq_base"), "must be a positive finite number");
        hp.rope_freq_base = *v;
    }
    if (auto t = f.get_string(r.key("rope.scaling.type"))) hp.rope_scaling_type = std::string(*t);
    if (auto v = f.get_float(r.key("rope.scaling.factor"))) {
        if (!std::isfinite(*v) || *v < 0) r.bad(r.key("rope.scaling.factor"), "must be a non-negative finite number");
        if (*v > 0 && hp.rope_scaling_type == "linear") hp.rope_freq_scale = 1.0 / *v;
    }

    const std::string eps_key = r.key(hp.arch->eps_key);
    auto eps = f.get_float(eps_key);
    if (!eps) throw GGUFError(f.path() + ": required metadata key '" + eps_key + "' is missing");
    if (!std::isfinite(*eps) || *eps <= 0 || *eps > 1)
        r.bad(eps_key, "norm epsilon " + std::to_string(*eps) + " must be a finite number in (0, 1]");
    hp.norm_eps = *eps;

    // The vocabulary size comes from the token list; `<arch>.vocab_size`, when present,
    // must agree (the model layer also checks it against token_embd).
    const GGUFValue* tokens = f.get_array("tokenizer.ggml.tokens", ValueType::STRING);
    if (!tokens) throw GGUFError(f.path() + ": required metadata key 'tokenizer.ggml.tokens' is missing");
    if (tokens->count == 0 || static_cast<int64_t>(tokens->count) > kMaxVocab)
        throw GGUFError(f.where("metadata key 'tokenizer.ggml.tokens'", tokens->offset) + ": token count " +
                        std::to_string(tokens->count) + " is outside [1, " + std::to_string(kMaxVocab) + "]");
    hp.n_vocab = static_cast<int64_t>(tokens->count);
    if (auto vs = f.get_int(r.key("vocab_size")); vs && *vs != hp.n_vocab)
        r.bad(r.key("vocab_size"), "vocab_size " + std::to_string(*vs) + " disagrees with the " +
                                       std::to_string(hp.n_vocab) + " tokens in tokenizer.ggml.tokens");
    return hp;
}

}  // namespace pyllong
