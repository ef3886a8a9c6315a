#include "model/memory_budget.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "core/error.h"

namespace pyllong {

namespace {

// Files are read with stdio and numbers parsed with strtoull: on one lent machine the
// iostreams of a Python extension misread /proc/meminfo (MemAvailable came out 0).
std::string read_text(const char* path) {
    std::string text;
    if (std::FILE* f = std::fopen(path, "r")) {
        char buf[4096];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
        std::fclose(f);
    }
    return text;
}

// The number after `key` (at a line start) in text such as "MemAvailable:   123456 kB", or UINT64_MAX.
uint64_t field(const std::string& text, const std::string& key) {
    for (size_t at = 0; at < text.size();) {
        const size_t eol = std::min(text.find('\n', at), text.size());
        if (text.compare(at, key.size(), key) == 0) {
            const char* p = text.c_str() + at + key.size();
            char* end = nullptr;
            const uint64_t v = std::strtoull(p, &end, 10);
            return end != p ? v : UINT64_MAX;
        }
        at = eol + 1;
    }
    return UINT64_MAX;
}

uint64_t meminfo_available() {
    const uint64_t kb = field(read_text("/proc/meminfo"), "MemAvailable:");
    return kb == UINT64_MAX ? UINT64_MAX : kb * 1024;
}

uint64_t read_number(const char* path) {  // "max" or unreadable -> UINT64_MAX
    const std::string s = read_text(path);
    if (s.empty() || s[0] < '0' || s[0] > '9') return UINT64_MAX;
    return std::strtoull(s.c_str(), nullptr, 10);
}

// "inactive_file 123" in the cgroup's memory.stat: page cache the kernel reclaims first.
uint64_t cgroup_inactive_file() {
    const uint64_t v = field(read_text("/sys/fs/cgroup/memory.stat"), "inactive_file ");
    return v == UINT64_MAX ? 0 : v;
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

namespace {

// The smallest of the known limits, and which one it is (for the error message).
struct Available {
    uint64_t bytes = UINT64_MAX;
    std::string source = "no limit known";
    void cap(uint64_t v, std::string what) {
        if (v < bytes) { bytes = v; source = std::move(what); }
    }
};

Available limits() {
    Available a;
    a.cap(meminfo_available(), "MemAvailable in /proc/meminfo");
    const uint64_t max = read_number("/sys/fs/cgroup/memory.max"), cur = read_number("/sys/fs/cgroup/memory.current");
    if (max != UINT64_MAX && cur != UINT64_MAX) {
        // memory.current counts page cache too, which can fill the cgroup to its limit while
        // nothing is short: subtract the reclaimable part, as kubelet's working set does.
        const uint64_t inactive = cgroup_inactive_file(), used = cur > inactive ? cur - inactive : 0;
        a.cap(max > used ? max - used : 0, "the cgroup's memory.max less its working set");
    }
    if (const char* cap = std::getenv("PYLLONG_MEMORY_LIMIT"); cap && *cap) {
        char* end = nullptr;
        const uint64_t v = std::strtoull(cap, &end, 10);
        if (end && *end == '\0') a.cap(v, "$PYLLONG_MEMORY_LIMIT");
    }
    return a;
}

}  // namespace

uint64_t available_memory() { return limits().bytes; }

void check_context_memory(const ContextParams& p, const HParams& hp) {
    const uint64_t need = context_bytes(p, hp);
    const Available avail = limits();
    if (need <= avail.bytes) return;
    throw OutOfMemory("n_ctx " + std::to_string(p.n_ctx) + " needs " + std::to_string(need) + " bytes (" + human(need) +
                      ") for the KV cache and scratch, but only " + std::to_string(avail.bytes) + " bytes (" +
                      human(avail.bytes) + ") are available (" + avail.source + "); use a smaller n_ctx" +
                      (p.kv_type == KVType::F16 ? " or kv_type q8_0" : ""));
}

}  // namespace pyllong
