// gemma2: command-line front end to the library.
//
//   gemma2 generate   [--model DIR] (--prompt TEXT | --ids 2,5,9) [--max-new N] [--greedy | sampling flags]
//                     [--grammar-file F.gbnf | --json-schema F.json [--json-whitespace compact|spaces|free]]
//                     [--draft-model DIR|FILE | --lookup N] [--draft-max K]
//   gemma2 chat       [--model DIR] [--system TEXT] [--verbose] [--grammar-file F | --json-schema F]
//                     [--draft-model DIR|FILE | --lookup N] [--draft-max K] [--delimiter TEXT]
//                     [--context N] [--context-shift]
//   gemma2 tokenize   (--tokenizer FILE | --model DIR) --text TEXT
//   gemma2 perplexity [--model DIR] (--ids 2,5,9 | --text-file F) [--top-k-out FILE]
//   gemma2 logits     [--model DIR] --ids 2,5,9 --out FILE
//   gemma2 info       [--model DIR] [--context N]   (memory a model needs; no weight is read)
//
// Without --model, the built-in demo model (models/tiny-shakespeare) is used.
// The spellings of logits, generate --ids/--prompt ... --print-ids, tokenize,
// perplexity, generate/chat --grammar-file/--json-schema and --draft-model/
// --lookup/--draft-max are a contract: other tooling calls them. With a
// grammar, generate prints exactly the constrained text on stdout, complete
// within --max-new tokens; with a drafter, the same ids as without.
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "commands.hpp"
#include "platform.hpp"

namespace gemma2_cli {
namespace {

// A command that decodes (generate, chat): the model, sampling, grammar and
// speculative flags they share.
template <class Args>
CLI::App* add_decoding_command(CLI::App& app, const char* name, const char* description, Args& a) {
  auto* command = app.add_subcommand(name, description);
  a.model.add_to(command);
  a.sampling.add_to(command);
  a.grammar.add_to(command);
  a.speculative.add_to(command);
  return command;
}

CLI::App* add_generate(CLI::App& app, GenerateArgs& a) {
  auto* generate = add_decoding_command(app, "generate", "continue a prompt (text or ids), streaming the text", a);
  generate->add_option("--prompt", a.prompt, "prompt text (BOS is prepended)");
  generate->add_option("--ids", a.ids, "prompt token ids, comma separated, used as given")
      ->delimiter(',')
      ->check(at_least(0));
  generate->add_option("--max-new", a.max_new, "most tokens to generate")->check(at_least(0))->capture_default_str();
  generate->add_option("--stop", a.stops, "stop when the text contains this string (repeatable)");
  generate->add_flag("--ignore-eos", a.ignore_eos, "do not stop at <eos> / <end_of_turn>");
  generate->add_flag("--print-ids", a.print_ids, "print the generated ids as the last stdout line");
  return generate;
}

CLI::App* add_chat(CLI::App& app, ChatArgs& a) {
  auto* chat = add_decoding_command(app, "chat", "interactive multi-turn chat (one user message per line)", a);
  chat->add_option("--system", a.system, "system instructions (folded into the first user turn)");
  chat->add_option("--max-new", a.max_new, "most tokens per reply")->check(at_least(1))->capture_default_str();
  chat->add_flag("--verbose,-v", a.verbose, "print token counts and speed per turn on stderr");
  chat->add_option("--delimiter", a.delimiter,
                   "print this line after each reply, so that replies holding line breaks can be told apart");
  chat->add_option("--context", a.context, "positions the conversation holds (default: the model's context)")
      ->check(at_least(2));
  chat->add_flag("--context-shift", a.context_shift,
                 "when the context is full, keep the first turn, drop half of the rest and go on "
                 "(instead of ending the chat)");
  return chat;
}

CLI::App* add_tokenize(CLI::App& app, TokenizeArgs& a) {
  auto* tokenize = app.add_subcommand("tokenize", "print the token ids of a text (without BOS)");
  tokenize->add_option("--tokenizer", a.tokenizer, "sentencepiece tokenizer.model");
  tokenize->add_option("--model", a.model, "model directory holding tokenizer.model, or a .gguf file")
      ->capture_default_str();
  tokenize->add_option("--text", a.text, "text to tokenize")->required();
  tokenize->add_flag("--pieces", a.pieces, "also print each id with its piece");
  return tokenize;
}

CLI::App* add_perplexity(CLI::App& app, PerplexityArgs& a) {
  auto* perplexity = app.add_subcommand("perplexity", "score a text: mean negative log-likelihood and perplexity");
  a.model.add_to(perplexity);
  perplexity->add_option("--ids", a.ids, "token ids, used as given (one forward)")->delimiter(',')->check(at_least(0));
  perplexity->add_option("--text-file", a.text_file, "UTF-8 text file (BOS is prepended)");
  perplexity->add_option("--window", a.window, "positions per forward pass (0 = the model's context)")
      ->check(at_least(0));
  perplexity->add_option("--stride", a.stride, "new tokens scored per window after the first (0 = half a window)")
      ->check(at_least(0));
  perplexity->add_option("--top-k-out", a.top_k_out,
                         "write the top-k next-token distribution per position (JSON lines)");
  perplexity->add_option("--top-k", a.top_k, "k for --top-k-out")->check(at_least(1))->capture_default_str();
  perplexity
      ->add_option("--kl-reference", a.kl_reference,
                   "also load the model with this --dtype and report KL(reference || model) and top-1 agreement")
      ->check(CLI::IsMember({"f32", "bf16", "f16", "q8", "q4"}));
  return perplexity;
}

CLI::App* add_logits(CLI::App& app, LogitsArgs& a) {
  auto* logits = app.add_subcommand("logits", "one forward over --ids; write [T][vocab] float32 logits to --out");
  a.model.add_to(logits);
  logits->add_option("--ids", a.ids, "token ids, comma separated")->delimiter(',')->check(at_least(0))->required();
  logits->add_option("--out", a.out, "output file (raw little-endian float32, row-major)")->required();
  return logits;
}

CLI::App* add_bench(CLI::App& app, BenchArgs& a) {
  auto* bench =
      app.add_subcommand("bench", "speed of a preset's shape with random weights (no file needed); one JSON line");
  bench->add_option("--preset", a.preset, "2b, 9b or 27b")
      ->check(CLI::IsMember({"2b", "9b", "27b"}))
      ->capture_default_str();
  bench->add_option("--model", a.model, "time this model (directory or .gguf) instead of random weights");
  add_dtype(bench, a.dtype);
  bench->add_option("--threads", a.threads, "threads")
      ->check(between(1, gemma2::ThreadPool::kMaxThreads))
      ->capture_default_str();
  bench->add_option("--prompt", a.prompt, "prefill length")->check(at_least(1))->capture_default_str();
  bench->add_option("--gen", a.gen, "decoded tokens")->check(at_least(1))->capture_default_str();
  bench->add_option("--depth", a.depth, "positions in the cache before decoding (default: the prompt)")
      ->check(at_least(0));
  add_kernels(bench, a.kernels);
  add_prefill_precision(bench, a.prefill_precision);
  add_kv_cache(bench, a.kv_cache);
  return bench;
}

// gemma2 info takes the memory flags of ModelOptions, not all of them.
CLI::App* add_info(CLI::App& app, ModelOptions& o, int& context) {
  auto* info = app.add_subcommand("info", "config and memory needs of a model (weights, KV cache), reading no weights");
  info->add_option("--model", o.dir, "model directory or .gguf file")->capture_default_str();
  add_dtype(info, o.dtype);
  add_memory_options(info, o.mapping, o.max_memory);
  info->add_option("--context", context, "positions of the KV cache to size (default: the model's context)")
      ->check(at_least(1));
  add_kernels(info, o.kernels);
  return info;
}

int run(int argc, char** argv) {
  CLI::App app{"gemma2: run Gemma 2 models on the CPU"};
  app.require_subcommand(1);
  GenerateArgs generate_args;
  ChatArgs chat_args;
  TokenizeArgs tokenize_args;
  tokenize_args.model = default_model_dir();
  PerplexityArgs perplexity_args;
  LogitsArgs logits_args;
  BenchArgs bench_args;
  ModelOptions info_model;
  int info_context = 0;
  auto* generate = add_generate(app, generate_args);
  auto* chat = add_chat(app, chat_args);
  auto* tokenize = add_tokenize(app, tokenize_args);
  auto* perplexity = add_perplexity(app, perplexity_args);
  add_logits(app, logits_args);
  auto* bench = add_bench(app, bench_args);
  auto* info = add_info(app, info_model, info_context);
  CLI11_PARSE(app, argc, argv);

  if (info->parsed()) return run_info(info_model.dir, info_model.load_options(), info_context);
  for (const ModelOptions* o : {&generate_args.model, &chat_args.model, &perplexity_args.model, &logits_args.model})
    if (o->dry_run) return run_info(o->dir, o->load_options(), 0);
  if (bench->parsed()) return run_bench(bench_args);
  if (generate->parsed()) return run_generate(generate_args);
  if (chat->parsed()) return run_chat(chat_args);
  if (tokenize->parsed()) return run_tokenize(tokenize_args);
  if (perplexity->parsed()) return run_perplexity(perplexity_args);
  return run_logits(logits_args);
}

}  // namespace
}  // namespace gemma2_cli

// Every error is a message and exit code 1; an exception that escapes a
// dependency all the same is reported as one, never an abort.
int main(int argc, char** argv) {
  using namespace gemma2_cli;
  try {
#if defined(_WIN32)
    use_utf8_console();
    std::vector<std::string> args = utf8_arguments();
    std::vector<char*> pointers;
    for (auto& a : args) pointers.push_back(a.data());
    pointers.push_back(nullptr);
    if (!args.empty()) return run(static_cast<int>(args.size()), pointers.data());
#endif
    return run(argc, argv);
  } catch (const std::exception& e) {
    return fail(std::string("unexpected error: ") + e.what());
  } catch (...) {
    return fail("unexpected error");
  }
}
