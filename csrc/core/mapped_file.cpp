#include "core/mapped_file.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

namespace pyllong {

MappedFile::MappedFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        throw IOError("cannot open '" + path + "': " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        int e = errno;
        ::close(fd);
        throw IOError("cannot stat '" + path + "': " + std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        throw IOError("'" + path + "' is not a regular file");
    }
    size_ = static_cast<size_t>(st.st_size);
    if (size_ > 0) {
        map_ = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
        if (map_ == MAP_FAILED) {
            int e = errno;
            ::close(fd);
            map_ = nullptr;
            throw IOError("cannot mmap '" + path + "': " + std::strerror(e));
        }
        map_size_ = size_;
        data_ = static_cast<const uint8_t*>(map_);
    }
    ::close(fd);  // the mapping keeps the file alive
}

MappedFile::~MappedFile() {
    if (map_) ::munmap(map_, map_size_);
}

void MappedFile::drop_pages(const uint8_t* p, size_t n) const {
    if (!map_ || n == 0) return;
    const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
    const auto lo = (reinterpret_cast<uintptr_t>(p) + page - 1) / page * page;
    const auto hi = (reinterpret_cast<uintptr_t>(p) + n) / page * page;
    const auto base = reinterpret_cast<uintptr_t>(map_);
    if (lo >= hi || lo < base || hi > base + map_size_) return;
    ::madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);  // read-only shared file pages: reread on access
}

}  // namespace pyllong
