// The gemma2 CLI's contracts, run as a user runs it: tokenize, generate
// (plain, seeded, speculative, constrained), chat, perplexity, and the
// errors every command gives for bad options.
#include <doctest/doctest.h>

#include <algorithm>
#include <regex>

#include "support.hpp"

#ifdef GEMMA2_CLI
namespace {

using test::cli;
using test::demo;
using test::last_line;

std::string joined(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// The schema of a game action (an enum, a bounded string, an optional
// integer) and a GBNF grammar of chess moves, written into `dir`.
struct ConstraintFiles {
  std::string schema, gbnf, bad;
  explicit ConstraintFiles(const std::string& dir)
      : schema(dir + "/action.json"), gbnf(dir + "/moves.gbnf"), bad(dir + "/bad.gbnf") {
    std::ofstream(schema) << R"({"type":"object","properties":{"action":{"enum":["attack","defend","flee"]},)"
                             R"("target":{"type":"string","maxLength":12},"amount":{"type":"integer"}},)"
                             R"("required":["action","target"],"additionalProperties":false})";
    std::ofstream(gbnf) << "root ::= move (\" \" move){0,3}\nmove ::= [KQRBN]? [a-h] [1-8]\n";
    std::ofstream(bad) << "root ::= move\n";
  }
};

}  // namespace

// The cases named "CLI contracts: ..." run again on every kernel set (tests/CMakeLists.txt).
TEST_CASE("CLI contracts: tokenize prints the reference ids of every tokenizer case") {
  const std::string tokfile = test::data_dir() + "/tokenizer/gemma2_tokenizer.model";
  const auto cases = test::read_json(test::data_dir() + "/tokenizer/cases.json");
  for (const auto& c : cases["cases"]) {
    const std::string text = c["text"];
    // Not passable as an argument (through cmd.exe on Windows: no line breaks).
    if (text.empty() || text.find('\0') != std::string::npos || !test::shell_can_pass(text)) continue;
    INFO(c["name"].get<std::string>());
    auto r = cli("tokenize --tokenizer " + tokfile + " --text " + test::shell_quote(text));
    REQUIRE(r.rc == 0);
    CHECK(last_line(r.out) == joined(c["ids"].get<std::vector<int32_t>>()));
  }
  CHECK(last_line(
            cli("tokenize --model " + std::string(GEMMA2_DEMO_MODEL) + " --text " + test::shell_quote("ROMEO:")).out) ==
        "836 4055");
}

TEST_CASE("CLI contracts: generate --prompt prints the reference greedy ids, and seeded sampling is reproducible") {
  const auto expected = test::read_json(std::string(GEMMA2_DEMO_MODEL) + "/expected.json");
  const auto& c0 = expected["cases"][0];
  if (test::shell_can_pass(c0["prompt"])) {
    auto g = cli("generate --model " + std::string(GEMMA2_DEMO_MODEL) + " --prompt " + test::shell_quote(c0["prompt"]) +
                 " --max-new 48 --greedy --print-ids");
    REQUIRE(g.rc == 0);
    CHECK(last_line(g.out) == joined(c0["greedy_ids"].get<std::vector<int32_t>>()));
    CHECK(g.out.find(c0["decoded"].get<std::string>()) == 0);  // the text streams first
    CHECK(g.err.find("tok/s") != std::string::npos);
  } else {
    MESSAGE("skipped generate --prompt with the demo's multi-line prompt: cmd.exe cannot pass a line break");
  }

  // Without --model the demo model is used; seeded sampling is reproducible.
  auto s1 =
      cli("generate --prompt " + test::shell_quote("ROMEO:") + " --max-new 20 --seed 7 --temperature 1.2 --print-ids");
  auto s2 =
      cli("generate --prompt " + test::shell_quote("ROMEO:") + " --max-new 20 --seed 7 --temperature 1.2 --print-ids");
  REQUIRE(s1.rc == 0);
  CHECK(s1.out == s2.out);
}

TEST_CASE("CLI contracts: speculative decoding changes the speed, never the ids") {
  // Greedy, and seeded sampling too (the same draws, row by row).
  const std::string rewrite = test::shell_quote("ROMEO: I will go. JULIET: Stay. ROMEO: I will go.");
  for (const std::string mode : {" --greedy", " --seed 11 --temperature 1.3"}) {
    auto plain = cli("generate --prompt " + rewrite + " --max-new 40 --print-ids" + mode);
    REQUIRE(plain.rc == 0);
    for (const std::string& spec :
         std::vector<std::string>{" --lookup 3", " --lookup 1 --draft-max 2",
                                  " --draft-model " + std::string(GEMMA2_DEMO_MODEL) + " --draft-max 4"}) {
      INFO(mode, spec);
      auto fast = cli("generate --prompt " + rewrite + " --max-new 40 --print-ids" + mode + spec);
      REQUIRE(fast.rc == 0);
      CHECK(last_line(fast.out) == last_line(plain.out));
      CHECK(test::contains(fast.err, "tokens per model pass"));
    }
  }
  auto bad_draft = cli("generate --prompt " + rewrite + " --draft-model " + test::golden_dir("gqa_f32"));
  CHECK(bad_draft.rc != 0);
  CHECK(test::contains(bad_draft.err, "they must share a tokenizer"));
  CHECK(cli("generate --prompt " + rewrite + " --lookup 2 --draft-max 0").rc != 0);
}

TEST_CASE("CLI contracts: perplexity prints the library's score, and one top-k row per token") {
  auto p = cli("perplexity --ids 2,836,4055,16,4052 --model " + std::string(GEMMA2_DEMO_MODEL));
  REQUIRE(p.rc == 0);
  const auto lib = gemma2::score(demo().model, {2, 836, 4055, 16, 4052}).value();
  const std::string line = last_line(p.out);
  REQUIRE(line.find("nll=") != std::string::npos);
  REQUIRE(line.find("ppl=") != std::string::npos);
  CHECK(std::stod(line.substr(line.find("nll=") + 4)) == doctest::Approx(lib.nll).epsilon(1e-4));
  CHECK(std::stod(line.substr(line.find("ppl=") + 4)) == doctest::Approx(lib.perplexity).epsilon(1e-4));

  test::TempDir tmp;
  std::ofstream(tmp.str() + "/text.txt") << "ROMEO:\nBut soft, what light through yonder window breaks?\n";
  auto f = cli("perplexity --text-file " + tmp.str() + "/text.txt --window 8 --top-k-out " + tmp.str() +
               "/top.jsonl --top-k 3");
  REQUIRE(f.rc == 0);
  std::ifstream top(tmp.str() + "/top.jsonl");
  std::string row;
  int rows = 0;
  while (std::getline(top, row)) {
    const auto j = nlohmann::json::parse(row);
    CHECK(j["top"].size() == 3);
    CHECK(j["index"] == ++rows);
  }
  CHECK(last_line(f.out).find("tokens=" + std::to_string(rows)) == 0);
}

TEST_CASE(
    "CLI contracts: perplexity --kl-reference measures a weight type and the int8 KV cache, bad values are errors") {
  auto kl = cli("perplexity --text-file " + std::string(GEMMA2_QUALITY_TEXT) + " --dtype q4 --kl-reference f32");
  REQUIRE(kl.rc == 0);
  CHECK(last_line(kl.out).find(" kl=0.00") != std::string::npos);
  CHECK(last_line(kl.out).find(" top1=0.9") != std::string::npos);
  // The int8 KV cache against the float one (same weights): small but not zero.
  auto kv8 = cli("perplexity --text-file " + std::string(GEMMA2_QUALITY_TEXT) + " --kv-cache int8 --kl-reference f32");
  REQUIRE(kv8.rc == 0);
  const std::string kv8_line = last_line(kv8.out);
  REQUIRE(kv8_line.find(" kl=") != std::string::npos);
  const double kv8_kl = std::stod(kv8_line.substr(kv8_line.find(" kl=") + 4));
  CHECK(kv8_kl > 0.0);
  CHECK(kv8_kl < 1e-3);
  CHECK(cli("generate --prompt x --kv-cache q4").err.find("--kv-cache") != std::string::npos);
  CHECK(cli("generate --prompt x --dtype q3").rc != 0);

  CHECK(cli("generate --prompt x --ids 2").rc != 0);
  CHECK(cli("generate --prompt x --top-p 0").err.find("top-p") != std::string::npos);
  CHECK(cli("perplexity --text-file /nonexistent").err.find("/nonexistent does not exist") != std::string::npos);
  CHECK(cli("tokenize --text x --tokenizer /nonexistent").rc != 0);
}

TEST_CASE("CLI: chat holds a three-turn conversation and never re-reads earlier turns") {
  auto r = cli("chat --greedy --max-new 24 --verbose", "Good morrow, sir.\nWhat news?\n\nFarewell.\n");
  REQUIRE(r.rc == 0);
  std::vector<int> prefill;
  for (size_t at = r.err.find("[turn "); at != std::string::npos; at = r.err.find("[turn ", at + 1))
    prefill.push_back(std::stoi(r.err.substr(r.err.find("prefill ", at) + 8)));
  REQUIRE(prefill.size() == 3);
  const auto& tok = demo().tok;
  // Turn 1: BOS + its own template. Later turns: their own template plus the
  // closing of the previous reply, never the earlier conversation.
  CHECK(prefill[0] == static_cast<int>(tok.encode_prompt("<start_of_turn>user\nGood morrow, sir.<end_of_turn>\n"
                                                         "<start_of_turn>model\n")
                                           ->size()));
  const int turn2 =
      static_cast<int>(tok.encode("\n<start_of_turn>user\nWhat news?<end_of_turn>\n<start_of_turn>model\n")->size());
  CHECK(prefill[1] >= turn2 + 1);
  CHECK(prefill[1] <= turn2 + 2);
  CHECK(r.err.find("cached") != std::string::npos);
  // Three replies on stdout.
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') >= 3);
}

TEST_CASE("CLI: chat --delimiter ends each reply with a line of its own") {
  const std::string delimiter = "=== end of reply ===", turns = "Good morrow, sir.\nWhat news?\n";
  auto plain = cli("chat --greedy --max-new 16", turns);
  auto marked = cli("chat --greedy --max-new 16 --delimiter " + test::shell_quote(delimiter), turns);
  REQUIRE(plain.rc == 0);
  REQUIRE(marked.rc == 0);
  INFO(marked.out);
  // The same replies (greedy), each followed by the delimiter line.
  std::string replies = marked.out;
  int delimiters = 0;
  for (size_t at; (at = replies.find("\n" + delimiter + "\n")) != std::string::npos; ++delimiters)
    replies.erase(at + 1, delimiter.size() + 1);
  CHECK(delimiters == 2);
  CHECK(replies == plain.out);
  CHECK(marked.out.size() > delimiter.size() + 1);
  CHECK(marked.out.substr(marked.out.size() - delimiter.size() - 1) == delimiter + "\n");
  CHECK(test::contains(cli("chat --help").out, "--delimiter"));
}

TEST_CASE("CLI: chat --context-shift goes on past a full context, and without it the chat ends there") {
  std::string turns;
  for (int i = 0; i < 12; ++i) turns += i % 2 ? "What news from the court?\n" : "Speak, good fool.\n";
  const std::string args = "chat --greedy --max-new 24 --context 96 --system \"You are the fool.\" --delimiter ---";
  auto full = cli(args, turns);
  CHECK(full.rc == 1);
  CHECK((test::contains(full.err, "context is full") || test::contains(full.err, "context overflow")));
  auto shifted = cli(args + " --context-shift --verbose", turns);
  INFO(shifted.err);
  REQUIRE(shifted.rc == 0);
  CHECK(std::count(shifted.out.begin(), shifted.out.end(), '-') >= 36);  // 12 delimiter lines
  int turns_seen = 0;
  for (size_t at = shifted.err.find("cached "); at != std::string::npos; at = shifted.err.find("cached ", at + 1)) {
    CHECK(std::stoi(shifted.err.substr(at + 7)) <= 96);
    ++turns_seen;
  }
  CHECK(turns_seen == 12);
  CHECK(test::contains(cli("chat --context 1", "hi\n").err, "--context: must be >= 2, got 1"));
  CHECK(test::contains(cli("chat --context 100000", "hi\n").err, "exceeds the model's context of 2048"));
}

TEST_CASE("CLI: every error exits non-zero: numeric options out of range name the option and the range") {
  struct Bad {
    const char* args;
    const char* message;
  };
  const Bad cases[] = {
      {"generate --prompt x --lookup 0", "--lookup: must be >= 1, got 0"},
      {"generate --prompt x --draft-max 10", "--draft-max: must be from 1 to 6, got 10"},
      {"chat --draft-max 0", "--draft-max: must be from 1 to 6, got 0"},
      {"generate --prompt x --max-new -1", "--max-new: must be >= 0, got -1"},
      {"chat --max-new 0", "--max-new: must be >= 1, got 0"},
      {"generate --prompt x --threads 0", "--threads: must be from 1 to 512, got 0"},
      {"generate --prompt x --temperature -1", "--temperature: must be >= 0, got -1"},
      {"generate --prompt x --top-k -1", "--top-k: must be >= 0, got -1"},
      {"chat --top-p 1.5", "--top-p: must be in (0, 1], got 1.5"},
      {"generate --prompt x --min-p 1", "--min-p: must be in [0, 1), got 1"},
      {"generate --prompt x --repeat-penalty 0", "--repeat-penalty: must be > 0, got 0"},
      {"generate --prompt x --presence-penalty nan", "--presence-penalty: must be finite, got nan"},
      {"generate --prompt x --repeat-last-n -2", "--repeat-last-n: must be >= 0, got -2"},
      {"generate --prompt x --seed -1", "--seed: must be >= 0, got -1"},
      {"generate --prompt x --max-memory -1G", "--max-memory: must be >= 0, got -1G"},
      {"generate --ids 2,-5", "--ids: must be >= 0, got -5"},
      {"generate --prompt x --logit-bias 4096=1", "--logit-bias: token id 4096 is outside the vocabulary [0, 4096)"},
      {"generate --prompt x --logit-bias 5=nan", "--logit-bias takes ID=BIAS"},
      {"perplexity --ids 2,3 --window -1", "--window: must be >= 0, got -1"},
      {"perplexity --ids 2,3 --stride -1", "--stride: must be >= 0, got -1"},
      {"perplexity --ids 2,3 --top-k 0", "--top-k: must be >= 1, got 0"},
      {"logits --ids 2,-1 --out x", "--ids: must be >= 0, got -1"},
      {"bench --prompt 0", "--prompt: must be >= 1, got 0"},
      {"bench --gen 0", "--gen: must be >= 1, got 0"},
      {"bench --depth -1", "--depth: must be >= 0, got -1"},
      {"info --context 0", "--context: must be >= 1, got 0"},
  };
  for (const Bad& b : cases) {
    auto r = cli(b.args);
    INFO(std::string(b.args), " -> exit ", r.rc, ": ", r.err);
    CHECK(r.rc != 0);
    CHECK(test::contains(r.err, b.message));
  }

  // A turn that fails ends the chat with an error: the conversation cannot
  // go on from a reply the session holds and the chat does not.
  std::string long_line;
  for (int i = 0; i < 3000; ++i) long_line += "ROMEO ";
  auto failed = cli("chat --greedy --max-new 4", long_line + "\nGood morrow.\n");
  CHECK(failed.rc == 1);
  CHECK(test::contains(failed.err, "gemma2: "));
  CHECK(failed.out == "\n");  // no reply to the second line
}

TEST_CASE("CLI: generate --json-schema prints exactly the JSON, and --print-ids puts the ids on a line of their own") {
  test::TempDir tmp;
  const ConstraintFiles files(tmp.str());
  for (int seed = 1; seed <= 6; ++seed) {
    INFO("seed " << seed);
    auto r = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --json-schema " + files.schema +
                 " --max-new 40 --temperature 1 --seed " + std::to_string(seed));
    REQUIRE(r.rc == 0);
    INFO(r.out);
    const auto v = nlohmann::json::parse(r.out, nullptr, false);  // the whole of stdout is the JSON
    REQUIRE_FALSE(v.is_discarded());
    CHECK(r.out.back() == '}');
    CHECK(v.at("action").is_string());
    CHECK(v.at("target").get<std::string>().size() <= 12);
    for (const auto& [key, value] : v.items()) CHECK((key == "action" || key == "target" || key == "amount"));
    CHECK(r.err.find("stop: complete") != std::string::npos);
  }
  // --print-ids: the ids are a line of their own after the JSON, which
  // ends without a newline of its own.
  auto with_ids = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --json-schema " + files.schema +
                      " --max-new 40 --temperature 1 --seed 1 --print-ids");
  REQUIRE(with_ids.rc == 0);
  INFO(with_ids.out);
  const std::string ids_line = last_line(with_ids.out);
  CHECK(std::regex_match(ids_line, std::regex("[0-9]+( [0-9]+)*")));
  REQUIRE(with_ids.out.size() > ids_line.size() + 2);
  const std::string json_text = with_ids.out.substr(0, with_ids.out.size() - ids_line.size() - 2);
  CHECK(with_ids.out.substr(json_text.size()) == "\n" + ids_line + "\n");
  CHECK_FALSE(nlohmann::json::parse(json_text, nullptr, false).is_discarded());
}

TEST_CASE(
    "CLI: a --max-new too small for the schema is an error naming the budget and the shortest completion, before any "
    "text") {
  test::TempDir tmp;
  const ConstraintFiles files(tmp.str());
  auto constraint = gemma2::GrammarConstraint::create(
      gemma2::json_schema_grammar(test::read_text(files.schema)).value(), gemma2::TokenTrie::build(demo().tok));
  REQUIRE(constraint.ok());
  const std::string too_small =
      "--max-new: grammar: a budget of 5 tokens is too small: the shortest completion takes " +
      std::to_string(constraint->min_tokens_to_complete()) + " tokens";
  auto tight =
      cli("generate --prompt " + test::shell_quote("ROMEO:") + " --json-schema " + files.schema + " --max-new 5");
  CHECK(tight.rc == 1);
  CHECK(test::contains(tight.err, too_small));
  CHECK(tight.out.empty());
  // Chat stops there too, and says it once, not per turn.
  auto tight_chat = cli("chat --json-schema " + files.schema + " --max-new 5", "Your move?\nAnd now?\n");
  CHECK(tight_chat.rc == 1);
  CHECK(test::contains(tight_chat.err, too_small));
  CHECK(tight_chat.err.find(too_small) == tight_chat.err.rfind(too_small));
  CHECK(tight_chat.out.empty());
}

TEST_CASE("CLI: generate and chat with --grammar-file print exactly the constrained text, bad files are errors") {
  test::TempDir tmp;
  const ConstraintFiles files(tmp.str());
  const std::regex moves("[KQRBN]?[a-h][1-8]( [KQRBN]?[a-h][1-8]){0,3}");
  auto g = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --grammar-file " + files.gbnf +
               " --max-new 8 --seed 3");
  REQUIRE(g.rc == 0);
  CHECK(std::regex_match(g.out, moves));
  auto chat = cli("chat --grammar-file " + files.gbnf + " --max-new 12 --seed 2", "Your move?\nAnd now?\n");
  REQUIRE(chat.rc == 0);
  std::istringstream lines(chat.out);
  int replies = 0;
  for (std::string line; std::getline(lines, line); ++replies) {
    INFO(line);
    CHECK(std::regex_match(line, moves));
  }
  CHECK(replies == 2);
  auto e = cli("generate --prompt x --grammar-file " + files.bad);
  CHECK(e.rc == 1);
  CHECK(e.err.find("bad.gbnf: grammar: line 1, column 10: undefined rule 'move'") != std::string::npos);
  e = cli("generate --prompt x --json-schema " + tmp.str() + "/missing.json");
  CHECK(e.rc == 1);
  CHECK(e.err.find("missing.json") != std::string::npos);
  e = cli("generate --prompt x --json-schema " + files.schema + " --grammar-file " + files.gbnf);
  CHECK(e.rc != 0);
}

TEST_CASE("CLI: generate --json-whitespace: compact by default, free lets the model indent, bounds hold either way") {
  test::TempDir tmp;
  const std::string schema = tmp.str() + "/report.json";
  std::ofstream(schema) << R"({"type":"object","properties":{"urgency":{"type":"integer","minimum":0,"maximum":9},)"
                           R"("line":{"type":"integer","minimum":1},"day":{"type":"string","format":"date"}},)"
                           R"("required":["urgency","line","day"],"additionalProperties":false})";
  auto spaces = [](const std::string& text) {  // whitespace outside strings
    size_t n = 0;
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
      if (in_string && text[i] == '\\') ++i;
      else if (text[i] == '"') in_string = !in_string;
      else if (!in_string && std::isspace(static_cast<unsigned char>(text[i]))) ++n;
    }
    return n;
  };
  size_t free_spaces = 0;
  for (const char* ws : {"", " --json-whitespace compact", " --json-whitespace free"})
    for (int seed = 1; seed <= 3; ++seed) {
      auto r = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --json-schema " + schema + ws +
                   " --max-new 48 --temperature 1 --seed " + std::to_string(seed));
      INFO(ws << " seed " << seed << ": " << r.out << r.err);
      REQUIRE(r.rc == 0);
      const auto v = nlohmann::json::parse(r.out, nullptr, false);
      REQUIRE_FALSE(v.is_discarded());
      CHECK((v.at("urgency").is_number_integer() && v["urgency"].get<int>() >= 0 && v["urgency"].get<int>() <= 9));
      CHECK((v.at("line").is_number_integer() && v["line"].get<long long>() >= 1));
      CHECK(std::regex_match(v.at("day").get<std::string>(), std::regex("[0-9]{4}-[0-9]{2}-[0-9]{2}")));
      if (std::string(ws).find("free") == std::string::npos) CHECK(spaces(r.out) == 0);
      else free_spaces += spaces(r.out);
    }
  CHECK(free_spaces > 0);
  auto e = cli("generate --prompt x --json-schema " + schema + " --json-whitespace tabs");
  CHECK(e.rc != 0);
  CHECK(e.err.find("--json-whitespace") != std::string::npos);
  e = cli("generate --prompt x --json-whitespace free");
  CHECK(e.rc != 0);
  CHECK(e.err.find("--json-schema") != std::string::npos);
}
#endif
