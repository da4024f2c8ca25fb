// UTF-8 as RFC 3629 defines it (no overlong forms, no surrogates
// D800-DFFF, nothing past U+10FFFF): the library's one decoder and one
// encoder. The tokenizer validates text and holds back incomplete
// characters with it, the grammar parser and the regex translation of
// JSON Schema patterns read their sources with it, and the grammar
// matcher runs it a byte at a time (Utf8Pending) to follow text as a
// model emits it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// UTF-8 bytes of code point `cp`.
inline uint32_t utf8_length(uint32_t cp) { return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4; }

// A character read so far: its bits, how many continuation bytes it still
// needs and the range the next one must be in (RFC 3629 section 4: the
// second byte's range excludes overlongs, surrogates and values past
// U+10FFFF; later bytes are 80-BF).
struct Utf8Pending {
  uint32_t bits = 0;
  uint8_t need = 0, lo = 0x80, hi = 0xBF;
  // The code points that can still complete it: UTF-8 keeps code point
  // order, so they form one interval.
  uint32_t first() const { return ((bits << 6) | (lo & 0x3Fu)) << (6 * (need - 1)); }
  uint32_t last() const { return (((bits << 6) | (hi & 0x3Fu)) << (6 * (need - 1))) | ((1u << (6 * (need - 1))) - 1); }
};

// Starts a character on a non-ASCII byte `b`; false if `b` cannot begin
// one (a continuation byte, C0, C1 or F5-FF).
inline bool utf8_begin(uint8_t b, Utf8Pending& out) {
  if (b >= 0xC2 && b <= 0xDF) out = {static_cast<uint32_t>(b & 0x1F), 1, 0x80, 0xBF};
  else if (b >= 0xE0 && b <= 0xEF)
    out = {static_cast<uint32_t>(b & 0x0F), 2, static_cast<uint8_t>(b == 0xE0 ? 0xA0 : 0x80),
           static_cast<uint8_t>(b == 0xED ? 0x9F : 0xBF)};
  else if (b >= 0xF0 && b <= 0xF4)
    out = {static_cast<uint32_t>(b & 0x07), 3, static_cast<uint8_t>(b == 0xF0 ? 0x90 : 0x80),
           static_cast<uint8_t>(b == 0xF4 ? 0x8F : 0xBF)};
  else return false;
  return true;
}

// Adds continuation byte `b` to `in`; false if it is out of range. When
// out.need reaches 0, out.bits is the code point.
inline bool utf8_continue(const Utf8Pending& in, uint8_t b, Utf8Pending& out) {
  if (b < in.lo || b > in.hi) return false;
  out.bits = (in.bits << 6) | (b & 0x3Fu);
  out.need = static_cast<uint8_t>(in.need - 1);
  out.lo = 0x80, out.hi = 0xBF;
  return true;
}

// The character at s[0..n): its length (1-4) with its code point in `cp`,
// 0 if the bytes so far could still become one (more input is needed), or
// -1 if s[0] does not begin a valid character.
inline int utf8_decode(const unsigned char* s, size_t n, uint32_t& cp) {
  if (s[0] < 0x80) return cp = s[0], 1;
  Utf8Pending p;
  if (!utf8_begin(s[0], p)) return -1;
  const int len = p.need + 1;
  for (int i = 1; i < len; ++i) {
    if (static_cast<size_t>(i) >= n) return 0;
    if (!utf8_continue(p, s[i], p)) return -1;
  }
  cp = p.bits;
  return len;
}

// utf8_decode without the code point.
inline int utf8_char_length(const unsigned char* s, size_t n) {
  uint32_t cp = 0;
  return utf8_decode(s, n, cp);
}

// Index of the first byte that is not part of valid UTF-8 (an incomplete
// character at the end included), or npos.
inline size_t find_invalid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  for (size_t i = 0; i < s.size();) {
    const int len = utf8_char_length(p + i, s.size() - i);
    if (len <= 0) return i;
    i += static_cast<size_t>(len);
  }
  return std::string_view::npos;
}

// The UTF-8 bytes of scalar value `cp`.
inline std::string utf8_encode(uint32_t cp) {
  std::string out;
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

}  // namespace detail

GEMMA2_END_NAMESPACE
