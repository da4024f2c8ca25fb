// A Session is one sequence's state: its KV cache and its tokens. The model
// stays shared and immutable; sessions are values the caller owns, copies
// (fork) and saves.
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "gemma2/context_shift.hpp"
#include "gemma2/io/bytes.hpp"
#include "gemma2/model.hpp"
#include "gemma2/token.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {
// Forgets cache positions >= n; a sliding-window ring that has overwritten
// what position n needs is rebuilt from the tokens (exact, at the cost of a
// prefill). Session::rollback and speculative_step both go back this way.
template <class Model, class Cache>
Status truncate_cache(const Model& model, Cache& kv, const std::vector<int32_t>& tokens, int n,
                      const ForwardOptions& options) {
  if (kv.truncate(n).ok()) return {};
  kv.clear();
  if (n == 0) return {};
  ForwardOptions rebuild = options;
  rebuild.all_logits = false;
  auto logits = model.forward(tokens.data(), static_cast<size_t>(n), kv, rebuild);
  return logits ? Status() : Status(Error{logits.message()});
}
}  // namespace detail

// One sequence: its KV cache (any policy) and its tokens.
template <class Model, class Cache = KVCache>
class Session {
 public:
  using model_type = Model;
  using cache_type = Cache;

  // A session with an empty cache of `capacity` positions (0: the model's
  // max_position_embeddings). The model must outlive the session.
  static Result<Session> create(const Model& model, int capacity = 0) {
    auto cache = model.template make_cache<Cache>(capacity);
    if (!cache) return Error{cache.message()};
    return Session(model, std::move(*cache));
  }

  // A session around a cache made by the caller (e.g. a sliding-window cache
  // with another max_step). The cache must be empty and match the model.
  static Result<Session> create(const Model& model, Cache cache) {
    const int context = model.config().max_position_embeddings;
    if (!fits_model(cache.shape(), cache_shape(model.config(), cache.capacity()), context))
      return detail::err("session: the cache was made for another model");
    if (cache.size() != 0) return detail::err("session: the cache must be empty");
    return Session(model, std::move(cache));
  }

  const Model& model() const { return *model_; }
  Cache& cache() { return cache_; }
  const Cache& cache() const { return cache_; }
  // Every token of the sequence. Tokens from cache().size() on are pending:
  // the next feed() or generate() runs them first.
  TokenHistory& tokens() { return tokens_; }
  const TokenHistory& tokens() const { return tokens_; }
  // Position of the next token the cache will run.
  int position() const { return cache_.size(); }

  // The logits after the last token, when nothing is pending and feed()
  // computed them; null otherwise. generate() samples from them when it has
  // nothing to run, and save() keeps them, so a session fed and saved
  // continues after restore() exactly as it would have.
  const std::vector<float>* next_logits() const {
    const bool valid =
        !logits_.empty() && logits_at_ == tokens_.size() && static_cast<size_t>(cache_.size()) == logits_at_;
    return valid ? &logits_ : nullptr;
  }
  // Records the logits after the last token (generate() does, after a
  // prefill that sampled nothing); they count only while nothing is pending.
  void set_next_logits(const float* logits, size_t count) {
    logits_.assign(logits, logits + count);
    logits_at_ = tokens_.size();
  }

  // Runs the pending tokens and then `ids`; returns the logits after the
  // last one ([1][vocab]). Invalid input changes nothing.
  Result<Activations> feed(const std::vector<int32_t>& ids, const ForwardOptions& options = {}) {
    const size_t before = tokens_.size();
    tokens_.insert(tokens_.end(), ids.begin(), ids.end());
    auto logits = model_->forward(tokens_.data() + cache_.size(), tokens_.size() - static_cast<size_t>(cache_.size()),
                                  cache_, options);
    // Rejected input runs nothing; a cancelled pass keeps the chunks it ran.
    if (!logits) tokens_.resize(std::max(before, static_cast<size_t>(cache_.size())));
    else set_next_logits(logits->data(), static_cast<size_t>(logits->cols()));
    return logits;
  }

  // An independent copy: both continue from here (for example after a
  // shared system prompt, which is then computed only once).
  Session fork() const { return *this; }

  // Keeps the first n tokens and forgets the rest. Token n - 1 becomes
  // pending, so the next feed()/generate() recomputes its logits (one
  // position). When the cache cannot go back that far (a sliding-window
  // ring has overwritten positions the next token needs), the cache is
  // rebuilt from the tokens: exact, at the cost of a prefill.
  Status rollback(size_t n, const ForwardOptions& options = {}) {
    if (n > tokens_.size()) return detail::err("rollback: the session has only ", tokens_.size(), " tokens, not ", n);
    const int keep = static_cast<int>(std::min<size_t>(n == 0 ? 0 : n - 1, static_cast<size_t>(cache_.size())));
    tokens_.resize(n);
    logits_.clear();
    return detail::truncate_cache(*model_, cache_, tokens_, keep, options);
  }

  // Context shift (context_shift.hpp): keeps the first `keep` tokens, drops
  // the next `drop` (cached ones) and moves the rest down, re-rotating their
  // cached keys, so a session at its capacity goes on. The logits that
  // follow are those of a fresh session fed the kept tokens, within
  // rounding. As after rollback(), when nothing is pending the last token
  // becomes pending, and the next feed()/generate() recomputes its logits.
  Status shift(int keep, int drop, const ForwardOptions& options = {}) {
    if (Status s = detail::shift_context(*model_, cache_, tokens_, keep, drop, options); !s) return s;
    if (drop == 0) return {};
    logits_.clear();
    const int cached = cache_.size();
    if (cached == 0 || static_cast<size_t>(cached) < tokens_.size()) return {};
    return detail::truncate_cache(*model_, cache_, tokens_, cached - 1, options);
  }

  // The session as bytes: a versioned, checksummed blob that restore()
  // validates against the model and the cache type. It holds the tokens
  // (pending ones too), the cached keys and values and the next-token
  // logits (next_logits()), so a restored session continues exactly. A
  // reply in progress (Generation) and the sampler's state (its random
  // generator, its grammar position) are the caller's: Generation::save
  // keeps the former; the caller keeps the sampler object.
  std::vector<uint8_t> save() const {
    detail::ByteWriter w;
    w.bytes(kMagic, sizeof kMagic);
    w.u32(kVersion);
    w.u32(Cache::kind);
    w.u32(static_cast<uint32_t>(kStorage));
    for (uint64_t v : detail::config_fingerprint(to_runtime(model_->config()))) w.u64(v);
    w.u32(static_cast<uint32_t>(cache_.capacity()));
    w.u32(static_cast<uint32_t>(cache_.size()));
    w.u64(tokens_.size());
    for (int32_t t : tokens_) w.u32(static_cast<uint32_t>(t));
    const CacheShape& shape = cache_.shape();
    const size_t row_bytes = detail::kv_row_bytes(kStorage, shape.kv_dim, shape.head_dim);
    for (int l = 0; l < shape.num_layers; ++l) {
      const int from = std::min(cache_.oldest(l), cache_.size());
      w.u32(static_cast<uint32_t>(from));
      KVSegment segs[2];
      const int n = from < cache_.size() ? cache_.view(l, from, cache_.size() - 1, segs) : 0;
      for (int i = 0; i < n; ++i) w.bytes(segs[i].keys, segs[i].count * row_bytes);
      for (int i = 0; i < n; ++i) w.bytes(segs[i].values, segs[i].count * row_bytes);
    }
    const std::vector<float>* logits = next_logits();
    w.u32(logits ? static_cast<uint32_t>(logits->size()) : 0);
    if (logits) w.bytes(logits->data(), logits->size() * sizeof(float));
    return std::move(w).checksummed();
  }

  // Rebuilds a session saved by save(). Fails with a message naming the
  // problem if the blob is truncated, corrupt, of another version, or made
  // for another model or cache type; nothing is allocated before the sizes
  // in the blob have been checked against its length.
  static Result<Session> restore(const Model& model, const uint8_t* data, size_t size) {
    using detail::err;
    const std::string where = "session restore: ";
    if (size < sizeof kMagic + 12 || std::memcmp(data, kMagic, sizeof kMagic) != 0)
      return err(where, "not a gemma2 session (bad magic)");
    if (size < sizeof kMagic + 8 + 8) return err(where, "truncated");
    detail::ByteReader r(data + sizeof kMagic, size - sizeof kMagic - 8);
    const uint32_t version = r.u32("version");
    if (version != kVersion && version != 1)  // version 1 had no logits section
      return err(where, "version ", version, " is not supported (this library reads 1 and ", kVersion, ")");
    if (!detail::checksum_matches(data, size)) return err(where, "checksum mismatch (corrupt data)");
    const uint32_t kind = r.u32("cache kind"), dtype = r.u32("cache storage");
    if (kind != Cache::kind || dtype != static_cast<uint32_t>(kStorage))
      return err(where, "saved with another KV-cache type (kind ", kind, ", storage ", dtype, ")");
    for (uint64_t v : detail::config_fingerprint(to_runtime(model.config())))
      if (r.u64("model fingerprint") != v) return err(where, "saved with a model of another configuration");
    const uint32_t capacity = r.u32("capacity"), cached = r.u32("cached positions");
    const uint64_t ntokens = r.u64("token count");
    if (!r.ok()) return err(where, "truncated");
    if (capacity < 1 || capacity > static_cast<uint32_t>(model.config().max_position_embeddings) || cached > capacity ||
        ntokens < cached || ntokens > r.left() / 4)
      return err(where, "inconsistent sizes (capacity ", capacity, ", cached ", cached, ", tokens ", ntokens, ")");
    auto s = create(model, static_cast<int>(capacity));
    if (!s) return err(where, s.message());
    s->tokens_.resize(ntokens);
    for (int32_t& t : s->tokens_) {
      t = static_cast<int32_t>(r.u32("token"));
      if (t < 0 || t >= model.config().vocab_size) return err(where, "token id ", t, " outside the vocabulary");
    }
    Cache& cache = s->cache_;
    const int kv_dim = cache.shape().kv_dim, head_dim = cache.shape().head_dim;
    std::vector<int> oldest;
    std::vector<float> k(static_cast<size_t>(kv_dim)), v(k.size());
    const size_t row_bytes = detail::kv_row_bytes(kStorage, kv_dim, head_dim);
    for (int l = 0; l < cache.shape().num_layers; ++l) {
      const uint32_t from = r.u32("layer start");
      if (!r.ok() || from > cached) return err(where, "layer ", l, ": bad first position ", from);
      const size_t rows = cached - from;
      const uint8_t* keys = r.take(rows * row_bytes, "keys");
      const uint8_t* values = r.take(rows * row_bytes, "values");
      if (!r.ok()) return err(where, "truncated in layer ", l);
      for (size_t i = 0; i < rows; ++i) {
        // Stored rows convert back exactly (Q8_0 requantizes to the same bytes).
        detail::kv_row_to_float(kStorage, reinterpret_cast<const std::byte*>(keys + i * row_bytes), k.data(), kv_dim,
                                head_dim);
        detail::kv_row_to_float(kStorage, reinterpret_cast<const std::byte*>(values + i * row_bytes), v.data(), kv_dim,
                                head_dim);
        cache.store(l, static_cast<int>(from + i), k.data(), v.data());
      }
      oldest.push_back(static_cast<int>(from));
    }
    if (version >= 2) {
      const uint32_t count = r.u32("logit count");
      if (!r.ok()) return err(where, "truncated before the logits");
      if (count != 0 && (count != static_cast<uint32_t>(model.config().vocab_size) || cached != ntokens))
        return err(where, count, " logits saved for a vocabulary of ", model.config().vocab_size, " with ",
                   ntokens - cached, " pending tokens");
      const uint8_t* logits = r.take(uint64_t{count} * sizeof(float), "logits");
      if (!r.ok()) return err(where, "truncated in the logits");
      s->logits_.resize(count);
      if (count != 0) std::memcpy(s->logits_.data(), logits, size_t{count} * sizeof(float));
      s->logits_at_ = ntokens;
    }
    if (r.left() != 0) return err(where, r.left(), " unexpected bytes after the last layer");
    cache.reset(static_cast<int>(cached), oldest);
    for (int l = 0; l < cache.shape().num_layers; ++l)
      if (std::min(cache.oldest(l), static_cast<int>(cached)) != oldest[static_cast<size_t>(l)])
        return err(where, "layer ", l, " was saved with another cache configuration");
    return s;
  }

  // Whether `data` was saved by a session of this cache type (its header
  // names the cache policy and storage), for hosts that keep sessions of
  // several cache types; restore() checks everything else.
  static bool saved_with_this_cache(const uint8_t* data, size_t size) {
    if (size < sizeof kMagic + 12 || std::memcmp(data, kMagic, sizeof kMagic) != 0) return false;
    detail::ByteReader r(data + sizeof kMagic, size - sizeof kMagic);
    r.u32("version");
    const uint32_t kind = r.u32("cache kind"), dtype = r.u32("cache storage");
    return kind == Cache::kind && dtype == static_cast<uint32_t>(kStorage);
  }

  static Result<Session> restore(const Model& model, const std::vector<uint8_t>& blob) {
    return restore(model, blob.data(), blob.size());
  }

  // More bytes than any blob save() writes for this model (a full context
  // of keys and values, and the tokens), so a host reading a blob from a
  // file knows how much is too much (see read_file).
  static uint64_t max_saved_bytes(const Model& model) {
    const RuntimeConfig c = to_runtime(model.config());
    const uint64_t positions = static_cast<uint64_t>(c.max_position_embeddings);
    const uint64_t kv_row = detail::kv_row_bytes(kStorage, c.num_key_value_heads * c.head_dim, c.head_dim);
    return 2 * static_cast<uint64_t>(c.num_hidden_layers) * positions * kv_row  // keys and values
           + 8 * positions                                                      // tokens (pending ones too)
           + 4 * static_cast<uint64_t>(c.vocab_size)                            // the next-token logits
           + 4 * static_cast<uint64_t>(c.num_hidden_layers) + 4096;             // per-layer starts, header
  }

 private:
  static constexpr char kMagic[8] = {'G', 'E', 'M', 'M', 'A', '2', 'S', 'S'};
  // 2: the next-token logits after the layers (see next_logits()).
  static constexpr uint32_t kVersion = 2;
  static constexpr DType kStorage = detail::storage_dtype<typename Cache::storage>();

  Session(const Model& model, Cache cache) : model_(&model), cache_(std::move(cache)) {}

  const Model* model_;
  Cache cache_;
  TokenHistory tokens_;
  std::vector<float> logits_;  // see next_logits()
  size_t logits_at_ = 0;       // tokens_.size() when logits_ were computed
};

GEMMA2_END_NAMESPACE
