// Read-only memory mapping of checkpoint files, so weights are used in place
// and only the pages a computation touches are read from disk.
#pragma once

#include <cstddef>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <cerrno>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gemma2/io/file.hpp"

GEMMA2_BEGIN_NAMESPACE

// How a model's weight files are held (LoadOptions::mapping).
enum class Mapping {
  // Memory-mapped and used in place: no copy, pages read on first use and
  // shared with other processes mapping the same file. The file must not
  // be truncated or rewritten in place while the model lives: touching a
  // page that no longer exists raises SIGBUS.
  Mapped,
  // Read into memory at load: costs the file's size in RAM and a full read,
  // and nothing done to the file afterwards affects the model.
  Copied,
};

namespace detail {

// A read-only memory mapping of a whole file, or (from_bytes) a buffer it
// owns that stands in for one.
class MappedFile {
 public:
  // Maps the regular file at `path` read-only, or (Mapping::Copied) reads
  // it into anonymous memory of the same page alignment.
  static Result<std::shared_ptr<const MappedFile>> open(const std::string& path, Mapping mapping = Mapping::Mapped) {
    const bool copy = mapping == Mapping::Copied;
    auto f = open_regular_file(path);
    if (!f) return Error{f.message()};
    if (f->size > std::numeric_limits<size_t>::max() / 2) return err(path, ": ", f->size, " bytes cannot be mapped");
    const auto size = static_cast<size_t>(f->size);
    void* data = copy ? ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                      : ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f->handle.get(), 0);
    if (data == MAP_FAILED) return err(copy ? "cannot allocate memory for " : "cannot map ", path, ": ", std::strerror(errno));
    auto mapped = std::shared_ptr<MappedFile>(new MappedFile(path, static_cast<const std::byte*>(data), size));
    mapped->file_backed_ = !copy;
    if (copy) {
      if (Status s = read_exactly(path, f->handle.get(), static_cast<char*>(data), size); !s) return Error{s.message()};
      ::mprotect(data, size, PROT_READ);
    }
    return std::shared_ptr<const MappedFile>(std::move(mapped));
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
  // The bytes are the file's pages (a mapping), not memory of our own.
  bool file_backed() const { return file_backed_; }

 private:
  MappedFile(std::string path, const std::byte* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size), mapped_(data != nullptr) {}
  std::string path_;
  const std::byte* data_;
  size_t size_;
  bool mapped_;                   // data_ is an mmap to undo
  bool file_backed_ = false;      // ... of the file itself, not a copy
  std::vector<std::byte> owned_;  // from_bytes: the data itself (data_ points into it)
};

}  // namespace detail
GEMMA2_END_NAMESPACE
