// Gemma 2 self-attention (paper, Section 2): grouped-query attention with
// RoPE, queries scaled by query_pre_attn_scalar^-1/2, logits soft-capped at
// 50 before the causal mask, and a sliding window on local layers.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "gemma2/config.hpp"
#include "gemma2/kv_cache.hpp"
#include "gemma2/ops.hpp"

GEMMA2_BEGIN_NAMESPACE

// The four projections of one attention block, as stored in the checkpoint.
struct AttentionWeights {
  Matrix q_proj, k_proj, v_proj, o_proj;  // [heads*head_dim][hidden] ... [hidden][heads*head_dim]
};

// Rows [row, row + count) of a batch are consecutive tokens of one sequence,
// at positions pos, pos + 1, ... of its cache. A prefill is one such run; a
// batched decode step is one single-row run per sequence.
template <class Cache>
struct SequenceRows {
  Cache* cache;
  int pos;
  int row;
  int count;
};

// Self-attention of one layer; holds weight views, no per-sequence state.
template <class Config>
class Attention {
 public:
  Attention(const Config& config, int layer, AttentionWeights w)
      : w_(w),
        layer_(layer),
        kind_(config.layer_type(layer)),
        inv_freq_(detail::rope_inv_freq(config.head_dim, config.rope_theta)) {}

  // x: [rows][hidden], already normalised. Stores each row's key and value
  // in its sequence's cache, then attends; returns [rows][hidden].
  template <class Cache>
  Activations forward(const Config& c, const Activations& x, const std::vector<SequenceRows<Cache>>& seqs,
                      const Executor* pool) const {
    const int D = c.head_dim, H = c.num_attention_heads, KVH = c.num_key_value_heads;
    Activations q = matmul(w_.q_proj, x, pool);
    Activations k = matmul(w_.k_proj, x, pool);
    Activations v = matmul(w_.v_proj, x, pool);
    q *= 1.0f / std::sqrt(c.query_pre_attn_scalar);  // the reference scales q before the dot product
    for (const auto& s : seqs)
      for (int t = 0; t < s.count; ++t) {
        const int r = s.row + t;
        detail::rope(q.row(r).data(), H, D, s.pos + t, inv_freq_);
        detail::rope(k.row(r).data(), KVH, D, s.pos + t, inv_freq_);
        s.cache->store(layer_, s.pos + t, k.row(r).data(), v.row(r).data());
      }
    // One task per sequence, KV head and tile of kQueryTile tokens: each
    // tile scores only the keys it can see (its causal prefix, or its window
    // on local layers), so a long prompt's scratch stays at tile x context
    // and masked-out scores are never computed.
    struct Task {
      size_t seq;
      int g, t0, t1;
    };
    std::vector<Task> tasks;
    for (size_t i = 0; i < seqs.size(); ++i)
      for (int g = 0; g < KVH; ++g)
        for (int t0 = 0; t0 < seqs[i].count; t0 += kQueryTile)
          tasks.push_back({i, g, t0, std::min(seqs[i].count, t0 + kQueryTile)});
    Activations out(x.rows(), H * D);
    detail::parallel_for(pool, static_cast<int64_t>(tasks.size()), 1, [&](int64_t a, int64_t b) {
      Scratch scratch;
      for (int64_t i = a; i < b; ++i) {
        const Task& t = tasks[static_cast<size_t>(i)];
        attend(c, q, seqs[t.seq], t.g, t.t0, t.t1, out, scratch);
      }
    });
    return matmul(w_.o_proj, out, pool);
  }

 private:
  static constexpr Eigen::Index kGemvRows = 8;
  static constexpr int kQueryTile = 64;

  struct Scratch {
    Activations q, scores, kv, out;
  };

  // The query heads sharing KV head g, for tokens t0 <= t < t1 of one
  // sequence. The heads are attended together
  // (row (t - t0)*G + j is head g*G + j of token t), so each key and value
  // row is read once per group rather than once per head.
  template <class Cache>
  void attend(const Config& c, const Activations& q, const SequenceRows<Cache>& s, int g, int t0, int t1,
              Activations& out, Scratch& scratch) const {
    const int D = c.head_dim, H = c.num_attention_heads, G = H / c.num_key_value_heads;
    // Query i sees keys j <= i; on local layers only the last `window` of
    // them, i - window < j (reference mask; key i - window is not visible).
    const bool local = kind_ == AttentionKind::Local;
    const int W = c.sliding_window;
    const int first = local ? std::max(0, s.pos + t0 - W + 1) : 0;
    const int last = s.pos + t1 - 1;
    KVSegment segs[2];
    const int nseg = s.cache->view(layer_, first, last, segs);

    Activations& qg = scratch.q;
    qg.resize((t1 - t0) * G, D);
    for (int t = t0; t < t1; ++t)
      for (int j = 0; j < G; ++j) qg.row((t - t0) * G + j) = q.row(s.row + t).segment((g * G + j) * D, D);
    Activations& scores = scratch.scores;
    scores.resize(qg.rows(), last - first + 1);
    // A decode step has a few query rows: matrix-vector products read the
    // keys and values in place, where a GEMM would first pack (copy) them.
    const bool few = qg.rows() <= kGemvRows;
    for (int i = 0; i < nseg; ++i) {
      const auto keys = rows_of(segs[i], segs[i].keys, g, c, scratch.kv);
      auto block = scores.middleCols(segs[i].first - first, segs[i].count);
      if (few)
        for (Eigen::Index r = 0; r < qg.rows(); ++r) block.row(r).noalias() = qg.row(r) * keys.transpose();
      else
        block.noalias() = qg * keys.transpose();
    }
    for (Eigen::Index r = 0; r < scores.rows(); ++r) {
      const int pos = s.pos + t0 + static_cast<int>(r) / G;
      const int lo = (local ? std::max(first, pos - W + 1) : first) - first, n = pos - first - lo + 1;
      float* row = scores.row(r).data();
      detail::softcap(row + lo, n, c.attn_logit_softcapping);  // the reference caps before masking
      detail::softmax(row + lo, n);
      scores.row(r).head(lo).setZero();
      scores.row(r).tail(scores.cols() - lo - n).setZero();
    }
    Activations& og = scratch.out;
    og.setZero(qg.rows(), D);
    for (int i = 0; i < nseg; ++i) {
      const auto values = rows_of(segs[i], segs[i].values, g, c, scratch.kv);
      const auto block = scores.middleCols(segs[i].first - first, segs[i].count);
      if (few)
        for (Eigen::Index r = 0; r < qg.rows(); ++r) og.row(r).noalias() += block.row(r) * values;
      else
        og.noalias() += block * values;
    }
    for (int t = t0; t < t1; ++t)
      for (int j = 0; j < G; ++j) out.row(s.row + t).segment((g * G + j) * D, D) = og.row((t - t0) * G + j);
  }

  // KV head g of a segment's rows as a float matrix: in place for float
  // storage, converted into `buf` otherwise.
  static Eigen::Map<const Activations, 0, Eigen::OuterStride<>> rows_of(const KVSegment& seg, const void* base, int g,
                                                                        const Config& c, Activations& buf) {
    const int D = c.head_dim, kv_dim = c.num_key_value_heads * c.head_dim;
    if (seg.dtype == DType::F32)
      return {static_cast<const float*>(base) + g * D, seg.count, D, Eigen::OuterStride<>(kv_dim)};
    buf.resize(seg.count, D);
    const size_t stride = detail::kv_row_bytes(seg.dtype, kv_dim, D), head = g * detail::kv_head_bytes(seg.dtype, D);
    const auto* rows = static_cast<const std::byte*>(base);
    for (int r = 0; r < seg.count; ++r) detail::kv_head_to_float(seg.dtype, rows + r * stride + head, buf.row(r).data(), D);
    return {buf.data(), seg.count, D, Eigen::OuterStride<>(D)};
  }

  AttentionWeights w_;
  int layer_;
  AttentionKind kind_;
  std::vector<float> inv_freq_;
};

GEMMA2_END_NAMESPACE
