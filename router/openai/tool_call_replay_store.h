// The exact DSML bytes the model wrote for each tool call this router returned, kept so that a
// follow-up turn which sends the call back (an assistant message with tool_calls, an Anthropic
// tool_use block, a Responses function_call item) renders it byte for byte as generated
// (spec §5.8: the renderer's replay map). The re-rendered prompt then starts with the previous
// turn's prompt and output, and the worker's prefix cache holds its KV pages.
//
// Bounded in entries and bytes, least recently used first out; a call whose name or arguments
// a client changed is not replayed (it renders from its arguments instead). The store lives in
// one router process. Thread-safe.
#pragma once

#include <cstddef>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "model/chat/chat_request.h"

namespace v4::router {

class ToolCallReplayStore {
 public:
  // `max_entries` or `max_bytes` 0: nothing is kept.
  ToolCallReplayStore(size_t max_entries, size_t max_bytes);

  // Keeps the call `id` as returned to the client (`name`, `arguments` JSON text) with the
  // DSML invoke bytes the model wrote for it. An entry larger than the bound is not kept.
  void put(const std::string& id, const std::string& name, const std::string& arguments,
           const std::string& dsml);
  // The DSML for `call`, found by its id, when the call is the one stored: same name, and
  // arguments equal as JSON values (a client may re-serialise them). Marks it most recently used.
  std::optional<std::string> find(const ChatToolCall& call);
  // Adds to `request.tool_call_dsml` every call of its assistant messages found here; ids the
  // request already maps (its own dsml_replay) are left alone. Returns how many were added.
  size_t fill(ChatRequest& request);

  size_t size() const;
  size_t bytes() const;

  // What an entry costs against the byte bound (its texts plus a fixed overhead).
  static size_t cost(const std::string& id, const std::string& name, const std::string& arguments,
                     const std::string& dsml);

 private:
  struct Entry {
    std::string id, name, arguments, dsml;
    size_t bytes = 0;
  };
  void evict_to_fit();

  const size_t max_entries_;
  const size_t max_bytes_;
  mutable std::mutex mutex_;
  size_t bytes_ = 0;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> by_id_;
};

}  // namespace v4::router
