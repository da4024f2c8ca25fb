// The plain JSON grammar (any value, RFC 8259) in GBNF, its whitespace
// options, and the helpers that write GBNF text, on which the JSON Schema
// converter (json_schema/converter.hpp) builds.
#pragma once

#include <string>
#include <string_view>

#include "gemma2/version.hpp"

GEMMA2_BEGIN_NAMESPACE

// Whitespace between the tokens of the JSON a grammar writes (never inside
// strings, where it is text).
enum class JsonWhitespace {
  // None: {"a":1,"b":[2,3]}. The default: a budget counts tokens, and a
  // small model allowed to indent spends it on spaces (the demo model's
  // strings came out empty), while a program parses either text the same.
  Compact,
  Spaces,  // at most one space between tokens: {"a": 1, "b": [2, 3]}
  Free,    // a space, or a line break and up to 16 spaces or tabs (pretty-printed JSON)
};

// How a JSON or JSON-Schema grammar writes its text.
struct JsonGrammarOptions {
  JsonWhitespace whitespace = JsonWhitespace::Compact;
};

// GBNF rules for any JSON value (RFC 8259), without a root rule; the
// schema converter builds on them. Every rule puts `ws` between tokens.
inline std::string json_value_rules(const JsonGrammarOptions& options = {}) {
  const char* ws = options.whitespace == JsonWhitespace::Free     ? R"(( " " | "\n" [ \t]{0,16} )?)"
                   : options.whitespace == JsonWhitespace::Spaces ? R"(" "?)"
                                                                  : R"("")";
  return std::string(R"(value   ::= object | array | string | number | "true" | "false" | "null"
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
ws      ::= )") +
         ws + "\n";
}

// A grammar for any JSON value.
inline std::string json_gbnf(const JsonGrammarOptions& options = {}) {
  return "root ::= value\n" + json_value_rules(options);
}

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

// "(x)" repeated lo to hi times (hi < 0: unbounded) in GBNF; "" for none.
inline std::string gbnf_repeat(const std::string& x, long lo, long hi) {
  if (hi == 0) return "";
  if (lo == 0 && hi < 0) return "(" + x + ")*";
  if (lo == 1 && hi < 0) return "(" + x + ")+";
  if (lo == 0 && hi == 1) return "(" + x + ")?";
  if (hi < 0) return "(" + x + "){" + std::to_string(lo) + ",}";
  if (lo == hi) return lo == 1 ? x : "(" + x + "){" + std::to_string(lo) + "}";
  return "(" + x + "){" + std::to_string(lo) + "," + std::to_string(hi) + "}";
}

}  // namespace detail

GEMMA2_END_NAMESPACE
