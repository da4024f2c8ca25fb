// Every matmul path (dot-product decode kernel, tiled GEMM, each dtype, with
// and without threads) against a naive double-precision product.
#include <doctest/doctest.h>

#include "support.hpp"

namespace {

// Y[t][r] = Σ_c W[r][c] X[t][c], in double.
std::vector<double> naive_matmul(const gemma2::Matrix& W, const std::vector<float>& X, int T) {
  std::vector<float> w(static_cast<size_t>(W.rows) * W.cols);
  gemma2::detail::convert_to_float(W.dtype, W.data, w.data(), w.size());
  std::vector<double> Y(static_cast<size_t>(T) * W.rows, 0.0);
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < W.rows; ++r) {
      double s = 0.0;
      for (int c = 0; c < W.cols; ++c)
        s += static_cast<double>(w[static_cast<size_t>(r) * W.cols + c]) * X[static_cast<size_t>(t) * W.cols + c];
      Y[static_cast<size_t>(t) * W.rows + r] = s;
    }
  return Y;
}

}  // namespace

TEST_CASE("matmul matches a naive product for every dtype, ragged shape, row count and thread count") {
  auto pool2 = gemma2::ThreadPool::create(2);
  auto pool3 = gemma2::ThreadPool::create(3);
  REQUIRE(pool2.ok());
  REQUIRE(pool3.ok());
  const gemma2::ThreadPool* pools[] = {nullptr, &*pool2, &*pool3};
  const std::pair<int, int> shapes[] = {{1, 1}, {7, 5}, {33, 17}, {64, 64}, {129, 100}, {300, 257}, {17, 1031}};
  uint32_t seed = 100;
  for (auto dtype : {gemma2::DType::F32, gemma2::DType::BF16, gemma2::DType::F16}) {
    for (auto [rows, cols] : shapes) {
      const auto bytes = test::random_weights(static_cast<size_t>(rows) * cols, dtype, seed++);
      const gemma2::Matrix W{dtype, rows, cols, bytes.data()};
      for (int T : {1, 2, 3, 5, 7, 8, 9}) {
        const auto X = test::random_floats(static_cast<size_t>(T) * cols, seed++);
        const auto ref = naive_matmul(W, X, T);
        double norm = 0.0;
        for (double y : ref) norm = std::max(norm, std::abs(y));
        for (const gemma2::ThreadPool* pool : pools) {
          std::vector<float> Y(ref.size(), NAN);
          gemma2::detail::matmul(W, X.data(), T, Y.data(), pool);
          double worst = 0.0;
          for (size_t i = 0; i < Y.size(); ++i) worst = std::max(worst, std::abs(Y[i] - ref[i]));
          INFO(gemma2::dtype_name(dtype), " ", rows, "x", cols, " T=", T,
               " threads=", pool ? pool->num_threads() : 1);
          CHECK(worst <= 1e-5 * std::sqrt(static_cast<double>(cols)) * (1.0 + norm));
        }
      }
    }
  }
}

TEST_CASE("16-bit conversions are exact") {
  CHECK(gemma2::to_float(gemma2::bf16{0x3f80}) == 1.0f);
  CHECK(gemma2::to_float(gemma2::bf16{0xc040}) == -3.0f);
  CHECK(gemma2::to_float(gemma2::f16{0x3c00}) == 1.0f);
  CHECK(gemma2::to_float(gemma2::f16{0xc000}) == -2.0f);
  CHECK(gemma2::to_float(gemma2::f16{0x0001}) == std::ldexp(1.0f, -24));  // smallest subnormal
  CHECK(gemma2::to_float(gemma2::f16{0x7bff}) == 65504.0f);               // largest normal
  CHECK(std::isinf(gemma2::to_float(gemma2::f16{0xfc00})));
  CHECK(std::isnan(gemma2::to_float(gemma2::f16{0x7e00})));
  CHECK(gemma2::to_bf16(1.0f + std::ldexp(1.0f, -8)).bits == 0x3f80);  // ties to even
  CHECK(gemma2::to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)).bits == 0x3f82);
}

TEST_CASE("thread pool rejects absurd thread counts; parallel_for covers every index once") {
  CHECK_FALSE(gemma2::ThreadPool::create(0).ok());
  CHECK_FALSE(gemma2::ThreadPool::create(-3).ok());
  CHECK_FALSE(gemma2::ThreadPool::create(100000).ok());
  auto pool = gemma2::ThreadPool::create(3);
  REQUIRE(pool.ok());
  for (int64_t n : {0, 1, 5, 16, 17, 1000}) {
    std::vector<int> hits(static_cast<size_t>(n), 0);
    gemma2::detail::parallel_for(&*pool, n, 4, [&](int64_t b, int64_t e) {
      CHECK(b % 4 == 0);
      for (int64_t i = b; i < e; ++i) ++hits[static_cast<size_t>(i)];
    });
    for (int h : hits) CHECK(h == 1);
  }
}
