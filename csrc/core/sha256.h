// SHA-256 (FIPS 180-4), for state-file checksums and model fingerprints. Incremental:
// update() any number of times, then digest(). Small and dependency-free on purpose: the
// state loader must verify a checksum before it trusts a single field of a file.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>

namespace pyllong {

class Sha256 {
public:
    using Digest = std::array<uint8_t, 32>;

    Sha256();
    void update(const void* data, size_t n);
    Digest digest();  // finishes; the object must not be updated afterwards

    static Digest of(const void* data, size_t n) {
        Sha256 h;
        h.update(data, n);
        return h.digest();
    }

private:
    void block(const uint8_t* p);  // one 64-byte block

    uint32_t h_[8];
    uint8_t buf_[64];
    size_t buf_len_ = 0;
    uint64_t total_ = 0;  // bytes hashed so far
};

}  // namespace pyllong
