// Context shift: a sequence that reaches its cache's capacity keeps its
// first `keep` tokens, drops the next `drop` and moves the rest down, so it
// can go on (what chat and game hosts do to talk forever; llama.cpp's
// context shift). Keys carry their position only through RoPE, a rotation
// by pos·θ_i (RoFormer, Su et al. 2021), so a moved key is rotated once more
// instead of recomputed, at the cost of reading the cache once.
//
// What that computes: the moved tokens keep their cached keys and values.
// In layer 0 those depend on the token alone, so there they equal a fresh
// computation at the new position; in deeper layers they were computed with
// the dropped tokens in view and still carry what those contributed. So the
// logits after a shift are not those of a fresh sequence of the kept tokens
// (that needs a prefill of all of them: Session::rollback and feed); they
// are the well-defined result of attending to the moved cache, the same on
// every cache policy and storage up to rounding, and the same for a shift
// made by hand or by generation (GenerateOptions::context_shift).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemma2/model.hpp"
#include "gemma2/token.hpp"

GEMMA2_BEGIN_NAMESPACE

// The automatic context shift (context_shift.hpp): when the cache has no
// room for the next step, keep the first `keep` tokens, drop `drop` after
// them and go on, instead of stopping with ContextFull. Off by default: a
// shift changes what the model sees.
struct ContextShift {
  bool enabled = false;
  // Tokens kept at the start: BOS, instructions. Chat::send reads -1 as its
  // first turn (the system message and the first user message).
  int keep = 1;
  // Tokens dropped per shift (more when a prompt chunk needs more room);
  // 0: half of those after the kept ones, as llama.cpp.
  int drop = 0;
};

namespace detail {
// Whether automatic-shift options suit a cache of `capacity` positions.
inline Status check_shift(const ContextShift& s, int capacity) {
  if (s.keep >= 0 && s.drop >= 0 && s.keep < capacity) return {};
  return err("generate: context_shift keeps ", s.keep, " and drops ", s.drop,
             " tokens: both must be >= 0 and keep below the capacity of ", capacity);
}

// Tokens the automatic shift drops so that `need` more positions fit after
// `size` (0 when they fit already): s.drop, or half of those after the kept
// ones, and never less than makes room.
inline Result<int> drop_for_room(const ContextShift& s, int size, int need, int capacity) {
  if (!s.enabled || size + need <= capacity) return 0;
  const int movable = size - s.keep, drop = std::max(s.drop > 0 ? s.drop : movable / 2, size + need - capacity);
  if (movable < drop)
    return err("generate: context shift cannot make room for ", need, " positions: ", size, " cached of a capacity of ",
               capacity, ", ", std::min(s.keep, size), " of them kept");
  return drop;
}

// Turns the keys of positions [first, last] into those of pos - drop. A key
// at p was rotated by the float angle float(p)·θ_i (ops.hpp rope()); the
// rotation applied here is the difference of the two float angles, taken in
// double, so a moved key matches one rotated at its new position to a few
// float ulps (far positions differ from the exact angle by 1e-3 rad).
class KeyRotation {
 public:
  KeyRotation(const std::vector<float>& inv_freq, int head_dim, int first, int last, int drop)
      : half_(head_dim / 2),
        head_dim_(head_dim),
        first_(first),
        table_(2 * static_cast<size_t>(half_) * static_cast<size_t>(std::max(0, last - first + 1))) {
    for (int p = first; p <= last; ++p)
      for (int d = 0; d < half_; ++d) {
        const float f = inv_freq[static_cast<size_t>(d)];
        const double delta =
            static_cast<double>(static_cast<float>(p - drop) * f) - static_cast<double>(static_cast<float>(p) * f);
        float* cs = &table_[2 * (static_cast<size_t>(p - first) * half_ + static_cast<size_t>(d))];
        cs[0] = static_cast<float>(std::cos(delta));
        cs[1] = static_cast<float>(std::sin(delta));
      }
  }

  // The keys of one position: kv_dim / head_dim heads.
  void operator()(float* keys, int kv_dim, int pos) const {
    const float* cs = &table_[2 * static_cast<size_t>(pos - first_) * half_];
    for (int h = 0; h < kv_dim / head_dim_; ++h) {
      float* x = keys + h * head_dim_;
      for (int d = 0; d < half_; ++d) {
        const float c = cs[2 * d], s = cs[2 * d + 1], a = x[d], b = x[d + half_];
        x[d] = a * c - b * s;
        x[d + half_] = b * c + a * s;
      }
    }
  }

 private:
  int half_, head_dim_, first_;
  std::vector<float> table_;  // cos, sin per position and frequency
};

struct RekeyProbe {
  void operator()(float*, int) const {}
};
template <class Cache, class = void>
struct has_shift : std::false_type {};
template <class Cache>
struct has_shift<Cache, std::void_t<decltype(std::declval<Cache&>().shift(0, 0, RekeyProbe{}))>> : std::true_type {};

// Stores again the kept rows that a ring lost and a pass at the last
// position reads (see shift_context), from a pass of the kept tokens
// through a cache of keep positions.
template <class Model, class Cache>
Status refill_kept(const Model& model, Cache& kv, const TokenHistory& history, int keep, const ForwardOptions& options);

// Keeps history[0, keep), drops history[keep, keep + drop) and moves the
// rest down, in the cache and the history alike. The dropped tokens must be
// cached; pending ones (history past kv.size()) move with the rest. Kept
// rows that a sliding-window ring has overwritten and the shifted window
// reaches again are recomputed from the kept tokens alone (they attend only
// to each other, so that is what the cache held).
template <class Model, class Cache>
Status shift_context(const Model& model, Cache& kv, TokenHistory& history, int keep, int drop,
                     const ForwardOptions& options) {
  if constexpr (!has_shift<Cache>::value) {
    return err("context shift: this KV-cache type has no shift() (see kv_cache.hpp)");
  } else {
    if (keep < 0 || drop < 0 || static_cast<int64_t>(keep) + drop > kv.size())
      return err("context shift: keep ", keep, " and drop ", drop, " must be >= 0 and keep + drop at most the ",
                 kv.size(), " cached positions");
    if (drop == 0) return {};
    const auto& c = model.config();
    const KeyRotation rotate(rope_inv_freq(c.head_dim, c.rope_theta), c.head_dim, keep + drop, kv.size() - 1, drop);
    const int kv_dim = kv.shape().kv_dim;
    if (Status s = kv.shift(keep, drop, [&](float* keys, int pos) { rotate(keys, kv_dim, pos); }); !s) return s;
    history.erase(history.begin() + keep, history.begin() + keep + drop);
    return refill_kept(model, kv, history, keep, options);
  }
}

template <class Model, class Cache>
Status refill_kept(const Model& model, Cache& kv, const TokenHistory& history, int keep,
                   const ForwardOptions& options) {
  const CacheShape& shape = kv.shape();
  // Rows for a pass at the last position too, so the session can make its
  // last token pending again (a rollback by one, which a ring allows).
  const int size = kv.size(), at = std::max(0, size - 1);
  std::vector<int> oldest;
  bool lost = false;
  for (int l = 0; l < shape.num_layers; ++l) {
    oldest.push_back(std::min(kv.oldest(l), size));
    const int need = first_needed(shape, l, at);
    if (oldest.back() > need && need < keep) lost = true;
  }
  if (!lost) return {};
  auto prefix = model.template make_cache<FullKVCache<typename Cache::storage>>(keep);
  if (!prefix) return Error{prefix.message()};
  ForwardOptions run = options;
  run.all_logits = false;
  if (auto l = model.forward(history.data(), static_cast<size_t>(keep), *prefix, run); !l)
    return err("context shift: recomputing the kept tokens: ", l.message());
  std::vector<float> k(static_cast<size_t>(shape.kv_dim)), v(k.size());
  for (int l = 0; l < shape.num_layers; ++l) {
    const int need = first_needed(shape, l, at);
    int& first = oldest[static_cast<size_t>(l)];
    if (first <= need || need >= keep) continue;
    for (int pos = need; pos < std::min(first, keep); ++pos) {
      KVSegment seg[2];
      prefix->view(l, pos, pos, seg);
      kv_row_to_float(seg[0].dtype, static_cast<const std::byte*>(seg[0].keys), k.data(), shape.kv_dim, shape.head_dim);
      kv_row_to_float(seg[0].dtype, static_cast<const std::byte*>(seg[0].values), v.data(), shape.kv_dim,
                      shape.head_dim);
      kv.store(l, pos, k.data(), v.data());
    }
    if (first > keep) return err("context shift: layer ", l, " lost positions ", keep, " to ", first - 1);
    first = need;
  }
  kv.reset(size, oldest);
  return {};
}
}  // namespace detail

GEMMA2_END_NAMESPACE
