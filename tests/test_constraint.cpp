// Grammar-constrained decoding (gemma2/constraint.hpp): the token trie,
// GrammarConstraint's masks, budgets, partial characters and rollback, the
// constrained Sampler, and completions of the demo model under GBNF
// grammars, each checked against something independent of it
// (token-by-token checks, exact distributions, recursive-descent parsers,
// std::regex).
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <regex>

#include "grammar_support.hpp"

namespace {

using test::demo_vocab;
using test::gemma_tokenizer;
using test::grammar;
using test::sample_completions;
using test::samples_per_grammar;
using test::schemas;

// Code points of UTF-8 text (valid text only).
size_t code_points(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

// Recursive-descent recognisers for two of the GBNF test grammars.
struct Cursor {
  const std::string& s;
  size_t i = 0;
  bool eat(char c) { return i < s.size() && s[i] == c ? (++i, true) : false; }
  bool eat(const std::string& w) { return s.compare(i, w.size(), w) == 0 ? (i += w.size(), true) : false; }
  bool digit() { return i < s.size() && s[i] >= '0' && s[i] <= '9' ? (++i, true) : false; }
};
bool arith_expr(Cursor& c, int depth);
bool arith_factor(Cursor& c, int depth) {
  if (c.eat('(')) {
    c.eat(' ');
    if (!arith_expr(c, depth + 1)) return false;
    c.eat(' ');
    return c.eat(')');
  }
  c.eat('-');
  if (!c.digit()) return false;
  while (c.digit()) {}
  if (c.eat('.')) {
    if (!c.digit()) return false;
    while (c.digit()) {}
  }
  return true;
}
bool arith_binary(Cursor& c, int depth, const char* ops, const std::function<bool(Cursor&, int)>& operand) {
  if (!operand(c, depth)) return false;
  for (;;) {
    const size_t save = c.i;
    c.eat(' ');
    if (c.i < c.s.size() && std::strchr(ops, c.s[c.i]) != nullptr) {
      ++c.i;
      c.eat(' ');
      if (!operand(c, depth)) return false;
    } else {
      c.i = save;
      return true;
    }
  }
}
bool arith_term(Cursor& c, int depth) { return arith_binary(c, depth, "*/", arith_factor); }
bool arith_expr(Cursor& c, int depth) { return depth < 100 && arith_binary(c, depth, "+-", arith_term); }
bool arithmetic(const std::string& s) {
  Cursor c{s};
  return arith_expr(c, 0) && c.i == s.size();
}
bool commands(const std::string& s) {
  Cursor c{s};
  for (;;) {
    if (c.eat("go ")) {
      if (!(c.eat("north") || c.eat("south") || c.eat("east") || c.eat("west"))) return false;
    } else if (c.eat("take ")) {
      const size_t b = c.i;
      while (c.i < s.size() && s[c.i] >= 'a' && s[c.i] <= 'z') ++c.i;
      if (c.i == b) return false;
    } else if (c.eat("say \"")) {
      while (c.i < s.size() && s[c.i] != '"' && s[c.i] != '\n') ++c.i;
      if (!c.eat('"')) return false;
    } else if (!c.eat("wait")) {
      return false;
    }
    if (c.i == s.size()) return true;
    if (!c.eat(';')) return false;
    c.eat(' ');
  }
}

const char* kArithmetic = R"G(root   ::= expr
expr   ::= term (ws [-+] ws term)*
term   ::= factor (ws [*/] ws factor)*
factor ::= number | "(" ws expr ws ")"
number ::= "-"? [0-9]+ ("." [0-9]+)?
ws     ::= " "?
)G";
const char* kList = "root ::= (\"- \" [a-zA-Z] [a-zA-Z ]{0,19} \"\\n\"){1,5}\n";
const char* kCommands = R"G(root    ::= command (";" " "? command)*
command ::= "go " dir | "take " name | "say " quoted | "wait"
dir     ::= "north" | "south" | "east" | "west"
name    ::= [a-z]+
quoted  ::= "\"" [^"\n]* "\""
)G";
const char* kIdentifiers = "root ::= ident (\",\" \" \"? ident)*\nident ::= [a-zA-Z_] [a-zA-Z0-9_]*\n";
const char* kChess = R"G(root ::= move (" " move){0,11}
move ::= ("O-O-O" | "O-O" | [KQRBN]? [a-h]? "x"? [a-h] [1-8] ("=" [QRBN])?) [+#]?
)G";

struct GbnfCase {
  const char* name;
  const char* gbnf;
  std::function<bool(const std::string&)> check;
};
std::vector<GbnfCase> gbnf_cases() {
  auto re = [](const char* pattern) {
    return [r = std::regex(pattern)](const std::string& s) { return std::regex_match(s, r); };
  };
  return {{"arithmetic", kArithmetic, arithmetic},
          {"list", kList, re("(- [a-zA-Z][a-zA-Z ]{0,19}\n){1,5}")},
          {"commands", kCommands, commands},
          {"identifiers", kIdentifiers, re("[a-zA-Z_][a-zA-Z0-9_]*(, ?[a-zA-Z_][a-zA-Z0-9_]*)*")},
          {"chess", kChess,
           re("(O-O-O|O-O|[KQRBN]?[a-h]?x?[a-h][1-8](=[QRBN])?)[+#]?"
              "( (O-O-O|O-O|[KQRBN]?[a-h]?x?[a-h][1-8](=[QRBN])?)[+#]?){0,11}")}};
}

// Fewest tokens that complete the text of an unbudgeted constraint as a
// budget counts them, token by token: one allowed token, then one per byte
// of the shortest completion after it.
uint32_t fewest_tokens_by_checks(gemma2::GrammarConstraint& c, const gemma2::TokenTrie& vocab) {
  if (c.can_end()) return 0;
  uint32_t fewest = gemma2::detail::kNoCompletion;
  const size_t at = c.size();
  for (int32_t id = 0; id < vocab.vocab_size(); ++id) {
    if (vocab.kind(id) != gemma2::TokenTrie::Kind::Text || !c.allows(id)) continue;
    REQUIRE(c.accept(id).ok());
    fewest = std::min(fewest, 1 + c.min_bytes_to_complete());
    REQUIRE(c.rollback(at).ok());
  }
  return fewest;
}

// The sampler cases' logits over the demo vocabulary (normal, sd 2) and
// their history.
std::vector<float> demo_logits() {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(static_cast<size_t>(demo_vocab()->vocab_size()));
  for (float& l : logits) l = normal(rng);
  return logits;
}
const std::vector<int32_t> kHistory = {2};

// The distribution a sampler over `params` should give: its chain's p
// restricted to the allowed tokens, or (when the chain leaves none) the
// chain over the masked logits.
std::vector<double> restricted_distribution(const gemma2::Grammar& g, const std::vector<float>& logits,
                                            const gemma2::SamplingParams& params) {
  const auto& history = kHistory;
  auto c = *gemma2::GrammarConstraint::create(g, demo_vocab());
  std::vector<float> l = logits;
  std::vector<double> p(l.size());
  {
    std::vector<float> t = logits;
    if (params.temperature != 1.0f)
      for (float& x : t) x /= params.temperature;
    if (params.top_k > 0) gemma2::processors::top_k(params.top_k)(t, history);
    p = gemma2::detail::probabilities(t);
  }
  double kept = 0;
  for (size_t i = 0; i < p.size(); ++i) kept += (p[i] *= c.allows(static_cast<int32_t>(i)) ? 1.0 : 0.0);
  if (kept > 0) {
    for (double& x : p) x /= kept;
    return p;
  }
  c.apply(l);
  if (params.temperature != 1.0f)
    for (float& x : l) x /= params.temperature;
  if (params.top_k > 0) gemma2::processors::top_k(params.top_k)(l, history);
  return gemma2::detail::probabilities(l);
}

// Pearson's chi-squared of `counts` (of `draws`) against `want`, over
// tokens expected at least 5 times, the rest pooled: the statistic and
// its number of bins.
std::pair<double, int> chi_squared(const std::vector<double>& want, const std::vector<int>& counts, int draws) {
  double chi2 = 0, pooled_e = 0, pooled_o = 0;
  int bins = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double e = want[i] * draws;
    if (e >= 5) chi2 += (counts[i] - e) * (counts[i] - e) / e, ++bins;
    else pooled_e += e, pooled_o += counts[i];
  }
  if (pooled_e >= 5) chi2 += (pooled_o - pooled_e) * (pooled_o - pooled_e) / pooled_e, ++bins;
  return {chi2, bins};
}

// Upper tail of chi-squared with bins - 1 degrees of freedom (Wilson-Hilferty).
double chi_squared_p_value(double chi2, int bins) {
  const double df = bins - 1, z = (std::cbrt(chi2 / df) - (1 - 2 / (9 * df))) / std::sqrt(2 / (9 * df));
  return 0.5 * std::erfc(z / std::sqrt(2.0));
}

}  // namespace

TEST_CASE("grammar constraint: every piece's text is what the decoder prints") {
  const auto& tok = gemma_tokenizer();
  const auto vocab = gemma2::TokenTrie::build(tok);
  REQUIRE(vocab->vocab_size() == tok.vocab_size());
  CHECK(vocab->kind(tok.eos_id()) == gemma2::TokenTrie::Kind::End);
  CHECK(vocab->kind(tok.end_of_turn_id()) == gemma2::TokenTrie::Kind::End);
  CHECK(vocab->kind(tok.bos_id()) == gemma2::TokenTrie::Kind::Never);
  CHECK(vocab->kind(0) == gemma2::TokenTrie::Kind::Never);  // <pad>
  CHECK(vocab->kind(tok.vocab_size()) == gemma2::TokenTrie::Kind::Never);
  size_t text_pieces = 0;
  for (int32_t id = 0; id < tok.vocab_size(); ++id) {
    if (vocab->kind(id) != gemma2::TokenTrie::Kind::Text) continue;
    ++text_pieces;
    gemma2::StreamDecoder d(tok);
    const std::string printed = d.push(id) + d.finish();
    if (vocab->is_byte_piece(id)) {
      REQUIRE(vocab->text(id).size() == 1);  // its byte; the decoder holds it until the character completes
    } else if (printed != vocab->text(id)) {
      FAIL_CHECK("piece " << id << " prints \"" << printed << "\" but the trie has \"" << std::string(vocab->text(id))
                          << "\"");
    }
  }
  // Every text piece hangs in the trie once.
  size_t in_trie = 0;
  for (const auto& n : vocab->nodes()) in_trie += n.token_count;
  CHECK(in_trie == text_pieces);
}

TEST_CASE("grammar constraint: the trie mask equals token-by-token checks along random walks") {
  std::vector<std::pair<const char*, std::shared_ptr<const gemma2::TokenTrie>>> vocabs = {
      {"gemma", gemma2::TokenTrie::build(gemma_tokenizer())}, {"demo", demo_vocab()}};
  const std::vector<std::string> grammars = {
      gemma2::json_gbnf(), *gemma2::json_schema_to_gbnf(schemas()[9]), kChess, kArithmetic,
      "root ::= \"\xC2\xAB\" [\\u00e0-\\u00ff\\u4e00-\\u9fff]{1,4} \"\xC2\xBB\" \" \"?"};
  std::mt19937 rng(11);
  for (const auto& [name, vocab] : vocabs)
    for (const auto& text : grammars) {
      INFO(name);
      INFO(text);
      auto c = gemma2::GrammarConstraint::create(grammar(text), vocab);
      REQUIRE(c.ok());
      REQUIRE(c->set_budget(40).ok());
      for (int step = 0; step < 40 && !c->finished(); ++step) {
        const std::vector<uint8_t> mask =
            c->allowed_mask(static_cast<size_t>(vocab->vocab_size()) + 3);  // 3 ids past the tokenizer
        std::vector<int32_t> allowed;
        for (size_t i = 0; i < mask.size(); ++i) {
          const auto id = static_cast<int32_t>(i);
          const bool one = c->allows(id);
          if (one != (mask[i] != 0)) {
            FAIL_CHECK("step " << step << ": token " << id << " (\"" << std::string(vocab->text(id)) << "\") mask "
                               << int(mask[i]) << " but check " << one);
            break;
          }
          if (one) allowed.push_back(id);
        }
        REQUIRE_FALSE(allowed.empty());  // byte pieces can always continue the text
        const int32_t pick = allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)];
        REQUIRE(c->accept(pick).ok());
      }
      CHECK(c->can_end());  // the budget of 40 tokens ends every walk complete
    }
}

TEST_CASE("grammar constraint: a budget shorter than the shortest completion is refused, naming both") {
  std::vector<std::pair<const char*, std::shared_ptr<const gemma2::TokenTrie>>> vocabs = {
      {"gemma", gemma2::TokenTrie::build(gemma_tokenizer())}, {"demo", demo_vocab()}};
  const std::vector<std::string> grammars = {gemma2::json_gbnf(), *gemma2::json_schema_to_gbnf(schemas()[9]), kChess,
                                             "root ::= \"to be or not to be\" | \"question\" [!?]",
                                             "root ::= \"\xC2\xAB\" [\\u00e0-\\u00ff]{2} \"\xC2\xBB\""};
  const auto tokens = [](uint32_t n) { return std::to_string(n) + (n == 1 ? " token" : " tokens"); };
  std::mt19937 rng(3);
  for (const auto& [name, vocab] : vocabs)
    for (const auto& text : grammars) {
      INFO(name);
      INFO(text);
      auto c = gemma2::GrammarConstraint::create(grammar(text), vocab).value();
      const size_t n = static_cast<size_t>(vocab->vocab_size());
      for (int step = 0; step < 3 && !c.finished(); ++step) {
        INFO("step " << step);
        const uint32_t fewest = fewest_tokens_by_checks(c, *vocab);
        REQUIRE(fewest < gemma2::detail::kNoCompletion);
        CHECK(c.min_tokens_to_complete() == fewest);
        const std::vector<uint8_t> unbudgeted = c.allowed_mask(n);
        if (fewest > 0) {
          auto refused = c;
          const gemma2::Status s = refused.set_budget(static_cast<int>(fewest) - 1);
          CHECK(s.message() == "grammar: a budget of " + tokens(fewest - 1) +
                                   " is too small: the shortest completion takes " + tokens(fewest));
          CHECK(refused.allowed_mask(n) == unbudgeted);  // left without a budget
        }
        auto exact = c;
        REQUIRE(exact.set_budget(static_cast<int>(fewest)).ok());
        const std::vector<uint8_t>& mask = exact.allowed_mask(n);
        CHECK(std::find(mask.begin(), mask.end(), 1) != mask.end());  // the smallest budget that leaves a token
        std::vector<int32_t> allowed;
        for (size_t i = 0; i < n; ++i)
          if (unbudgeted[i] && vocab->kind(static_cast<int32_t>(i)) == gemma2::TokenTrie::Kind::Text)
            allowed.push_back(static_cast<int32_t>(i));
        if (allowed.empty()) break;
        REQUIRE(c.accept(allowed[std::uniform_int_distribution<size_t>(0, allowed.size() - 1)(rng)]).ok());
      }
    }
}

TEST_CASE("grammar constraint: partial UTF-8 from byte pieces, end tokens, copies and rollback") {
  auto tok = gemma2::Tokenizer::from_model_dir(GEMMA2_DEMO_MODEL);
  REQUIRE(tok.ok());
  const auto vocab = demo_vocab();
  auto c = *gemma2::GrammarConstraint::create(grammar("root ::= \"\xC3\xA9t\xC3\xA9\" \"!\"?"), vocab);  // "été!"?
  auto byte = [&](int b) { return static_cast<int32_t>(6 + b); };  // the demo's byte pieces are ids 6..261
  REQUIRE(tok->piece(byte(0xC3)) == "<0xC3>");
  CHECK_FALSE(c.allows(tok->eos_id()));
  CHECK_FALSE(c.allows(byte(0xC4)));   // a character the grammar cannot use
  REQUIRE(c.accept(byte(0xC3)).ok());  // half of é: the text is not complete, only its continuation may follow
  CHECK_FALSE(c.allows(byte('t')));
  CHECK_FALSE(c.allows(tok->eos_id()));
  REQUIRE(c.accept(byte(0xA9)).ok());
  const auto t = tok->encode("t");
  REQUIRE(t.ok());
  REQUIRE(c.accept(t->back()).ok());
  auto fork = c;  // a copy continues independently
  REQUIRE(c.accept(byte(0xC3)).ok());
  REQUIRE(c.accept(byte(0xA9)).ok());
  CHECK(c.can_end());
  CHECK_FALSE(c.finished());  // "!" may still follow
  CHECK(c.allows(tok->eos_id()));
  CHECK(c.allows(tok->end_of_turn_id()));
  CHECK_FALSE(c.allows(tok->bos_id()));
  CHECK_FALSE(c.allows(4));  // <start_of_turn> prints text, which the grammar has no room for
  REQUIRE(c.accept(tok->eos_id()).ok());
  CHECK(c.finished());
  CHECK(c.accept(byte('!')).message().find("the text is complete") != std::string::npos);
  CHECK(fork.size() == 3);
  CHECK_FALSE(fork.can_end());
  REQUIRE(c.rollback(3).ok());
  CHECK(c.tokens() == fork.tokens());
  CHECK(c.min_bytes_to_complete() == fork.min_bytes_to_complete());
  CHECK(c.min_bytes_to_complete() == 2);  // é
  CHECK_FALSE(c.rollback(9).ok());
}

TEST_CASE("grammar constraint: sync follows a history, and a budget refuses what cannot finish in time") {
  auto tok = gemma2::Tokenizer::from_model_dir(GEMMA2_DEMO_MODEL);
  REQUIRE(tok.ok());
  const auto vocab = demo_vocab();
  auto byte = [&](int b) { return static_cast<int32_t>(6 + b); };  // the demo's byte pieces are ids 6..261
  // sync follows a history: longest common prefix, then the rest.
  auto s = *gemma2::GrammarConstraint::create(grammar("root ::= [a-z]+"), vocab);
  const auto ab = *tok->encode("ab"), ax = *tok->encode("ax");
  std::vector<int32_t> history = {2, 7};  // a prompt
  REQUIRE(s.sync(history).ok());
  history.insert(history.end(), ab.begin(), ab.end());
  REQUIRE(s.sync(history).ok());
  CHECK(s.tokens() == ab);
  history.resize(2);
  history.insert(history.end(), ax.begin(), ax.end());
  REQUIRE(s.sync(history).ok());
  CHECK(s.tokens() == ax);
  history.push_back(byte('!'));
  CHECK_FALSE(s.sync(history).ok());

  // Budget: nothing longer than what can still be completed in the tokens left.
  auto b = *gemma2::GrammarConstraint::create(grammar("root ::= \"abcdef\" | \"x\""), vocab);
  REQUIRE(b.set_budget(1).ok());
  CHECK_FALSE(b.allows(byte('a')));  // "abcdef" cannot finish in one token
  CHECK(b.allows(byte('x')));
  REQUIRE(b.set_budget(6).ok());
  CHECK(b.allows(byte('a')));
  auto lenient = *gemma2::GrammarConstraint::create(grammar("root ::= \"abcdef\" | \"x\""), vocab);
  CHECK(lenient.allows(byte('a')));  // no budget
}

TEST_CASE("sampler: constrained choices follow the restricted distribution exactly") {
  const auto vocab = demo_vocab();
  const auto g = grammar("root ::= [a-m] [a-z]*");
  const std::vector<float> logits = demo_logits();
  const auto& history = kHistory;
  struct Case {
    const char* name;
    float temperature;
    int top_k;
  };
  for (const Case& k : {Case{"temperature 1", 1.0f, 0}, Case{"temperature 0.7", 0.7f, 0}, Case{"top-k 40", 1.0f, 40},
                        Case{"top-k 3 (may cut every allowed token)", 1.0f, 3}}) {
    INFO(std::string(k.name));
    gemma2::SamplingParams params;
    params.temperature = k.temperature;
    params.top_k = k.top_k;
    params.seed = 99;
    const auto want = restricted_distribution(g, logits, params);
    gemma2::Sampler s(params);
    s.constrain(*gemma2::GrammarConstraint::create(g, vocab));
    constexpr int kDraws = 20000;
    std::vector<int> counts(logits.size(), 0);
    for (int i = 0; i < kDraws; ++i) {
      std::vector<float> l = logits;
      const int32_t id = s(l, history);  // the same history each time: the constraint rewinds to its start
      REQUIRE(id >= 0);
      REQUIRE(want[static_cast<size_t>(id)] > 0);
      ++counts[static_cast<size_t>(id)];
    }
    const auto [chi2, bins] = chi_squared(want, counts, kDraws);
    if (bins < 2) {  // one allowed token holds (nearly) all the mass: every draw must be it
      const auto mode = static_cast<size_t>(std::max_element(want.begin(), want.end()) - want.begin());
      CHECK(want[mode] > 0.999);
      CHECK(counts[mode] >= kDraws - 20);
      continue;
    }
    const double p_value = chi_squared_p_value(chi2, bins);
    INFO("chi2 " << chi2 << " over " << bins << " bins, p = " << p_value);
    CHECK(p_value > 0.001);
  }
}

TEST_CASE("sampler: constrained greedy and a grammar processor in the chain choose the best allowed token") {
  const auto vocab = demo_vocab();
  const auto g = grammar("root ::= [a-m] [a-z]*");
  const std::vector<float> logits = demo_logits();
  const auto& history = kHistory;
  // Greedy: the best allowed token.
  gemma2::Sampler greedy;
  greedy.constrain(*gemma2::GrammarConstraint::create(g, vocab));
  std::vector<float> masked = logits;
  auto c = *gemma2::GrammarConstraint::create(g, vocab);
  c.apply(masked);
  std::vector<float> l = logits;
  CHECK(greedy(l, history) == gemma2::argmax(masked));

  // A processor in the chain (the slow path) masks the same tokens.
  gemma2::Sampler chained;
  chained.add(gemma2::processors::grammar(*gemma2::GrammarConstraint::create(g, vocab)));
  l = logits;
  CHECK(chained(l, history) == gemma2::argmax(masked));
  for (size_t i = 0; i < l.size(); ++i) CHECK((l[i] == -INFINITY) == (masked[i] == -INFINITY));
}

TEST_CASE("sampler: a grammar too ambiguous to follow is reported, never a hang, and no token left is an error") {
  const auto vocab = demo_vocab();
  const std::vector<float> logits = demo_logits();
  const auto& history = kHistory;
  // A grammar whose parse stacks multiply (found by fuzz_grammar) is
  // followed until one token's matching passes the step limit, then
  // reported, never a hang.
  {
    const auto amb = grammar("root ::= [^what\x02\"\\\"u\" [1-9a-fA-F]root{5}* | .");
    gemma2::Sampler s;
    s.constrain(*gemma2::GrammarConstraint::create(amb, vocab));
    std::vector<int32_t> h = {2};
    std::string message;
    for (int i = 0; i < 24 && message.empty(); ++i) {
      std::vector<float> row = logits;
      const int32_t id = s(row, h);
      if (id < 0) message = s.error();
      else h.push_back(id);
    }
    INFO(message);
    CHECK(message.find("too ambiguous to follow") != std::string::npos);
  }

  // No token left to choose: an error, not a token.
  auto few = gemma2::GrammarConstraint::create(grammar("root ::= \"a\""), vocab);
  std::vector<float> l = logits;
  std::fill(l.begin(), l.end(), -INFINITY);
  gemma2::Sampler banned;
  banned.constrain(*few);
  CHECK(banned(l, history) == -1);
  CHECK(banned.error().find("no token") != std::string::npos);
}

TEST_CASE("sampler: a copy of a constrained sampler has its own grammar state") {
  const auto vocab = demo_vocab();
  auto token = [&](std::string_view text) {
    for (int32_t id = 0; id < vocab->vocab_size(); ++id)
      if (vocab->kind(id) == gemma2::TokenTrie::Kind::Text && vocab->text(id) == text) return id;
    return int32_t{-1};
  };
  const int32_t a = token("a"), b = token("b");
  REQUIRE(a >= 0);
  REQUIRE(b >= 0);
  std::vector<float> logits(static_cast<size_t>(vocab->vocab_size()), -1.0f);
  logits[static_cast<size_t>(a)] = 5.0f;  // greedy takes "a" wherever the grammar allows it
  logits[static_cast<size_t>(b)] = 4.0f;

  gemma2::Sampler s;  // greedy
  s.constrain(*gemma2::GrammarConstraint::create(grammar("root ::= \"ab\" | \"ba\""), vocab));
  std::vector<int32_t> history = {2};
  std::vector<float> l = logits;
  REQUIRE(s(l, history) == a);
  history.push_back(a);

  gemma2::Sampler copy = s;
  gemma2::Sampler assigned;
  assigned = s;
  REQUIRE(copy.constraint() != nullptr);
  CHECK(copy.constraint() != s.constraint());
  CHECK(assigned.constraint() != s.constraint());

  l = logits;
  REQUIRE(s(l, history) == b);  // "a" may not follow "a"
  CHECK(s.finished());
  CHECK(s.constraint()->tokens().size() == 2);
  for (const gemma2::Sampler* other : {&copy, &assigned}) {  // still after "a"
    CHECK_FALSE(other->finished());
    CHECK(other->constraint()->tokens().size() == 1);
  }

  copy.unconstrain();
  CHECK(copy.constraint() == nullptr);
  REQUIRE(s.constraint() != nullptr);
  l = logits;
  CHECK(copy(l, history) == a);  // unconstrained: the plain argmax
  l = logits;
  CHECK(assigned(l, history) == b);
}

TEST_CASE("demo model: sampled completions under GBNF grammars pass their own parsers") {
  const int n = samples_per_grammar();
  for (const auto& c : gbnf_cases()) {
    INFO(c.name);
    sample_completions(grammar(c.gbnf), n, 48, [&](const std::string& text) { CHECK(c.check(text)); });
  }
  // A grammar of characters the demo tokenizer has no pieces for: byte
  // pieces spell them, and no character is left half written.
  sample_completions(grammar("root ::= \"\xC2\xAB\" [\\u00e0-\\u00ff]{2,4} \"\xC2\xBB\""), n, 24,
                     [](const std::string& text) {
                       CHECK(gemma2::detail::find_invalid_utf8(text) == std::string::npos);
                       CHECK(code_points(text) >= 4);
                     });
}
