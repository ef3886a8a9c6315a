// The sampler's random generator: xoshiro256** (Blackman & Vigna, 2018) seeded through
// splitmix64, as its authors recommend. Small, fast, good statistical quality, and fully
// specified here, so a seed gives the same numbers on every platform and compiler (which
// std::mt19937 + std::uniform_real_distribution do not promise). It does NOT reproduce
// numpy's generator: the same seed samples differently in Python and in pyllong-chat;
// only greedy decoding (temperature 0) is expected to agree token for token.
#pragma once
#include <cstdint>

namespace pyllong {

class Rng {
public:
    explicit Rng(uint64_t seed) {
        for (auto& s : s_) s = splitmix64(seed);
    }

    uint64_t next() {
        const uint64_t result = rotl(s_[1] * 5, 7) * 9;
        const uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }

    // Uniform in [0, 1) with 53 random bits, like numpy's Generator.random().
    double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

private:
    static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    static uint64_t splitmix64(uint64_t& x) {
        uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    uint64_t s_[4];
};

}  // namespace pyllong
