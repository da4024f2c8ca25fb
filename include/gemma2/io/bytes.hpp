// The library's one byte reader and one byte writer, for every binary format
// it parses or writes: GGUF headers, the session and Generation blobs, the
// C ABI's session container. Values are in the CPU's byte order, which is
// little-endian on every supported target (x86-64, AArch64) and is what GGUF
// and the blobs specify. The reader checks every length against what is left
// before it reads or allocates, and keeps the first error, naming the field
// and its byte offset, so a hostile input gets a message, never a read past
// the end.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

// FNV-1a, the checksum at the end of the session and Generation blobs.
inline uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}

// A cursor over [data, data + size). After the first failure every read
// returns zero / empty / null and status() keeps that first error, prefixed
// with `source` (e.g. the file's path).
class ByteReader {
 public:
  // `source` names the bytes in messages (a path), `kind` says what they
  // are ("file", "blob").
  ByteReader(const void* data, size_t size, std::string source = "input", const char* kind = "input")
      : p_(static_cast<const uint8_t*>(data)), size_(size), source_(std::move(source)), kind_(kind) {}

  size_t pos() const { return pos_; }
  size_t size() const { return size_; }
  size_t left() const { return ok() ? size_ - pos_ : 0; }
  bool ok() const { return static_cast<bool>(status_); }
  const Status& status() const { return status_; }

  // A scalar (integer, float, double) in the CPU's byte order.
  template <class T>
  T read(const char* what) {
    static_assert(std::is_arithmetic_v<T>, "ByteReader::read reads scalars");
    T v{};
    if (const uint8_t* at = take(sizeof(T), what)) std::memcpy(&v, at, sizeof(T));
    return v;
  }
  uint32_t u32(const char* what) { return read<uint32_t>(what); }
  uint64_t u64(const char* what) { return read<uint64_t>(what); }

  // The next n bytes (null, and the reader failed, if fewer are left).
  const uint8_t* take(uint64_t n, const char* what) {
    if (!ok()) return nullptr;
    if (n > size_ - pos_) {
      fail(what, " at byte ", pos_, " runs past the end of the ", kind_, " (", size_, " bytes)");
      return nullptr;
    }
    const uint8_t* at = p_ + pos_;
    pos_ += static_cast<size_t>(n);
    return at;
  }

  // A u64 length, then that many bytes.
  std::string string(const char* what) {
    uint64_t n = 0;
    const uint8_t* at = sized(what, &n);
    return at ? std::string(reinterpret_cast<const char*>(at), static_cast<size_t>(n)) : std::string();
  }
  std::vector<uint8_t> byte_string(const char* what) {
    uint64_t n = 0;
    const uint8_t* at = sized(what, &n);
    return at ? std::vector<uint8_t>(at, at + n) : std::vector<uint8_t>();
  }

  // A u64 count of items that each take at least `min_bytes`: more than the
  // rest could hold is an error before anything is allocated.
  uint64_t count(const char* what, uint64_t min_bytes) {
    const uint64_t n = u64(what);
    if (ok() && n > (size_ - pos_) / min_bytes)
      fail(what, " ", n, " at byte ", pos_ - 8, " is more than the rest of the ", kind_, " (", size_ - pos_,
           " bytes) can hold");
    return ok() ? n : 0;
  }

  // Records the first error; later ones are consequences.
  template <class... Args>
  void fail(const Args&... args) {
    if (status_) status_ = err(source_, ": ", args...);
  }

 private:
  const uint8_t* sized(const char* what, uint64_t* n) {
    *n = u64(what);
    if (ok() && *n > size_ - pos_) {
      fail(what, ": string length ", *n, " at byte ", pos_ - 8, " runs past the end of the ", kind_, " (", size_,
           " bytes)");
      return nullptr;
    }
    return take(*n, what);
  }

  const uint8_t* p_;
  size_t size_, pos_ = 0;
  std::string source_;
  const char* kind_;
  Status status_;
};

// The writer twin: scalars in the CPU's byte order, strings with a u64
// length.
struct ByteWriter {
  std::vector<uint8_t> out;

  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
  template <class T>
  void put(T v) {
    static_assert(std::is_arithmetic_v<T>, "ByteWriter::put writes scalars");
    bytes(&v, sizeof v);
  }
  void u32(uint32_t v) { put(v); }
  void u64(uint64_t v) { put(v); }
  void string(const void* p, size_t n) {
    u64(n);
    bytes(p, n);
  }
  void string(const std::string& s) { string(s.data(), s.size()); }
  // Appends the FNV-1a checksum of everything written and returns the blob.
  std::vector<uint8_t> checksummed() && {
    u64(fnv1a(out.data(), out.size()));
    return std::move(out);
  }
};

// A double read from a file as float; false when it is finite but beyond
// float's range (casting it would be undefined behaviour, not infinity).
inline bool narrow_to_float(double d, float* out) {
  if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max())) return false;
  *out = static_cast<float>(d);
  return true;
}

// Whether the last 8 bytes of a blob (size >= 8) are the FNV-1a checksum of
// the bytes before them (ByteWriter::checksummed).
inline bool checksum_matches(const uint8_t* data, size_t size) {
  uint64_t stored = 0;
  std::memcpy(&stored, data + size - 8, 8);
  return fnv1a(data, size - 8) == stored;
}

}  // namespace detail

GEMMA2_END_NAMESPACE
