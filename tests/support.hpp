// Helpers shared by the tests: reading reference data, random tiny models,
// the demo model loaded once, running the CLI.
#pragma once

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include <doctest/doctest.h>

#include "gemma2/gemma2.hpp"
#include "gemma2/io/gguf_writer.hpp"
#include "gemma2/testing/random_model.hpp"

#if defined(_WIN32)
#include <process.h>
#else
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace test {

// ThreadSanitizer slows the model's loops tenfold and more: the long
// concurrency tests take fewer steps under it (races show in a few).
#if defined(__SANITIZE_THREAD__)
inline constexpr bool kThreadSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
inline constexpr bool kThreadSanitizer = true;
#else
inline constexpr bool kThreadSanitizer = false;
#endif
#else
inline constexpr bool kThreadSanitizer = false;
#endif

inline std::string data_dir() { return GEMMA2_TEST_DATA; }
inline std::string golden_dir(const std::string& name) { return data_dir() + "/golden/" + name; }

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_text(path)); }

inline std::vector<float> read_f32(const std::string& path) {
  const std::string bytes = read_text(path);
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

inline bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

inline float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// n random finite values stored as `dtype`, as raw bytes.
inline std::vector<std::byte> random_weights(size_t n, gemma2::DType dtype, uint32_t seed, float scale = 0.5f) {
  const std::vector<float> f = random_floats(n, seed, scale);
  std::vector<std::byte> bytes(n * gemma2::dtype_size(dtype));
  for (size_t i = 0; i < n; ++i) {
    uint16_t h;
    switch (dtype) {
      case gemma2::DType::F32: std::memcpy(&bytes[i * 4], &f[i], 4); continue;
      case gemma2::DType::BF16: h = gemma2::to_bf16(f[i]).bits; break;
      case gemma2::DType::F16: {  // random sign, exponent in [-14, 1], mantissa: normals and subnormals
        std::mt19937 rng(seed + static_cast<uint32_t>(i));
        h = static_cast<uint16_t>(rng() & 0xbfffu);  // exponent bit 14 clear: |x| < 2
        break;
      }
      default: return {};  // block formats are made from floats with quantize_row
    }
    std::memcpy(&bytes[i * 2], &h, 2);
  }
  return bytes;
}

// The tensors and config.json of a tiny random Gemma 2 model.
struct TinyModel {
  gemma2::RuntimeConfig config;
  std::map<std::string, gemma2::TensorToWrite> tensors;

  explicit TinyModel(gemma2::DType dtype = gemma2::DType::F32, uint32_t seed = 1) {
    config.vocab_size = 64;
    config.hidden_size = 24;
    config.num_hidden_layers = 3;
    config.num_attention_heads = 4;
    config.num_key_value_heads = 2;
    config.head_dim = 8;
    config.intermediate_size = 40;
    config.query_pre_attn_scalar = 10;
    config.sliding_window = 4;
    config.max_position_embeddings = 64;
    config.layer_types = {gemma2::AttentionKind::Local, gemma2::AttentionKind::Global, gemma2::AttentionKind::Local};
    for (const auto& spec : gemma2::gemma2_tensors(config)) add(spec.name, spec.shape, dtype, seed++);
  }

  void add(const std::string& name, std::vector<int64_t> shape, gemma2::DType dtype, uint32_t seed) {
    size_t n = 1;
    for (int64_t d : shape) n *= static_cast<size_t>(d);
    tensors[name] = {dtype, shape, random_weights(n, dtype, seed, 0.3f)};
  }

  nlohmann::json config_json() const { return gemma2::to_config_json(config, "float32"); }

  // Writes config.json and model.safetensors into dir.
  void write(const std::string& dir, const nlohmann::json& config_override = nlohmann::json::object()) const {
    nlohmann::json c = config_json();
    c.update(config_override);
    std::ofstream(dir + "/config.json") << c.dump(1);
    REQUIRE(gemma2::write_safetensors(dir + "/model.safetensors", tensors).ok());
  }
};

// A Gemma 2 checkpoint written as GGUF the way llama.cpp's converter does:
// norm weights stored as F32 holding 1 + w, matrices as `as` (ggml type ids:
// F32 0, F16 1, BF16 30, Q8_0 8, Q4_0 2, blocks laid out [f16 d | values]).
inline void write_gguf(const gemma2::Checkpoint& ck, const std::string& path, gemma2::DType as,
                       bool write_q_scalar = true) {
  const auto md = gemma2::gguf_config_metadata(ck.config, write_q_scalar);
  const std::map<gemma2::DType, uint32_t> ids = {{gemma2::DType::F32, 0},
                                                 {gemma2::DType::F16, 1},
                                                 {gemma2::DType::BF16, 30},
                                                 {gemma2::DType::Q8_0, 8},
                                                 {gemma2::DType::Q4_0, 2}};
  std::vector<gemma2::GgufTensorToWrite> tensors;
  for (const auto& spec : gemma2::gemma2_tensors(ck.config)) {
    const gemma2::TensorView& t = ck.tensors.at(spec.name);
    const int64_t cols = spec.shape.back(), rows = spec.shape.size() == 2 ? spec.shape[0] : 1;
    std::vector<float> f(static_cast<size_t>(rows * cols));
    gemma2::detail::convert_to_float(t.dtype, t.data, f.data(), f.size());
    gemma2::GgufTensorToWrite w;
    w.name = gemma2::detail::gguf_name(spec.name);
    for (auto d = spec.shape.rbegin(); d != spec.shape.rend(); ++d) w.dims.push_back(static_cast<uint64_t>(*d));
    // Block formats need whole blocks per row; other rows keep their type.
    const gemma2::DType to = spec.shape.size() == 1                     ? gemma2::DType::F32
                             : gemma2::is_block32(as) && cols % 32 != 0 ? t.dtype
                                                                        : as;
    if (spec.shape.size() == 1)
      for (float& x : f) x += 1.0f;
    w.ggml_type = ids.at(to);
    const size_t rb = gemma2::row_bytes(to, static_cast<int>(cols));
    std::vector<std::byte> ours(static_cast<size_t>(rows) * rb);
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = &f[static_cast<size_t>(r * cols)];
      std::byte* dst = &ours[static_cast<size_t>(r) * rb];
      if (gemma2::is_block32(to)) gemma2::detail::quantize_row(to, src, dst, static_cast<int>(cols));
      else if (to == gemma2::DType::F32) std::memcpy(dst, src, static_cast<size_t>(cols) * 4);
      else
        for (int64_t i = 0; i < cols; ++i) {
          const uint16_t b = to == gemma2::DType::BF16 ? gemma2::to_bf16(src[i]).bits : gemma2::to_f16(src[i]).bits;
          std::memcpy(dst + 2 * i, &b, 2);
        }
    }
    if (!gemma2::is_block32(to)) {
      w.bytes = std::move(ours);
    } else {  // the library's rows keep values first, then scales; ggml interleaves them per block
      const int64_t blocks = cols / 32, qs = to == gemma2::DType::Q8_0 ? 32 : 16;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t b = 0; b < blocks; ++b) {
          const std::byte* row = &ours[static_cast<size_t>(r) * rb];
          w.bytes.insert(w.bytes.end(), row + blocks * qs + 2 * b, row + blocks * qs + 2 * b + 2);
          w.bytes.insert(w.bytes.end(), row + b * qs, row + (b + 1) * qs);
        }
    }
    tensors.push_back(std::move(w));
  }
  REQUIRE(gemma2::write_gguf(path, md, tensors).ok());
}

// Commands the CLI tests run through the system's shell: sh, or cmd.exe on
// Windows (given the command in UTF-16, so UTF-8 arguments arrive intact).
#if defined(_WIN32)
inline const std::string kNullDevice = "NUL";
inline int process_id() { return ::_getpid(); }
// The program's exit code. _wsystem answers -1 when it could not start
// cmd.exe at all, which wine does now and then on a loaded machine (seen in
// CI: the command never ran, so its redirected output was empty); such a
// start is tried again, a few times, as nothing of the command has run.
inline int run_command(const std::string& command) {
  auto wide = gemma2::detail::wide_path(command);
  if (!wide) return -1;
  int rc = -1;
  for (int attempt = 0; attempt < 4 && rc == -1; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(250 * attempt));
    rc = ::_wsystem(wide->c_str());
  }
  return rc;
}
// cmd.exe passes text in double quotes as it is, except '"' and '%' (and it
// cannot pass a line break at all): such text is not passable.
inline bool shell_can_pass(const std::string& s) {
  return s.find_first_of("\"%\r\n") == std::string::npos && (s.empty() || s.back() != '\\');
}
inline std::string shell_quote(const std::string& s) { return "\"" + s + "\""; }
#else
inline const std::string kNullDevice = "/dev/null";
inline int process_id() { return static_cast<int>(::getpid()); }
// The program's exit code, or -1 when it died of a signal.
inline int run_command(const std::string& command) {
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
inline bool shell_can_pass(const std::string&) { return true; }
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}
#endif

// A fresh, empty temporary directory, removed at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static int counter = 0;
    path = std::filesystem::temp_directory_path() /
           ("gemma2_test_" + std::to_string(process_id()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  // Never throws: on Windows a file stays undeletable while a model that
  // outlives this directory maps it, and is then left behind.
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
};

// The built-in demo model (models/tiny-shakespeare), its tokenizer and
// token trie, loaded once for the whole test program.
using DemoModel = gemma2::Gemma2Model<>;
struct Demo {
  DemoModel model;
  gemma2::Tokenizer tok;
  std::shared_ptr<const gemma2::TokenTrie> trie;
};

inline const Demo& demo() {
  static const Demo d = [] {
    auto m = DemoModel::load(GEMMA2_DEMO_MODEL);
    REQUIRE_MESSAGE(m.ok(), m.message());
    auto t = gemma2::Tokenizer::from_model_dir(GEMMA2_DEMO_MODEL);
    REQUIRE_MESSAGE(t.ok(), t.message());
    auto trie = gemma2::TokenTrie::build(*t);
    return Demo{std::move(*m), std::move(*t), std::move(trie)};
  }();
  return d;
}

inline const DemoModel& demo_model() { return demo().model; }

// The reference tokenizer (tokenizes exactly like Gemma 2's), loaded once.
inline const gemma2::Tokenizer& gemma_tokenizer() {
  static const gemma2::Tokenizer tok = [] {
    auto t = gemma2::Tokenizer::load(data_dir() + "/tokenizer/gemma2_tokenizer.model");
    REQUIRE_MESSAGE(t.ok(), t.message());
    return *t;
  }();
  return tok;
}

// `text` as the demo model's prompt ids (BOS first).
inline std::vector<int32_t> demo_prompt(const std::string& text) { return demo().tok.encode_prompt(text).value(); }

// A deterministic token sequence of the demo model's vocabulary: BOS, then
// n - 1 ids drawn from [16, 4016).
inline std::vector<int32_t> demo_tokens(size_t n, uint32_t seed = 1) {
  std::vector<int32_t> ids = {2};
  std::mt19937 rng(seed);
  while (ids.size() < n) ids.push_back(16 + static_cast<int32_t>(rng() % 4000));
  return ids;
}

// Logits of `ids` fed to `cache` in the given chunk sizes (the last chunk repeats).
template <class Model, class Cache>
std::vector<gemma2::Activations> forward_in_chunks(const Model& m, Cache& cache, const std::vector<int32_t>& ids,
                                                   std::vector<int> chunks, const gemma2::Executor* pool = nullptr) {
  std::vector<gemma2::Activations> out;
  for (size_t at = 0, c = 0; at < ids.size(); ++c) {
    const size_t n = std::min(ids.size() - at, static_cast<size_t>(chunks[std::min(c, chunks.size() - 1)]));
    auto l = m.forward(ids.data() + at, n, cache, {pool});
    REQUIRE_MESSAGE(l.ok(), l.message());
    out.push_back(*l);
    at += n;
  }
  return out;
}

// The largest difference between two runs' logits, chunk by chunk.
inline float worst_diff(const std::vector<gemma2::Activations>& a, const std::vector<gemma2::Activations>& b) {
  REQUIRE(a.size() == b.size());
  float w = 0;
  for (size_t i = 0; i < a.size(); ++i) w = std::max(w, max_abs_diff(a[i].data(), b[i].data(), a[i].size()));
  return w;
}

#ifdef GEMMA2_CLI
// Runs a command line of the CLI with its output going to the files `out`
// and `err` (either may be kNullDevice), and answers its exit code.
inline int run_cli_command(const std::string& command, const std::string& out, const std::string& err) {
  const std::string line = command + " > " + out + " 2> " + err;
  int rc = run_command(line);
#if defined(_WIN32)
  // The CLI names every failure on stderr; a failed run that printed nothing
  // never started (seen in CI: wine's cmd.exe exits non-zero, now and then,
  // without running the command). Nothing of it ran, so it is tried again.
  auto silent = [&] { return (out == kNullDevice || read_text(out).empty()) && read_text(err).empty(); };
  for (int attempt = 1; attempt < 4 && rc != 0 && silent(); ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(250 * attempt));
    rc = run_command(line);
  }
#endif
  return rc;
}

// One run of the gemma2 CLI with `args` and `stdin_text` on its input.
struct CliRun {
  int rc;
  std::string out, err;
};
inline CliRun cli(const std::string& args, const std::string& stdin_text = "") {
  TempDir tmp;
  const std::string in = tmp.str() + "/in", out = tmp.str() + "/out", err = tmp.str() + "/err";
  std::ofstream(in) << stdin_text;
  const int rc = run_cli_command(std::string(GEMMA2_CLI) + " " + args + " < " + in, out, err);
  return {rc, read_text(out), read_text(err)};
}

// The last line of `s`, without its line break.
inline std::string last_line(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s.substr(s.rfind('\n') + 1);
}
#endif

}  // namespace test
