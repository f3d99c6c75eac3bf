// A JSON-schema subset compiled to a tree of byte-level grammar nodes (what structured outputs
// enforce: OpenAI's response_format json_schema / json_object). The output is compact JSON: no
// whitespace between tokens, object properties in schema order (required ones always, optional
// ones may be left out), no properties beyond the listed ones. Every output the grammar admits
// validates against the schema; the converse does not hold (e.g. a different property order).
//
// Supported: type (one name or a list), properties, required, additionalProperties (false, true
// or a schema: extra properties are never generated), items (one schema for every item) with
// minItems/maxItems, enum, const, anyOf/oneOf (alternatives), allOf with one member, $ref to
// #/$defs/… or #/definitions/… (non-recursive), minimum/maximum/exclusiveMinimum/
// exclusiveMaximum on integers, minLength/maxLength on strings, and annotations (title,
// description, default, examples, $schema, $id, $comment, strict). Anything else is refused
// with the keyword named.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace v4 {

enum class GrammarNodeKind : uint8_t {
  kAnyValue,  // any JSON value (json_object members, schemas without a type)
  kObject,    // the listed properties, in order
  kArray,
  kString,
  kInteger,
  kNumber,
  kLiterals,  // one of a set of exact texts (enum, const, true/false, null)
  kAnyOf,     // one of the alternatives
  kRegex,     // raw text a regular expression matches whole (model/grammar/regex_grammar.h)
};

struct GrammarProperty {
  std::string
      key_text;        // the key's JSON string body after the opening quote, closing quote included
  int32_t value = -1;  // node index
  bool required = false;
};

struct GrammarNode {
  GrammarNodeKind kind = GrammarNodeKind::kAnyValue;
  // kObject. `free_object`: no properties listed, so any members (kAnyValue values) may appear.
  std::vector<GrammarProperty> properties;
  bool free_object = false;
  // kArray: items node (-1: any values).
  int32_t items = -1;
  uint32_t min_items = 0;
  uint32_t max_items = std::numeric_limits<uint32_t>::max();
  // kString: length in characters (code points), as JSON Schema counts.
  uint32_t min_length = 0;
  uint32_t max_length = std::numeric_limits<uint32_t>::max();
  // kInteger: inclusive bounds.
  int64_t minimum = std::numeric_limits<int64_t>::min();
  int64_t maximum = std::numeric_limits<int64_t>::max();
  // kLiterals: compact JSON texts, sorted and distinct.
  std::vector<std::string> literals;
  // kAnyOf: node indices.
  std::vector<int32_t> alternatives;
  // kRegex: a byte NFA of at most 64 states; a matcher state is the set of live NFA states.
  struct RegexEdge {
    uint8_t state, lo, hi, next;  // a byte in [lo, hi] leads from state to next
  };
  std::vector<RegexEdge> regex_edges;
  std::vector<uint64_t> regex_closure;  // by state: the states its epsilon moves reach
  uint64_t regex_start = 0, regex_accept = 0;
};

struct JsonGrammar {
  std::vector<GrammarNode> nodes;
  int32_t root = -1;
  // Python's json.dumps separators: ", " between members and items, ": " after keys (exactly
  // one space each, no other whitespace). DSML tool-call values are written so (spec §5.8).
  bool spaced = false;
};

// Bounds that keep every output finite and every matcher state small.
inline constexpr size_t kMaxGrammarNodes = 4096;
inline constexpr size_t kMaxObjectProperties = 64;  // a key set is a 64-bit mask
inline constexpr size_t kMaxNesting = 24;           // matcher stack depth, any JSON included

// `schema`: a JSON Schema document. Errors name the keyword and where it is
// ("'pattern' is not supported (at properties.name)").
Result<JsonGrammar> compile_json_schema(const nlohmann::ordered_json& schema);
// Any JSON object (response_format json_object).
JsonGrammar json_object_grammar();

// The kinds of output constraint a request can carry (router -> worker as kind + source text).
// kDsmlTools: strict function tools, the DSML tool-call block (model/grammar/dsml_tool_grammar.h).
enum class OutputConstraintKind : uint8_t { kNone, kJsonObject, kJsonSchema, kRegex, kDsmlTools };
const char* output_constraint_name(OutputConstraintKind kind);
// "json_object" / "json_schema" / "regex" / "dsml_tools"; anything else is an error.
Result<OutputConstraintKind> parse_output_constraint_kind(std::string_view name);
// kJsonSchema: `source` is the schema's JSON text; kRegex: the pattern; kJsonObject: ignored.
// kDsmlTools is not a JsonGrammar (compile_dsml_tool_grammar compiles it): an error here.
Result<JsonGrammar> compile_output_constraint(OutputConstraintKind kind, std::string_view source);

}  // namespace v4
