// A SAX handler for nlohmann's (iterative, non-recursive) parser that builds the ordered JSON
// value itself: members are appended to the object's vector and duplicates are found through a
// per-object hash index, so every event costs O(1) amortised.
#include "router/openai/request_json.h"

#include <unordered_map>
#include <utility>
#include <vector>

namespace v4::router {
namespace {

using Members = RequestJson::object_t;  // nlohmann::ordered_map: a vector of pairs

class Builder {
 public:
  Builder(const JsonLimits& limits, const std::set<std::string, std::less<>>& known,
          RequestJson& out)
      : limits_(limits), known_(known), out_(out) {}

  bool null() { return value(nullptr); }
  bool boolean(bool v) { return value(v); }
  bool number_integer(RequestJson::number_integer_t v) { return value(v); }
  bool number_unsigned(RequestJson::number_unsigned_t v) { return value(v); }
  bool number_float(RequestJson::number_float_t v, const std::string&) { return value(v); }
  bool string(std::string& v) { return value(std::move(v)); }
  bool binary(RequestJson::binary_t&) { return value(nullptr); }  // not produced by JSON text
  bool start_object(size_t) { return open(RequestJson::object()); }
  bool start_array(size_t) { return open(RequestJson::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }
  bool key(std::string& name);
  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) {
    syntax_error_ = e.what();
    return false;
  }

  std::optional<ApiError> error() const { return error_; }
  const std::string& syntax_error() const { return syntax_error_; }

 private:
  struct Frame {
    RequestJson* node;
    size_t max_items;
    std::unordered_map<std::string, size_t> index;  // objects: key -> position in Members
  };

  RequestJson* place(RequestJson&& v);
  bool value(RequestJson&& v);
  bool open(RequestJson&& container);
  bool close();
  bool fail(std::string message);

  const JsonLimits& limits_;
  const std::set<std::string, std::less<>>& known_;
  RequestJson& out_;
  std::vector<Frame> stack_;
  size_t depth_ = 0;             // containers open, skipped ones included
  RequestJson* slot_ = nullptr;  // an object's member whose key was just read
  bool skipping_ = false;        // inside an unknown top-level member's value
  size_t skip_open_ = 0;         // containers open inside it
  std::string member_;           // the top-level member being read, for errors
  std::optional<ApiError> error_;
  std::string syntax_error_;
};

bool Builder::fail(std::string message) {
  error_ = invalid_request(std::move(message), member_);
  return false;
}

RequestJson* Builder::place(RequestJson&& v) {
  if (stack_.empty()) {
    out_ = std::move(v);
    return &out_;
  }
  Frame& frame = stack_.back();
  if (frame.node->is_array()) {
    if (frame.node->size() >= frame.max_items) {
      fail("'" + member_ + "' has an array of more than " + std::to_string(frame.max_items) +
           " items");
      return nullptr;
    }
    frame.node->push_back(std::move(v));
    return &frame.node->back();
  }
  RequestJson* slot = std::exchange(slot_, nullptr);
  *slot = std::move(v);
  return slot;
}

bool Builder::value(RequestJson&& v) {
  if (skipping_) {
    skipping_ = skip_open_ != 0;
    return true;
  }
  return place(std::move(v)) != nullptr;
}

bool Builder::open(RequestJson&& container) {
  if (++depth_ > limits_.max_depth) {
    return fail("the request body nests deeper than " + std::to_string(limits_.max_depth) +
                " levels");
  }
  if (skipping_) {
    ++skip_open_;
    return true;
  }
  const bool object = container.is_object();
  size_t max_items = object ? limits_.max_object_keys : limits_.max_array_items;
  if (object && stack_.size() == 1) {
    if (auto it = limits_.member_object_keys.find(member_); it != limits_.member_object_keys.end())
      max_items = std::max(max_items, it->second);
  }
  RequestJson* node = place(std::move(container));
  if (node == nullptr) return false;
  stack_.push_back({node, max_items, {}});
  return true;
}

bool Builder::close() {
  --depth_;
  if (skipping_) {
    skipping_ = --skip_open_ != 0;
    return true;
  }
  stack_.pop_back();
  return true;
}

bool Builder::key(std::string& name) {
  if (skipping_) return true;
  Frame& frame = stack_.back();
  if (stack_.size() == 1) {
    member_ = name;
    if (!known_.empty() && !known_.contains(name)) {
      skipping_ = true;
      skip_open_ = 0;
      return true;
    }
  }
  Members& members = frame.node->get_ref<Members&>();
  auto& vector = static_cast<Members::Container&>(members);
  if (auto it = frame.index.find(name); it != frame.index.end()) {
    slot_ = &vector[it->second].second;  // a duplicate: the last value wins
    return true;
  }
  if (members.size() >= frame.max_items) {
    return fail(stack_.size() == 1 ? "the request body has more than " +
                                         std::to_string(frame.max_items) + " members"
                                   : "'" + member_ + "' has an object with more than " +
                                         std::to_string(frame.max_items) + " keys");
  }
  frame.index.emplace(name, members.size());
  // The vector's own emplace_back: ordered_map::emplace would scan every earlier key.
  vector.emplace_back(std::move(name), nullptr);
  slot_ = &vector.back().second;
  return true;
}

// Syntax errors keep nlohmann's position text without its exception tag.
ApiError syntax_error(const std::string& what) {
  const size_t tag_end = what.find("] ");
  return invalid_request("invalid JSON: " +
                         (tag_end == std::string::npos ? what : what.substr(tag_end + 2)));
}

}  // namespace

std::optional<ApiError> parse_request_json(std::string_view body, const JsonLimits& limits,
                                           const std::set<std::string, std::less<>>& known,
                                           RequestJson& out) {
  out = RequestJson();
  Builder builder(limits, known, out);
  if (RequestJson::sax_parse(body.begin(), body.end(), &builder)) return std::nullopt;
  if (std::optional<ApiError> error = builder.error()) return error;
  return syntax_error(builder.syntax_error().empty() ? "unexpected end of input"
                                                     : builder.syntax_error());
}

}  // namespace v4::router
