// The converter's structures: objects (properties in the schema's order,
// required, additionalProperties), arrays (items, prefixItems, counts) and
// local $ref targets, each one rule so recursion refers to itself.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "gemma2/utf8.hpp"

#include "gemma2/json_schema/converter.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {

// A JSON string (quotes included) naming none of `names` once decoded.
// Its characters are written one way each (no \u or "\/" escapes), so a
// name has one spelling and each step down the names' trie is exact.
inline auto SchemaConverter::other_key(const std::vector<std::string>& names, const std::string& hint) -> std::string {
  struct Node {
    std::map<uint32_t, size_t> next;
    bool name = false;
  };
  std::vector<Node> trie(1);
  for (const auto& n : names) {
    size_t at = 0;
    for (size_t i = 0; i < n.size();) {
      uint32_t cp = 0;
      // Names come from JSON text, so are valid UTF-8; in a caller-built
      // document an invalid byte counts as U+FFFD, one byte at a time.
      int len = utf8_decode(reinterpret_cast<const unsigned char*>(n.data()) + i, n.size() - i, cp);
      if (len <= 0) cp = 0xFFFD, len = 1;
      i += static_cast<size_t>(len);
      auto it = trie[at].next.find(cp);
      if (it == trie[at].next.end()) {
        it = trie[at].next.emplace(cp, trie.size()).first;
        trie.emplace_back();
      }
      at = it->second;
    }
    trie[at].name = true;
  }
  const CodeRanges kSpelled = {{'\b', '\b'}, {'\t', '\n'}, {'\f', '\r'}, {'"', '"'}, {'\\', '\\'}};  // short escapes
  const CodeRanges writable = code_ranges([&] {
    CodeRanges r = {{0x20, kMaxCodePoint}};
    r.insert(r.end(), kSpelled.begin(), kSpelled.end());
    return r;
  }());
  const std::string key_char = chars_gbnf(writable, "key");
  // Node i: the rest of the key after its prefix, with the key then not a name.
  std::vector<std::string> rule(trie.size());
  for (size_t i = 0; i < trie.size(); ++i) rule[i] = rule_name(hint + "-key-" + std::to_string(i));
  for (size_t i = 0; i < trie.size(); ++i) {
    std::vector<std::string> alts;
    if (!trie[i].name) alts.push_back("\"\"");
    CodeRanges taken;
    for (const auto& [c, child] : trie[i].next) {
      taken.emplace_back(c, c);
      if (contains(writable, c))
        alts.push_back(gbnf_literal(c < 0x20 || c == '"' || c == '\\' ? json_escape(c) : utf8_encode(c)) + " " +
                       rule[child]);
    }
    if (const CodeRanges other = intersect(writable, complement(code_ranges(taken))); !other.empty())
      alts.push_back(chars_gbnf(other, hint + "-key") + " " + key_char + "*");
    std::string body;
    for (const auto& a : alts) body += (body.empty() ? "" : " | ") + a;
    rules_.emplace_back(rule[i], body);
  }
  return "\"\\\"\" " + rule[0] + " \"\\\"\"";
}

inline auto SchemaConverter::object(const json& s, const std::string& hint, const std::string& path) -> std::string {
  const json no_properties = json::object();
  const json& props = s.contains("properties") ? s["properties"] : no_properties;
  if (!props.is_object()) return fail(path, "'properties' must be an object");
  std::vector<std::string> required;
  if (s.contains("required")) {
    if (!s["required"].is_array()) return fail(path, "'required' must be an array of strings");
    for (const auto& r : s["required"]) {
      if (!r.is_string()) return fail(path, "'required' must be an array of strings");
      if (std::find(required.begin(), required.end(), r.get<std::string>()) == required.end())
        required.push_back(r.get<std::string>());
    }
  }
  auto is_required = [&](const std::string& k) {
    return std::find(required.begin(), required.end(), k) != required.end();
  };
  // Other properties: with neither properties nor additionalProperties
  // any object, otherwise only where additionalProperties allows them.
  const bool closed = s.contains("additionalProperties") && s["additionalProperties"].is_boolean() &&
                      !s["additionalProperties"].get<bool>();
  if (!s.contains("additionalProperties") && !s.contains("properties") && required.empty()) return "object";
  struct Property {
    std::string kv;
    bool required;
  };
  std::vector<Property> list;
  std::vector<std::string> names;
  auto add = [&](const std::string& key, const json& schema, const std::string& at) {
    names.push_back(key);
    if (schema.is_boolean() && !schema.get<bool>()) {  // a property that cannot be there
      if (is_required(key))
        fail(at, "the required property '", key,
             "' can have no value (its schema is false, as when an 'additionalProperties': false ",
             "beside 'allOf' or 'anyOf' forbids a property that a branch names)");
      return;
    }
    const std::string value = visit(schema, hint + "-" + key, at);
    list.push_back({gbnf_literal(dump(json(key))) + " ws \":\" ws " + value + " ws", is_required(key)});
  };
  for (const auto& [key, schema] : props.items()) add(key, schema, path + "/properties/" + key);
  // Required but not described: whatever additionalProperties allows.
  for (const std::string& key : required) {
    if (props.contains(key)) continue;
    if (closed) return fail(path, "the required property '", key, "' is not allowed by 'additionalProperties': false");
    add(key, s.value("additionalProperties", json(true)), path + "/additionalProperties");
  }
  std::string extra;
  if (s.contains("additionalProperties") && !closed) {
    const std::string key = names.empty() ? "string" : other_key(names, hint + "-additional");
    extra = key + " ws \":\" ws " +
            visit(s["additionalProperties"], hint + "-additional", path + "/additionalProperties") + " ws";
  }
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

inline auto SchemaConverter::array(const json& s, const std::string& hint, const std::string& path) -> std::string {
  const long lo = std::max(count(s, "minItems", path), 0L), hi = count(s, "maxItems", path);
  if (hi >= 0 && lo > hi) return fail(path, "minItems ", lo, " is above maxItems ", hi);
  std::vector<std::string> prefix;
  if (s.contains("prefixItems")) {
    const json& p = s["prefixItems"];
    if (!p.is_array()) return fail(path, "'prefixItems' must be an array of schemas");
    for (size_t i = 0; i < p.size() && (hi < 0 || static_cast<long>(i) < hi); ++i)
      prefix.push_back(visit(p[i], hint + "-" + std::to_string(i), path + "/prefixItems/" + std::to_string(i)));
  }
  const auto k = static_cast<long>(prefix.size());
  const bool closed = s.contains("items") && s["items"].is_boolean() && !s["items"].get<bool>();
  if (closed && lo > k) return fail(path, "minItems ", lo, " is above the ", k, " items that 'items': false allows");
  // After the tuple: the other elements, as many as the counts allow.
  std::string rest;
  if (!closed && (hi < 0 || hi > k)) {
    const std::string item = s.contains("items") ? visit(s["items"], hint + "-item", path + "/items") : "value";
    const std::string element = define(hint + "-element", item + " ws");
    rest = gbnf_repeat("\",\" ws " + element, std::max(lo - std::max(k, 1L), 0L), hi < 0 ? -1 : hi - std::max(k, 1L));
    if (k == 0) {  // no tuple: the first element has no comma
      const std::string body = element + (rest.empty() ? "" : " " + rest);
      return define(hint, "\"[\" ws " + (lo == 0 ? "( " + body + " )?" : body) + " \"]\"");
    }
  }
  if (k == 0) return "\"[\" ws \"]\"";
  // Element i of the tuple, then what may follow it; optional from minItems on.
  std::string tail = rest;
  for (long i = k - 1; i >= 0; --i) {
    std::string here = prefix[static_cast<size_t>(i)] + " ws" + (tail.empty() ? "" : " " + tail);
    if (i > 0) here = "\",\" ws " + here;
    tail = i >= lo ? "( " + here + " )?" : here;
  }
  return define(hint, "\"[\" ws " + tail + " \"]\"");
}

// What "#/a/b" points at in this document; nullptr (and an error) if nothing.
inline auto SchemaConverter::resolve(const json& r, const std::string& path) -> const json* {
  if (!r.is_string()) return fail(path, "'$ref' must be a string"), nullptr;
  const std::string target = r.get<std::string>();
  if (target.rfind("#", 0) != 0)
    return fail(path, "only references inside the schema (\"#/...\") are supported, not ", target), nullptr;
  const std::string fragment = target.substr(1);
  if (!fragment.empty() && fragment[0] != '/')
    return fail(path, "the reference ", target, " is not a JSON pointer"), nullptr;
  for (size_t i = 0; i < fragment.size(); ++i)
    if (fragment[i] == '~' && (i + 1 >= fragment.size() || (fragment[i + 1] != '0' && fragment[i + 1] != '1')))
      return fail(path, "the reference ", target, " has a bad '~' escape"), nullptr;
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
    else return fail(path, "the reference ", target, " points at nothing"), nullptr;
    at = end + 1;
  }
  return node;
}

// Each target becomes one rule, so recursive definitions refer to themselves.
inline auto SchemaConverter::ref(const json& r, const std::string& path) -> std::string {
  if (r.is_string())
    if (auto it = refs_.find(r.get<std::string>()); it != refs_.end()) return it->second;
  const json* node = resolve(r, path);
  if (!node) return "value";
  const std::string target = r.get<std::string>(), fragment = target.substr(1);
  const std::string hint = "def-" + (fragment.empty() ? std::string("root") : fragment.substr(fragment.rfind('/') + 1));
  const std::string name = rule_name(hint);
  refs_[target] = name;
  const size_t slot = rules_.size();
  rules_.emplace_back(name, "");
  const std::string body = visit(*node, name, target);
  rules_[slot].second = body;
  return name;
}

}  // namespace detail

GEMMA2_END_NAMESPACE
