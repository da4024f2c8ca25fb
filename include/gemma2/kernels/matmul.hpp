// Matrix products against stored weights: Y = X · Wᵀ, with W row-major
// [out][in] as in the checkpoint. Two shapes matter (llama.cpp and gemma.cpp
// make the same split):
//  * decode (few rows of X): a dot product per weight row, streaming each
//    weight once from memory with SIMD conversion to float on the fly;
//  * prefill (many rows of X): tiles of W converted to float once and
//    multiplied with Eigen's blocked GEMM.
// The SIMD width is chosen at compile time from the target flags
// (-mavx512f, -mavx2 -mfma -mf16c, or none for portable scalar code).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include <Eigen/Core>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "gemma2/thread_pool.hpp"
#include "gemma2/weights.hpp"

GEMMA2_BEGIN_NAMESPACE

// Row-major float matrix used for activations.
using Activations = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace detail {

#if defined(__AVX512F__)
#define GEMMA2_SIMD_LANES 16
using VecF = __m512;
inline VecF vzero() { return _mm512_setzero_ps(); }
inline VecF vload(const float* p) { return _mm512_loadu_ps(p); }
inline VecF vload(const bf16* p) {
  const __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(u, 16));
}
inline VecF vload(const f16* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
inline VecF vfma(VecF a, VecF b, VecF c) { return _mm512_fmadd_ps(a, b, c); }
inline float vsum(VecF a) { return _mm512_reduce_add_ps(a); }
#elif defined(__AVX2__) && defined(__FMA__) && defined(__F16C__)
#define GEMMA2_SIMD_LANES 8
using VecF = __m256;
inline VecF vzero() { return _mm256_setzero_ps(); }
inline VecF vload(const float* p) { return _mm256_loadu_ps(p); }
inline VecF vload(const bf16* p) {
  const __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}
inline VecF vload(const f16* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline VecF vfma(VecF a, VecF b, VecF c) { return _mm256_fmadd_ps(a, b, c); }
inline float vsum(VecF a) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}
#else
#define GEMMA2_SIMD_LANES 1
#endif

// Σ w[i]·x[i] with w converted to float on the fly.
template <class T>
float dot(const T* w, const float* x, int n) {
  int i = 0;
  float s = 0.0f;
#if GEMMA2_SIMD_LANES > 1
  constexpr int L = GEMMA2_SIMD_LANES;
  VecF a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();  // independent chains hide FMA latency
  for (; i + 4 * L <= n; i += 4 * L) {
    a0 = vfma(vload(w + i), vload(x + i), a0);
    a1 = vfma(vload(w + i + L), vload(x + i + L), a1);
    a2 = vfma(vload(w + i + 2 * L), vload(x + i + 2 * L), a2);
    a3 = vfma(vload(w + i + 3 * L), vload(x + i + 3 * L), a3);
  }
  for (; i + L <= n; i += L) a0 = vfma(vload(w + i), vload(x + i), a0);
  s = vsum(a0) + vsum(a1) + vsum(a2) + vsum(a3);
#endif
  for (; i < n; ++i) s += to_float(w[i]) * x[i];
  return s;
}

// out[t] = Σ w[i]·X[t][i] for T rows of X (row stride `ld`): each weight
// vector is loaded and widened once for all T rows (batched decode).
template <int T, class E>
void dot_rows(const E* w, const float* X, int64_t ld, int n, float* out, int64_t out_stride) {
  int i = 0;
  float s[T] = {};
#if GEMMA2_SIMD_LANES > 1
  constexpr int L = GEMMA2_SIMD_LANES;
  VecF a0[T], a1[T];  // two chains per row hide the FMA latency
  for (int t = 0; t < T; ++t) a0[t] = a1[t] = vzero();
  for (; i + 2 * L <= n; i += 2 * L) {
    const VecF w0 = vload(w + i), w1 = vload(w + i + L);
    for (int t = 0; t < T; ++t) {
      a0[t] = vfma(w0, vload(X + t * ld + i), a0[t]);
      a1[t] = vfma(w1, vload(X + t * ld + i + L), a1[t]);
    }
  }
  for (; i + L <= n; i += L) {
    const VecF w0 = vload(w + i);
    for (int t = 0; t < T; ++t) a0[t] = vfma(w0, vload(X + t * ld + i), a0[t]);
  }
  for (int t = 0; t < T; ++t) s[t] = vsum(a0[t]) + vsum(a1[t]);
#endif
  for (; i < n; ++i)
    for (int t = 0; t < T; ++t) s[t] += to_float(w[i]) * X[t * ld + i];
  for (int t = 0; t < T; ++t) out[t * out_stride] = s[t];
}

// Stored elements to float, vectorised (tiles for the GEMM path).
template <class T>
void widen(const T* src, float* dst, int64_t n) {
  int64_t i = 0;
#if GEMMA2_SIMD_LANES > 1
  for (; i + GEMMA2_SIMD_LANES <= n; i += GEMMA2_SIMD_LANES) {
#if GEMMA2_SIMD_LANES == 16
    _mm512_storeu_ps(dst + i, vload(src + i));
#else
    _mm256_storeu_ps(dst + i, vload(src + i));
#endif
  }
#endif
  for (; i < n; ++i) dst[i] = to_float(src[i]);
}

// Rows of X below this count use the dot-product kernel (each weight row is
// read from memory once and reused from L1 for every row of X); from here
// on, tiled GEMM, whose conversion and packing pay off.
constexpr int kGemmMinRows = 8;
// Floats of converted weights per GEMM tile (1 MiB: stays in L2).
constexpr int64_t kTileFloats = 1 << 18;

// Y[T][W.rows] = X[T][W.cols] · Wᵀ. X and Y are contiguous row-major.
inline void matmul(const Matrix& W, const float* X, int T, float* Y, const Executor* pool) {
  visit_dtype(W.dtype, [&](auto tag) {
    using Elem = std::remove_const_t<std::remove_pointer_t<decltype(tag)>>;
    const Elem* w = reinterpret_cast<const Elem*>(W.data);
    const int64_t cols = W.cols, rows = W.rows;
    if (T == 1) {
      parallel_for(pool, rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) Y[r] = dot(w + r * cols, X, static_cast<int>(cols));
      });
      return;
    }
    if (T < kGemmMinRows) {
      using Kernel = void (*)(const Elem*, const float*, int64_t, int, float*, int64_t);
      static constexpr Kernel kernels[] = {nullptr,           nullptr,           dot_rows<2, Elem>, dot_rows<3, Elem>,
                                           dot_rows<4, Elem>, dot_rows<5, Elem>, dot_rows<6, Elem>, dot_rows<7, Elem>};
      static_assert(sizeof kernels / sizeof kernels[0] == kGemmMinRows, "one kernel per row count");
      parallel_for(pool, rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) kernels[T](w + r * cols, X, cols, static_cast<int>(cols), Y + r, rows);
      });
      return;
    }
    const int64_t tile = std::max<int64_t>(16, kTileFloats / std::max<int64_t>(1, cols)) / 16 * 16;
    Eigen::Map<const Activations> x(X, T, cols);
    parallel_for(pool, rows, tile, [&](int64_t r0, int64_t r1) {
      std::vector<float> buf;
      for (int64_t r = r0; r < r1; r += tile) {
        const int64_t n = std::min(tile, r1 - r);
        const float* wt;
        if constexpr (std::is_same_v<Elem, float>) {
          wt = w + r * cols;
        } else {
          buf.resize(static_cast<size_t>(n * cols));
          widen(w + r * cols, buf.data(), n * cols);
          wt = buf.data();
        }
        Eigen::Map<const Activations> wm(wt, n, cols);
        Eigen::Map<Activations, 0, Eigen::OuterStride<>> y(Y + r, T, n, Eigen::OuterStride<>(rows));
        y.noalias() = x * wm.transpose();
      }
    });
  });
}

}  // namespace detail

// Y = X · Wᵀ for activations X [T][W.cols]; returns [T][W.rows].
inline Activations matmul(const Matrix& W, const Activations& X, const Executor* pool = nullptr) {
  Activations Y(X.rows(), W.rows);
  detail::matmul(W, X.data(), static_cast<int>(X.rows()), Y.data(), pool);
  return Y;
}

GEMMA2_END_NAMESPACE
