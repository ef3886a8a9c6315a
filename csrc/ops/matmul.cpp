#include "ops/matmul.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "core/error.h"
#include "quant/activation.h"
#include "quant/formats.h"

namespace pyllong {

namespace {
// Tokens per tile in GEMM: a weight row is read from memory once per tile and reused
// from L1 for every token of the tile, whose quantized activations stay in L2.
constexpr int64_t kTokTile = 32;

// Rows per work item: small enough that threads balance (and a thread slowed by another
// process hands rows to the others), large enough that taking a chunk is cheap.
int64_t row_chunk(int64_t n_out, int nth) {
    return std::clamp<int64_t>(n_out / (8 * int64_t{nth}), 4, 64);
}
}  // namespace

void matmul(const QTensorView& W, const float* x, float* y, int64_t n_tok, ThreadPool& pool,
            int n_threads, quant::SimdPath path) {
    const size_t packed = quant::row_bytes(W.type, W.n_in);  // validates type and n_in
    const size_t stride = W.row_stride ? W.row_stride : packed;
    if (stride < packed) throw InvalidArgument("matmul: row stride smaller than a row");
    if (n_tok < 0 || W.n_out < 0) throw InvalidArgument("matmul: negative size");
    if (n_tok == 0 || W.n_out == 0) return;
    const quant::DotTable& table = quant::dot_table(path);
    const quant::VecDotFn dot = table[W.type];
    const quant::VecDotRowsFn dot_rows = table.rows(W.type);
    const int nth = n_threads <= 0 ? pool.size() : std::min(n_threads, pool.size());

    // Activations in the weight type's 8-bit format: (n_tok, act_rb) bytes.
    const quant::ActFormat af = quant::act_format(W.type);
    const size_t act_rb = quant::act_row_bytes(af, W.n_in);
    std::vector<uint8_t> xq_buf;
    const uint8_t* xq = reinterpret_cast<const uint8_t*>(x);  // F32 activations are used as is
    if (af != quant::ActFormat::F32) {
        xq_buf.resize(act_rb * n_tok);
        uint8_t* dst = xq_buf.data();
        auto quantize_tokens = [&](int ith, int n) {
            for (int64_t t = ith; t < n_tok; t += n) table.quantize_act(af, x + t * W.n_in, dst + t * act_rb, W.n_in);
        };
        if (n_tok >= 4 && nth > 1) pool.run(nth, quantize_tokens);
        else quantize_tokens(0, 1);
        xq = dst;
    }

    const auto* w = static_cast<const uint8_t*>(W.data);
    const int64_t chunk = row_chunk(W.n_out, nth);
    const int64_t n_chunks = (W.n_out + chunk - 1) / chunk;
    std::atomic<int64_t> next_chunk{0};
    pool.run(nth, [&](int, int) {
        for (int64_t c; (c = next_chunk.fetch_add(1, std::memory_order_relaxed)) < n_chunks;) {
            const int64_t r0 = c * chunk, r1 = std::min(W.n_out, r0 + chunk);
            for (int64_t t0 = 0; t0 < n_tok; t0 += kTokTile) {
                const int64_t t1 = std::min(n_tok, t0 + kTokTile);
                for (int64_t r = r0; r < r1; ++r) {
                    const uint8_t* wr = w + r * stride;  // one row: packed bytes
                    int64_t t = t0;
                    if (dot_rows) {  // kDotRows tokens per unpacking of the weight row
                        float out[quant::kDotRows];
                        for (; t + quant::kDotRows <= t1; t += quant::kDotRows) {
                            dot_rows(W.n_in, wr, xq + t * act_rb, act_rb, out);
                            for (int k = 0; k < quant::kDotRows; ++k) y[(t + k) * W.n_out + r] = out[k];
                        }
                    }
                    for (; t < t1; ++t) y[t * W.n_out + r] = dot(W.n_in, wr, xq + t * act_rb);
                }
            }
        }
    });
}

}  // namespace pyllong
