// pyllong-chat's --memory-load / --memory-save: the memory files of pyllong/memory.py
// (Memory.save / Memory.load), read and written here byte for byte alike, so that a file
// saved by either side loads in the other:
//     "PYLLMEM\0", u32 version (1), u32 header length, a JSON header (json.dumps with
//     sort_keys: model fingerprint, dims, dtype, layers, tokens and the memory options),
//     per memory layer the f16 key rows then the f16 value rows (tokens, n_head_kv * head_dim),
//     and a SHA-256 of everything before it.
// A file is untrusted input: the checksum is checked first, then every count (a forger can
// compute the checksum); every failure is a MemoryFileError with one sentence.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "memory/kv_memory.h"
#include "model/model_file.h"

namespace pyllong::chat {

struct MemoryFileError : Error {
    using Error::Error;
};

struct MemoryDims {  // memory.py _model_dims
    std::string arch;
    int64_t n_layer = 0, n_head_kv = 0, head_dim = 0, n_embd = 0;
    bool operator==(const MemoryDims& o) const {
        return arch == o.arch && n_layer == o.n_layer && n_head_kv == o.n_head_kv && head_dim == o.head_dim &&
               n_embd == o.n_embd;
    }
    std::string str() const;
};

MemoryDims model_dims(const ModelFile& model);

// memory.py model_fingerprint: sha256 (hex) of the file's size in decimal, its first 64 KiB and
// its last 1 MiB.
std::string memory_model_fingerprint(const std::string& path);

struct MemoryFile {
    std::string model;  // fingerprint
    MemoryDims dims;
    std::string mode, index;
    std::vector<int64_t> layers;
    int64_t tokens = 0, k = 64, n_probe = 8, ivf_min = 4096;
    std::optional<int64_t> cap, window, last_context_length, distance;
    std::vector<std::vector<uint16_t>> keys, values;  // per slot, (tokens, kv_dim) f16
};

// Memory.load, with its mode / k / cap overrides (empty / 0 / nullopt = the file's).
MemoryFile load_memory_file(const std::string& path, const std::string& mode, int64_t k, std::optional<int64_t> cap);

// Memory.save of `memory` (its options as `params`) for the model at model_path.
void save_memory_file(const std::string& path, const KVMemory& memory, const ModelFile& model,
                      const std::string& model_path);

}  // namespace pyllong::chat
