// Bounded LRU of generated tool calls' DSML bytes (spec §5.8 replay).
#include "router/openai/tool_call_replay_store.h"

#include <nlohmann/json.hpp>

namespace v4::router {
namespace {

constexpr size_t kEntryOverhead = 128;  // list node, hash node, string headers

// Arguments as sent back equal those returned when they are the same JSON value: SDKs and the
// Anthropic/Responses mappings may re-serialise them (spacing, key order, escapes).
bool same_arguments(const std::string& stored, const ChatToolCall& call) {
  if (call.arguments_is_text && call.arguments == stored) return true;
  const nlohmann::json a = nlohmann::json::parse(stored, nullptr, false);
  const nlohmann::json b = nlohmann::json::parse(call.arguments, nullptr, false);
  return !a.is_discarded() && !b.is_discarded() && a == b;
}

}  // namespace

ToolCallReplayStore::ToolCallReplayStore(size_t max_entries, size_t max_bytes)
    : max_entries_(max_entries), max_bytes_(max_bytes) {}

size_t ToolCallReplayStore::cost(const std::string& id, const std::string& name,
                                 const std::string& arguments, const std::string& dsml) {
  return kEntryOverhead + 2 * id.size() + name.size() + arguments.size() + dsml.size();
}

void ToolCallReplayStore::put(const std::string& id, const std::string& name,
                              const std::string& arguments, const std::string& dsml) {
  const size_t bytes = cost(id, name, arguments, dsml);
  if (id.empty() || max_entries_ == 0 || bytes > max_bytes_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = by_id_.find(id); it != by_id_.end()) {
    bytes_ -= it->second->bytes;
    lru_.erase(it->second);
    by_id_.erase(it);
  }
  lru_.push_front(Entry{id, name, arguments, dsml, bytes});
  by_id_[id] = lru_.begin();
  bytes_ += bytes;
  evict_to_fit();
}

void ToolCallReplayStore::evict_to_fit() {
  while (!lru_.empty() && (lru_.size() > max_entries_ || bytes_ > max_bytes_)) {
    bytes_ -= lru_.back().bytes;
    by_id_.erase(lru_.back().id);
    lru_.pop_back();
  }
}

std::optional<std::string> ToolCallReplayStore::find(const ChatToolCall& call) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = by_id_.find(call.id);
  if (it == by_id_.end()) return std::nullopt;
  const Entry& entry = *it->second;
  if (entry.name != call.name || !same_arguments(entry.arguments, call)) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return entry.dsml;
}

size_t ToolCallReplayStore::fill(ChatRequest& request) {
  size_t added = 0;
  for (const ChatMessage& message : request.messages) {
    for (const ChatToolCall& call : message.tool_calls) {
      if (call.id.empty() || request.tool_call_dsml.count(call.id) != 0) continue;
      if (std::optional<std::string> dsml = find(call)) {
        request.tool_call_dsml.emplace(call.id, std::move(*dsml));
        ++added;
      }
    }
  }
  return added;
}

size_t ToolCallReplayStore::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}

size_t ToolCallReplayStore::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

}  // namespace v4::router
