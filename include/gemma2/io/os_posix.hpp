// The POSIX twin of os_win32.hpp (see os.hpp): stat, open, pread, mmap.
#pragma once

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gemma2/io/os_types.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

inline FileKind kind_of(mode_t mode) {
  if (S_ISREG(mode)) return FileKind::Regular;
  if (S_ISDIR(mode)) return FileKind::Directory;
  if (S_ISFIFO(mode)) return FileKind::Fifo;
  if (S_ISCHR(mode)) return FileKind::CharacterDevice;
  if (S_ISBLK(mode)) return FileKind::BlockDevice;
  if (S_ISSOCK(mode)) return FileKind::Socket;
  return FileKind::Other;
}

// A path as std::filesystem and the standard streams take it.
inline Result<std::filesystem::path> fs_path(const std::string& path) { return std::filesystem::path(path); }

inline bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// Why stat/open of `path` failed with errno `e`, as a whole message.
inline Error path_error(const std::string& path, int e) {
  switch (e) {
    case ENOENT:
      if (path_exists(path)) return err(path, " is a dangling symbolic link (its target does not exist)");
      return err(path, " does not exist");
    case ELOOP: return err(path, " is a symbolic link loop (too many levels of symbolic links)");
    case EACCES: return err(path, " cannot be read: permission denied");
    case ENOTDIR: return err(path, ": a component of the path is not a directory");
    case ENAMETOOLONG: return err(path, ": the path is too long");
    default: return err("cannot open ", path, ": ", std::strerror(e));
  }
}

inline Result<FileKind> path_kind(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return path_error(path, errno);
  return kind_of(st.st_mode);
}

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

inline Result<FileHandle> open_for_reading(const std::string& path) {
  // O_NONBLOCK: should a FIFO be swapped in after a stat, open returns at once.
  FileHandle fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY));
  if (fd.get() < 0) return path_error(path, errno);
  return fd;
}

inline Result<FileInfo> file_info(const FileHandle& f, const std::string& path) {
  struct stat st {};
  if (::fstat(f.get(), &st) != 0) return err("cannot stat ", path, ": ", std::strerror(errno));
  return FileInfo{kind_of(st.st_mode), static_cast<uint64_t>(st.st_size)};
}

inline Result<size_t> read_at(const FileHandle& f, const std::string& path, char* out, size_t n, uint64_t offset) {
  for (;;) {
    const ssize_t got = ::pread(f.get(), out, n, static_cast<off_t>(offset));
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) return err("cannot read ", path, ": ", std::strerror(errno));
  }
}

// MAP_PRIVATE and read-only: the pages are the file's, shared with every
// process mapping it. Truncating the file while mapped makes later reads of
// the lost pages fault (SIGBUS): Mapping::Copied is the defence.
inline Result<const std::byte*> map_read_only(const FileHandle& f, const std::string& path, size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, f.get(), 0);
  if (p == MAP_FAILED) return err("cannot map ", path, ": ", std::strerror(errno));
  return static_cast<const std::byte*>(p);
}
inline void unmap(const std::byte* p, size_t size) { ::munmap(const_cast<std::byte*>(p), size); }

inline Result<std::byte*> allocate_pages(const std::string& path, size_t size) {
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return err("cannot allocate memory for ", path, ": ", std::strerror(errno));
  return static_cast<std::byte*>(p);
}
inline void make_read_only(std::byte* p, size_t size) { ::mprotect(p, size, PROT_READ); }
inline void free_pages(std::byte* p, size_t size) { ::munmap(p, size); }

}  // namespace detail
GEMMA2_END_NAMESPACE
