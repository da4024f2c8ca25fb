// Samplers (sampling.hpp): the logit processors, greedy and seeded choice,
// user processors in the chain, parameter validation.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "gemma2/sampling.hpp"

namespace {

const std::vector<float> base = {1.0f, 3.0f, 2.0f, -1.0f, 2.5f, 0.0f};
const gemma2::TokenHistory none;

// The base logits after one processor, given a history.
std::vector<float> run(const gemma2::LogitProcessor& p, const gemma2::TokenHistory& h = {}) {
  std::vector<float> l = base;
  p(l, h);
  return l;
}

}  // namespace

TEST_CASE("sampling: greedy picks the argmax") {
  gemma2::Sampler greedy;
  std::vector<float> l = base;
  CHECK(greedy(l, none) == 1);
  gemma2::SamplingParams p;
  p.temperature = 0;
  l = base;
  CHECK(gemma2::Sampler(p)(l, none) == 1);
}

TEST_CASE("sampling: top-k keeps exactly k, ties included") {
  auto l = run(gemma2::processors::top_k(2));
  CHECK(std::isfinite(l[1]));
  CHECK(std::isfinite(l[4]));
  CHECK(std::count_if(l.begin(), l.end(), [](float x) { return std::isfinite(x); }) == 2);
  std::vector<float> tie = {1, 1, 1, 1};
  gemma2::processors::top_k(2)(tie, none);
  CHECK(std::count_if(tie.begin(), tie.end(), [](float x) { return std::isfinite(x); }) == 2);
}

TEST_CASE("sampling: top-p keeps the smallest nucleus") {
  // probabilities of base: the top two (3.0, 2.5) hold 0.738; with 2.0, 0.907.
  auto l = run(gemma2::processors::top_p(0.6f));
  CHECK(std::count_if(l.begin(), l.end(), [](float x) { return std::isfinite(x); }) == 2);
  l = run(gemma2::processors::top_p(0.75f));
  CHECK(std::count_if(l.begin(), l.end(), [](float x) { return std::isfinite(x); }) == 3);
  l = run(gemma2::processors::top_p(0.01f));
  CHECK(std::count_if(l.begin(), l.end(), [](float x) { return std::isfinite(x); }) == 1);
}

TEST_CASE("sampling: min-p drops tokens below min_p x the top probability") {
  auto l = run(gemma2::processors::min_p(std::exp(-1.0f) - 1e-4f));  // keeps logits >= 2.0
  CHECK(l == std::vector<float>{-INFINITY, 3.0f, 2.0f, -INFINITY, 2.5f, -INFINITY});
}

TEST_CASE("sampling: penalties") {
  auto l = run(gemma2::processors::penalties(2.0f, 0.0f, 0.0f), {1, 3, 1});
  CHECK(l[1] == 1.5f);   // positive: divided
  CHECK(l[3] == -2.0f);  // negative: multiplied
  CHECK(l[2] == 2.0f);
  l = run(gemma2::processors::penalties(1.0f, 0.5f, 0.25f), {1, 3, 1});
  CHECK(l[1] == doctest::Approx(3.0 - 1.0 - 0.25));
  CHECK(l[3] == doctest::Approx(-1.0 - 0.5 - 0.25));
  l = run(gemma2::processors::penalties(1.0f, 1.0f, 0.0f, 1), {1, 3, 1});  // only the last token counts
  CHECK(l[1] == 2.0f);
  CHECK(l[3] == -1.0f);
}

TEST_CASE("sampling: logit bias can ban or force a token") {
  gemma2::SamplingParams p;
  p.greedy = true;
  p.logit_bias = {{1, -INFINITY}, {5, 10.0f}};
  std::vector<float> l = base;
  CHECK(gemma2::Sampler(p)(l, none) == 5);
}

TEST_CASE("sampling: the same seed gives the same draws, and the draw follows the distribution") {
  gemma2::SamplingParams p;
  p.seed = 42;
  gemma2::Sampler a(p), b(p);
  std::vector<int> counts(base.size(), 0);
  std::vector<int32_t> seq_a, seq_b;
  for (int i = 0; i < 20000; ++i) {
    std::vector<float> la = base, lb = base;
    seq_a.push_back(a(la, none));
    seq_b.push_back(b(lb, none));
    ++counts[static_cast<size_t>(seq_a.back())];
  }
  CHECK(seq_a == seq_b);
  double z = 0;
  for (float x : base) z += std::exp(x);
  for (size_t i = 0; i < base.size(); ++i)
    CHECK(counts[i] / 20000.0 == doctest::Approx(std::exp(base[i]) / z).epsilon(0.1));
  p.seed = 43;
  gemma2::Sampler c(p);
  std::vector<int32_t> seq_c;
  for (int i = 0; i < 50; ++i) {
    std::vector<float> l = base;
    seq_c.push_back(c(l, none));
  }
  CHECK(seq_c != std::vector<int32_t>(seq_a.begin(), seq_a.begin() + 50));
}

TEST_CASE("sampling: a chain with a user processor") {
  gemma2::Sampler s;
  s.add([](std::vector<float>& l, const gemma2::TokenHistory& h) { l[static_cast<size_t>(h.back())] = 100; });
  std::vector<float> l = base;
  CHECK(s(l, {3}) == 3);
}

TEST_CASE("sampling: parameter validation") {
  gemma2::SamplingParams p;
  p.top_p = 0;
  CHECK(gemma2::validate(p).message().find("top-p") != std::string::npos);
  p = {};
  p.temperature = -1;
  CHECK_FALSE(gemma2::validate(p).ok());
  p = {};
  p.min_p = 1.5f;
  CHECK_FALSE(gemma2::validate(p).ok());
  CHECK(gemma2::validate(gemma2::SamplingParams{}).ok());
}
