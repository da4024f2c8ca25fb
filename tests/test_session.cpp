// KV-cache policies, sessions (fork, rollback, save/restore), batched
// decode and concurrent use of one model.
#include <doctest/doctest.h>

#include <thread>

#include "support.hpp"

namespace {

using Model = gemma2::Gemma2Model<>;
using Full = gemma2::FullKVCache<float>;
using Sliding = gemma2::SlidingWindowKVCache<float>;

const Model& demo_model() {
  static const Model m = Model::load(GEMMA2_DEMO_MODEL).value();
  return m;
}

// A deterministic token sequence of the demo model's vocabulary.
std::vector<int32_t> tokens(size_t n, uint32_t seed = 1) {
  std::vector<int32_t> ids = {2};
  std::mt19937 rng(seed);
  while (ids.size() < n) ids.push_back(16 + static_cast<int32_t>(rng() % 4000));
  return ids;
}

// Logits of `ids` fed in the given chunk sizes (the last chunk repeats).
template <class Cache>
std::vector<gemma2::Activations> run_chunks(const Model& m, Cache& cache, const std::vector<int32_t>& ids,
                                            std::vector<int> chunks, const gemma2::Executor* pool = nullptr) {
  std::vector<gemma2::Activations> out;
  for (size_t at = 0, c = 0; at < ids.size(); ++c) {
    const size_t n = std::min(ids.size() - at, static_cast<size_t>(chunks[std::min(c, chunks.size() - 1)]));
    auto l = m.forward(ids.data() + at, n, cache, {pool});
    REQUIRE_MESSAGE(l.ok(), l.message());
    out.push_back(*l);
    at += n;
  }
  return out;
}

float worst(const std::vector<gemma2::Activations>& a, const std::vector<gemma2::Activations>& b) {
  REQUIRE(a.size() == b.size());
  float w = 0;
  for (size_t i = 0; i < a.size(); ++i) w = std::max(w, test::max_abs_diff(a[i].data(), b[i].data(), a[i].size()));
  return w;
}

// A float cache that stores what an int8 cache would hold: each row
// through Q8_0 and back.
struct Q8RoundTrip : Full {
  static gemma2::Result<Q8RoundTrip> create(const gemma2::CacheShape& s) {
    auto base = Full::create(s);
    if (!base) return gemma2::Error{base.message()};
    return Q8RoundTrip(std::move(*base));
  }
  explicit Q8RoundTrip(Full&& base) : Full(std::move(base)) {}
  void store(int layer, int pos, const float* k, const float* v) {
    const int kv_dim = shape().kv_dim, head_dim = shape().head_dim;
    std::vector<std::byte> q(gemma2::detail::kv_row_bytes(gemma2::DType::Q8_0, kv_dim, head_dim));
    std::vector<float> kr(static_cast<size_t>(kv_dim)), vr(kr.size());
    for (auto [src, dst] : {std::pair{k, kr.data()}, std::pair{v, vr.data()}}) {
      gemma2::detail::kv_row_from_float(gemma2::DType::Q8_0, src, q.data(), kv_dim, head_dim);
      gemma2::detail::kv_row_to_float(gemma2::DType::Q8_0, q.data(), dst, kv_dim, head_dim);
    }
    Full::store(layer, pos, kr.data(), vr.data());
  }
};

}  // namespace

TEST_CASE("sliding-window cache gives the logits of the full cache, in a fraction of the memory") {
  const Model& m = demo_model();  // window 64
  const auto ids = tokens(400);
  // A 150-token prefill (longer than the window), then steps of 1, 3 and 70.
  for (std::vector<int> chunks : {std::vector<int>{150, 1}, std::vector<int>{150, 3, 70, 1}, std::vector<int>{1}}) {
    auto full = m.make_cache<Full>(512).value();
    auto sliding = m.make_cache<Sliding>(512).value();
    const auto a = run_chunks(m, full, ids, chunks);
    const auto b = run_chunks(m, sliding, ids, chunks);
    CHECK(worst(a, b) <= 1e-5f);
  }
  auto sliding = m.make_cache<Sliding>(512).value();
  CHECK(sliding.bytes() == Sliding::bytes_for(sliding.shape()));
  // At 8192 positions of the real 2B model: local layers keep window + 511 rows.
  const auto shape = gemma2::cache_shape(gemma2::Gemma2_2B{}, 8192);
  const double ratio = static_cast<double>(Sliding::bytes_for(shape)) / static_cast<double>(Full::bytes_for(shape));
  CHECK(ratio == doctest::Approx((13 * 8192 + 13 * (4096 + 511)) / (26.0 * 8192)));
  CHECK(Full::bytes_for(shape) == 2ull * 26 * 8192 * 4 * 256 * 4);
  CHECK(gemma2::FullKVCache<gemma2::bf16>::bytes_for(shape) * 2 == Full::bytes_for(shape));
}

TEST_CASE("golden cases through every cache policy") {
  for (const char* name : {"gqa_f32", "mha_bf16_3layers", "sharded_f32_5layers"}) {
    const auto dir = test::golden_dir(name);
    const auto model = Model::load(dir).value();
    const auto expected = test::read_json(dir + "/expected.json")["cases"][0];
    const auto prompt = expected["prompt"].get<std::vector<int32_t>>();
    auto greedy = [&](auto cache) {
      gemma2::TokenHistory h;
      gemma2::GenerateOptions o;
      o.max_new_tokens = 16;
      return gemma2::generate(model, cache, h, prompt, gemma2::Sampler(), o).value().tokens;
    };
    const auto want = expected["greedy"].get<std::vector<int32_t>>();
    INFO(name);
    CHECK(greedy(model.make_cache<Full>().value()) == want);
    CHECK(greedy(model.make_cache<Sliding>().value()) == want);
    CHECK(greedy(gemma2::SlidingWindowKVCache<float>::create(gemma2::cache_shape(model.config(), 64), 1).value()) == want);
  }
}

TEST_CASE("bf16 cache storage stays close to float32") {
  const Model& m = demo_model();
  const auto ids = tokens(120);
  auto f = m.make_cache<Full>(256).value();
  auto b = m.make_cache<gemma2::SlidingWindowKVCache<gemma2::bf16>>(256).value();
  const auto a = run_chunks(m, f, ids, {100, 1});
  const auto c = run_chunks(m, b, ids, {100, 1});
  CHECK(worst(a, c) <= 0.1f);
  CHECK(b.bytes() * 2 == f.bytes());
}

TEST_CASE("int8 cache storage: Q8_0 per head, close to float32, in both policies") {
  // Rows round-trip within half a quantization step of each 32-value block,
  // for head widths that are and are not multiples of 32 (padded blocks must
  // not leak into the next head).
  for (int head_dim : {64, 24, 16, 40}) {
    const int kv_dim = 3 * head_dim;
    std::mt19937 rng(static_cast<uint32_t>(head_dim));
    std::normal_distribution<float> normal(0.0f, 2.0f);
    std::vector<float> row(static_cast<size_t>(kv_dim)), back(row.size());
    for (float& x : row) x = normal(rng);
    row[5] = 40.0f;  // an outlier only widens its own block's step
    std::vector<std::byte> stored(gemma2::detail::kv_row_bytes(gemma2::DType::Q8_0, kv_dim, head_dim));
    CHECK(stored.size() == 3 * static_cast<size_t>((head_dim + 31) / 32) * 34);
    gemma2::detail::kv_row_from_float(gemma2::DType::Q8_0, row.data(), stored.data(), kv_dim, head_dim);
    gemma2::detail::kv_row_to_float(gemma2::DType::Q8_0, stored.data(), back.data(), kv_dim, head_dim);
    for (int i = 0; i < kv_dim; ++i) {
      const int h = i / head_dim, b = (i % head_dim) / 32;
      float amax = 0;
      for (int j = h * head_dim + b * 32; j < std::min((h + 1) * head_dim, h * head_dim + b * 32 + 32); ++j)
        amax = std::max(amax, std::fabs(row[static_cast<size_t>(j)]));
      INFO("head_dim ", head_dim, " value ", i);
      CHECK(std::fabs(back[static_cast<size_t>(i)] - row[static_cast<size_t>(i)]) <= amax / 127 * 0.51f + 1e-6f);
    }
  }

  const Model& m = demo_model();  // head_dim 64
  const auto ids = tokens(150);
  auto f = m.make_cache<Full>(256).value();
  const auto a = run_chunks(m, f, ids, {100, 1});
  auto full8 = m.make_cache<gemma2::FullKVCache<int8_t>>(256).value();
  auto sliding8 = m.make_cache<gemma2::SlidingWindowKVCache<int8_t>>(256).value();
  const auto b = run_chunks(m, full8, ids, {100, 1});
  const auto c = run_chunks(m, sliding8, ids, {100, 1});
  CHECK(worst(a, b) <= 0.25f);
  CHECK(worst(a, b) > 0.0f);  // the storage is really int8
  CHECK(worst(b, c) <= 1e-5f);
  CHECK(full8.bytes() * 64 == f.bytes() * 17);
  CHECK(full8.bytes() == gemma2::FullKVCache<int8_t>::bytes_for(full8.shape()));
  CHECK(sliding8.bytes() == gemma2::SlidingWindowKVCache<int8_t>::bytes_for(sliding8.shape()));

  // Golden models (head widths 32, 24, 16): attention over the int8 cache
  // equals attention over a float cache holding the same rounded values, up
  // to the order of float sums (the kernels scale a block's sum; random
  // models amplify such differences step by step, so two decode steps).
  for (const char* name : {"gqa_f32", "mha_bf16_3layers", "mqa_f16"}) {
    const auto model = Model::load(test::golden_dir(name)).value();
    std::vector<int32_t> prompt = {2};
    for (int i = 1; i < 32; ++i) prompt.push_back((i * 37) % model.config().vocab_size);
    auto rounded = model.make_cache<Q8RoundTrip>(64).value();
    auto int8 = model.make_cache<gemma2::SlidingWindowKVCache<int8_t>>(64).value();
    INFO(std::string(name));
    CHECK(worst(run_chunks(model, rounded, prompt, {30, 1}), run_chunks(model, int8, prompt, {30, 1})) <= 1e-4f);
  }
}

TEST_CASE("save and restore an int8 cache: the same bytes and logits") {
  const Model& m = demo_model();
  using S = gemma2::Session<Model, gemma2::SlidingWindowKVCache<int8_t>>;
  auto s = S::create(m, 512).value();
  REQUIRE(s.feed(tokens(150, 9)).ok());
  const auto blob = s.save();
  auto r = S::restore(m, blob);
  REQUIRE_MESSAGE(r.ok(), r.message());
  CHECK(r->save() == blob);  // dequantized and stored again: the same Q8_0 bytes
  const auto a = s.feed({42, 43}).value();
  const auto b = r->feed({42, 43}).value();
  CHECK(test::max_abs_diff(a.data(), b.data(), a.size()) == 0.0f);
  CHECK(gemma2::Session<Model, gemma2::SlidingWindowKVCache<gemma2::bf16>>::restore(m, blob).message().find(
            "another KV-cache type") != std::string::npos);
}

TEST_CASE("batched decode equals stepping each session alone") {
  const Model& m = demo_model();
  auto pool = gemma2::ThreadPool::create(2).value();
  std::vector<Full> batch, alone;
  std::vector<int32_t> next;
  for (int i = 0; i < 5; ++i) {  // sessions at different positions
    const auto ids = tokens(10 + 13 * i, 10 + i);
    batch.push_back(m.make_cache<Full>(256).value());
    REQUIRE(m.forward(ids, batch.back()).ok());
    alone.push_back(batch.back());
    next.push_back(ids.back());
  }
  for (int step = 0; step < 6; ++step) {
    std::vector<gemma2::BatchItem<Full>> items;
    for (size_t i = 0; i < batch.size(); ++i) items.push_back({&batch[i], &next[i], 1});
    const auto logits = m.forward_batch(items, {&pool}).value();
    REQUIRE(logits.rows() == 5);
    for (size_t i = 0; i < alone.size(); ++i) {
      const auto one = m.forward(&next[i], 1, alone[i]).value();
      CHECK(test::max_abs_diff(one.data(), logits.row(static_cast<Eigen::Index>(i)).data(), one.size()) <= 1e-4f);
      Eigen::Index best;
      one.row(0).maxCoeff(&best);
      next[i] = static_cast<int32_t>(best);
    }
  }
  // Mixed lengths in one batch (a prefill beside decodes).
  const auto long_ids = tokens(30, 99);
  std::vector<gemma2::BatchItem<Full>> mixed = {{&batch[0], long_ids.data(), long_ids.size()}, {&batch[1], &next[1], 1}};
  auto copy0 = alone[0], copy1 = alone[1];
  const auto lm = m.forward_batch(mixed).value();
  CHECK(test::max_abs_diff(lm.row(0).data(), m.forward(long_ids, copy0).value().data(), lm.cols()) <= 1e-4f);
  CHECK(test::max_abs_diff(lm.row(1).data(), m.forward(&next[1], 1, copy1).value().data(), lm.cols()) <= 1e-4f);

  std::vector<gemma2::BatchItem<Full>> dup = {{&batch[0], &next[0], 1}, {&batch[0], &next[1], 1}};
  CHECK(m.forward_batch(dup).message().find("same cache appears twice") != std::string::npos);
  CHECK(m.forward_batch(std::vector<gemma2::BatchItem<Full>>{}).message().find("no sequences") != std::string::npos);
}

TEST_CASE("results do not depend on the thread count") {
  const Model& m = demo_model();
  const auto ids = tokens(90, 8);
  std::vector<std::vector<gemma2::Activations>> runs;
  for (int threads : {1, 2, 3}) {
    auto pool = gemma2::ThreadPool::create(threads).value();
    auto cache = m.make_cache<Full>(256).value();
    runs.push_back(run_chunks(m, cache, ids, {40, 1}, &pool));
  }
  CHECK(worst(runs[0], runs[1]) == 0.0f);
  CHECK(worst(runs[0], runs[2]) == 0.0f);
}

TEST_CASE("concurrency: threads decoding separate sessions of one model match sequential runs") {
  const Model& m = demo_model();
  constexpr int kThreads = 4, kSteps = 40;
  auto decode = [&](int who, const gemma2::Executor* pool) {
    auto s = gemma2::Session<Model, Sliding>::create(m, 256).value();
    std::vector<int32_t> out;
    gemma2::GenerateOptions o;
    o.max_new_tokens = kSteps;
    o.pool = pool;
    gemma2::SamplingParams p;
    p.seed = static_cast<uint64_t>(who);
    auto r = gemma2::generate(s, tokens(20 + who, static_cast<uint32_t>(who)), gemma2::Sampler(p), o);
    REQUIRE(r.ok());
    return r->tokens;
  };
  std::vector<std::vector<int32_t>> sequential, parallel(kThreads);
  for (int i = 0; i < kThreads; ++i) sequential.push_back(decode(i, nullptr));
  auto shared_pool = gemma2::ThreadPool::create(2).value();
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i)
    threads.emplace_back([&, i] { parallel[static_cast<size_t>(i)] = decode(i, i % 2 ? &shared_pool : nullptr); });
  for (auto& t : threads) t.join();
  CHECK(parallel == sequential);
}

namespace {

// The last row of a feed's logits, and its argmax.
int32_t greedy_next(const gemma2::Activations& logits) {
  Eigen::Index best = 0;
  logits.row(logits.rows() - 1).maxCoeff(&best);
  return static_cast<int32_t>(best);
}

}  // namespace

TEST_CASE("bad input to one session gives an error and leaves it, the model and other sessions usable") {
  const Model& m = demo_model();
  using S = gemma2::Session<Model, Full>;
  const auto prompt = tokens(30, 9);
  auto a = S::create(m, 64).value(), b = S::create(m, 64).value();
  REQUIRE(a.feed(prompt).ok());
  REQUIRE(b.feed(prompt).ok());
  const auto blob = b.save();
  auto expect_error = [&](gemma2::Status s, const std::string& text) {
    CHECK_MESSAGE(test::contains(s.message(), text), s.message());
    CHECK(b.position() == 30);  // nothing of the bad call was kept
  };
  expect_error(b.feed({5, 4096}).status(), "token id 4096 at index 1 is outside the vocabulary [0, 4096)");
  expect_error(b.feed({-7}).status(), "token id -7");
  expect_error(b.feed({}).status(), "no tokens");
  expect_error(b.feed(std::vector<int32_t>(35, 5)).status(), "exceed the capacity of 64");
  auto corrupt = blob;
  corrupt[corrupt.size() / 3] ^= 1;
  expect_error(S::restore(m, corrupt).status(), "checksum mismatch");
  CHECK_FALSE(S::restore(m, std::vector<uint8_t>(blob.begin(), blob.begin() + 20)).ok());
  const auto tok = gemma2::Tokenizer::from_model_dir(GEMMA2_DEMO_MODEL).value();
  CHECK(tok.encode("caf\xc3").message() == "text is not valid UTF-8 (byte 3)");
  CHECK(tok.encode_prompt("").value() == std::vector<int32_t>{tok.bos_id()});  // an empty prompt is <bos> alone
  gemma2::GenerateOptions go;
  go.max_new_tokens = 4;
  // A fed session samples from its logits; a cache and history with nothing
  // pending have none.
  auto empty = S::create(m, 64).value();
  CHECK(test::contains(gemma2::generate(m, empty.cache(), empty.tokens(), std::vector<int32_t>{},
                                        gemma2::Sampler(gemma2::SamplingParams{}), go)
                           .message(),
                       "nothing to run"));
  for (int threads : {0, -3, 100000})
    CHECK(test::contains(gemma2::ThreadPool::create(threads).message(), "thread count must be between 1 and"));
  // Both sessions go on exactly as a fresh session over the same tokens.
  const std::vector<int32_t> next = {17, 18, 19};
  const auto la = a.feed(next).value(), lb = b.feed(next).value();
  auto fresh = S::create(m, 64).value();
  REQUIRE(fresh.feed(prompt).ok());
  const auto lf = fresh.feed(next).value();
  CHECK(test::max_abs_diff(la.data(), lf.data(), lf.size()) == 0.0f);
  CHECK(test::max_abs_diff(lb.data(), lf.data(), lf.size()) == 0.0f);
  CHECK(S::restore(m, blob).ok());
}

// N threads x M sessions each on one model, a few thousand greedy steps in
// all, with rejected bad input and save/restore round trips mixed in: every
// session's tokens and final logits equal a sequential run's.
TEST_CASE("concurrency: threads x sessions x thousands of steps match sequential runs") {
  const Model& m = demo_model();
  using S = gemma2::Session<Model, Sliding>;
  constexpr int kThreads = 3, kSessions = 4, kSteps = test::kThreadSanitizer ? 64 : 250;
  struct Outcome {
    std::vector<int32_t> ids;
    std::vector<float> last_logits;
    int rejected = 0;
  };
  // Runs thread t's sessions, interleaved one step at a time.
  auto run = [&](int t, const gemma2::Executor* pool) {
    std::vector<S> sessions;
    std::vector<Outcome> out(kSessions);
    std::vector<int32_t> next(kSessions);
    for (int j = 0; j < kSessions; ++j) {
      sessions.push_back(S::create(m, 512).value());
      auto l = sessions.back().feed(tokens(8 + j, static_cast<uint32_t>(10 * t + j)), {pool});
      REQUIRE(l.ok());
      next[static_cast<size_t>(j)] = greedy_next(*l);
    }
    for (int step = 0; step < kSteps; ++step)
      for (int j = 0; j < kSessions; ++j) {
        S& s = sessions[static_cast<size_t>(j)];
        Outcome& o = out[static_cast<size_t>(j)];
        if ((step + j) % 61 == 7) o.rejected += !s.feed({4096 + step}, {pool}).ok();
        if ((step + j) % 83 == 11) s = S::restore(m, s.save()).value();
        auto l = s.feed({next[static_cast<size_t>(j)]}, {pool});
        REQUIRE(l.ok());
        o.ids.push_back(next[static_cast<size_t>(j)]);
        next[static_cast<size_t>(j)] = greedy_next(*l);
        if (step == kSteps - 1) o.last_logits.assign(l->data(), l->data() + l->size());
      }
    return out;
  };
  std::vector<std::vector<Outcome>> sequential, parallel(kThreads);
  for (int t = 0; t < kThreads; ++t) sequential.push_back(run(t, nullptr));
  auto shared_pool = gemma2::ThreadPool::create(2).value();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] { parallel[static_cast<size_t>(t)] = run(t, t == 1 ? &shared_pool : nullptr); });
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t)
    for (int j = 0; j < kSessions; ++j) {
      const Outcome &p = parallel[static_cast<size_t>(t)][static_cast<size_t>(j)],
                    &q = sequential[static_cast<size_t>(t)][static_cast<size_t>(j)];
      CHECK(p.ids.size() == static_cast<size_t>(kSteps));
      CHECK(p.ids == q.ids);
      CHECK(p.last_logits == q.last_logits);
      int out_of_vocabulary = 0;  // every one of these feeds must be rejected
      for (int step = 0; step < kSteps; ++step) out_of_vocabulary += (step + j) % 61 == 7;
      CHECK(out_of_vocabulary >= 1);
      CHECK(p.rejected == out_of_vocabulary);
      CHECK(q.rejected == out_of_vocabulary);
    }
}
