// Reads a Hugging Face Gemma2Config (config.json) into a RuntimeConfig.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "gemma2/config.hpp"
#include "gemma2/io/bytes.hpp"
#include "gemma2/io/json.hpp"

GEMMA2_BEGIN_NAMESPACE

// Parses config.json text. Keys that are absent keep Hugging Face's
// Gemma2Config defaults; keys that are present must have the right type.
// `source` names the file in error messages.
inline Result<RuntimeConfig> parse_config_json(const std::string& text, const std::string& source = "config.json") {
  using detail::err;
  return detail::guard("reading " + source, [&]() -> Result<RuntimeConfig> {
    auto parsed = detail::parse_json(text, source);
    if (!parsed) return Error{parsed.message()};
    const nlohmann::json& j = *parsed;
    if (!j.is_object()) return err(source, ": not a JSON object");

    if (auto it = j.find("model_type"); it != j.end() && !(it->is_string() && it->get<std::string>() == "gemma2"))
      return err(source, ": model_type is ", it->dump(), ", expected \"gemma2\"");
    for (const char* key : {"hidden_activation", "hidden_act"}) {
      if (auto it = j.find(key); it != j.end()) {
        if (!(it->is_string() && it->get<std::string>() == "gelu_pytorch_tanh"))
          return err(source, ": ", key, " is ", it->dump(), "; Gemma 2 uses \"gelu_pytorch_tanh\"");
        break;  // hidden_activation takes precedence over the legacy hidden_act
      }
    }
    if (auto it = j.find("tie_word_embeddings"); it != j.end() && !(it->is_boolean() && it->get<bool>()))
      return err(source, ": tie_word_embeddings is ", it->dump(),
                 "; Gemma 2 ties the output projection to the embedding");

    RuntimeConfig c;
    Status status;
    detail::for_each_field(c, [&](const detail::ConfigField& field, auto& out) {
      const auto it = j.find(field.key);
      if (it == j.end() || !status) return;
      if constexpr (std::is_same_v<std::decay_t<decltype(out)>, int>) {
        if (!it->is_number_integer() || it->get<int64_t>() < std::numeric_limits<int>::min() ||
            it->get<int64_t>() > std::numeric_limits<int>::max())
          status = err(source, ": ", field.key, " must be an integer, got ", it->dump());
        else out = static_cast<int>(it->get<int64_t>());
      } else if (!it->is_number()) {
        status = err(source, ": ", field.key, " must be a number, got ", it->dump());
      } else if (!detail::narrow_to_float(it->get<double>(), &out)) {
        status = err(source, ": ", field.key, " = ", it->dump(), " is out of the range of a 32-bit float");
      }
    });
    if (!status) return Error{status.message()};

    if (auto it = j.find("layer_types"); it != j.end()) {
      if (!it->is_array()) return err(source, ": layer_types must be an array");
      for (const auto& t : *it) {
        if (t == "sliding_attention") c.layer_types.push_back(AttentionKind::Local);
        else if (t == "full_attention") c.layer_types.push_back(AttentionKind::Global);
        else
          return err(source, ": layer_types entry ", t.dump(),
                     " is neither \"sliding_attention\" nor \"full_attention\"");
      }
    } else {
      c.layer_types = detail::alternating_layer_types(c.num_hidden_layers);  // older configs list none
    }
    if (Status s = validate(c); !s) return Error{source + ": " + s.message()};
    return c;
  });
}

// A config as Hugging Face Gemma2Config JSON (the inverse of
// parse_config_json), e.g. for checkpoints written by tools and tests.
// `torch_dtype` names the storage type of the weights that go with it.
inline nlohmann::json to_config_json(const RuntimeConfig& c, const std::string& torch_dtype = "bfloat16") {
  // Floats as the shortest decimal that reads back as the same float: the
  // short decimals Hugging Face writes (1e-06, not 9.99999997e-07), and
  // more digits only where a value needs them (10000.001 is not 10000).
  auto dec = [](float x) {
    char buf[32];
    for (int digits = 1;; ++digits) {
      std::snprintf(buf, sizeof buf, "%.*g", digits, static_cast<double>(x));
      const double d = std::strtod(buf, nullptr);
      if (static_cast<float>(d) == x || digits >= 9) return d;  // 9 digits always round-trip
    }
  };
  nlohmann::json types = nlohmann::json::array();
  for (AttentionKind k : c.layer_types)
    types.push_back(k == AttentionKind::Local ? "sliding_attention" : "full_attention");
  nlohmann::json j = {{"architectures", {"Gemma2ForCausalLM"}},
                      {"model_type", "gemma2"},
                      {"hidden_activation", "gelu_pytorch_tanh"},
                      {"hidden_act", "gelu_pytorch_tanh"},
                      {"initializer_range", 0.02},
                      {"use_cache", true},
                      {"pad_token_id", 0},
                      {"eos_token_id", 1},
                      {"bos_token_id", 2},
                      {"tie_word_embeddings", true},
                      {"attention_bias", false},
                      {"attention_dropout", 0.0},
                      {"cache_implementation", "hybrid"},
                      {"layer_types", types},
                      {"torch_dtype", torch_dtype}};
  detail::for_each_field(c, [&](const detail::ConfigField& field, auto v) {
    if constexpr (std::is_same_v<decltype(v), float>) j[field.key] = dec(v);
    else j[field.key] = v;
  });
  return j;
}

// Reads and parses a config.json file.
inline Result<RuntimeConfig> load_config_json(const std::string& path) {
  auto text = detail::read_json_file(path);
  if (!text) return Error{text.message()};
  return parse_config_json(*text, path);
}

GEMMA2_END_NAMESPACE
