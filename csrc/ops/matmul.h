// y = W x over a quantized weight matrix, for one token (GEMV, decode) or a batch
// (GEMM, prefill). W is in ggml layout: n_out rows of n_in contiguous elements.
// Activations are quantized once per call to the 8-bit block format the weight type's
// dot product consumes; rows are split over the pool's threads.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/thread_pool.h"
#include "gguf/types.h"
#include "quant/vec_dot.h"

namespace pyllong {

struct QTensorView {
    GGMLType type;
    const void* data;  // (n_out, row_stride) bytes
    int64_t n_in;      // ne[0]: elements per row (a multiple of the type's block)
    int64_t n_out;     // ne[1]: rows
    size_t row_stride; // bytes from one row to the next; 0 = packed (row_bytes(type, n_in))
    // Optional: the same matrix repacked (quant/repack.h, packed_bytes(type, n_in, n_out)
    // bytes). Used where the SIMD path has a kernel for the layout; data stays the truth
    // for every other path.
    const void* packed = nullptr;
};

// x: (n_tok, n_in) floats, y: (n_tok, n_out) floats. n_threads <= 0 means pool.size().
// Throws InvalidArgument on an unsupported type, a row length that is not whole blocks,
// or an unsupported SIMD path.
void matmul(const QTensorView& W, const float* x, float* y, int64_t n_tok, ThreadPool& pool,
            int n_threads, quant::SimdPath path);
inline void matmul(const QTensorView& W, const float* x, float* y, int64_t n_tok, ThreadPool& pool,
                   int n_threads = 0) {
    matmul(W, x, y, n_tok, pool, n_threads, quant::default_simd_path());
}

// y[i] = W[i] x for n_mats matrices that read the same x (q/k/v, gate/up): x is quantized
// once per activation format and all rows go through one pool run, so a decode step pays
// one hand-off to the workers instead of n_mats (for small models that hand-off, not the
// weights, is what a GEMV costs). y[i]: (n_tok, W[i].n_out). Same results as n_mats calls.
void matmul_multi(const QTensorView* const* W, float* const* y, int n_mats, const float* x, int64_t n_tok,
                  ThreadPool& pool, int n_threads = 0);

}  // namespace pyllong
