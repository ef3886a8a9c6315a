#include "gguf/gguf.h"

#include <cstring>
#include <limits>

#include "core/error.h"
#include "core/utf8.h"

namespace pyllong {

namespace {

// Bounds-checked little-endian cursor over the file bytes. Every read names its field so
// the error says what was being read and where.
class Cursor {
public:
    Cursor(const uint8_t* p, size_t n, const std::string& path) : p_(p), n_(n), path_(path) {}

    size_t pos() const { return pos_; }
    size_t remaining() const { return n_ - pos_; }

    [[noreturn]] void fail(const std::string& field, size_t offset, const std::string& msg) const {
        throw GGUFError(path_ + ": " + field + " at byte offset " + std::to_string(offset) + ": " + msg);
    }

    template <typename T>
    T read(const std::string& field) {
        if (remaining() < sizeof(T))
            fail(field, pos_, "file ends (needs " + std::to_string(sizeof(T)) + " bytes, " +
                                  std::to_string(remaining()) + " remain); the file is truncated");
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    // A u64 length followed by that many bytes (not NUL-terminated).
    std::string_view read_string(const std::string& field, size_t cap) {
        const size_t at = pos_;
        const uint64_t len = read<uint64_t>(field + " length");
        if (len > remaining())
            fail(field, at, "string length " + std::to_string(len) + " exceeds the " +
                                std::to_string(remaining()) + " bytes that remain");
        if (len > cap)
            fail(field, at, "string length " + std::to_string(len) + " exceeds the cap of " +
                                std::to_string(cap) + " bytes");
        std::string_view s(reinterpret_cast<const char*>(p_ + pos_), static_cast<size_t>(len));
        pos_ += static_cast<size_t>(len);
        return s;
    }

    const uint8_t* here() const { return p_ + pos_; }
    void skip(size_t n) { pos_ += n; }  // caller has checked n <= remaining()

private:
    const uint8_t* p_;
    size_t n_;
    size_t pos_ = 0;
    const std::string& path_;
};

std::string quoted(std::string_view s) {
    std::string out = "'";
    for (char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (s.size() > 80) out += "...";
    return out + "'";
}

void read_scalar(Cursor& c, ValueType t, GGUFValue& v, const std::string& field) {
    switch (t) {
        case ValueType::U8: v.u = c.read<uint8_t>(field); v.i = static_cast<int64_t>(v.u); break;
        case ValueType::I8: v.i = c.read<int8_t>(field); break;
        case ValueType::U16: v.u = c.read<uint16_t>(field); v.i = static_cast<int64_t>(v.u); break;
        case ValueType::I16: v.i = c.read<int16_t>(field); break;
        case ValueType::U32: v.u = c.read<uint32_t>(field); v.i = static_cast<int64_t>(v.u); break;
        case ValueType::I32: v.i = c.read<int32_t>(field); break;
        case ValueType::U64: v.u = c.read<uint64_t>(field); v.i = static_cast<int64_t>(v.u); break;
        case ValueType::I64: v.i = c.read<int64_t>(field); break;
        case ValueType::F32: v.f = c.read<float>(field); break;
        case ValueType::F64: v.f = c.read<double>(field); break;
        case ValueType::BOOL: {
            const size_t at = c.pos();
            uint8_t b = c.read<uint8_t>(field);
            if (b > 1) c.fail(field, at, "BOOL value " + std::to_string(b) + " is neither 0 nor 1");
            v.u = b;
            v.i = b;
            break;
        }
        default: break;
    }
    if (t == ValueType::I8 || t == ValueType::I16 || t == ValueType::I32 || t == ValueType::I64)
        v.u = v.i < 0 ? 0 : static_cast<uint64_t>(v.i);
}

ValueType read_value_type(Cursor& c, const std::string& field) {
    const size_t at = c.pos();
    const uint32_t t = c.read<uint32_t>(field);
    if (t >= kValueTypeCount)
        c.fail(field, at, "value type " + std::to_string(static_cast<int32_t>(t)) +
                              " is not a GGUF type (valid: 0..12)");
    return static_cast<ValueType>(t);
}

uint64_t align_up(uint64_t x, uint64_t a, bool* overflow) {
    if (x > std::numeric_limits<uint64_t>::max() - (a - 1)) { *overflow = true; return 0; }
    return (x + a - 1) / a * a;
}

}  // namespace

bool GGUFValue::is_int() const {
    switch (type) {
        case ValueType::U8: case ValueType::I8: case ValueType::U16: case ValueType::I16:
        case ValueType::U32: case ValueType::I32: case ValueType::U64: case ValueType::I64: return true;
        default: return false;
    }
}
bool GGUFValue::is_float() const { return type == ValueType::F32 || type == ValueType::F64; }

GGUFFile::GGUFFile(std::shared_ptr<Bytes> bytes, std::string path)
    : bytes_(std::move(bytes)), path_(std::move(path)) {}

std::shared_ptr<GGUFFile> GGUFFile::open(const std::string& path) {
    std::shared_ptr<GGUFFile> f(new GGUFFile(std::make_shared<MappedFile>(path), path));
    f->parse();
    return f;
}

std::shared_ptr<GGUFFile> GGUFFile::from_bytes(std::vector<uint8_t> bytes, std::string name) {
    std::shared_ptr<GGUFFile> f(new GGUFFile(std::make_shared<OwnedBytes>(std::move(bytes)), std::move(name)));
    f->parse();
    return f;
}

std::string GGUFFile::where(const std::string& what, size_t offset) const {
    return path_ + ": " + what + " at byte offset " + std::to_string(offset);
}

void GGUFFile::parse() {
    const size_t size = bytes_->size();
    Cursor c(bytes_->data(), size, path_);

    // --- header (items 1-4) ---
    if (size < 4) c.fail("magic", 0, "file is " + std::to_string(size) + " bytes, too short to be GGUF");
    if (std::memcmp(bytes_->data(), "GGUF", 4) != 0) {
        std::string seen;
        for (int k = 0; k < 4; ++k) {
            char h[4];
            std::snprintf(h, sizeof h, "%02x", bytes_->data()[k]);
            seen += h;
        }
        c.fail("magic", 0, "expected 'GGUF' (47475546), found " + seen + "; this is not a GGUF file");
    }
    if (size < 24)
        c.fail("header", 0, "file is " + std::to_string(size) +
                                " bytes, shorter than the 24-byte GGUF header; the file is truncated");
    c.skip(4);
    version_ = c.read<uint32_t>("version");
    if (version_ != 2 && version_ != 3) {
        const uint32_t swapped = __builtin_bswap32(version_);
        std::string hint = (swapped == 2 || swapped == 3)
                               ? " (byte-swapped: a big-endian file, which pyllong does not read)"
                           : version_ == 1 ? " (GGUF v1 is obsolete; re-convert the model)"
                                           : "";
        c.fail("version", 4, "unsupported GGUF version " + std::to_string(version_) + hint +
                                 "; pyllong reads versions 2 and 3");
    }
    const uint64_t n_tensors = c.read<uint64_t>("n_tensors");
    const uint64_t n_kv = c.read<uint64_t>("n_kv");
    // Each KV needs >= 8 (key len) + 4 (type) + 1 bytes; each tensor info >= 8+4+8+4+8.
    constexpr uint64_t kMinKV = 8 + 4 + 1, kMinTensor = 8 + 4 + 8 + 4 + 8;
    if (n_tensors > c.remaining() / kMinTensor)
        c.fail("n_tensors", 8, "count " + std::to_string(n_tensors) + " (as signed: " +
                                   std::to_string(static_cast<int64_t>(n_tensors)) +
                                   ") cannot fit in the " + std::to_string(c.remaining()) + " bytes that remain");
    if (n_kv > c.remaining() / kMinKV ||
        n_kv * kMinKV > c.remaining() - n_tensors * kMinTensor)
        c.fail("n_kv", 16, "count " + std::to_string(n_kv) + " (as signed: " +
                               std::to_string(static_cast<int64_t>(n_kv)) + ") cannot fit in the " +
                               std::to_string(c.remaining()) + " bytes that remain");

    // --- metadata (items 5-10) ---
    kvs_.reserve(static_cast<size_t>(n_kv));
    for (uint64_t k = 0; k < n_kv; ++k) {
        const std::string field = "kv[" + std::to_string(k) + "]";
        const size_t at = c.pos();
        std::string_view key = c.read_string(field + ".key", kMaxKeyLength);
        if (key.empty()) c.fail(field + ".key", at, "empty key");
        if (!is_valid_utf8(key)) c.fail(field + ".key", at, "key is not valid UTF-8");
        if (kv_index_.count(key)) c.fail(field + ".key", at, "duplicate key " + quoted(key));
        const std::string kfield = field + " " + quoted(key);
        GGUFValue v;
        v.type = read_value_type(c, kfield + " type");
        v.offset = c.pos();
        if (v.type == ValueType::STRING) {
            v.str = c.read_string(kfield, std::numeric_limits<size_t>::max());
        } else if (v.type == ValueType::ARRAY) {
            v.elem_type = read_value_type(c, kfield + " element type");
            if (v.elem_type == ValueType::ARRAY)
                c.fail(kfield, v.offset, "arrays of arrays are not allowed");
            const size_t count_at = c.pos();
            v.count = c.read<uint64_t>(kfield + " count");
            if (v.elem_type == ValueType::STRING) {
                if (v.count > c.remaining() / 8)
                    c.fail(kfield + " count", count_at,
                           "string array of " + std::to_string(v.count) + " elements needs at least " +
                               "8 bytes each, but only " + std::to_string(c.remaining()) + " bytes remain");
                v.strings.reserve(static_cast<size_t>(v.count));
                for (uint64_t j = 0; j < v.count; ++j)
                    v.strings.push_back(c.read_string(kfield + "[" + std::to_string(j) + "]",
                                                      std::numeric_limits<size_t>::max()));
            } else {
                const size_t es = value_type_size(v.elem_type);
                if (v.count > c.remaining() / es)
                    c.fail(kfield + " count", count_at,
                           "array of " + std::to_string(v.count) + " x " + value_type_name(v.elem_type) +
                               " exceeds the " + std::to_string(c.remaining()) + " bytes that remain");
                v.data = c.here();
                if (v.elem_type == ValueType::BOOL)
                    for (uint64_t j = 0; j < v.count; ++j)
                        if (v.data[j] > 1)
                            c.fail(kfield + "[" + std::to_string(j) + "]", c.pos() + j, "BOOL value is neither 0 nor 1");
                c.skip(static_cast<size_t>(v.count * es));
            }
        } else {
            read_scalar(c, v.type, v, kfield);
        }
        if (key == "general.alignment") {
            if (v.type != ValueType::U32)
                c.fail(kfield, v.offset, std::string("must be UINT32, found ") + value_type_name(v.type));
            if (v.u == 0 || (v.u & (v.u - 1)) != 0 || v.u > kMaxAlignment)
                c.fail(kfield, v.offset, "alignment " + std::to_string(v.u) +
                                             " must be a power of two between 1 and " + std::to_string(kMaxAlignment));
            alignment_ = static_cast<size_t>(v.u);
        }
        kv_index_.emplace(key, kvs_.size());
        kvs_.push_back(GGUFKV{std::string(key), at, std::move(v)});
    }

    // --- tensor infos (items 15-21) ---
    tensors_.reserve(static_cast<size_t>(n_tensors));
    for (uint64_t t = 0; t < n_tensors; ++t) {
        const std::string field = "tensor[" + std::to_string(t) + "]";
        TensorInfo ti;
        ti.info_offset = c.pos();
        std::string_view name = c.read_string(field + ".name", std::numeric_limits<size_t>::max());
        if (name.size() > kMaxTensorName)
            c.fail(field + ".name", ti.info_offset, "name of " + std::to_string(name.size()) +
                                                        " bytes exceeds the maximum of " + std::to_string(kMaxTensorName));
        if (name.empty()) c.fail(field + ".name", ti.info_offset, "empty tensor name");
        if (!is_valid_utf8(name)) c.fail(field + ".name", ti.info_offset, "tensor name is not valid UTF-8");
        if (tensor_index_.count(name)) c.fail(field + ".name", ti.info_offset, "duplicate tensor name " + quoted(name));
        const std::string tfield = field + " " + quoted(name);
        const size_t dims_at = c.pos();
        ti.n_dims = c.read<uint32_t>(tfield + " n_dims");
        if (ti.n_dims == 0 || ti.n_dims > kMaxDims)
            c.fail(tfield + " n_dims", dims_at, "n_dims " + std::to_string(ti.n_dims) + " is outside 1..4");
        int64_t n_el = 1;
        for (uint32_t d = 0; d < ti.n_dims; ++d) {
            const size_t ne_at = c.pos();
            const int64_t ne = c.read<int64_t>(tfield + " ne[" + std::to_string(d) + "]");
            if (ne <= 0)
                c.fail(tfield + " ne[" + std::to_string(d) + "]", ne_at,
                       "dimension " + std::to_string(ne) + " must be positive");
            if (n_el > std::numeric_limits<int64_t>::max() / ne)
                c.fail(tfield + " ne[" + std::to_string(d) + "]", ne_at, "element count overflows int64");
            n_el *= ne;
            ti.ne[d] = ne;
        }
        ti.n_elements = n_el;
        const size_t type_at = c.pos();
        ti.type = c.read<uint32_t>(tfield + " type");
        const TypeTraits* tt = type_traits(ti.type);
        if (!tt)
            c.fail(tfield + " type", type_at, "ggml type " + std::to_string(ti.type) + " (" + type_name(ti.type) +
                                                  ") is not supported; supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 "
                                                  "Q2_K Q3_K Q4_K Q5_K Q6_K");
        if (ti.ne[0] % tt->block_size != 0)
            c.fail(tfield + " ne[0]", dims_at + 4, "row length " + std::to_string(ti.ne[0]) +
                                                       " is not a multiple of the " + tt->name + " block size " +
                                                       std::to_string(tt->block_size));
        const uint64_t n_blocks = static_cast<uint64_t>(n_el) / tt->block_size;
        if (n_blocks > std::numeric_limits<uint64_t>::max() / tt->type_size)
            c.fail(tfield, ti.info_offset, "byte size overflows");
        ti.nbytes = n_blocks * tt->type_size;
        const size_t off_at = c.pos();
        ti.offset = c.read<uint64_t>(tfield + " offset");
        if (ti.offset % alignment_ != 0)
            c.fail(tfield + " offset", off_at, "offset " + std::to_string(ti.offset) +
                                                   " is not a multiple of the alignment " + std::to_string(alignment_));
        (void)off_at;
        tensor_index_.emplace(name, tensors_.size());
        ti.name = std::string(name);
        tensors_.push_back(std::move(ti));
    }

    // --- data section (items 20-22) ---
    bool ovf = false;
    const uint64_t data_start = align_up(c.pos(), alignment_, &ovf);
    if (!tensors_.empty() && (ovf || data_start > size))
        c.fail("data section", c.pos(), "starts at " + std::to_string(data_start) + ", beyond the end of the " +
                                            std::to_string(size) + "-byte file; the file is truncated");
    data_offset_ = static_cast<size_t>(ovf ? size : std::min<uint64_t>(data_start, size));
    const uint64_t data_size = size - data_offset_;
    uint64_t expected = 0;  // running offset: tensors are packed in order, each padded
    for (size_t t = 0; t < tensors_.size(); ++t) {
        TensorInfo& ti = tensors_[t];
        const std::string tfield = "tensor[" + std::to_string(t) + "] " + quoted(ti.name) + " offset";
        const size_t off_at = ti.info_offset + 8 + ti.name.size() + 4 + 8 * ti.n_dims + 4;
        if (ti.offset != expected)
            c.fail(tfield, off_at, "offset " + std::to_string(ti.offset) + " should be " + std::to_string(expected) +
                                       " (tensors must be packed in order; this one overlaps or leaves a gap)");
        if (ti.nbytes > data_size || ti.offset > data_size - ti.nbytes)
            c.fail(tfield, off_at, "tensor data [" + std::to_string(data_offset_ + ti.offset) + ", +" +
                                       std::to_string(ti.nbytes) + ") runs past the end of the " +
                                       std::to_string(size) + "-byte file; the file is truncated");
        ti.data = bytes_->data() + data_offset_ + ti.offset;
        expected = align_up(ti.offset + ti.nbytes, alignment_, &ovf);
        if (ovf) c.fail(tfield, off_at, "accumulated data size overflows");
    }
}

const GGUFKV* GGUFFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kvs_[it->second];
}

const TensorInfo* GGUFFile::tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
[[noreturn]] void wrong_type(const GGUFFile& f, const GGUFKV& kv, const char* expected) {
    std::string actual = value_type_name(kv.value.type);
    if (kv.value.type == ValueType::ARRAY) actual += std::string(" of ") + value_type_name(kv.value.elem_type);
    throw GGUFError(f.where("metadata key '" + kv.key + "'", kv.offset) + ": expected " + expected +
                    ", found " + actual);
}
}  // namespace

std::optional<std::string_view> GGUFFile::get_string(std::string_view key) const {
    const GGUFKV* kv = find(key);
    if (!kv) return std::nullopt;
    if (kv->value.type != ValueType::STRING) wrong_type(*this, *kv, "STRING");
    return kv->value.str;
}

std::optional<int64_t> GGUFFile::get_int(std::string_view key) const {
    const GGUFKV* kv = find(key);
    if (!kv) return std::nullopt;
    if (!kv->value.is_int()) wrong_type(*this, *kv, "an integer");
    if (kv->value.type == ValueType::U64 && kv->value.u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw GGUFError(where("metadata key '" + kv->key + "'", kv->offset) + ": value " +
                        std::to_string(kv->value.u) + " is out of range");
    return kv->value.i;
}

std::optional<uint64_t> GGUFFile::get_uint(std::string_view key) const {
    const GGUFKV* kv = find(key);
    if (!kv) return std::nullopt;
    if (!kv->value.is_int()) wrong_type(*this, *kv, "an integer");
    const bool is_signed = kv->value.type == ValueType::I8 || kv->value.type == ValueType::I16 ||
                           kv->value.type == ValueType::I32 || kv->value.type == ValueType::I64;
    if (is_signed && kv->value.i < 0)
        throw GGUFError(where("metadata key '" + kv->key + "'", kv->offset) + ": value " +
                        std::to_string(kv->value.i) + " must not be negative");
    return kv->value.u;
}

std::optional<double> GGUFFile::get_float(std::string_view key) const {
    const GGUFKV* kv = find(key);
    if (!kv) return std::nullopt;
    if (kv->value.is_float()) return kv->value.f;
    if (kv->value.is_int()) return static_cast<double>(kv->value.i);
    wrong_type(*this, *kv, "FLOAT32");
}

std::optional<bool> GGUFFile::get_bool(std::string_view key) const {
    const GGUFKV* kv = find(key);
    if (!kv) return std::nullopt;
    if (kv->value.type != ValueType::BOOL) wrong_type(*this, *kv, "BOOL");
    return kv->value.u != 0;
}

const GGUFValue* GGUFFile::get_array(std::string_view key, ValueType elem) const {
    const GGUFKV* kv = find(key);
    if (!kv) return nullptr;
    if (kv->value.type != ValueType::ARRAY || kv->value.elem_type != elem) {
        std::string exp = std::string("ARRAY of ") + value_type_name(elem);
        wrong_type(*this, *kv, exp.c_str());
    }
    return &kv->value;
}

}  // namespace pyllong
