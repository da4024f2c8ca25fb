// The Windows twin of os_posix.hpp (see os.hpp): CreateFileW, ReadFile,
// file mappings and VirtualAlloc. Paths arrive as UTF-8 and are widened, so
// any file name works whatever the system's ANSI code page.
//
// <windows.h> is included with NOMINMAX and WIN32_LEAN_AND_MEAN unless the
// host defined otherwise; a host that includes <windows.h> itself before
// gemma2 must define NOMINMAX (its min/max macros break std::min).
#pragma once

#include <filesystem>
#include <utility>

#ifndef NOMINMAX
#define NOMINMAX
#endif
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "gemma2/io/os_types.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

// `n` UTF-16 units (or, with n = -1, up to the terminating zero) as UTF-8.
inline std::string utf8_string(const wchar_t* w, int n) {
  const int len = ::WideCharToMultiByte(CP_UTF8, 0, w, n, nullptr, 0, nullptr, nullptr);
  std::string out(static_cast<size_t>(len > 0 ? len : 0), '\0');
  if (len > 0) ::WideCharToMultiByte(CP_UTF8, 0, w, n, out.data(), len, nullptr, nullptr);
  if (n < 0 && !out.empty()) out.pop_back();  // the converted terminator
  return out;
}

// A system error code as text, in UTF-8.
inline std::string win32_message(DWORD code) {
  wchar_t* text = nullptr;
  const DWORD n =
      ::FormatMessageW(FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS,
                       nullptr, code, 0, reinterpret_cast<wchar_t*>(&text), 0, nullptr);
  std::string out = n > 0 ? utf8_string(text, static_cast<int>(n)) : std::string();
  ::LocalFree(text);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r' || out.back() == ' ' || out.back() == '.'))
    out.pop_back();
  return out.empty() ? "error " + std::to_string(code) : out;
}

// The UTF-16 form of a UTF-8 path; invalid UTF-8 is an error, not a '?'.
inline Result<std::wstring> wide_path(const std::string& path) {
  if (path.empty()) return std::wstring();
  const int n =
      ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path.data(), static_cast<int>(path.size()), nullptr, 0);
  if (n <= 0) return err(path, ": the path is not valid UTF-8");
  std::wstring w(static_cast<size_t>(n), L'\0');
  ::MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path.data(), static_cast<int>(path.size()), w.data(), n);
  return w;
}

// A path as std::filesystem and the standard streams take it (a narrow
// string would be read in the ANSI code page, not as UTF-8).
inline Result<std::filesystem::path> fs_path(const std::string& path) {
  auto w = wide_path(path);
  if (!w) return Error{w.message()};
  return std::filesystem::path(*w);
}

inline bool path_exists(const std::string& path) {
  auto w = wide_path(path);
  return w && !w->empty() && ::GetFileAttributesW(w->c_str()) != INVALID_FILE_ATTRIBUTES;  // the link itself
}

// Why opening `path` failed with system error `e`, as a whole message.
inline Error path_error(const std::string& path, DWORD e) {
  switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
      if (path_exists(path)) return err(path, " is a dangling symbolic link (its target does not exist)");
      return err(path, " does not exist");
    case ERROR_CANT_RESOLVE_FILENAME: return err(path, " is a symbolic link loop (too many levels of symbolic links)");
    case ERROR_ACCESS_DENIED: return err(path, " cannot be read: permission denied");
    case ERROR_SHARING_VIOLATION: return err(path, " cannot be read: another program has it open exclusively");
    case ERROR_FILENAME_EXCED_RANGE: return err(path, ": the path is too long");
    case ERROR_INVALID_NAME: return err(path, ": not a valid path");
    default: return err("cannot open ", path, ": ", win32_message(e));
  }
}

class FileHandle {
 public:
  explicit FileHandle(HANDLE h = INVALID_HANDLE_VALUE) : h_(h) {}
  FileHandle(FileHandle&& o) noexcept : h_(std::exchange(o.h_, INVALID_HANDLE_VALUE)) {}
  FileHandle& operator=(FileHandle&& o) noexcept {
    if (this != &o) reset(std::exchange(o.h_, INVALID_HANDLE_VALUE));
    return *this;
  }
  FileHandle(const FileHandle&) = delete;
  FileHandle& operator=(const FileHandle&) = delete;
  ~FileHandle() { reset(INVALID_HANDLE_VALUE); }
  HANDLE get() const { return h_; }

 private:
  void reset(HANDLE h) {
    if (h_ != INVALID_HANDLE_VALUE) ::CloseHandle(h_);
    h_ = h;
  }
  HANDLE h_;
};

// Opens with every sharing mode, so other programs may read, write, rename
// or delete the file as they could on POSIX; access 0 only queries.
inline Result<FileHandle> open_handle(const std::string& path, DWORD access) {
  auto w = wide_path(path);
  if (!w) return Error{w.message()};
  if (w->empty()) return err("cannot open an empty path");
  // BACKUP_SEMANTICS: a directory opens too, and is then reported as one.
  FileHandle h(::CreateFileW(w->c_str(), access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                             OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, nullptr));
  if (h.get() == INVALID_HANDLE_VALUE) return path_error(path, ::GetLastError());
  return h;
}

inline Result<FileInfo> file_info(const FileHandle& f, const std::string& path) {
  switch (::GetFileType(f.get())) {
    case FILE_TYPE_CHAR: return FileInfo{FileKind::CharacterDevice, 0};  // NUL, CON, COM1
    case FILE_TYPE_PIPE: return FileInfo{FileKind::Fifo, 0};
    case FILE_TYPE_DISK: break;
    default: return FileInfo{FileKind::Other, 0};
  }
  BY_HANDLE_FILE_INFORMATION info{};
  if (!::GetFileInformationByHandle(f.get(), &info))
    return err("cannot query ", path, ": ", win32_message(::GetLastError()));
  if (info.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) return FileInfo{FileKind::Directory, 0};
  return FileInfo{FileKind::Regular, (uint64_t{info.nFileSizeHigh} << 32) | info.nFileSizeLow};
}

inline Result<FileKind> path_kind(const std::string& path) {
  auto h = open_handle(path, 0);
  if (!h) return Error{h.message()};
  auto info = file_info(*h, path);
  if (!info) return Error{info.message()};
  return info->kind;
}

inline Result<FileHandle> open_for_reading(const std::string& path) { return open_handle(path, GENERIC_READ); }

// Positional reads (an OVERLAPPED offset on a synchronous handle), like pread.
inline Result<size_t> read_at(const FileHandle& f, const std::string& path, char* out, size_t n, uint64_t offset) {
  OVERLAPPED at{};
  at.Offset = static_cast<DWORD>(offset);
  at.OffsetHigh = static_cast<DWORD>(offset >> 32);
  DWORD got = 0;
  const DWORD want = static_cast<DWORD>(n < (1u << 30) ? n : (1u << 30));
  if (!::ReadFile(f.get(), out, want, &got, &at)) {
    const DWORD e = ::GetLastError();
    if (e == ERROR_HANDLE_EOF) return size_t{0};
    return err("cannot read ", path, ": ", win32_message(e));
  }
  return static_cast<size_t>(got);
}

// A read-only view of the file. Windows refuses to truncate a file while a
// view of it exists, so the SIGBUS a POSIX host risks cannot happen here.
inline Result<const std::byte*> map_read_only(const FileHandle& f, const std::string& path, size_t size) {
  HANDLE mapping = ::CreateFileMappingW(f.get(), nullptr, PAGE_READONLY, 0, 0, nullptr);
  if (mapping == nullptr) return err("cannot map ", path, ": ", win32_message(::GetLastError()));
  const void* view = ::MapViewOfFile(mapping, FILE_MAP_READ, 0, 0, size);
  const DWORD e = ::GetLastError();
  ::CloseHandle(mapping);  // the view keeps the mapping alive
  if (view == nullptr) return err("cannot map ", path, ": ", win32_message(e));
  return static_cast<const std::byte*>(view);
}
inline void unmap(const std::byte* p, size_t) { ::UnmapViewOfFile(p); }

inline Result<std::byte*> allocate_pages(const std::string& path, size_t size) {
  void* p = ::VirtualAlloc(nullptr, size, MEM_RESERVE | MEM_COMMIT, PAGE_READWRITE);
  if (p == nullptr) return err("cannot allocate memory for ", path, ": ", win32_message(::GetLastError()));
  return static_cast<std::byte*>(p);
}
inline void make_read_only(std::byte* p, size_t size) {
  DWORD old = 0;
  ::VirtualProtect(p, size, PAGE_READONLY, &old);
}
inline void free_pages(std::byte* p, size_t) { ::VirtualFree(p, 0, MEM_RELEASE); }

}  // namespace detail
GEMMA2_END_NAMESPACE
