// Fuzzes Session::restore against a tiny random model, for the default
// cache and a bf16 sliding-window cache, and Generation::restore (a saved
// reply in progress; the corpus holds both kinds of blob). Each input is
// restored as given and again with its checksum recomputed, so mutations
// reach the checks behind the checksum. A restored session must save back
// to the same bytes (float caches, current version), take a token and roll
// back; a restored reply must save back to the same bytes and, run on a
// session, generate or refuse with a message.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include <gemma2/testing/random_model.hpp>

#include "tiny.hpp"

namespace {

using Model = gemma2::Gemma2Model<>;
constexpr uint32_t kSessionVersion = 2;  // what Session::save writes

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
  // Older versions restore and save as the current one.
  uint32_t version = 0;
  if (blob.size() >= 12) std::memcpy(&version, blob.data() + 8, 4);
  if (std::is_same_v<typename Cache::storage, float> && version == kSessionVersion && s->save() != blob)
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

void restore_reply(const std::vector<uint8_t>& blob) {
  gemma2::GenerateOptions o;
  o.max_new_tokens = 3;
  gemma2::Generation g(o);
  if (!g.restore(blob)) return;
  if (g.save() != blob) fail("a restored reply saves to other bytes");
  // On a session with a pending token, and on one with nothing to run
  // (where a reply's own logits, if any, are sampled).
  for (const std::vector<int32_t>& tokens : {std::vector<int32_t>{2, 5, 9}, std::vector<int32_t>{}}) {
    auto s = gemma2::Session<Model>::create(model(), 16);
    if (!s) fail("cannot make a session:", s.message());
    if (!tokens.empty() && !s->feed({tokens[0], tokens[1]})) fail("cannot feed the session");
    s->tokens().insert(s->tokens().end(), tokens.begin() + (tokens.empty() ? 0 : 2), tokens.end());
    gemma2::Generation copy = g;
    gemma2::Sampler sampler;
    auto r = copy.run(*s, {}, sampler);
    if (r && r->tokens.size() > 3) fail("a restored reply ran past its budget");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> blob(data, data + size);
  auto all = [](const std::vector<uint8_t>& b) {
    restore<gemma2::KVCache>(b);
    restore<gemma2::SlidingWindowKVCache<gemma2::bf16>>(b);
    restore_reply(b);
  };
  all(blob);
  if (size >= 8) {
    const uint64_t h = gemma2::detail::fnv1a(blob.data(), size - 8);
    std::memcpy(blob.data() + size - 8, &h, 8);
    all(blob);
  }
  return 0;
}
