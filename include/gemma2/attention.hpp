// Gemma 2 self-attention (paper, Section 2): grouped-query attention with
// RoPE, queries scaled by query_pre_attn_scalar^-1/2, logits soft-capped at
// 50 before the causal mask, and a sliding window on local layers.
#pragma once

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>
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
        kernels_(w.q_proj.kernels ? w.q_proj.kernels : &detail::default_kernels()),
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
    Activations out = Activations::Zero(x.rows(), H * D);
    std::vector<size_t> few, many;
    // Up to 7 tokens (decode, batched decode, verification passes) take the
    // decode kernels, which compute each row as a one-token step does (the
    // exactness of speculative.hpp); prompts take the GEMM tiles.
    for (size_t i = 0; i < seqs.size(); ++i) (seqs[i].count < detail::kGemmMinRows ? few : many).push_back(i);
    attend_few(c, q, seqs, few, out, pool);
    attend_many(c, q, seqs, many, out, pool);
    return matmul(w_.o_proj, out, pool);
  }

 private:
  static constexpr int kQueryTile = 64;
  static constexpr int kSpan = 256;

  // The keys a sequence's tokens t0 <= t < t1 can see: positions first..last.
  // Query i sees keys j <= i; on local layers only the last `window` of
  // them, i - window < j (reference mask; key i - window is not visible).
  template <class Cache>
  std::pair<int, int> visible(const Config& c, const SequenceRows<Cache>& s, int t0, int t1) const {
    const int first = kind_ == AttentionKind::Local ? std::max(0, s.pos + t0 - c.sliding_window + 1) : 0;
    return {first, s.pos + t1 - 1};
  }

  // A score row for the query at `pos`, its columns positions first...:
  // soft-capped, masked and normalised in place (masked entries become 0).
  void normalize(const Config& c, float* row, int cols, int first, int pos) const {
    const int lo = (kind_ == AttentionKind::Local ? std::max(first, pos - c.sliding_window + 1) : first) - first;
    const int n = pos - first - lo + 1;
    detail::softcap(row + lo, n, c.attn_logit_softcapping);  // the reference caps before masking
    detail::softmax(row + lo, n);
    std::fill(row, row + lo, 0.0f);
    std::fill(row + lo + n, row + cols, 0.0f);
  }

  // KV heads g0 <= g < g0 + heads of rows a..b of a segment's keys or values
  // (`base`), for the kernels.
  static detail::KVRows rows_in(const KVSegment& seg, const void* base, int a, int b, int g0, int heads,
                                const Config& c) {
    const int D = c.head_dim;
    const size_t stride = detail::kv_row_bytes(seg.dtype, c.num_key_value_heads * D, D),
                 head = detail::kv_head_bytes(seg.dtype, D);
    return {static_cast<const std::byte*>(base) + static_cast<size_t>(a - seg.first) * stride + g0 * head,
            stride,
            b - a + 1,
            D,
            seg.dtype,
            heads,
            head};
  }

  // Sequences of a few tokens (decode, batched decode, verifications). Scores and the weighted sum run over spans of
  // kSpan positions, every KV head at once, so a task streams whole cache
  // rows, contiguous in memory, where one task per head would read a short
  // slice of each (measured: bench attention/*); the softmax between the two
  // needs every span's scores, and the spans' partial sums are added at the
  // end (the split of flash-decoding).
  template <class Cache>
  void attend_few(const Config& c, const Activations& q, const std::vector<SequenceRows<Cache>>& seqs,
                  const std::vector<size_t>& which, Activations& out, const Executor* pool) const {
    if (which.empty()) return;
    const int D = c.head_dim, H = c.num_attention_heads, KVH = c.num_key_value_heads, G = H / KVH;
    struct Sequence {
      const SequenceRows<Cache>* s;
      int first, last, nseg, rows;  // rows per KV head: count·G
      KVSegment segs[2];
      Activations q, scores;  // row g·rows + t·G + j: head g·G + j of token t
      int row(int t, int head, int G) const { return head / G * rows + t * G + head % G; }
    };
    std::vector<Sequence> work(which.size());
    struct Span {
      size_t seq;
      int a, b;
    };
    std::vector<Span> spans;
    for (size_t i = 0; i < which.size(); ++i) {
      Sequence& w = work[i];
      w.s = &seqs[which[i]];
      std::tie(w.first, w.last) = visible(c, *w.s, 0, w.s->count);
      w.nseg = w.s->cache->view(layer_, w.first, w.last, w.segs);
      w.rows = w.s->count * G;
      w.q.resize(KVH * w.rows, D);
      for (int t = 0; t < w.s->count; ++t)
        for (int h = 0; h < H; ++h) w.q.row(w.row(t, h, G)) = q.row(w.s->row + t).segment(h * D, D);
      w.scores.resize(KVH * w.rows, w.last - w.first + 1);
      // Spans end at multiples of kSpan: a row's keys are summed in the same
      // groups whatever the other rows of the pass can see.
      for (int a = w.first; a <= w.last; a = (a / kSpan + 1) * kSpan)
        spans.push_back({i, a, std::min(w.last, (a / kSpan + 1) * kSpan - 1)});
    }
    // The parts of a span in each ring segment of its sequence.
    auto for_parts = [&](const Span& sp, auto&& f) {
      Sequence& w = work[sp.seq];
      for (int i = 0; i < w.nseg; ++i) {
        const int a = std::max(sp.a, w.segs[i].first), b = std::min(sp.b, w.segs[i].first + w.segs[i].count - 1);
        if (a <= b) f(w, w.segs[i], a, b);
      }
    };
    const auto nspans = static_cast<int64_t>(spans.size());
    detail::parallel_for(pool, nspans, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        for_parts(spans[static_cast<size_t>(i)], [&](Sequence& w, const KVSegment& seg, int a, int b) {
          kernels_->kv_scores(rows_in(seg, seg.keys, a, b, 0, KVH, c), w.q.data(), w.rows,
                              w.scores.data() + (a - w.first), w.scores.cols());
        });
    });
    std::vector<std::pair<size_t, int>> score_rows;
    for (size_t i = 0; i < work.size(); ++i)
      for (int r = 0; r < work[i].scores.rows(); ++r) score_rows.push_back({i, r});
    detail::parallel_for(pool, static_cast<int64_t>(score_rows.size()), 8, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        Sequence& w = work[score_rows[static_cast<size_t>(i)].first];
        const int r = score_rows[static_cast<size_t>(i)].second;
        normalize(c, w.scores.row(r).data(), static_cast<int>(w.scores.cols()), w.first, w.s->pos + r % w.rows / G);
      }
    });
    std::vector<Activations> partial(spans.size());
    detail::parallel_for(pool, nspans, 1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const Span& sp = spans[static_cast<size_t>(i)];
        partial[static_cast<size_t>(i)].setZero(work[sp.seq].scores.rows(), D);
        for_parts(sp, [&](Sequence& w, const KVSegment& seg, int a, int b) {
          kernels_->kv_mix(rows_in(seg, seg.values, a, b, 0, KVH, c), w.scores.data() + (a - w.first), w.scores.cols(),
                           w.rows, partial[static_cast<size_t>(i)].data());
        });
      }
    });
    for (size_t i = 0; i < spans.size(); ++i) {
      const Sequence& w = work[spans[i].seq];
      for (int t = 0; t < w.s->count; ++t)
        for (int h = 0; h < H; ++h) out.row(w.s->row + t).segment(h * D, D) += partial[i].row(w.row(t, h, G));
    }
  }

  struct Scratch {
    Activations q, scores, kv, out;
  };

  // Sequences with many query rows (prompts): one task per sequence, KV head
  // and tile of kQueryTile tokens. Each tile scores only the keys it can see
  // (its causal prefix, or its window on local layers), so a long prompt's
  // scratch stays at tile x context and masked-out scores are never
  // computed; the products are GEMMs.
  template <class Cache>
  void attend_many(const Config& c, const Activations& q, const std::vector<SequenceRows<Cache>>& seqs,
                   const std::vector<size_t>& which, Activations& out, const Executor* pool) const {
    struct Task {
      size_t seq;
      int g, t0, t1;
    };
    std::vector<Task> tasks;
    for (size_t i : which)
      for (int g = 0; g < c.num_key_value_heads; ++g)
        for (int t0 = 0; t0 < seqs[i].count; t0 += kQueryTile)
          tasks.push_back({i, g, t0, std::min(seqs[i].count, t0 + kQueryTile)});
    detail::parallel_for(pool, static_cast<int64_t>(tasks.size()), 1, [&](int64_t a, int64_t b) {
      Scratch scratch;
      for (int64_t i = a; i < b; ++i) {
        const Task& t = tasks[static_cast<size_t>(i)];
        attend(c, q, seqs[t.seq], t.g, t.t0, t.t1, out, scratch);
      }
    });
  }

  // The query heads sharing KV head g, for tokens t0 <= t < t1 of one
  // sequence. The heads are attended together
  // (row (t - t0)*G + j is head g*G + j of token t), so each key and value
  // row is read once per group rather than once per head.
  template <class Cache>
  void attend(const Config& c, const Activations& q, const SequenceRows<Cache>& s, int g, int t0, int t1,
              Activations& out, Scratch& scratch) const {
    const int D = c.head_dim, H = c.num_attention_heads, G = H / c.num_key_value_heads;
    const auto [first, last] = visible(c, s, t0, t1);
    KVSegment segs[2];
    const int nseg = s.cache->view(layer_, first, last, segs);

    Activations& qg = scratch.q;
    qg.resize((t1 - t0) * G, D);
    for (int t = t0; t < t1; ++t)
      for (int j = 0; j < G; ++j) qg.row((t - t0) * G + j) = q.row(s.row + t).segment((g * G + j) * D, D);
    Activations& scores = scratch.scores;
    scores.resize(qg.rows(), last - first + 1);
    for (int i = 0; i < nseg; ++i) {
      const auto keys = rows_of(segs[i], segs[i].keys, g, c, scratch.kv);
      scores.middleCols(segs[i].first - first, segs[i].count).noalias() = qg * keys.transpose();
    }
    for (Eigen::Index r = 0; r < scores.rows(); ++r)
      normalize(c, scores.row(r).data(), static_cast<int>(scores.cols()), first, s.pos + t0 + static_cast<int>(r) / G);
    Activations& og = scratch.out;
    og.setZero(qg.rows(), D);
    for (int i = 0; i < nseg; ++i) {
      const auto values = rows_of(segs[i], segs[i].values, g, c, scratch.kv);
      og.noalias() += scores.middleCols(segs[i].first - first, segs[i].count) * values;
    }
    for (int t = t0; t < t1; ++t)
      for (int j = 0; j < G; ++j) out.row(s.row + t).segment((g * G + j) * D, D) = og.row((t - t0) * G + j);
  }

  // KV head g of a segment's rows as a float matrix: in place for float
  // storage, converted into `buf` otherwise.
  static Eigen::Map<const Activations, 0, Eigen::OuterStride<>> rows_of(const KVSegment& seg, const void* base, int g,
                                                                        const Config& c, Activations& buf) {
    const detail::KVRows h = rows_in(seg, base, seg.first, seg.first + seg.count - 1, g, 1, c);
    if (seg.dtype == DType::F32)
      return {reinterpret_cast<const float*>(h.data), h.count, h.dim, Eigen::OuterStride<>(h.stride / sizeof(float))};
    buf.resize(h.count, h.dim);
    for (int r = 0; r < h.count; ++r)
      detail::kv_head_to_float(h.dtype, h.data + r * h.stride, buf.row(r).data(), h.dim);
    return {buf.data(), h.count, h.dim, Eigen::OuterStride<>(h.dim)};
  }

  AttentionWeights w_;
  const detail::Kernels* kernels_;  // the set the model's matrices are bound to
  int layer_;
  AttentionKind kind_;
  std::vector<float> inv_freq_;
};

GEMMA2_END_NAMESPACE
