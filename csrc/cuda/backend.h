// The CUDA backend as the rest of the engine sees it: plain C++, no CUDA types, so the
// Context and the bindings compile the same with or without -DPYLLONG_CUDA=ON. Without
// it, make_device_layers and the probes throw DeviceError saying how to get a CUDA build.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "attention/self_extend.h"
#include "attention/transition.h"
#include "model/hparams.h"
#include "model/weights.h"
#include "ops/rope.h"

namespace pyllong::cuda {

// The kNN memory's side of the device layers: the memory lives in host RAM (with its index),
// so the host computes a memory layer's memory part and the device merges it into the
// layer's attention by log-sum-exp (as one more key split).
class MemorySide {
public:
    virtual ~MemorySide() = default;
    // Whether `layer` (model index) attends to memory keys now (a memory layer, memory not empty).
    virtual bool active(int64_t layer) const = 0;
    // q: (n, n_head * hd) the chunk's unrotated queries at positions pos (n,). Writes, per
    // (token, head) row, the softmax state of its memory keys: partial (n * n_head, hd + 2) =
    // acc (hd,), m, l.
    virtual void fold(int64_t layer, const float* q, const int32_t* pos, int64_t n, float* partial) = 0;
};

// What the device needs to run a prefix of the model's layers.
struct DeviceLayersParams {
    int64_t n_gpu_layers = 0;   // layers [0, n_gpu_layers) run on the device
    bool output = false;        // final norm + output matrix on the device too (all layers on it)
    int64_t n_ctx = 0, n_batch = 0;
    RopeParams rope;            // freq_factors points at host memory; copied to the device
    SelfExtend self_extend;
    Transition transition;      // Attention Transition on prompt passes (off unless enabled)
    MemorySide* memory = nullptr;  // the kNN memory, or null
    int64_t sliding_window = 0; // 0 = full causal attention
};

// A prefix of the layers, their KV cache and scratch, resident on the device.
class DeviceLayers {
public:
    virtual ~DeviceLayers() = default;
    // x: (n, n_embd) host rows entering layer 0 into cache cells
    // [cell, cell + n). Runs the device layers; then either writes logits (n - first_logit,
    // n_vocab) for rows [first_logit, n) (when output is on the device and logits is not
    // null) or copies the residual stream back into x for the CPU layers.
    // cell_pos: (cell + n,) the positions of every cell in use, the chunk's last.
    // prompt_len: N of the prompt pass this chunk is part of (the Transition's bands), 0 = none.
    virtual void forward(float* x, const int32_t* cell_pos, int64_t n, int64_t cell, int64_t first_logit,
                         float* logits, int64_t prompt_len) = 0;
    // Context shift: cells [first, first + n) removed, later cells move down, their keys
    // rotated by -n. n_used: cells in use before the erase.
    virtual void shift(int64_t first, int64_t n, int64_t n_used) = 0;
    // Cells [0, n) of device layer `layer`'s cache as floats: k, v (n, kv_dim) each (keys rotated
    // at their positions, as stored).
    virtual void read_kv(int64_t layer, int64_t n, float* k, float* v) const = 0;
    virtual int64_t kv_bytes() const = 0;
    virtual int64_t weight_bytes() const = 0;
};

// Uploads the weights of layers [0, p.n_gpu_layers) (and the output head when p.output).
// Throws DeviceError when there is no CUDA build, no device, or too little device memory
// (saying how many bytes are needed and free).
std::unique_ptr<DeviceLayers> make_device_layers(const HParams& hp, const ModelWeights& w,
                                                 const DeviceLayersParams& p);

// Kernel probes for the tests: the device's result for what ops/matmul.h and
// attention.h compute on the CPU.
// W: raw rows of `type` (n_out, row_bytes(n_in)); x: (n_tok, n_in) -> (n_tok, n_out).
std::vector<float> matmul_probe(GGMLType type, const uint8_t* w, int64_t n_in, int64_t n_out, const float* x,
                                int64_t n_tok);
// The device attention step (rotation, cache write, attention) on caller-given q (n, n_head,
// hd), k and v (n, n_head_kv, hd), unrotated, at positions 0..n-1, fed in chunks of `chunk`
// tokens as prefill does — what _core.attention_probe does on the CPU. Returns (n, n_head, hd).
std::vector<float> attention_probe(const float* q, const float* k, const float* v, int64_t n, int64_t n_head,
                                   int64_t n_head_kv, int64_t head_dim, const RopeParams& rope,
                                   const SelfExtend& se, int64_t chunk);

}  // namespace pyllong::cuda
