// Sessions and the model under load: batched decode, thread counts,
// concurrent sessions of one model, and bad input that leaves everything
// usable.
#include <doctest/doctest.h>

#include <thread>

#include "support.hpp"

namespace {

using Model = test::DemoModel;
using Full = gemma2::FullKVCache<float>;
using Sliding = gemma2::SlidingWindowKVCache<float>;

// The last row of a feed's logits, and its argmax.
int32_t greedy_next(const gemma2::Activations& logits) {
  Eigen::Index best = 0;
  logits.row(logits.rows() - 1).maxCoeff(&best);
  return static_cast<int32_t>(best);
}

}  // namespace

TEST_CASE("batched decode equals stepping each session alone") {
  const Model& m = test::demo_model();
  auto pool = gemma2::ThreadPool::create(2).value();
  std::vector<Full> batch, alone;
  std::vector<int32_t> next;
  for (int i = 0; i < 5; ++i) {  // sessions at different positions
    const auto ids = test::demo_tokens(10 + 13 * i, 10 + i);
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
  const auto long_ids = test::demo_tokens(30, 99);
  std::vector<gemma2::BatchItem<Full>> mixed = {{&batch[0], long_ids.data(), long_ids.size()},
                                                {&batch[1], &next[1], 1}};
  auto copy0 = alone[0], copy1 = alone[1];
  const auto lm = m.forward_batch(mixed).value();
  CHECK(test::max_abs_diff(lm.row(0).data(), m.forward(long_ids, copy0).value().data(), lm.cols()) <= 1e-4f);
  CHECK(test::max_abs_diff(lm.row(1).data(), m.forward(&next[1], 1, copy1).value().data(), lm.cols()) <= 1e-4f);

  std::vector<gemma2::BatchItem<Full>> dup = {{&batch[0], &next[0], 1}, {&batch[0], &next[1], 1}};
  CHECK(m.forward_batch(dup).message().find("same cache appears twice") != std::string::npos);
  CHECK(m.forward_batch(std::vector<gemma2::BatchItem<Full>>{}).message().find("no sequences") != std::string::npos);
}

TEST_CASE("results do not depend on the thread count") {
  const Model& m = test::demo_model();
  const auto ids = test::demo_tokens(90, 8);
  std::vector<std::vector<gemma2::Activations>> runs;
  for (int threads : {1, 2, 3}) {
    auto pool = gemma2::ThreadPool::create(threads).value();
    auto cache = m.make_cache<Full>(256).value();
    runs.push_back(test::forward_in_chunks(m, cache, ids, {40, 1}, &pool));
  }
  CHECK(test::worst_diff(runs[0], runs[1]) == 0.0f);
  CHECK(test::worst_diff(runs[0], runs[2]) == 0.0f);
}

TEST_CASE("concurrency: threads decoding separate sessions of one model match sequential runs") {
  const Model& m = test::demo_model();
  constexpr int kThreads = 4, kSteps = 40;
  auto decode = [&](int who, const gemma2::Executor* pool) {
    auto s = gemma2::Session<Model, Sliding>::create(m, 256).value();
    std::vector<int32_t> out;
    gemma2::GenerateOptions o;
    o.max_new_tokens = kSteps;
    o.pool = pool;
    gemma2::SamplingParams p;
    p.seed = static_cast<uint64_t>(who);
    auto r = gemma2::generate(s, test::demo_tokens(20 + who, static_cast<uint32_t>(who)), gemma2::Sampler(p), o);
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

TEST_CASE("bad input to one session gives an error and leaves it, the model and other sessions usable") {
  const Model& m = test::demo_model();
  using S = gemma2::Session<Model, Full>;
  const auto prompt = test::demo_tokens(30, 9);
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
  const Model& m = test::demo_model();
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
      auto l = sessions.back().feed(test::demo_tokens(8 + j, static_cast<uint32_t>(10 * t + j)), {pool});
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
