// KV caches: the per-sequence attention state, owned by the caller. The
// model never keeps per-sequence state, so one model serves many caches.
//
// A cache policy is any type with this interface (the model and Session are
// templates over it; examples/custom_cache shows a user-written one):
//
//   static constexpr uint32_t kind;          // id written in saved sessions (user kinds: >= 1000)
//   using storage = float, bf16 or int8_t;  // how rows are stored (see detail::kv_head_bytes)
//   static size_t bytes_for(const CacheShape&);       // what create() will allocate
//   static Result<Cache> create(const CacheShape&);
//   const CacheShape& shape() const;
//   int size() const;                       // positions stored: the next token's position
//   int capacity() const;                   // most positions the sequence may reach
//   int max_step() const;                   // most positions one forward pass may add
//   int oldest(int layer) const;            // first position still stored in that layer
//   void store(int layer, int pos, const float* k, const float* v);   // kv_dim floats each
//   int view(int layer, int first, int last, KVSegment out[2]) const; // rows first..last
//   void set_size(int n);                   // the model calls it after a forward pass
//   void reset(int n, const std::vector<int>& oldest);  // rows [oldest[l], n) hold data (restoring a session)
//   Status truncate(int n);                 // forget positions >= n, or refuse
//   void clear();                           // forget every position
//   size_t bytes() const;
//
// and, optionally (a cache without it cannot be shifted), the context shift
// (context_shift.hpp):
//
//   template <class Rekey> Status shift(int keep, int drop, Rekey&& rekey);
//     // positions [keep + drop, size) move to [keep, size - drop); rekey(float* keys, int pos)
//     // turns the kv_dim keys stored at pos into those of pos - drop. Rows it no longer has
//     // show in oldest(); kept rows the next position needs are then stored again.
//
// Positions are absolute: a forward pass on a cache runs its tokens at
// positions size(), size()+1, ...
#pragma once

#include <algorithm>
#include <cstring>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "gemma2/config.hpp"
#include "gemma2/kv_rows.hpp"

GEMMA2_BEGIN_NAMESPACE

// What a cache must hold: the attention geometry of a model and the longest
// sequence wanted.
struct CacheShape {
  int num_layers = 0;
  int kv_dim = 0;  // num_key_value_heads * head_dim
  int capacity = 0;
  int sliding_window = 0;
  std::vector<AttentionKind> layer_types;
  int head_dim = 0;  // kv_dim / head_dim key-value heads per row
};

// The cache shape for a model config and a capacity.
template <class Config>
CacheShape cache_shape(const Config& c, int capacity) {
  const RuntimeConfig r = to_runtime(c);
  return {r.num_hidden_layers, r.num_key_value_heads * r.head_dim, capacity, r.sliding_window, r.layer_types,
          r.head_dim};
}

// Whether a cache of shape `s` fits the model whose cache_shape is `model`
// (any capacity up to the model's context).
inline bool fits_model(const CacheShape& s, const CacheShape& model, int max_positions) {
  return s.num_layers == model.num_layers && s.kv_dim == model.kv_dim && s.head_dim == model.head_dim &&
         s.sliding_window == model.sliding_window && s.layer_types == model.layer_types && s.capacity <= max_positions;
}

namespace detail {
// The first position a pass at `pos` reads in `layer`: the window on local
// layers, everything on global ones.
inline int first_needed(const CacheShape& shape, int layer, int pos) {
  return shape.layer_types[static_cast<size_t>(layer)] == AttentionKind::Local
             ? std::max(0, pos - shape.sliding_window + 1)
             : 0;
}

inline Status check_shape(const CacheShape& s) {
  if (s.num_layers < 1 || s.kv_dim < 1 || s.sliding_window < 1 || s.head_dim < 1 || s.kv_dim % s.head_dim != 0 ||
      s.layer_types.size() != static_cast<size_t>(s.num_layers))
    return err("KV cache: invalid cache shape");
  if (s.capacity < 1) return err("KV cache capacity must be at least 1, got ", s.capacity);
  return {};
}

// Per-layer ring buffers of `slots` rows (slots >= capacity means a plain
// array): the shared mechanism and most of the interface of the two
// policies below.
template <class Storage>
class LayerRings {
 public:
  using storage = Storage;
  static constexpr DType dtype = storage_dtype<Storage>();

  LayerRings() = default;
  LayerRings(const CacheShape& shape, std::vector<int> slots)
      : shape_(shape),
        row_bytes_(kv_row_bytes(dtype, shape.kv_dim, shape.head_dim)),
        slots_(std::move(slots)),
        floors_(slots_.size(), 0) {
    offsets_.push_back(0);
    for (int s : slots_) offsets_.push_back(offsets_.back() + static_cast<size_t>(s) * row_bytes_);
    keys_.resize(offsets_.back());
    values_.resize(offsets_.back());
  }
  // Bytes of one stored position's keys (or values).
  static size_t row_bytes_for(const CacheShape& s) { return kv_row_bytes(dtype, s.kv_dim, s.head_dim); }

  const CacheShape& shape() const { return shape_; }
  int size() const { return size_; }
  int capacity() const { return shape_.capacity; }
  void set_size(int n) {
    size_ = n;
    high_ = std::max(high_, n);
  }
  void clear() {
    size_ = high_ = 0;
    std::fill(floors_.begin(), floors_.end(), 0);
  }
  void reset(int n, const std::vector<int>& oldest) {
    size_ = high_ = n;
    floors_ = oldest;
  }
  size_t bytes() const { return keys_.size() + values_.size(); }
  // Rows below high_ - slots were overwritten by later positions, even if a
  // truncation has since moved size_ back.
  int oldest(int layer) const {
    const auto l = static_cast<size_t>(layer);
    return std::max(floors_[l], high_ - slots_[l]);
  }

  void store(int layer, int pos, const float* k, const float* v) {
    const size_t at = row(layer, pos);
    kv_row_from_float(dtype, k, &keys_[at], shape_.kv_dim, shape_.head_dim);
    kv_row_from_float(dtype, v, &values_[at], shape_.kv_dim, shape_.head_dim);
  }

  int view(int layer, int first, int last, KVSegment out[2]) const {
    const int slots = slots_[static_cast<size_t>(layer)];
    int n = 0;
    for (int pos = first; pos <= last;) {
      const int run = std::min(last - pos + 1, slots - pos % slots);  // up to the end of the ring
      const size_t at = row(layer, pos);
      out[n++] = {pos, run, &keys_[at], &values_[at], dtype};
      pos += run;
    }
    return n;
  }

  // The context shift (see the interface above). The rows kept and the rows
  // moved stay one run of positions per layer (in a ring the moved rows land
  // right after the kept ones, or start the run when the kept ones are
  // gone), so oldest() stays one number per layer. A ring may have
  // overwritten kept rows that the shifted sequence's window reaches again:
  // oldest() then says so, and shift_context (context_shift.hpp) refills them.
  template <class Rekey>
  Status shift(int keep, int drop, Rekey&& rekey) {
    if (keep < 0 || drop < 0 || keep + drop > size_)
      return err("cannot shift a KV cache of ", size_, " positions: keep ", keep, " + drop ", drop,
                 " must be at most the positions stored");
    std::vector<int> first;
    std::vector<float> k(static_cast<size_t>(shape_.kv_dim));
    std::vector<std::byte> moved;
    for (int l = 0; l < shape_.num_layers; ++l) {
      const int old = oldest(l);
      first.push_back(old <= keep ? old : std::max(old - drop, keep));
      // Through a buffer: in a ring a row's new slot may hold a row not yet moved.
      const int from = std::max(old, keep + drop), n = std::max(0, size_ - from);
      moved.resize(2 * static_cast<size_t>(n) * row_bytes_);
      for (int i = 0; i < n; ++i) {
        const size_t at = row(l, from + i);
        kv_row_to_float(dtype, &keys_[at], k.data(), shape_.kv_dim, shape_.head_dim);
        rekey(k.data(), from + i);
        kv_row_from_float(dtype, k.data(), &moved[i * row_bytes_], shape_.kv_dim, shape_.head_dim);
        std::memcpy(&moved[(static_cast<size_t>(n) + i) * row_bytes_], &values_[at], row_bytes_);
      }
      for (int i = 0; i < n; ++i) {
        const size_t at = row(l, from + i - drop);
        std::memcpy(&keys_[at], &moved[i * row_bytes_], row_bytes_);
        std::memcpy(&values_[at], &moved[(static_cast<size_t>(n) + i) * row_bytes_], row_bytes_);
      }
    }
    floors_ = std::move(first);
    size_ = high_ = size_ - drop;
    return {};
  }

 protected:
  // Forgets positions >= n (their rows stay until overwritten).
  void drop_from(int n) { size_ = n; }

 private:
  size_t row(int layer, int pos) const {
    const int slots = slots_[static_cast<size_t>(layer)];
    return offsets_[static_cast<size_t>(layer)] + static_cast<size_t>(pos % slots) * row_bytes_;
  }

  CacheShape shape_;
  size_t row_bytes_ = 0;
  std::vector<int> slots_;
  std::vector<int> floors_;  // rows below were never stored (set by reset)
  std::vector<size_t> offsets_;
  std::vector<std::byte> keys_, values_;  // allocated by operator new: aligned for float rows
  int size_ = 0;
  int high_ = 0;  // highest size reached since the last clear
};
}  // namespace detail

// Every layer keeps every position up to capacity. Storage float (exact),
// bf16 (half the memory) or int8_t (Q8_0, 17/64 of float).
template <class Storage = float>
class FullKVCache : public detail::LayerRings<Storage> {
 public:
  static constexpr uint32_t kind = 1;

  static size_t bytes_for(const CacheShape& s) {
    return 2 * static_cast<size_t>(s.num_layers) * s.capacity * detail::LayerRings<Storage>::row_bytes_for(s);
  }
  static Result<FullKVCache> create(const CacheShape& s) {
    if (Status st = detail::check_shape(s); !st) return Error{st.message()};
    return FullKVCache(s);
  }

  int max_step() const { return this->capacity(); }
  Status truncate(int n) {
    if (n < 0 || n > this->size())
      return detail::err("cannot truncate a KV cache of ", this->size(), " positions to ", n);
    this->drop_from(n);
    return {};
  }

 private:
  explicit FullKVCache(const CacheShape& s)
      : detail::LayerRings<Storage>(s, std::vector<int>(static_cast<size_t>(s.num_layers), s.capacity)) {}
};

// Gemma 2's local layers only ever look at the last `sliding_window`
// positions, so they keep a ring of window + max_step - 1 rows; global
// layers keep everything. At 8192 positions this is about half the memory
// of FullKVCache for the real models, with identical logits.
//
// Rollback: truncate(n) works while every position the next pass needs is
// still in the rings, i.e. for going back up to max_step positions (512 by
// default); further back it refuses (Session::rollback then recomputes).
template <class Storage = float>
class SlidingWindowKVCache : public detail::LayerRings<Storage> {
 public:
  static constexpr uint32_t kind = 2;
  static constexpr int kDefaultMaxStep = 512;

  static size_t bytes_for(const CacheShape& s, int max_step = kDefaultMaxStep) {
    size_t rows = 0;
    for (int slots : slots_for(s, max_step)) rows += static_cast<size_t>(slots);
    return 2 * rows * detail::LayerRings<Storage>::row_bytes_for(s);
  }
  static Result<SlidingWindowKVCache> create(const CacheShape& s, int max_step = kDefaultMaxStep) {
    if (Status st = detail::check_shape(s); !st) return Error{st.message()};
    if (max_step < 1) return detail::err("KV cache max_step must be at least 1, got ", max_step);
    return SlidingWindowKVCache(s, max_step);
  }

  int max_step() const { return max_step_; }
  Status truncate(int n) {
    if (n < 0 || n > this->size())
      return detail::err("cannot truncate a KV cache of ", this->size(), " positions to ", n);
    for (int l = 0; l < this->shape().num_layers; ++l)
      if (detail::first_needed(this->shape(), l, n) < this->oldest(l))
        return detail::err("cannot roll back to position ", n, ": layer ", l,
                           " (sliding window) has already overwritten position ", this->oldest(l) - 1,
                           ", which the next token would attend to");
    this->drop_from(n);
    return {};
  }

 private:
  static std::vector<int> slots_for(const CacheShape& s, int max_step) {
    std::vector<int> slots;
    for (AttentionKind k : s.layer_types)
      slots.push_back(k == AttentionKind::Local ? std::min(s.capacity, s.sliding_window + max_step - 1) : s.capacity);
    return slots;
  }
  SlidingWindowKVCache(const CacheShape& s, int max_step)
      : detail::LayerRings<Storage>(s, slots_for(s, max_step)), max_step_(max_step) {}

  int max_step_;
};

// The default cache: full, float32.
using KVCache = FullKVCache<float>;

// Calls X(cache type) for each built-in cache: the ones whose forward pass
// the compiled unit holds (GEMMA2_COMPILED, see version.hpp).
#define GEMMA2_STANDARD_CACHES(X) \
  X(FullKVCache<float>)           \
  X(FullKVCache<bf16>)            \
  X(FullKVCache<int8_t>) X(SlidingWindowKVCache<float>) X(SlidingWindowKVCache<bf16>) X(SlidingWindowKVCache<int8_t>)

GEMMA2_END_NAMESPACE
