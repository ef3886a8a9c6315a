// How much memory a Context will allocate, checked before it allocates: a KV cache for an
// absurd n_ctx must fail with a message that says how many bytes it needs, not with an
// abort, a bad_alloc from deep inside, or the OOM killer after memset touched every page
// (hardening item 29; llama-server #24098).
#pragma once
#include <cstdint>

#include "model/context.h"

namespace pyllong {

// Host bytes of the KV cache (K, V, SelfExtend's grouped K, positions; layers on the GPU
// excluded) and the per-chunk scratch.
uint64_t context_bytes(const ContextParams& p, const HParams& hp);

// What this process can still get: MemAvailable, the cgroup's remaining limit, and
// $PYLLONG_MEMORY_LIMIT (bytes, a cap a user or test may set), whichever is smallest;
// UINT64_MAX when none is known.
uint64_t available_memory();

// Throws OutOfMemory naming the bytes needed and available when context_bytes > available.
void check_context_memory(const ContextParams& p, const HParams& hp);

}  // namespace pyllong
