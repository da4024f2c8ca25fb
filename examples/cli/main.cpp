// gemma2: command-line front end to the library.
//
//   gemma2 logits   --model DIR --ids 2,5,9 --out FILE
//   gemma2 generate --model DIR --ids 2,5,9 --max-new N --greedy [--print-ids]
//
// These spellings are a contract: other tooling calls them.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "gemma2/gemma2.hpp"

namespace {

using Model = gemma2::Gemma2Model<gemma2::RuntimeConfig>;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

int fail(const std::string& message) {
  std::cerr << "gemma2: " << message << "\n";
  return 1;
}

struct Common {
  std::string model_dir;
  std::vector<int32_t> ids;
  int threads = 1;
};

void add_common(CLI::App* cmd, Common& o) {
  cmd->add_option("--model", o.model_dir, "Hugging Face model directory (config.json + safetensors)")->required();
  cmd->add_option("--ids", o.ids, "input token ids, comma separated (include BOS = 2)")->delimiter(',')->required();
  cmd->add_option("--threads", o.threads, "threads for the matrix products")->capture_default_str();
}

// Loads the model and makes a pool; reports errors on stderr.
bool setup(const Common& o, std::optional<Model>& model, std::optional<gemma2::ThreadPool>& pool) {
  auto p = gemma2::ThreadPool::create(o.threads);
  if (!p) return fail(p.message()), false;
  pool.emplace(std::move(*p));
  const auto t0 = Clock::now();
  auto m = Model::load(o.model_dir);
  if (!m) return fail(m.message()), false;
  std::cerr << "loaded " << o.model_dir << " in " << seconds_since(t0) << " s\n";
  model.emplace(std::move(*m));
  return true;
}

int run_logits(const Common& o, const std::string& out_path) {
  std::optional<Model> model;
  std::optional<gemma2::ThreadPool> pool;
  if (!setup(o, model, pool)) return 1;
  auto kv = model->make_cache(static_cast<int>(std::min<size_t>(o.ids.size(), model->config().max_position_embeddings)));
  if (!kv) return fail(kv.message());
  auto logits = model->forward(o.ids, *kv, {&*pool, /*all_logits=*/true});
  if (!logits) return fail(logits.message());
  std::ofstream out(out_path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(logits->data()),
            static_cast<std::streamsize>(logits->size() * sizeof(float)));
  if (!out) return fail("cannot write " + out_path);
  std::cerr << "wrote " << logits->rows() << " x " << logits->cols() << " float32 logits to " << out_path << "\n";
  return 0;
}

int32_t argmax(const gemma2::Activations& logits) {
  Eigen::Index best;
  logits.row(logits.rows() - 1).maxCoeff(&best);
  return static_cast<int32_t>(best);
}

int run_generate(const Common& o, int max_new, bool print_ids) {
  if (max_new < 0) return fail("--max-new must be >= 0");
  std::optional<Model> model;
  std::optional<gemma2::ThreadPool> pool;
  if (!setup(o, model, pool)) return 1;
  auto kv = model->make_cache();
  if (!kv) return fail(kv.message());
  std::vector<int32_t> out;
  const gemma2::ForwardOptions opts{&*pool};
  auto t0 = Clock::now();
  if (max_new > 0) {
    auto logits = model->forward(o.ids, *kv, opts);
    if (!logits) return fail(logits.message());
    out.push_back(argmax(*logits));
  }
  const double prefill_s = seconds_since(t0);
  t0 = Clock::now();
  while (static_cast<int>(out.size()) < max_new) {
    auto logits = model->forward(&out.back(), 1, *kv, opts);
    if (!logits) return fail(logits.message());
    out.push_back(argmax(*logits));
  }
  const double decode_s = seconds_since(t0);
  std::cerr << "prefill: " << o.ids.size() << " tokens in " << prefill_s << " s ("
            << static_cast<double>(o.ids.size()) / prefill_s << " tok/s); decode: " << (out.empty() ? 0 : out.size() - 1)
            << " tokens in " << decode_s << " s ("
            << (out.size() > 1 ? static_cast<double>(out.size() - 1) / decode_s : 0.0) << " tok/s)\n";
  if (print_ids) {
    for (size_t i = 0; i < out.size(); ++i) std::cout << (i ? " " : "") << out[i];
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"gemma2: run Gemma 2 models on the CPU"};
  app.require_subcommand(1);

  Common logits_opts;
  std::string out_path;
  auto* logits = app.add_subcommand("logits", "one forward over --ids; write [T][vocab] float32 logits to --out");
  add_common(logits, logits_opts);
  logits->add_option("--out", out_path, "output file (raw little-endian float32, row-major)")->required();

  Common gen_opts;
  int max_new = 16;
  bool greedy = false, print_ids = false;
  auto* generate = app.add_subcommand("generate", "prefill --ids, then decode --max-new tokens");
  add_common(generate, gen_opts);
  generate->add_option("--max-new", max_new, "number of tokens to generate")->capture_default_str();
  generate->add_flag("--greedy", greedy, "argmax decoding (the only decoder in this version)");
  generate->add_flag("--print-ids", print_ids, "print the generated ids as the last stdout line");

  CLI11_PARSE(app, argc, argv);
  if (logits->parsed()) return run_logits(logits_opts, out_path);
  return run_generate(gen_opts, max_new, print_ids);
}
