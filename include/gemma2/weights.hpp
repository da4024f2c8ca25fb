// Typed views of weight tensors: the one seam between layer code and storage
// (docs/ARCHITECTURE.md). Layers hold Matrix views and call matmul(); the
// dtype picks the kernel. The data usually points into a memory-mapped
// checkpoint and is never copied. The storage formats are in dtype.hpp,
// block_formats.hpp and interleaved.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "gemma2/block_formats.hpp"
#include "gemma2/dtype.hpp"
#include "gemma2/interleaved.hpp"
#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {
struct Kernels;
}

// The rows of a matrix stored row by row, in place: what Matrix::plain_rows
// gives, and only for a matrix that is not interleaved.
struct PlainRows {
  const std::byte* data = nullptr;
  size_t stride = 0;  // row_bytes(dtype, cols)
  const std::byte* row(int64_t r) const { return data + static_cast<size_t>(r) * stride; }
};

// A row-major [rows][cols] weight matrix (Hugging Face layout: [out][in]).
struct Matrix {
  DType dtype = DType::F32;
  int rows = 0;
  int cols = 0;
  const std::byte* data = nullptr;
  // The kernel set products with this matrix use (set at load from
  // LoadOptions::kernels); null: the process default.
  const detail::Kernels* kernels = nullptr;
  bool interleaved = false;  // rows in groups of kInterleave (interleaved.hpp)
  // The prefill GEMM of BF16 weights may round activations to bf16
  // (LoadOptions::prefill_precision).
  bool bf16_activations = false;

  // The rows in place. An interleaved matrix has no row in place (read one
  // with plain_row): asking is a bug in the caller, which stops the program
  // rather than hand it another row's bytes.
  PlainRows plain_rows() const {
    if (interleaved) {
      std::fputs("gemma2: Matrix::plain_rows() of an interleaved matrix (use detail::plain_row)\n", stderr);
      std::abort();
    }
    return {data, row_bytes(dtype, cols)};
  }
  [[deprecated("use plain_rows().row(r), or detail::plain_row for a matrix that may be interleaved")]] const std::byte*
  row(int r) const {
    return plain_rows().row(r);
  }
  // The bytes of one group of kInterleave rows of an interleaved matrix.
  size_t group_bytes() const { return kInterleave * row_bytes(dtype, cols); }
  size_t bytes() const {
    return interleaved ? interleaved_groups(rows) * group_bytes() : static_cast<size_t>(rows) * row_bytes(dtype, cols);
  }
};

namespace detail {
// Rows r0 <= r < r1 of the plain block-format matrix `plain` into the
// interleaved storage `dst` of the same shape (zeroed, as the padding rows
// of a last partial group are zero).
inline void interleave_rows(const Matrix& plain, std::byte* dst, int64_t r0, int64_t r1) {
  const PlainRows rows = plain.plain_rows();
  for (int64_t r = r0; r < r1; ++r)
    interleaved_row_copy<true>(plain.dtype, plain.cols, static_cast<int>(r), rows.row(r), dst);
}

// Row r of W in the plain layout: in place, or rebuilt in `scratch`
// (row_bytes(W.dtype, W.cols) bytes) when W is interleaved.
inline const std::byte* plain_row(const Matrix& W, int r, std::byte* scratch) {
  if (!W.interleaved) return W.plain_rows().row(r);
  interleaved_row_copy<false>(W.dtype, W.cols, r, scratch, W.data);
  return scratch;
}
}  // namespace detail

GEMMA2_END_NAMESPACE
