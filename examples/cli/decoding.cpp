#include "decoding.hpp"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <stdexcept>
#include <utility>

namespace gemma2_cli {

SamplingFlags::SamplingFlags() {
  p.temperature = 0.8f;
  p.top_k = 40;
  p.top_p = 0.95f;
}

void SamplingFlags::add_to(CLI::App* cmd) {
  cmd->add_flag("--greedy", p.greedy, "argmax decoding (deterministic; ignores the sampling flags)");
  // The ranges gemma2::validate checks, here so that errors name the flags.
  const auto finite = [](double v) { return std::isfinite(v); };
  cmd->add_option("--temperature", p.temperature, "softmax temperature (0 = greedy)")
      ->check(checked(">= 0", [](double v) { return v >= 0 && std::isfinite(v); }))
      ->capture_default_str();
  cmd->add_option("--top-k", p.top_k, "keep the k most likely tokens (0 = off)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--top-p", p.top_p, "nucleus sampling threshold (1 = off)")
      ->check(checked("in (0, 1]", [](double v) { return v > 0 && v <= 1; }))
      ->capture_default_str();
  cmd->add_option("--min-p", p.min_p, "drop tokens below min-p x the top probability")
      ->check(checked("in [0, 1)", [](double v) { return v >= 0 && v < 1; }))
      ->capture_default_str();
  cmd->add_option("--repeat-penalty", p.repetition_penalty, "repetition penalty (1 = off)")
      ->check(checked("> 0", [](double v) { return v > 0 && std::isfinite(v); }))
      ->capture_default_str();
  cmd->add_option("--frequency-penalty", p.frequency_penalty, "penalty per occurrence")
      ->check(checked("finite", finite))
      ->capture_default_str();
  cmd->add_option("--presence-penalty", p.presence_penalty, "penalty once per seen token")
      ->check(checked("finite", finite))
      ->capture_default_str();
  cmd->add_option("--repeat-last-n", p.penalty_last_n, "penalties look at this many recent tokens (0 = all)")
      ->check(at_least(0))
      ->capture_default_str();
  cmd->add_option("--logit-bias", bias, "ID=BIAS added to a token's logit (repeatable)");
  cmd->add_option("--seed", seed, "random seed (default: from the clock, printed on stderr)")->check(at_least(0));
}

std::optional<gemma2::Sampler> SamplingFlags::make(std::string& error) {
  for (const auto& b : bias) {
    const size_t eq = b.find('=');
    size_t id_end = 0, bias_end = 0;
    try {
      if (eq == std::string::npos) throw std::invalid_argument(b);
      const int id = std::stoi(b.substr(0, eq), &id_end);
      const float value = std::stof(b.substr(eq + 1), &bias_end);
      // -inf bans a token; NaN or +inf would make every probability NaN.
      if (id < 0 || id_end != eq || bias_end != b.size() - eq - 1 || std::isnan(value) || value == INFINITY)
        throw std::invalid_argument(b);
      p.logit_bias[id] = value;
    } catch (const std::exception&) {
      error = "--logit-bias takes ID=BIAS (ID >= 0, BIAS a number or -inf), got " + b;
      return std::nullopt;
    }
  }
  p.seed = seed ? *seed : static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  if (auto s = gemma2::validate(p); !s) {
    error = s.message();
    return std::nullopt;
  }
  if (!p.greedy && p.temperature > 0) std::cerr << "seed: " << p.seed << "\n";
  return gemma2::Sampler(p);
}

std::optional<std::string> SamplingFlags::bias_outside(int vocab) const {
  for (const auto& entry : p.logit_bias)
    if (entry.first >= vocab)
      return "--logit-bias: token id " + std::to_string(entry.first) + " is outside the vocabulary [0, " +
             std::to_string(vocab) + ")";
  return std::nullopt;
}

void GrammarFlags::add_to(CLI::App* cmd) {
  auto* g =
      cmd->add_option("--grammar-file", grammar_file, "constrain the output to a GBNF grammar (llama.cpp's format)");
  auto* j = cmd->add_option("--json-schema", json_schema, "constrain the output to JSON matching a JSON Schema file");
  g->excludes(j);
  cmd->add_option(
         "--json-whitespace", json_whitespace,
         "whitespace between JSON tokens: compact (none), spaces (at most one), free (line breaks, indentation)")
      ->check(CLI::IsMember({"compact", "spaces", "free"}))
      ->needs(j)
      ->capture_default_str();
}

gemma2::Result<gemma2::Grammar> GrammarFlags::grammar() const {
  if (!grammar_file.empty()) return gemma2::Grammar::load(grammar_file);
  auto text = gemma2::read_file(json_schema, uint64_t{16} << 20);
  if (!text) return gemma2::Error{"cannot read JSON Schema: " + text.message()};
  gemma2::JsonGrammarOptions options;
  options.whitespace = json_whitespace == "free"     ? gemma2::JsonWhitespace::Free
                       : json_whitespace == "spaces" ? gemma2::JsonWhitespace::Spaces
                                                     : gemma2::JsonWhitespace::Compact;
  auto g = gemma2::json_schema_grammar(*text, options);
  if (!g) return gemma2::Error{json_schema + ": " + g.message()};
  return g;
}

std::optional<Decoding> make_decoding(SamplingFlags& sf, const GrammarFlags& gf) {
  std::string error;
  auto sampler = sf.make(error);
  if (!sampler) return fail(error), std::nullopt;
  Decoding d{std::move(*sampler), std::nullopt};
  if (gf.given()) {
    auto g = gf.grammar();
    if (!g) return fail(g.message()), std::nullopt;
    d.grammar.emplace(std::move(*g));
  }
  return d;
}

gemma2::Result<gemma2::GrammarConstraint> reply_constraint(const gemma2::Grammar& grammar,
                                                           const std::shared_ptr<const gemma2::TokenTrie>& vocab,
                                                           int max_new) {
  auto c = gemma2::GrammarConstraint::create(grammar, vocab);
  if (!c) return c;
  if (gemma2::Status s = c->set_budget(max_new); !s) return gemma2::Error{"--max-new: " + s.message()};
  return c;
}

void SpeculativeFlags::add_to(CLI::App* cmd) {
  auto* d = cmd->add_option("--draft-model", draft_model,
                            "draft with this smaller model of the same tokenizer (directory or .gguf)");
  auto* l = cmd->add_option("--lookup", lookup, "draft by prompt lookup: match the last N tokens earlier in the text")
                ->check(at_least(1));
  d->excludes(l);
  cmd->add_option("--draft-max", draft_max, "most drafted tokens checked per pass of the model")
      ->check(between(1, gemma2::kMaxDraft))
      ->capture_default_str();
}

std::optional<SpeculativeFlags::Made> SpeculativeFlags::make(const ModelOptions& target, const Model& target_model,
                                                             int capacity) const {
  Made m;
  if (lookup > 0) {
    m.drafter = std::make_unique<gemma2::PromptLookupDrafter>(lookup);
  } else if (!draft_model.empty()) {
    ModelOptions o = target;
    o.dir = draft_model;
    o.tokenizer.clear();
    auto draft = load(o, false);
    if (!draft) return std::nullopt;
    m.draft = std::make_unique<Loaded>(std::move(*draft));
    const gemma2::RuntimeConfig& dc = m.draft->model->config();
    if (dc.vocab_size != target_model.config().vocab_size)
      return fail("--draft-model: its vocabulary has " + std::to_string(dc.vocab_size) + " tokens, the model's " +
                  std::to_string(target_model.config().vocab_size) + ": they must share a tokenizer"),
             std::nullopt;
    gemma2::ModelDrafter<Model>::Options opt;
    opt.capacity = std::min(capacity + draft_max, dc.max_position_embeddings);
    opt.pool = &*m.draft->pool;
    // A draft step over a target step: about the ratio of the weights read.
    opt.cost_per_token = static_cast<double>(m.draft->model->weight_bytes()) /
                         static_cast<double>(std::max<size_t>(target_model.weight_bytes(), 1));
    auto d = gemma2::ModelDrafter<Model>::create(*m.draft->model, opt);
    if (!d) return fail(d.message()), std::nullopt;
    m.drafter = std::make_unique<gemma2::ModelDrafter<Model>>(std::move(*d));
  }
  return m;
}

void print_speed(const gemma2::GenerateResult& r, bool speculative) {
  const size_t decoded = r.tokens.empty() ? 0 : r.tokens.size() - 1;
  std::cerr << std::fixed << std::setprecision(2) << "prefill: " << r.prefill_tokens << " tokens in "
            << r.prefill_seconds << " s (" << r.prefill_tokens / std::max(r.prefill_seconds, 1e-9)
            << " tok/s); decode: " << decoded << " tokens in " << r.decode_seconds << " s ("
            << (decoded ? decoded / std::max(r.decode_seconds, 1e-9) : 0.0)
            << " tok/s); stop: " << gemma2::stop_reason_name(r.stop);
  if (speculative)
    std::cerr << "; drafted " << r.drafted << ", accepted " << r.accepted << " ("
              << 100.0 * r.accepted / std::max(r.drafted, 1) << " %), "
              << static_cast<double>(r.tokens.size()) / std::max(r.target_passes, 1) << " tokens per model pass";
  std::cerr << "\n";
}

}  // namespace gemma2_cli
