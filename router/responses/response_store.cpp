// Stored responses: an LRU list bounded in bytes, ids that tell "gone" from "never existed".
#include "router/responses/response_store.h"

#include <charconv>
#include <cstdio>

#include "core/random_id.h"

namespace v4::router {
namespace {

constexpr size_t kTagDigits = 8, kSequenceDigits = 16, kRandomDigits = 16;
constexpr std::string_view kPrefix = "resp_";
// Per message: the struct, its strings' headers and the list node, roughly.
constexpr size_t kMessageOverhead = 256;

std::string random_hex(size_t digits) { return random_id("", digits, kHexDigits); }

}  // namespace

ResponseStore::ResponseStore(size_t max_bytes)
    : max_bytes_(max_bytes), tag_(random_hex(kTagDigits)) {}

std::string ResponseStore::new_id(bool to_store) {
  uint64_t sequence = 0;
  if (to_store) {
    std::lock_guard<std::mutex> lock(mutex_);
    sequence = next_sequence_++;
  }
  char digits[kSequenceDigits + 1];
  std::snprintf(digits, sizeof digits, "%016llx", static_cast<unsigned long long>(sequence));
  return std::string(kPrefix) + tag_ + digits + random_hex(kRandomDigits);
}

size_t ResponseStore::cost(const StoredResponse& response) {
  size_t bytes = sizeof(StoredResponse) + response.response_json.size();
  for (const ChatMessage& m : response.conversation) {
    bytes += kMessageOverhead + m.role.size() + m.content.size() + m.tool_call_id.size();
    if (m.reasoning) bytes += m.reasoning->size();
    for (const ChatToolCall& call : m.tool_calls)
      bytes += kMessageOverhead + call.id.size() + call.name.size() + call.arguments.size();
  }
  for (const auto& [id, dsml] : response.tool_call_dsml)
    bytes += kMessageOverhead + id.size() + dsml.size();
  return bytes;
}

void ResponseStore::remove(std::list<Entry>::iterator it) {
  for (const auto& [call_id, dsml] : it->response->tool_call_dsml) {
    (void)dsml;
    if (auto call = calls_.find(call_id); call != calls_.end() && call->second == it->id)
      calls_.erase(call);
  }
  bytes_ -= it->bytes;
  by_id_.erase(it->id);
  lru_.erase(it);
}

void ResponseStore::put(const std::string& id, StoredResponse response) {
  const size_t bytes = cost(response);
  if (bytes > max_bytes_) return;
  auto shared = std::make_shared<const StoredResponse>(std::move(response));
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = by_id_.find(id); it != by_id_.end()) remove(it->second);
  while (!lru_.empty() && bytes_ + bytes > max_bytes_) remove(std::prev(lru_.end()));
  lru_.push_front(Entry{id, shared, bytes});
  by_id_[id] = lru_.begin();
  bytes_ += bytes;
  for (const auto& [call_id, dsml] : shared->tool_call_dsml) {
    (void)dsml;
    calls_[call_id] = id;
  }
}

StoreLookup ResponseStore::find(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (auto it = by_id_.find(id); it != by_id_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second);
    return {StoredState::kFound, it->second->response};
  }
  const std::string_view text = id;
  const size_t digits = kTagDigits + kSequenceDigits + kRandomDigits;
  if (text.size() != kPrefix.size() + digits || !text.starts_with(kPrefix) ||
      text.substr(kPrefix.size(), kTagDigits) != tag_) {
    return {};
  }
  uint64_t sequence = 0;
  const char* first = text.data() + kPrefix.size() + kTagDigits;
  const auto [end, ec] = std::from_chars(first, first + kSequenceDigits, sequence, 16);
  if (ec != std::errc() || end != first + kSequenceDigits) return {};
  if (sequence == 0 || sequence >= next_sequence_) return {};
  return {StoredState::kGone, nullptr};
}

bool ResponseStore::erase(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = by_id_.find(id);
  if (it == by_id_.end()) return false;
  remove(it->second);
  return true;
}

std::optional<std::string> ResponseStore::tool_call_dsml(const ChatToolCall& call) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto owner = calls_.find(call.id);
  if (owner == calls_.end()) return std::nullopt;
  auto it = by_id_.find(owner->second);
  if (it == by_id_.end()) return std::nullopt;
  const StoredResponse& stored = *it->second->response;
  auto dsml = stored.tool_call_dsml.find(call.id);
  if (dsml == stored.tool_call_dsml.end()) return std::nullopt;
  // The call as the response returned it: the output is the conversation's last message.
  for (auto m = stored.conversation.rbegin(); m != stored.conversation.rend(); ++m) {
    for (const ChatToolCall& made : m->tool_calls) {
      if (made.id != call.id) continue;
      if (made.name != call.name || made.arguments != call.arguments) return std::nullopt;
      return dsml->second;
    }
  }
  return std::nullopt;
}

size_t ResponseStore::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bytes_;
}

size_t ResponseStore::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return lru_.size();
}

}  // namespace v4::router
