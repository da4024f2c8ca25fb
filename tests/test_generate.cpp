// Generation, chat and scoring on the built-in demo model, checked against
// its reference greedy outputs and against recomputation from scratch.
#include <doctest/doctest.h>

#include <cstdlib>
#include <regex>

#include "support.hpp"

namespace {

using Model = gemma2::Gemma2Model<>;

struct Demo {
  Model model;
  gemma2::Tokenizer tok;
};

const Demo& demo() {
  static const Demo d = [] {
    auto m = Model::load(GEMMA2_DEMO_MODEL);
    REQUIRE_MESSAGE(m.ok(), m.message());
    auto t = gemma2::Tokenizer::from_model_dir(GEMMA2_DEMO_MODEL);
    REQUIRE_MESSAGE(t.ok(), t.message());
    return Demo{std::move(*m), std::move(*t)};
  }();
  return d;
}

gemma2::Result<gemma2::GenerateResult> run(const std::vector<int32_t>& prompt, gemma2::GenerateOptions o,
                                           const std::function<bool(std::string_view)>& on_text = {}) {
  auto kv = demo().model.make_cache();
  REQUIRE(kv.ok());
  gemma2::TokenHistory history;
  return gemma2::generate(demo().model, *kv, history, prompt, gemma2::Sampler(), o, &demo().tok, on_text);
}

std::vector<int32_t> prompt_ids(const std::string& text) { return demo().tok.encode_prompt(text).value(); }

}  // namespace

TEST_CASE("demo model: every reference greedy continuation, token for token") {
  const auto expected = test::read_json(std::string(GEMMA2_DEMO_MODEL) + "/expected.json");
  REQUIRE(expected["cases"].size() >= 3);
  for (const auto& c : expected["cases"]) {
    INFO(c["prompt"].get<std::string>());
    const auto ids = prompt_ids(c["prompt"].get<std::string>());
    CHECK(ids == c["prompt_ids"].get<std::vector<int32_t>>());
    gemma2::GenerateOptions o;
    o.max_new_tokens = c["n_new_tokens"].get<int>();
    auto r = run(ids, o);
    REQUIRE(r.ok());
    CHECK(r->tokens == c["greedy_ids"].get<std::vector<int32_t>>());
    CHECK(r->text == c["decoded"].get<std::string>());
    CHECK(r->stop == gemma2::StopReason::MaxTokens);
  }
}

TEST_CASE("generate: stop tokens, stop strings, callback, cancellation, full context") {
  const auto ids = prompt_ids("ROMEO:\n");  // greedy: "I'll tell you, sir, I'll not be a man.\n\nKING ..."
  gemma2::GenerateOptions o;
  o.max_new_tokens = 48;
  SUBCASE("stop token") {
    o.stop_tokens = {4047};  // ","
    auto r = run(ids, o);
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::StopToken);
    CHECK(r->tokens.back() == 4047);
    CHECK(r->text == "I'll tell you");
  }
  SUBCASE("stop string, never partly printed") {
    o.stop_strings = {"sir, I"};
    std::string streamed;
    auto r = run(ids, o, [&](std::string_view t) {
      streamed += t;
      return true;
    });
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::StopString);
    CHECK(r->text == "I'll tell you, ");
    CHECK(streamed == r->text);
  }
  SUBCASE("callback stops generation") {
    int calls = 0;
    auto r = run(ids, o, [&](std::string_view) { return ++calls < 3; });
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::Callback);
    CHECK(calls == 3);
  }
  SUBCASE("cancellation between steps and before prefill chunks") {
    std::atomic<bool> cancel{false};
    o.cancel = &cancel;
    auto r = run(ids, o, [&](std::string_view) {
      cancel = true;
      return true;
    });
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::Cancelled);
    CHECK(r->tokens.size() == 1);
    auto r2 = run(ids, o);  // already set: the prefill does not run
    REQUIRE(r2.ok());
    CHECK(r2->stop == gemma2::StopReason::Cancelled);
    CHECK(r2->tokens.empty());
  }
  SUBCASE("a full cache ends generation with a reason, not an error") {
    auto kv = demo().model.make_cache(10);
    gemma2::TokenHistory h;
    auto r = gemma2::generate(demo().model, *kv, h, ids, gemma2::Sampler(), o, &demo().tok);
    REQUIRE(r.ok());
    CHECK(r->stop == gemma2::StopReason::ContextFull);
    CHECK(kv->size() == 10);
    CHECK(r->tokens.size() == 7);  // 4 prompt positions + 6 decoded; the 7th token is sampled, not run
  }
}

TEST_CASE("generate: continuing a sequence in several calls equals one call, and any callable samples") {
  const auto ids = prompt_ids("First Citizen:\n");
  gemma2::GenerateOptions o;
  o.max_new_tokens = 30;
  auto whole = run(ids, o);
  REQUIRE(whole.ok());

  auto kv = demo().model.make_cache();
  gemma2::TokenHistory history;
  // A user-written greedy sampler that also checks it sees the whole history.
  size_t calls = 0;
  auto my_sampler = [&](std::vector<float>& logits, const gemma2::TokenHistory& h) {
    CHECK(h.size() == ids.size() + calls++);
    return gemma2::argmax(logits);
  };
  o.max_new_tokens = 12;
  auto a = gemma2::generate(demo().model, *kv, history, ids, my_sampler, o);
  REQUIRE(a.ok());
  CHECK(kv->size() == static_cast<int>(history.size()) - 1);  // the last token is pending
  o.max_new_tokens = 18;
  auto b = gemma2::generate(demo().model, *kv, history, {}, my_sampler, o);
  REQUIRE(b.ok());
  CHECK(b->prefill_tokens == 1);
  std::vector<int32_t> joined = a->tokens;
  joined.insert(joined.end(), b->tokens.begin(), b->tokens.end());
  CHECK(joined == whole->tokens);

  gemma2::TokenHistory h2;
  auto bad = gemma2::generate(demo().model, *kv, h2, ids, my_sampler, o);
  CHECK(bad.message().find("history has") != std::string::npos);
  auto out_of_range = gemma2::generate(
      demo().model, *kv, history, {}, [](std::vector<float>&, const gemma2::TokenHistory&) { return 99999; }, o);
  CHECK(out_of_range.message().find("outside the vocabulary") != std::string::npos);
}

TEST_CASE("chat keeps the cache between turns and matches a fresh run over the whole conversation") {
  const auto& d = demo();
  gemma2::Chat<Model> chat(gemma2::Session<Model>::create(d.model).value(), d.tok, "Speak as a king.");
  gemma2::GenerateOptions o;
  o.max_new_tokens = 20;
  auto t1 = chat.send("Who are you?", gemma2::Sampler(), o);
  REQUIRE(t1.ok());
  const int after_first = chat.cache().size();
  auto t2 = chat.send("Tell me more.", gemma2::Sampler(), o);
  REQUIRE(t2.ok());
  // The second turn ran only its own tokens (plus the pending end of the first reply).
  const auto turn2 = d.tok.encode("\n<start_of_turn>user\nTell me more.<end_of_turn>\n<start_of_turn>model\n").value();
  const size_t closing = t1->stop == gemma2::StopReason::StopToken ? 1 : 1 + d.tok.encode("<end_of_turn>")->size();
  CHECK(t2->prefill_tokens == static_cast<int>(turn2.size() + closing));
  CHECK(t2->prefill_tokens < after_first);
  // The first turn carries the system text.
  const auto first = d.tok.encode_prompt(gemma2::format_chat({{gemma2::Role::System, "Speak as a king."},
                                                               {gemma2::Role::User, "Who are you?"}})
                                             .value())
                         .value();
  CHECK(std::vector<int32_t>(chat.history().begin(), chat.history().begin() + first.size()) == first);
  // Greedy over the whole history from an empty cache gives the same reply.
  const auto& h = chat.history();
  const size_t reply_start = h.size() - t2->tokens.size();
  auto fresh = run(std::vector<int32_t>(h.begin(), h.begin() + reply_start), [&] {
    auto f = o;
    f.stop_tokens = gemma2::default_stop_tokens(d.tok);
    return f;
  }());
  REQUIRE(fresh.ok());
  CHECK(fresh->tokens == t2->tokens);
  CHECK(chat.messages().size() == 4);
  CHECK(chat.messages()[3].content == t2->text);
}

TEST_CASE("scoring: log-probabilities, windows and top-k agree with recomputation") {
  const auto& d = demo();
  const auto ids = prompt_ids("KING HENRY VI:\nWhat, will the aspiring blood of Lancaster\nSink in the ground?");
  const int V = d.model.config().vocab_size;
  auto kv = d.model.make_cache();
  gemma2::ForwardOptions fo;
  fo.all_logits = true;
  const auto logits = d.model.forward(ids, *kv, fo).value();
  auto manual = [&](const gemma2::Activations& l, Eigen::Index row, int32_t target) {
    const double m = l.row(row).maxCoeff();
    const double z = (l.row(row).array().cast<double>() - m).exp().sum();
    return l(row, target) - m - std::log(z);
  };

  std::vector<gemma2::TokenPrediction> preds;
  gemma2::ScoreOptions so;
  so.top_k = 5;
  auto one = gemma2::score(d.model, ids, so, [&](const gemma2::TokenPrediction& p) { preds.push_back(p); });
  REQUIRE(one.ok());
  REQUIRE(one->logprobs.size() == ids.size() - 1);
  CHECK(one->forward_passes == 1);
  double nll = 0;
  for (size_t t = 1; t < ids.size(); ++t) {
    CHECK(one->logprobs[t - 1] == doctest::Approx(manual(logits, static_cast<Eigen::Index>(t - 1), ids[t])).epsilon(1e-4));
    nll -= one->logprobs[t - 1];
    const auto& p = preds[t - 1];
    CHECK(p.index == static_cast<int64_t>(t));
    CHECK(p.top.size() == 5);
    CHECK(std::is_sorted(p.top.begin(), p.top.end(), [](auto a, auto b) { return a.second > b.second; }));
    Eigen::Index best;
    logits.row(static_cast<Eigen::Index>(t - 1)).maxCoeff(&best);
    CHECK(p.top[0].first == best);
  }
  CHECK(one->nll == doctest::Approx(nll / (ids.size() - 1)));
  CHECK(one->perplexity == doctest::Approx(std::exp(one->nll)));

  // Windows of 8 positions, 3 new tokens each: every token is still scored
  // once, each from its own window [BOS] + text[begin, end).
  so.window = 8;
  so.stride = 3;
  so.top_k = 0;
  std::vector<gemma2::TokenPrediction> wp;
  auto windowed = gemma2::score(d.model, ids, so, [&](const gemma2::TokenPrediction& p) { wp.push_back(p); });
  REQUIRE(windowed.ok());
  REQUIRE(windowed->logprobs.size() == ids.size() - 1);
  CHECK(windowed->forward_passes > 1);
  for (size_t i = 0; i < wp.size(); ++i) CHECK(wp[i].index == static_cast<int64_t>(i + 1));
  const int64_t t = static_cast<int64_t>(ids.size()) - 2;  // the last text token, scored by the last window
  const int64_t begin = t + 1 - 7;
  std::vector<int32_t> win = {ids[0]};
  win.insert(win.end(), ids.begin() + 1 + begin, ids.end());
  auto kv2 = d.model.make_cache();
  const auto wl = d.model.forward(win, *kv2, fo).value();
  CHECK(windowed->logprobs.back() ==
        doctest::Approx(manual(wl, static_cast<Eigen::Index>(win.size() - 2), ids.back())).epsilon(1e-4));
  (void)V;

  CHECK(gemma2::score(d.model, {2}).message().find("at least 2 tokens") != std::string::npos);
  so.stride = 9;
  CHECK(gemma2::score(d.model, ids, so).message().find("stride") != std::string::npos);
}

#ifdef GEMMA2_CLI
namespace {
struct CliRun {
  int rc;
  std::string out, err;
};
CliRun cli(const std::string& args, const std::string& stdin_text = "") {
  test::TempDir tmp;
  const std::string in = tmp.str() + "/in", out = tmp.str() + "/out", err = tmp.str() + "/err";
  std::ofstream(in) << stdin_text;
  const int rc = test::run_command(std::string(GEMMA2_CLI) + " " + args + " < " + in + " > " + out + " 2> " + err);
  return {rc, test::read_text(out), test::read_text(err)};
}
std::string last_line(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s.substr(s.rfind('\n') + 1);
}
}  // namespace

TEST_CASE("CLI: tokenize, generate --prompt, perplexity contracts") {
  const std::string tokfile = test::data_dir() + "/tokenizer/gemma2_tokenizer.model";
  const auto cases = test::read_json(test::data_dir() + "/tokenizer/cases.json");
  for (const auto& c : cases["cases"]) {
    const std::string text = c["text"];
    // Not passable as an argument (through cmd.exe on Windows: no line breaks).
    if (text.empty() || text.find('\0') != std::string::npos || !test::shell_can_pass(text)) continue;
    INFO(c["name"].get<std::string>());
    auto r = cli("tokenize --tokenizer " + tokfile + " --text " + test::shell_quote(text));
    REQUIRE(r.rc == 0);
    std::string want;
    for (int32_t id : c["ids"].get<std::vector<int32_t>>()) want += (want.empty() ? "" : " ") + std::to_string(id);
    CHECK(last_line(r.out) == want);
  }
  CHECK(last_line(cli("tokenize --model " + std::string(GEMMA2_DEMO_MODEL) + " --text " + test::shell_quote("ROMEO:")).out) == "836 4055");

  const auto expected = test::read_json(std::string(GEMMA2_DEMO_MODEL) + "/expected.json");
  const auto& c0 = expected["cases"][0];
  if (test::shell_can_pass(c0["prompt"])) {
    auto g = cli("generate --model " + std::string(GEMMA2_DEMO_MODEL) + " --prompt " + test::shell_quote(c0["prompt"]) +
                 " --max-new 48 --greedy --print-ids");
    REQUIRE(g.rc == 0);
    std::string want;
    for (int32_t id : c0["greedy_ids"].get<std::vector<int32_t>>()) want += (want.empty() ? "" : " ") + std::to_string(id);
    CHECK(last_line(g.out) == want);
    CHECK(g.out.find(c0["decoded"].get<std::string>()) == 0);  // the text streams first
    CHECK(g.err.find("tok/s") != std::string::npos);
  } else {
    MESSAGE("skipped generate --prompt with the demo's multi-line prompt: cmd.exe cannot pass a line break");
  }

  // Without --model the demo model is used; seeded sampling is reproducible.
  auto s1 = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --max-new 20 --seed 7 --temperature 1.2 --print-ids");
  auto s2 = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --max-new 20 --seed 7 --temperature 1.2 --print-ids");
  REQUIRE(s1.rc == 0);
  CHECK(s1.out == s2.out);

  // Speculative decoding changes the speed, never the ids: greedy, and
  // seeded sampling too (the same draws, row by row).
  const std::string rewrite = test::shell_quote("ROMEO: I will go. JULIET: Stay. ROMEO: I will go.");
  for (const std::string mode : {" --greedy", " --seed 11 --temperature 1.3"}) {
    auto plain = cli("generate --prompt " + rewrite + " --max-new 40 --print-ids" + mode);
    REQUIRE(plain.rc == 0);
    for (const std::string& spec : std::vector<std::string>{
             " --lookup 3", " --lookup 1 --draft-max 2", " --draft-model " + std::string(GEMMA2_DEMO_MODEL) + " --draft-max 4"}) {
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
                                                         "<start_of_turn>model\n")->size()));
  const int turn2 = static_cast<int>(tok.encode("\n<start_of_turn>user\nWhat news?<end_of_turn>\n<start_of_turn>model\n")->size());
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

TEST_CASE("CLI: generate and chat with --json-schema and --grammar-file print exactly the constrained text") {
  test::TempDir tmp;
  const std::string schema = tmp.str() + "/action.json", gbnf = tmp.str() + "/moves.gbnf", bad = tmp.str() + "/bad.gbnf";
  std::ofstream(schema) << R"({"type":"object","properties":{"action":{"enum":["attack","defend","flee"]},)"
                           R"("target":{"type":"string","maxLength":12},"amount":{"type":"integer"}},)"
                           R"("required":["action","target"],"additionalProperties":false})";
  std::ofstream(gbnf) << "root ::= move (\" \" move){0,3}\nmove ::= [KQRBN]? [a-h] [1-8]\n";
  std::ofstream(bad) << "root ::= move\n";
  for (int seed = 1; seed <= 6; ++seed) {
    INFO("seed " << seed);
    auto r = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --json-schema " + schema +
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
  auto with_ids = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --json-schema " + schema +
                      " --max-new 40 --temperature 1 --seed 1 --print-ids");
  REQUIRE(with_ids.rc == 0);
  INFO(with_ids.out);
  const std::string ids_line = last_line(with_ids.out);
  CHECK(std::regex_match(ids_line, std::regex("[0-9]+( [0-9]+)*")));
  REQUIRE(with_ids.out.size() > ids_line.size() + 2);
  const std::string json_text = with_ids.out.substr(0, with_ids.out.size() - ids_line.size() - 2);
  CHECK(with_ids.out.substr(json_text.size()) == "\n" + ids_line + "\n");
  CHECK_FALSE(nlohmann::json::parse(json_text, nullptr, false).is_discarded());

  // A --max-new too small for the schema is an error naming the budget and
  // the shortest completion, before any text; chat stops there too.
  auto constraint = gemma2::GrammarConstraint::create(
      gemma2::json_schema_grammar(test::read_text(schema)).value(), gemma2::TokenTrie::build(demo().tok));
  REQUIRE(constraint.ok());
  const std::string too_small = "--max-new: grammar: a budget of 5 tokens is too small: the shortest completion takes " +
                                std::to_string(constraint->min_tokens_to_complete()) + " tokens";
  auto tight = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --json-schema " + schema + " --max-new 5");
  CHECK(tight.rc == 1);
  CHECK(test::contains(tight.err, too_small));
  CHECK(tight.out.empty());
  auto tight_chat = cli("chat --json-schema " + schema + " --max-new 5", "Your move?\nAnd now?\n");
  CHECK(tight_chat.rc == 1);
  CHECK(test::contains(tight_chat.err, too_small));
  CHECK(tight_chat.err.find(too_small) == tight_chat.err.rfind(too_small));  // said once, not per turn
  CHECK(tight_chat.out.empty());

  const std::regex moves("[KQRBN]?[a-h][1-8]( [KQRBN]?[a-h][1-8]){0,3}");
  auto g = cli("generate --prompt " + test::shell_quote("ROMEO:") + " --grammar-file " + gbnf + " --max-new 8 --seed 3");
  REQUIRE(g.rc == 0);
  CHECK(std::regex_match(g.out, moves));
  auto chat = cli("chat --grammar-file " + gbnf + " --max-new 12 --seed 2", "Your move?\nAnd now?\n");
  REQUIRE(chat.rc == 0);
  std::istringstream lines(chat.out);
  int replies = 0;
  for (std::string line; std::getline(lines, line); ++replies) {
    INFO(line);
    CHECK(std::regex_match(line, moves));
  }
  CHECK(replies == 2);
  auto e = cli("generate --prompt x --grammar-file " + bad);
  CHECK(e.rc == 1);
  CHECK(e.err.find("bad.gbnf: grammar: line 1, column 10: undefined rule 'move'") != std::string::npos);
  e = cli("generate --prompt x --json-schema " + tmp.str() + "/missing.json");
  CHECK(e.rc == 1);
  CHECK(e.err.find("missing.json") != std::string::npos);
  e = cli("generate --prompt x --json-schema " + schema + " --grammar-file " + gbnf);
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

TEST_CASE("weight types converted at load keep the demo model's predictions") {
  const std::string text = test::read_text(GEMMA2_QUALITY_TEXT);
  const auto ids = demo().tok.encode_prompt(text).value();
  auto pool = gemma2::ThreadPool::create(2).value();
  std::vector<std::string> logs;
  auto with = [&](gemma2::DType t) {
    gemma2::LoadOptions lo;
    lo.weight_type = t;
    lo.pool = &pool;
    lo.log = [&](gemma2::LogLevel, const std::string& m) { logs.push_back(m); };
    auto m = Model::load(GEMMA2_DEMO_MODEL, lo);
    REQUIRE_MESSAGE(m.ok(), m.message());
    return std::move(*m);
  };
  gemma2::ScoreOptions so;
  so.pool = &pool;
  const Model f32 = with(gemma2::DType::F32);
  CHECK(f32.weight_bytes() == 2 * demo().model.weight_bytes());
  // The demo weights are BF16, so widening them is exact; the BF16 GEMM keeps
  // ~16 significant bits of each activation, so the logits agree closely.
  auto same = gemma2::compare_logits(demo().model, f32, ids, so).value();
  CHECK(same.kl < 1e-9);
  CHECK(same.top1_agreement == 1.0);
  const Model q8 = with(gemma2::DType::Q8_0), q4 = with(gemma2::DType::Q4_0);
  CHECK(q8.weight_bytes() * 32 == f32.weight_bytes() / 4 * 34);  // 8.5 bits per weight
  CHECK(q4.weight_bytes() * 32 == f32.weight_bytes() / 4 * 18);  // 4.5 bits per weight
  const auto c8 = gemma2::compare_logits(f32, q8, ids, so).value();
  const auto c4 = gemma2::compare_logits(f32, q4, ids, so).value();
  MESSAGE("q8: kl=", c8.kl, " top1=", c8.top1_agreement, "; q4: kl=", c4.kl, " top1=", c4.top1_agreement);
  CHECK(c8.positions == static_cast<int>(ids.size()));
  CHECK(c8.kl < 1e-3);
  CHECK(c8.top1_agreement > 0.97);
  CHECK(c4.kl < 2e-2);
  CHECK(c4.top1_agreement > 0.85);
  CHECK(c4.kl > c8.kl);
  CHECK(std::abs(gemma2::score(q8, ids, so).value().nll - gemma2::score(f32, ids, so).value().nll) < 0.01);
}
