// ModelFile::packed: repacked copies of the weight matrices for the CPU kernels, made once
// per model and shared by its contexts.
#include <algorithm>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "core/page_buffer.h"
#include "model/model_file.h"
#include "quant/repack.h"
#include "quant/vec_dot.h"

namespace pyllong {

struct ModelFile::PackCache {
    std::mutex mu;
    std::unordered_map<const TensorInfo*, PageBuffer> copies;
};

std::shared_ptr<ModelFile::PackCache> ModelFile::new_pack_cache() { return std::make_shared<PackCache>(); }

const void* ModelFile::packed(const TensorInfo& t) const {
    const auto type = static_cast<GGMLType>(t.type);
    if (!pack_cache_ || !quant::repack_enabled() || !quant::has_packed_layout(type) || t.n_dims > 2 ||
        !quant::dot_table(quant::default_simd_path()).packed(type))
        return nullptr;
    std::lock_guard<std::mutex> lock(pack_cache_->mu);
    auto [it, fresh] = pack_cache_->copies.try_emplace(&t);
    if (fresh) {
        const int64_t n_in = t.ne[0], n_out = t.n_dims > 1 ? t.ne[1] : 1;
        it->second = PageBuffer(quant::packed_bytes(type, n_in, n_out));
        // Split over the cores: a 1B model's copy takes seconds on one (mostly first-touch
        // page zeroing and the byte shuffle, both memory-bound per core).
        const int64_t n_groups = (n_out + quant::kPackRows - 1) / quant::kPackRows;
        const int nth = static_cast<int>(std::clamp<int64_t>(
            std::min<int64_t>(std::thread::hardware_concurrency(), n_groups / 64), 1, 8));
        const int64_t per = (n_groups + nth - 1) / nth;
        std::vector<std::thread> workers;
        for (int i = 1; i < nth; ++i)
            workers.emplace_back([&, i] { quant::repack_rows(type, t.data, 0, n_in, n_out, it->second.data(), i * per, (i + 1) * per); });
        quant::repack_rows(type, t.data, 0, n_in, n_out, it->second.data(), 0, per);
        for (auto& w : workers) w.join();
        // Where decode (one token) reads the copy too, the mapped original need not stay
        // resident (peak memory stays about one model, not two); a later read pages it back
        // in. Types whose GEMV keeps the rows kernel (Q6_K) keep their pages.
        if (quant::dot_table(quant::default_simd_path()).packed_for(type, 1))
            for (const auto& [info, file] : all_tensors_)
                if (info == &t) file->drop_pages(t.data, t.nbytes);
    }
    return it->second.empty() ? nullptr : it->second.data();
}

}  // namespace pyllong
