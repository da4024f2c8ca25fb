// Read-only memory mapping of checkpoint files, so weights are used in place
// and only the pages a computation touches are read from disk.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

// A read-only memory mapping of a whole file, or (from_bytes) a buffer it
// owns that stands in for one.
class MappedFile {
 public:
  static Result<std::shared_ptr<const MappedFile>> open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err("cannot open ", path, ": ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      return err("cannot open ", path, ": not a regular file");
    }
    const size_t size = static_cast<size_t>(st.st_size);
    void* data = nullptr;
    if (size > 0) {
      data = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (data == MAP_FAILED) {
        const int e = errno;
        ::close(fd);
        return err("cannot map ", path, ": ", std::strerror(e));
      }
    }
    ::close(fd);
    return std::shared_ptr<const MappedFile>(new MappedFile(path, static_cast<const std::byte*>(data), size));
  }

  // The bytes of a "file" held in memory, under `name` (used in messages),
  // so the parsers that take a MappedFile can read data that never was on
  // disk: fuzzers and tests feed inputs this way without temporary files
  // (and AddressSanitizer sees a read one byte past the end of the buffer,
  // which inside the last page of a mapping goes unnoticed).
  static std::shared_ptr<const MappedFile> from_bytes(std::string name, std::vector<std::byte> bytes) {
    auto f = std::shared_ptr<MappedFile>(new MappedFile(std::move(name), nullptr, bytes.size()));
    f->owned_ = std::move(bytes);
    f->data_ = f->owned_.data();
    f->mapped_ = false;
    return f;
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (mapped_) ::munmap(const_cast<std::byte*>(data_), size_);
  }

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const std::byte* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size), mapped_(data != nullptr) {}
  std::string path_;
  const std::byte* data_;
  size_t size_;
  bool mapped_;                   // data_ is an mmap to undo
  std::vector<std::byte> owned_;  // from_bytes: the data itself (data_ points into it)
};

}  // namespace detail
GEMMA2_END_NAMESPACE
