// The element-wise pieces of Gemma 2 (paper, Section 2), all in float32 as the
// reference computes them.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "gemma2/kernels/matmul.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

// RMSNorm with a (1 + w) gain: `scale` holds 1 + w, precomputed at load.
// The mean square is summed in double (each square is exact there), in four
// independent sums so that the adds do not wait on each other.
inline void rms_norm(Activations& x, const std::vector<float>& scale, float eps) {
  const Eigen::Index n = x.cols();
  for (Eigen::Index t = 0; t < x.rows(); ++t) {
    float* row = x.row(t).data();
    double ss[4] = {};
    Eigen::Index i = 0;
    for (; i + 4 <= n; i += 4)
      for (int j = 0; j < 4; ++j) ss[j] += static_cast<double>(row[i + j]) * row[i + j];
    for (; i < n; ++i) ss[0] += static_cast<double>(row[i]) * row[i];
    const double sum = (ss[0] + ss[1]) + (ss[2] + ss[3]);
    const float inv = 1.0f / std::sqrt(static_cast<float>(sum / static_cast<double>(n)) + eps);
    for (Eigen::Index c = 0; c < n; ++c) row[c] = row[c] * inv * scale[static_cast<size_t>(c)];
  }
}

// The element-wise functions below run on Eigen arrays: its vectorised tanh
// and exp keep them off the critical path (a 2B decode step evaluates ~0.5M
// of them, a long prefill chunk hundreds of millions). Eigen computes the
// elements before the first aligned address with its scalar functions and
// the rest with its vector ones, which differ in the last bit; so that a
// value does not depend on where it sits in memory (a row of a one-token
// step and the same row of a several-token pass must agree exactly, see
// speculative.hpp), each run goes through an aligned buffer in chunks
// counted from its first element.
using ArrayMap = Eigen::Map<Eigen::ArrayXf, Eigen::Aligned64>;
constexpr Eigen::Index kElementChunk = 1024;

// f(a) on x[0, n) chunk by chunk (a: an aligned copy of the chunk, written back).
template <class F>
void in_chunks(float* x, Eigen::Index n, F&& f) {
  alignas(64) float buf[kElementChunk];
  for (Eigen::Index i = 0; i < n; i += kElementChunk) {
    const Eigen::Index m = std::min(kElementChunk, n - i);
    std::copy(x + i, x + i + m, buf);
    ArrayMap a(buf, m);
    f(a);
    std::copy(buf, buf + m, x + i);
  }
}

// f(x, n) on every row of the row-major [rows][cols] matrix at `data`, over
// the pool: a row goes in pieces that start where in_chunks starts its
// chunks, so every value is the one a whole row at a time gives.
template <class F>
void rows_in_pieces(float* data, Eigen::Index rows, Eigen::Index cols, const Executor* pool, F&& f) {
  const Eigen::Index pieces = (cols + kElementChunk - 1) / kElementChunk;
  parallel_for(pool, rows * pieces, 8, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const Eigen::Index first = p % pieces * kElementChunk;
      f(data + p / pieces * cols + first, std::min(kElementChunk, cols - first));
    }
  });
}

// Soft-capping keeps logits in (-cap, cap) smoothly (paper, Section 2.2):
// cap * tanh(x / cap), in place.
inline void softcap(float* x, Eigen::Index n, float cap) {
  in_chunks(x, n, [cap](ArrayMap& a) { a = (a / cap).tanh() * cap; });
}

// GELU with the tanh approximation ("gelu_pytorch_tanh"), in place.
inline void gelu_tanh(float* x, Eigen::Index n) {
  in_chunks(x, n, [](ArrayMap& a) {
    constexpr float kSqrt2OverPi = 0.7978845608028654f;
    a = 0.5f * a * (1.0f + (kSqrt2OverPi * (a + 0.044715f * a * a * a)).tanh());
  });
}

// Inverse RoPE frequencies theta^(-2d/head_dim), rounded to float as the
// reference computes them.
inline std::vector<float> rope_inv_freq(int head_dim, float theta) {
  std::vector<float> f(static_cast<size_t>(head_dim / 2));
  for (int d = 0; d < head_dim / 2; ++d)
    f[static_cast<size_t>(d)] = static_cast<float>(1.0 / std::pow(static_cast<double>(theta), 2.0 * d / head_dim));
  return f;
}

// Rotates `heads` vectors of one position in the half-split layout: element d
// pairs with d + head_dim/2 (reference rotate_half; not interleaved pairs).
inline void rope(float* v, int heads, int head_dim, int pos, const std::vector<float>& inv_freq) {
  const int half = head_dim / 2;
  for (int d = 0; d < half; ++d) {
    const float angle = static_cast<float>(pos) * inv_freq[static_cast<size_t>(d)];
    const float c = std::cos(angle), s = std::sin(angle);
    for (int h = 0; h < heads; ++h) {
      float* x = v + h * head_dim;
      const float a = x[d], b = x[d + half];
      x[d] = a * c - b * s;
      x[d + half] = b * c + a * s;
    }
  }
}

// Numerically stable softmax of n finite values, in place (masked entries are
// left out by the caller rather than set to -inf).
inline void softmax(float* x, Eigen::Index n) {
  const float max = *std::max_element(x, x + n);
  float sum = 0.0f;
  in_chunks(x, n, [&](ArrayMap& a) {
    a = (a - max).exp();
    sum += a.sum();
  });
  const float inv = 1.0f / sum;
  for (Eigen::Index i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace detail
GEMMA2_END_NAMESPACE
