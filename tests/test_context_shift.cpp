// Context shift (context_shift.hpp): after keeping the first tokens,
// dropping the next ones and moving the rest down, a session's logits are
// those of a fresh session fed the kept tokens, on every cache type and
// policy (the sliding-window ring included), whether the cache re-rotates
// its keys or has to be rebuilt.
#include <doctest/doctest.h>

#include <random>

#include "support.hpp"

namespace {

using Model = gemma2::Gemma2Model<>;

std::vector<int32_t> random_ids(size_t n, int vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> ids = {2};
  while (ids.size() < n) ids.push_back(3 + static_cast<int32_t>(rng() % static_cast<uint32_t>(vocab - 3)));
  return ids;
}

// A golden checkpoint cut to its first layer, of the given kind. Layer 0's
// keys and values depend on the token alone, so there a shifted cache is
// exactly a fresh one of the kept tokens at their new positions.
Model one_layer(const std::string& name, gemma2::AttentionKind kind) {
  auto ck = gemma2::open_checkpoint(test::golden_dir(name)).value();
  ck.config.num_hidden_layers = 1;
  ck.config.layer_types = {kind};
  for (auto it = ck.tensors.begin(); it != ck.tensors.end();)
    it = it->first.rfind("model.layers.", 0) == 0 && it->first.rfind("model.layers.0.", 0) != 0 ? ck.tensors.erase(it)
                                                                                                : std::next(it);
  return Model::from_checkpoint(std::move(ck)).value();
}

struct Case {
  int length, keep, drop, after;
  std::string name() const {
    return "keep " + std::to_string(keep) + " drop " + std::to_string(drop) + " of " + std::to_string(length);
  }
};

// The cases for a model: moved rows spanning the window, nothing kept, kept
// rows near the window, kept rows inside the shifted window (which the ring
// has overwritten), nothing moved.
std::vector<Case> cases(const Model& m) {
  const int w = m.config().sliding_window;
  return {
      {3 * w, 1, w, 3}, {2 * w + 5, 0, 7, 3}, {3 * w, w + 2, 3, 2}, {2 * w + 4, w, w + 2, 3}, {w / 2, 2, w / 2 - 2, 3}};
}

// The cache policies: full, sliding window, and a ring of window + 3 rows
// (it wraps, and loses kept rows the shifted window reaches again).
template <class Storage>
struct Policies {
  using Full = gemma2::FullKVCache<Storage>;
  using Sliding = gemma2::SlidingWindowKVCache<Storage>;
  static Full full(const Model& m) { return m.make_cache<Full>(128).value(); }
  static Sliding sliding(const Model& m) { return m.make_cache<Sliding>(128).value(); }
  static Sliding ring(const Model& m) { return Sliding::create(gemma2::cache_shape(m.config(), 128), 4).value(); }
};

// Feeds `length` tokens, shifts, and answers the logits of `after` more
// (all rows), checking the tokens and the position on the way.
template <class Cache>
gemma2::Activations shifted_logits(const Model& m, Cache cache, const Case& c, const std::string& what) {
  const auto ids = random_ids(static_cast<size_t>(c.length + c.after), m.config().vocab_size,
                              static_cast<uint32_t>(c.length * 7 + c.drop));
  auto s = gemma2::Session<Model, Cache>::create(m, std::move(cache)).value();
  // In steps of the ring's max_step on every policy: the same products.
  for (int at = 0; at < c.length; at += 4)
    REQUIRE(s.feed(std::vector<int32_t>(ids.begin() + at, ids.begin() + std::min(c.length, at + 4))).ok());
  const gemma2::Status st = s.shift(c.keep, c.drop);
  REQUIRE_MESSAGE(st.ok(), what, ": ", st.message());
  std::vector<int32_t> kept(ids.begin(), ids.begin() + c.keep);
  kept.insert(kept.end(), ids.begin() + c.keep + c.drop, ids.begin() + c.length);
  CHECK(std::vector<int32_t>(s.tokens().begin(), s.tokens().end()) == kept);
  CHECK(s.position() == static_cast<int>(kept.size()) - 1);  // the last token is pending again
  gemma2::ForwardOptions all;
  all.all_logits = true;
  return s.feed(std::vector<int32_t>(ids.begin() + c.length, ids.end()), all).value();
}

// The same tokens fed to a fresh session without the dropped ones.
template <class Cache>
gemma2::Activations fresh_logits(const Model& m, Cache cache, const Case& c) {
  const auto ids = random_ids(static_cast<size_t>(c.length + c.after), m.config().vocab_size,
                              static_cast<uint32_t>(c.length * 7 + c.drop));
  std::vector<int32_t> kept(ids.begin(), ids.begin() + c.keep);
  kept.insert(kept.end(), ids.begin() + c.keep + c.drop, ids.end());
  auto s = gemma2::Session<Model, Cache>::create(m, std::move(cache)).value();
  gemma2::ForwardOptions all;
  all.all_logits = true;
  // The rows of the last kept token and the tokens after it.
  return s.feed(kept, all).value().bottomRows(c.after + 1);
}

float diff(const gemma2::Activations& a, const gemma2::Activations& b) {
  REQUIRE(a.rows() == b.rows());
  return test::max_abs_diff(a.data(), b.data(), static_cast<size_t>(a.size()));
}

// With float storage the shifted cache is the fresh one up to rounding.
// bf16 and Q8_0 store a moved key rounded a second time: the shift may then
// add about as much error as the storage has (measured on these models: up
// to 4.3x the storage's own distance to float, against 20-30 for a wrong
// rotation).
template <class Storage>
void check_one_layer(const Model& m, const std::string& name) {
  using P = Policies<Storage>;
  for (const Case& c : cases(m)) {
    const std::string what = name + " " + c.name();
    const auto exact = fresh_logits(m, Policies<float>::full(m), c);
    const float tol = std::is_same_v<Storage, float> ? 2e-4f : 6 * diff(fresh_logits(m, P::full(m), c), exact);
    CHECK_MESSAGE(diff(shifted_logits(m, P::full(m), c, what), exact) <= tol, "full ", what);
    CHECK_MESSAGE(diff(shifted_logits(m, P::sliding(m), c, what), exact) <= tol, "sliding ", what);
    CHECK_MESSAGE(diff(shifted_logits(m, P::ring(m), c, what), exact) <= tol, "ring ", what);
  }
}

// Every policy computes the same shift: the ring (which recomputes the kept
// rows it lost) and the sliding-window cache against the full one. The
// ring's recomputed rows come from one pass where the originals came in
// steps of 4: bf16 and Q8_0 may round one of them to the next value.
template <class Storage>
void check_policies(const Model& m, const std::string& name) {
  using P = Policies<Storage>;
  for (const Case& c : cases(m)) {
    const std::string what = name + " " + c.name();
    const auto full = shifted_logits(m, P::full(m), c, what);
    const float tol = std::is_same_v<Storage, float> ? 2e-4f : 2e-3f;
    CHECK_MESSAGE(diff(shifted_logits(m, P::sliding(m), c, what), full) <= tol, "sliding ", what);
    CHECK_MESSAGE(diff(shifted_logits(m, P::ring(m), c, what), full) <= tol, "ring ", what);
  }
}

const char* const kGolden[] = {"gqa_f32", "mha_bf16_3layers", "mqa_f16", "scale27b_f32", "sharded_f32_5layers"};

}  // namespace

TEST_CASE("context shift: one layer gives a fresh session of the kept tokens, on every cache") {
  for (const char* name : kGolden)
    for (auto kind : {gemma2::AttentionKind::Local, gemma2::AttentionKind::Global}) {
      const Model m = one_layer(name, kind);
      const std::string what = std::string(name) + (kind == gemma2::AttentionKind::Local ? " local" : " global");
      check_one_layer<float>(m, what + " float");
      check_one_layer<gemma2::bf16>(m, what + " bf16");
      check_one_layer<int8_t>(m, what + " int8");
    }
}

TEST_CASE("context shift: every cache policy computes the same shift") {
  for (const char* name : kGolden) {
    const auto m = Model::load(test::golden_dir(name)).value();
    check_policies<float>(m, std::string(name) + " float");
    check_policies<gemma2::bf16>(m, std::string(name) + " bf16");
    check_policies<int8_t>(m, std::string(name) + " int8");
  }
}

namespace {

using Demo = test::DemoModel;
using DemoSession = gemma2::Session<Demo, gemma2::SlidingWindowKVCache<float>>;

DemoSession demo_session(int capacity) {
  const auto& m = test::demo_model();
  // A ring smaller than the capacity: shifts take the ring's paths too.
  auto cache = gemma2::SlidingWindowKVCache<float>::create(gemma2::cache_shape(m.config(), capacity), 8).value();
  return DemoSession::create(m, std::move(cache)).value();
}

int32_t argmax(const float* logits, int n) {
  return static_cast<int32_t>(std::max_element(logits, logits + n) - logits);
}

}  // namespace

TEST_CASE("context shift: generation shifts when the cache is full, as a shift by hand at the same point") {
  const auto& m = test::demo_model();
  const int vocab = m.config().vocab_size, capacity = 96;
  const auto prompt = test::demo_prompt("KING HENRY:\nWhat say you, cousin?\n");
  for (const auto& [keep, drop] : {std::pair{1, 0}, std::pair{5, 17}}) {
    CAPTURE(keep);
    CAPTURE(drop);
    gemma2::GenerateOptions o;
    o.max_new_tokens = 3 * capacity;
    o.call_max_tokens = 7;  // in slices, as a frame loop
    o.prefill_chunk = 5;
    o.context_shift = {true, keep, drop};
    auto a = demo_session(capacity);
    gemma2::Generation g(o);
    gemma2::Sampler greedy;
    while (!g.done()) REQUIRE(g.run(a, g.started() ? std::vector<int32_t>{} : prompt, greedy).ok());
    CHECK(g.result().stop == gemma2::StopReason::MaxTokens);
    REQUIRE(g.result().tokens.size() == static_cast<size_t>(3 * capacity));

    // By hand: the sampled token pending, shift when it has no room.
    auto b = demo_session(capacity);
    std::vector<float> logits;
    for (size_t at = 0; at < prompt.size(); at += 5) {
      auto l =
          b.feed(std::vector<int32_t>(prompt.begin() + static_cast<std::ptrdiff_t>(at),
                                      prompt.begin() + static_cast<std::ptrdiff_t>(std::min(prompt.size(), at + 5))));
      REQUIRE(l.ok());
      logits.assign(l->data(), l->data() + vocab);
    }
    int shifts = 0;
    for (size_t i = 0; i < g.result().tokens.size(); ++i) {
      const int32_t t = argmax(logits.data(), vocab);
      REQUIRE(t == g.result().tokens[i]);
      b.tokens().push_back(t);
      if (i + 1 == g.result().tokens.size()) break;  // the reply's last token stays pending
      if (b.position() + 1 > capacity) {
        const int movable = b.position() - keep;
        REQUIRE(b.shift(keep, drop > 0 ? drop : movable / 2).ok());
        ++shifts;
      }
      auto l = b.feed({});
      REQUIRE(l.ok());
      logits.assign(l->data(), l->data() + vocab);
    }
    CHECK(shifts >= 3);
    CHECK(std::vector<int32_t>(a.tokens().begin(), a.tokens().end()) ==
          std::vector<int32_t>(b.tokens().begin(), b.tokens().end()));
  }
}

TEST_CASE("context shift: a chat runs past three times its capacity and keeps its first turn") {
  const int capacity = 128;
  gemma2::Chat<Demo, gemma2::SlidingWindowKVCache<float>> chat(demo_session(capacity), test::demo().tok,
                                                               "You are the king's fool.");
  gemma2::GenerateOptions o;
  o.max_new_tokens = 40;
  o.context_shift.enabled = true;
  o.context_shift.keep = -1;  // the first turn
  gemma2::SamplingParams p;
  p.temperature = 0.8f;
  p.seed = 7;
  gemma2::Sampler sampler(p);
  std::vector<int32_t> first_turn;
  size_t total = 0;
  for (int turn = 0; total < 3 * capacity; ++turn) {
    auto r = chat.send(turn % 2 ? "What news from the court?" : "Speak, good fool.", sampler, o);
    REQUIRE_MESSAGE(r.ok(), r.message());
    CHECK(!r->tokens.empty());
    CHECK(r->stop != gemma2::StopReason::ContextFull);
    if (turn == 0)
      first_turn.assign(chat.history().begin(), chat.history().end() - static_cast<std::ptrdiff_t>(r->tokens.size()));
    total += static_cast<size_t>(r->prefill_tokens) + r->tokens.size();
    CHECK(chat.history().size() <= static_cast<size_t>(capacity));
    REQUIRE(chat.history().size() >= first_turn.size());
    CHECK(std::equal(first_turn.begin(), first_turn.end(), chat.history().begin()));
  }
  CHECK(total >= 3 * capacity);
}

TEST_CASE("context shift: a shifted session saves and restores, and bad requests change nothing") {
  const auto& m = test::demo_model();
  auto s = demo_session(128);
  REQUIRE(s.feed(test::demo_tokens(120, 3)).ok());
  const gemma2::TokenHistory before = s.tokens();
  for (const auto& [keep, drop] : {std::pair{-1, 4}, std::pair{4, -1}, std::pair{30, 91}, std::pair{0, 121}}) {
    const gemma2::Status st = s.shift(keep, drop);
    CHECK(test::contains(st.message(), "context shift: keep"));
    CHECK(s.tokens() == before);
    CHECK(s.position() == 120);
  }
  // The local layers' rings (64 + 7 rows) lost the kept rows: recomputed.
  REQUIRE(s.shift(20, 90).ok());
  auto restored = DemoSession::restore(m, s.save());
  REQUIRE_MESSAGE(restored.ok(), restored.message());
  const auto more = test::demo_tokens(5, 9);
  const auto a = s.feed(more).value(), b = restored->feed(more).value();
  CHECK(test::max_abs_diff(a.data(), b.data(), static_cast<size_t>(a.size())) == 0.0f);

  gemma2::GenerateOptions o;
  o.context_shift = {true, 128, 0};
  gemma2::Generation g(o);
  auto r = g.run(s, {5}, gemma2::Sampler());
  CHECK(test::contains(r.message(), "keep below the capacity of 128"));

  struct NoShift {
    int size() const { return 0; }
  };
  static_assert(gemma2::detail::has_shift<gemma2::FullKVCache<gemma2::bf16>>::value);
  static_assert(!gemma2::detail::has_shift<NoShift>::value);
}
