// Read-only bytes of a file: mmap'ed when opened from a path, or owned when built from
// a buffer (the fuzzer and tests parse bytes that never touch the disk).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace pyllong {

class Bytes {
public:
    virtual ~Bytes() = default;
    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    // The whole pages inside [p, p + n) may leave memory: a later read faults them back in
    // from the file. No-op for owned bytes (they have no file behind them).
    virtual void drop_pages(const uint8_t* p, size_t n) const {}

protected:
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// Maps the whole file read-only. Throws IOError when it cannot.
class MappedFile final : public Bytes {
public:
    explicit MappedFile(const std::string& path);
    ~MappedFile() override;
    void drop_pages(const uint8_t* p, size_t n) const override;
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

private:
    void* map_ = nullptr;
    size_t map_size_ = 0;
};

class OwnedBytes final : public Bytes {
public:
    explicit OwnedBytes(std::vector<uint8_t> v) : buf_(std::move(v)) {
        data_ = buf_.data();
        size_ = buf_.size();
    }

private:
    std::vector<uint8_t> buf_;
};

}  // namespace pyllong
