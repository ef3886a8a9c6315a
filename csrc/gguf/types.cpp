#include "gguf/types.h"

namespace pyllong {

namespace {
struct Entry { uint32_t id; TypeTraits t; };
// Block geometry per ggml's block structs (QK4_0 = 32, QK_K = 256, ...).
constexpr Entry kTypes[] = {
    {0, {"F32", 1, 4, true}},
    {1, {"F16", 1, 2, true}},
    {2, {"Q4_0", 32, 2 + 16, true}},
    {3, {"Q4_1", 32, 2 + 2 + 16, true}},
    {6, {"Q5_0", 32, 2 + 4 + 16, true}},
    {7, {"Q5_1", 32, 2 + 2 + 4 + 16, true}},
    {8, {"Q8_0", 32, 2 + 32, true}},
    {9, {"Q8_1", 32, 4 + 32, false}},  // activation-only format in ggml
    {10, {"Q2_K", 256, 16 + 64 + 2 + 2, true}},
    {11, {"Q3_K", 256, 32 + 64 + 12 + 2, true}},
    {12, {"Q4_K", 256, 2 + 2 + 12 + 128, true}},
    {13, {"Q5_K", 256, 2 + 2 + 12 + 32 + 128, true}},
    {14, {"Q6_K", 256, 128 + 64 + 16 + 2, true}},
    {15, {"Q8_K", 256, 4 + 256 + 32, false}},  // activation-only format in ggml
    {30, {"BF16", 1, 2, true}},
};
}  // namespace

const TypeTraits* type_traits(uint32_t id) {
    for (const auto& e : kTypes)
        if (e.id == id && e.t.supported) return &e.t;
    return nullptr;
}

const char* type_name(uint32_t id) {
    for (const auto& e : kTypes)
        if (e.id == id) return e.t.name;
    return "unknown";
}

const char* value_type_name(ValueType t) {
    static const char* names[] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
                                  "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
    auto i = static_cast<uint32_t>(t);
    return i < kValueTypeCount ? names[i] : "INVALID";
}

size_t value_type_size(ValueType t) {
    switch (t) {
        case ValueType::U8: case ValueType::I8: case ValueType::BOOL: return 1;
        case ValueType::U16: case ValueType::I16: return 2;
        case ValueType::U32: case ValueType::I32: case ValueType::F32: return 4;
        case ValueType::U64: case ValueType::I64: case ValueType::F64: return 8;
        default: return 0;
    }
}

}  // namespace pyllong
