// Opening the files a model is made of. Paths come from users and hosts, so
// a path may name anything: a directory, a FIFO that would block a reader
// forever, a device that never ends (/dev/zero), a dangling symlink, a loop.
// Every file the library reads is opened here, its kind checked with stat
// before it is opened and again with fstat after (it may have been swapped
// in between), and its size known before anything is read, so the errors
// say what the path is instead of what a later read tripped over.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include "gemma2/io/os.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

struct OpenedFile {
  FileHandle handle;
  uint64_t size = 0;
};

// Opens `path` for reading if it names a readable, non-empty regular file
// (after symlinks); otherwise an error saying what it is ("... is a
// directory, not a file", "... is a character device, not a regular file").
inline Result<OpenedFile> open_regular_file(const std::string& path) {
  auto kind_error = [&](FileKind kind) {
    if (kind == FileKind::Directory) return err(path, " is a directory, not a file");
    return err(path, " is ", file_kind_name(kind), ", not a regular file");
  };
  auto kind = path_kind(path);
  if (!kind) return Error{kind.message()};
  if (*kind != FileKind::Regular) return kind_error(*kind);  // never opened: a FIFO would block, a device never end
  auto f = open_for_reading(path);
  if (!f) return Error{f.message()};
  auto now = file_info(*f, path);  // it may have been swapped since
  if (!now) return Error{now.message()};
  if (now->kind != FileKind::Regular) return kind_error(now->kind);
  if (now->size == 0) return err(path, " is empty");
  return OpenedFile{std::move(*f), now->size};
}

// Reads `size` bytes of an open file from its start into `out`; an error if
// the file ends early (it shrank since it was opened).
inline Status read_exactly(const std::string& path, const FileHandle& f, char* out, uint64_t size) {
  uint64_t done = 0;
  while (done < size) {
    auto n = read_at(f, path, out + done, static_cast<size_t>(std::min<uint64_t>(size - done, 1u << 30)), done);
    if (!n) return Error{n.message()};
    if (*n == 0) return err(path, " became shorter while it was read (", done, " of ", size, " bytes)");
    done += *n;
  }
  return {};
}

// Creates (or truncates) `path` and opens it for binary writing.
inline Status open_for_writing(const std::string& path, std::ofstream& out) {
  auto p = fs_path(path);
  if (!p) return Error{p.message()};
  out.open(*p, std::ios::binary | std::ios::trunc);
  if (!out) return err("cannot create ", path, ": ", std::strerror(errno));
  return {};
}

}  // namespace detail

// The contents of a regular file of at most `max_bytes` bytes, for files a
// host keeps beside a model (saved sessions, prompts). Anything else at the
// path (a directory, a FIFO, a device, a dangling or looping symlink, an
// unreadable or empty file, or a larger file) is an error saying so.
inline Result<std::string> read_file(const std::string& path, uint64_t max_bytes) {
  auto f = detail::open_regular_file(path);
  if (!f) return Error{f.message()};
  if (f->size > max_bytes) return detail::err(path, ": ", f->size, " bytes is larger than the ", max_bytes, " allowed");
  return detail::guard("reading " + path, [&]() -> Result<std::string> {
    std::string text(static_cast<size_t>(f->size), '\0');
    if (Status s = detail::read_exactly(path, f->handle, text.data(), f->size); !s) return Error{s.message()};
    return text;
  });
}

// Writes `size` bytes to `path` (created or replaced), for the files a host
// keeps beside a model; the counterpart of read_file.
inline Status write_file(const std::string& path, const void* data, size_t size) {
  std::ofstream out;
  if (Status s = detail::open_for_writing(path, out); !s) return s;
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  out.close();
  if (!out) return detail::err("cannot write ", path, ": ", std::strerror(errno));
  return {};
}

GEMMA2_END_NAMESPACE
