// The tool-call replay store: DSML found by call id only for the call as returned, bounded in
// entries and bytes with least-recently-used eviction, and filled into a chat request without
// overriding the request's own dsml_replay.
#include "router/openai/tool_call_replay_store.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace v4::router {
namespace {

ChatToolCall call(const std::string& id, const std::string& name = "get_weather",
                  const std::string& arguments = R"({"city": "Paris"})") {
  return {id, name, arguments, true};
}

TEST(ToolCallReplayStore, FindsTheCallAsReturned) {
  ToolCallReplayStore store(16, 1 << 20);
  store.put("call_a0", "get_weather", R"({"city": "Paris"})", "<invoke a0>");
  EXPECT_EQ(store.find(call("call_a0")), "<invoke a0>");
  EXPECT_EQ(store.find(call("call_zz")), std::nullopt);
}

TEST(ToolCallReplayStore, ArgumentsMayBeReserialisedButNotEdited) {
  ToolCallReplayStore store(16, 1 << 20);
  store.put("call_a0", "get_weather", R"({"city": "Paris", "days": 2})", "<invoke a0>");
  // Another spacing and key order is the same call (SDKs re-serialise JSON).
  EXPECT_EQ(store.find(call("call_a0", "get_weather", R"({"days":2,"city":"Paris"})")),
            "<invoke a0>");
  // A JSON value rather than text (Anthropic's tool_use input) is the same call too.
  EXPECT_EQ(store.find({"call_a0", "get_weather", R"({"city":"Paris","days":2})", false}),
            "<invoke a0>");
  EXPECT_EQ(store.find(call("call_a0", "get_weather", R"({"city": "Rome", "days": 2})")),
            std::nullopt);
  EXPECT_EQ(store.find(call("call_a0", "get_time", R"({"city": "Paris", "days": 2})")),
            std::nullopt);
  EXPECT_EQ(store.find(call("call_a0", "get_weather", "not json")), std::nullopt);
}

TEST(ToolCallReplayStore, EvictsLeastRecentlyUsedBeyondTheEntryBound) {
  ToolCallReplayStore store(2, 1 << 20);
  store.put("a", "get_weather", R"({"city": "Paris"})", "A");
  store.put("b", "get_weather", R"({"city": "Paris"})", "B");
  EXPECT_EQ(store.find(call("a")), "A");  // b is now the least recently used
  store.put("c", "get_weather", R"({"city": "Paris"})", "C");
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.find(call("b")), std::nullopt);
  EXPECT_EQ(store.find(call("a")), "A");
  EXPECT_EQ(store.find(call("c")), "C");
}

TEST(ToolCallReplayStore, StaysWithinTheByteBound) {
  const std::string args = R"({"city": "Paris"})";
  const size_t each = ToolCallReplayStore::cost("a", "get_weather", args, std::string(100, 'x'));
  ToolCallReplayStore store(1000, 2 * each);
  for (const char* id : {"a", "b", "c"}) store.put(id, "get_weather", args, std::string(100, 'x'));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_LE(store.bytes(), 2 * each);
  EXPECT_EQ(store.find(call("a")), std::nullopt);
  // An entry larger than the whole bound is not kept, and evicts nothing.
  store.put("huge", "get_weather", args, std::string(4 * each, 'x'));
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.find(call("huge")), std::nullopt);
}

TEST(ToolCallReplayStore, ReplacingAnIdKeepsOneEntry) {
  ToolCallReplayStore store(16, 1 << 20);
  store.put("a", "get_weather", R"({"city": "Paris"})", "old");
  store.put("a", "get_weather", R"({"city": "Paris"})", "new");
  EXPECT_EQ(store.size(), 1u);
  EXPECT_EQ(store.find(call("a")), "new");
}

TEST(ToolCallReplayStore, FillAddsKnownCallsAndKeepsTheRequestsOwnReplay) {
  ToolCallReplayStore store(16, 1 << 20);
  store.put("a", "get_weather", R"({"city": "Paris"})", "stored a");
  store.put("b", "get_weather", R"({"city": "Paris"})", "stored b");
  ChatRequest request;
  ChatMessage assistant;
  assistant.role = "assistant";
  assistant.tool_calls = {call("a"), call("b"), call("unknown")};
  request.messages = {assistant};
  request.tool_call_dsml["b"] = "client b";
  EXPECT_EQ(store.fill(request), 1u);
  EXPECT_EQ(request.tool_call_dsml.at("a"), "stored a");
  EXPECT_EQ(request.tool_call_dsml.at("b"), "client b");
  EXPECT_EQ(request.tool_call_dsml.count("unknown"), 0u);  // renders from its arguments
}

TEST(ToolCallReplayStore, ZeroBoundsKeepNothing) {
  ToolCallReplayStore none(0, 1 << 20);
  none.put("a", "get_weather", R"({"city": "Paris"})", "A");
  EXPECT_EQ(none.size(), 0u);
}

TEST(ToolCallReplayStore, ConcurrentPutsAndFindsStayBounded) {
  ToolCallReplayStore store(64, 1 << 20);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&store, t] {
      for (int i = 0; i < 500; ++i) {
        const std::string id = std::to_string(t) + "_" + std::to_string(i);
        store.put(id, "get_weather", R"({"city": "Paris"})", id);
        EXPECT_EQ(store.find(call(id)).value_or(id), id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(store.size(), 64u);
}

}  // namespace
}  // namespace v4::router
