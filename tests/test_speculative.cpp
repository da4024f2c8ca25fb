// Speculative decoding: greedy output identical to plain greedy decoding,
// sampled output with the target's distribution (chi-squared against the
// exact distribution), drafters, caches and the adaptive draft length.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <numeric>

#include "support.hpp"

namespace {

using Model = test::DemoModel;

using test::demo_model;

const gemma2::Tokenizer& demo_tokenizer() { return test::demo().tok; }

// A host's own drafter: a fixed script of guesses, or random tokens.
struct ScriptDrafter : gemma2::Drafter {
  std::function<std::vector<int32_t>(const gemma2::TokenHistory&, int)> f;
  std::vector<int32_t> draft(const gemma2::TokenHistory& h, int max) override { return f(h, max); }
};

template <class Cache, class SamplerT>
gemma2::GenerateResult generate_with(const Model& m, Cache cache, const std::vector<int32_t>& prompt, SamplerT sampler,
                                     gemma2::GenerateOptions o) {
  gemma2::TokenHistory h;
  auto r = gemma2::generate(m, cache, h, prompt, sampler, o);
  REQUIRE_MESSAGE(r.ok(), r.message());
  // The cache ends holding every token but the last, as after plain decoding.
  CHECK(static_cast<size_t>(cache.size()) + 1 == h.size());
  return *r;
}

// Random guesses (a fixed-seed generator): almost all rejected.
ScriptDrafter noise_drafter() {
  ScriptDrafter noise;
  noise.f = [state = uint64_t{7}](const gemma2::TokenHistory&, int max) mutable {
    std::vector<int32_t> out;
    for (int i = 0; i < max; ++i)
      out.push_back(static_cast<int32_t>((state = state * 6364136223846793005ull + 1) >> 53) % 4096);
    return out;
  };
  return noise;
}

// The right answer (`reply`, the continuation of a prompt of `prompt_size`
// tokens), then wrong ones: both paths in every step.
ScriptDrafter oracle_drafter(size_t prompt_size, std::vector<int32_t> reply) {
  ScriptDrafter oracle;
  oracle.f = [prompt_size, reply = std::move(reply)](const gemma2::TokenHistory& h, int max) {
    std::vector<int32_t> out;
    for (size_t i = h.size() - prompt_size; i < reply.size() && static_cast<int>(out.size()) < max; ++i)
      out.push_back(reply[i]);
    if (out.size() > 2) out.back() = (out.back() + 1) % 4096;
    return out;
  };
  return oracle;
}

// Upper tail of the chi-squared distribution with k degrees of freedom:
// Q(k/2, x/2), by the series of the lower incomplete gamma function.
double chi_squared_p(double x, int k) {
  const double a = k / 2.0, z = x / 2.0;
  if (z <= 0) return 1.0;
  double term = 1.0 / a, sum = term;
  for (int n = 1; n < 10000 && term > sum * 1e-15; ++n) sum += term *= z / (a + n);
  const double lower = std::exp(a * std::log(z) - z - std::lgamma(a)) * sum;
  return std::max(0.0, 1.0 - lower);
}

// The sampler's exact distribution over the next token: the chain, then
// the grammar's restriction renormalised (sampling.hpp's Sampler).
std::vector<double> exact_distribution(std::vector<float> logits, const gemma2::TokenHistory& h,
                                       const std::vector<gemma2::LogitProcessor>& chain,
                                       gemma2::GrammarConstraint* grammar) {
  for (const auto& p : chain) p(logits, h);
  if (grammar != nullptr) {
    REQUIRE(grammar->sync(h).ok());
    grammar->apply(logits);
  }
  return gemma2::detail::probabilities(logits);
}

}  // namespace

namespace {
// f(dir, model) for every golden model (tests/data/golden).
template <class F>
void for_each_golden_model(F&& f) {
  const auto index = test::read_json(test::data_dir() + "/golden/index.json");
  for (const auto& c : index["cases"]) {
    const std::string dir = test::golden_dir(c["dir"].get<std::string>());
    INFO(dir);
    auto m = Model::load(dir);
    REQUIRE(m.ok());
    f(dir, *m);
  }
}

// Logits of k + 1 tokens run in one pass and one by one, after a prompt.
template <class Cache>
void check_pass_equals_steps(const Model& m, Cache empty, const std::vector<int32_t>& prompt, int vocab) {
  REQUIRE(m.forward(prompt, empty).ok());
  for (int k = 1; k <= gemma2::kMaxDraft; ++k) {
    CAPTURE(k);
    std::vector<int32_t> ids;
    for (int i = 0; i <= k; ++i) ids.push_back(static_cast<int32_t>((37 * i + 11 * k + 5) % vocab));
    Cache pass = empty, steps = empty;
    gemma2::ForwardOptions all;
    all.all_logits = true;
    const auto together = m.forward(ids, pass, all).value();
    for (int i = 0; i <= k; ++i) {
      const auto one = m.forward(&ids[static_cast<size_t>(i)], 1, steps).value();
      CHECK(std::memcmp(one.data(), together.row(i).data(), sizeof(float) * static_cast<size_t>(one.cols())) == 0);
    }
  }
}
}  // namespace

TEST_CASE("speculative: a pass of up to 7 tokens gives each token's logits exactly as one-token steps do") {
  // The ground of greedy identity: verification rows are bit for bit the
  // rows plain decoding computes (golden models of every shape, the demo
  // model in each weight type and with each cache, local layers' windows
  // included).
  for_each_golden_model([](const std::string&, const Model& m) {
    const int vocab = m.config().vocab_size;
    std::vector<int32_t> prompt;
    for (int i = 0; i < 40; ++i) prompt.push_back((i * 7 + 2) % vocab);
    check_pass_equals_steps(m, m.make_cache(64).value(), prompt, vocab);
  });
  const auto prompt = demo_tokenizer()
                          .encode_prompt(
                              "First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
                              "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved "
                              "rather to die than to famish?\n\n")
                          .value();
  REQUIRE(prompt.size() > 40);
  for (const char* type : {"", "q8", "q4"}) {
    INFO(type);
    gemma2::LoadOptions lo;
    if (*type) lo.weight_type = gemma2::parse_weight_type(type).value();
    auto m = Model::load(GEMMA2_DEMO_MODEL, lo);
    REQUIRE(m.ok());
    const int capacity = static_cast<int>(prompt.size()) + 8;
    check_pass_equals_steps(*m, m->make_cache(capacity).value(), prompt, 4096);
    check_pass_equals_steps(*m, m->make_cache<gemma2::FullKVCache<int8_t>>(capacity).value(), prompt, 4096);
    check_pass_equals_steps(*m, m->make_cache<gemma2::FullKVCache<gemma2::bf16>>(capacity).value(), prompt, 4096);
    check_pass_equals_steps(*m, m->make_cache<gemma2::SlidingWindowKVCache<>>(capacity).value(), prompt, 4096);
  }
}

TEST_CASE("speculative: prompt lookup proposes what followed the latest match of the longest n-gram") {
  gemma2::PromptLookupDrafter d(3);
  // "5 6 7" last occurred at 4..6 (followed by 9 8), "6 7" also at 1..2.
  CHECK(d.draft({1, 6, 7, 2, 5, 6, 7, 9, 8, 5, 6, 7}, 4) == std::vector<int32_t>{9, 8, 5, 6});
  CHECK(d.draft({1, 6, 7, 2, 5, 6, 7, 9, 8, 5, 6, 7}, 1) == std::vector<int32_t>{9});
  CHECK(d.draft({1, 6, 7, 3, 4, 7}, 4) == std::vector<int32_t>{3, 4, 7});  // only the 1-gram "7" matches
  CHECK(d.draft({1, 2, 3}, 4).empty());
  CHECK(d.draft({}, 4).empty());
  CHECK(d.draft({5}, 4).empty());
  CHECK(d.draft({5, 5}, 4) == std::vector<int32_t>{5});
  CHECK(d.draft({1, 2, 1, 2}, 0).empty());
}

TEST_CASE("speculative: greedy output is plain greedy decoding's, token for token, for every drafter and cache") {
  const Model& m = demo_model();
  const auto& tok = demo_tokenizer();
  const std::vector<std::string> prompts = {
      "ROMEO:\n", "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n",
      "KING RICHARD III:\nNow is the winter of our discontent\nNow is the winter of"};
  auto draft_model = gemma2::ModelDrafter<Model>::create(m);
  REQUIRE(draft_model.ok());
  ScriptDrafter noise = noise_drafter();  // random guesses: almost all rejected
  for (const auto& text : prompts) {
    INFO(text);
    const auto prompt = tok.encode_prompt(text).value();
    gemma2::GenerateOptions o;
    o.max_new_tokens = 72;  // past the demo model's 64-position window
    const int capacity = static_cast<int>(prompt.size()) + o.max_new_tokens;
    const auto plain = generate_with(m, *m.make_cache(capacity), prompt, gemma2::Sampler(), o);
    REQUIRE(plain.tokens.size() == 72);  // the tests below need a long continuation
    ScriptDrafter oracle = oracle_drafter(prompt.size(), plain.tokens);
    gemma2::PromptLookupDrafter lookup1(1), lookup3(3);
    for (gemma2::Drafter* d :
         std::initializer_list<gemma2::Drafter*>{&lookup1, &lookup3, &*draft_model, &noise, &oracle})
      for (int k : {2, 8})
        for (bool adaptive : {false, true}) {
          CAPTURE(k);
          CAPTURE(adaptive);
          o.drafter = d;
          o.draft_max = k;
          o.adaptive_draft = adaptive;
          const auto spec = generate_with(m, *m.make_cache(capacity), prompt, gemma2::Sampler(), o);
          CHECK(spec.tokens == plain.tokens);
          CHECK(spec.stop == plain.stop);
          CHECK(spec.accepted <= spec.drafted);
          CHECK(spec.target_passes + spec.accepted == static_cast<int>(spec.tokens.size()));
          if (d == &oracle && !adaptive) CHECK(spec.accepted > static_cast<int>(spec.tokens.size()) / 3);
          // The model drafting for itself guesses its own greedy tokens: its
          // one-token steps and the target's pass agree to the bit.
          if (d == &*draft_model) CHECK(spec.accepted == spec.drafted);
        }
    // A sliding-window ring that keeps room for only 2 positions per pass:
    // guesses are cut to fit, and a rollback past the ring rebuilds it.
    o.drafter = &oracle;
    o.draft_max = 8;
    auto ring = gemma2::SlidingWindowKVCache<>::create(gemma2::cache_shape(m.config(), capacity), 2);
    REQUIRE(ring.ok());
    CHECK(generate_with(m, std::move(*ring), prompt, gemma2::Sampler(), o).tokens == plain.tokens);
    auto ring8 = gemma2::SlidingWindowKVCache<>::create(gemma2::cache_shape(m.config(), capacity), 9);
    REQUIRE(ring8.ok());
    CHECK(generate_with(m, std::move(*ring8), prompt, gemma2::Sampler(), o).tokens == plain.tokens);
  }
}

TEST_CASE("speculative: golden models, greedy, guesses from the reference continuation and wrong ones") {
  for_each_golden_model([](const std::string& dir, const Model& m) {
    const auto expected = test::read_json(dir + "/expected.json");
    for (const auto& s : expected["cases"]) {
      const std::vector<int32_t> prompt = s["prompt"], greedy = s["greedy"];
      gemma2::GenerateOptions o;
      o.max_new_tokens = static_cast<int>(greedy.size());
      const auto plain = generate_with(m, *m.make_cache(), prompt, gemma2::Sampler(), o);
      CHECK(plain.tokens == greedy);
      const int vocab = m.config().vocab_size;
      ScriptDrafter d;
      d.f = [&](const gemma2::TokenHistory& h, int max) {
        std::vector<int32_t> out;
        for (size_t i = h.size() - prompt.size(); i < greedy.size() && static_cast<int>(out.size()) < max; ++i)
          out.push_back(i % 5 == 4 ? (greedy[i] + 1) % vocab : greedy[i]);
        return out;
      };
      for (int k : {1, 2, 5}) {
        o.drafter = &d;
        o.draft_max = k;
        o.adaptive_draft = false;
        CHECK(generate_with(m, *m.make_cache(), prompt, gemma2::Sampler(), o).tokens == greedy);
      }
    }
  });
}

namespace {

// A sampler's configuration: its parameters, with or without a grammar.
struct Chain {
  const char* name;
  gemma2::SamplingParams params;
  bool constrained;
};

// One chain per kind of logit processor (and the grammar restriction).
std::vector<Chain> sampling_chains() {
  std::vector<Chain> chains;
  gemma2::SamplingParams p;
  p.temperature = 0.7f;
  chains.push_back({"temperature 0.7", p, false});
  p.temperature = 1.0f;
  p.top_k = 6;
  chains.push_back({"top-k 6", p, false});
  p.top_k = 0;
  p.top_p = 0.8f;
  p.repetition_penalty = 1.3f;
  chains.push_back({"top-p 0.8, repetition penalty", p, false});
  p.top_p = 1.0f;
  p.repetition_penalty = 1.0f;
  p.min_p = 0.05f;
  chains.push_back({"min-p 0.05 and a grammar", p, true});
  return chains;
}

// The chain's processors, as Sampler builds them (sampling.hpp).
std::vector<gemma2::LogitProcessor> chain_processors(const gemma2::SamplingParams& q) {
  std::vector<gemma2::LogitProcessor> processors;
  if (q.repetition_penalty != 1.0f) processors.push_back(gemma2::processors::penalties(q.repetition_penalty, 0, 0));
  if (q.temperature != 1.0f) processors.push_back(gemma2::processors::temperature(q.temperature));
  if (q.top_k > 0) processors.push_back(gemma2::processors::top_k(q.top_k));
  if (q.top_p < 1.0f) processors.push_back(gemma2::processors::top_p(q.top_p));
  if (q.min_p > 0.0f) processors.push_back(gemma2::processors::min_p(q.min_p));
  return processors;
}

// Two tokens drawn after a prompt: the demo model with the prompt but its
// last token cached once (each draw starts from a copy), the grammar the
// constrained chain uses.
struct TwoTokenDraws {
  const Model& m = demo_model();
  gemma2::TokenHistory prompt = demo_tokenizer().encode_prompt("ROMEO:\nI").value();
  std::shared_ptr<const gemma2::TokenTrie> vocab = test::demo().trie;
  gemma2::Result<gemma2::Grammar> grammar = gemma2::Grammar::parse("root ::= [ a-z]+ [,.]?");
  gemma2::KVCache base = m.make_cache(static_cast<int>(prompt.size()) + 4).value();
  int n;                                // draws per chain
  static constexpr int32_t kRare = -1;  // the cell of every first token too rare to be seen

  explicit TwoTokenDraws(int draws) : n(draws) {
    REQUIRE(grammar.ok());
    REQUIRE(m.forward(prompt.data(), prompt.size() - 1, base).ok());
  }

  std::vector<float> logits_after(std::vector<int32_t> ids) const {  // the target's row after prompt + ids
    auto c = base;
    ids.insert(ids.begin(), prompt.back());
    const auto l = m.forward(ids, c).value();
    return std::vector<float>(l.data(), l.data() + l.cols());
  }

  std::optional<gemma2::GrammarConstraint> constraint(const Chain& chain) const {
    if (!chain.constrained) return std::nullopt;
    auto c = gemma2::GrammarConstraint::create(*grammar, vocab).value();
    REQUIRE(c.sync(prompt).ok());  // the constrained text starts after the prompt
    return c;
  }

  // Exact joint distribution of the first two tokens: cells (a, b) for
  // first tokens a likely enough to be seen, one cell for all the others;
  // and the two guesses (the most likely token and its most likely successor).
  struct Joint {
    std::vector<double> p1;
    std::map<std::pair<int32_t, int32_t>, double> cells;
    int32_t guess1 = -1, guess2 = -1;
  };
  Joint exact(const Chain& chain) const {
    const auto processors = chain_processors(chain.params);
    Joint j;
    auto g1 = constraint(chain);
    j.p1 = exact_distribution(logits_after({}), prompt, processors, g1 ? &*g1 : nullptr);
    j.guess1 = static_cast<int32_t>(std::max_element(j.p1.begin(), j.p1.end()) - j.p1.begin());
    for (size_t a = 0; a < j.p1.size(); ++a) {
      if (j.p1[a] * n < 4) {
        j.cells[{kRare, kRare}] += j.p1[a];
        continue;
      }
      gemma2::TokenHistory ha = prompt;
      ha.push_back(static_cast<int32_t>(a));
      auto ga = constraint(chain);
      const auto p2 = exact_distribution(logits_after({static_cast<int32_t>(a)}), ha, processors, ga ? &*ga : nullptr);
      if (static_cast<int32_t>(a) == j.guess1)
        j.guess2 = static_cast<int32_t>(std::max_element(p2.begin(), p2.end()) - p2.begin());
      for (size_t b = 0; b < p2.size(); ++b)
        if (j.p1[a] * p2[b] > 0) j.cells[{static_cast<int32_t>(a), static_cast<int32_t>(b)}] = j.p1[a] * p2[b];
    }
    return j;
  }

  // n draws, the prompt's last token pending, the first pass checking the
  // two guesses, so drafts are wholly accepted, partly, or not at all.
  struct Seen {
    std::map<std::pair<int32_t, int32_t>, int> cells;
    int accepted = 0, drafted = 0;
  };
  Seen draw(const Chain& chain, const Joint& joint) const {
    Seen seen;
    for (int i = 0; i < n; ++i) {
      auto c = base;
      gemma2::TokenHistory hist = prompt;
      gemma2::SamplingParams q = chain.params;
      q.seed = 1000003ull * static_cast<uint64_t>(i) + 17;
      gemma2::Sampler sampler(q);
      if (chain.constrained) sampler.constrain(gemma2::GrammarConstraint::create(*grammar, vocab).value());
      std::vector<int32_t> got;
      while (got.size() < 2) {
        const std::vector<int32_t> guesses =
            got.empty() ? std::vector<int32_t>{joint.guess1, joint.guess2} : std::vector<int32_t>{};
        auto step = gemma2::speculative_step(m, c, hist, sampler, guesses, {}, [&](int32_t id) {
          got.push_back(id);
          return got.size() < 2;
        });
        REQUIRE_MESSAGE(step.ok(), step.message());
        seen.accepted += step->accepted;
        seen.drafted += step->drafted;
        REQUIRE(static_cast<size_t>(c.size()) + 1 == hist.size());
      }
      const bool rare = joint.p1[static_cast<size_t>(got[0])] * n < 4;
      ++seen.cells[rare ? std::pair{kRare, kRare} : std::pair{got[0], got[1]}];
    }
    return seen;
  }
};

// Pearson's statistic over the cells expected at least 5 times, the rest
// pooled into one: {chi2, cells}.
std::pair<double, int> chi_squared(const std::map<std::pair<int32_t, int32_t>, double>& expected,
                                   const std::map<std::pair<int32_t, int32_t>, int>& seen, int n) {
  double chi2 = 0, pooled_expected = 0;
  int pooled_seen = 0, cells = 0;
  for (const auto& [cell, prob] : expected) {
    const double e = prob * n;
    const auto it = seen.find(cell);
    const int o = it == seen.end() ? 0 : it->second;
    if (e < 5) {
      pooled_expected += e, pooled_seen += o;
      continue;
    }
    chi2 += (o - e) * (o - e) / e;
    ++cells;
  }
  if (pooled_expected > 0) {
    chi2 += (pooled_seen - pooled_expected) * (pooled_seen - pooled_expected) / pooled_expected;
    ++cells;
  }
  return {chi2, cells};
}

}  // namespace

TEST_CASE("speculative: sampling keeps the target's distribution (chi-squared, every processor chain)") {
  // Two tokens are drawn after a prompt, the first pass checking two guesses
  // (the most likely token and its most likely successor), so accepted,
  // rejected and partly accepted drafts all occur; the joint distribution
  // of the two tokens is compared with the exact one.
  const char* env = std::getenv("GEMMA2_SPECULATIVE_SAMPLES");
  const TwoTokenDraws draws(env != nullptr ? std::atoi(env) : 1000);
  for (const Chain& chain : sampling_chains()) {
    INFO(std::string(chain.name));
    const auto joint = draws.exact(chain);
    REQUIRE(joint.guess2 >= 0);
    const auto seen = draws.draw(chain, joint);
    for (const auto& [cell, count] : seen.cells)
      CHECK_MESSAGE(joint.cells.count(cell), "a pair the sampler cannot produce: ", cell.first, " ", cell.second);
    const auto [chi2, cells] = chi_squared(joint.cells, seen.cells, draws.n);
    const double pvalue = chi_squared_p(chi2, std::max(1, cells - 1));
    MESSAGE(std::string(chain.name), ": chi2 ", chi2, " over ", cells, " cells, p = ", pvalue, "; guesses accepted ",
            seen.accepted, " of ", seen.drafted);
    CHECK(cells >= 4);
    CHECK(pvalue > 0.01);
    CHECK(seen.accepted > 0);
    CHECK(seen.accepted < seen.drafted);
  }
}

TEST_CASE("speculative: steps compose with sessions, and bad guesses or bad state are errors") {
  const Model& m = demo_model();
  const auto prompt = demo_tokenizer().encode_prompt("ROMEO:\n").value();
  auto s = gemma2::Session<Model>::create(m, 64).value();
  gemma2::Sampler greedy;
  REQUIRE(s.feed({prompt.begin(), prompt.end() - 1}).ok());
  s.tokens().push_back(prompt.back());  // pending: the step runs it
  auto noop = [](int32_t) { return true; };
  auto bad = gemma2::speculative_step(m, s.cache(), s.tokens(), greedy, {5, 4096}, {}, noop);
  REQUIRE_FALSE(bad.ok());
  CHECK(test::contains(bad.message(), "drafter proposed token id 4096"));
  CHECK(s.tokens().size() == prompt.size());
  auto step = gemma2::speculative_step(m, s.cache(), s.tokens(), greedy, {5, 6, 7}, {}, noop);
  REQUIRE(step.ok());
  CHECK(step->drafted == 3);
  CHECK(s.tokens().size() == prompt.size() + step->tokens.size());
  // A fork continues independently; a rollback takes the step back.
  auto fork = s.fork();
  REQUIRE(s.rollback(prompt.size()).ok());
  CHECK(s.tokens() == prompt);
  auto again = gemma2::speculative_step(m, s.cache(), s.tokens(), greedy, {}, {}, noop);
  REQUIRE(again.ok());
  CHECK(again->tokens.front() == step->tokens.front());
  CHECK(fork.tokens().size() == prompt.size() + step->tokens.size());
  // The cache must hold all but the last token.
  gemma2::TokenHistory longer = s.tokens();
  longer.push_back(5);
  auto wrong = gemma2::speculative_step(m, s.cache(), longer, greedy, {}, {}, noop);
  REQUIRE_FALSE(wrong.ok());
  CHECK(test::contains(wrong.message(), "every token of the history but the last"));
  // A full cache ends generation with ContextFull, guesses or not.
  gemma2::GenerateOptions o;
  o.max_new_tokens = 100;
  gemma2::PromptLookupDrafter lookup(2);
  o.drafter = &lookup;
  auto small = m.make_cache(static_cast<int>(prompt.size()) + 10).value();
  gemma2::TokenHistory h;
  auto r = gemma2::generate(m, small, h, prompt, gemma2::Sampler(), o);
  REQUIRE(r.ok());
  CHECK(r->stop == gemma2::StopReason::ContextFull);
  CHECK(r->tokens.size() == 11);
}

TEST_CASE("speculative: the adaptive draft length follows the acceptance and the measured costs") {
  // Steps simulated with passes that cost 5% more per row (a bandwidth-bound
  // model) or a whole step per row (a small model in cache), guesses free
  // or dear, and a given number of guesses accepted. Returns the draft
  // lengths of the last 32 steps.
  auto simulate = [](double row_cost, double guess_cost, const std::function<int(int)>& accepted) {
    gemma2::DraftLength length(8);
    std::vector<int> last;
    for (int i = 0; i < 200; ++i) {
      const int k = length.next(0.0);
      length.observe(k, k, std::min(k, accepted(k)), 1.0 + row_cost * k, guess_cost * k);
      if (i >= 168) last.push_back(k);
    }
    return last;
  };
  auto sum = [](const std::vector<int>& v) { return std::accumulate(v.begin(), v.end(), 0); };
  const auto always = simulate(0.05, 0.0, [](int k) { return k; });
  CHECK(std::count(always.begin(), always.end(), gemma2::kMaxDraft) >= 30);
  CHECK(sum(simulate(0.05, 0.0, [](int) { return 0; })) <= 2);  // a probe every 16th step
  const auto half = simulate(0.05, 0.0, [](int) { return 2; });
  CHECK(sum(half) >= 32);
  CHECK(sum(simulate(0.05, 0.4, [](int) { return 2; })) < sum(half));  // guesses at 0.4 of a step each
  CHECK(sum(simulate(1.0, 0.0, [](int) { return 2; })) <= 2);          // rows as dear as steps: guessing cannot pay
}
