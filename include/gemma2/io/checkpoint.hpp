// A Hugging Face model directory: config.json plus either model.safetensors or
// shards listed in model.safetensors.index.json.
#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/io/config_json.hpp"
#include "gemma2/io/safetensors.hpp"

GEMMA2_BEGIN_NAMESPACE

// Name and shape of one tensor of a Gemma 2 checkpoint.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> shape;  // [out, in] for matrices, [hidden] for norm weights
};

// Every tensor a Gemma 2 model of this config has, with Hugging Face names,
// in layer order. There is no lm_head: the output projection is the
// embedding.
inline std::vector<TensorSpec> gemma2_tensors(const RuntimeConfig& c) {
  const int64_t h = c.hidden_size, q = int64_t{c.num_attention_heads} * c.head_dim;
  const int64_t kv = int64_t{c.num_key_value_heads} * c.head_dim, f = c.intermediate_size;
  std::vector<TensorSpec> t{{"model.embed_tokens.weight", {c.vocab_size, h}}};
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    t.push_back({p + "self_attn.q_proj.weight", {q, h}});
    t.push_back({p + "self_attn.k_proj.weight", {kv, h}});
    t.push_back({p + "self_attn.v_proj.weight", {kv, h}});
    t.push_back({p + "self_attn.o_proj.weight", {h, q}});
    t.push_back({p + "mlp.gate_proj.weight", {f, h}});
    t.push_back({p + "mlp.up_proj.weight", {f, h}});
    t.push_back({p + "mlp.down_proj.weight", {h, f}});
    for (const char* n :
         {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"})
      t.push_back({p + n + ".weight", {h}});
  }
  t.push_back({"model.norm.weight", {h}});
  return t;
}

// Every tensor of a checkpoint by name, plus its parsed config.
struct Checkpoint {
  RuntimeConfig config;
  std::map<std::string, TensorView> tensors;
  bool norms_hold_gain = false;  // norm weights already hold 1 + w (GGUF), not w (Hugging Face)
};

namespace detail {
// Adds the tensors of one safetensors file; a name already added from
// another shard is an error.
inline Status add_shard(std::shared_ptr<const MappedFile> file, std::map<std::string, TensorView>& tensors) {
  const std::string path = file->path();
  auto parsed = parse_safetensors(std::move(file));
  if (!parsed) return Error{parsed.message()};
  for (auto& [name, t] : *parsed)
    if (!tensors.emplace(name, std::move(t)).second)
      return err(path, ": tensor ", name, " also appears in another shard");
  return {};
}

inline Status add_shard(const std::string& path, Mapping mapping, std::map<std::string, TensorView>& tensors) {
  auto file = MappedFile::open(path, mapping);
  if (!file) return Error{file.message()};
  return add_shard(std::move(*file), tensors);
}

// Opens the shard at a path the index names. open_checkpoint maps files;
// fuzzers and tests serve the shards from memory.
using ShardOpener = std::function<Result<std::shared_ptr<const MappedFile>>(const std::string& path)>;

// Adds the shards listed in the text of model.safetensors.index.json
// (`index_path` names it in messages), each opened with `open` as
// dir/<shard>, and checks that every tensor is in the shard the index names.
inline Status add_sharded(const std::string& dir, const std::string& index_path, const std::string& index_text,
                          const ShardOpener& open, std::map<std::string, TensorView>& tensors) {
  return guard("reading " + index_path, [&]() -> Status {
    auto parsed = parse_json(index_text, index_path);
    if (!parsed) return Error{parsed.message()};
    const nlohmann::json& j = *parsed;
    if (!j.is_object()) return err(index_path, ": not a JSON object");
    const auto map = j.find("weight_map");
    if (map == j.end() || !map->is_object()) return err(index_path, ": missing \"weight_map\" object");
    std::set<std::string> shards;
    for (const auto& [tensor, file] : map->items()) {
      if (!file.is_string()) return err(index_path, ": weight_map entry for ", tensor, " is not a file name");
      const std::string f = file.get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f == "..")
        return err(index_path, ": weight_map names an invalid shard file ", file.dump());
      shards.insert(f);
    }
    for (const std::string& shard : shards) {
      auto file = open(dir + "/" + shard);
      if (!file) return err(index_path, " names shard ", shard, " but ", file.message());
      if (Status s = add_shard(std::move(*file), tensors); !s) return s;
    }
    for (const auto& [tensor, file] : map->items()) {
      const auto it = tensors.find(tensor);
      if (it == tensors.end() || it->second.source != dir + "/" + file.get<std::string>())
        return err(index_path, ": tensor ", tensor, " is not in shard ", file.get<std::string>());
    }
    return {};
  });
}

inline Status add_sharded(const std::string& dir, const std::string& index_path, Mapping mapping,
                          std::map<std::string, TensorView>& tensors) {
  auto text = read_json_file(index_path);
  if (!text) return Error{text.message()};
  const ShardOpener open = [mapping](const std::string& path) { return MappedFile::open(path, mapping); };
  return add_sharded(dir, index_path, *text, open, tensors);
}
}  // namespace detail

// Opens a model directory: parses config.json, maps (or with
// Mapping::Copied reads) every safetensors file and validates all headers.
// No weight data is read yet when mapped.
inline Result<Checkpoint> open_checkpoint(const std::string& dir, Mapping mapping = Mapping::Mapped) {
  auto kind = detail::path_kind(dir);
  if (!kind) return Error{kind.message()};
  if (*kind == detail::FileKind::Regular)
    return detail::err(dir, " is a file, not a model directory (config.json and safetensors) or a .gguf file");
  if (*kind != detail::FileKind::Directory)
    return detail::err(dir, " is ", detail::file_kind_name(*kind), ", not a model directory");
  Checkpoint ck;
  auto config = load_config_json(dir + "/config.json");
  if (!config) return Error{config.message()};
  ck.config = std::move(*config);
  const std::string index = dir + "/model.safetensors.index.json";
  const std::string single = dir + "/model.safetensors";
  Status s;
  if (detail::path_exists(index)) s = detail::add_sharded(dir, index, mapping, ck.tensors);
  else if (detail::path_exists(single)) s = detail::add_shard(single, mapping, ck.tensors);
  else return detail::err(dir, ": no model.safetensors or model.safetensors.index.json");
  if (!s) return Error{s.message()};
  return ck;
}

GEMMA2_END_NAMESPACE
