// One Gemma 2 decoder layer (paper, Section 2.2): both sub-blocks are
// normalised on the way in and again on the way out, before the residual add.
#pragma once

#include <vector>

#include "gemma2/attention.hpp"
#include "gemma2/mlp.hpp"

GEMMA2_BEGIN_NAMESPACE

struct LayerNorms {
  // Each holds 1 + w (RMSNorm gain), one float per hidden unit.
  std::vector<float> input, post_attention, pre_feedforward, post_feedforward;
};

// One decoder layer: attention and MLP blocks with their four norms.
template <class Config>
class DecoderLayer {
 public:
  DecoderLayer(const Config& config, int layer, AttentionWeights attn, MlpWeights mlp, LayerNorms norms)
      : attn_(config, layer, attn), mlp_(mlp), norms_(std::move(norms)) {}

  // Updates the residual stream h [rows][hidden] of the sequences in `seqs`.
  template <class Cache>
  void forward(const Config& c, Activations& h, const std::vector<SequenceRows<Cache>>& seqs,
               const Executor* pool) const {
    Activations x = h;
    detail::rms_norm(x, norms_.input, c.rms_norm_eps);
    Activations a = attn_.forward(c, x, seqs, pool);
    detail::rms_norm(a, norms_.post_attention, c.rms_norm_eps);
    h += a;

    x = h;
    detail::rms_norm(x, norms_.pre_feedforward, c.rms_norm_eps);
    Activations m = mlp_.forward(x, pool);
    detail::rms_norm(m, norms_.post_feedforward, c.rms_norm_eps);
    h += m;
  }

 private:
  Attention<Config> attn_;
  Mlp mlp_;
  LayerNorms norms_;
};

GEMMA2_END_NAMESPACE
