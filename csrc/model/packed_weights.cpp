// ModelFile::packed: repacked copies of the weight matrices for the CPU kernels, made once
// per model and shared by its contexts.
#include <algorithm>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/page_buffer.h"
#include "model/model_file.h"
#include "quant/repack.h"
#include "quant/vec_dot.h"

namespace pyllong {

// One arena for every matrix that can be repacked, laid out at the first request: pages
// of matrices no context asks for (the untied token embedding, layers on a GPU) are never
// touched and cost address space only, and huge pages are not rounded up per matrix
// (155 matrices of a 1B model each rounded to 2 MiB wasted ~150 MiB).
struct ModelFile::PackCache {
    std::mutex mu;
    bool laid_out = false;
    PageBuffer arena;
    std::unordered_map<const TensorInfo*, size_t> offset;  // into arena
    std::unordered_set<const TensorInfo*> done;
};

std::shared_ptr<ModelFile::PackCache> ModelFile::new_pack_cache() { return std::make_shared<PackCache>(); }

namespace {
bool packable(const TensorInfo& t) {
    const auto type = static_cast<GGMLType>(t.type);
    return t.n_dims <= 2 && quant::has_packed_layout(type) && quant::dot_table(quant::default_simd_path()).packed(type);
}
}  // namespace

const void* ModelFile::packed(const TensorInfo& t) const {
    const auto type = static_cast<GGMLType>(t.type);
    if (!pack_cache_ || !quant::repack_enabled() || !packable(t)) return nullptr;
    PackCache& pc = *pack_cache_;
    std::lock_guard<std::mutex> lock(pc.mu);
    if (!pc.laid_out) {
        size_t total = 0;
        for (const auto& [info, file] : all_tensors_) {
            if (!packable(*info)) continue;
            pc.offset[info] = total;
            total += (quant::packed_bytes(static_cast<GGMLType>(info->type), info->ne[0],
                                          info->n_dims > 1 ? info->ne[1] : 1) + 63) / 64 * 64;
        }
        pc.arena = PageBuffer(total);
        pc.laid_out = true;
    }
    const auto at = pc.offset.find(&t);
    if (at == pc.offset.end()) return nullptr;  // not a tensor of this model
    uint8_t* dst = pc.arena.data() + at->second;
    if (pc.done.insert(&t).second) {
        const int64_t n_in = t.ne[0], n_out = t.n_dims > 1 ? t.ne[1] : 1;
        // Split over the cores: a 1B model's copy takes seconds on one (mostly first-touch
        // page zeroing and the byte shuffle, both memory-bound per core).
        const int64_t n_groups = (n_out + quant::kPackRows - 1) / quant::kPackRows;
        const int nth = static_cast<int>(std::clamp<int64_t>(
            std::min<int64_t>(std::thread::hardware_concurrency(), n_groups / 64), 1, 8));
        const int64_t per = (n_groups + nth - 1) / nth;
        std::vector<std::thread> workers;
        for (int i = 1; i < nth; ++i)
            workers.emplace_back([&, i] { quant::repack_rows(type, t.data, 0, n_in, n_out, dst, i * per, (i + 1) * per); });
        quant::repack_rows(type, t.data, 0, n_in, n_out, dst, 0, per);
        for (auto& w : workers) w.join();
        // Where decode (one token) reads the copy too, the mapped original need not stay
        // resident (peak memory stays about one model, not two); a later read pages it back
        // in. Types whose GEMV keeps the rows kernel keep their pages.
        if (quant::dot_table(quant::default_simd_path()).packed_for(type, 1))
            for (const auto& [info, file] : all_tensors_)
                if (info == &t) file->drop_pages(t.data, t.nbytes);
    }
    return dst;
}

}  // namespace pyllong
