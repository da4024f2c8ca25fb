// Each op, the attention layer and the whole model against the naive
// double-precision twin in naive.hpp.
#include <doctest/doctest.h>

#include "naive.hpp"
#include "support.hpp"

using gemma2::Activations;

TEST_CASE("rms_norm multiplies by (1 + w)") {
  const int n = 37;
  const auto x = test::random_floats(3 * n, 1, 2.0f);
  const auto w = test::random_floats(n, 2, 0.5f);
  Activations a = Eigen::Map<const Activations>(x.data(), 3, n);
  std::vector<float> gain(w);
  for (float& g : gain) g += 1.0f;
  gemma2::detail::rms_norm(a, gain, 1e-6f);
  for (int t = 0; t < 3; ++t) {
    const naive::Vec ref =
        naive::rms_norm(naive::Vec(x.begin() + t * n, x.begin() + (t + 1) * n), naive::Vec(w.begin(), w.end()), 1e-6);
    for (int i = 0; i < n; ++i) CHECK(a(t, i) == doctest::Approx(ref[static_cast<size_t>(i)]).epsilon(1e-5));
  }
}

TEST_CASE("soft-cap, tanh-GELU and softmax match their formulas") {
  // Lengths past one SIMD register and ragged tails take every path of the
  // vectorised array code.
  std::vector<double> xs = {-300.0, -51.0, -3.5, -0.1, 0.0, 0.7, 12.0, 49.0, 1e4, 1e9};
  for (float v : test::random_floats(45, 11, 80.0f)) xs.push_back(v);
  for (double cap : {50.0, 30.0}) {
    std::vector<float> y(xs.begin(), xs.end());
    gemma2::detail::softcap(y.data(), static_cast<Eigen::Index>(y.size()), static_cast<float>(cap));
    for (size_t i = 0; i < xs.size(); ++i) {
      CHECK(y[i] == doctest::Approx(naive::softcap(static_cast<float>(xs[i]), cap)).epsilon(1e-6));
      CHECK(std::abs(y[i]) <= cap);
    }
  }
  std::vector<float> g;
  for (double x : xs) g.push_back(static_cast<float>(x / 100));
  std::vector<float> ref_in = g;
  gemma2::detail::gelu_tanh(g.data(), static_cast<Eigen::Index>(g.size()));
  for (size_t i = 0; i < g.size(); ++i) CHECK(g[i] == doctest::Approx(naive::gelu_tanh(ref_in[i])).epsilon(1e-5));

  std::vector<float> p = test::random_floats(37, 12, 20.0f);
  const std::vector<float> logits = p;
  gemma2::detail::softmax(p.data(), static_cast<Eigen::Index>(p.size()));
  double z = 0.0;
  for (float l : logits) z += std::exp(static_cast<double>(l));
  for (size_t i = 0; i < p.size(); ++i) CHECK(p[i] == doctest::Approx(std::exp(logits[i]) / z).epsilon(1e-5));
}

TEST_CASE("RoPE rotates the half-split pairs") {
  const int D = 16, heads = 3;
  const auto x = test::random_floats(heads * D, 3);
  const auto inv_freq = gemma2::detail::rope_inv_freq(D, 10000.0f);
  for (int pos : {0, 1, 7, 100, 4095, 8191}) {
    std::vector<float> y(x);
    gemma2::detail::rope(y.data(), heads, D, pos, inv_freq);
    for (int h = 0; h < heads; ++h) {
      const naive::Vec ref = naive::rope(naive::Vec(x.begin() + h * D, x.begin() + (h + 1) * D), pos, 10000.0);
      // The reference rounds angles to float32, as we do: at position p the
      // angle itself carries up to p * 2^-24 radians of rounding.
      const double tol = 1e-5 + pos * 1e-7;
      for (int d = 0; d < D; ++d)
        CHECK(std::abs(y[static_cast<size_t>(h * D + d)] - ref[static_cast<size_t>(d)]) <= tol);
    }
  }
}

namespace {

// Loads `tiny` through a real checkpoint directory.
gemma2::Gemma2Model<> load_tiny(const test::TinyModel& tiny) {
  test::TempDir dir;
  tiny.write(dir.str());
  auto m = gemma2::Gemma2Model<>::load(dir.str());
  REQUIRE_MESSAGE(m.ok(), m.message());
  return std::move(*m);
}

double worst_vs_naive(const Activations& got, const naive::Mat& ref) {
  double worst = 0.0;
  for (size_t t = 0; t < ref.size(); ++t)
    for (size_t v = 0; v < ref[t].size(); ++v)
      worst = std::max(worst, std::abs(got(static_cast<Eigen::Index>(t), static_cast<Eigen::Index>(v)) - ref[t][v]));
  return worst;
}

}  // namespace

TEST_CASE("attention with sliding window and GQA/MQA/MHA matches the naive twin") {
  for (int kv_heads : {1, 2, 4}) {
    for (auto kind : {gemma2::AttentionKind::Local, gemma2::AttentionKind::Global}) {
      test::TinyModel tiny;
      auto& c = tiny.config;
      c.num_key_value_heads = kv_heads;
      c.layer_types = {kind, kind, kind};
      c.sliding_window = 5;
      const int h = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = kv_heads * c.head_dim;
      tiny.add("model.layers.0.self_attn.k_proj.weight", {kv, h}, gemma2::DType::F32, 7);
      tiny.add("model.layers.0.self_attn.v_proj.weight", {kv, h}, gemma2::DType::F32, 8);
      auto W = [&](const char* n) {
        const auto& t = tiny.tensors.at(std::string("model.layers.0.self_attn.") + n + ".weight");
        return gemma2::Matrix{t.dtype, static_cast<int>(t.shape[0]), static_cast<int>(t.shape[1]), t.bytes.data()};
      };
      const gemma2::Attention<gemma2::RuntimeConfig> attn(c, 0, {W("q_proj"), W("k_proj"), W("v_proj"), W("o_proj")});
      const int T = 13;  // longer than the window
      const auto x = test::random_floats(static_cast<size_t>(T) * h, 11);
      naive::Mat xs(T);
      for (int t = 0; t < T; ++t) xs[t] = naive::Vec(x.begin() + t * h, x.begin() + (t + 1) * h);
      auto to_naive = [&](const char* n) {
        return naive::to_mat(tiny.tensors.at(std::string("model.layers.0.self_attn.") + n + ".weight"));
      };
      const naive::Mat ref = naive::attention(c, kind == gemma2::AttentionKind::Local, to_naive("q_proj"),
                                              to_naive("k_proj"), to_naive("v_proj"), to_naive("o_proj"), xs);
      INFO("kv_heads=", kv_heads, " local=", kind == gemma2::AttentionKind::Local);
      (void)q;
      // All at once, and as a 4-token prefill followed by one-token steps.
      for (int split : {T, 4}) {
        auto kv_cache = gemma2::KVCache::create(gemma2::cache_shape(c, 32));
        REQUIRE(kv_cache.ok());
        Activations out(T, h);
        for (int begin = 0; begin < T;) {
          const int n = begin == 0 ? split : 1;
          const Activations xb = Eigen::Map<const Activations>(x.data() + begin * h, n, h);
          out.middleRows(begin, n) = attn.forward(
              c, xb, std::vector<gemma2::SequenceRows<gemma2::KVCache>>{{&*kv_cache, begin, 0, n}}, nullptr);
          kv_cache->set_size(begin + n);
          begin += n;
        }
        CHECK(worst_vs_naive(out, ref) <= 1e-4);
      }
    }
  }
}

TEST_CASE("the whole model matches the naive twin for each dtype") {
  for (auto dtype : {gemma2::DType::F32, gemma2::DType::BF16, gemma2::DType::F16}) {
    test::TinyModel tiny(dtype, 21);
    const auto model = load_tiny(tiny);
    std::vector<int32_t> ids;
    for (int i = 0; i < 11; ++i) ids.push_back((i * 37 + 2) % tiny.config.vocab_size);
    auto kv = model.make_cache();
    REQUIRE(kv.ok());
    auto logits = model.forward(ids, *kv, {nullptr, true});
    REQUIRE(logits.ok());
    INFO(gemma2::dtype_name(dtype));
    CHECK(worst_vs_naive(*logits, naive::forward(tiny.config, tiny.tensors, ids)) <= 1e-3);
  }
}

TEST_CASE("prefill then decode, chunked prefill and threads all equal one full forward") {
  test::TinyModel tiny(gemma2::DType::BF16, 5);
  const auto model = load_tiny(tiny);
  std::vector<int32_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back((i * 13 + 2) % tiny.config.vocab_size);
  auto full_kv = model.make_cache();
  REQUIRE(full_kv.ok());
  const auto full = model.forward(ids, *full_kv, {nullptr, true});
  REQUIRE(full.ok());

  auto pool = gemma2::ThreadPool::create(2);
  REQUIRE(pool.ok());
  for (int prompt : {1, 6}) {
    for (int chunk : {1, 3, 512}) {
      for (const gemma2::ThreadPool* p :
           {static_cast<const gemma2::ThreadPool*>(nullptr), static_cast<const gemma2::ThreadPool*>(&*pool)}) {
        auto kv = model.make_cache();
        REQUIRE(kv.ok());
        auto first = model.forward(ids.data(), static_cast<size_t>(prompt), *kv, {p, true, chunk});
        REQUIRE(first.ok());
        CHECK(test::max_abs_diff(first->data(), full->data(), first->size()) <= 1e-4f);
        for (size_t t = static_cast<size_t>(prompt); t < ids.size(); ++t) {
          auto step = model.forward(&ids[t], 1, *kv, {p});
          REQUIRE(step.ok());
          CHECK(test::max_abs_diff(step->data(), full->row(static_cast<Eigen::Index>(t)).data(), step->size()) <=
                1e-4f);
        }
        CHECK(kv->size() == static_cast<int>(ids.size()));
      }
    }
  }
}
