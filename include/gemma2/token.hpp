// The vocabulary of a decoding loop, shared by sampling, sessions,
// generation and speculative decoding: a sequence's tokens, the protocol a
// sampler follows, and a portable random generator. It needs nothing but the
// standard library, so a header that only passes tokens around (session.hpp)
// does not pull in the samplers or the grammar machinery.
//
// A sampler is any callable
//   int32_t(std::vector<float>& logits, const TokenHistory& history)
// that may modify the logits it is given; `history` is every token of the
// sequence so far (prompt included). It may also have
//   bool finished() const            (nothing more to generate: generation stops)
//   const std::string& error() const (why it returned -1)
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

// Every token of a sequence so far (prompt included).
using TokenHistory = std::vector<int32_t>;

namespace detail {
// The optional parts of a sampler: finished() and error().
template <class S, class = void>
struct has_finished : std::false_type {};
template <class S>
struct has_finished<S, std::void_t<decltype(bool(std::declval<const S&>().finished()))>> : std::true_type {};
template <class S, class = void>
struct has_error : std::false_type {};
template <class S>
struct has_error<S, std::void_t<decltype(std::string(std::declval<const S&>().error()))>> : std::true_type {};
template <class S>
bool sampler_finished(const S& sampler) {
  if constexpr (has_finished<S>::value) return sampler.finished();
  return false;
}
}  // namespace detail

// A small, fast, seedable generator (splitmix64). Its sequence is fixed by
// the seed on every platform, unlike std:: distributions, so the same seed
// gives the same text everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, 1).
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

// The id of the largest logit (the first of equals): greedy choice.
inline int32_t argmax(const std::vector<float>& logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

GEMMA2_END_NAMESPACE
