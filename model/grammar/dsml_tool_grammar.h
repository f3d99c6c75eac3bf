// Strict function tools: the DSML tool-call block (spec §5.8) as a grammar, so that the calls the
// model writes name an offered tool and carry exactly that tool's parameters, each value valid
// against its JSON schema. The block, as the chat encoder renders calls in history:
//
//   <M tool_calls>\n
//   <M invoke name="NAME">\n
//   <M parameter name="K" string="true">RAW</M parameter>\n      (plain string schemas)
//   <M parameter name="K" string="false">JSON</M parameter>\n    (any schema)
//   </M invoke>\n<M invoke name="NAME2">\n ... </M invoke>\n</M tool_calls>  then the end token
//
// M is the ｜DSML｜ special token: a terminal of its own that only that token id matches (the
// same characters as ordinary text are prose, spec §5.8), so the matcher takes it as a separate
// input beside text bytes. An invoke with no parameters is "NAME">\n\n</M invoke>. Parameters
// may come in any order, each at most once, the required ones always. A RAW value is any UTF-8
// text for a string schema with no constraint, one of the texts of a string enum / const, and
// not allowed otherwise (it ends where "</" meets the marker); JSON values follow
// model/grammar/json_grammar.h, written as the encoder writes them (Python's json.dumps: ", " and
// ": " separators).
//
// Where the constraint starts: kBlock after the forced "\n\n<M tool_calls>\n" (tool_choice
// required), kInvoke after a forced invoke header (a named tool), kFree for tool_choice auto:
// text is free (reasoning until the reasoning-end token, then content) until the marker comes
// right after a "<" in the content, which opens the block (how the parser reads it, spec §5.8).
// The matcher that runs the grammar is model/grammar/dsml_tool_matcher.h.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/grammar/json_grammar.h"

namespace v4 {

struct DsmlToolParameter {
  std::string name;
  std::string header;  // name + "\" string=\"": what follows `parameter name="` in the tag
  bool required = false;
  bool raw_text = false;  // string="true" allowed: a string schema with no constraint
  // string="true" allowed for one of these texts (each followed by "</"): a schema whose values
  // are a set of strings (enum / const), as the encoder writes them raw.
  std::vector<std::string> raw_choices;
  std::shared_ptr<const JsonGrammar> value;  // string="false"
};

struct DsmlTool {
  std::string name;
  std::string header;  // name + "\">\n": what follows `invoke name="` in the tag
  std::vector<DsmlToolParameter> parameters;
};

enum class DsmlStart : uint8_t { kFree, kBlock, kInvoke };

struct DsmlToolGrammar {
  std::vector<DsmlTool> tools;
  int32_t marker_token = -1;
  int32_t reasoning_end_token = -1;  // kFree: closes the reasoning
  bool reasoning = false;            // kFree: the output starts as reasoning
  DsmlStart start = DsmlStart::kFree;
  int32_t start_tool = -1;  // kInvoke: the forced tool
  uint32_t max_calls = std::numeric_limits<uint32_t>::max();
};

inline constexpr size_t kMaxDsmlTools = 128;
inline constexpr size_t kMaxDsmlParameters = 64;  // a used-parameter set is a 64-bit mask

// One strict tool: `parameters` is its JSON schema (null: no parameters), an object schema with
// properties / required / additionalProperties and annotations; each property compiles with
// compile_json_schema. Errors name the keyword and where it is, as for response_format.
Result<DsmlTool> compile_dsml_tool(const std::string& name,
                                   const nlohmann::ordered_json& parameters);

// The constraint as it travels router -> worker (OutputConstraintKind::kDsmlTools), JSON text:
//   {"marker": id, "reasoning_end": id, "reasoning": bool, "start": "free"|"block"|"invoke",
//    "tool": "NAME" (invoke), "max_calls": n (optional),
//    "tools": [{"name": "NAME", "parameters": {schema}}, ...]}
Result<DsmlToolGrammar> compile_dsml_tool_grammar(std::string_view source);

}  // namespace v4
