// Saving and restoring a Context: the KV cache cells in use, their positions, the token ids
// they hold, and an opaque blob for the caller (the Python sampler's RNG state). A state
// file is untrusted input (hardening item 30, CVE-2026-43629): the loader checks magic,
// version and a SHA-256 over the whole file first, then that every field fits *this*
// context (same model, kv type, SelfExtend; n_used <= n_ctx; exact size; ids in the
// vocabulary; finite cache values) and only then writes the cache. Any failure throws
// StateError and leaves the context unchanged.
//
// Layout, little-endian, version 1 (offsets in bytes):
//     0   8  magic "PYLLSTAT"
//     8   4  u32 version (1)
//    12   4  u32 kv type (0 = f16, 1 = q8_0)
//    16  32  model fingerprint (model_fingerprint below)
//    48   8  u64 n_layer
//    56   8  u64 kv_dim            (n_head_kv * head_dim)
//    64   8  u64 n_used            (cells saved)
//    72   8  i64 SelfExtend group  (0 when off)
//    80   8  i64 SelfExtend window (0 when off)
//    88   8  u64 extra_len
//    96      payload: i32 tokens[n_used], i32 pos[n_used],
//            then per layer: K rows (n_used, row_bytes), V rows, grouped-K rows (SelfExtend only),
//            then extra[extra_len]
//   end-32 32  SHA-256 of every byte before it
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "model/context.h"

namespace pyllong {

constexpr uint32_t kStateVersion = 1;
constexpr size_t kStateHeaderBytes = 96;
constexpr size_t kStateMaxExtra = size_t(16) << 20;  // the caller's blob is small (JSON)

// SHA-256 over the architecture, hyper-parameters, tensor table and a sample of every
// tensor's bytes (its first and last 4 KiB): cheap, and two models differing in weights
// alone still differ here.
std::array<uint8_t, 32> model_fingerprint(const ModelFile& model);

// tokens: the n_past ids in the cache, in order (n_tokens must equal ctx.n_past()).
std::vector<uint8_t> save_state(const Context& ctx, const int32_t* tokens, int64_t n_tokens, const uint8_t* extra,
                                size_t extra_len);

// A state checked against a context but not applied yet: the caller may inspect `extra`
// (and refuse) before apply_state writes anything.
struct CheckedState {
    std::vector<int32_t> tokens;  // (n_used,)
    std::vector<uint8_t> extra;
    size_t rows_offset = 0;       // where the per-layer rows start in the data
};
CheckedState check_state(const Context& ctx, const uint8_t* data, size_t size);
// `data` must be the bytes check_state accepted for this same context.
void apply_state(Context& ctx, const uint8_t* data, const CheckedState& st);

// Size of the largest state `ctx` can accept: callers reading a file refuse anything larger
// before reading it into memory.
uint64_t state_max_bytes(const Context& ctx);

}  // namespace pyllong
