#include "apps/chat/memory_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include "core/sha256.h"

namespace pyllong::chat {

namespace {

constexpr char kMagic[8] = {'P', 'Y', 'L', 'L', 'M', 'E', 'M', '\0'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHead = 16;  // magic, u32 version, u32 header length

std::string hex(const Sha256::Digest& d) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (uint8_t b : d) s += digits[b >> 4], s += digits[b & 15];
    return s;
}

// A JSON value, enough for the header (json.dumps output; anything else is malformed).
struct Json {
    enum Kind { Null, Bool, Int, Str, Arr, Obj } kind = Null;
    int64_t i = 0;
    std::string s;
    std::vector<Json> a;
    std::map<std::string, Json> o;
};

struct JsonParser {
    const std::string& t;
    size_t p = 0;
    int depth = 0;

    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error(what + " at offset " + std::to_string(p));
    }
    void ws() {
        while (p < t.size() && (t[p] == ' ' || t[p] == '\n' || t[p] == '\r' || t[p] == '\t')) ++p;
    }
    bool lit(const char* w) {
        const size_t n = std::strlen(w);
        if (t.compare(p, n, w) != 0) return false;
        p += n;
        return true;
    }
    std::string str() {
        if (p >= t.size() || t[p] != '"') fail("expected a string");
        ++p;
        std::string out;
        while (true) {
            if (p >= t.size()) fail("unterminated string");
            const char c = t[p++];
            if (c == '"') return out;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (p >= t.size()) fail("unterminated string");
            const char e = t[p++];
            switch (e) {
                case '"': case '\\': case '/': out += e; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    if (p + 4 > t.size()) fail("bad \\u escape");
                    unsigned cp = 0;
                    for (int k = 0; k < 4; ++k) {
                        const char h = t[p++];
                        cp = cp * 16 + (h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10
                                        : h >= 'A' && h <= 'F' ? h - 'A' + 10 : (fail("bad \\u escape"), 0));
                    }
                    if (cp < 0x80) out += static_cast<char>(cp);  // the header's strings are ASCII
                    else out += '?';
                    break;
                }
                default: fail("bad escape");
            }
        }
    }
    Json value() {
        if (++depth > 16) fail("nested too deep");
        ws();
        Json v;
        if (p >= t.size()) fail("unexpected end");
        const char c = t[p];
        if (c == '{') {
            v.kind = Json::Obj;
            ++p, ws();
            if (p < t.size() && t[p] == '}') ++p;
            else
                while (true) {
                    ws();
                    std::string key = str();
                    ws();
                    if (p >= t.size() || t[p++] != ':') fail("expected ':'");
                    v.o[key] = value();
                    ws();
                    if (p < t.size() && t[p] == ',') { ++p; continue; }
                    if (p < t.size() && t[p] == '}') { ++p; break; }
                    fail("expected ',' or '}'");
                }
        } else if (c == '[') {
            v.kind = Json::Arr;
            ++p, ws();
            if (p < t.size() && t[p] == ']') ++p;
            else
                while (true) {
                    v.a.push_back(value());
                    ws();
                    if (p < t.size() && t[p] == ',') { ++p; continue; }
                    if (p < t.size() && t[p] == ']') { ++p; break; }
                    fail("expected ',' or ']'");
                }
        } else if (c == '"') {
            v.kind = Json::Str, v.s = str();
        } else if (lit("null")) {
            v.kind = Json::Null;
        } else if (lit("true")) {
            v.kind = Json::Bool, v.i = 1;
        } else if (lit("false")) {
            v.kind = Json::Bool, v.i = 0;
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            const size_t start = p;
            if (t[p] == '-') ++p;
            while (p < t.size() && t[p] >= '0' && t[p] <= '9') ++p;
            if (p < t.size() && (t[p] == '.' || t[p] == 'e' || t[p] == 'E')) fail("expected an integer");
            errno = 0;
            char* end = nullptr;
            const std::string num = t.substr(start, p - start);
            v.kind = Json::Int, v.i = std::strtoll(num.c_str(), &end, 10);
            if (num == "-" || errno == ERANGE || *end) fail("bad integer");
        } else {
            fail("unexpected character");
        }
        --depth;
        return v;
    }
};

const Json& field(const Json& o, const char* key) {
    const auto it = o.o.find(key);
    if (o.kind != Json::Obj || it == o.o.end()) throw std::runtime_error(std::string("missing '") + key + "'");
    return it->second;
}
int64_t int_field(const Json& o, const char* key) {
    const Json& v = field(o, key);
    if (v.kind != Json::Int) throw std::runtime_error(std::string("'") + key + "' is not an integer");
    return v.i;
}
std::optional<int64_t> opt_int_field(const Json& o, const char* key, bool required = true) {
    if (!required && (o.kind != Json::Obj || !o.o.count(key))) return std::nullopt;
    const Json& v = field(o, key);
    if (v.kind == Json::Null) return std::nullopt;
    if (v.kind != Json::Int) throw std::runtime_error(std::string("'") + key + "' is not an integer or null");
    return v.i;
}
std::string str_field(const Json& o, const char* key) {
    const Json& v = field(o, key);
    if (v.kind != Json::Str) throw std::runtime_error(std::string("'") + key + "' is not a string");
    return v.s;
}

// json.dumps(str) with ensure_ascii: the header's strings are ASCII (hex, names).
std::string jstr(const std::string& s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') out += '\\', out += c;
        else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(c));
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}
std::string jopt(int64_t v) { return v > 0 ? std::to_string(v) : "null"; }

}  // namespace

std::string MemoryDims::str() const {
    return "{'arch': '" + arch + "', 'n_layer': " + std::to_string(n_layer) + ", 'n_head_kv': " + std::to_string(n_head_kv) +
           ", 'head_dim': " + std::to_string(head_dim) + ", 'n_embd': " + std::to_string(n_embd) + "}";
}

MemoryDims model_dims(const ModelFile& model) {
    const HParams& hp = model.hparams();
    return {hp.arch->name, hp.n_layer, hp.n_head_kv, hp.head_dim, hp.n_embd};
}

std::string memory_model_fingerprint(const std::string& path) {
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!f) throw MemoryFileError("cannot read the model file " + path + ": " + std::strerror(errno));
    if (std::fseek(f.get(), 0, SEEK_END) != 0) throw MemoryFileError("cannot read the model file " + path);
    const long size = std::ftell(f.get());
    Sha256 h;
    const std::string size_text = std::to_string(size);
    h.update(size_text.data(), size_text.size());
    std::vector<char> buf;
    auto read_at = [&](long at, long n) {
        buf.resize(static_cast<size_t>(n));
        if (std::fseek(f.get(), at, SEEK_SET) != 0 || std::fread(buf.data(), 1, buf.size(), f.get()) != buf.size())
            throw MemoryFileError("cannot read the model file " + path);
        h.update(buf.data(), buf.size());
    };
    read_at(0, std::min<long>(size, 1 << 16));
    const long tail = std::max<long>(0, size - (1 << 20));
    read_at(tail, size - tail);
    return hex(h.digest());
}

MemoryFile load_memory_file(const std::string& path, const std::string& mode, int64_t k, std::optional<int64_t> cap) {
    std::string data;
    {
        std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
        if (!f) throw MemoryFileError("cannot read memory file " + path + ": " + std::strerror(errno));
        char buf[1 << 16];
        size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) data.append(buf, n);
        if (std::ferror(f.get())) throw MemoryFileError("cannot read memory file " + path);
    }
    if (data.size() < kHead + 32 || data.compare(0, 8, kMagic, 8) != 0)
        throw MemoryFileError(path + " is not a pyllong memory file (no b'PYLLMEM\\x00' magic)");
    uint32_t version, hlen;
    std::memcpy(&version, data.data() + 8, 4);
    std::memcpy(&hlen, data.data() + 12, 4);
    if (version != kVersion)
        throw MemoryFileError(path + " is a version " + std::to_string(version) + " memory file; this pyllong-chat reads "
                              "version " + std::to_string(kVersion));
    const auto digest = Sha256::of(data.data(), data.size() - 32);
    if (std::memcmp(digest.data(), data.data() + data.size() - 32, 32) != 0)
        throw MemoryFileError(path + " is corrupted or truncated (checksum mismatch); save the memory again");
    MemoryFile m;
    int64_t kv_dim = 0;
    try {
        if (hlen > data.size() - kHead - 32) throw std::runtime_error("the header runs past the end");
        const std::string text = data.substr(kHead, hlen);
        JsonParser jp{text};
        const Json h = jp.value();
        jp.ws();
        if (jp.p != text.size()) jp.fail("extra data");
        const Json& layers = field(h, "layers");
        if (layers.kind != Json::Arr || layers.a.empty()) throw std::runtime_error("layers must be a non-empty list");
        for (const Json& l : layers.a) {
            if (l.kind != Json::Int || l.i < 0 || (!m.layers.empty() && l.i <= m.layers.back()))
                throw std::runtime_error("layers must be ascending indices >= 0");
            m.layers.push_back(l.i);
        }
        m.tokens = int_field(h, "tokens");
        const Json& dims = field(h, "dims");
        m.dims = {str_field(dims, "arch"), int_field(dims, "n_layer"), int_field(dims, "n_head_kv"),
                  int_field(dims, "head_dim"), int_field(dims, "n_embd")};
        if (m.tokens < 0 || m.dims.n_head_kv < 1 || m.dims.head_dim < 1 || m.dims.n_head_kv > (1 << 16) ||
            m.dims.head_dim > (1 << 16))
            throw std::runtime_error("layers, tokens or dims out of range");
        kv_dim = m.dims.n_head_kv * m.dims.head_dim;
        m.model = str_field(h, "model");
        if (str_field(h, "dtype") != "f16") throw std::runtime_error("dtype must be f16");
        m.mode = mode.empty() ? str_field(h, "mode") : mode;
        if (m.mode != "fot" && m.mode != "knn") throw std::runtime_error("mode must be fot or knn, got " + m.mode);
        m.k = k > 0 ? k : int_field(h, "k");
        m.cap = cap ? cap : opt_int_field(h, "cap");
        m.window = opt_int_field(h, "window");
        m.last_context_length = opt_int_field(h, "last_context_length");
        m.index = m.mode == "knn" && h.o.count("index") ? str_field(h, "index") : "exact";
        if (m.index != "exact" && m.index != "ivf") throw std::runtime_error("index must be exact or ivf");
        m.n_probe = opt_int_field(h, "n_probe", false).value_or(8);
        m.ivf_min = opt_int_field(h, "ivf_min", false).value_or(4096);
        m.distance = opt_int_field(h, "distance", false);
        for (const auto* v : {&m.cap, &m.window, &m.last_context_length, &m.distance})
            if (*v && **v < 1) throw std::runtime_error("cap, window, last_context_length and distance must be >= 1");
        if (m.k < 1 || m.n_probe < 1 || m.ivf_min < 1) throw std::runtime_error("k, n_probe and ivf_min must be >= 1");
    } catch (const std::exception& e) {
        throw MemoryFileError(path + " has a malformed header: " + e.what());
    }
    const size_t payload = data.size() - 32 - kHead - hlen;
    const uint64_t per = static_cast<uint64_t>(m.tokens) * static_cast<uint64_t>(kv_dim);
    if (m.tokens > (int64_t(1) << 40) || payload / 2 != 2 * m.layers.size() * per || payload % 2)
        throw MemoryFileError(path + ": the rows do not match the header (" + std::to_string(m.layers.size()) +
                              " layers x " + std::to_string(m.tokens) + " tokens)");
    const char* at = data.data() + kHead + hlen;
    for (size_t s = 0; s < m.layers.size(); ++s) {
        m.keys.emplace_back(per);
        m.values.emplace_back(per);
        std::memcpy(m.keys.back().data(), at, per * 2), at += per * 2;
        std::memcpy(m.values.back().data(), at, per * 2), at += per * 2;
    }
    return m;
}

void save_memory_file(const std::string& path, const KVMemory& memory, const ModelFile& model,
                      const std::string& model_path) {
    const MemoryParams& p = memory.params();
    const MemoryDims d = model_dims(model);
    std::string layers;
    for (size_t i = 0; i < p.layers.size(); ++i) layers += (i ? ", " : "") + std::to_string(p.layers[i]);
    // json.dumps(header, sort_keys=True), as Memory.save writes it.
    const std::string header =
        "{\"cap\": " + jopt(p.cap) + ", \"dims\": {\"arch\": " + jstr(d.arch) + ", \"head_dim\": " + std::to_string(d.head_dim) +
        ", \"n_embd\": " + std::to_string(d.n_embd) + ", \"n_head_kv\": " + std::to_string(d.n_head_kv) +
        ", \"n_layer\": " + std::to_string(d.n_layer) + "}, \"distance\": " + jopt(p.distance) +
        ", \"dtype\": \"f16\", \"index\": " + jstr(p.ivf ? "ivf" : "exact") + ", \"ivf_min\": " + std::to_string(p.ivf_min) +
        ", \"k\": " + std::to_string(p.k) + ", \"last_context_length\": " + std::to_string(p.last_context_length) +
        ", \"layers\": [" + layers + "], \"mode\": " + jstr(memory_mode_name(p.mode)) +
        ", \"model\": " + jstr(memory_model_fingerprint(model_path)) + ", \"n_probe\": " + std::to_string(p.n_probe) +
        ", \"tokens\": " + std::to_string(memory.size()) + ", \"window\": " + std::to_string(p.window) + "}";
    std::string out(kMagic, 8);
    const uint32_t version = kVersion, hlen = static_cast<uint32_t>(header.size());
    out.append(reinterpret_cast<const char*>(&version), 4);
    out.append(reinterpret_cast<const char*>(&hlen), 4);
    out += header;
    for (int64_t s = 0; s < memory.n_slots(); ++s) {
        std::vector<uint16_t> k, v;
        memory.export_f16(s, k, v);
        out.append(reinterpret_cast<const char*>(k.data()), k.size() * 2);
        out.append(reinterpret_cast<const char*>(v.data()), v.size() * 2);
    }
    const auto digest = Sha256::of(out.data(), out.size());
    out.append(reinterpret_cast<const char*>(digest.data()), digest.size());

    // Written to a temporary file beside it, synced, then renamed over: never half a file at `path`.
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash == 0 ? 1 : slash);
    const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    std::string tmpl = dir + "/" + base + ".XXXXXX.tmp";
    std::vector<char> name(tmpl.begin(), tmpl.end());
    name.push_back('\0');
    const int fd = ::mkstemps(name.data(), 4);
    if (fd < 0) throw MemoryFileError("cannot write memory file " + path + ": " + std::strerror(errno));
    size_t done = 0;
    bool ok = true;
    while (ok && done < out.size()) {
        const ssize_t n = ::write(fd, out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) done += static_cast<size_t>(n);
    }
    const int err = ok ? 0 : errno;
    ok = ok && ::fsync(fd) == 0;
    ::close(fd);
    if (!ok || std::rename(name.data(), path.c_str()) != 0) {
        const int e = err ? err : errno;
        ::unlink(name.data());
        throw MemoryFileError("cannot write memory file " + path + ": " + std::strerror(e));
    }
}

}  // namespace pyllong::chat
