// Scoring: log-probabilities, top-k predictions and windowed scoring
// against recomputation from the model's logits; compare_logits between
// weight types converted at load.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "support.hpp"

namespace {

using test::demo;
using Model = test::DemoModel;

const std::vector<int32_t>& scored_text() {
  static const auto ids =
      test::demo_prompt("KING HENRY VI:\nWhat, will the aspiring blood of Lancaster\nSink in the ground?");
  return ids;
}

// The logits of every position of `ids`, from an empty cache.
gemma2::Activations all_logits(const std::vector<int32_t>& ids) {
  auto kv = demo().model.make_cache();
  gemma2::ForwardOptions fo;
  fo.all_logits = true;
  return demo().model.forward(ids, *kv, fo).value();
}

// log softmax(l.row(row))[target], in double.
double manual_logprob(const gemma2::Activations& l, Eigen::Index row, int32_t target) {
  const double m = l.row(row).maxCoeff();
  const double z = (l.row(row).array().cast<double>() - m).exp().sum();
  return l(row, target) - m - std::log(z);
}

}  // namespace

TEST_CASE("scoring: log-probabilities and top-k agree with recomputation") {
  const auto& d = demo();
  const auto& ids = scored_text();
  const auto logits = all_logits(ids);
  std::vector<gemma2::TokenPrediction> preds;
  gemma2::ScoreOptions so;
  so.top_k = 5;
  auto one = gemma2::score(d.model, ids, so, [&](const gemma2::TokenPrediction& p) { preds.push_back(p); });
  REQUIRE(one.ok());
  REQUIRE(one->logprobs.size() == ids.size() - 1);
  CHECK(one->forward_passes == 1);
  double nll = 0;
  for (size_t t = 1; t < ids.size(); ++t) {
    CHECK(one->logprobs[t - 1] ==
          doctest::Approx(manual_logprob(logits, static_cast<Eigen::Index>(t - 1), ids[t])).epsilon(1e-4));
    nll -= one->logprobs[t - 1];
    const auto& p = preds[t - 1];
    CHECK(p.index == static_cast<int64_t>(t));
    CHECK(p.top.size() == 5);
    CHECK(std::is_sorted(p.top.begin(), p.top.end(), [](auto a, auto b) { return a.second > b.second; }));
    Eigen::Index best;
    logits.row(static_cast<Eigen::Index>(t - 1)).maxCoeff(&best);
    CHECK(p.top[0].first == best);
  }
  CHECK(one->nll == doctest::Approx(nll / (ids.size() - 1)));
  CHECK(one->perplexity == doctest::Approx(std::exp(one->nll)));
}

TEST_CASE("scoring: windows score every token once, each from its own window, and bad options are errors") {
  const auto& d = demo();
  const auto& ids = scored_text();
  // Windows of 8 positions, 3 new tokens each: every token is still scored
  // once, each from its own window [BOS] + text[begin, end).
  gemma2::ScoreOptions so;
  so.window = 8;
  so.stride = 3;
  so.top_k = 0;
  std::vector<gemma2::TokenPrediction> wp;
  auto windowed = gemma2::score(d.model, ids, so, [&](const gemma2::TokenPrediction& p) { wp.push_back(p); });
  REQUIRE(windowed.ok());
  REQUIRE(windowed->logprobs.size() == ids.size() - 1);
  CHECK(windowed->forward_passes > 1);
  for (size_t i = 0; i < wp.size(); ++i) CHECK(wp[i].index == static_cast<int64_t>(i + 1));
  const int64_t t = static_cast<int64_t>(ids.size()) - 2;  // the last text token, scored by the last window
  const int64_t begin = t + 1 - 7;
  std::vector<int32_t> win = {ids[0]};
  win.insert(win.end(), ids.begin() + 1 + begin, ids.end());
  const auto wl = all_logits(win);
  CHECK(windowed->logprobs.back() ==
        doctest::Approx(manual_logprob(wl, static_cast<Eigen::Index>(win.size() - 2), ids.back())).epsilon(1e-4));

  CHECK(gemma2::score(d.model, {2}).message().find("at least 2 tokens") != std::string::npos);
  so.stride = 9;
  CHECK(gemma2::score(d.model, ids, so).message().find("stride") != std::string::npos);
}

TEST_CASE("weight types converted at load keep the demo model's predictions") {
  const std::string text = test::read_text(GEMMA2_QUALITY_TEXT);
  const auto ids = demo().tok.encode_prompt(text).value();
  auto pool = gemma2::ThreadPool::create(2).value();
  std::vector<std::string> logs;
  auto with = [&](gemma2::DType t) {
    gemma2::LoadOptions lo;
    lo.weight_type = t;
    lo.pool = &pool;
    lo.log = [&](gemma2::LogLevel, const std::string& m) { logs.push_back(m); };
    auto m = Model::load(GEMMA2_DEMO_MODEL, lo);
    REQUIRE_MESSAGE(m.ok(), m.message());
    return std::move(*m);
  };
  gemma2::ScoreOptions so;
  so.pool = &pool;
  const Model f32 = with(gemma2::DType::F32);
  CHECK(f32.weight_bytes() == 2 * demo().model.weight_bytes());
  // The demo weights are BF16, so widening them is exact; the BF16 GEMM keeps
  // ~16 significant bits of each activation, so the logits agree closely.
  auto same = gemma2::compare_logits(demo().model, f32, ids, so).value();
  CHECK(same.kl < 1e-9);
  CHECK(same.top1_agreement == 1.0);
  const Model q8 = with(gemma2::DType::Q8_0), q4 = with(gemma2::DType::Q4_0);
  CHECK(q8.weight_bytes() * 32 == f32.weight_bytes() / 4 * 34);  // 8.5 bits per weight
  CHECK(q4.weight_bytes() * 32 == f32.weight_bytes() / 4 * 18);  // 4.5 bits per weight
  const auto c8 = gemma2::compare_logits(f32, q8, ids, so).value();
  const auto c4 = gemma2::compare_logits(f32, q4, ids, so).value();
  MESSAGE("q8: kl=", c8.kl, " top1=", c8.top1_agreement, "; q4: kl=", c4.kl, " top1=", c4.top1_agreement);
  CHECK(c8.positions == static_cast<int>(ids.size()));
  CHECK(c8.kl < 1e-3);
  CHECK(c8.top1_agreement > 0.97);
  CHECK(c4.kl < 2e-2);
  CHECK(c4.top1_agreement > 0.85);
  CHECK(c4.kl > c8.kl);
  CHECK(std::abs(gemma2::score(q8, ids, so).value().nll - gemma2::score(f32, ids, so).value().nll) < 0.01);
}
