// The operating system's files and memory, behind one small interface with
// a POSIX twin (os_posix.hpp) and a Windows twin (os_win32.hpp): the rest
// of the library never names an OS call. Paths are UTF-8 on every system.
#pragma once

#include "gemma2/io/os_types.hpp"

// Each twin defines, in gemma2::detail:
//   Result<FileKind> path_kind(path)       what path names (following links), or why nothing
//   Result<std::filesystem::path> fs_path(path)   for std::filesystem and streams
//   bool path_exists(path)                 anything there, a dangling link included
//   class FileHandle                       an open file, closed with the object
//   Result<FileHandle> open_for_reading(path)   never blocks (a FIFO swapped in)
//   Result<FileInfo> file_info(handle, path)
//   Result<size_t> read_at(handle, path, out, n, offset)   0 at the end of the file
//   Result<const std::byte*> map_read_only(handle, path, size);  unmap(data, size)
//   Result<std::byte*> allocate_pages(path, size); make_read_only(p, size); free_pages(p, size)
#if defined(_WIN32)
#include "gemma2/io/os_win32.hpp"
#else
#include "gemma2/io/os_posix.hpp"
#endif
