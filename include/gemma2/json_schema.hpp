// JSON Schema -> GBNF grammar (grammar.hpp), for output a program can parse.
//
// The subset: type (one or a list), object with properties / required /
// additionalProperties, array with items / minItems / maxItems, string with
// minLength / maxLength, number, integer, boolean, null, enum, const,
// anyOf / oneOf, and $ref to local definitions ("#/$defs/name",
// "#/definitions/name" or any "#/..." pointer, recursion included).
// Annotations (title, description, default, examples, format, $schema,
// $id, $comment, ...) are ignored. Other assertions (pattern, minimum,
// allOf, ...) are errors naming the keyword and where it is, since the
// output could not be guaranteed to satisfy them.
//
// The text produced: properties in the schema's order (required ones
// always, optional ones where the model chooses), no properties the schema
// does not name unless additionalProperties allows them, between tokens of
// JSON at most one space or a line break and 16 spaces or tabs, numbers short enough to be
// read back exactly (integers of at most 16 digits), and no \u escape of
// a lone surrogate (which strict parsers refuse). The grammar ends with the
// value: it is complete at its closing character.
#pragma once

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/grammar.hpp"
#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

// GBNF rules for any JSON value (RFC 8259), without a root rule; the
// schema converter builds on them.
inline const char* json_value_rules() {
  return R"(value   ::= object | array | string | number | "true" | "false" | "null"
object  ::= "{" ws ( string ws ":" ws value ws ( "," ws string ws ":" ws value ws )* )? "}"
array   ::= "[" ws ( value ws ( "," ws value ws )* )? "]"
string  ::= "\"" char* "\""
char    ::= [^"\\\x00-\x1F] | "\\" ( ["\\/bfnrt] | "u" hex4 )
hex4    ::= [0-9a-cA-Ce-fE-F] hex hex hex | [dD] [0-7] hex hex
hex     ::= [0-9a-fA-F]
number  ::= integer ( "." [0-9]{1,16} )? ( [eE] [-+]? [0-9]{1,2} )?
integer ::= "-"? ( "0" | [1-9] [0-9]{0,15} )
boolean ::= "true" | "false"
null    ::= "null"
ws      ::= ( " " | "\n" [ \t]{0,16} )?
)";
}

// A grammar for any JSON value.
inline std::string json_gbnf() { return std::string("root ::= value\n") + json_value_rules(); }

namespace detail {

// A GBNF string literal for UTF-8 text.
inline std::string gbnf_literal(std::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7F) {
      static const char* hex = "0123456789ABCDEF";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

class SchemaConverter {
 public:
  using json = nlohmann::ordered_json;

  explicit SchemaConverter(const json& root) : root_(root) {}

  Result<std::string> run() {
    const std::string body = visit(root_, "root", "#");
    if (!error_.empty()) return Error{error_};
    std::string out = "root ::= " + body + "\n";
    for (const auto& [name, text] : rules_) out += name + " ::= " + text + "\n";
    out += json_value_rules();
    // References can loop without any JSON text between them ({"$ref": "#"},
    // or a -> b -> a): the grammar is then left-recursive, which its parser
    // finds; such a schema describes no document.
    if (auto check = GbnfParser(out, "root").run(); !check)
      return err("JSON Schema: a $ref reaches itself before any JSON text, so the schema describes no document (",
                 check.message(), ")");
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

  static std::string repeat(const std::string& x, long lo, long hi) {  // hi < 0: unbounded
    if (hi == 0) return "";
    if (lo == 0 && hi < 0) return "(" + x + ")*";
    if (lo == 1 && hi < 0) return "(" + x + ")+";
    if (lo == 0 && hi == 1) return "(" + x + ")?";
    if (hi < 0) return "(" + x + "){" + std::to_string(lo) + ",}";
    if (lo == hi) return "(" + x + "){" + std::to_string(lo) + "}";
    return "(" + x + "){" + std::to_string(lo) + "," + std::to_string(hi) + "}";
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
    static const std::set<std::string> kUnsupported = {
        "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "allOf", "not",
        "if", "then", "else", "patternProperties", "propertyNames", "minProperties", "maxProperties",
        "uniqueItems", "contains", "minContains", "maxContains", "prefixItems", "additionalItems",
        "dependentRequired", "dependentSchemas", "dependencies", "unevaluatedProperties", "unevaluatedItems",
        "contentEncoding", "contentMediaType", "contentSchema", "$dynamicRef", "$recursiveRef"};
    return kUnsupported.count(key) > 0;
  }

  // JSON text of a value; invalid UTF-8 in a caller-built document is
  // replaced, never thrown over.
  static std::string dump(const json& v) { return v.dump(-1, ' ', false, json::error_handler_t::replace); }

  // Schemas nested deeper than this, or expanding to more sub-schemas
  // than this (anyOf merges siblings into each branch), are refused
  // rather than exhausting the stack or the memory.
  static constexpr int kMaxDepth = 128;
  static constexpr size_t kMaxVisits = 100000;

  std::string visit(const json& s, const std::string& hint, const std::string& path) {
    if (!error_.empty()) return "value";
    if (depth_ >= kMaxDepth) return fail(path, "schemas nested more than ", kMaxDepth, " deep");
    if (++visits_ > kMaxVisits) return fail(path, "the schema expands to more than ", kMaxVisits, " sub-schemas");
    ++depth_;
    std::string out = visit_one(s, hint, path);
    --depth_;
    return out;
  }

  std::string visit_one(const json& s, const std::string& hint, const std::string& path) {
    if (s.is_boolean()) return s.get<bool>() ? "value" : fail(path, "the schema false matches nothing");
    if (!s.is_object()) return fail(path, "a schema must be an object or a boolean");
    for (const auto& [key, v] : s.items())
      if (unsupported(key)) return fail(path, "the keyword '", key, "' is not supported");
    if (s.contains("$ref")) return ref(s["$ref"], path);
    if (s.contains("const")) return gbnf_literal(dump(s["const"]));
    if (s.contains("enum")) {
      const json& e = s["enum"];
      if (!e.is_array() || e.empty()) return fail(path, "'enum' must be a non-empty array");
      std::string alts;
      for (const auto& v : e) alts += (alts.empty() ? "" : " | ") + gbnf_literal(dump(v));
      return "(" + alts + ")";
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      const json& list = s[key];
      if (!list.is_array() || list.empty()) return fail(path, "'", key, "' must be a non-empty array");
      // Keywords beside anyOf apply to every branch (both must hold): they
      // are merged into each branch.
      json rest = s;
      rest.erase(key);
      std::string alts;
      for (size_t i = 0; i < list.size(); ++i) {
        const std::string at = path + "/" + key + "/" + std::to_string(i);
        if (list[i].is_boolean() && !list[i].get<bool>()) continue;
        if (!list[i].is_boolean() && !list[i].is_object()) return fail(at, "a schema must be an object or a boolean");
        json branch = rest;  // the branch's own keywords win
        if (list[i].is_object()) branch.update(list[i]);
        alts += (alts.empty() ? "" : " | ") + visit(branch, hint + "-" + std::to_string(i), at);
      }
      if (alts.empty()) return fail(path, "'", key, "' has no branch that matches anything");
      return "(" + alts + ")";
    }
    if (s.contains("type")) {
      const json& t = s["type"];
      if (t.is_string()) return typed(s, t.get<std::string>(), hint, path);
      if (!t.is_array() || t.empty()) return fail(path, "'type' must be a string or a non-empty array of strings");
      std::string alts;
      for (const auto& one : t) {
        if (!one.is_string()) return fail(path, "'type' must be a string or a non-empty array of strings");
        alts += (alts.empty() ? "" : " | ") + typed(s, one.get<std::string>(), hint + "-" + one.get<std::string>(), path);
      }
      return "(" + alts + ")";
    }
    // No type: the keywords present say which one is meant.
    if (s.contains("properties") || s.contains("required") || s.contains("additionalProperties")) return typed(s, "object", hint, path);
    if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) return typed(s, "array", hint, path);
    if (s.contains("minLength") || s.contains("maxLength")) return typed(s, "string", hint, path);
    return "value";
  }

  std::string typed(const json& s, const std::string& type, const std::string& hint, const std::string& path) {
    if (type == "string") {
      const long lo = count(s, "minLength", path), hi = count(s, "maxLength", path);
      if (hi >= 0 && lo > hi) return fail(path, "minLength ", lo, " is above maxLength ", hi);
      if (lo <= 0 && hi < 0) return "string";
      return "\"\\\"\" " + repeat("char", std::max(lo, 0L), hi) + " \"\\\"\"";
    }
    if (type == "number" || type == "integer" || type == "boolean" || type == "null") return type;
    if (type == "object") return object(s, hint, path);
    if (type == "array") return array(s, hint, path);
    return fail(path, "unknown type '", type, "'");
  }

  std::string object(const json& s, const std::string& hint, const std::string& path) {
    const json no_properties = json::object();
    const json& props = s.contains("properties") ? s["properties"] : no_properties;
    if (!props.is_object()) return fail(path, "'properties' must be an object");
    std::set<std::string> required;
    if (s.contains("required")) {
      if (!s["required"].is_array()) return fail(path, "'required' must be an array of strings");
      for (const auto& r : s["required"]) {
        if (!r.is_string()) return fail(path, "'required' must be an array of strings");
        required.insert(r.get<std::string>());
      }
    }
    // Other properties: with neither properties nor additionalProperties
    // any object, otherwise only where additionalProperties allows them.
    std::string extra;
    if (!s.contains("additionalProperties")) {
      if (!s.contains("properties") && required.empty()) return "object";
    } else if (!(s["additionalProperties"].is_boolean() && !s["additionalProperties"].get<bool>())) {
      extra = "string ws \":\" ws " + visit(s["additionalProperties"], hint + "-additional", path + "/additionalProperties") + " ws";
    }
    struct Property {
      std::string kv;
      bool required;
    };
    std::vector<Property> list;
    for (const auto& [key, schema] : props.items()) {
      const std::string value = visit(schema, hint + "-" + key, path + "/properties/" + key);
      list.push_back({gbnf_literal(dump(json(key))) + " ws \":\" ws " + value + " ws", required.count(key) > 0});
    }
    for (const std::string& key : required)  // required but not described: any value
      if (!props.contains(key)) list.push_back({gbnf_literal(dump(json(key))) + " ws \":\" ws value ws", true});
    // first_i: properties i.. with none before them (no leading comma);
    // after_i: properties i.. after one (each with a leading comma).
    std::string after = extra.empty() ? "" : define(hint + "-rest", "( \",\" ws " + extra + " )*");
    std::string first = extra.empty() ? "" : define(hint + "-any", "( " + extra + " ( \",\" ws " + extra + " )* )?");
    auto then = [](const std::string& a, const std::string& b) { return b.empty() ? a : a + " " + b; };
    for (size_t i = list.size(); i-- > 0;) {
      const Property& p = list[i];
      const std::string a = p.required ? then("\",\" ws " + p.kv, after) : then("( \",\" ws " + p.kv + " )?", after);
      std::string f = then(p.kv, after);
      if (!p.required) f = first.empty() ? "( " + f + " )?" : f + " | " + first;
      first = define(hint + "-first-" + std::to_string(i), f);
      after = define(hint + "-after-" + std::to_string(i), a);
    }
    return define(hint, then("\"{\" ws", first) + " \"}\"");
  }

  std::string array(const json& s, const std::string& hint, const std::string& path) {
    const std::string item = s.contains("items") ? visit(s["items"], hint + "-item", path + "/items") : "value";
    const long lo = std::max(count(s, "minItems", path), 0L), hi = count(s, "maxItems", path);
    if (hi >= 0 && lo > hi) return fail(path, "minItems ", lo, " is above maxItems ", hi);
    if (hi == 0) return "\"[\" ws \"]\"";
    const std::string element = define(hint + "-element", item + " ws");
    const std::string more = repeat("\",\" ws " + element, std::max(lo - 1, 0L), hi < 0 ? -1 : hi - 1);
    const std::string body = element + (more.empty() ? "" : " " + more);
    return define(hint, "\"[\" ws " + (lo == 0 ? "( " + body + " )?" : body) + " \"]\"");
  }

  // "#/a/b" in this document; each target becomes one rule, so recursive
  // definitions refer to themselves.
  std::string ref(const json& r, const std::string& path) {
    if (!r.is_string()) return fail(path, "'$ref' must be a string");
    const std::string target = r.get<std::string>();
    if (auto it = refs_.find(target); it != refs_.end()) return it->second;
    if (target.rfind("#", 0) != 0) return fail(path, "only references inside the schema (\"#/...\") are supported, not ", target);
    const std::string fragment = target.substr(1);
    if (!fragment.empty() && fragment[0] != '/') return fail(path, "the reference ", target, " is not a JSON pointer");
    // json_pointer throws on malformed text; check its escapes first.
    for (size_t i = 0; i < fragment.size(); ++i)
      if (fragment[i] == '~' && (i + 1 >= fragment.size() || (fragment[i + 1] != '0' && fragment[i + 1] != '1')))
        return fail(path, "the reference ", target, " has a bad '~' escape");
    const json* node = &root_;
    for (size_t at = 1; at <= fragment.size() && !fragment.empty();) {
      const size_t end = std::min(fragment.find('/', at), fragment.size());
      std::string token = fragment.substr(at, end - at);
      for (size_t i = 0; (i = token.find('~', i)) != std::string::npos; ++i)
        token.replace(i, 2, token[i + 1] == '1' ? "/" : "~");
      if (node->is_object() && node->contains(token)) node = &(*node)[token];
      else if (node->is_array() && !token.empty() && token.find_first_not_of("0123456789") == std::string::npos &&
               token.size() < 10 && std::stoul(token) < node->size())
        node = &(*node)[std::stoul(token)];
      else return fail(path, "the reference ", target, " points at nothing");
      at = end + 1;
    }
    const std::string hint = "def-" + (fragment.empty() ? std::string("root") : fragment.substr(fragment.rfind('/') + 1));
    const std::string name = rule_name(hint);
    refs_[target] = name;
    const size_t slot = rules_.size();
    rules_.emplace_back(name, "");
    const std::string body = visit(*node, name, target);
    rules_[slot].second = body;
    return name;
  }

  const json& root_;
  std::vector<std::pair<std::string, std::string>> rules_;
  std::set<std::string> used_ = {"root",    "value", "object",  "array", "string", "char", "hex4",
                                 "hex",     "number", "integer", "boolean", "null", "ws"};
  std::map<std::string, std::string> refs_;
  std::string error_;
  int depth_ = 0;
  size_t visits_ = 0;
};

}  // namespace detail

// GBNF text for a JSON Schema given as a document (properties keep their
// order; see the subset at the top of this file).
inline Result<std::string> json_schema_to_gbnf(const nlohmann::ordered_json& schema) {
  return detail::guard("converting a JSON Schema", [&]() -> Result<std::string> {
    return detail::SchemaConverter(schema).run();
  });
}

// The same from JSON text.
inline Result<std::string> json_schema_to_gbnf(std::string_view schema) {
  return detail::guard("converting a JSON Schema", [&]() -> Result<std::string> {
    const auto doc = nlohmann::ordered_json::parse(schema.begin(), schema.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return detail::err("JSON Schema: not valid JSON");
    return detail::SchemaConverter(doc).run();
  });
}

inline Result<std::string> json_schema_to_gbnf(const char* schema) { return json_schema_to_gbnf(std::string_view(schema)); }
inline Result<std::string> json_schema_to_gbnf(const std::string& schema) { return json_schema_to_gbnf(std::string_view(schema)); }

// The grammar of a JSON Schema (text), ready for a GrammarConstraint.
inline Result<Grammar> json_schema_grammar(std::string_view schema) {
  auto gbnf = json_schema_to_gbnf(schema);
  if (!gbnf) return Error{gbnf.message()};
  return Grammar::parse(*gbnf);
}

GEMMA2_END_NAMESPACE
