// The roofline that decode is measured against: how many bytes per second this process
// reads from memory with n threads. Decode streams every weight once per token, so its
// tokens/s can be at most read_bandwidth / bytes_per_token (pyllong bench --roofline).
#pragma once
#include <cstdint>

namespace pyllong {

// Best of `reps` passes over a buffer of `bytes` (rounded down to whole 64-byte lines; make
// it much larger than the last-level cache), each thread summing a contiguous slice.
double read_bandwidth(int64_t bytes, int n_threads, int reps);

}  // namespace pyllong
