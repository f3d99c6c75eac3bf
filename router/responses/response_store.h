// The responses a server keeps for `previous_response_id` and GET /v1/responses/{id}: each
// stored response holds its object as GET returns it and the whole conversation up to and
// including its output as chat messages, with the exact DSML of its tool calls (so a follow-up
// renders them byte for byte and keeps matching cached KV pages).
//
// Memory is bounded in bytes (--responses-store-mib); the least recently used responses go
// first. Ids carry this store's tag and a sequence number, so a reference to a response that
// was stored here and is gone (evicted or deleted) is told apart from one that never existed.
// The store lives in one router process: a chain of responses continues on the replica that
// made it. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "model/chat/chat_request.h"

namespace v4::router {

struct StoredResponse {
  std::string response_json;  // the response object
  // The conversation after the instructions (which a continuation does not inherit): the
  // input items as chat messages, then this response's output as one assistant message.
  std::vector<ChatMessage> conversation;
  // Tool-call id -> the DSML bytes the model wrote for it, for every call in `conversation`.
  std::map<std::string, std::string> tool_call_dsml;
};

enum class StoredState {
  kFound,
  kGone,     // was stored here, then evicted or deleted
  kUnknown,  // never stored here
};

struct StoreLookup {
  StoredState state = StoredState::kUnknown;
  std::shared_ptr<const StoredResponse> response;  // kFound
};

class ResponseStore {
 public:
  // `max_bytes` 0: nothing is kept (every reference is then kGone or kUnknown).
  explicit ResponseStore(size_t max_bytes);

  // A new response id ("resp_" + 40 hex digits). `to_store`: the response will be put here
  // (only such ids count as gone once they are not found).
  std::string new_id(bool to_store);
  // Keeps `response` under `id`, evicting the least recently used ones beyond the bound. A
  // response larger than the whole bound is not kept.
  void put(const std::string& id, StoredResponse response);
  // Finds a response and marks it most recently used.
  StoreLookup find(const std::string& id);
  // Removes a response; false when it was not stored.
  bool erase(const std::string& id);
  // The DSML a stored response's model wrote for the call `call`, found by its id; nothing
  // when no stored response made it or the call differs (a client edited its arguments).
  std::optional<std::string> tool_call_dsml(const ChatToolCall& call);

  size_t bytes() const;
  size_t size() const;
  size_t max_bytes() const { return max_bytes_; }

  // What a response costs against the bound (its texts, plus a fixed cost per message).
  static size_t cost(const StoredResponse& response);

 private:
  struct Entry {
    std::string id;
    std::shared_ptr<const StoredResponse> response;
    size_t bytes = 0;
  };
  void remove(std::list<Entry>::iterator it);

  const size_t max_bytes_;
  const std::string tag_;  // 8 hex digits, random per store
  mutable std::mutex mutex_;
  uint64_t next_sequence_ = 1;
  size_t bytes_ = 0;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> by_id_;
  // Tool-call id -> the response that made the call.
  std::unordered_map<std::string, std::string> calls_;
};

}  // namespace v4::router
