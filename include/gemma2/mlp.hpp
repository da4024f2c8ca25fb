// Gemma 2 feed-forward block: GeGLU with the tanh-approximated GELU
// (paper, Section 2): down(gelu(gate(x)) * up(x)).
#pragma once

#include "gemma2/ops.hpp"

GEMMA2_BEGIN_NAMESPACE

// The three projections of one MLP block.
struct MlpWeights {
  Matrix gate_proj, up_proj, down_proj;  // [ffn][hidden], [ffn][hidden], [hidden][ffn]
};

// The GeGLU feed-forward block of one layer.
class Mlp {
 public:
  explicit Mlp(MlpWeights w) : w_(w) {}

  Activations forward(const Activations& x, const Executor* pool) const {
    Activations gate = matmul(w_.gate_proj, x, pool);
    const Activations up = matmul(w_.up_proj, x, pool);
    detail::rows_in_pieces(gate.data(), gate.rows(), gate.cols(), pool, detail::gelu_tanh);
    gate.array() *= up.array();
    return matmul(w_.down_proj, gate, pool);
  }

 private:
  MlpWeights w_;
};

GEMMA2_END_NAMESPACE
