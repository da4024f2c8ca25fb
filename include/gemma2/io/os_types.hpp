// What the two operating-system twins (os_posix.hpp, os_win32.hpp) say
// about a path, in types of their own so that os.hpp can choose a twin and
// each twin can use them without including os.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

// What a path names, after symbolic links.
enum class FileKind { Regular, Directory, Fifo, CharacterDevice, BlockDevice, Socket, Other };

// "a directory", "a named pipe (FIFO)", ... for messages.
inline const char* file_kind_name(FileKind kind) {
  switch (kind) {
    case FileKind::Regular: return "a regular file";
    case FileKind::Directory: return "a directory";
    case FileKind::Fifo: return "a named pipe (FIFO)";
    case FileKind::CharacterDevice: return "a character device";
    case FileKind::BlockDevice: return "a block device";
    case FileKind::Socket: return "a socket";
    case FileKind::Other: break;
  }
  return "not a regular file";
}

struct FileInfo {
  FileKind kind = FileKind::Other;
  uint64_t size = 0;
};

}  // namespace detail
GEMMA2_END_NAMESPACE
