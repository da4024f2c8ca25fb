// JSON read from model files. nlohmann::json keeps the last of two equal keys
// without a word; in a checkpoint that is an ambiguity (two tensors of one
// name, two hidden sizes), so here it is an error naming the key.
#pragma once

#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/io/file.hpp"

GEMMA2_BEGIN_NAMESPACE
namespace detail {

// Parses [begin, end); `what` names the text in errors ("<what>: not valid
// JSON", "<what>: key "k" appears twice in one object").
inline Result<nlohmann::json> parse_json(const char* begin, const char* end, const std::string& what) {
  std::vector<std::set<std::string>> open;  // the keys seen so far in each enclosing object
  std::string duplicate;
  auto check_keys = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& value) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start) {
      open.emplace_back();
    } else if (event == Event::object_end) {
      open.pop_back();
    } else if (event == Event::key && !open.back().insert(value.get<std::string>()).second && duplicate.empty()) {
      duplicate = value.get<std::string>();
    }
    return true;
  };
  return guard("parsing " + what, [&]() -> Result<nlohmann::json> {
    nlohmann::json j = nlohmann::json::parse(begin, end, check_keys, /*allow_exceptions=*/false);
    if (j.is_discarded()) return err(what, ": not valid JSON");
    if (!duplicate.empty()) return err(what, ": key \"", duplicate, "\" appears twice in one object");
    return j;
  });
}

inline Result<nlohmann::json> parse_json(const std::string& text, const std::string& what) {
  return parse_json(text.data(), text.data() + text.size(), what);
}

// The JSON files beside a checkpoint (config.json, the shard index) are
// small; a larger one is not one of them, and is refused before it is read.
constexpr uint64_t kMaxJsonFile = 64u << 20;

// Reads a whole JSON file of at most kMaxJsonFile bytes.
inline Result<std::string> read_json_file(const std::string& path) { return read_file(path, kMaxJsonFile); }

}  // namespace detail
GEMMA2_END_NAMESPACE
