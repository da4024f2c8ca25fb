// Fuzzes Session::restore against a tiny random model, for the default
// cache and a bf16 sliding-window cache. Each input is restored as given
// and again with its checksum recomputed, so mutations reach the checks
// behind the checksum. A restored session must save back to the same
// bytes (float caches), take a token and roll back.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "tiny.hpp"

namespace {

using Model = gemma2::Gemma2Model<>;

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "fuzz_session: %s %s\n", what, detail.c_str());
  std::abort();
}

const Model& model() {
  static const Model m = [] {
    auto r = Model::from_checkpoint(gemma2::random_checkpoint(fuzz::tiny_config(), gemma2::DType::F32));
    if (!r) fail("cannot build the tiny model:", r.message());
    return std::move(*r);
  }();
  return m;
}

template <class Cache>
void restore(const std::vector<uint8_t>& blob) {
  using Session = gemma2::Session<Model, Cache>;
  auto s = Session::restore(model(), blob);
  if (!s) return;
  // Float rows come back bit for bit (bf16 ones may not: NaN payloads).
  if (std::is_same_v<typename Cache::storage, float> && s->save() != blob)
    fail("a restored session saves to other bytes");
  const size_t pending = s->tokens().size() - static_cast<size_t>(s->position());
  const bool fits = static_cast<size_t>(s->position()) + pending + 1 <= static_cast<size_t>(s->cache().capacity());
  auto logits = s->feed({1});
  if (fits && !logits) fail("a restored session cannot take a token:", logits.message());
  if (logits) {
    auto again = Session::restore(model(), s->save());
    if (!again) fail("a session saved after a step does not restore:", again.message());
  }
  if (gemma2::Status r = s->rollback(s->tokens().size() / 2); !r) fail("rollback failed:", r.message());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> blob(data, data + size);
  restore<gemma2::KVCache>(blob);
  restore<gemma2::SlidingWindowKVCache<gemma2::bf16>>(blob);
  if (size >= 8) {
    const uint64_t h = gemma2::detail::fnv1a(blob.data(), size - 8);
    std::memcpy(blob.data() + size - 8, &h, 8);
    restore<gemma2::KVCache>(blob);
    restore<gemma2::SlidingWindowKVCache<gemma2::bf16>>(blob);
  }
  return 0;
}
