// Scoring text with a model: per-token log-probabilities, perplexity over
// long texts in windows, and the top-k next-token distribution per position
// (the teacher signal for knowledge distillation, which is how the Gemma 2
// paper trained its 2B and 9B models, Section 3).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <utility>
#include <vector>

#include "gemma2/model.hpp"

GEMMA2_BEGIN_NAMESPACE

// What the model predicted for one token of the scored text.
struct TokenPrediction {
  int64_t index = 0;                           // index in the ids of the predicted token
  int32_t target = 0;                          // ids[index]
  float logprob = 0.0f;                        // log p(target | ids[0..index))
  std::vector<std::pair<int32_t, float>> top;  // top-k (id, log p), most likely first
};

// Options of score().
struct ScoreOptions {
  const Executor* pool = nullptr;
  // Longest forward pass in positions (0: the model's max_position_embeddings).
  // Longer texts are scored in windows that all start with ids[0] (BOS).
  int window = 0;
  // New tokens scored per window after the first (0: half a window); the rest
  // of each window is context carried over from the previous one.
  int stride = 0;
  int top_k = 0;  // size of TokenPrediction::top
  const std::atomic<bool>* cancel = nullptr;
};

// What score() computed.
struct ScoreResult {
  std::vector<float> logprobs;  // for ids[1..n)
  double nll = 0.0;             // mean negative log-likelihood, nats per predicted token
  double perplexity = 1.0;      // exp(nll)
  int forward_passes = 0;
};

namespace detail {
// log-softmax of one row, returning log p(target) and filling the top k.
inline float log_softmax_at(const float* logits, int vocab, int32_t target, int k,
                            std::vector<std::pair<int32_t, float>>* top) {
  const float m = *std::max_element(logits, logits + vocab);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(static_cast<double>(logits[i]) - m);
  const float log_z = m + static_cast<float>(std::log(sum));
  if (k > 0) {
    std::vector<int32_t> idx(static_cast<size_t>(vocab));
    std::iota(idx.begin(), idx.end(), 0);
    k = std::min(k, vocab);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
    top->clear();
    for (int i = 0; i < k; ++i)
      top->emplace_back(idx[static_cast<size_t>(i)], logits[idx[static_cast<size_t>(i)]] - log_z);
  }
  return logits[target] - log_z;
}
}  // namespace detail

// Scores ids[1..n) given their prefixes. ids are used as given (put BOS
// first). Up to `window` positions this is one forward pass; longer inputs
// are scored in overlapping windows [ids[0]] + ids[b..e). `on_prediction`,
// if set, receives every scored position in order. Cache: the KV-cache type
// the windows run in (e.g. FullKVCache<int8_t> to score a quantized cache).
template <class Cache = KVCache, class Model>
Result<ScoreResult> score(const Model& model, const std::vector<int32_t>& ids, const ScoreOptions& options = {},
                          const std::function<void(const TokenPrediction&)>& on_prediction = {}) {
  using detail::err;
  const int vocab = model.config().vocab_size;
  const int window = options.window == 0 ? model.config().max_position_embeddings : options.window;
  if (ids.size() < 2) return err("score: need at least 2 tokens (BOS and one to predict), got ", ids.size());
  if (window < 2 || window > model.config().max_position_embeddings)
    return err("score: window must be between 2 and ", model.config().max_position_embeddings, ", got ", window);
  const int64_t n_text = static_cast<int64_t>(ids.size()) - 1;  // tokens after ids[0]
  const int64_t span = window - 1;                              // text tokens per window
  const int64_t stride = options.stride == 0 ? std::max<int64_t>(1, span / 2) : options.stride;
  if (stride < 1 || stride > span) return err("score: stride must be between 1 and ", span, ", got ", stride);
  auto kv = model.template make_cache<Cache>(window);
  if (!kv) return Error{kv.message()};

  ScoreResult r;
  r.logprobs.reserve(static_cast<size_t>(n_text));
  TokenPrediction pred;
  // Text token t (ids[t + 1]) is scored once, in the first window that ends after it.
  for (int64_t scored = 0; scored < n_text; ++r.forward_passes) {
    const int64_t end = std::min(n_text, scored == 0 ? span : scored + stride);
    const int64_t begin = std::max<int64_t>(0, end - span);
    std::vector<int32_t> seq = {ids[0]};
    seq.insert(seq.end(), ids.begin() + 1 + begin, ids.begin() + 1 + end);
    ForwardOptions fwd;
    fwd.pool = options.pool;
    fwd.all_logits = true;
    fwd.cancel = options.cancel;
    // Row j of the window predicts seq[j + 1] = text token begin + j.
    fwd.on_logits = [&](int first, const Activations& logits) {
      for (Eigen::Index j = 0; j < logits.rows(); ++j) {
        const int64_t t = begin + first + j;
        if (t < scored || t >= end) continue;
        pred.index = t + 1;
        pred.target = ids[static_cast<size_t>(t + 1)];
        pred.logprob = detail::log_softmax_at(logits.row(j).data(), vocab, pred.target, options.top_k, &pred.top);
        r.logprobs.push_back(pred.logprob);
        if (on_prediction) on_prediction(pred);
      }
    };
    kv->clear();
    if (auto out = model.forward(seq, *kv, fwd); !out) return Error{out.message()};
    scored = end;
  }
  double total = 0.0;
  for (float lp : r.logprobs) total -= lp;
  r.nll = total / static_cast<double>(r.logprobs.size());
  r.perplexity = std::exp(r.nll);
  return r;
}

// How far a model's next-token distributions are from a reference model's
// over the same text (e.g. a quantized model against its float32 original).
struct LogitsComparison {
  double kl = 0.0;              // mean KL(reference || test), nats per position
  double top1_agreement = 0.0;  // fraction of positions whose argmax agrees
  int positions = 0;
};

// Runs both models over ids (up to one window: the first
// min(ids.size(), options.window or max_position_embeddings) tokens) in
// lockstep chunks, so only a chunk of logits of each is held at a time.
// The reference runs in a float cache, the test model in a TestCache (so a
// chunk attends to the earlier chunks' keys and values as that cache stores them).
template <class TestCache = KVCache, class ModelA, class ModelB>
Result<LogitsComparison> compare_logits(const ModelA& reference, const ModelB& test, const std::vector<int32_t>& ids,
                                        const ScoreOptions& options = {}) {
  using detail::err;
  if (reference.config().vocab_size != test.config().vocab_size) return err("compare_logits: vocabularies differ");
  const int window = options.window == 0 ? reference.config().max_position_embeddings : options.window;
  const int n = static_cast<int>(std::min<size_t>(ids.size(), static_cast<size_t>(window)));
  if (n < 1) return err("compare_logits: no tokens");
  auto ka = reference.make_cache(n);
  auto kb = test.template make_cache<TestCache>(n);
  if (!ka || !kb) return err("compare_logits: ", ka ? kb.message() : ka.message());
  ForwardOptions fwd;
  fwd.pool = options.pool;
  fwd.all_logits = true;
  fwd.cancel = options.cancel;
  LogitsComparison r;
  constexpr int kChunk = 128;
  for (int begin = 0; begin < n; begin += kChunk) {
    const size_t len = static_cast<size_t>(std::min(kChunk, n - begin));
    auto a = reference.forward(ids.data() + begin, len, *ka, fwd);
    auto b = test.forward(ids.data() + begin, len, *kb, fwd);
    if (!a || !b) return err("compare_logits: ", a ? b.message() : a.message());
    for (Eigen::Index t = 0; t < a->rows(); ++t) {
      const Eigen::ArrayXd la = a->row(t).transpose().template cast<double>().array();
      const Eigen::ArrayXd lb = b->row(t).transpose().template cast<double>().array();
      const Eigen::ArrayXd pa = (la - la.maxCoeff()).exp(), pb = (lb - lb.maxCoeff()).exp();
      const double za = pa.sum(), zb = pb.sum();
      // KL = Σ p_a (log p_a - log p_b), with log p = l - max - log z.
      r.kl += ((pa / za) * ((la - la.maxCoeff() - std::log(za)) - (lb - lb.maxCoeff() - std::log(zb)))).sum();
      Eigen::Index ia, ib;
      a->row(t).maxCoeff(&ia);
      b->row(t).maxCoeff(&ib);
      r.top1_agreement += ia == ib;
      ++r.positions;
    }
  }
  r.kl /= r.positions;
  r.top1_agreement /= r.positions;
  return r;
}

GEMMA2_END_NAMESPACE
