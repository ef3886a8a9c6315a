#include "model/model_file.h"

#include <cstdio>
#include <set>

#include "core/error.h"
#include "quant/scan.h"

namespace pyllong {

namespace {

constexpr int64_t kMaxShards = 10000;

// "dir/name-00001-of-00003.gguf" -> "dir/name"; empty if the path does not follow the
// llama.cpp split naming.
std::string split_prefix(const std::string& path, int64_t count) {
    char tail[64];
    std::snprintf(tail, sizeof tail, "-%05d-of-%05d.gguf", 1, static_cast<int>(count));
    const std::string t(tail);
    if (path.size() <= t.size() || path.compare(path.size() - t.size(), t.size(), t) != 0) return {};
    return path.substr(0, path.size() - t.size());
}

std::string shard_path(const std::string& prefix, int64_t no, int64_t count) {
    char tail[64];
    std::snprintf(tail, sizeof tail, "-%05d-of-%05d.gguf", static_cast<int>(no + 1), static_cast<int>(count));
    return prefix + tail;
}

struct SplitInfo { int64_t no = 0, count = 1; };

SplitInfo read_split(const GGUFFile& f) {
    SplitInfo s;
    const bool has_count = f.find("split.count") != nullptr, has_no = f.find("split.no") != nullptr;
    if (!has_count && !has_no) return s;
    if (has_count != has_no)
        throw GGUFError(f.path() + ": split metadata is incomplete: 'split.count' and 'split.no' must both be present");
    s.count = *f.get_int("split.count");
    s.no = *f.get_int("split.no");
    const GGUFKV* kv = f.find("split.count");
    if (s.count < 1 || s.count > kMaxShards)
        throw GGUFError(f.where("metadata key 'split.count'", kv->offset) + ": " + std::to_string(s.count) +
                        " is outside [1, " + std::to_string(kMaxShards) + "]");
    if (s.no < 0 || s.no >= s.count)
        throw GGUFError(f.where("metadata key 'split.no'", f.find("split.no")->offset) + ": shard number " +
                        std::to_string(s.no) + " is outside [0, " + std::to_string(s.count) + ")");
    return s;
}

}  // namespace

std::shared_ptr<ModelFile> ModelFile::open(const std::string& path, const ModelFileOptions& opt) {
    auto first = GGUFFile::open(path);
    const SplitInfo split = read_split(*first);
    std::shared_ptr<ModelFile> m(new ModelFile());
    m->pack_cache_ = new_pack_cache();
    m->shards_.push_back(first);
    if (split.count > 1) {
        if (split.no != 0)
            throw GGUFError(path + ": this is shard " + std::to_string(split.no + 1) + " of " + std::to_string(split.count) +
                            "; open the first shard (-00001-of-" + std::to_string(split.count) + ".gguf)");
        const std::string prefix = split_prefix(path, split.count);
        if (prefix.empty())
            throw GGUFError(path + ": split.count is " + std::to_string(split.count) +
                            " but the file name does not end in -00001-of-NNNNN.gguf, so the other shards cannot be found");
        for (int64_t i = 1; i < split.count; ++i) {
            const std::string sp = shard_path(prefix, i, split.count);
            std::shared_ptr<GGUFFile> shard;
            try {
                shard = GGUFFile::open(sp);
            } catch (const IOError& e) {
                throw GGUFError(path + ": shard " + std::to_string(i + 1) + " of " + std::to_string(split.count) +
                                " is missing or unreadable: " + e.what());
            }
            const SplitInfo s = read_split(*shard);
            if (s.count != split.count || s.no != i)
                throw GGUFError(sp + ": split metadata says shard " + std::to_string(s.no + 1) + " of " +
                                std::to_string(s.count) + ", expected shard " + std::to_string(i + 1) + " of " +
                                std::to_string(split.count));
            m->shards_.push_back(shard);
        }
    }
    m->validate(opt);
    return m;
}

std::shared_ptr<ModelFile> ModelFile::from_gguf(std::shared_ptr<GGUFFile> f, const ModelFileOptions& opt) {
    const SplitInfo split = read_split(*f);
    if (split.count > 1)
        throw GGUFError(f->path() + ": a split model (" + std::to_string(split.count) + " shards) must be opened from disk");
    std::shared_ptr<ModelFile> m(new ModelFile());
    m->pack_cache_ = new_pack_cache();
    m->shards_.push_back(std::move(f));
    m->validate(opt);
    return m;
}

const TensorInfo* ModelFile::tensor(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : all_tensors_[it->second].first;
}

const TensorInfo& ModelFile::layer_tensor(int64_t layer, const char* name) const {
    const std::string full = "blk." + std::to_string(layer) + "." + name;
    const TensorInfo* t = tensor(full);
    if (!t) throw GGUFError(gguf().path() + ": missing tensor '" + full + "'");
    return *t;
}

int64_t ModelFile::n_params() const {
    int64_t n = 0;
    for (const auto& t : all_tensors_) n += t.first->n_elements;
    return n;
}

void ModelFile::validate(const ModelFileOptions& opt) {
    const GGUFFile& f = gguf();
    // Collect tensors over all shards; names must be unique across the set.
    for (const auto& s : shards_)
        for (const auto& t : s->tensors()) {
            if (!by_name_.emplace(t.name, all_tensors_.size()).second)
                throw GGUFError(s->where("tensor '" + t.name + "'", t.info_offset) + ": duplicate tensor name across shards");
            all_tensors_.emplace_back(&t, s.get());
        }
    if (shards_.size() > 1) {
        auto declared = f.get_int("split.tensors.count");
        if (declared && *declared != static_cast<int64_t>(all_tensors_.size()))
            throw GGUFError(f.where("metadata key 'split.tensors.count'", f.find("split.tensors.count")->offset) +
                            ": declares " + std::to_string(*declared) + " tensors, the shards hold " +
                            std::to_string(all_tensors_.size()));
    }

    hp_ = read_hparams(f);
    vocab_ = read_vocab(f);
    const ArchTable& arch = *hp_.arch;

    std::set<std::string> expected;
    auto check = [&](const TensorSpec& spec, const std::string& name) {
        expected.insert(name);
        auto it = by_name_.find(name);
        if (it == by_name_.end()) {
            if (spec.required)
                throw GGUFError(f.path() + ": required tensor '" + name + "' is missing (architecture " + arch.name + ")");
            return;
        }
        const TensorInfo& t = *all_tensors_[it->second].first;
        const GGUFFile& owner = *all_tensors_[it->second].second;
        const int64_t ne0 = dim_value(spec.ne0, hp_), ne1 = dim_value(spec.ne1, hp_);
        const bool ok = spec.ne1 == Dim::One ? (t.n_dims == 1 && t.ne[0] == ne0)
                                             : (t.n_dims == 2 && t.ne[0] == ne0 && t.ne[1] == ne1);
        if (!ok) {
            std::string got = "(";
            for (uint32_t d = 0; d < t.n_dims; ++d) got += (d ? ", " : "") + std::to_string(t.ne[d]);
            got += ")";
            std::string want = spec.ne1 == Dim::One ? "(" + std::to_string(ne0) + ")"
                                                    : "(" + std::to_string(ne0) + ", " + std::to_string(ne1) + ")";
            throw GGUFError(owner.where("tensor '" + name + "'", t.info_offset) + ": shape " + got + " does not match " +
                            want + " from the hyper-parameters");
        }
        if (spec.is_norm && t.type != static_cast<uint32_t>(GGMLType::F32))
            throw GGUFError(owner.where("tensor '" + name + "'", t.info_offset) + ": norm weights must be F32, found " +
                            type_name(t.type));
        if (opt.check_tensor_data) {
            const TypeTraits* tt = type_traits(t.type);
            const int64_t n_blocks = t.n_elements / tt->block_size;
            if (t.type == static_cast<uint32_t>(GGMLType::F32) && spec.is_norm) {
                const int64_t bad = first_nonfinite_f32(t.data, t.n_elements);
                if (bad >= 0)
                    throw GGUFError(owner.where("tensor '" + name + "' data", owner.data_offset() + t.offset + 4 * bad) +
                                    ": element " + std::to_string(bad) + " is NaN or Inf");
            }
            const int64_t bad = first_nonfinite_scale_block(t.type, t.data, n_blocks);
            if (bad >= 0)
                throw GGUFError(owner.where("tensor '" + name + "' data",
                                            owner.data_offset() + t.offset + tt->type_size * bad) +
                                ": block " + std::to_string(bad) + " has a NaN or Inf scale");
        }
    };
    for (const auto& spec : arch.global) check(spec, spec.name);
    for (int64_t l = 0; l < hp_.n_layer; ++l)
        for (const auto& spec : arch.layer) check(spec, "blk." + std::to_string(l) + "." + spec.name);

    for (const auto& [t, owner] : all_tensors_)
        if (!expected.count(t->name))
            warnings_.push_back("unknown tensor '" + t->name + "' is ignored");
}

}  // namespace pyllong
