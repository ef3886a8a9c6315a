// An inverted-file (IVF) index over one memory head's keys, for approximate top-k by dot
// product on memories too large to scan (a million tokens and more). Keys are clustered by
// k-means into n_list lists; a query scans only the rows of the n_probe lists whose centroids
// score highest against it. Built incrementally, since memory grows by appends: trained once
// the head holds enough rows, new rows join their nearest list as they come, and it is
// retrained when the memory has grown 4x since (k-means on a sample, so a training pass
// costs O(n * n_list * head_dim) for the assignment of all rows).
#pragma once
#include <cstdint>
#include <vector>

namespace pyllong {

class IvfIndex {
public:
    IvfIndex() = default;
    explicit IvfIndex(int64_t head_dim) : hd_(head_dim) {}

    bool trained() const { return n_list_ > 0; }
    int64_t n_list() const { return n_list_; }
    int64_t trained_at() const { return trained_at_; }

    // Row ids are absolute: row i of the head's array is id base + i (base grows with FIFO
    // eviction). keys: (n, head_dim) f16, the rows with ids [id0, id0 + n).
    void train(const uint16_t* keys, int64_t n, int64_t id0);
    void add(const uint16_t* keys, int64_t n, int64_t id0);
    void forget_below(int64_t id);  // evicted rows
    void forget_from(int64_t id);   // truncated rows

    // Ids of the rows in the n_probe lists whose centroids have the highest q . c, appended to out.
    void probe(const float* q, int64_t n_probe, std::vector<int64_t>& out) const;

private:
    int64_t nearest(const float* x) const;  // list of a row (L2, as k-means)

    int64_t hd_ = 0, n_list_ = 0, trained_at_ = 0;
    std::vector<float> centroids_;              // (n_list, head_dim)
    std::vector<float> half_norm2_;             // (n_list,) |c|^2 / 2, for L2 by dot products
    std::vector<std::vector<int64_t>> lists_;   // (n_list,) absolute row ids, ascending
};

}  // namespace pyllong
