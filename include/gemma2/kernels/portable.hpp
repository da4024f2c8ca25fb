// The portable kernel set: plain C++ that any compiler builds for any CPU,
// and the readable reference every other set is tested against
// (tests/test_kernels.cpp). The products are the definitions; the prefill
// GEMM converts tiles of weights to float and leaves them to Eigen.
#pragma once

#include <cstring>
#include <type_traits>

#include <Eigen/Core>

#include "gemma2/kernels/common.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {
namespace portable {

// Row-major float matrix, as the activations are stored.
using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// The 32 signed weights of block b of a Q8_0 or Q4_0 row (Q4_0 stores
// q + 8, low nibbles first: byte j holds weights j and j + 16).
inline void block_weights(const SplitRow<const std::byte*>& row, int b, int8_t* w) {
  const std::byte* qs = row.values(b);
  if (row.dtype == DType::Q8_0) {
    std::memcpy(w, qs, kQuantBlock);
    return;
  }
  for (int j = 0; j < kQuantBlock / 2; ++j) {
    const auto q = static_cast<uint8_t>(qs[j]);
    w[j] = static_cast<int8_t>((q & 0x0f) - 8);
    w[j + kQuantBlock / 2] = static_cast<int8_t>((q >> 4) - 8);
  }
}

template <class E>
void dense_rows_of(const PlainMatrix& W, const float* X, int T, float* Y, int64_t r0, int64_t r1) {
  const E* w = reinterpret_cast<const E*>(W.data);
  for (int64_t r = r0; r < r1; ++r)
    for (int t = 0; t < T; ++t) {
      const float* x = X + static_cast<int64_t>(t) * W.cols;
      float s = 0.0f;
      for (int c = 0; c < W.cols; ++c) s += to_float(w[r * W.cols + c]) * x[c];
      Y[static_cast<int64_t>(t) * W.rows + r] = s;
    }
}

inline void dense_rows(const PlainMatrix& W, const float* X, int T, float* Y, int64_t r0, int64_t r1) {
  visit_dtype(W.dtype, [&](auto tag) {
    dense_rows_of<std::remove_const_t<std::remove_pointer_t<decltype(tag)>>>(W, X, T, Y, r0, r1);
  });
}

// Σ over blocks of d_w·d_x·Σ w_q·x_q (Q8_0, Q4_0), or for the K-quants
// Σ over groups of 16 of scale_g·d_x·Σ q·x_q − bias_g·d_x·Σ x_q.
inline float dot_blocks(DType t, const std::byte* row, const int8_t* xq, const float* xd, const float* xsum16,
                        int cols) {
  float sum = 0.0f;
  if (is_kquant(t)) {
    SuperBlockInts s;
    for (int sb = 0; sb < cols / kSuperBlock; ++sb) {
      unpack_superblock(t, row + sb * block_bytes(t), s);
      const int8_t* x = xq + sb * kSuperBlock;
      for (int g = 0; g < kSuperBlock / 16; ++g) {
        int32_t p = 0;
        for (int l = 0; l < 16; ++l) p += static_cast<int32_t>(s.q[16 * g + l]) * x[16 * g + l];
        sum += s.scale[g] * xd[8 * sb + g / 2] * static_cast<float>(p) - s.bias[g] * xsum16[16 * sb + g];
      }
    }
    return sum;
  }
  const auto split = split_row(t, row, cols);
  int8_t w[kQuantBlock];
  for (int b = 0; b < cols / kQuantBlock; ++b) {
    block_weights(split, b, w);
    int32_t p = 0;
    for (int i = 0; i < kQuantBlock; ++i) p += static_cast<int32_t>(w[i]) * xq[b * kQuantBlock + i];
    sum += static_cast<float>(p) * half_at(split.scale(b)) * xd[b];
  }
  return sum;
}

inline void quant_rows(const PlainMatrix& W, const QuantizedRows& X, int T, float* Y, int64_t r0, int64_t r1) {
  const int64_t blocks = W.cols / kQuantBlock;
  for (int64_t r = r0; r < r1; ++r)
    for (int t = 0; t < T; ++t)
      Y[t * W.rows + r] = dot_blocks(W.dtype, W.row(r), X.q.data() + t * W.cols, X.d.data() + t * blocks,
                                     X.sum16.data() + 2 * t * blocks, W.cols);
}

// Row j of head h of a KVRows view as k.dim floats.
inline void kv_row_of_head(const KVRows& k, int j, int h, float* out) {
  kv_head_to_float(k.dtype, k.data + static_cast<size_t>(j) * k.stride + static_cast<size_t>(h) * k.head_bytes, out,
                   k.dim);
}

inline void kv_scores(const KVRows& k, const float* Q, int rows, float* S, int64_t lds) {
  std::vector<float> key(static_cast<size_t>(k.dim));
  for (int h = 0; h < k.heads; ++h)
    for (int j = 0; j < k.count; ++j) {
      kv_row_of_head(k, j, h, key.data());
      for (int r = h * rows; r < (h + 1) * rows; ++r) {
        float s = 0.0f;
        for (int d = 0; d < k.dim; ++d) s += Q[r * k.dim + d] * key[static_cast<size_t>(d)];
        S[r * lds + j] = s;
      }
    }
}

inline void kv_mix(const KVRows& v, const float* P, int64_t ldp, int rows, float* O) {
  std::vector<float> value(static_cast<size_t>(v.dim));
  for (int h = 0; h < v.heads; ++h)
    for (int j = 0; j < v.count; ++j) {
      kv_row_of_head(v, j, h, value.data());
      for (int r = h * rows; r < (h + 1) * rows; ++r)
        for (int d = 0; d < v.dim; ++d) O[r * v.dim + d] += P[r * ldp + j] * value[static_cast<size_t>(d)];
    }
}

// Floats of converted weights per GEMM tile (1 MiB: stays in L2).
constexpr int64_t kTileFloats = 1 << 18;

// Tiles of W converted to float once, multiplied with Eigen's blocked GEMM.
inline void gemm(const PlainMatrix& W, const float* X, int T, float* Y, const Executor* pool) {
  const int64_t cols = W.cols, rows = W.rows;
  const int64_t tile = std::max<int64_t>(16, kTileFloats / std::max<int64_t>(1, cols)) / 16 * 16;
  Eigen::Map<const RowMajor> x(X, T, cols);
  parallel_for(pool, rows, tile, [&](int64_t r0, int64_t r1) {
    std::vector<float> buf;
    for (int64_t r = r0; r < r1; r += tile) {
      const int64_t n = std::min(tile, r1 - r);
      const float* wt;
      if (W.dtype == DType::F32) {
        wt = reinterpret_cast<const float*>(W.data) + r * cols;
      } else {
        buf.resize(static_cast<size_t>(n * cols));
        if (is_blocked(W.dtype))
          for (int64_t i = 0; i < n; ++i) dequantize_row(W.dtype, W.row(r + i), buf.data() + i * cols, W.cols);
        else convert_to_float(W.dtype, W.row(r), buf.data(), static_cast<size_t>(n * cols));
        wt = buf.data();
      }
      Eigen::Map<const RowMajor> wm(wt, n, cols);
      Eigen::Map<RowMajor, 0, Eigen::OuterStride<>> y(Y + r, T, n, Eigen::OuterStride<>(rows));
      y.noalias() = x * wm.transpose();
    }
  });
}

// The set's entry in dispatch.hpp's list: which set, whether this CPU runs
// it (every CPU), and its table.
struct Set {
  static constexpr KernelSet id = KernelSet::Portable;
  static void probe(CpuFeatures&) {}
  static bool supported(const CpuFeatures&) { return true; }
  static Kernels table(const CpuFeatures&) {
    return kernel_table(id, dense_rows, quant_rows, quantize_activations, gemm, kv_scores, kv_mix);
  }
};

}  // namespace portable
template <>
struct SetOf<portable::Set::id> {
  using type = portable::Set;
};
}  // namespace detail
GEMMA2_END_NAMESPACE
