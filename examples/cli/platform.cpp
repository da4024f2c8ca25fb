#include "platform.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#if defined(_WIN32)
#ifndef NOMINMAX
#define NOMINMAX  // windows.h would define min and max as macros
#endif
#include <windows.h>
#include <fcntl.h>
#include <io.h>
#include <shellapi.h>
#else
#include <unistd.h>
#endif
#if defined(__APPLE__)
#include <mach-o/dyld.h>  // _NSGetExecutablePath
#endif

namespace gemma2_cli {
namespace {

#if defined(_WIN32)
// `n` UTF-16 units as UTF-8.
std::string utf8(const wchar_t* w, size_t n) {
  const int wide = static_cast<int>(n), len = WideCharToMultiByte(CP_UTF8, 0, w, wide, nullptr, 0, nullptr, nullptr);
  std::string out(static_cast<size_t>(len > 0 ? len : 0), '\0');
  if (len > 0) WideCharToMultiByte(CP_UTF8, 0, w, wide, out.data(), len, nullptr, nullptr);
  return out;
}
#endif

// The running program's path (UTF-8), or "" where the system does not say.
std::string executable_path() {
#if defined(_WIN32)
  std::wstring path(MAX_PATH, L'\0');
  for (;;) {
    const DWORD n = GetModuleFileNameW(nullptr, path.data(), static_cast<DWORD>(path.size()));
    if (n == 0) return "";
    if (n < path.size()) return utf8(path.data(), n);
    path.resize(path.size() * 2);  // truncated: n == size
  }
#elif defined(__APPLE__)
  uint32_t size = 0;
  _NSGetExecutablePath(nullptr, &size);  // sets the size needed
  std::string path(size, '\0');
  if (_NSGetExecutablePath(path.data(), &size) != 0) return "";
  path.resize(std::strlen(path.c_str()));
  return path;
#elif defined(__linux__)
  std::string path(256, '\0');
  for (;;) {
    const ssize_t n = readlink("/proc/self/exe", path.data(), path.size());
    if (n < 0) return "";
    if (static_cast<size_t>(n) < path.size()) return path.substr(0, static_cast<size_t>(n));
    path.resize(path.size() * 2);  // perhaps truncated: n == size
  }
#else
  return "";
#endif
}

}  // namespace

std::string default_model_dir() {
  if (const char* env = std::getenv("GEMMA2_MODEL")) return env;
  std::string dir = executable_path(), relative = GEMMA2_INSTALLED_MODEL_DIR;
  // Up from the program: once for its name, once per leading "../".
  for (bool up = true; up;) {
    const size_t end = dir.find_last_of("/\\");
    if (end == std::string::npos) return GEMMA2_DEFAULT_MODEL_DIR;
    dir.resize(end);
    up = relative.compare(0, 3, "../") == 0;
    if (up) relative.erase(0, 3);
  }
  const std::string installed = dir + "/" + relative;
  std::error_code error;  // none there (or unreadable): not installed
  return std::filesystem::is_directory(std::filesystem::u8path(installed), error) ? installed
                                                                                  : GEMMA2_DEFAULT_MODEL_DIR;
}

#if defined(_WIN32)
void use_utf8_console() {
  SetConsoleOutputCP(CP_UTF8);
  SetConsoleCP(CP_UTF8);
  _setmode(_fileno(stdout), _O_BINARY);
  _setmode(_fileno(stderr), _O_BINARY);
}

std::vector<std::string> utf8_arguments() {
  int n = 0;
  wchar_t** wide = CommandLineToArgvW(GetCommandLineW(), &n);
  std::vector<std::string> out;
  for (int i = 0; wide && i < n; ++i) out.push_back(utf8(wide[i], std::wcslen(wide[i])));
  LocalFree(wide);
  return out;
}
#endif

}  // namespace gemma2_cli
