// Every matmul path (dot-product decode kernel, tiled GEMM, each dtype, with
// and without threads) against a naive double-precision product.
#include <doctest/doctest.h>

#include <type_traits>

#include "support.hpp"

namespace {

// The rows in place of W, a matrix the test stored row by row.
gemma2::PlainMatrix in_place(const gemma2::Matrix& W) {
  REQUIRE_FALSE(W.interleaved);
  return {W.dtype, W.rows, W.cols, W.data, gemma2::row_bytes(W.dtype, W.cols), W.bf16_activations};
}

// Whether M has a row(r) that reads a row in place: an interleaved matrix
// must not (reading its bytes as a row would be another row's data).
template <class M, class = void>
struct reads_rows_in_place : std::false_type {};
template <class M>
struct reads_rows_in_place<M, std::void_t<decltype(std::declval<const M&>().row(int64_t{0}))>> : std::true_type {};
static_assert(reads_rows_in_place<gemma2::PlainMatrix>::value && !reads_rows_in_place<gemma2::InterleavedMatrix>::value,
              "an interleaved matrix has no row in place to read");

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
  const std::pair<int, int> shapes[] = {{1, 1},     {7, 5},     {33, 17},   {64, 64},
                                        {129, 100}, {300, 257}, {17, 1031}, {9, 4099}};
  uint32_t seed = 100;
  for (auto dtype : {gemma2::DType::F32, gemma2::DType::BF16, gemma2::DType::F16}) {
    for (auto [rows, cols] : shapes) {
      const auto bytes = test::random_weights(static_cast<size_t>(rows) * cols, dtype, seed++);
      const gemma2::Matrix W{dtype, rows, cols, bytes.data()};
      for (int T : {1, 2, 3, 5, 7, 8, 9, 25}) {
        const auto X = test::random_floats(static_cast<size_t>(T) * cols, seed++);
        const auto ref = naive_matmul(W, X, T);
        double norm = 0.0;
        for (double y : ref) norm = std::max(norm, std::abs(y));
        for (const gemma2::ThreadPool* pool : pools) {
          std::vector<float> Y(ref.size(), NAN);
          gemma2::detail::matmul(W, X.data(), T, Y.data(), pool);
          double worst = 0.0;
          for (size_t i = 0; i < Y.size(); ++i) worst = std::max(worst, std::abs(Y[i] - ref[i]));
          INFO(gemma2::dtype_name(dtype), " ", rows, "x", cols, " T=", T, " threads=", pool ? pool->num_threads() : 1);
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

TEST_CASE("thread pool rejects absurd thread counts, and parallel_for covers every index once") {
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

// The kernel set under test: the best one this CPU has, or GEMMA2_KERNELS
// (ctest runs these cases once per set; tests/CMakeLists.txt).
static const gemma2::detail::Kernels& kernels() { return gemma2::detail::default_kernels(); }

// What the block-format GEMM rounds its operands to: bf16 where the set
// multiplies with the AVX-512 BF16 instructions.
static double bf16_if_gemm(float v) {
  if (std::string(kernels().features).find("bf16") == std::string::npos) return v;
  return gemma2::to_float(gemma2::to_bf16(v));
}

TEST_CASE("kernel sets: the best is chosen, forcing a set the CPU lacks is an error naming it") {
  const auto sets = gemma2::supported_kernel_sets();
  REQUIRE(!sets.empty());
  CHECK(sets.front() == gemma2::KernelSet::Portable);
  const std::string under_test = std::string("kernels under test: ") + gemma2::kernel_set_name(kernels().set) + " " +
                                 kernels().features + " (this CPU runs: " + gemma2::detail::kernel_set_list(sets) + ")";
  MESSAGE(under_test);
  const char* env = std::getenv("GEMMA2_KERNELS");
  if (env == nullptr || *env == '\0') CHECK(kernels().set == sets.back());
  const auto& cpu = gemma2::detail::cpu_features();
  if (kernels().set == gemma2::KernelSet::AVX512) {  // every extension the CPU has is used
    CHECK((std::string(kernels().features).find("vnni") != std::string::npos) == cpu.avx512_vnni);
    CHECK((std::string(kernels().features).find("bf16") != std::string::npos) == cpu.avx512_bf16);
  }
  for (auto s : {gemma2::KernelSet::Portable, gemma2::KernelSet::AVX2, gemma2::KernelSet::AVX512,
                 gemma2::KernelSet::NEON, gemma2::KernelSet::NEONDotProd}) {
    CHECK(gemma2::parse_kernel_set(gemma2::kernel_set_name(s)) == s);
    auto k = gemma2::detail::select_kernels(s);
    CHECK(k.ok() == gemma2::kernel_set_supported(s));
    if (k) CHECK((*k)->set == s);
    else
      CHECK(k.message().find(std::string("cannot run the ") + gemma2::kernel_set_name(s) + " kernels") !=
            std::string::npos);
  }
  CHECK_FALSE(gemma2::parse_kernel_set("AVX2").has_value());
  CHECK_FALSE(gemma2::parse_kernel_set("").has_value());
}

TEST_CASE("block formats: quantize, dequantize and the integer kernels against naive references") {
  auto pool = gemma2::ThreadPool::create(2);
  REQUIRE(pool.ok());
  std::mt19937 rng(11);
  for (auto dtype : {gemma2::DType::Q8_0, gemma2::DType::Q4_0}) {
    for (auto [rows, cols] : {std::pair<int, int>{1, 32}, {7, 64}, {33, 96}, {130, 256}, {17, 2304}, {9, 4160}}) {
      INFO(std::string(gemma2::dtype_name(dtype)), " ", rows, "x", cols);
      const auto src = test::random_floats(static_cast<size_t>(rows) * cols, rng(), 0.5f);
      std::vector<std::byte> q(static_cast<size_t>(rows) * gemma2::row_bytes(dtype, cols));
      for (int r = 0; r < rows; ++r)
        gemma2::detail::quantize_row(dtype, &src[static_cast<size_t>(r) * cols], &q[r * gemma2::row_bytes(dtype, cols)],
                                     cols);
      const gemma2::Matrix W{dtype, rows, cols, q.data()};
      CHECK(W.bytes() * 8.0 / (static_cast<double>(rows) * cols) == (dtype == gemma2::DType::Q8_0 ? 8.5 : 4.5));
      // Dequantized weights are within half a step of the originals (a full
      // step for Q4_0's asymmetric range), with the step d per block.
      std::vector<float> deq(src.size());
      for (int r = 0; r < rows; ++r)
        gemma2::detail::dequantize_row(dtype, in_place(W).row(r), &deq[static_cast<size_t>(r) * cols], cols);
      for (size_t b = 0; b < src.size() / 32; ++b) {
        float m = 0;
        for (int i = 0; i < 32; ++i) m = std::max(m, std::abs(src[b * 32 + i]));
        const float step = m / (dtype == gemma2::DType::Q8_0 ? 127.0f : 8.0f);
        const float bound = step * (dtype == gemma2::DType::Q8_0 ? 0.51f : 1.01f);  // Q4_0 clamps +8 to +7
        for (int i = 0; i < 32; ++i) CHECK(std::abs(deq[b * 32 + i] - src[b * 32 + i]) <= bound + 1e-6f);
      }
      for (int T : {1, 3, 7, 8, 12, 25}) {
        const auto X = test::random_floats(static_cast<size_t>(T) * cols, rng());
        // Reference: below 8 rows the kernel quantizes X per block of 32
        // (scale max|x|/127) and sums integer products; from 8 rows on it
        // multiplies the dequantized weights with float X, both rounded to
        // bf16 where the CPU has the BF16 GEMM.
        const auto xq = gemma2::detail::quantize_activations(X.data(), T, cols);
        for (const gemma2::Executor* p :
             {static_cast<const gemma2::Executor*>(nullptr), static_cast<const gemma2::Executor*>(&*pool)}) {
          std::vector<float> Y(static_cast<size_t>(T) * rows);
          gemma2::detail::matmul(W, X.data(), T, Y.data(), p);
          for (int t = 0; t < T; ++t)
            for (int r = 0; r < rows; ++r) {
              double ref = 0, scale = 0;
              for (int c = 0; c < cols; ++c) {
                const size_t wi = static_cast<size_t>(r) * cols + c, xi = static_cast<size_t>(t) * cols + c;
                const bool gemm = T >= gemma2::detail::kGemmMinRows;
                const double x = gemm ? bf16_if_gemm(X[xi]) : xq.q[xi] * static_cast<double>(xq.d[xi / 32]);
                const double w = gemm ? bf16_if_gemm(deq[wi]) : deq[wi];
                ref += w * x;
                scale += std::abs(w * x);
              }
              CHECK(std::abs(Y[static_cast<size_t>(t) * rows + r] - ref) <= 1e-5 * scale + 1e-6);
            }
        }
      }
    }
  }
}

TEST_CASE("f16 rounding") {
  std::mt19937 rng(5);
  for (int i = 0; i < 100000; ++i) {
    const float f = std::ldexp(std::uniform_real_distribution<float>(-1, 1)(rng), static_cast<int>(rng() % 40) - 28);
    const float back = gemma2::to_float(gemma2::to_f16(f));
    // Nearest half: error at most half a unit in the last place (2^-11 relative, 2^-25 absolute for subnormals).
    CHECK(std::abs(back - f) <= std::max(std::abs(f) * std::ldexp(1.0f, -11), std::ldexp(1.0f, -25)));
  }
  CHECK(gemma2::to_f16(65504.0f).bits == 0x7bff);
  CHECK(gemma2::to_f16(1e6f).bits == 0x7c00);
  CHECK(gemma2::to_f16(-0.0f).bits == 0x8000);
  CHECK(gemma2::to_f16(1.0f + std::ldexp(1.0f, -11)).bits == 0x3c00);  // tie to even
}

namespace {

// K-quant super-blocks packed from known integers, following the layout
// description in weights.hpp (the test packs, the library unpacks), with the
// float weights they stand for.
struct KBlocks {
  std::vector<std::byte> bytes;
  std::vector<float> weights;
};

KBlocks random_kquant_rows(gemma2::DType t, int rows, int cols, std::mt19937& rng) {
  KBlocks k;
  auto u = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  auto half = [&](float lo, float hi) {
    return gemma2::to_f16(lo + (hi - lo) * static_cast<float>(rng() % 1000) / 1000.0f);
  };
  for (int blk = 0; blk < rows * cols / 256; ++blk) {
    std::vector<uint8_t> b(gemma2::row_bytes(t, 256), 0);
    std::vector<float> w(256);
    if (t == gemma2::DType::Q6_K) {
      const gemma2::f16 d = half(0.001f, 0.02f);
      std::memcpy(&b[208], &d, 2);
      for (int i = 0; i < 16; ++i) b[192 + i] = static_cast<uint8_t>(static_cast<int8_t>(u(255) - 127));
      for (int n = 0; n < 2; ++n)
        for (int l = 0; l < 32; ++l) {
          int q[4];
          for (int part = 0; part < 4; ++part) {
            q[part] = u(64);  // stored value; the weight is q - 32
            const int i = 128 * n + 32 * part + l;
            w[static_cast<size_t>(i)] = gemma2::to_float(d) *
                                        static_cast<int8_t>(b[192 + 8 * n + (32 * part + l) / 16]) *
                                        static_cast<float>(q[part] - 32);
          }
          b[64 * n + l] = static_cast<uint8_t>((q[0] & 15) | ((q[2] & 15) << 4));
          b[64 * n + 32 + l] = static_cast<uint8_t>((q[1] & 15) | ((q[3] & 15) << 4));
          b[128 + 32 * n + l] =
              static_cast<uint8_t>((q[0] >> 4) | ((q[1] >> 4) << 2) | ((q[2] >> 4) << 4) | ((q[3] >> 4) << 6));
        }
    } else {
      const bool five = t == gemma2::DType::Q5_K;
      const gemma2::f16 d = half(0.001f, 0.01f), dmin = half(0.0f, 0.01f);
      std::memcpy(&b[0], &d, 2);
      std::memcpy(&b[2], &dmin, 2);
      int sc[8], m[8];
      for (int j = 0; j < 8; ++j) sc[j] = u(64), m[j] = u(64);
      for (int j = 0; j < 4; ++j) {
        b[4 + j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
        b[8 + j] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
        b[12 + j] = static_cast<uint8_t>((sc[j + 4] & 15) | ((m[j + 4] & 15) << 4));
      }
      const size_t qs = five ? 48 : 16;
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
          const int lo = u(five ? 32 : 16), hi = u(five ? 32 : 16);
          b[qs + 32 * c + l] = static_cast<uint8_t>((lo & 15) | ((hi & 15) << 4));
          if (five) b[16 + l] |= static_cast<uint8_t>(((lo >> 4) << (2 * c)) | ((hi >> 4) << (2 * c + 1)));
          const float fd = gemma2::to_float(d), fm = gemma2::to_float(dmin);
          w[static_cast<size_t>(64 * c + l)] = fd * sc[2 * c] * static_cast<float>(lo) - fm * m[2 * c];
          w[static_cast<size_t>(64 * c + 32 + l)] = fd * sc[2 * c + 1] * static_cast<float>(hi) - fm * m[2 * c + 1];
        }
    }
    for (uint8_t x : b) k.bytes.push_back(static_cast<std::byte>(x));
    k.weights.insert(k.weights.end(), w.begin(), w.end());
  }
  return k;
}

}  // namespace

TEST_CASE("K-quants: dequantize and matmul against the integers they were packed from") {
  std::mt19937 rng(21);
  auto pool = gemma2::ThreadPool::create(2);
  REQUIRE(pool.ok());
  for (auto t : {gemma2::DType::Q4_K, gemma2::DType::Q5_K, gemma2::DType::Q6_K}) {
    for (auto [rows, cols] : {std::pair<int, int>{1, 256}, {37, 512}, {5, 4352}, {11, 4608}}) {
      INFO(std::string(gemma2::dtype_name(t)), " ", rows, "x", cols);
      const KBlocks k = random_kquant_rows(t, rows, cols, rng);
      REQUIRE(k.bytes.size() == static_cast<size_t>(rows) * gemma2::row_bytes(t, cols));
      const gemma2::Matrix W{t, rows, cols, k.bytes.data()};
      std::vector<float> deq(static_cast<size_t>(cols));
      for (int r = 0; r < rows; ++r) {
        gemma2::detail::dequantize_row(t, in_place(W).row(r), deq.data(), cols);
        for (int c = 0; c < cols; ++c)
          CHECK(deq[static_cast<size_t>(c)] ==
                doctest::Approx(k.weights[static_cast<size_t>(r) * cols + c]).epsilon(1e-6).scale(1e-6));
      }
      for (int T : {1, 3, 8, 13}) {
        const auto X = test::random_floats(static_cast<size_t>(T) * cols, rng());
        // Below 8 rows X is quantized per block of 32, as for Q8_0/Q4_0.
        const auto xq = gemma2::detail::quantize_activations(X.data(), T, cols);
        for (const gemma2::Executor* p :
             {static_cast<const gemma2::Executor*>(nullptr), static_cast<const gemma2::Executor*>(&*pool)}) {
          std::vector<float> Y(static_cast<size_t>(T) * rows);
          gemma2::detail::matmul(W, X.data(), T, Y.data(), p);
          for (int i = 0; i < T; ++i)
            for (int r = 0; r < rows; ++r) {
              double ref = 0, scale = 0;
              for (int c = 0; c < cols; ++c) {
                const bool gemm = T >= gemma2::detail::kGemmMinRows;
                const size_t xi = static_cast<size_t>(i) * cols + c;
                const float wf = k.weights[static_cast<size_t>(r) * cols + c];
                const double w = gemm ? bf16_if_gemm(wf) : wf;
                const double x = gemm ? bf16_if_gemm(X[xi]) : xq.q[xi] * static_cast<double>(xq.d[xi / 32]);
                ref += w * x;
                scale += std::abs(w * x);
              }
              CHECK(std::abs(Y[static_cast<size_t>(i) * rows + r] - ref) <= 1e-5 * scale + 1e-6);
            }
        }
      }
    }
  }
}

namespace {

// W (plain block-format rows) interleaved as a set with interleaved kernels
// stores it, in `storage`.
gemma2::Matrix interleaved(const gemma2::Matrix& W, std::vector<std::byte>& storage) {
  gemma2::Matrix out = W;
  out.interleaved = true;
  storage.assign(out.bytes(), std::byte{0});
  gemma2::detail::interleave_rows(in_place(W), storage.data(), 0, W.rows);
  out.data = storage.data();
  return out;
}

// Every set's table, and the tables a CPU with fewer extensions gets:
// AVX2 without AVX-VNNI, AVX-512 without VNNI (their integer kernels).
std::vector<gemma2::detail::Kernels> tables_under_test() {
  std::vector<gemma2::detail::Kernels> tables;
  for (gemma2::KernelSet set : gemma2::supported_kernel_sets()) {
    REQUIRE(gemma2::detail::kernels_for(set) != nullptr);
    tables.push_back(*gemma2::detail::kernels_for(set));
  }
  gemma2::detail::CpuFeatures fewer = gemma2::detail::cpu_features();
  if (fewer.avx_vnni || fewer.avx512_vnni) {
    fewer.avx_vnni = fewer.avx512_vnni = fewer.avx512_bf16 = false;
    tables.push_back(gemma2::detail::kernels_with(gemma2::KernelSet::AVX2, fewer));
    if (fewer.avx512) tables.push_back(gemma2::detail::kernels_with(gemma2::KernelSet::AVX512, fewer));
  }
  return tables;
}

const gemma2::DType kMatrixTypes[] = {gemma2::DType::F32,  gemma2::DType::BF16, gemma2::DType::F16,
                                      gemma2::DType::Q8_0, gemma2::DType::Q4_0, gemma2::DType::Q4_K,
                                      gemma2::DType::Q5_K, gemma2::DType::Q6_K};

// Random rows of a weight matrix stored as `dtype` (K-quants: cols % 256 == 0).
std::vector<std::byte> random_matrix(gemma2::DType dtype, int rows, int cols, std::mt19937& rng) {
  if (gemma2::is_kquant(dtype)) return random_kquant_rows(dtype, rows, cols, rng).bytes;
  if (!gemma2::is_blocked(dtype)) return test::random_weights(static_cast<size_t>(rows) * cols, dtype, rng());
  const auto src = test::random_floats(static_cast<size_t>(rows) * cols, rng(), 0.5f);
  std::vector<std::byte> bytes(static_cast<size_t>(rows) * gemma2::row_bytes(dtype, cols));
  for (int r = 0; r < rows; ++r)
    gemma2::detail::quantize_row(dtype, &src[static_cast<size_t>(r) * cols], &bytes[r * gemma2::row_bytes(dtype, cols)],
                                 cols);
  return bytes;
}

}  // namespace

TEST_CASE("kernel sets: activation quantization gives the reference's integers and scales, bit for bit") {
  std::mt19937 rng(43);
  for (const gemma2::detail::Kernels& table : tables_under_test()) {
    INFO(gemma2::kernel_set_name(table.set), " (", table.features, ")");
    REQUIRE((table.quantize != nullptr));
    for (auto [T, cols] : {std::pair<int, int>{1, 32}, {2, 96}, {5, 2304}, {3, 9216}}) {
      std::vector<float> X = test::random_floats(static_cast<size_t>(T) * cols, rng(), 3.0f);
      // Block 0: a zero block; block 1 (when there is one): max 127, so
      // x·id = x, with ties (k + 0.5) that must round to even.
      std::fill(X.begin(), X.begin() + 32, 0.0f);
      if (cols > 32) {
        const float ties[] = {127.0f, 2.5f, -3.5f, 0.5f, -0.5f, 126.5f, -127.0f, 1.5f};
        for (int i = 0; i < 32; ++i) X[static_cast<size_t>(32 + i)] = ties[i % 8] * (i < 8 ? 1.0f : 0.25f);
      }
      for (int32_t offset : {0, 8, 128}) {
        INFO("T=", T, " cols=", cols, " offset=", offset);
        const auto want = gemma2::detail::quantize_activations(X.data(), T, cols, offset);
        const auto got = table.quantize(X.data(), T, cols, offset);
        CHECK(got.q == want.q);
        CHECK(std::memcmp(got.d.data(), want.d.data(), want.d.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(got.sum.data(), want.sum.data(), want.sum.size() * sizeof(float)) == 0);
        CHECK(std::memcmp(got.sum16.data(), want.sum16.data(), want.sum16.size() * sizeof(float)) == 0);
        CHECK(got.start == want.start);
      }
    }
  }
}

TEST_CASE("interleaved block formats: same bits per weight, every row recovered exactly") {
  std::mt19937 rng(41);
  for (auto dtype :
       {gemma2::DType::Q8_0, gemma2::DType::Q4_0, gemma2::DType::Q4_K, gemma2::DType::Q5_K, gemma2::DType::Q6_K}) {
    const bool k_quant = gemma2::is_kquant(dtype);
    for (auto [rows, cols] :
         {std::pair<int, int>{1, 32}, {8, 64}, {13, 96}, {24, 2304}, {70, 160}, {3, 256}, {17, 512}}) {
      if (k_quant && cols % 256 != 0) continue;
      INFO(gemma2::dtype_name(dtype), " ", rows, "x", cols);
      const size_t rb = gemma2::row_bytes(dtype, cols);
      std::vector<std::byte> bytes(static_cast<size_t>(rows) * rb), storage;
      if (k_quant) {
        bytes = random_kquant_rows(dtype, rows, cols, rng).bytes;
      } else {
        const auto src = test::random_floats(static_cast<size_t>(rows) * cols, rng(), 0.5f);
        for (int r = 0; r < rows; ++r)
          gemma2::detail::quantize_row(dtype, &src[static_cast<size_t>(r) * cols], &bytes[r * rb], cols);
      }
      const gemma2::Matrix W{dtype, rows, cols, bytes.data()};
      const gemma2::Matrix I = interleaved(W, storage);
      CHECK(I.bytes() == static_cast<size_t>((rows + 7) / 8) * 8 * rb);  // only a last group's padding rows added
      std::vector<std::byte> scratch(rb);
      for (int r = 0; r < rows; ++r) {
        const std::byte* got = I.row(r, scratch.data());
        CHECK(std::equal(got, got + rb, in_place(W).row(r)));
      }
      if (rows < 2) continue;
      // Block 0 of group 0 starts with the 8 rows' scales d (row 1's at 2).
      const size_t d_at = dtype == gemma2::DType::Q6_K ? 208
                          : k_quant                    ? 0
                                                       : (dtype == gemma2::DType::Q8_0 ? cols : cols / 2);
      CHECK(std::equal(storage.data() + 2, storage.data() + 4, in_place(W).row(1) + d_at));
      if (k_quant) {
        // Unit 0 starts with the low 4 bits of row 0's weights 0-7, then row 1's.
        std::vector<float> w(static_cast<size_t>(cols));
        gemma2::detail::SuperBlockInts ints;
        gemma2::detail::unpack_superblock(dtype, in_place(W).row(1), ints);
        const int offset = dtype == gemma2::DType::Q6_K ? 32 : 0;
        for (int i = 0; i < 8; ++i)
          CHECK((static_cast<int>(storage[gemma2::KQuantGroup{dtype}.header_bytes() + 8 + static_cast<size_t>(i)]) &
                 15) == ((ints.q[i] + offset) & 15));
      } else {  // then row 1's first 8 bytes at unit 0 (Q8_0 values stored q + 128)
        const auto flip = std::byte{dtype == gemma2::DType::Q8_0 ? uint8_t{0x80} : uint8_t{0}};
        for (int i = 0; i < 8; ++i) CHECK(storage[16 + 8 + static_cast<size_t>(i)] == (in_place(W).row(1)[i] ^ flip));
      }
    }
  }
}

namespace {

// The bytes of one field of an interleaved block equal the plain block's.
void check_field(const std::byte* interleaved_at, const std::byte* plain_at, size_t n, std::byte flip = std::byte{0}) {
  for (size_t i = 0; i < n; ++i) CHECK(interleaved_at[i] == (plain_at[i] ^ flip));
}

}  // namespace

TEST_CASE("interleaved layouts: every row's fields, read through the layout types, are its plain block's fields") {
  std::mt19937 rng(43);
  for (auto dtype :
       {gemma2::DType::Q8_0, gemma2::DType::Q4_0, gemma2::DType::Q4_K, gemma2::DType::Q5_K, gemma2::DType::Q6_K}) {
    const bool k_quant = gemma2::is_kquant(dtype);
    const int rows = 13, cols = 512;
    INFO(gemma2::dtype_name(dtype));
    std::vector<std::byte> bytes = random_matrix(dtype, rows, cols, rng), storage;
    const gemma2::Matrix W{dtype, rows, cols, bytes.data()};
    const gemma2::Matrix I = interleaved(W, storage);
    CHECK(in_place(W).stride == gemma2::row_bytes(dtype, cols));
    for (int r = 0; r < rows; ++r) {
      const int j = r % gemma2::kInterleave;
      const std::byte* group = I.data + static_cast<size_t>(r / gemma2::kInterleave) * I.group_bytes();
      const std::byte* plain = in_place(W).row(r);
      for (int b = 0; b < cols / gemma2::weights_per_block(dtype); ++b) {
        const std::byte* gb = group + static_cast<size_t>(b) * gemma2::interleaved_block_bytes(dtype);
        if (k_quant) {
          const gemma2::KQuantGroup layout{dtype};
          const std::byte* blk = plain + static_cast<size_t>(b) * gemma2::block_bytes(dtype);
          const bool six = dtype == gemma2::DType::Q6_K;
          check_field(gb + layout.half_at(0, j),
                      blk + (six ? offsetof(gemma2::BlockQ6_K, d) : offsetof(gemma2::BlockQ4_K, d)), 2);
          if (!six) check_field(gb + layout.half_at(1, j), blk + offsetof(gemma2::BlockQ4_K, dmin), 2);
          const size_t scales = six ? offsetof(gemma2::BlockQ6_K, scales) : offsetof(gemma2::BlockQ4_K, scales);
          for (int k = 0; k < (six ? 16 : 12); ++k) check_field(gb + layout.scale_at(k, j), blk + scales + k, 1);
        } else {
          const gemma2::Block32Group layout{dtype};
          const auto split = gemma2::split_row(dtype, plain, cols);
          check_field(gb + layout.scale_at(j), split.scale(b), 2);
          for (int u = 0; u < layout.units(); ++u)
            check_field(gb + layout.unit_at(u, j), split.values(b) + 8 * u, 8, static_cast<std::byte>(layout.flip()));
        }
      }
    }
  }
}

TEST_CASE("every kernel set this CPU runs agrees with the portable reference") {
  const auto* reference = gemma2::detail::kernels_for(gemma2::KernelSet::Portable);
  auto pool = gemma2::ThreadPool::create(2);
  REQUIRE(pool.ok());
  std::mt19937 rng(31);
  for (const gemma2::detail::Kernels& table : tables_under_test()) {
    const auto* k = &table;
    const gemma2::KernelSet set = k->set;
    for (auto dtype : kMatrixTypes) {
      const bool k_quant = gemma2::is_kquant(dtype);
      for (auto [rows, cols] : {std::pair<int, int>{3, 256}, {45, 96}, {70, 2304}, {33, 4160}, {5, 9216}}) {
        if (k_quant && cols % 256 != 0) continue;
        std::vector<std::byte> bytes = random_matrix(dtype, rows, cols, rng);
        gemma2::Matrix W{dtype, rows, cols, bytes.data()};
        // Sets with interleaved kernels get the block formats interleaved, as at load.
        std::vector<std::byte> storage;
        const bool interleave = k->interleaved_rows != nullptr && gemma2::is_blocked(dtype);
        const gemma2::Matrix mine = interleave ? interleaved(W, storage) : W;
        // Sets with bf16 products compute the prefill GEMM of block formats
        // with activations and weights rounded to bf16; BF16 weights keep
        // float32 activations (the float GEMM), as every other set.
        const bool bf16_gemm = std::string(k->features).find("bf16") != std::string::npos && gemma2::is_blocked(dtype);
        for (int T : {1, 2, 5, 7, 9, 20}) {
          // Interleaved matrices take the integer kernels at every T.
          const bool gemm = T >= gemma2::detail::kGemmMinRows && !interleave;
          const double rel = gemm && bf16_gemm ? 5e-3 : 1e-5;
          INFO((std::string(gemma2::kernel_set_name(set)) + " (" + k->features + ") " + gemma2::dtype_name(dtype)), " ",
               rows, "x", cols, " T=", T);
          const auto X = test::random_floats(static_cast<size_t>(T) * cols, rng());
          std::vector<float> want(static_cast<size_t>(T) * rows), got(want.size(), NAN);
          W.kernels = reference;
          if (gemm || !gemma2::is_blocked(dtype)) gemma2::detail::matmul(W, X.data(), T, want.data(), nullptr);
          else  // the portable integer kernel, also from 8 rows on
            reference->quant_rows(in_place(W), gemma2::detail::quantize_activations(X.data(), T, cols), T, want.data(),
                                  0, rows);
          gemma2::Matrix with = mine;
          with.kernels = k;
          gemma2::detail::matmul(with, X.data(), T, got.data(), &*pool);
          // The same integer sums for the block formats; float sums in another order.
          // Bound per output: a few float roundings of Σ|w·x| (or the bf16 ones).
          std::vector<float> w(static_cast<size_t>(cols));
          for (int r = 0; r < rows; ++r) {
            gemma2::detail::convert_to_float(dtype, in_place(W).row(r), w.data(), w.size());
            for (int t = 0; t < T; ++t) {
              double scale = 0;
              for (int c = 0; c < cols; ++c)
                scale += std::abs(w[static_cast<size_t>(c)] * X[static_cast<size_t>(t) * cols + c]);
              const size_t i = static_cast<size_t>(t) * rows + r;
              CHECK(std::abs(got[i] - want[i]) <= rel * scale + 1e-6);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("exact prefill: BF16 weights' GEMM keeps every bit of each activation on every set") {
  // One-hot weight rows pass activations through unrounded: Y[t][r] is
  // X[t][r] exactly when the GEMM keeps float32 activations, and visibly
  // not when it rounds them (to bf16, or to a bf16 head and remainder).
  constexpr int kRows = 40, kCols = 64, kT = 12;  // T >= kGemmMinRows: the prefill GEMM
  static_assert(kT >= gemma2::detail::kGemmMinRows);
  std::vector<gemma2::bf16> one_hot(static_cast<size_t>(kRows) * kCols, gemma2::to_bf16(0.0f));
  for (int r = 0; r < kRows; ++r) one_hot[static_cast<size_t>(r) * kCols + r] = gemma2::to_bf16(1.0f);
  const auto X = test::random_floats(static_cast<size_t>(kT) * kCols, 7);
  for (gemma2::KernelSet set : gemma2::supported_kernel_sets()) {
    INFO(std::string(gemma2::kernel_set_name(set)));
    gemma2::Matrix W{gemma2::DType::BF16, kRows, kCols, reinterpret_cast<const std::byte*>(one_hot.data()),
                     gemma2::detail::kernels_for(set)};
    std::vector<float> Y(static_cast<size_t>(kT) * kRows);
    gemma2::detail::matmul(W, X.data(), kT, Y.data(), nullptr);
    int differ = 0;
    for (int t = 0; t < kT; ++t)
      for (int r = 0; r < kRows; ++r)
        differ += Y[static_cast<size_t>(t) * kRows + r] != X[static_cast<size_t>(t) * kCols + r];
    CHECK(differ == 0);
  }
}

TEST_CASE("prefill precision bf16: BF16 weights' GEMM rounds activations to bf16 once, where a set has bf16 products") {
  std::mt19937 rng(51);
  for (gemma2::KernelSet set : gemma2::supported_kernel_sets()) {
    const auto* k = gemma2::detail::kernels_for(set);
    const bool bf16_products = std::string(k->features).find("bf16") != std::string::npos;
    for (auto [rows, cols] : {std::pair<int, int>{45, 96}, {70, 2304}}) {
      const auto bytes = test::random_weights(static_cast<size_t>(rows) * cols, gemma2::DType::BF16, rng());
      gemma2::Matrix W{gemma2::DType::BF16, rows, cols, bytes.data(), k};
      std::vector<float> w(static_cast<size_t>(rows) * cols);
      gemma2::detail::convert_to_float(W.dtype, W.data, w.data(), w.size());
      for (int T : {9, 20}) {
        INFO(gemma2::kernel_set_name(set), " ", rows, "x", cols, " T=", T);
        const auto X = test::random_floats(static_cast<size_t>(T) * cols, rng());
        std::vector<float> exact(static_cast<size_t>(T) * rows), fast(exact.size());
        gemma2::detail::matmul(W, X.data(), T, exact.data(), nullptr);
        W.bf16_activations = true;
        gemma2::detail::matmul(W, X.data(), T, fast.data(), nullptr);
        W.bf16_activations = false;
        // The fast mode against Σ w·bf16(x) in double, the exact one against
        // Σ w·x, both within float rounding: the exact mode keeps every bit
        // of x on every set, and is measurably off the fast mode's sums.
        int exact_off = 0;
        for (int t = 0; t < T; ++t)
          for (int r = 0; r < rows; ++r) {
            double ref = 0, ref_exact = 0, scale = 0;
            for (int c = 0; c < cols; ++c) {
              const float x = X[static_cast<size_t>(t) * cols + c], wr = w[static_cast<size_t>(r) * cols + c];
              ref += wr * static_cast<double>(gemma2::to_float(gemma2::to_bf16(x)));
              ref_exact += wr * static_cast<double>(x);
              scale += std::abs(wr * static_cast<double>(x));
            }
            const size_t i = static_cast<size_t>(t) * rows + r;
            CHECK(std::abs(exact[i] - ref_exact) <= 1e-5 * scale + 1e-6);
            if (bf16_products) CHECK(std::abs(fast[i] - ref) <= 1e-5 * scale + 1e-6);
            else CHECK(fast[i] == exact[i]);  // no bf16 products: the switch changes nothing
            exact_off += std::abs(exact[i] - ref) > 1e-5 * scale + 1e-6;
          }
        if (bf16_products) CHECK(exact_off > 0);
      }
    }
  }
}

namespace {

// `count` random KV-cache rows of kv_dim values in heads of `dim`, stored as
// `dtype`, and in `stored` what the cache holds, as it reads them back.
std::vector<std::byte> random_kv_rows(gemma2::DType dtype, int kv_dim, int dim, int count, std::mt19937& rng,
                                      std::vector<float>& stored) {
  const size_t stride = gemma2::detail::kv_row_bytes(dtype, kv_dim, dim);
  std::vector<std::byte> cache(stride * count);
  stored.assign(static_cast<size_t>(count) * kv_dim, 0.0f);
  for (int j = 0; j < count; ++j) {
    const auto row = test::random_floats(static_cast<size_t>(kv_dim), rng());
    gemma2::detail::kv_row_from_float(dtype, row.data(), cache.data() + j * stride, kv_dim, dim);
    gemma2::detail::kv_row_to_float(dtype, cache.data() + j * stride, &stored[static_cast<size_t>(j) * kv_dim], kv_dim,
                                    dim);
  }
  return cache;
}

}  // namespace

TEST_CASE("attention products (kv_scores, kv_mix) of every kernel set against a naive product, for each KV storage") {
  std::mt19937 rng(57);
  std::vector<const gemma2::detail::Kernels*> tables;
  for (gemma2::KernelSet set : gemma2::supported_kernel_sets()) tables.push_back(gemma2::detail::kernels_for(set));
  for (auto dtype : {gemma2::DType::F32, gemma2::DType::BF16, gemma2::DType::Q8_0}) {
    for (int dim : {16, 24, 32, 40, 64, 256}) {
      const int kv_heads = 3, kv_dim = kv_heads * dim, count = 37;
      const size_t stride = gemma2::detail::kv_row_bytes(dtype, kv_dim, dim),
                   head_bytes = gemma2::detail::kv_head_bytes(dtype, dim);
      std::vector<float> stored;
      const std::vector<std::byte> cache = random_kv_rows(dtype, kv_dim, dim, count, rng, stored);
      for (int rows : {1, 2, 3, 7, 8, 9}) {
        for (int n : {1, 5, 13, 37}) {
          // Heads g0 <= g < g0 + heads of the last n rows.
          const int heads = n % 2 == 0 ? kv_heads : 2, g0 = kv_heads - heads, first = count - n;
          const gemma2::detail::KVRows view{
              cache.data() + first * stride + g0 * head_bytes, stride, n, dim, dtype, heads, head_bytes};
          const int qrows = heads * rows;
          const auto Q = test::random_floats(static_cast<size_t>(qrows) * dim, rng());
          const auto P = test::random_floats(static_cast<size_t>(qrows) * (n + 3), rng());  // ldp = n + 3
          const auto O0 = test::random_floats(static_cast<size_t>(qrows) * dim, rng());
          auto at = [&](int j, int r, int d) {  // row j of the head query row r belongs to
            return static_cast<double>(stored[static_cast<size_t>(first + j) * kv_dim + (g0 + r / rows) * dim + d]);
          };
          for (const auto* k : tables) {
            INFO(gemma2::kernel_set_name(k->set), " ", gemma2::dtype_name(dtype), " dim=", dim, " rows=", rows,
                 " n=", n, " heads=", heads);
            std::vector<float> S(static_cast<size_t>(qrows) * (n + 2), NAN);  // lds = n + 2
            k->kv_scores(view, Q.data(), rows, S.data(), n + 2);
            std::vector<float> O = O0;
            k->kv_mix(view, P.data(), n + 3, rows, O.data());
            for (int r = 0; r < qrows; ++r) {
              for (int j = 0; j < n; ++j) {
                double want = 0, scale = 0;
                for (int d = 0; d < dim; ++d) {
                  want += Q[static_cast<size_t>(r * dim + d)] * at(j, r, d);
                  scale += std::abs(Q[static_cast<size_t>(r * dim + d)] * at(j, r, d));
                }
                CHECK(std::abs(S[static_cast<size_t>(r * (n + 2) + j)] - want) <= 1e-5 * scale + 1e-6);
              }
              CHECK(std::isnan(S[static_cast<size_t>(r * (n + 2) + n)]));  // past the row: untouched
              for (int d = 0; d < dim; ++d) {
                double want = O0[static_cast<size_t>(r * dim + d)], scale = std::abs(want);
                for (int j = 0; j < n; ++j) {
                  want += P[static_cast<size_t>(r * (n + 3) + j)] * at(j, r, d);
                  scale += std::abs(P[static_cast<size_t>(r * (n + 3) + j)] * at(j, r, d));
                }
                CHECK(std::abs(O[static_cast<size_t>(r * dim + d)] - want) <= 1e-5 * scale + 1e-6);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("kernels: each activation row's products are the same bits whatever the rows beside it (up to 7)") {
  // Speculative decoding checks k guesses in one pass of k + 1 rows and must
  // give exactly the logits of k + 1 one-row steps: below kGemmMinRows rows,
  // every row of a product is computed as it is alone.
  std::mt19937 rng(77);
  for (const gemma2::detail::Kernels& table : tables_under_test()) {
    for (auto dtype : kMatrixTypes) {
      for (auto [rows, cols] : {std::pair<int, int>{19, 256}, {45, 96}, {17, 2304}}) {
        if (gemma2::is_kquant(dtype) && cols % 256 != 0) continue;
        std::vector<std::byte> bytes = random_matrix(dtype, rows, cols, rng);
        gemma2::Matrix W{dtype, rows, cols, bytes.data()};
        std::vector<std::byte> storage;
        if (table.interleaved_rows != nullptr && gemma2::is_blocked(dtype)) W = interleaved(W, storage);
        W.kernels = &table;
        constexpr int kMost = gemma2::detail::kGemmMinRows - 1;
        const auto X = test::random_floats(static_cast<size_t>(kMost) * cols, rng());
        std::vector<float> one(static_cast<size_t>(kMost) * rows);
        for (int t = 0; t < kMost; ++t)
          gemma2::detail::matmul(W, X.data() + static_cast<size_t>(t) * cols, 1,
                                 one.data() + static_cast<size_t>(t) * rows, nullptr);
        for (int T = 2; T <= kMost; ++T) {
          INFO((std::string(gemma2::kernel_set_name(table.set)) + " (" + table.features + ") " +
                gemma2::dtype_name(dtype) + " " + std::to_string(rows) + "x" + std::to_string(cols) +
                " T=" + std::to_string(T)));
          std::vector<float> many(static_cast<size_t>(T) * rows);
          gemma2::detail::matmul(W, X.data(), T, many.data(), nullptr);
          CHECK(std::memcmp(many.data(), one.data(), many.size() * sizeof(float)) == 0);
        }
      }
    }
  }
}
