// JSON Schema -> GBNF grammar (grammar.hpp), for output a program can parse.
//
// The subset (all that llama.cpp's converter takes, and exact where it is
// not):
// - type (one or a list), enum and const (values kept only where the
//   schema's type, bounds and lengths allow them);
// - objects: properties (written in the schema's order), required,
//   additionalProperties (false, true or a schema; other keys never repeat a
//   named property);
// - arrays: items, prefixItems (tuples; items then covers the elements after
//   them, false for none; draft 4-7's items array and additionalItems too),
//   minItems, maxItems;
// - strings: minLength, maxLength (code points), pattern (ECMAScript regular
//   expressions over code points: literals, escapes, ., classes, \d \w \s
//   and their negations, groups, alternation, ? * + {m} {m,} {m,n}, ^ and $
//   at the start and end of the pattern or of its top-level alternatives; a
//   pattern without them matches anywhere in the string, as JSON Schema
//   says), format date, time, date-time (RFC 3339), uuid and ipv4 (other
//   formats are annotations);
// - numbers and integers: minimum, maximum, exclusiveMinimum and
//   exclusiveMaximum (draft 4's boolean form too), exactly;
// - anyOf and oneOf (oneOf as anyOf: its branches are meant to exclude each
//   other), allOf (merged into one schema: properties, required, bounds,
//   types, enums, items), and $ref to local definitions ("#/$defs/name",
//   "#/definitions/name" or any "#/..." pointer, recursion included;
//   keywords beside $ref are ignored, as in draft 7).
// Annotations (title, description, default, examples, other formats,
// $schema, $id, $comment, ...) are ignored. Other assertions (multipleOf,
// not, if/then/else, patternProperties, uniqueItems, contains, ...) are
// errors naming the keyword and where it is, since the output could not be
// guaranteed to satisfy them.
//
// The text produced: properties in the schema's order (required ones
// always, optional ones where the model chooses), no properties the schema
// does not name unless additionalProperties allows them, whitespace between
// tokens as JsonGrammarOptions says (none by default), numbers short enough
// to be read back exactly (integers of at most 16 digits; a bounded number
// has no exponent and at most 15 significant digits, so a validator that
// reads it as a double still sees it within its bounds), and no \u escape
// of a lone surrogate (which strict parsers refuse). The grammar ends with
// the value: it is complete at its closing character.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "gemma2/grammar.hpp"
#include "gemma2/json_schema/all_of.hpp"
#include "gemma2/json_schema/converter.hpp"
#include "gemma2/json_schema/json_gbnf.hpp"
#include "gemma2/json_schema/scalars.hpp"
#include "gemma2/json_schema/structures.hpp"
#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

// GBNF text for a JSON Schema given as a document (properties keep their
// order; see the subset at the top of this file).
inline Result<std::string> json_schema_to_gbnf(const nlohmann::ordered_json& schema,
                                               const JsonGrammarOptions& options = {}) {
  return detail::guard("converting a JSON Schema",
                       [&]() -> Result<std::string> { return detail::SchemaConverter(schema, options).run(); });
}

// The same from JSON text.
inline Result<std::string> json_schema_to_gbnf(std::string_view schema, const JsonGrammarOptions& options = {}) {
  return detail::guard("converting a JSON Schema", [&]() -> Result<std::string> {
    const auto doc = nlohmann::ordered_json::parse(schema.begin(), schema.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded()) return detail::err("JSON Schema: not valid JSON");
    return detail::SchemaConverter(doc, options).run();
  });
}

inline Result<std::string> json_schema_to_gbnf(const char* schema, const JsonGrammarOptions& options = {}) {
  return json_schema_to_gbnf(std::string_view(schema), options);
}
inline Result<std::string> json_schema_to_gbnf(const std::string& schema, const JsonGrammarOptions& options = {}) {
  return json_schema_to_gbnf(std::string_view(schema), options);
}

// The grammar of a JSON Schema (text), ready for a GrammarConstraint.
inline Result<Grammar> json_schema_grammar(std::string_view schema, const JsonGrammarOptions& options = {}) {
  auto gbnf = json_schema_to_gbnf(schema, options);
  if (!gbnf) return Error{gbnf.message()};
  return Grammar::parse(*gbnf);
}

GEMMA2_END_NAMESPACE
