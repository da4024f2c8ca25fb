// Matrix products against stored weights: Y = X · Wᵀ, with W row-major
// [out][in] as in the checkpoint. Two shapes matter (llama.cpp and gemma.cpp
// make the same split):
//  * decode and small batches (few rows of X): a dot product per weight row,
//    streaming each weight once from memory, converted on the fly (block
//    formats against activations quantized to int8 blocks);
//  * prefill (many rows of X): a GEMM over panels of converted weights.
// Interleaved Q8_0/Q4_0 matrices (weights.hpp) take their integer kernels at
// every row count instead: each group of 8 weight rows meets several rows of
// X per load, which outruns converting the weights for a GEMM.
// The kernels come from the set the Matrix was bound to at load
// (LoadOptions::kernels), else the process default (dispatch.hpp); this file
// only splits the work over rows and threads.
#pragma once

#include <Eigen/Core>

#include "gemma2/kernels/dispatch.hpp"

GEMMA2_BEGIN_NAMESPACE

// Row-major float matrix used for activations.
using Activations = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

namespace detail {

// Y[T][W.rows] = X[T][W.cols] · Wᵀ. X and Y are contiguous row-major.
inline void matmul(const Matrix& W, const float* X, int T, float* Y, const Executor* pool) {
  const Kernels& k = W.kernels ? *W.kernels : default_kernels();
  W.visit(
      [&](const PlainMatrix& P) {
        if (T >= kGemmMinRows) return k.gemm(P, X, T, Y, pool);
        if (is_blocked(P.dtype)) {
          const QuantizedRows x = k.quantize(X, T, P.cols, 0);
          return parallel_for(pool, P.rows, 16, [&](int64_t r0, int64_t r1) { k.quant_rows(P, x, T, Y, r0, r1); });
        }
        parallel_for(pool, P.rows, 16, [&](int64_t r0, int64_t r1) { k.dense_rows(P, X, T, Y, r0, r1); });
      },
      [&](const InterleavedMatrix& I) {  // every T: the integer kernels outrun a GEMM on converted weights
        const QuantizedRows x = k.quantize(X, T, I.cols, interleaved_offset(I.dtype));
        const int pass = interleaved_pass_rows(I.cols);
        for (int t0 = 0; t0 < T; t0 += pass)
          parallel_for(pool, interleaved_groups(I.rows), 2, [&](int64_t g0, int64_t g1) {
            k.interleaved_rows(I, x, t0, std::min(T, t0 + pass), Y, g0, g1);
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
