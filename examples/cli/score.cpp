// gemma2 tokenize, gemma2 perplexity and gemma2 logits: the commands other
// tooling reads numbers from.
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <utility>

#include "commands.hpp"

namespace gemma2_cli {

int run_tokenize(const TokenizeArgs& a) {
  auto tok = open_tokenizer(a.model, a.tokenizer);
  if (!tok) return fail(tok.message());
  auto ids = tok->encode(a.text);
  if (!ids) return fail(ids.message());
  if (a.pieces)
    for (int32_t id : *ids) std::cout << id << "\t" << tok->piece(id) << "\n";
  std::cout << join(*ids) << "\n";
  return 0;
}

namespace {

// Opens an output file, or says why it cannot. The path is UTF-8 on every
// system (main.cpp makes the arguments so on Windows).
std::optional<std::string> open_output(const std::string& path, std::ofstream& out) {
  out.open(std::filesystem::u8path(path), std::ios::binary | std::ios::trunc);
  if (!out) return "cannot create " + path + ": " + std::strerror(errno);
  return std::nullopt;
}

// One JSON object per predicted token: the distillation teacher signal.
void write_top_k(std::ostream& out, const gemma2::TokenPrediction& p) {
  out << "{\"index\":" << p.index << ",\"target\":" << p.target << ",\"logprob\":" << p.logprob << ",\"top\":[";
  for (size_t i = 0; i < p.top.size(); ++i)
    out << (i ? "," : "") << "[" << p.top[i].first << "," << p.top[i].second << "]";
  out << "]}\n";
}

// " kl=... top1=... kl_positions=...": the model of `a` against the same
// checkpoint loaded with --kl-reference's weight type, position by position.
template <class Cache>
std::optional<std::string> compare_with_reference(const PerplexityArgs& a, const Model& model,
                                                  const std::vector<int32_t>& ids, const gemma2::ScoreOptions& so) {
  ModelOptions ro = a.model;
  ro.dtype = a.kl_reference;
  auto ref = load(ro, false);
  if (!ref) return std::nullopt;
  auto c = gemma2::compare_logits<Cache>(*ref->model, model, ids, so);
  if (!c) return fail(c.message()), std::nullopt;
  std::ostringstream ss;
  ss << std::setprecision(6) << " kl=" << c->kl << " top1=" << c->top1_agreement << " kl_positions=" << c->positions;
  return ss.str();
}

}  // namespace

int run_perplexity(PerplexityArgs a) {
  if (a.ids.empty() == a.text_file.empty()) return fail("perplexity: give exactly one of --ids and --text-file");
  auto l = load(a.model, !a.text_file.empty());
  if (!l) return 1;
  if (!a.text_file.empty()) {
    const auto text = gemma2::read_file(a.text_file, uint64_t{1} << 30);
    if (!text) return fail(text.message());
    auto enc = l->tokenizer->encode_prompt(*text);
    if (!enc) return fail(a.text_file + ": " + enc.message());
    a.ids = std::move(*enc);
  } else if (a.window == 0) {
    a.window = static_cast<int>(std::min<size_t>(a.ids.size(), l->model->config().max_position_embeddings));
  }
  std::ofstream out;
  if (!a.top_k_out.empty())
    if (auto e = open_output(a.top_k_out, out)) return fail(*e);
  gemma2::ScoreOptions so;
  so.pool = &*l->pool;
  so.window = a.window;
  so.stride = a.stride;
  so.top_k = a.top_k_out.empty() ? 0 : a.top_k;
  return with_kv_storage(a.model.kv_cache, [&](auto storage) {
    using Cache = gemma2::FullKVCache<decltype(storage)>;
    const auto t0 = Clock::now();
    auto r = gemma2::score<Cache>(*l->model, a.ids, so, [&](const gemma2::TokenPrediction& p) {
      if (out.is_open()) write_top_k(out, p);
    });
    if (!r) return fail(r.message());
    std::cerr << "scored " << r->logprobs.size() << " tokens in " << r->forward_passes << " forward pass(es), "
              << std::fixed << std::setprecision(2) << seconds_since(t0) << " s\n";
    std::string comparison;
    if (!a.kl_reference.empty()) {
      auto c = compare_with_reference<Cache>(a, *l->model, a.ids, so);
      if (!c) return 1;
      comparison = *c;
    }
    std::cout << std::setprecision(6) << "tokens=" << r->logprobs.size() << " nll=" << r->nll
              << " ppl=" << r->perplexity << comparison << "\n";
    return 0;
  });
}

int run_logits(const LogitsArgs& a) {
  auto l = load(a.model, false);
  if (!l) return 1;
  const int capacity = static_cast<int>(std::min<size_t>(a.ids.size(), l->model->config().max_position_embeddings));
  return with_kv_storage(a.model.kv_cache, [&](auto storage) {
    auto kv = l->model->template make_cache<gemma2::FullKVCache<decltype(storage)>>(capacity);
    if (!kv) return fail(kv.message());
    gemma2::ForwardOptions fo;
    fo.pool = &*l->pool;
    fo.all_logits = true;
    auto logits = l->model->forward(a.ids, *kv, fo);
    if (!logits) return fail(logits.message());
    if (auto s = gemma2::write_file(a.out, logits->data(), logits->size() * sizeof(float)); !s)
      return fail(s.message());
    std::cerr << "wrote " << logits->rows() << " x " << logits->cols() << " float32 logits to " << a.out << "\n";
    return 0;
  });
}

}  // namespace gemma2_cli
