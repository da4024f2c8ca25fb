// Fuzzes parse_config_json, then what a user does with a config before
// committing memory to it: validation, the tensor list, KV-cache sizes for
// every cache policy, comparison with the presets and writing it back out.
// Nothing model-sized is allocated; a cache is created only when small.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tiny.hpp"

namespace {

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_config: %s %s\n", what, detail.c_str());
  std::abort();
}

template <class Cache>
void try_cache(const gemma2::RuntimeConfig& c) {
  const gemma2::CacheShape shape = gemma2::cache_shape(c, c.max_position_embeddings);
  (void)Cache::bytes_for(shape);
  const gemma2::CacheShape one = gemma2::cache_shape(c, 1);
  if (Cache::bytes_for(one) > (size_t{16} << 20)) return;
  auto cache = Cache::create(one);
  if (!cache) fail("a valid config's one-position cache was refused:", cache.message());
  if (cache->bytes() != Cache::bytes_for(one)) fail("cache bytes differ from bytes_for");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto config = gemma2::parse_config_json(text, "fuzz/config.json");
  if (!config) return 0;
  const gemma2::RuntimeConfig& c = *config;
  if (gemma2::Status s = gemma2::validate(c); !s) fail("parse_config_json returned an invalid config:", s.message());

  size_t params = 0;
  for (const gemma2::TensorSpec& t : gemma2::gemma2_tensors(c)) {
    size_t n = 1;
    for (int64_t d : t.shape) {
      if (d <= 0) fail("non-positive tensor dimension in", t.name);
      n *= static_cast<size_t>(d);
    }
    params += n;
  }
  (void)params;
  for (int l = 0; l < c.num_hidden_layers; ++l) (void)c.layer_type(l);

  try_cache<gemma2::FullKVCache<float>>(c);
  try_cache<gemma2::FullKVCache<gemma2::bf16>>(c);
  try_cache<gemma2::SlidingWindowKVCache<float>>(c);
  try_cache<gemma2::SlidingWindowKVCache<gemma2::bf16>>(c);

  (void)gemma2::check_matches(gemma2::Gemma2_2B{}, c);
  (void)gemma2::check_matches(gemma2::Gemma2_9B{}, c);
  (void)gemma2::check_matches(gemma2::Gemma2_27B{}, c);

  // to_config_json is the inverse of parse_config_json.
  const std::string written = gemma2::to_config_json(c, "float32").dump();
  auto again = gemma2::parse_config_json(written, "fuzz/written.json");
  if (!again) fail("a config written by to_config_json does not parse:", again.message() + "\n" + written);
  if (gemma2::Status s = gemma2::check_matches(c, *again); !s) fail("config changed in a round trip:", s.message());
  return 0;
}
