#include "model/grammar/dsml_tool_grammar.h"

#include <set>

namespace v4 {
namespace {

using Json = nlohmann::ordered_json;

// Keywords of a tool's parameters schema besides the annotations.
const std::set<std::string, std::less<>> kToolSchemaKeywords = {"type", "properties", "required",
                                                                "additionalProperties"};
const std::set<std::string, std::less<>> kAnnotations = {
    "title",  "description", "default",   "examples",   "$schema", "$id",        "$comment",
    "strict", "readOnly",    "writeOnly", "deprecated", "$defs",   "definitions"};

// A string schema that constrains nothing: its value may be written raw (string="true").
bool plain_string_schema(const Json& schema) {
  if (!schema.is_object() || schema.value("type", Json()) != "string") return false;
  for (auto it = schema.begin(); it != schema.end(); ++it) {
    if (it.key() != "type" && kAnnotations.count(it.key()) == 0) return false;
  }
  return true;
}

// The texts of a schema whose values are a set of strings (enum or const, type string or none):
// such a value may be written raw. Empty when the schema allows anything else.
std::vector<std::string> string_choices(const Json& schema) {
  if (!schema.is_object()) return {};
  if (schema.contains("type") && schema["type"] != "string") return {};
  std::vector<std::string> texts;
  for (auto it = schema.begin(); it != schema.end(); ++it) {
    if (it.key() == "enum" && it.value().is_array()) {
      for (const Json& v : it.value()) {
        if (!v.is_string()) return {};
        texts.push_back(v.get<std::string>());
      }
    } else if (it.key() == "const" && it.value().is_string()) {
      texts.push_back(it.value().get<std::string>());
    } else if (it.key() != "type" && kAnnotations.count(it.key()) == 0) {
      return {};
    }
  }
  if (schema.contains("enum") && schema.contains("const")) return {};  // both: left to JSON
  return texts;
}

// Names go between quotes in a DSML tag and the parser ends them at the first quote.
bool valid_tag_name(std::string_view name) {
  for (char c : name) {
    if (c == '"' || c == '<' || c == '>' || static_cast<unsigned char>(c) < 0x20) return false;
  }
  return true;
}

Status tool_error(const std::string& tool, const std::string& why) {
  return Status::error("tool '" + tool + "': " + why);
}

}  // namespace

Result<DsmlTool> compile_dsml_tool(const std::string& name, const Json& parameters) {
  if (name.empty() || !valid_tag_name(name)) return tool_error(name, "the name cannot be written");
  DsmlTool tool;
  tool.name = name;
  tool.header = name + "\">\n";
  if (parameters.is_null()) return tool;
  if (!parameters.is_object()) return tool_error(name, "'parameters' must be an object");
  for (auto it = parameters.begin(); it != parameters.end(); ++it) {
    if (kToolSchemaKeywords.count(it.key()) == 0 && kAnnotations.count(it.key()) == 0)
      return tool_error(name, "'" + it.key() + "' is not supported (at parameters)");
  }
  if (parameters.contains("type") && parameters["type"] != "object")
    return tool_error(name, "'type' must be 'object' (at parameters)");
  const Json properties = parameters.value("properties", Json::object());
  if (!properties.is_object())
    return tool_error(name, "'properties' must be an object (at parameters)");
  if (properties.size() > kMaxDsmlParameters)
    return tool_error(name, "more than " + std::to_string(kMaxDsmlParameters) + " properties");
  std::set<std::string> required;
  if (parameters.contains("required")) {
    const Json& list = parameters["required"];
    if (!list.is_array()) return tool_error(name, "'required' must be an array (at parameters)");
    for (const Json& key : list) {
      if (!key.is_string() || !properties.contains(key.get<std::string>()))
        return tool_error(name, "'required' names a property that is not in 'properties'");
      required.insert(key.get<std::string>());
    }
  }
  for (auto it = properties.begin(); it != properties.end(); ++it) {
    if (!valid_tag_name(it.key()))
      return tool_error(name, "property name '" + it.key() + "' cannot be written in a DSML tag");
    // A property's $ref points into the parameters' $defs: the subschema carries them along.
    Json schema = it.value();
    for (const char* defs : {"$defs", "definitions"}) {
      if (parameters.contains(defs) && schema.is_object() && !schema.contains(defs))
        schema[defs] = parameters[defs];
    }
    Result<JsonGrammar> value = compile_json_schema(schema);
    if (!value) return tool_error(name, "property '" + it.key() + "': " + value.message());
    DsmlToolParameter p;
    p.name = it.key();
    p.header = it.key() + "\" string=\"";
    p.required = required.count(it.key()) != 0;
    p.raw_text = plain_string_schema(it.value());
    p.raw_choices = string_choices(it.value());
    // The encoder writes values with Python's json.dumps (spec §5.8): the model's own style.
    value->spaced = true;
    p.value = std::make_shared<const JsonGrammar>(std::move(*value));
    tool.parameters.push_back(std::move(p));
  }
  return tool;
}

Result<DsmlToolGrammar> compile_dsml_tool_grammar(std::string_view source) {
  const Json doc = Json::parse(source, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return Status::error("the tool constraint is not a JSON object");
  DsmlToolGrammar g;
  auto token = [&](const char* key, int32_t& out) -> Status {
    if (!doc.contains(key)) return Status::ok();
    const Json& v = doc[key];
    if (!v.is_number_integer() || v.get<int64_t>() < -1 || v.get<int64_t>() > INT32_MAX)
      return Status::error(std::string("tool constraint: '") + key + "' must be a token id");
    out = v.get<int32_t>();
    return Status::ok();
  };
  if (Status s = token("marker", g.marker_token); !s) return s;
  if (Status s = token("reasoning_end", g.reasoning_end_token); !s) return s;
  if (g.marker_token < 0) return Status::error("tool constraint: no marker token");
  if (doc.contains("reasoning")) {
    if (!doc["reasoning"].is_boolean())
      return Status::error("tool constraint: 'reasoning' must be a boolean");
    g.reasoning = doc["reasoning"].get<bool>();
  }
  if (doc.contains("max_calls")) {
    const Json& v = doc["max_calls"];
    if (!v.is_number_unsigned() || v.get<uint64_t>() == 0 || v.get<uint64_t>() > UINT32_MAX)
      return Status::error("tool constraint: 'max_calls' must be a positive integer");
    g.max_calls = v.get<uint32_t>();
  }
  const std::string start = doc.value("start", std::string("free"));
  if (start == "free") {
    g.start = DsmlStart::kFree;
  } else if (start == "block") {
    g.start = DsmlStart::kBlock;
  } else if (start == "invoke") {
    g.start = DsmlStart::kInvoke;
  } else {
    return Status::error("tool constraint: unknown start '" + start + "'");
  }
  if (!doc.contains("tools") || !doc["tools"].is_array() || doc["tools"].empty() ||
      doc["tools"].size() > kMaxDsmlTools)
    return Status::error("tool constraint: 'tools' must list 1 to " +
                         std::to_string(kMaxDsmlTools) + " tools");
  std::set<std::string> names;
  for (const Json& t : doc["tools"]) {
    if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
      return Status::error("tool constraint: every tool needs a name");
    const std::string name = t["name"].get<std::string>();
    if (!names.insert(name).second)
      return Status::error("tool constraint: tool '" + name + "' is given twice");
    Result<DsmlTool> tool = compile_dsml_tool(name, t.value("parameters", Json()));
    if (!tool) return tool.status();
    g.tools.push_back(std::move(*tool));
  }
  if (g.start == DsmlStart::kInvoke) {
    const std::string forced = doc.value("tool", std::string());
    for (size_t i = 0; i < g.tools.size(); ++i) {
      if (g.tools[i].name == forced) g.start_tool = static_cast<int32_t>(i);
    }
    if (g.start_tool < 0) return Status::error("tool constraint: 'tool' names no listed tool");
  }
  return g;
}

}  // namespace v4
