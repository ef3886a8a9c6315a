// A model on disk: one GGUF file or a split set of shards, with validated
// hyper-parameters, vocabulary and tensor table (hardening items 11-13, 23-25).
// Immutable once opened; the forward pass reads weights through `tensor()`.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf.h"
#include "model/hparams.h"
#include "tokenizer/vocab.h"

namespace pyllong {

struct ModelFileOptions {
    bool check_tensor_data = true;  // scan block scales and norms for NaN/Inf at load
};

class ModelFile {
public:
    static std::shared_ptr<ModelFile> open(const std::string& path, const ModelFileOptions& opt = {});
    // For tests and fuzzing: a single in-memory file.
    static std::shared_ptr<ModelFile> from_gguf(std::shared_ptr<GGUFFile> f, const ModelFileOptions& opt = {});

    const GGUFFile& gguf() const { return *shards_.front(); }
    const std::vector<std::shared_ptr<GGUFFile>>& shards() const { return shards_; }
    const HParams& hparams() const { return hp_; }
    const Vocab& vocab() const { return vocab_; }
    bool tied_embeddings() const { return tensor("output.weight") == nullptr; }

    const TensorInfo* tensor(const std::string& name) const;        // nullptr if absent
    const TensorInfo& layer_tensor(int64_t layer, const char* name) const;  // must exist
    int64_t n_params() const;
    const std::vector<std::string>& warnings() const { return warnings_; }

    // The matrix t repacked for the CPU kernels (quant/repack.h), or nullptr when no layout
    // or kernel exists for its type on the default SIMD path, or PYLLONG_REPACK=0. Made on
    // the first request (thread-safe), then shared by every context of the model; the
    // mapped original stays valid (embedding rows, other paths, the GPU upload).
    const void* packed(const TensorInfo& t) const;

private:
    struct PackCache;
    static std::shared_ptr<PackCache> new_pack_cache();
    std::shared_ptr<PackCache> pack_cache_;  // created with the ModelFile
    void validate(const ModelFileOptions& opt);

    std::vector<std::shared_ptr<GGUFFile>> shards_;
    std::vector<std::pair<const TensorInfo*, const GGUFFile*>> all_tensors_;
    std::unordered_map<std::string, size_t> by_name_;
    HParams hp_;
    Vocab vocab_;
    std::vector<std::string> warnings_;
};

}  // namespace pyllong
