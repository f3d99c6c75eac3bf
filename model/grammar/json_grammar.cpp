#include "model/grammar/json_grammar.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <unordered_map>

#include "model/grammar/regex_grammar.h"

namespace v4 {
namespace {

using Json = nlohmann::ordered_json;

// Keywords that only describe (no effect on which outputs are valid).
const std::set<std::string, std::less<>> kAnnotations = {
    "title",  "description", "default",   "examples",   "$schema", "$id",        "$comment",
    "strict", "readOnly",    "writeOnly", "deprecated", "$defs",   "definitions"};

class SchemaCompiler {
 public:
  explicit SchemaCompiler(const Json& document) : document_(document) {}

  Result<int32_t> compile(const Json& schema, const std::string& where);
  JsonGrammar take(int32_t root) { return {std::move(nodes_), root}; }

 private:
  Status refuse(const std::string& keyword, const std::string& where, const std::string& why) {
    return Status::error("'" + keyword + "' " + why + (where.empty() ? "" : " (at " + where + ")"));
  }
  int32_t add(GrammarNode node) {
    nodes_.push_back(std::move(node));
    return static_cast<int32_t>(nodes_.size() - 1);
  }
  Result<int32_t> compile_ref(const Json& schema, const std::string& where);
  Result<int32_t> compile_typed(const Json& schema, const std::string& type,
                                const std::string& where);
  Result<int32_t> compile_object(const Json& schema, const std::string& where);
  Result<int32_t> compile_array(const Json& schema, const std::string& where);
  Result<int32_t> compile_integer(const Json& schema, const std::string& where);
  Result<int32_t> compile_string(const Json& schema, const std::string& where);
  Result<int32_t> compile_literals(const Json& values, const std::string& keyword,
                                   const std::string& where);
  Result<int32_t> compile_alternatives(const Json& list, const std::string& keyword,
                                       const std::string& where);
  Status check_keywords(const Json& schema, const std::vector<std::string>& types,
                        const std::string& where);

  const Json& document_;
  std::vector<GrammarNode> nodes_;
  std::unordered_map<std::string, int32_t> compiled_refs_;
  std::vector<std::string> ref_stack_;  // refs being compiled: a repeat is recursion
};

std::string child(const std::string& where, const std::string& name) {
  return where.empty() ? name : where + "." + name;
}

// Keywords each type understands; others are refused rather than ignored.
const std::set<std::string, std::less<>>& keywords_of(const std::string& type) {
  static const std::unordered_map<std::string, std::set<std::string, std::less<>>> table = {
      {"object", {"properties", "required", "additionalProperties"}},
      {"array", {"items", "minItems", "maxItems"}},
      {"string", {"minLength", "maxLength"}},
      {"integer", {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}},
      {"number", {}},
      {"boolean", {}},
      {"null", {}},
  };
  static const std::set<std::string, std::less<>> none;
  auto it = table.find(type);
  return it == table.end() ? none : it->second;
}

// Every keyword must be one some type understands (unknown ones are refused rather than
// ignored). Numeric bounds are enforced on integers only, so beside 'number' they are refused.
Status SchemaCompiler::check_keywords(const Json& schema, const std::vector<std::string>& types,
                                      const std::string& where) {
  const bool number = std::find(types.begin(), types.end(), "number") != types.end();
  for (auto it = schema.begin(); it != schema.end(); ++it) {
    const std::string& key = it.key();
    if (key == "type" || kAnnotations.count(key)) continue;
    const bool bound = keywords_of("integer").count(key) > 0;
    if (bound && number) return refuse(key, where, "is supported on type 'integer' only");
    bool known = false;
    for (const char* type : {"object", "array", "string", "integer"})
      known = known || keywords_of(type).count(key) > 0;
    // A keyword of a type not listed has no effect in JSON Schema; one of no type is unknown.
    if (!known) return refuse(key, where, "is not supported");
  }
  return Status::ok();
}

Result<int32_t> SchemaCompiler::compile(const Json& schema, const std::string& where) {
  if (schema.is_boolean()) {
    if (schema.get<bool>()) return add({});
    return refuse("false", where, "schema admits no value and is not supported");
  }
  if (!schema.is_object()) return Status::error("a schema must be an object (at " + where + ")");
  if (nodes_.size() >= kMaxGrammarNodes) return refuse("schema", where, "is too large");
  if (schema.contains("$ref")) return compile_ref(schema, where);
  // enum/const fix the output whatever else the schema says (a type beside them only repeats it).
  if (schema.contains("const"))
    return compile_literals(Json::array({schema["const"]}), "const", where);
  if (schema.contains("enum")) return compile_literals(schema["enum"], "enum", where);
  for (const char* keyword : {"anyOf", "oneOf"}) {
    // oneOf's "exactly one" is approximated by "one": alternatives meant to be exclusive stay so
    // in what they generate when they are, as usual, told apart by type or by their properties.
    if (schema.contains(keyword)) return compile_alternatives(schema[keyword], keyword, where);
  }
  if (schema.contains("allOf")) {
    const Json& all = schema["allOf"];
    if (!all.is_array() || all.size() != 1)
      return refuse("allOf", where, "is supported with exactly one member only");
    return compile(all[0], child(where, "allOf[0]"));
  }
  if (!schema.contains("type")) {
    // Without a type, the keywords tell which one is meant ({"properties": …} is an object).
    std::string implied;
    for (const char* type : {"object", "array", "string", "integer"}) {
      for (const std::string& keyword : keywords_of(type)) {
        if (!schema.contains(keyword) || implied == type) continue;
        if (!implied.empty())
          return refuse(keyword, where, "mixes keywords of two types without a 'type'");
        implied = type;
      }
    }
    if (!implied.empty()) {
      if (auto s = check_keywords(schema, {implied}, where); !s) return s;
      return compile_typed(schema, implied, where);
    }
    if (auto s = check_keywords(schema, {}, where); !s) return s;
    return add({});
  }
  const Json& type = schema["type"];
  if (type.is_string()) {
    if (auto s = check_keywords(schema, {type.get<std::string>()}, where); !s) return s;
    return compile_typed(schema, type.get<std::string>(), where);
  }
  if (!type.is_array() || type.empty())
    return refuse("type", where, "must be a type name or a non-empty list of them");
  std::vector<std::string> names;
  for (const Json& name : type) {
    if (!name.is_string()) return refuse("type", where, "must list type names");
    names.push_back(name.get<std::string>());
  }
  if (auto s = check_keywords(schema, names, where); !s) return s;
  GrammarNode any_of;
  any_of.kind = GrammarNodeKind::kAnyOf;
  for (const std::string& name : names) {
    Result<int32_t> node = compile_typed(schema, name, where);
    if (!node) return node;
    any_of.alternatives.push_back(*node);
  }
  return add(std::move(any_of));
}

Result<int32_t> SchemaCompiler::compile_ref(const Json& schema, const std::string& where) {
  const Json& ref = schema["$ref"];
  for (auto it = schema.begin(); it != schema.end(); ++it)
    if (it.key() != "$ref" && !kAnnotations.count(it.key()))
      return refuse(it.key(), where, "beside '$ref' is not supported");
  if (!ref.is_string()) return refuse("$ref", where, "must be a string");
  const std::string path = ref.get<std::string>();
  if (auto done = compiled_refs_.find(path); done != compiled_refs_.end()) return done->second;
  if (std::find(ref_stack_.begin(), ref_stack_.end(), path) != ref_stack_.end())
    return refuse("$ref", where, "'" + path + "' is recursive, which is not supported");
  if (path == "#") return refuse("$ref", where, "'#' is recursive, which is not supported");
  if (path.rfind("#/", 0) != 0)
    return refuse("$ref", where, "'" + path + "' is not a local reference");
  Json::json_pointer pointer;
  try {
    pointer = Json::json_pointer(path.substr(1));
  } catch (const Json::exception&) {
    return refuse("$ref", where, "'" + path + "' is not a valid JSON pointer");
  }
  if (!document_.contains(pointer)) return refuse("$ref", where, "'" + path + "' is not defined");
  ref_stack_.push_back(path);
  Result<int32_t> node = compile(document_.at(pointer), path);
  ref_stack_.pop_back();
  if (node) compiled_refs_[path] = *node;
  return node;
}

Result<int32_t> SchemaCompiler::compile_typed(const Json& schema, const std::string& type,
                                              const std::string& where) {
  if (type != "object" && type != "array" && type != "string" && type != "integer" &&
      type != "number" && type != "boolean" && type != "null") {
    return refuse("type", where, "'" + type + "' is not a JSON Schema type");
  }
  if (type == "object") return compile_object(schema, where);
  if (type == "array") return compile_array(schema, where);
  if (type == "string") return compile_string(schema, where);
  if (type == "integer") return compile_integer(schema, where);
  GrammarNode node;
  if (type == "number") {
    node.kind = GrammarNodeKind::kNumber;
  } else {
    node.kind = GrammarNodeKind::kLiterals;
    node.literals = type == "boolean" ? std::vector<std::string>{"false", "true"}
                                      : std::vector<std::string>{"null"};
  }
  return add(std::move(node));
}

Result<int32_t> SchemaCompiler::compile_object(const Json& schema, const std::string& where) {
  GrammarNode node;
  node.kind = GrammarNodeKind::kObject;
  std::set<std::string> required;
  if (schema.contains("required")) {
    const Json& list = schema["required"];
    if (!list.is_array()) return refuse("required", where, "must be an array of names");
    for (const Json& name : list) {
      if (!name.is_string()) return refuse("required", where, "must be an array of names");
      required.insert(name.get<std::string>());
    }
  }
  const bool closed = schema.contains("additionalProperties") &&
                      schema["additionalProperties"].is_boolean() &&
                      !schema["additionalProperties"].get<bool>();
  if (schema.contains("additionalProperties") && !schema["additionalProperties"].is_boolean() &&
      !schema["additionalProperties"].is_object()) {
    return refuse("additionalProperties", where, "must be a boolean or a schema");
  }
  std::set<std::string> listed;
  if (schema.contains("properties")) {
    const Json& properties = schema["properties"];
    if (!properties.is_object()) return refuse("properties", where, "must be an object");
    if (properties.size() > kMaxObjectProperties)
      return refuse("properties", where, "lists more than 64 properties");
    for (auto it = properties.begin(); it != properties.end(); ++it) {
      Result<int32_t> value = compile(it.value(), child(where, "properties." + it.key()));
      if (!value) return value;
      // The key as JSON writes it, without the opening quote.
      node.properties.push_back(
          {Json(it.key()).dump().substr(1), *value, required.count(it.key()) > 0});
      listed.insert(it.key());
    }
  }
  // Required names without a schema of their own take any value (unless extras are banned).
  for (const std::string& name : required) {
    if (listed.count(name)) continue;
    if (closed)
      return refuse("required", where, "names '" + name + "', which additionalProperties forbids");
    if (node.properties.size() >= kMaxObjectProperties)
      return refuse("required", where, "lists more than 64 properties");
    node.properties.push_back({Json(name).dump().substr(1), add({}), true});
  }
  node.free_object = node.properties.empty() && !closed;
  return add(std::move(node));
}

Result<int32_t> SchemaCompiler::compile_array(const Json& schema, const std::string& where) {
  GrammarNode node;
  node.kind = GrammarNodeKind::kArray;
  for (const auto& [keyword, bound] :
       {std::pair{"minItems", &node.min_items}, std::pair{"maxItems", &node.max_items}}) {
    if (!schema.contains(keyword)) continue;
    const Json& v = schema[keyword];
    if (!v.is_number_unsigned() || v.get<uint64_t>() > 1000000)
      return refuse(keyword, where, "must be an integer between 0 and 1000000");
    *bound = static_cast<uint32_t>(v.get<uint64_t>());
  }
  if (node.min_items > node.max_items) return refuse("minItems", where, "is greater than maxItems");
  if (schema.contains("items")) {
    const Json& items = schema["items"];
    if (items.is_array()) return refuse("items", where, "as an array (tuple) is not supported");
    Result<int32_t> item = compile(items, child(where, "items"));
    if (!item) return item;
    node.items = *item;
  }
  return add(std::move(node));
}

// Integer bounds, exclusive ones folded into inclusive ones; fractional bounds round inward.
Result<int32_t> SchemaCompiler::compile_integer(const Json& schema, const std::string& where) {
  GrammarNode node;
  node.kind = GrammarNodeKind::kInteger;
  constexpr double kLimit = 9.2e18;  // within int64, so every bound converts exactly enough
  for (const char* keyword : {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}) {
    if (!schema.contains(keyword)) continue;
    const Json& v = schema[keyword];
    if (!v.is_number()) return refuse(keyword, where, "must be a number");
    const double bound = v.get<double>();
    if (!(std::fabs(bound) < kLimit))
      return refuse(keyword, where, "must lie within the 64-bit integer range");
    const std::string name = keyword;
    if (name == "minimum") node.minimum = std::max(node.minimum, int64_t(std::ceil(bound)));
    if (name == "maximum") node.maximum = std::min(node.maximum, int64_t(std::floor(bound)));
    if (name == "exclusiveMinimum")
      node.minimum = std::max(node.minimum, int64_t(std::floor(bound)) + 1);
    if (name == "exclusiveMaximum")
      node.maximum = std::min(node.maximum, int64_t(std::ceil(bound)) - 1);
  }
  if (node.minimum > node.maximum)
    return refuse("minimum", where, "admits no integer below maximum");
  return add(std::move(node));
}

Result<int32_t> SchemaCompiler::compile_string(const Json& schema, const std::string& where) {
  GrammarNode node;
  node.kind = GrammarNodeKind::kString;
  for (const auto& [keyword, bound] :
       {std::pair{"minLength", &node.min_length}, std::pair{"maxLength", &node.max_length}}) {
    if (!schema.contains(keyword)) continue;
    const Json& v = schema[keyword];
    if (!v.is_number_unsigned() || v.get<uint64_t>() > 1000000)
      return refuse(keyword, where, "must be an integer between 0 and 1000000");
    *bound = static_cast<uint32_t>(v.get<uint64_t>());
  }
  if (node.min_length > node.max_length)
    return refuse("minLength", where, "is greater than maxLength");
  return add(std::move(node));
}

Result<int32_t> SchemaCompiler::compile_literals(const Json& values, const std::string& keyword,
                                                 const std::string& where) {
  if (!values.is_array() || values.empty())
    return refuse(keyword, where, "must be a non-empty array");
  GrammarNode node;
  node.kind = GrammarNodeKind::kLiterals;
  for (const Json& v : values) node.literals.push_back(v.dump());
  std::sort(node.literals.begin(), node.literals.end());
  node.literals.erase(std::unique(node.literals.begin(), node.literals.end()), node.literals.end());
  return add(std::move(node));
}

Result<int32_t> SchemaCompiler::compile_alternatives(const Json& list, const std::string& keyword,
                                                     const std::string& where) {
  if (!list.is_array() || list.empty())
    return refuse(keyword, where, "must be a non-empty array of schemas");
  GrammarNode node;
  node.kind = GrammarNodeKind::kAnyOf;
  for (size_t i = 0; i < list.size(); ++i) {
    Result<int32_t> alternative =
        compile(list[i], child(where, keyword + "[" + std::to_string(i) + "]"));
    if (!alternative) return alternative;
    node.alternatives.push_back(*alternative);
  }
  return add(std::move(node));
}

}  // namespace

Result<JsonGrammar> compile_json_schema(const Json& schema) {
  SchemaCompiler compiler(schema);
  Result<int32_t> root = compiler.compile(schema, "");
  if (!root) return root.status();
  return compiler.take(*root);
}

JsonGrammar json_object_grammar() {
  JsonGrammar g;
  GrammarNode object;
  object.kind = GrammarNodeKind::kObject;
  object.free_object = true;
  g.nodes.push_back(object);
  g.root = 0;
  return g;
}

const char* output_constraint_name(OutputConstraintKind kind) {
  switch (kind) {
    case OutputConstraintKind::kNone:
      return "";
    case OutputConstraintKind::kJsonObject:
      return "json_object";
    case OutputConstraintKind::kJsonSchema:
      return "json_schema";
    case OutputConstraintKind::kRegex:
      return "regex";
    case OutputConstraintKind::kDsmlTools:
      return "dsml_tools";
  }
  return "";
}

Result<OutputConstraintKind> parse_output_constraint_kind(std::string_view name) {
  if (name == "json_object") return OutputConstraintKind::kJsonObject;
  if (name == "json_schema") return OutputConstraintKind::kJsonSchema;
  if (name == "regex") return OutputConstraintKind::kRegex;
  if (name == "dsml_tools") return OutputConstraintKind::kDsmlTools;
  return Status::error("unknown output constraint kind '" + std::string(name) + "'");
}

Result<JsonGrammar> compile_output_constraint(OutputConstraintKind kind, std::string_view source) {
  if (kind == OutputConstraintKind::kJsonObject) return json_object_grammar();
  if (kind == OutputConstraintKind::kRegex) return compile_regex(source);
  if (kind != OutputConstraintKind::kJsonSchema) return Status::error("no output constraint");
  Json schema = Json::parse(source, nullptr, /*allow_exceptions=*/false);
  if (schema.is_discarded()) return Status::error("the JSON schema is not valid JSON");
  return compile_json_schema(schema);
}

}  // namespace v4
