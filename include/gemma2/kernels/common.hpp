// What every kernel set shares: the table a set fills (dispatch.hpp picks
// one per process or per model), and the activation quantization of the
// block-format kernels, done once per product in the same way for every set
// so that all sets compute the same integer sums.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <type_traits>
#include <vector>

#include "gemma2/kernels/cpu.hpp"
#include "gemma2/kv_rows.hpp"
#include "gemma2/thread_pool.hpp"
#include "gemma2/weights.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

// Activations quantized for the block-format kernels: int8 values and one
// float scale per block of 32 (d = max|x| / 127), as llama.cpp does for its
// Q8_0/Q4_0 dot products; `sum` holds d·Σq per block and `sum16` per half
// block, for weights stored with an offset (Q4_0 keeps q + 8; the K-quants'
// groups of 16 have a bias each). For weights stored with an integer offset
// o (interleaved_offset), `start` holds −(o/2)·Σq per block: the interleaved
// kernels start both int32 lanes that sum a row's products of a block there,
// so the offset leaves the integer sum with no work per block and row.
struct QuantizedRows {
  std::vector<int8_t> q;
  std::vector<float> d, sum, sum16;
  std::vector<int32_t> start;
};

// quantize_activations with a kernel set's steps for one block of 32
// values: Block::max_abs(x) = max|x_i|, and Block::round(x, id, q, half):
// q_i = nearbyint(x_i·id) (one rounding of the product, then half to even)
// and half[h] = Σq over x[16h, 16h + 16). Every set's steps give the same
// values as the scalar ones (tested), so all sets see the same integers.
template <class Block>
QuantizedRows quantize_with(const float* X, int T, int cols, int32_t offset) {
  QuantizedRows r;
  r.q.resize(static_cast<size_t>(T) * cols);
  r.d.resize(static_cast<size_t>(T) * cols / kQuantBlock);
  r.sum.resize(r.d.size());
  r.sum16.resize(2 * r.d.size());
  r.start.resize(r.d.size());
  for (size_t b = 0; b < r.d.size(); ++b) {
    const float* v = X + b * kQuantBlock;
    const float m = Block::max_abs(v);
    r.d[b] = m / 127.0f;
    const float id = m > 0.0f ? 127.0f / m : 0.0f;
    int32_t half[2];
    Block::round(v, id, r.q.data() + b * kQuantBlock, half);
    r.sum16[2 * b] = r.d[b] * static_cast<float>(half[0]);
    r.sum16[2 * b + 1] = r.d[b] * static_cast<float>(half[1]);
    r.sum[b] = r.d[b] * static_cast<float>(half[0] + half[1]);
    r.start[b] = -(offset / 2) * (half[0] + half[1]);
  }
  return r;
}

struct ScalarQuantBlock {
  static float max_abs(const float* x) {
    float m = 0.0f;
    for (int i = 0; i < kQuantBlock; ++i) m = std::max(m, std::fabs(x[i]));
    return m;
  }
  static void round(const float* x, float id, int8_t* q, int32_t half[2]) {
    half[0] = half[1] = 0;
    for (int i = 0; i < kQuantBlock; ++i) half[i / 16] += q[i] = static_cast<int8_t>(std::nearbyint(x[i] * id));
  }
};

// X [T][cols] quantized for weights whose stored values carry `offset`
// (interleaved_offset; 0 for the plain-row kernels): the reference that
// every set's Kernels::quantize matches.
inline QuantizedRows quantize_activations(const float* X, int T, int cols, int32_t offset = 0) {
  return quantize_with<ScalarQuantBlock>(X, T, cols, offset);
}

// `heads` key-value heads (head_bytes apart) of `count` consecutive
// KV-cache rows (kv_rows.hpp: kv_head_bytes, kv_head_to_float): row j of head h has `dim` values at
// data + j·stride + h·head_bytes, stored as F32, BF16, or Q8_0 (whole
// blocks of 32, zero-padded past dim: values, then scales).
struct KVRows {
  const std::byte* data = nullptr;
  size_t stride = 0;
  int count = 0, dim = 0;
  DType dtype = DType::F32;
  int heads = 1;
  size_t head_bytes = 0;
};

// Rows of X below this count use the dot-product kernels (each weight row is
// read from memory once and reused from L1 for every row of X); from here
// on, the GEMM, whose conversion and packing pay off.
constexpr int kGemmMinRows = 8;

// Decode reads a wide input (down_proj: 9216) four weight rows at a time, as
// its activations do not stay in L1 across rows otherwise; narrower inputs
// go one row at a time: consecutive rows form one long stream, which the
// hardware prefetchers follow best, while four short streams (1-2 KB rows)
// halve the DRAM rate (measured: bench matvec, gate_proj vs down_proj).
inline bool wide_input(int64_t cols) { return cols > 4096; }

// Software prefetch distance for streamed block-format rows: the integer
// kernels are busy enough that the hardware prefetchers fall behind; 4 KB
// ahead measured faster than 1 KB (bench matvec, 2 threads, AVX-512).
constexpr int kPrefetchBytes = 4096;

// One kernel set: what matmul calls. Every set fills every entry (a set may
// reuse a less capable set's function where it has nothing better).
struct Kernels {
  KernelSet set = KernelSet::Portable;
  // Extensions beyond the set's baseline that this table uses ("vnni bf16").
  const char* features = "";
  // Y[t·W.rows + r] = Σ_c W[r][c]·X[t·W.cols + c] for weight rows r0 <= r < r1
  // and 1 <= T < kGemmMinRows rows of X (decode and small batches).
  // dense_rows: F32, BF16 and F16 weights; quant_rows: the block formats,
  // against X quantized by quantize_activations.
  void (*dense_rows)(const PlainMatrix& W, const float* X, int T, float* Y, int64_t r0, int64_t r1) = nullptr;
  void (*quant_rows)(const PlainMatrix& W, const QuantizedRows& X, int T, float* Y, int64_t r0, int64_t r1) = nullptr;
  // The product of a block-format matrix stored interleaved (Matrix::interleaved)
  // with rows t0 <= t < t1 of X, quantized, for the row groups g0 <= g < g1,
  // at any T (prefill too). Null: the set reads plain rows only, and the
  // matrices bound to it are never interleaved.
  void (*interleaved_rows)(const InterleavedMatrix& W, const QuantizedRows& X, int t0, int t1, float* Y, int64_t g0,
                           int64_t g1) = nullptr;
  // quantize_activations, with the set's vectors.
  QuantizedRows (*quantize)(const float* X, int T, int cols, int32_t offset) = nullptr;
  // Y = X · Wᵀ for T >= kGemmMinRows (prefill), every dtype, on the executor.
  void (*gemm)(const PlainMatrix& W, const float* X, int T, float* Y, const Executor* pool) = nullptr;
  // Attention of `rows` query rows per KV head (at decode, the query heads
  // that share one) against the stored keys and values of `heads` KV heads,
  // read where the cache keeps them, row by row for all heads, each row once
  // for all query rows. Query row (h·rows + r) belongs to head h:
  // kv_scores: S[(h·rows + r)·lds + j] = Σ_d Q[(h·rows + r)·dim + d]·key_{j,h}[d];
  // kv_mix:    O[(h·rows + r)·dim + d] += Σ_j P[(h·rows + r)·ldp + j]·value_{j,h}[d].
  void (*kv_scores)(const KVRows& keys, const float* Q, int rows, float* S, int64_t lds) = nullptr;
  void (*kv_mix)(const KVRows& values, const float* P, int64_t ldp, int rows, float* O) = nullptr;
};

// Each kernel set's file registers its `struct Set` here, as
// SetOf<Set::id>::type, inside its architecture's guard: the sets a build
// compiles are those registered (dispatch.hpp). A Set has its `id`;
// `probe(CpuFeatures&)`, which fills the fields of the extensions it uses
// (it runs after the probes of the sets before it in kKernelSets);
// `supported(const CpuFeatures&)`, whether a CPU runs it; and
// `table(const CpuFeatures&)`, its kernels for a CPU.
template <KernelSet>
struct SetOf {};

using Gemm = void (*)(const PlainMatrix& W, const float* X, int T, float* Y, const Executor* pool);

// The entries of a table every set fills the same way (the others it sets
// itself where it has them).
inline Kernels kernel_table(KernelSet set, decltype(Kernels::dense_rows) dense_rows,
                            decltype(Kernels::quant_rows) quant_rows, decltype(Kernels::quantize) quantize, Gemm gemm,
                            decltype(Kernels::kv_scores) kv_scores, decltype(Kernels::kv_mix) kv_mix) {
  Kernels k;
  k.set = set;
  k.dense_rows = dense_rows;
  k.quant_rows = quant_rows;
  k.quantize = quantize;
  k.gemm = gemm;
  k.kv_scores = kv_scores;
  k.kv_mix = kv_mix;
  return k;
}

// The GEMM of a set with bf16 products. A bf16 product keeps 8 bits of an
// activation (a bf16 head and the bf16 of its remainder keep 16, which left
// logits several times further from the float32 reference than the float
// sets'), so F32, F16 and BF16 weights take the float GEMM, exact to
// float32 rounding on every set. The bf16 GEMM serves the block formats,
// whose decode already rounds activations to int8 blocks, and BF16 weights
// when LoadOptions::prefill_precision asks for bf16 activations.
template <Gemm float_gemm, Gemm bf16_gemm>
void gemm_bf16_or_float(const PlainMatrix& W, const float* X, int T, float* Y, const Executor* pool) {
  if (is_blocked(W.dtype) || (W.dtype == DType::BF16 && W.bf16_activations)) return bf16_gemm(W, X, T, Y, pool);
  float_gemm(W, X, T, Y, pool);
}

// A block-format dot product of one set: out[i] = Σ w·x for `R` weight rows
// starting at `row` (`stride` bytes apart) against one quantized row of X
// (xq, xd, and xsum = X.sum for Q8_0/Q4_0, X.sum16 for the K-quants).
using QuantDot = void (*)(const std::byte* row, size_t stride, const int8_t* xq, const float* xd, const float* xsum,
                          int cols, float* out);

// Four rows, one at a time, for dot products that gain nothing from
// sharing activation loads.
template <QuantDot one>
void four_rows(const std::byte* row, size_t stride, const int8_t* xq, const float* xd, const float* xsum, int cols,
               float* out) {
  for (int i = 0; i < 4; ++i) one(row + i * stride, stride, xq, xd, xsum, cols, out + i);
}

// quant_rows over a set's dot products for one dtype: `four` (4 rows per
// call) serves wide inputs, `one` everything else.
template <QuantDot one, QuantDot four>
void quant_rows_with(const PlainMatrix& W, const QuantizedRows& X, int T, float* Y, int64_t r0, int64_t r1) {
  const int64_t blocks = W.cols / kQuantBlock;
  const bool k = is_kquant(W.dtype);
  const size_t stride = W.stride;
  float y[4];
  for (int t = 0; t < T; ++t) {
    const int8_t* xq = X.q.data() + t * W.cols;
    const float* xd = X.d.data() + t * blocks;
    const float* xs = k ? X.sum16.data() + 2 * t * blocks : X.sum.data() + t * blocks;
    int64_t r = r0;
    if (wide_input(W.cols))
      for (; r + 4 <= r1; r += 4) {
        four(W.row(r), stride, xq, xd, xs, W.cols, y);
        for (int i = 0; i < 4; ++i) Y[t * W.rows + r + i] = y[i];
      }
    for (; r < r1; ++r) one(W.row(r), stride, xq, xd, xs, W.cols, &Y[t * W.rows + r]);
  }
}

// A set's product of one interleaved row group (interleaved.hpp) with the NT
// rows t0 <= t < t0 + NT of X a tile takes: y[t·ldy + j] for the group's
// `valid` rows j.
using GroupTile = void (*)(const std::byte* group, int blocks, const QuantizedRows& X, int64_t t0, float* y,
                           int64_t ldy, int valid);

// interleaved_rows over a set's group tiles (tiles[n - 1] takes n rows of
// X): a group is read from memory once, and again from cache for every
// further tile of rows of X.
template <size_t N>
void interleaved_rows_with(const std::array<GroupTile, N>& tiles, const InterleavedMatrix& W, const QuantizedRows& X,
                           int t0, int t1, float* Y, int64_t g0, int64_t g1) {
  const int blocks = W.cols / kQuantBlock, max_tokens = static_cast<int>(N);
  for (int64_t g = g0; g < g1; ++g) {
    const int64_t r = g * kInterleave;
    const int valid = static_cast<int>(std::min<int64_t>(kInterleave, W.rows - r));
    for (int64_t t = t0; t < t1; t += max_tokens)
      tiles[static_cast<size_t>(std::min<int64_t>(max_tokens, t1 - t) - 1)](W.group(g), blocks, X, t,
                                                                            Y + t * W.rows + r, W.rows, valid);
  }
}

// The 6-bit scales and mins of the 8 sub-blocks of an interleaved Q4_K/Q5_K
// super-block, for its 8 rows at once (kquant_scale_min on 8 bytes in
// parallel): byte j of sc[s] and m[s] (little-endian) belongs to row j.
inline void kquant_group_scales_mins(const std::byte* packed, uint64_t sc[8], uint64_t m[8]) {
  uint64_t q[12];  // q[k]: packed byte k of the 8 rows
  std::memcpy(q, packed, sizeof q);
  for (int s = 0; s < 4; ++s) kquant_scale_min_words(q[s], q[s + 4], q[s + 8], &sc[s], &sc[s + 4], &m[s], &m[s + 4]);
}

// Calls f(std::integral_constant<DType, t>{}) for the block format t, to
// pick a set's kernel template for a runtime dtype.
template <class F>
void visit_block_format(DType t, F&& f) {
  switch (t) {
    case DType::Q8_0: return f(std::integral_constant<DType, DType::Q8_0>{});
    case DType::Q4_0: return f(std::integral_constant<DType, DType::Q4_0>{});
    case DType::Q4_K: return f(std::integral_constant<DType, DType::Q4_K>{});
    case DType::Q5_K: return f(std::integral_constant<DType, DType::Q5_K>{});
    default: return f(std::integral_constant<DType, DType::Q6_K>{});
  }
}

// Rows of X per pass over an interleaved matrix: as many as fit in 1 MB
// quantized (a core's L2 on current x86), so that they stay in cache while
// every row group streams past; the weights are read once per pass.
inline int interleaved_pass_rows(int64_t cols) {
  return static_cast<int>(std::max<int64_t>(kInterleave, (int64_t{1} << 20) / cols));
}

}  // namespace detail
GEMMA2_END_NAMESPACE
