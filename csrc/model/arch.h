// Architectures are data: which tensors a layer has and their shapes, which norm and
// activation the forward pass uses. One forward pass reads this table; an architecture
// is a row, not a copy of the code.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pyllong {

struct HParams;

enum class Arch { Llama, Phi2, Phi3 };
enum class NormKind { RMSNorm, LayerNorm };
enum class FFNKind { SwiGLU, FusedSwiGLU, GELU };  // gate+up / fused gate_up / up only

// Shape of a tensor as a function of the hyper-parameters, in ggml order (ne[0] first).
enum class Dim { One, Embd, Vocab, FF, FF2, QDim, KVDim, QKVDim, HalfRot };

struct TensorSpec {
    const char* name;      // per-layer names use "blk.%d." as prefix
    Dim ne0, ne1;          // ne1 == Dim::One means a 1-D tensor
    bool required;
    bool is_norm;          // must be F32 (hardening item 23)
};

struct ArchTable {
    Arch arch;
    const char* name;      // general.architecture
    NormKind norm;
    FFNKind ffn;
    bool parallel_residual;  // attention and FFN read the same normed input (phi2)
    const char* eps_key;     // suffix of the norm epsilon key
    std::vector<TensorSpec> global;
    std::vector<TensorSpec> layer;
};

// nullptr if `name` is not an architecture pyllong runs.
const ArchTable* find_arch(const std::string& name);
std::string supported_arch_names();  // "llama, phi2, phi3"

int64_t dim_value(Dim d, const HParams& hp);

}  // namespace pyllong
