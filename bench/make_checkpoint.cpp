// gemma2_make_checkpoint: writes a Hugging Face style Gemma 2 directory with
// random weights, for benchmarks and load tests.
//
//   gemma2_make_checkpoint --preset 2b|9b|27b|tiny --dtype bf16|f32 --out DIR [--seed N] [--shards K]
//
// config.json, model-0000k-of-0000K.safetensors and
// model.safetensors.index.json, with exactly the tensor names and shapes
// Gemma2Model::load expects. Tensors are generated and written in chunks, so
// memory use stays at a few MB whatever the model size. Each tensor's values
// depend only on the seed and its name (not on the sharding).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "gemma2/gemma2.hpp"

namespace {

using nlohmann::json;

struct Tensor {
  std::string name;
  std::vector<int64_t> shape;
  bool is_norm = false;  // RMSNorm weight (stored as gain - 1): small values
  uint64_t count() const {
    uint64_t n = 1;
    for (int64_t d : shape) n *= static_cast<uint64_t>(d);
    return n;
  }
};

gemma2::RuntimeConfig preset(const std::string& name) {
  if (name == "2b") return gemma2::to_runtime(gemma2::Gemma2_2B{});
  if (name == "9b") return gemma2::to_runtime(gemma2::Gemma2_9B{});
  if (name == "27b") return gemma2::to_runtime(gemma2::Gemma2_27B{});
  // tiny: a few MB, same structure (GQA, heads * head_dim != hidden).
  gemma2::RuntimeConfig c;
  c.name = "gemma2-tiny";
  c.vocab_size = 512;
  c.hidden_size = 64;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 32;
  c.intermediate_size = 128;
  c.query_pre_attn_scalar = 32;
  c.sliding_window = 8;
  c.max_position_embeddings = 256;
  c.layer_types.clear();
  for (int i = 0; i < c.num_hidden_layers; ++i)
    c.layer_types.push_back(i % 2 == 0 ? gemma2::AttentionKind::Local : gemma2::AttentionKind::Global);
  return c;
}

// The tensors of a Gemma 2 checkpoint in layer order.
std::vector<Tensor> tensor_list(const gemma2::RuntimeConfig& c) {
  std::vector<Tensor> t;
  for (const auto& spec : gemma2::gemma2_tensors(c)) t.push_back({spec.name, spec.shape, spec.shape.size() == 1});
  return t;
}

// Streams one tensor's random values to `out`: uniform with standard
// deviation 0.02 for matrices (like initializer_range), in [-0.1, 0.1] for norms.
void write_tensor(std::ofstream& out, const Tensor& t, bool bf16, uint64_t seed) {
  uint64_t s = seed;
  for (char ch : t.name) s = (s ^ static_cast<uint8_t>(ch)) * 0x100000001b3ull;  // FNV-style name hash
  gemma2::Rng rng(s);
  const float a = t.is_norm ? 0.1f : 0.02f * 1.7320508f;
  const float scale = 2.0f * a / 16777216.0f;  // 24 random bits -> [-a, a)
  constexpr size_t kChunk = 1 << 20;
  std::vector<float> f(kChunk);
  std::vector<gemma2::bf16> h(bf16 ? kChunk : 0);
  for (uint64_t done = 0, n = t.count(); done < n;) {
    const size_t m = static_cast<size_t>(std::min<uint64_t>(kChunk, n - done));
    for (size_t i = 0; i < m; ++i) f[i] = static_cast<float>(rng.next() >> 40) * scale - a;
    if (bf16) {
      for (size_t i = 0; i < m; ++i) h[i] = gemma2::to_bf16(f[i]);
      out.write(reinterpret_cast<const char*>(h.data()), static_cast<std::streamsize>(m * 2));
    } else {
      out.write(reinterpret_cast<const char*>(f.data()), static_cast<std::streamsize>(m * 4));
    }
    done += m;
  }
}

// Writes one safetensors file: header (names sorted, padded to 8 bytes with
// spaces, as write_safetensors does), then each tensor streamed in turn.
bool write_shard(const std::string& path, std::vector<const Tensor*> tensors, bool bf16, uint64_t seed) {
  std::sort(tensors.begin(), tensors.end(), [](const Tensor* a, const Tensor* b) { return a->name < b->name; });
  const uint64_t elem = bf16 ? 2 : 4;
  json header = {{"__metadata__", {{"format", "pt"}}}};
  uint64_t offset = 0;
  for (const Tensor* t : tensors) {
    const uint64_t end = offset + t->count() * elem;
    header[t->name] = {{"dtype", bf16 ? "BF16" : "F32"}, {"shape", t->shape}, {"data_offsets", {offset, end}}};
    offset = end;
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out.write(h.data(), static_cast<std::streamsize>(h.size()));
  for (const Tensor* t : tensors) write_tensor(out, *t, bf16, seed);
  out.close();
  return static_cast<bool>(out);
}

std::string shard_name(int k, int K) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "model-%05d-of-%05d.safetensors", k, K);
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Write a random-weight Gemma 2 checkpoint in the Hugging Face layout"};
  std::string preset_name, dtype, out_dir;
  uint64_t seed = 0;
  int shards = 0;
  app.add_option("--preset", preset_name, "model size")->required()->check(CLI::IsMember({"2b", "9b", "27b", "tiny"}));
  app.add_option("--dtype", dtype, "weight dtype")->required()->check(CLI::IsMember({"bf16", "f32"}));
  app.add_option("--out", out_dir, "output directory (created)")->required();
  app.add_option("--seed", seed, "random seed")->capture_default_str();
  app.add_option("--shards", shards, "number of safetensors files (default: about 2 GB each)")
      ->check(CLI::Range(1, 99999));
  CLI11_PARSE(app, argc, argv);

  const gemma2::RuntimeConfig config = preset(preset_name);
  const bool bf16 = dtype == "bf16";
  const std::vector<Tensor> tensors = tensor_list(config);
  uint64_t total = 0;
  for (const Tensor& t : tensors) total += t.count() * (bf16 ? 2 : 4);
  if (shards == 0) shards = static_cast<int>(std::max<uint64_t>(1, (total + (2ull << 30) - 1) / (2ull << 30)));
  if (static_cast<size_t>(shards) > tensors.size()) {
    std::cerr << "gemma2_make_checkpoint: --shards " << shards << " is more than the " << tensors.size()
              << " tensors\n";
    return 1;
  }

  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) {
    std::cerr << "gemma2_make_checkpoint: cannot create " << out_dir << ": " << ec.message() << "\n";
    return 1;
  }
  std::ofstream(out_dir + "/config.json")
      << gemma2::to_config_json(config, bf16 ? "bfloat16" : "float32").dump(2) << "\n";

  // Consecutive tensors fill shard k until it reaches k/K of the total bytes,
  // leaving at least one tensor for each later shard.
  json weight_map = json::object();
  size_t next = 0;
  uint64_t written = 0;
  for (int k = 1; k <= shards; ++k) {
    std::vector<const Tensor*> part;
    const uint64_t target = total / static_cast<uint64_t>(shards) * static_cast<uint64_t>(k);
    while (next < tensors.size() && (part.empty() || k == shards ||
                                     (written < target && tensors.size() - next > static_cast<size_t>(shards - k)))) {
      written += tensors[next].count() * (bf16 ? 2 : 4);
      part.push_back(&tensors[next++]);
    }
    const std::string file = shard_name(k, shards);
    for (const Tensor* t : part) weight_map[t->name] = file;
    if (!write_shard(out_dir + "/" + file, part, bf16, seed)) {
      std::cerr << "gemma2_make_checkpoint: cannot write " << out_dir << "/" << file << "\n";
      return 1;
    }
    std::cerr << "wrote " << file << " (" << part.size() << " tensors)\n";
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::ofstream(out_dir + "/model.safetensors.index.json") << index.dump(2) << "\n";
  std::cerr << "wrote " << config.name << " " << dtype << " checkpoint to " << out_dir << " (" << total
            << " bytes of weights in " << shards << " shards)\n";
  return 0;
}
