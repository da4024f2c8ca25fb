// The JSON Schema -> GBNF converter: one pass over the schema that writes
// a rule per object, array, bounded number, pattern and $ref target. The
// subset it takes is listed in gemma2/json_schema.hpp.
#pragma once

#include <cctype>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/grammar/parser.hpp"
#include "gemma2/json_schema/json_gbnf.hpp"
#include "gemma2/json_schema/numbers.hpp"
#include "gemma2/json_schema/regex.hpp"
#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

class SchemaConverter {
 public:
  using json = nlohmann::ordered_json;

  SchemaConverter(const json& root, const JsonGrammarOptions& options) : root_(root), options_(options) {}

  Result<std::string> run() {
    const std::string body = visit(root_, "root", "#");
    if (!error_.empty()) return Error{error_};
    std::string out = "root ::= " + body + "\n";
    for (const auto& [name, text] : rules_) out += name + " ::= " + text + "\n";
    out += json_value_rules(options_);
    // References can loop without any JSON text between them ({"$ref": "#"},
    // or a -> b -> a): the grammar is then left-recursive, which its parser
    // finds; such a schema describes no document. The parser also refuses
    // a grammar too large to follow (a pattern's repetitions multiplied).
    if (auto check = GbnfParser(out, "root").run(); !check) {
      if (check.message().find("left recursion") != std::string::npos)
        return err("JSON Schema: a $ref reaches itself before any JSON text, so the schema describes no document (",
                   check.message(), ")");
      return err("JSON Schema: its grammar cannot be built: ", check.message());
    }
    return out;
  }

 private:
  template <class... Parts>
  std::string fail(const std::string& path, const Parts&... parts) {
    if (error_.empty()) error_ = err("JSON Schema at ", path, ": ", parts...).message;
    return "value";
  }

  // A new rule name from a hint: letters, digits and '-', unique.
  std::string rule_name(const std::string& hint) {
    std::string name;
    for (char c : hint) name += (std::isalnum(static_cast<unsigned char>(c)) ? c : '-');
    if (name.empty()) name = "r";
    std::string unique = name;
    for (int i = 2; !used_.insert(unique).second; ++i) unique = name + "-" + std::to_string(i);
    return unique;
  }
  std::string define(const std::string& hint, const std::string& body) {
    const std::string name = rule_name(hint);
    rules_.emplace_back(name, body);
    return name;
  }

  // A non-negative integer keyword (minLength, maxItems, ...); -1 if absent.
  long count(const json& s, const char* key, const std::string& path) {
    if (!s.contains(key)) return -1;
    const json& v = s[key];
    if (!v.is_number_integer() || v.get<long long>() < 0 || v.get<long long>() > GbnfParser::kMaxRepeat)
      return static_cast<void>(fail(path, "'", key, "' must be an integer from 0 to ", GbnfParser::kMaxRepeat)), 0;
    return static_cast<long>(v.get<long long>());
  }

  // Keywords that constrain values and are not in the subset.
  static bool unsupported(const std::string& key) {
    static const std::set<std::string> kUnsupported = {"multipleOf",
                                                       "not",
                                                       "if",
                                                       "then",
                                                       "else",
                                                       "patternProperties",
                                                       "propertyNames",
                                                       "minProperties",
                                                       "maxProperties",
                                                       "uniqueItems",
                                                       "contains",
                                                       "minContains",
                                                       "maxContains",
                                                       "dependentRequired",
                                                       "dependentSchemas",
                                                       "dependencies",
                                                       "unevaluatedProperties",
                                                       "unevaluatedItems",
                                                       "contentEncoding",
                                                       "contentMediaType",
                                                       "contentSchema",
                                                       "$dynamicRef",
                                                       "$recursiveRef"};
    return kUnsupported.count(key) > 0;
  }
  // Keywords that constrain values and are in the subset.
  static bool assertion(const std::string& key) {
    static const std::set<std::string> kAssertions = {"type",
                                                      "enum",
                                                      "const",
                                                      "properties",
                                                      "required",
                                                      "additionalProperties",
                                                      "items",
                                                      "prefixItems",
                                                      "additionalItems",
                                                      "minItems",
                                                      "maxItems",
                                                      "minLength",
                                                      "maxLength",
                                                      "pattern",
                                                      "format",
                                                      "minimum",
                                                      "maximum",
                                                      "exclusiveMinimum",
                                                      "exclusiveMaximum",
                                                      "anyOf",
                                                      "oneOf",
                                                      "allOf",
                                                      "$ref"};
    return kAssertions.count(key) > 0;
  }
  // Whether a schema (object) says anything beyond annotations.
  static bool asserts(const json& s) {
    for (const auto& [key, v] : s.items())
      if (assertion(key) || unsupported(key)) return true;
    return false;
  }

  // JSON text of a value; invalid UTF-8 in a caller-built document is
  // replaced, never thrown over.
  static std::string dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

  // Schemas nested deeper than this, or expanding to more sub-schemas
  // than this (anyOf merges siblings into each branch), are refused
  // rather than exhausting the stack or the memory.
  static constexpr int kMaxDepth = 128;
  static constexpr size_t kMaxVisits = 100000;

  bool over_limits(const std::string& path) {
    if (!error_.empty()) return true;
    if (depth_ >= kMaxDepth) return fail(path, "schemas nested more than ", kMaxDepth, " deep"), true;
    if (++visits_ > kMaxVisits) return fail(path, "the schema expands to more than ", kMaxVisits, " sub-schemas"), true;
    return false;
  }

  std::string visit(const json& s, const std::string& hint, const std::string& path) {
    if (over_limits(path)) return "value";
    ++depth_;
    std::string out = visit_one(s, hint, path);
    --depth_;
    return out;
  }

  // Draft 4's boolean exclusiveMinimum/Maximum as later drafts write them,
  // and draft 4-7's items array as prefixItems.
  json normalized(const json& s, const std::string& path) {
    json out = s;
    for (const char* key : {"Minimum", "Maximum"}) {
      const std::string ex = std::string("exclusive") + key, plain = key[1] == 'i' ? "minimum" : "maximum";
      if (!out.contains(ex) || !out[ex].is_boolean()) continue;
      const bool strict = out[ex].get<bool>();
      out.erase(ex);
      if (strict && out.contains(plain)) out[ex] = out[plain], out.erase(plain);
    }
    if (out.contains("items") && out["items"].is_array()) {
      if (out.contains("prefixItems"))
        return fail(path, "'items' as an array and 'prefixItems' cannot both be given"), json(false);
      out["prefixItems"] = out["items"];
      out.erase("items");
      if (out.contains("additionalItems")) out["items"] = out["additionalItems"];
    }
    out.erase("additionalItems");
    return out;
  }

  // The member functions below are defined by concept: visiting and
  // typing here, allOf in json_schema/all_of.hpp, numbers and strings in
  // json_schema/scalars.hpp, objects, arrays and $ref in
  // json_schema/structures.hpp (gemma2/json_schema.hpp includes them all).
  std::string visit_one(const json& raw, const std::string& hint, const std::string& path);
  std::vector<std::string> type_list(const json& t, const std::string& path);
  std::vector<json> choices(const json& s, const std::string& path);
  std::string typed(const json& s, const std::string& type, const std::string& hint, const std::string& path);

  // allOf (json_schema/all_of.hpp).
  json flat(const json& s, const std::string& path);
  static json both(const json& a, const json& b);
  json merge(const json& a, const json& b, const std::string& path);
  json merge_one(const json& a_in, const json& b_in, const std::string& path);
  bool merge_keyword(json& av, const std::string& key, const json& bv, const json& a, const json& b,
                     const std::string& path);
  json conflict(const std::string& why);
  static json merge_types(const std::vector<std::string>& x, const std::vector<std::string>& y);

  // Values, numbers and strings (json_schema/scalars.hpp).
  std::optional<Decimal> number_keyword(const json& s, const char* key, const std::string& path);
  std::optional<NumberBound> bound(const json& s, const char* inclusive, const char* exclusive, bool lower,
                                   const std::string& path);
  bool fits(const json& v, const json& s, const std::string& path);
  std::string literals(const json& s, const std::string& path);
  std::string number_schema(const json& s, bool integer, const std::string& hint, const std::string& path);
  static std::string dump_decimal(const Decimal& d);
  std::string string_schema(const json& s, const std::string& hint, const std::string& path);
  std::string regex_gbnf(const RegexNode& n, const std::string& hint);
  std::string chars_gbnf(const CodeRanges& set, const std::string& hint);
  static std::string json_escape(uint32_t c);
  static std::string class_gbnf(const CodeRanges& set);

  // Objects, arrays and references (json_schema/structures.hpp).
  std::string other_key(const std::vector<std::string>& names, const std::string& hint);
  std::string object(const json& s, const std::string& hint, const std::string& path);
  std::string array(const json& s, const std::string& hint, const std::string& path);
  const json* resolve(const json& r, const std::string& path);
  std::string ref(const json& r, const std::string& path);

  const json& root_;
  JsonGrammarOptions options_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::set<std::string> used_ = {"root", "value",  "object",  "array",   "string", "char", "hex4",
                                 "hex",  "number", "integer", "boolean", "null",   "ws"};
  std::map<std::string, std::string> refs_, patterns_;
  std::map<CodeRanges, std::string> char_sets_;
  std::string error_, conflict_;
  int depth_ = 0;
  size_t visits_ = 0;
};

inline auto SchemaConverter::visit_one(const json& raw, const std::string& hint, const std::string& path)
    -> std::string {
  if (raw.is_boolean()) return raw.get<bool>() ? "value" : fail(path, "the schema false matches nothing");
  if (!raw.is_object()) return fail(path, "a schema must be an object or a boolean");
  for (const auto& [key, v] : raw.items())
    if (unsupported(key)) return fail(path, "the keyword '", key, "' is not supported");
  if (raw.contains("$ref")) return ref(raw["$ref"], path);
  const json s = normalized(raw, path);
  if (!error_.empty()) return "value";
  if (s.contains("allOf")) {
    const json& list = s["allOf"];
    if (!list.is_array() || list.empty()) return fail(path, "'allOf' must be a non-empty array");
    json merged = s;
    merged.erase("allOf");
    for (size_t i = 0; i < list.size() && error_.empty(); ++i)
      merged = merge(merged, list[i], path + "/allOf/" + std::to_string(i));
    if (!error_.empty()) return "value";
    if (merged.is_boolean() && !merged.get<bool>())
      return fail(path, "no value satisfies every branch of 'allOf' (",
                  conflict_.empty() ? "a branch is false" : conflict_, ")");
    return visit(merged, hint, path);
  }
  if (s.contains("anyOf") || s.contains("oneOf")) {
    // Keywords beside anyOf apply to every branch (both must hold): they
    // are merged into each branch.
    const std::vector<json> branches = choices(s, path);
    json rest = s;
    rest.erase("anyOf");
    rest.erase("oneOf");
    std::string alts;
    for (size_t i = 0; i < branches.size() && error_.empty(); ++i) {
      const std::string at = path + "/" + (s.contains("anyOf") ? "anyOf" : "oneOf") + "/" + std::to_string(i);
      const json branch = merge(rest, branches[i], at);
      if (branch.is_boolean() && !branch.get<bool>()) continue;
      alts += (alts.empty() ? "" : " | ") + visit(branch, hint + "-" + std::to_string(i), at);
    }
    if (!error_.empty()) return "value";
    if (alts.empty()) return fail(path, "'anyOf'/'oneOf' has no branch that matches anything");
    return "(" + alts + ")";
  }
  if (s.contains("const") || s.contains("enum")) return literals(s, path);
  if (s.contains("type")) {
    const std::vector<std::string> types = type_list(s["type"], path);
    std::string alts;
    for (const auto& t : types)
      alts += (alts.empty() ? "" : " | ") + typed(s, t, types.size() == 1 ? hint : hint + "-" + t, path);
    return types.size() == 1 ? alts : "(" + alts + ")";
  }
  // No type: the keywords present say which one is meant.
  auto has = [&](std::initializer_list<const char*> keys) {
    for (const char* k : keys)
      if (s.contains(k)) return true;
    return false;
  };
  if (has({"properties", "required", "additionalProperties"})) return typed(s, "object", hint, path);
  if (has({"items", "prefixItems", "minItems", "maxItems"})) return typed(s, "array", hint, path);
  if (has({"minLength", "maxLength", "pattern"}) ||
      (s.contains("format") && s["format"].is_string() && format_pattern(s["format"])))
    return typed(s, "string", hint, path);
  if (has({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})) return typed(s, "number", hint, path);
  return "value";
}

inline auto SchemaConverter::type_list(const json& t, const std::string& path) -> std::vector<std::string> {
  std::vector<std::string> out;
  if (t.is_string()) {
    out.push_back(t.get<std::string>());
  } else if (t.is_array()) {
    for (const auto& one : t) {
      if (!one.is_string()) return fail(path, "'type' must be a string or a non-empty array of strings"), out;
      out.push_back(one.get<std::string>());
    }
  }
  if (out.empty()) fail(path, "'type' must be a string or a non-empty array of strings");
  return out;
}

// The branches of anyOf and oneOf; both at once: each pair of them.
inline auto SchemaConverter::choices(const json& s, const std::string& path) -> std::vector<json> {
  std::vector<json> out = {json(true)};
  for (const char* key : {"anyOf", "oneOf"}) {
    if (!s.contains(key)) continue;
    const json& list = s[key];
    if (!list.is_array() || list.empty())
      return fail(path, "'", key, "' must be a non-empty array"), std::vector<json>{};
    if (out.size() * list.size() > kMaxVisits)
      return fail(path, "the schema expands to more than ", kMaxVisits, " sub-schemas"), std::vector<json>{};
    std::vector<json> next;
    for (const auto& a : out)
      for (const auto& b : list) next.push_back(a.is_boolean() ? b : json{{"allOf", {a, b}}});
    out = std::move(next);
  }
  return out;
}

inline auto SchemaConverter::typed(const json& s, const std::string& type, const std::string& hint,
                                   const std::string& path) -> std::string {
  if (type == "string") return string_schema(s, hint, path);
  if (type == "number" || type == "integer") return number_schema(s, type == "integer", hint, path);
  if (type == "boolean" || type == "null") return type;
  if (type == "object") return object(s, hint, path);
  if (type == "array") return array(s, hint, path);
  return fail(path, "unknown type '", type, "'");
}

}  // namespace detail

GEMMA2_END_NAMESPACE
