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

#include "gemma2/io/file.hpp"

GEMMA2_BEGIN_NAMESPACE

// How a model's weight files are held (LoadOptions::mapping).
enum class Mapping {
  // Memory-mapped and used in place: no copy, pages read on first use and
  // shared with other processes mapping the same file. On POSIX systems
  // the file must not be truncated or rewritten in place while the model
  // lives: touching a page that no longer exists raises SIGBUS (Windows
  // refuses to truncate a mapped file).
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
    if (!copy) {
      auto data = map_read_only(f->handle, path, size);
      if (!data) return Error{data.message()};
      return std::shared_ptr<const MappedFile>(new MappedFile(path, *data, size, Owner::FileMapping));
    }
    auto data = allocate_pages(path, size);
    if (!data) return Error{data.message()};
    auto mapped = std::shared_ptr<MappedFile>(new MappedFile(path, *data, size, Owner::Pages));
    if (Status s = read_exactly(path, f->handle, reinterpret_cast<char*>(*data), size); !s) return Error{s.message()};
    make_read_only(*data, size);
    return std::shared_ptr<const MappedFile>(std::move(mapped));
  }

  // The bytes of a "file" held in memory, under `name` (used in messages),
  // so the parsers that take a MappedFile can read data that never was on
  // disk: fuzzers and tests feed inputs this way without temporary files
  // (and AddressSanitizer sees a read one byte past the end of the buffer,
  // which inside the last page of a mapping goes unnoticed).
  static std::shared_ptr<const MappedFile> from_bytes(std::string name, std::vector<std::byte> bytes) {
    auto f = std::shared_ptr<MappedFile>(new MappedFile(std::move(name), nullptr, bytes.size(), Owner::Bytes));
    f->owned_ = std::move(bytes);
    f->data_ = f->owned_.data();
    return f;
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile() {
    if (owner_ == Owner::FileMapping) unmap(data_, size_);
    if (owner_ == Owner::Pages) free_pages(const_cast<std::byte*>(data_), size_);
  }

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // The bytes are the file's pages (a mapping), not memory of our own.
  bool file_backed() const { return owner_ == Owner::FileMapping; }

 private:
  enum class Owner { FileMapping, Pages, Bytes };  // what data_ is, to release
  MappedFile(std::string path, const std::byte* data, size_t size, Owner owner)
      : path_(std::move(path)), data_(data), size_(size), owner_(owner) {}
  std::string path_;
  const std::byte* data_;
  size_t size_;
  Owner owner_;
  std::vector<std::byte> owned_;  // from_bytes: the data itself (data_ points into it)
};

}  // namespace detail
GEMMA2_END_NAMESPACE
