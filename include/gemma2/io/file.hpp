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
#include <string>
#include <utility>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

// "a directory", "a named pipe (FIFO)", ... for a stat mode.
inline const char* file_kind(mode_t mode) {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a named pipe (FIFO)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

// Why stat/open of `path` failed with errno `e`, as a whole message.
inline Error path_error(const std::string& path, int e) {
  struct stat link {};
  switch (e) {
    case ENOENT:
      if (::lstat(path.c_str(), &link) == 0 && S_ISLNK(link.st_mode))
        return err(path, " is a dangling symbolic link (its target does not exist)");
      return err(path, " does not exist");
    case ELOOP: return err(path, " is a symbolic link loop (too many levels of symbolic links)");
    case EACCES: return err(path, " cannot be read: permission denied");
    case ENOTDIR: return err(path, ": a component of the path is not a directory");
    case ENAMETOOLONG: return err(path, ": the path is too long");
    default: return err("cannot open ", path, ": ", std::strerror(e));
  }
}

// The stat of what `path` names (following symlinks), or why there is none.
inline Result<struct stat> stat_path(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path_error(path, errno);
  return st;
}

// Whether anything is at `path`, a dangling symlink included (so that it is
// reported as what it is rather than as absent).
inline bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// An open file descriptor, closed with the object.
class FileHandle {
 public:
  explicit FileHandle(int fd = -1) : fd_(fd) {}
  FileHandle(FileHandle&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  FileHandle& operator=(FileHandle&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle() { reset(-1); }
  int get() const { return fd_; }

 private:
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int fd_;
};

struct OpenedFile {
  FileHandle handle;
  uint64_t size = 0;
};

// Opens `path` for reading if it names a readable, non-empty regular file
// (after symlinks); otherwise an error saying what it is ("... is a
// directory, not a file", "... is a character device, not a regular file").
inline Result<OpenedFile> open_regular_file(const std::string& path) {
  auto kind_error = [&](mode_t mode) {
    if (S_ISDIR(mode)) return err(path, " is a directory, not a file");
    return err(path, " is ", file_kind(mode), ", not a regular file");
  };
  auto st = stat_path(path);
  if (!st) return Error{st.message()};
  if (!S_ISREG(st->st_mode)) return kind_error(st->st_mode);  // never opened: a FIFO would block, a device never end
  // O_NONBLOCK: should a FIFO be swapped in after the stat, open returns at once.
  FileHandle fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) return path_error(path, errno);
  struct stat now {};
  if (::fstat(fd.get(), &now) != 0) return err("cannot stat ", path, ": ", std::strerror(errno));
  if (!S_ISREG(now.st_mode)) return kind_error(now.st_mode);
  if (now.st_size == 0) return err(path, " is empty");
  return OpenedFile{std::move(fd), static_cast<uint64_t>(now.st_size)};
}

// Reads `size` bytes of an open file from its start into `out`; an error if
// the file ends early (it shrank since it was opened).
inline Status read_exactly(const std::string& path, int fd, char* out, uint64_t size) {
  uint64_t done = 0;
  while (done < size) {
    const ssize_t n = ::pread(fd, out + done, static_cast<size_t>(std::min<uint64_t>(size - done, 1u << 30)),
                              static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return err("cannot read ", path, ": ", std::strerror(errno));
    if (n == 0) return err(path, " became shorter while it was read (", done, " of ", size, " bytes)");
    done += static_cast<uint64_t>(n);
  }
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
    if (Status s = detail::read_exactly(path, f->handle.get(), text.data(), f->size); !s) return Error{s.message()};
    return text;
  });
}

GEMMA2_END_NAMESPACE
