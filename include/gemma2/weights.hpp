// Typed views of weight tensors: the one seam between layer code and storage
// (docs/ARCHITECTURE.md). Layers hold Matrix views and call matmul(); the
// dtype picks the kernel. The data usually points into a memory-mapped
// checkpoint and is never copied. The storage formats are in dtype.hpp,
// block_formats.hpp and interleaved.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "gemma2/block_formats.hpp"
#include "gemma2/dtype.hpp"
#include "gemma2/interleaved.hpp"
#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {
struct Kernels;
}

// A matrix whose rows lie one after another in place, as the checkpoint
// stores them: what the row kernels and the GEMM read. Matrix::visit gives
// one for a matrix that is not interleaved (the loader makes one of a
// file's tensor).
struct PlainMatrix {
  DType dtype = DType::F32;
  int rows = 0;
  int cols = 0;
  const std::byte* data = nullptr;
  size_t stride = 0;              // row_bytes(dtype, cols)
  bool bf16_activations = false;  // as Matrix::bf16_activations
  const std::byte* row(int64_t r) const { return data + static_cast<size_t>(r) * stride; }
};

// A block-format matrix stored in groups of kInterleave rows
// (interleaved.hpp): it has groups, not rows in place, so it has no row(r)
// to read wrongly; row(r, scratch) rebuilds one. Matrix::visit gives one
// for an interleaved matrix.
struct InterleavedMatrix {
  DType dtype = DType::Q8_0;
  int rows = 0;
  int cols = 0;
  const std::byte* data = nullptr;
  size_t group_bytes = 0;  // kInterleave * row_bytes(dtype, cols)
  const std::byte* group(int64_t g) const { return data + static_cast<size_t>(g) * group_bytes; }
  // Row r in the plain layout, rebuilt in `scratch` (row_bytes(dtype, cols) bytes).
  const std::byte* row(int r, std::byte* scratch) const {
    detail::interleaved_row_copy<false>(dtype, cols, r, scratch, data);
    return scratch;
  }
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

  // on_plain(PlainMatrix) or on_interleaved(InterleavedMatrix), for the
  // layout this matrix has: the one way to its rows in place or to its row
  // groups, so that code reading one layout as the other does not compile.
  template <class OnPlain, class OnInterleaved>
  decltype(auto) visit(OnPlain&& on_plain, OnInterleaved&& on_interleaved) const {
    if (interleaved) return on_interleaved(InterleavedMatrix{dtype, rows, cols, data, group_bytes()});
    return on_plain(PlainMatrix{dtype, rows, cols, data, row_bytes(dtype, cols), bf16_activations});
  }
  // Row r in the plain layout, in either layout: in place, or rebuilt in
  // `scratch` (row_bytes(dtype, cols) bytes) when the matrix is interleaved.
  const std::byte* row(int r, std::byte* scratch) const {
    return visit([&](const PlainMatrix& m) { return m.row(r); },
                 [&](const InterleavedMatrix& m) { return m.row(r, scratch); });
  }
  // Row r, rebuilt in a buffer of the calling thread's when the matrix is
  // interleaved (valid until that thread's next call).
  [[deprecated("use row(r, scratch)")]] const std::byte* row(int r) const {
    thread_local std::vector<std::byte> scratch;
    scratch.resize(row_bytes(dtype, cols));
    return row(r, scratch.data());
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
inline void interleave_rows(const PlainMatrix& plain, std::byte* dst, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r)
    interleaved_row_copy<true>(plain.dtype, plain.cols, static_cast<int>(r), plain.row(r), dst);
}
}  // namespace detail

GEMMA2_END_NAMESPACE
