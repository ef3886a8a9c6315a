#include "model/memory_budget.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "core/error.h"

namespace pyllong {

namespace {

// "MemAvailable:   123456 kB" in /proc/meminfo.
uint64_t meminfo_available() {
    std::ifstream f("/proc/meminfo");
    std::string key, unit;
    uint64_t kb = 0;
    while (f >> key >> kb >> unit)
        if (key == "MemAvailable:") return kb * 1024;
    return UINT64_MAX;
}

uint64_t read_number(const char* path) {  // "max" or unreadable -> UINT64_MAX
    std::ifstream f(path);
    std::string s;
    if (!(f >> s) || s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return UINT64_MAX;
    return std::strtoull(s.c_str(), nullptr, 10);
}

std::string human(uint64_t b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(b);
    int u = 0;
    while (v >= 1024.0 && u < 4) v /= 1024.0, ++u;
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

}  // namespace

uint64_t context_bytes(const ContextParams& p, const HParams& hp) {
    const uint64_t n_ctx = static_cast<uint64_t>(p.n_ctx), kv_dim = static_cast<uint64_t>(hp.n_head_kv * hp.head_dim);
    const uint64_t row = static_cast<uint64_t>(kv_row_bytes(p.kv_type, static_cast<int64_t>(kv_dim)));
    const uint64_t planes = p.self_extend.enabled() ? 3 : 2;  // K, V (+ grouped K)
    // n_ctx <= 2^24 and the hparams are validated, so none of this overflows 64 bits.
    // Layers offloaded to the GPU keep their cache there (the CUDA backend checks device memory).
    const int64_t n_gpu = p.n_gpu_layers < 0 || p.n_gpu_layers > hp.n_layer ? hp.n_layer : p.n_gpu_layers;
    uint64_t bytes = static_cast<uint64_t>(hp.n_layer - n_gpu) * n_ctx * row * planes + 4 * n_ctx;
    const uint64_t nb = static_cast<uint64_t>(std::min(p.n_batch, p.n_ctx));
    const uint64_t q_dim = static_cast<uint64_t>(hp.n_head * hp.head_dim), E = hp.n_embd, F = hp.n_ff;
    const uint64_t per_token = 3 * E + 2 * q_dim + 2 * kv_dim + (q_dim + 2 * kv_dim) + 3 * F +
                               (p.self_extend.enabled() ? q_dim + kv_dim : 0);  // context.cpp's scratch
    return bytes + nb * per_token * sizeof(float);
}

uint64_t available_memory() {
    uint64_t avail = meminfo_available();
    const uint64_t max = read_number("/sys/fs/cgroup/memory.max"), cur = read_number("/sys/fs/cgroup/memory.current");
    if (max != UINT64_MAX && cur != UINT64_MAX) avail = std::min(avail, max > cur ? max - cur : 0);
    if (const char* cap = std::getenv("PYLLONG_MEMORY_LIMIT"); cap && *cap) {
        char* end = nullptr;
        const uint64_t v = std::strtoull(cap, &end, 10);
        if (end && *end == '\0') avail = std::min(avail, v);
    }
    return avail;
}

void check_context_memory(const ContextParams& p, const HParams& hp) {
    const uint64_t need = context_bytes(p, hp), avail = available_memory();
    if (need <= avail) return;
    throw OutOfMemory("n_ctx " + std::to_string(p.n_ctx) + " needs " + std::to_string(need) + " bytes (" + human(need) +
                      ") for the KV cache and scratch, but only " + std::to_string(avail) + " bytes (" + human(avail) +
                      ") are available; use a smaller n_ctx" +
                      (p.kv_type == KVType::F16 ? " or kv_type q8_0" : ""));
}

}  // namespace pyllong
