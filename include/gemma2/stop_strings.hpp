// Stop strings in streamed text: the end of the text is held back while it
// could still be the start of a stop string, so a stop string is never
// partly printed, whatever the token boundaries.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

// The held text of one reply and whether a stop string was met.
class StopStringFilter {
 public:
  // Adds text; returns what is safe to emit. Sets hit() when a stop string
  // appears (the text before it is returned, the rest dropped).
  std::string add(const std::string& text, const std::vector<std::string>& stops) {
    held_ += text;
    size_t cut = std::string::npos;
    for (const auto& s : stops)
      if (!s.empty()) cut = std::min(cut, held_.find(s));
    if (cut != std::string::npos) {
      hit_ = true;
      std::string out = held_.substr(0, cut);
      held_.clear();
      return out;
    }
    size_t keep = 0;  // longest suffix of held_ that begins some stop string
    for (const auto& s : stops)
      for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), held_.size()); k > keep; --k)
        if (held_.compare(held_.size() - k, k, s, 0, k) == 0) {
          keep = k;
          break;
        }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
  }
  std::string flush() { return std::exchange(held_, {}); }
  bool hit() const { return hit_; }
  const std::string& held() const { return held_; }
  void set(std::string held, bool hit) { held_ = std::move(held), hit_ = hit; }

 private:
  std::string held_;
  bool hit_ = false;
};

}  // namespace detail
GEMMA2_END_NAMESPACE
