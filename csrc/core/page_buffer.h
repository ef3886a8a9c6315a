// A zero-initialized buffer of whole pages; from 2 MiB on, asked to be backed by transparent
// huge pages where the kernel offers them (madvise mode): weights streamed once per token from
// memory then cost one TLB entry per 2 MiB instead of per 4 KiB (numpy does the same for
// its large arrays).
#pragma once
#include <cstddef>
#include <cstdint>

namespace pyllong {

class PageBuffer {
public:
    PageBuffer() = default;
    explicit PageBuffer(size_t n);  // throws std::bad_alloc when the memory is not there
    ~PageBuffer();
    PageBuffer(PageBuffer&& o) noexcept { *this = static_cast<PageBuffer&&>(o); }
    PageBuffer& operator=(PageBuffer&& o) noexcept;
    PageBuffer(const PageBuffer&) = delete;
    PageBuffer& operator=(const PageBuffer&) = delete;

    uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }

private:
    void release();
    void* map_ = nullptr;
    size_t map_size_ = 0;
    uint8_t* data_ = nullptr;  // 2 MiB aligned inside map_
    size_t size_ = 0;
};

}  // namespace pyllong
