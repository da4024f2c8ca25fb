// A user-written KV-cache policy: memory that grows with the conversation
// instead of being reserved for the whole context up front. Any type with
// the interface documented in gemma2/kv_cache.hpp works with the model,
// Session, generate() and Chat. Usage: custom_cache [MODEL_DIR]
#include <algorithm>
#include <cstdio>
#include <vector>

#include <gemma2/gemma2.hpp>

class GrowingKVCache {
 public:
  static constexpr uint32_t kind = 1000;  // user policies use ids >= 1000
  using storage = float;

  // At most this much, when the sequence reaches capacity.
  static size_t bytes_for(const gemma2::CacheShape& s) {
    return 2 * static_cast<size_t>(s.num_layers) * s.capacity * s.kv_dim * sizeof(float);
  }
  static gemma2::Result<GrowingKVCache> create(const gemma2::CacheShape& s) {
    if (s.capacity < 1 || s.num_layers < 1 || s.kv_dim < 1) return gemma2::Error{"GrowingKVCache: bad shape"};
    return GrowingKVCache(s);
  }

  const gemma2::CacheShape& shape() const { return shape_; }
  int size() const { return size_; }
  int capacity() const { return shape_.capacity; }
  int max_step() const { return shape_.capacity; }
  int oldest(int) const { return 0; }  // keeps every position
  size_t bytes() const {
    size_t b = 0;
    for (const auto& l : keys_) b += 2 * l.capacity() * sizeof(float);
    return b;
  }

  void store(int layer, int pos, const float* k, const float* v) {
    auto& keys = keys_[static_cast<size_t>(layer)];
    auto& values = values_[static_cast<size_t>(layer)];
    const size_t at = static_cast<size_t>(pos) * shape_.kv_dim;
    if (keys.size() < at + shape_.kv_dim) {  // grow geometrically
      keys.resize(std::max(at + shape_.kv_dim, keys.size() * 2));
      values.resize(keys.size());
    }
    std::copy_n(k, shape_.kv_dim, keys.begin() + static_cast<long>(at));
    std::copy_n(v, shape_.kv_dim, values.begin() + static_cast<long>(at));
  }
  // Rows are contiguous: one segment.
  int view(int layer, int first, int last, gemma2::KVSegment out[2]) const {
    const size_t at = static_cast<size_t>(first) * shape_.kv_dim;
    out[0] = {first, last - first + 1, keys_[static_cast<size_t>(layer)].data() + at,
              values_[static_cast<size_t>(layer)].data() + at, gemma2::DType::F32};
    return 1;
  }
  void set_size(int n) { size_ = n; }
  void reset(int n, const std::vector<int>&) { size_ = n; }
  void clear() { size_ = 0; }
  gemma2::Status truncate(int n) {
    if (n < 0 || n > size_) return gemma2::Error{"GrowingKVCache: bad truncation"};
    size_ = n;
    return {};
  }

 private:
  explicit GrowingKVCache(const gemma2::CacheShape& s)
      : shape_(s), keys_(static_cast<size_t>(s.num_layers)), values_(static_cast<size_t>(s.num_layers)) {}
  gemma2::CacheShape shape_;
  std::vector<std::vector<float>> keys_, values_;
  int size_ = 0;
};

int main(int argc, char** argv) {
  using Model = gemma2::Gemma2Model<>;
  const std::string dir = argc > 1 ? argv[1] : GEMMA2_DEFAULT_MODEL_DIR;
  auto model = Model::load(dir);
  auto tok = gemma2::Tokenizer::from_model_dir(dir);
  if (!model || !tok) return 1;
  const auto prompt = tok->encode_prompt("KING LEAR:\n").value();
  gemma2::GenerateOptions o;
  o.max_new_tokens = 40;

  auto mine = gemma2::Session<Model, GrowingKVCache>::create(*model).value();
  auto full = gemma2::Session<Model>::create(*model).value();
  auto a = gemma2::generate(mine, prompt, gemma2::Sampler(), o, &*tok);
  auto b = gemma2::generate(full, prompt, gemma2::Sampler(), o, &*tok);
  if (!a || !b) return 1;
  std::printf("%s\n", a->text.c_str());
  std::printf("growing cache: %zu bytes for %d positions; full cache: %zu bytes\n", mine.cache().bytes(),
              mine.position(), full.cache().bytes());
  return a->tokens == b->tokens ? 0 : 1;  // same text as the built-in cache
}
