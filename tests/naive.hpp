// A deliberately plain double-precision Gemma 2, written from the reference
// semantics (golden/README.md) with no shared code: the twin every optimised
// path is tested against.
#pragma once

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gemma2/gemma2.hpp"

namespace naive {

using Vec = std::vector<double>;
using Mat = std::vector<Vec>;  // rows

inline Mat to_mat(const gemma2::TensorToWrite& t) {
  const size_t rows = static_cast<size_t>(t.shape[0]);
  const size_t cols = t.shape.size() > 1 ? static_cast<size_t>(t.shape[1]) : 1;
  std::vector<float> f(rows * cols);
  gemma2::detail::convert_to_float(t.dtype, t.bytes.data(), f.data(), f.size());
  Mat m(rows, Vec(cols));
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) m[r][c] = f[r * cols + c];
  return m;
}

inline Vec column(const Mat& m) {  // a [n] tensor read by to_mat
  Vec v;
  for (const auto& r : m) v.push_back(r[0]);
  return v;
}

inline Vec linear(const Mat& w, const Vec& x) {  // w is [out][in]
  Vec y(w.size(), 0.0);
  for (size_t o = 0; o < w.size(); ++o)
    for (size_t i = 0; i < x.size(); ++i) y[o] += w[o][i] * x[i];
  return y;
}

inline Vec rms_norm(const Vec& x, const Vec& w, double eps) {
  double ms = 0.0;
  for (double v : x) ms += v * v;
  ms /= static_cast<double>(x.size());
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] / std::sqrt(ms + eps) * (1.0 + w[i]);
  return y;
}

inline double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

inline double softcap(double x, double cap) { return cap * std::tanh(x / cap); }

// Half-split RoPE of one head vector at position pos.
inline Vec rope(const Vec& x, int pos, double theta) {
  const size_t half = x.size() / 2;
  Vec y(x);
  for (size_t d = 0; d < half; ++d) {
    const double angle = pos * std::pow(theta, -2.0 * static_cast<double>(d) / static_cast<double>(x.size()));
    y[d] = x[d] * std::cos(angle) - x[d + half] * std::sin(angle);
    y[d + half] = x[d + half] * std::cos(angle) + x[d] * std::sin(angle);
  }
  return y;
}

inline Vec slice(const Vec& v, size_t begin, size_t n) { return Vec(v.begin() + begin, v.begin() + begin + n); }

// Attention of one layer over a whole sequence xs (already normalised).
inline Mat attention(const gemma2::RuntimeConfig& c, bool local, const Mat& wq, const Mat& wk, const Mat& wv,
                     const Mat& wo, const Mat& xs) {
  const int T = static_cast<int>(xs.size()), D = c.head_dim, H = c.num_attention_heads;
  const int KVH = c.num_key_value_heads;
  std::vector<Mat> q(T), k(T), v(T);  // [t][head][d]
  for (int t = 0; t < T; ++t) {
    const Vec qt = linear(wq, xs[t]), kt = linear(wk, xs[t]), vt = linear(wv, xs[t]);
    for (int h = 0; h < H; ++h) q[t].push_back(rope(slice(qt, h * D, D), t, c.rope_theta));
    for (int h = 0; h < KVH; ++h) {
      k[t].push_back(rope(slice(kt, h * D, D), t, c.rope_theta));
      v[t].push_back(slice(vt, h * D, D));
    }
  }
  Mat out(T);
  for (int i = 0; i < T; ++i) {
    Vec o(static_cast<size_t>(H * D), 0.0);
    for (int h = 0; h < H; ++h) {
      const int g = h / (H / KVH);
      Vec p(static_cast<size_t>(i + 1), 0.0);
      double m = -INFINITY;
      for (int j = 0; j <= i; ++j) {
        if (local && j <= i - c.sliding_window) {
          p[j] = -INFINITY;
          continue;
        }
        double s = 0.0;
        for (int d = 0; d < D; ++d) s += q[i][h][d] * k[j][g][d];
        p[j] = softcap(s / std::sqrt(static_cast<double>(c.query_pre_attn_scalar)), c.attn_logit_softcapping);
        m = std::max(m, p[j]);
      }
      double sum = 0.0;
      for (double& x : p) sum += (x = std::exp(x - m));
      for (int j = 0; j <= i; ++j)
        for (int d = 0; d < D; ++d) o[h * D + d] += p[j] / sum * v[j][g][d];
    }
    out[i] = linear(wo, o);
  }
  return out;
}

// Logits [T][vocab] of one forward over `ids`.
inline Mat forward(const gemma2::RuntimeConfig& c, const std::map<std::string, gemma2::TensorToWrite>& t,
                   const std::vector<int32_t>& ids) {
  auto W = [&](const std::string& n) { return to_mat(t.at(n)); };
  auto N = [&](const std::string& n) { return column(to_mat(t.at(n))); };
  const Mat embed = W("model.embed_tokens.weight");
  const double eps = c.rms_norm_eps;
  const double normalizer = static_cast<float>(std::sqrt(static_cast<double>(c.hidden_size)));
  Mat h;
  for (int32_t id : ids) {
    Vec e = embed[static_cast<size_t>(id)];
    for (double& x : e) x *= normalizer;
    h.push_back(e);
  }
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Mat xs;
    for (const Vec& x : h) xs.push_back(rms_norm(x, N(p + "input_layernorm.weight"), eps));
    const Mat a = attention(c, c.layer_types[static_cast<size_t>(l)] == gemma2::AttentionKind::Local,
                            W(p + "self_attn.q_proj.weight"), W(p + "self_attn.k_proj.weight"),
                            W(p + "self_attn.v_proj.weight"), W(p + "self_attn.o_proj.weight"), xs);
    const Mat gate = W(p + "mlp.gate_proj.weight"), up = W(p + "mlp.up_proj.weight");
    const Mat down = W(p + "mlp.down_proj.weight");
    for (size_t i = 0; i < h.size(); ++i) {
      const Vec an = rms_norm(a[i], N(p + "post_attention_layernorm.weight"), eps);
      for (size_t d = 0; d < h[i].size(); ++d) h[i][d] += an[d];
      const Vec x = rms_norm(h[i], N(p + "pre_feedforward_layernorm.weight"), eps);
      Vec g = linear(gate, x);
      const Vec u = linear(up, x);
      for (size_t d = 0; d < g.size(); ++d) g[d] = gelu_tanh(g[d]) * u[d];
      const Vec m = rms_norm(linear(down, g), N(p + "post_feedforward_layernorm.weight"), eps);
      for (size_t d = 0; d < h[i].size(); ++d) h[i][d] += m[d];
    }
  }
  Mat logits;
  for (const Vec& x : h) {
    Vec l = linear(embed, rms_norm(x, N("model.norm.weight"), eps));
    for (double& v : l) v = softcap(v, c.final_logit_softcapping);
    logits.push_back(l);
  }
  return logits;
}

}  // namespace naive
