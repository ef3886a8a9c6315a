#include "model/state.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/sha256.h"

namespace pyllong {

namespace {

constexpr char kMagic[8] = {'P', 'Y', 'L', 'L', 'S', 'T', 'A', 'T'};
constexpr size_t kDigest = 32;

template <class T>
void put(std::vector<uint8_t>& out, T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);  // the library targets little-endian hosts only
    out.insert(out.end(), p, p + sizeof(T));
}

template <class T>
T get(const uint8_t* data, size_t offset) {
    T v;
    std::memcpy(&v, data + offset, sizeof(T));
    return v;
}

[[noreturn]] void fail(const std::string& what) { throw StateError("state file: " + what); }

std::string hex(const uint8_t* p, size_t n) {
    static const char* d = "0123456789abcdef";
    std::string s;
    for (size_t i = 0; i < n; ++i) s += {d[p[i] >> 4], d[p[i] & 15]};
    return s;
}

int64_t rows_per_layer(const KVCache& c) { return c.has_grouped_keys() ? 3 : 2; }

// Layers on the GPU keep their cache on the device, which this format does not carry yet.
void require_host_cache(const Context& ctx) {
    if (ctx.n_gpu_layers() != 0)
        throw StateError("state files hold the host KV cache only; this context keeps " +
                         std::to_string(ctx.n_gpu_layers()) + " layer(s) on the GPU: use n_gpu_layers=0 to save "
                         "or load a state");
}

// A cache row written by KVCache::encode holds only finite numbers; anything else came
// from a hostile or broken file and would turn every later logit into NaN.
bool row_is_finite(KVType type, const uint8_t* row, int64_t kv_dim) {
    auto finite16 = [](uint16_t h) { return (h & 0x7c00) != 0x7c00; };
    if (type == KVType::F16) {
        for (int64_t i = 0; i < kv_dim; ++i)
            if (!finite16(get<uint16_t>(row, 2 * i))) return false;
        return true;
    }
    constexpr size_t kBlock = 2 + 32;  // q8_0: f16 scale + 32 int8
    for (int64_t b = 0; b < kv_dim / 32; ++b)
        if (!finite16(get<uint16_t>(row, b * kBlock))) return false;
    return true;
}

}  // namespace

std::array<uint8_t, 32> model_fingerprint(const ModelFile& model) {
    const HParams& hp = model.hparams();
    Sha256 h;
    auto add = [&](const void* p, size_t n) { h.update(p, n); };
    auto add_i = [&](int64_t v) { add(&v, sizeof v); };
    auto add_f = [&](double v) { add(&v, sizeof v); };
    add("pyllong-model-v1", 16);
    add(hp.arch->name, std::strlen(hp.arch->name) + 1);
    for (int64_t v : {hp.n_layer, hp.n_ctx_train, hp.n_embd, hp.n_ff, hp.n_head, hp.n_head_kv, hp.head_dim, hp.n_rot,
                      hp.n_vocab, hp.sliding_window})
        add_i(v);
    for (double v : {hp.rope_freq_base, hp.rope_freq_scale, hp.norm_eps}) add_f(v);
    constexpr uint64_t kSample = 4096;
    for (const auto& shard : model.shards())
        for (const TensorInfo& t : shard->tensors()) {
            add(t.name.c_str(), t.name.size() + 1);
            add(&t.type, sizeof t.type);
            add(t.ne, sizeof t.ne);
            add(&t.nbytes, sizeof t.nbytes);
            if (!t.data) continue;
            const uint64_t head = std::min(t.nbytes, kSample);
            add(t.data, head);
            if (t.nbytes > head) {
                const uint64_t tail = std::min(t.nbytes - head, kSample);
                add(t.data + t.nbytes - tail, tail);
            }
        }
    return h.digest();
}

uint64_t state_max_bytes(const Context& ctx) {
    const KVCache& c = ctx.kv_cache();
    const uint64_t per_cell = 8 + static_cast<uint64_t>(ctx.model().hparams().n_layer * rows_per_layer(c) * c.row_bytes());
    return kStateHeaderBytes + static_cast<uint64_t>(c.n_ctx()) * per_cell + kStateMaxExtra + kDigest;
}

std::vector<uint8_t> save_state(const Context& ctx, const int32_t* tokens, int64_t n_tokens, const uint8_t* extra,
                                size_t extra_len) {
    require_host_cache(ctx);
    const KVCache& c = ctx.kv_cache();
    const int64_t n = c.n_used(), n_layer = ctx.model().hparams().n_layer;
    if (n_tokens != n)
        throw InvalidArgument("save_state: " + std::to_string(n_tokens) + " token ids given for " + std::to_string(n) +
                              " cached cells");
    if (extra_len > kStateMaxExtra)
        throw InvalidArgument("save_state: the extra blob is " + std::to_string(extra_len) + " bytes (at most " +
                              std::to_string(kStateMaxExtra) + ")");
    const auto fp = model_fingerprint(ctx.model());
    const size_t rows = static_cast<size_t>(n * c.row_bytes());  // bytes of one layer's K (or V) in use
    std::vector<uint8_t> out;
    out.reserve(kStateHeaderBytes + 8 * n + n_layer * rows_per_layer(c) * rows + extra_len + kDigest);
    for (char ch : kMagic) out.push_back(static_cast<uint8_t>(ch));
    put<uint32_t>(out, kStateVersion);
    put<uint32_t>(out, c.type() == KVType::F16 ? 0 : 1);
    out.insert(out.end(), fp.begin(), fp.end());
    put<uint64_t>(out, n_layer);
    put<uint64_t>(out, c.kv_dim());
    put<uint64_t>(out, n);
    const SelfExtend& se = ctx.self_extend();
    put<int64_t>(out, se.enabled() ? se.group : 0);
    put<int64_t>(out, se.enabled() ? se.window : 0);
    put<uint64_t>(out, extra_len);
    const auto* tok = reinterpret_cast<const uint8_t*>(tokens);
    out.insert(out.end(), tok, tok + 4 * n);
    const auto* pos = reinterpret_cast<const uint8_t*>(c.positions());
    out.insert(out.end(), pos, pos + 4 * n);
    for (int64_t l = 0; l < n_layer; ++l) {  // cells of one layer are contiguous
        out.insert(out.end(), c.k_row(l, 0), c.k_row(l, 0) + rows);
        out.insert(out.end(), c.v_row(l, 0), c.v_row(l, 0) + rows);
        if (c.has_grouped_keys()) out.insert(out.end(), c.kg_row(l, 0), c.kg_row(l, 0) + rows);
    }
    if (extra_len) out.insert(out.end(), extra, extra + extra_len);
    const auto digest = Sha256::of(out.data(), out.size());
    out.insert(out.end(), digest.begin(), digest.end());
    return out;
}

CheckedState check_state(const Context& ctx, const uint8_t* data, size_t size) {
    require_host_cache(ctx);
    // 1. Framing: nothing below trusts a field before the checksum over the whole file holds.
    if (size < kStateHeaderBytes + kDigest)
        fail("only " + std::to_string(size) + " bytes; a state file has at least " +
             std::to_string(kStateHeaderBytes + kDigest) + " (truncated?)");
    if (std::memcmp(data, kMagic, 8) != 0) fail("bad magic: this is not a pyllong state file (expected \"PYLLSTAT\")");
    const uint32_t version = get<uint32_t>(data, 8);
    if (version != kStateVersion)
        fail("format version " + std::to_string(version) + " is not supported (this build reads version " +
             std::to_string(kStateVersion) + ")");
    const auto digest = Sha256::of(data, size - kDigest);
    if (std::memcmp(digest.data(), data + size - kDigest, kDigest) != 0)
        fail("checksum mismatch: the file is truncated or corrupted (" + std::to_string(size) + " bytes)");

    // 2. Does it belong to this context?
    const KVCache& c = ctx.kv_cache();
    const HParams& hp = ctx.model().hparams();
    const uint32_t type = get<uint32_t>(data, 12);
    if (type > 1) fail("unknown kv type " + std::to_string(type) + " at offset 12");
    const auto fp = model_fingerprint(ctx.model());
    if (std::memcmp(fp.data(), data + 16, 32) != 0)
        fail("it was saved from another model (fingerprint " + hex(data + 16, 8) + "…, this model's is " +
             hex(fp.data(), 8) + "…); load it with the model that saved it");
    const KVType kv = type == 0 ? KVType::F16 : KVType::Q8_0;
    if (kv != c.type())
        fail(std::string("it holds a ") + kv_type_name(kv) + " KV cache but this context's is " + kv_type_name(c.type()) +
             "; create the Model with kv_type=\"" + kv_type_name(kv) + "\"");
    const uint64_t n_layer = get<uint64_t>(data, 48), kv_dim = get<uint64_t>(data, 56);
    if (n_layer != static_cast<uint64_t>(hp.n_layer) || kv_dim != static_cast<uint64_t>(c.kv_dim()))
        fail("shape (" + std::to_string(n_layer) + " layers, kv_dim " + std::to_string(kv_dim) + ") differs from this model's (" +
             std::to_string(hp.n_layer) + ", " + std::to_string(c.kv_dim()) + ")");
    const uint64_t n_used = get<uint64_t>(data, 64);
    if (n_used > static_cast<uint64_t>(c.n_ctx()))
        fail("it holds " + std::to_string(n_used) + " tokens but this context has n_ctx " + std::to_string(c.n_ctx()) +
             "; create the Model with n_ctx >= " + std::to_string(n_used));
    const int64_t g = get<int64_t>(data, 72), w = get<int64_t>(data, 80);
    const SelfExtend& se = ctx.self_extend();
    const int64_t my_g = se.enabled() ? se.group : 0, my_w = se.enabled() ? se.window : 0;
    if (g != my_g || w != my_w)
        fail("it was saved with self_extend " + (w ? "(" + std::to_string(g) + ", " + std::to_string(w) + ")" : "off") +
             " but this context has " + (my_w ? "(" + std::to_string(my_g) + ", " + std::to_string(my_w) + ")" : "off"));
    const uint64_t extra_len = get<uint64_t>(data, 88);
    if (extra_len > kStateMaxExtra)
        fail("extra section of " + std::to_string(extra_len) + " bytes exceeds the cap of " + std::to_string(kStateMaxExtra));
    // Every factor is now bounded (n_used <= 2^24, rows of this model): no overflow.
    const uint64_t rows = n_used * static_cast<uint64_t>(c.row_bytes());
    const uint64_t expect = kStateHeaderBytes + 8 * n_used + n_layer * rows_per_layer(c) * rows + extra_len + kDigest;
    if (size != expect)
        fail("size " + std::to_string(size) + " bytes does not match its header (" + std::to_string(expect) + " expected)");

    // 3. The contents.
    size_t off = kStateHeaderBytes;
    CheckedState st;
    st.tokens.resize(n_used);
    if (n_used) std::memcpy(st.tokens.data(), data + off, 4 * n_used);  // an empty vector's data() may be null
    off += 4 * n_used;
    for (uint64_t i = 0; i < n_used; ++i)
        if (st.tokens[i] < 0 || st.tokens[i] >= hp.n_vocab)
            fail("token id " + std::to_string(st.tokens[i]) + " at index " + std::to_string(i) + " is outside [0, " +
                 std::to_string(hp.n_vocab) + ")");
    std::vector<int32_t> pos(n_used);
    if (n_used) std::memcpy(pos.data(), data + off, 4 * n_used);
    off += 4 * n_used;
    // Context::eval places new tokens at n_past + i, so a cache is always contiguous from 0.
    for (uint64_t i = 0; i < n_used; ++i)
        if (pos[i] != static_cast<int32_t>(i))
            fail("cell " + std::to_string(i) + " has position " + std::to_string(pos[i]) + "; positions must be 0.." +
                 std::to_string(n_used - 1));
    const size_t layer_bytes = rows_per_layer(c) * rows;
    for (size_t i = 0; i < n_layer * rows_per_layer(c) * n_used; ++i)
        if (!row_is_finite(kv, data + off + i * c.row_bytes(), c.kv_dim()))
            fail("cache row " + std::to_string(i) + " holds Inf or NaN (offset " +
                 std::to_string(off + i * c.row_bytes()) + ")");
    st.extra.assign(data + off + n_layer * layer_bytes, data + off + n_layer * layer_bytes + extra_len);
    st.rows_offset = off;
    return st;
}

void apply_state(Context& ctx, const uint8_t* data, const CheckedState& st) {
    KVCache& c = ctx.kv_cache();
    const int64_t n = static_cast<int64_t>(st.tokens.size()), n_layer = ctx.model().hparams().n_layer;
    const size_t rows = static_cast<size_t>(n * c.row_bytes()), layer_bytes = rows_per_layer(c) * rows;
    for (int64_t l = 0; l < n_layer; ++l) {
        const uint8_t* p = data + st.rows_offset + l * layer_bytes;
        c.put_rows(l, n, p, p + rows, c.has_grouped_keys() ? p + 2 * rows : nullptr);
    }
    std::vector<int32_t> pos(static_cast<size_t>(n));  // check_state required positions 0..n-1
    for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(i);
    c.set_positions(0, pos.data(), n);
    c.set_used(n);
}

}  // namespace pyllong
