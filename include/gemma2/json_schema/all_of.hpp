// allOf: the schemas that must all hold, merged into one (properties,
// required, bounds, types, enums, items, tuples and anyOf branches), so the
// converter writes one rule for what they allow together.
#pragma once

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "gemma2/json_schema/converter.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

// The schema a $ref or allOf stands for, at the top only: what it
// points at, with allOf merged.
inline auto SchemaConverter::flat(const json& s, const std::string& path) -> json {
  if (!s.is_object()) return s;
  if (s.contains("$ref")) {
    const json* target = over_limits(path) ? nullptr : resolve(s["$ref"], path);
    if (!target) return json(false);
    ++depth_;
    json out = flat(*target, path);
    --depth_;
    return out;
  }
  json out = normalized(s, path);
  if (!out.contains("allOf")) return out;
  const json list = out["allOf"];
  if (!list.is_array() || list.empty()) return fail(path, "'allOf' must be a non-empty array"), json(false);
  out.erase("allOf");
  for (size_t i = 0; i < list.size() && error_.empty(); ++i)
    out = merge(out, list[i], path + "/allOf/" + std::to_string(i));
  return out;
}

inline auto SchemaConverter::both(const json& a, const json& b) -> json {
  if (a.is_boolean()) return a.get<bool>() ? b : a;
  if (b.is_boolean()) return b.get<bool>() ? a : b;
  return json{{"allOf", {a, b}}};
}

// One schema holding exactly when both hold (false when none can).
inline auto SchemaConverter::merge(const json& a, const json& b, const std::string& path) -> json {
  if (over_limits(path)) return json(false);
  ++depth_;
  json out = merge_one(a, b, path);
  --depth_;
  return out;
}

inline auto SchemaConverter::merge_one(const json& a_in, const json& b_in, const std::string& path) -> json {
  for (const json* s : {&a_in, &b_in})
    if (!s->is_boolean() && !s->is_object()) return fail(path, "a schema must be an object or a boolean"), json(false);
  if (a_in.is_boolean()) return a_in.get<bool>() ? b_in : json(false);
  if (b_in.is_boolean()) return b_in.get<bool>() ? a_in : json(false);
  if (!asserts(a_in)) return b_in;  // kept whole, so a $ref in it stays one rule
  if (!asserts(b_in)) return a_in;
  const json a = flat(a_in, path), b = flat(b_in, path);
  if (!error_.empty()) return json(false);
  if (a.is_boolean() || b.is_boolean()) return merge(a, b, path);
  json out = a;
  for (const auto& [key, bv] : b.items()) {
    if (!out.contains(key)) {
      out[key] = bv;
      continue;
    }
    if (!merge_keyword(out[key], key, bv, a, b, path)) return json(false);
  }
  if (out.contains("const") && out.contains("enum") && out["enum"].is_array() &&
      std::find(out["enum"].begin(), out["enum"].end(), out["const"]) == out["enum"].end())
    return conflict("the 'const' value is not in the 'enum'");
  // A property one side names and the other does not: the other side's
  // additionalProperties applies to it.
  for (const auto& [x, y] : {std::pair<const json&, const json&>(a, b), std::pair<const json&, const json&>(b, a)}) {
    if (!y.contains("properties") || !x.contains("additionalProperties")) continue;
    for (const auto& [name, schema] : y["properties"].items())
      if (!x.contains("properties") || !x["properties"].contains(name))
        out["properties"][name] = both(out["properties"][name], x["additionalProperties"]);
  }
  // Tuples: element i is under both sides' schema for position i.
  if (a.contains("prefixItems") || b.contains("prefixItems")) {
    auto at = [](const json& s, size_t i) -> json {
      if (s.contains("prefixItems") && s["prefixItems"].is_array() && i < s["prefixItems"].size())
        return s["prefixItems"][i];
      return s.contains("items") ? s["items"] : json(true);
    };
    const size_t n =
        std::max(a.value("prefixItems", json::array()).size(), b.value("prefixItems", json::array()).size());
    json prefix = json::array();
    for (size_t i = 0; i < n; ++i) prefix.push_back(both(at(a, i), at(b, i)));
    out["prefixItems"] = prefix;
  }
  auto chooses = [](const json& s) { return s.contains("anyOf") || s.contains("oneOf"); };
  const std::vector<json> alts = choices(chooses(a) ? a : json::object(), path),
                          more = choices(chooses(b) ? b : json::object(), path);
  out.erase("anyOf");
  out.erase("oneOf");
  if (chooses(a) || chooses(b)) {
    if (alts.size() * more.size() > kMaxVisits)
      return fail(path, "the schema expands to more than ", kMaxVisits, " sub-schemas"), json(false);
    json list = json::array();
    for (const auto& x : alts)
      for (const auto& y : more) list.push_back(both(x, y));
    out["anyOf"] = list;
  }
  return error_.empty() ? out : json(false);
}

// Keyword `key` of both sides: `av` (a's value, in the merged schema)
// becomes what holds when both do; false when nothing can (then the
// error or the conflict is set).
inline bool SchemaConverter::merge_keyword(json& av, const std::string& key, const json& bv, const json& a,
                                           const json& b, const std::string& path) {
  if (key == "type") {
    av = merge_types(type_list(av, path), type_list(bv, path));
    if (av.empty()) return conflict("no type is allowed by every branch"), false;
  } else if (key == "required") {
    if (!av.is_array() || !bv.is_array()) return fail(path, "'required' must be an array of strings"), false;
    for (const auto& r : bv)
      if (std::find(av.begin(), av.end(), r) == av.end()) av.push_back(r);
  } else if (key == "properties") {
    if (!av.is_object() || !bv.is_object()) return fail(path, "'properties' must be an object"), false;
    for (const auto& [name, schema] : bv.items()) av[name] = av.contains(name) ? both(av[name], schema) : schema;
  } else if (key == "additionalProperties" || key == "items") {
    av = both(av, bv);
  } else if (key == "minItems" || key == "minLength") {
    av = std::max(av, bv);
  } else if (key == "maxItems" || key == "maxLength") {
    av = std::min(av, bv);
  } else if (key == "minimum" || key == "exclusiveMinimum" || key == "maximum" || key == "exclusiveMaximum") {
    const auto x = number_keyword(a, key.c_str(), path), y = number_keyword(b, key.c_str(), path);
    if (x && y && (compare(*x, *y) < 0) == (key == "minimum" || key == "exclusiveMinimum")) av = bv;
  } else if (key == "enum") {
    if (!av.is_array() || !bv.is_array()) return fail(path, "'enum' must be a non-empty array"), false;
    json common = json::array();
    for (const auto& v : av)
      if (std::find(bv.begin(), bv.end(), v) != bv.end()) common.push_back(v);
    if (common.empty()) return conflict("no value is in every 'enum'"), false;
    av = common;
  } else if (key == "const") {
    if (av != bv) return conflict("two different 'const' values"), false;
  } else if (key == "pattern" || key == "format") {
    const bool is_pattern = key == "pattern";
    auto checked = [&](const json& v) { return is_pattern || (v.is_string() && format_pattern(v.get<std::string>())); };
    if (checked(av) && checked(bv) && av != bv)
      return fail(path, "'allOf': two different '", key, "' values cannot both be required"), false;
    if (checked(bv)) av = bv;
  }
  return true;
}

// Two schemas no value satisfies together: false, and why (for allOf's
// error; anyOf drops such a branch).
inline auto SchemaConverter::conflict(const std::string& why) -> json {
  conflict_ = why;
  return json(false);
}

inline auto SchemaConverter::merge_types(const std::vector<std::string>& x, const std::vector<std::string>& y) -> json {
  auto in = [](const std::vector<std::string>& list, const std::string& t) {
    return std::find(list.begin(), list.end(), t) != list.end();
  };
  json out = json::array();
  for (const auto& t : x)
    if (in(y, t) || (t == "integer" && in(y, "number"))) out.push_back(t);
  if (in(x, "number") && in(y, "integer") && !in(x, "integer")) out.push_back("integer");
  return out;
}

}  // namespace detail

GEMMA2_END_NAMESPACE
