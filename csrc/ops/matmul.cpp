#include "ops/matmul.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "core/work_split.h"
#include "quant/activation.h"
#include "quant/formats.h"
#include "quant/repack.h"

namespace pyllong {

namespace {
// Tokens per tile in GEMM: a weight row is read from memory once per tile and reused
// from L1 for every token of the tile, whose quantized activations stay in L2.
constexpr int64_t kTokTile = 32;

// Rows per work item: small enough that threads balance (and a thread slowed by another
// process hands rows to the others), large enough that taking a chunk is cheap. Items are
// handed out by WorkSplit: contiguous per thread, so small items cost no locality.
int64_t row_chunk(int64_t n_out, int nth) {
    return std::clamp<int64_t>(n_out / (8 * int64_t{nth}), 4, 64);
}

// One matrix of a (multi-)matmul, validated, with its activations.
struct Job {
    const QTensorView* W;
    float* y;
    size_t stride;                // bytes between weight rows
    quant::VecDotFn dot;
    quant::VecDotRowsFn dot_rows;  // may be null
    quant::PackedGemmFn packed;    // non-null: the repacked layout is used (W->packed)
    size_t group_bytes;            // bytes of one packed group of kPackRows rows
    const uint8_t* xq;            // (n_tok, act_rb) activations in the type's format
    size_t act_rb;
    int64_t chunk, first_chunk;   // rows per work item; index of this matrix's first item
};

Job make_job(const QTensorView& W, float* y, const quant::DotTable& table, int64_t n_tok) {
    const size_t rb = quant::row_bytes(W.type, W.n_in);  // validates type and n_in
    const size_t stride = W.row_stride ? W.row_stride : rb;
    if (stride < rb) throw InvalidArgument("matmul: row stride smaller than a row");
    if (W.n_out < 0) throw InvalidArgument("matmul: negative size");
    const quant::PackedGemmFn pk = W.packed ? table.packed_for(W.type, n_tok) : nullptr;
    const size_t group_bytes = pk ? quant::packed_group_bytes(W.type, W.n_in) : 0;
    return Job{&W, y, stride, table[W.type], table.rows(W.type), pk, group_bytes, nullptr, 0, 0, 0};
}

// Rows [r0, r1) (r0 a multiple of kPackRows) of a repacked matrix for all n_tok tokens.
void run_packed(const Job& j, int64_t r0, int64_t r1, int64_t n_tok) {
    const QTensorView& W = *j.W;
    const auto* w = static_cast<const uint8_t*>(W.packed);
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTokTile) {
        const int64_t nt = std::min(n_tok - t0, kTokTile);
        for (int64_t r = r0; r < r1; r += quant::kPackRows)
            j.packed(W.n_in, w + (r / quant::kPackRows) * j.group_bytes, j.xq + t0 * j.act_rb, j.act_rb, nt,
                     j.y + t0 * W.n_out + r, static_cast<size_t>(W.n_out),
                     static_cast<int>(std::min<int64_t>(quant::kPackRows, r1 - r)));
    }
}

// Rows [r0, r1) of one matrix for all n_tok tokens.
void run_rows(const Job& j, int64_t r0, int64_t r1, int64_t n_tok) {
    if (j.packed) return run_packed(j, r0, r1, n_tok);
    const QTensorView& W = *j.W;
    const auto* w = static_cast<const uint8_t*>(W.data);
    for (int64_t t0 = 0; t0 < n_tok; t0 += kTokTile) {
        const int64_t t1 = std::min(n_tok, t0 + kTokTile);
        for (int64_t r = r0; r < r1; ++r) {
            const uint8_t* wr = w + r * j.stride;  // one row: packed bytes
            int64_t t = t0;
            if (j.dot_rows) {  // kDotRows tokens per unpacking of the weight row
                float out[quant::kDotRows];
                for (; t + quant::kDotRows <= t1; t += quant::kDotRows) {
                    j.dot_rows(W.n_in, wr, j.xq + t * j.act_rb, j.act_rb, out);
                    for (int k = 0; k < quant::kDotRows; ++k) j.y[(t + k) * W.n_out + r] = out[k];
                }
            }
            for (; t < t1; ++t) j.y[t * W.n_out + r] = j.dot(W.n_in, wr, j.xq + t * j.act_rb);
        }
    }
}

// Quantizes x once per distinct activation format among jobs (bufs hold the bytes), then
// runs every job's rows in one pool run, work items taken dynamically across matrices.
void run_jobs(std::vector<Job>& jobs, const float* x, int64_t n_in, int64_t n_tok, ThreadPool& pool, int nth,
              const quant::DotTable& table) {
    std::vector<uint8_t> bufs[3];  // per ActFormat: (n_tok, act_rb) bytes
    for (Job& j : jobs) {
        const quant::ActFormat af = quant::act_format(j.W->type);
        j.act_rb = quant::act_row_bytes(af, n_in);
        if (af == quant::ActFormat::F32) {  // F32 activations are used as is
            j.xq = reinterpret_cast<const uint8_t*>(x);
            continue;
        }
        std::vector<uint8_t>& buf = bufs[static_cast<int>(af)];
        if (buf.empty()) {
            buf.resize(j.act_rb * n_tok);
            uint8_t* dst = buf.data();
            const size_t rb = j.act_rb;
            auto quantize_tokens = [&](int ith, int n) {
                for (int64_t t = ith; t < n_tok; t += n) table.quantize_act(af, x + t * n_in, dst + t * rb, n_in);
            };
            if (n_tok >= 4 && nth > 1) pool.run(nth, quantize_tokens);
            else quantize_tokens(0, 1);
        }
        j.xq = buf.data();
    }
    int64_t n_chunks = 0;
    for (Job& j : jobs) {
        j.chunk = row_chunk(j.W->n_out, nth);
        if (j.packed) j.chunk = (j.chunk + quant::kPackRows - 1) / quant::kPackRows * quant::kPackRows;
        j.first_chunk = n_chunks;
        n_chunks += (j.W->n_out + j.chunk - 1) / j.chunk;
    }
    WorkSplit split(n_chunks, nth);
    pool.run(nth, [&](int ith, int) {
        size_t m = 0;  // the matrix of chunk c: chunks come in increasing order within a region
        split.run(ith, [&](int64_t c) {
            if (c < jobs[m].first_chunk) m = 0;  // moved on to another thread's region
            while (m + 1 < jobs.size() && c >= jobs[m + 1].first_chunk) ++m;
            const Job& j = jobs[m];
            const int64_t r0 = (c - j.first_chunk) * j.chunk, r1 = std::min(j.W->n_out, r0 + j.chunk);
            run_rows(j, r0, r1, n_tok);
        });
    });
}
}  // namespace

void matmul(const QTensorView& W, const float* x, float* y, int64_t n_tok, ThreadPool& pool,
            int n_threads, quant::SimdPath path) {
    const quant::DotTable& table = quant::dot_table(path);
    std::vector<Job> jobs{make_job(W, y, table, n_tok)};
    if (n_tok < 0) throw InvalidArgument("matmul: negative size");
    if (n_tok == 0 || W.n_out == 0) return;
    const int nth = n_threads <= 0 ? pool.size() : std::min(n_threads, pool.size());
    run_jobs(jobs, x, W.n_in, n_tok, pool, nth, table);
}

void matmul_multi(const QTensorView* const* W, float* const* y, int n_mats, const float* x, int64_t n_tok,
                  ThreadPool& pool, int n_threads) {
    const quant::DotTable& table = quant::dot_table(quant::default_simd_path());
    std::vector<Job> jobs;
    jobs.reserve(static_cast<size_t>(n_mats));
    for (int i = 0; i < n_mats; ++i) {
        if (W[i]->n_in != W[0]->n_in)
            throw InvalidArgument("matmul_multi: the matrices must share the input length (n_in)");
        if (W[i]->n_out > 0) jobs.push_back(make_job(*W[i], y[i], table, n_tok));
    }
    if (n_tok < 0) throw InvalidArgument("matmul: negative size");
    if (n_tok == 0 || jobs.empty()) return;
    const int nth = n_threads <= 0 ? pool.size() : std::min(n_threads, pool.size());
    run_jobs(jobs, x, W[0]->n_in, n_tok, pool, nth, table);
}

}  // namespace pyllong
