// JSON text of a request body to an insertion-ordered JSON object, in time linear in the body's
// size and with bounds on what a client can make the server hold. nlohmann's own ordered_json
// parse checks every new key against all earlier keys of its object (quadratic: an 80k-key
// object took seconds); this parser appends members and finds duplicates with a hash set.
// Top-level members not in `known` are skipped without being built. Key order is kept because
// tool schemas are rendered into the prompt verbatim.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "router/openai/openai_error.h"

namespace v4::router {

using RequestJson = nlohmann::ordered_json;

struct JsonLimits {
  size_t max_depth = 128;            // objects and arrays nested in one another
  size_t max_object_keys = 1024;     // members of one object
  size_t max_array_items = 1 << 20;  // items of one array (a token-id prompt can be long)
  // Top-level members whose own object may have more keys (logit_bias: up to the vocabulary).
  std::map<std::string, size_t, std::less<>> member_object_keys;
};

// Parses `body` into `out`, keeping only the top-level members named in `known` (all when
// empty). Duplicate keys keep the last value, as JSON.parse and Python's json do. Returns a 400
// ApiError for a syntax error or a limit, naming the top-level member it happened in.
std::optional<ApiError> parse_request_json(std::string_view body, const JsonLimits& limits,
                                           const std::set<std::string, std::less<>>& known,
                                           RequestJson& out);

}  // namespace v4::router
