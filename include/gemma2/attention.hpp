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

struct AttentionWeights {
  Matrix q_proj, k_proj, v_proj, o_proj;  // [heads*head_dim][hidden] ... [hidden][heads*head_dim]
};

template <class Config>
class Attention {
 public:
  Attention(const Config& config, int layer, AttentionWeights w)
      : w_(w),
        layer_(layer),
        kind_(config.layer_type(layer)),
        inv_freq_(detail::rope_inv_freq(config.head_dim, config.rope_theta)) {}

  // x: [T][hidden], already normalised, for positions pos .. pos+T-1. Writes
  // their keys and values into the cache and returns [T][hidden].
  Activations forward(const Config& c, const Activations& x, int pos, KVCache& kv, const ThreadPool* pool) const {
    const int T = static_cast<int>(x.rows());
    const int D = c.head_dim, H = c.num_attention_heads, KVH = c.num_key_value_heads;
    const int kv_dim = KVH * D;
    Activations q = matmul(w_.q_proj, x, pool);
    Activations k = matmul(w_.k_proj, x, pool);
    Activations v = matmul(w_.v_proj, x, pool);
    // The reference scales q before the dot product.
    q *= 1.0f / std::sqrt(c.query_pre_attn_scalar);
    float* keys = kv.keys(layer_);
    float* values = kv.values(layer_);
    for (int t = 0; t < T; ++t) {
      detail::rope(q.row(t).data(), H, D, pos + t, inv_freq_);
      detail::rope(k.row(t).data(), KVH, D, pos + t, inv_freq_);
      std::copy_n(k.row(t).data(), kv_dim, keys + static_cast<size_t>(pos + t) * kv_dim);
      std::copy_n(v.row(t).data(), kv_dim, values + static_cast<size_t>(pos + t) * kv_dim);
    }

    // Query i sees keys j <= i; on local layers only the last `window` of
    // them, i - window < j (reference mask; key i - window is not visible).
    const bool local = kind_ == AttentionKind::Local;
    const int W = c.sliding_window;
    const int first = local ? std::max(0, pos - W + 1) : 0;
    const int L = pos + T - first;  // keys any query of this block can see
    using Strided = Eigen::Map<const Activations, 0, Eigen::OuterStride<>>;
    Activations out(T, H * D);
    detail::parallel_for(pool, H, 1, [&](int64_t h0, int64_t h1) {
      Activations scores(T, L);
      for (int h = static_cast<int>(h0); h < h1; ++h) {
        const int g = h / (H / KVH);  // consecutive query heads share a KV head
        Strided qh(q.data() + h * D, T, D, Eigen::OuterStride<>(H * D));
        Strided kh(keys + static_cast<size_t>(first) * kv_dim + g * D, L, D, Eigen::OuterStride<>(kv_dim));
        Strided vh(values + static_cast<size_t>(first) * kv_dim + g * D, L, D, Eigen::OuterStride<>(kv_dim));
        scores.noalias() = qh * kh.transpose();
        for (int t = 0; t < T; ++t) {
          const int i = pos + t;
          float* s = scores.row(t).data();
          for (int j = 0; j < L; ++j) {
            const int key = first + j;
            const bool visible = key <= i && (!local || key > i - W);
            s[j] = visible ? detail::softcap(s[j], c.attn_logit_softcapping) : -INFINITY;
          }
          detail::softmax(s, L);
        }
        Eigen::Map<Activations, 0, Eigen::OuterStride<>>(out.data() + h * D, T, D, Eigen::OuterStride<>(H * D))
            .noalias() = scores * vh;
      }
    });
    return matmul(w_.o_proj, out, pool);
  }

 private:
  AttentionWeights w_;
  int layer_;
  AttentionKind kind_;
  std::vector<float> inv_freq_;
};

GEMMA2_END_NAMESPACE
