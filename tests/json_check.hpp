// A JSON Schema validator for the converter's subset, written from the
// specification (not from the converter), with hand-written checks of the
// formats it supports: what the grammar and JSON Schema tests compare the
// converter's grammars with.
#pragma once

#include <algorithm>
#include <cstdint>
#include <regex>
#include <string>

#include "support.hpp"

namespace test {

using nlohmann::ordered_json;
// UTF-8 to code points, for std::wregex (a wchar_t holds one on Linux and
// macOS; Windows builds check ASCII text only).
inline std::wstring wide(const std::string& s) {
  std::wstring out;
  for (size_t i = 0; i < s.size();) {
    uint32_t cp = 0xFFFD;  // for a byte that is not UTF-8
    const int n = gemma2::detail::utf8_decode(reinterpret_cast<const unsigned char*>(s.data()) + i, s.size() - i, cp);
    out += static_cast<wchar_t>(n > 0 ? cp : 0xFFFD);
    i += n > 0 ? static_cast<size_t>(n) : 1;
  }
  return out;
}

// ---- Formats, by hand ----

inline bool digits(const std::string& s, size_t at, size_t n) {
  if (at + n > s.size()) return false;
  for (size_t i = at; i < at + n; ++i)
    if (s[i] < '0' || s[i] > '9') return false;
  return true;
}
inline int number_at(const std::string& s, size_t at, size_t n) { return std::stoi(s.substr(at, n)); }

inline bool valid_date(const std::string& s) {
  if (s.size() != 10 || !digits(s, 0, 4) || s[4] != '-' || !digits(s, 5, 2) || s[7] != '-' || !digits(s, 8, 2))
    return false;
  const int y = number_at(s, 0, 4), m = number_at(s, 5, 2), d = number_at(s, 8, 2);
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  const int days[] = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m >= 1 && m <= 12 && d >= 1 && d <= days[m - 1];
}

// RFC 3339 full-time; `strict`: the converter's documented subset too
// (seconds to 59, at most nine decimals, upper-case Z).
inline bool valid_time(const std::string& s, bool strict) {
  if (!digits(s, 0, 2) || s.size() < 9 || s[2] != ':' || !digits(s, 3, 2) || s[5] != ':' || !digits(s, 6, 2))
    return false;
  if (number_at(s, 0, 2) > 23 || number_at(s, 3, 2) > 59 || number_at(s, 6, 2) > (strict ? 59 : 60)) return false;
  size_t i = 8;
  if (s[i] == '.') {
    const size_t start = ++i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start || (strict && i - start > 9)) return false;
  }
  const std::string zone = s.substr(i);
  if (zone == "Z" || (!strict && zone == "z")) return true;
  return zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && digits(zone, 1, 2) && zone[3] == ':' &&
         digits(zone, 4, 2) && number_at(zone, 1, 2) <= 23 && number_at(zone, 4, 2) <= 59;
}

inline bool valid_date_time(const std::string& s, bool strict) {
  return s.size() > 11 && (s[10] == 'T' || (!strict && s[10] == 't')) && valid_date(s.substr(0, 10)) &&
         valid_time(s.substr(11), strict);
}

inline bool valid_uuid(const std::string& s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash != (s[i] == '-')) return false;
    if (!dash && !std::isxdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  return true;
}

inline bool valid_ipv4(const std::string& s) {
  int parts = 0;
  for (size_t i = 0; i <= s.size(); ++parts) {
    const size_t end = std::min(s.find('.', i), s.size());
    const std::string part = s.substr(i, end - i);
    if (part.empty() || part.size() > 3 || !digits(part, 0, part.size()) || (part.size() > 1 && part[0] == '0') ||
        std::stoi(part) > 255)
      return false;
    i = end + 1;
  }
  return parts == 4;
}

inline bool valid_format(const std::string& format, const std::string& s) {
  if (format == "date") return valid_date(s);
  if (format == "time") return valid_time(s, false);
  if (format == "date-time") return valid_date_time(s, false);
  if (format == "uuid") return valid_uuid(s);
  if (format == "ipv4") return valid_ipv4(s);
  return true;  // an annotation
}

// ---- A schema validator, written from the specification ----

inline bool below(const ordered_json& a, const ordered_json& b) {  // a < b, exactly for integers, else as doubles
  if (a.is_number_integer() && b.is_number_integer()) return a.get<int64_t>() < b.get<int64_t>();
  return a.get<double>() < b.get<double>();
}

inline bool conforms(const ordered_json& v, const ordered_json& schema, const ordered_json& root) {
  if (schema.is_boolean()) return schema.get<bool>();
  if (schema.contains("$ref")) {
    const std::string ref = schema["$ref"];
    return conforms(v, root.at(ordered_json::json_pointer(ref.substr(1))), root);
  }
  if (schema.contains("allOf"))
    for (const auto& s : schema["allOf"])
      if (!conforms(v, s, root)) return false;
  if (schema.contains("anyOf")) {
    bool any = false;
    for (const auto& s : schema["anyOf"]) any = any || conforms(v, s, root);
    if (!any) return false;
  }
  if (schema.contains("oneOf")) {
    int n = 0;
    for (const auto& s : schema["oneOf"]) n += conforms(v, s, root);
    if (n != 1) return false;
  }
  if (schema.contains("const") && v != schema["const"]) return false;
  if (schema.contains("enum") && std::find(schema["enum"].begin(), schema["enum"].end(), v) == schema["enum"].end())
    return false;
  if (schema.contains("type")) {
    std::vector<std::string> types;
    if (schema["type"].is_string()) types.push_back(schema["type"]);
    else
      for (const auto& t : schema["type"]) types.push_back(t);
    bool ok = false;
    for (const auto& t : types)
      ok = ok || (t == "object" && v.is_object()) || (t == "array" && v.is_array()) ||
           (t == "string" && v.is_string()) || (t == "number" && v.is_number()) || (t == "boolean" && v.is_boolean()) ||
           (t == "null" && v.is_null()) ||
           (t == "integer" &&
            (v.is_number_integer() || (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>())));
    if (!ok) return false;
  }
  if (v.is_number()) {
    const bool draft4_min = schema.contains("exclusiveMinimum") && schema["exclusiveMinimum"] == true;
    const bool draft4_max = schema.contains("exclusiveMaximum") && schema["exclusiveMaximum"] == true;
    if (schema.contains("minimum") && (below(v, schema["minimum"]) || (draft4_min && v == schema["minimum"])))
      return false;
    if (schema.contains("maximum") && (below(schema["maximum"], v) || (draft4_max && v == schema["maximum"])))
      return false;
    if (schema.contains("exclusiveMinimum") && schema["exclusiveMinimum"].is_number() &&
        !below(schema["exclusiveMinimum"], v))
      return false;
    if (schema.contains("exclusiveMaximum") && schema["exclusiveMaximum"].is_number() &&
        !below(v, schema["exclusiveMaximum"]))
      return false;
  }
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    const size_t n = wide(s).size();
    if (schema.contains("minLength") && n < schema["minLength"].get<size_t>()) return false;
    if (schema.contains("maxLength") && n > schema["maxLength"].get<size_t>()) return false;
    if (schema.contains("pattern") &&
        !std::regex_search(wide(s), std::wregex(wide(schema["pattern"].get<std::string>()))))
      return false;
    if (schema.contains("format") && !valid_format(schema["format"], s)) return false;
  }
  if (v.is_object()) {
    if (schema.contains("required"))
      for (const auto& k : schema["required"])
        if (!v.contains(k.get<std::string>())) return false;
    for (const auto& [k, x] : v.items()) {
      if (schema.contains("properties") && schema["properties"].contains(k)) {
        if (!conforms(x, schema["properties"][k], root)) return false;
      } else if (schema.contains("additionalProperties") && !conforms(x, schema["additionalProperties"], root)) {
        return false;
      }
    }
  }
  if (v.is_array()) {
    if (schema.contains("minItems") && v.size() < schema["minItems"].get<size_t>()) return false;
    if (schema.contains("maxItems") && v.size() > schema["maxItems"].get<size_t>()) return false;
    // Draft 2020: prefixItems then items; drafts 4-7: items as an array then additionalItems.
    const bool old_tuple = schema.contains("items") && schema["items"].is_array();
    const ordered_json prefix = old_tuple ? schema["items"] : schema.value("prefixItems", ordered_json::array());
    const ordered_json rest =
        old_tuple ? schema.value("additionalItems", ordered_json(true)) : schema.value("items", ordered_json(true));
    for (size_t i = 0; i < v.size(); ++i)
      if (!conforms(v[i], i < prefix.size() ? prefix[i] : rest, root)) return false;
  }
  return true;
}

inline bool valid_json(const std::string& text, const ordered_json& schema) {
  const auto v = ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  return !v.is_discarded() && conforms(v, schema, schema);
}

}  // namespace test
