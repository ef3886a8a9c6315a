#include "core/page_buffer.h"

#include <sys/mman.h>

#include <new>

namespace pyllong {

namespace {
constexpr size_t kHuge = size_t{2} << 20;
}

PageBuffer::PageBuffer(size_t n) {
    if (n == 0) return;
    // Below 2 MiB a huge page would mostly be waste: plain pages, no alignment slack.
    const bool huge = n >= kHuge;
    map_size_ = huge ? (n + kHuge - 1) / kHuge * kHuge + kHuge : n;  // room to align the start to 2 MiB
    map_ = ::mmap(nullptr, map_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map_ == MAP_FAILED) {
        map_ = nullptr;
        throw std::bad_alloc();
    }
    const auto base = reinterpret_cast<uintptr_t>(map_);
    data_ = reinterpret_cast<uint8_t*>(huge ? (base + kHuge - 1) / kHuge * kHuge : base);
    size_ = n;
#ifdef MADV_HUGEPAGE
    if (huge) ::madvise(data_, (n + kHuge - 1) / kHuge * kHuge, MADV_HUGEPAGE);  // a hint: failure is harmless
#endif
}

void PageBuffer::release() {
    if (map_) ::munmap(map_, map_size_);
    map_ = nullptr;
    data_ = nullptr;
    map_size_ = size_ = 0;
}

PageBuffer::~PageBuffer() { release(); }

PageBuffer& PageBuffer::operator=(PageBuffer&& o) noexcept {
    if (this != &o) {
        release();
        map_ = o.map_;
        map_size_ = o.map_size_;
        data_ = o.data_;
        size_ = o.size_;
        o.map_ = nullptr;
        o.data_ = nullptr;
        o.map_size_ = o.size_ = 0;
    }
    return *this;
}

}  // namespace pyllong
