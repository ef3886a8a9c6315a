// GGUF v2/v3 reader: parses and validates the header, metadata and tensor table of an
// untrusted file, then exposes zero-copy views into the mapped bytes. It knows nothing
// of models (see model/ for hyper-parameters and required tensors).
//
// Every malformed input throws GGUFError naming the field and its byte offset; no
// allocation is sized by a count the file claims before that count is checked against
// the bytes that remain (see spec/gguf-hardening.md items 1-10, 15-22).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/mapped_file.h"
#include "gguf/types.h"

namespace pyllong {

constexpr size_t kMaxKeyLength = 64 * 1024;
constexpr size_t kMaxTensorName = 63;  // ggml's GGML_MAX_NAME (64) includes the NUL
constexpr uint32_t kMaxDims = 4;
constexpr uint32_t kDefaultAlignment = 32;
constexpr uint32_t kMaxAlignment = 64 * 1024;

struct GGUFValue {
    ValueType type = ValueType::U8;
    size_t offset = 0;  // byte offset of the value (after its type id) in the file
    // Scalars, widened: exactly one is meaningful, chosen by `type`.
    uint64_t u = 0;
    int64_t i = 0;
    double f = 0;
    std::string_view str;  // STRING: points into the mapped bytes
    // ARRAY of scalars: `count` packed elements at `data`; ARRAY of STRING: `strings`.
    ValueType elem_type = ValueType::U8;
    uint64_t count = 0;
    const uint8_t* data = nullptr;
    std::vector<std::string_view> strings;  // (count,) for string arrays; bounded by file bytes

    bool is_int() const;    // any integer scalar type
    bool is_float() const;  // F32 or F64
};

struct GGUFKV {
    std::string key;
    size_t offset;  // byte offset of the key's length field
    GGUFValue value;
};

struct TensorInfo {
    std::string name;
    uint32_t n_dims = 0;
    int64_t ne[kMaxDims] = {1, 1, 1, 1};  // ggml order: ne[0] is contiguous
    uint32_t type = 0;
    uint64_t offset = 0;      // relative to the data section
    uint64_t nbytes = 0;
    int64_t n_elements = 0;
    size_t info_offset = 0;   // byte offset of this tensor's info record in the file
    const uint8_t* data = nullptr;  // zero-copy view, nbytes long
};

class GGUFFile {
public:
    static std::shared_ptr<GGUFFile> open(const std::string& path);
    static std::shared_ptr<GGUFFile> from_bytes(std::vector<uint8_t> bytes, std::string name = "<bytes>");

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    size_t alignment() const { return alignment_; }
    size_t data_offset() const { return data_offset_; }
    size_t file_size() const { return bytes_->size(); }
    // Lets the pages of [p, p + n) (inside this file's data) leave memory until read again.
    void drop_pages(const uint8_t* p, size_t n) const { bytes_->drop_pages(p, n); }
    const std::vector<GGUFKV>& kvs() const { return kvs_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }

    const GGUFKV* find(std::string_view key) const;
    const TensorInfo* tensor(std::string_view name) const;

    // Typed getters for consumers (hardening item 11): a present key of the wrong type
    // throws GGUFError naming key, expected and actual type, and offset.
    std::optional<std::string_view> get_string(std::string_view key) const;
    std::optional<uint64_t> get_uint(std::string_view key) const;  // any non-negative integer
    std::optional<int64_t> get_int(std::string_view key) const;    // any integer in int64 range
    std::optional<double> get_float(std::string_view key) const;   // F32/F64 (ints accepted)
    std::optional<bool> get_bool(std::string_view key) const;
    // An array whose elements must have `elem`; nullptr if absent.
    const GGUFValue* get_array(std::string_view key, ValueType elem) const;

    // "<path>: " prefix for error messages from consumers.
    std::string where(const std::string& what, size_t offset) const;

private:
    GGUFFile(std::shared_ptr<Bytes> bytes, std::string path);
    void parse();

    std::shared_ptr<Bytes> bytes_;
    std::string path_;
    uint32_t version_ = 0;
    size_t alignment_ = kDefaultAlignment;
    size_t data_offset_ = 0;
    std::vector<GGUFKV> kvs_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string_view, size_t> kv_index_;
    std::unordered_map<std::string_view, size_t> tensor_index_;
};

}  // namespace pyllong
