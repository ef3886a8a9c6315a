// ggml tensor types and GGUF metadata value types: the ids on disk, and the block
// geometry of each tensor type pyllong implements (an explicit allow-list).
#pragma once
#include <cstddef>
#include <cstdint>

namespace pyllong {

enum class GGMLType : uint32_t {
    F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
    Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15, BF16 = 30,
};

struct TypeTraits {
    const char* name;
    uint32_t block_size;  // elements per block
    uint32_t type_size;   // bytes per block
    bool supported;       // on the allow-list for model tensors
};

// Traits of a raw type id; nullptr when the id is not an implemented type
// (out of range, removed from ggml, or not supported by pyllong).
const TypeTraits* type_traits(uint32_t id);
inline const TypeTraits* type_traits(GGMLType t) { return type_traits(static_cast<uint32_t>(t)); }
const char* type_name(uint32_t id);  // "type#N" for unknown ids

enum class ValueType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};
constexpr uint32_t kValueTypeCount = 13;
const char* value_type_name(ValueType t);
// Bytes of one scalar element; 0 for STRING and ARRAY.
size_t value_type_size(ValueType t);

}  // namespace pyllong
