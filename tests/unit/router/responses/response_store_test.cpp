// The stored responses: bounded in bytes with least-recently-used eviction, ids that tell a
// response that is gone from one that never was, and tool-call DSML found by call id.
#include "router/responses/response_store.h"

#include <gtest/gtest.h>

namespace v4::router {
namespace {

StoredResponse response(size_t text_bytes, const std::string& call_id = "") {
  StoredResponse r;
  r.response_json = std::string(text_bytes, 'x');
  ChatMessage assistant;
  assistant.role = "assistant";
  if (!call_id.empty()) {
    assistant.tool_calls.push_back({call_id, "f", "{}", true});
    r.tool_call_dsml[call_id] = "<dsml " + call_id + ">";
  }
  r.conversation.push_back(assistant);
  return r;
}

TEST(ResponseStore, IdsAreUniqueAndShaped) {
  ResponseStore store(1 << 20);
  const std::string a = store.new_id(true), b = store.new_id(true), c = store.new_id(false);
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  for (const std::string& id : {a, b, c}) {
    EXPECT_TRUE(id.starts_with("resp_")) << id;
    EXPECT_EQ(id.size(), 45u) << id;
  }
}

TEST(ResponseStore, FindsWhatItKeepsAndTellsGoneFromUnknown) {
  ResponseStore store(1 << 20);
  const std::string kept = store.new_id(true);
  store.put(kept, response(10));
  StoreLookup found = store.find(kept);
  ASSERT_EQ(found.state, StoredState::kFound);
  EXPECT_EQ(found.response->response_json, std::string(10, 'x'));
  EXPECT_TRUE(store.erase(kept));
  EXPECT_FALSE(store.erase(kept));
  EXPECT_EQ(store.find(kept).state, StoredState::kGone);
  // Not to be stored, not yet issued, another store's, or not an id at all: unknown.
  EXPECT_EQ(store.find(store.new_id(false)).state, StoredState::kUnknown);
  std::string future = store.new_id(true);
  future[5 + 8 + 15] = 'f';  // a sequence number not issued yet
  EXPECT_EQ(store.find(future).state, StoredState::kUnknown);
  EXPECT_EQ(store.find(ResponseStore(1 << 20).new_id(true)).state, StoredState::kUnknown);
  EXPECT_EQ(store.find("resp_").state, StoredState::kUnknown);
  EXPECT_EQ(store.find("").state, StoredState::kUnknown);
}

TEST(ResponseStore, EvictsLeastRecentlyUsedBeyondTheBound) {
  const size_t each = ResponseStore::cost(response(1000));
  ResponseStore store(3 * each);  // room for three
  std::vector<std::string> ids;
  for (int i = 0; i < 3; ++i) {
    ids.push_back(store.new_id(true));
    store.put(ids.back(), response(1000));
  }
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(store.bytes(), 3 * each);
  // Reading the oldest makes it the most recent: the second goes first.
  ASSERT_EQ(store.find(ids[0]).state, StoredState::kFound);
  ids.push_back(store.new_id(true));
  store.put(ids.back(), response(1000));
  EXPECT_EQ(store.size(), 3u);
  EXPECT_EQ(store.find(ids[1]).state, StoredState::kGone);
  EXPECT_EQ(store.find(ids[0]).state, StoredState::kFound);
  EXPECT_EQ(store.find(ids[2]).state, StoredState::kFound);
  EXPECT_EQ(store.find(ids[3]).state, StoredState::kFound);
  EXPECT_LE(store.bytes(), store.max_bytes());
  // One larger than the whole bound is not kept, and evicts nothing.
  const std::string huge = store.new_id(true);
  store.put(huge, response(4 * each));
  EXPECT_EQ(store.find(huge).state, StoredState::kGone);
  EXPECT_EQ(store.size(), 3u);
}

TEST(ResponseStore, EmptyStoreKeepsNothing) {
  ResponseStore store(0);
  const std::string id = store.new_id(true);
  store.put(id, response(1));
  EXPECT_EQ(store.size(), 0u);
  EXPECT_EQ(store.bytes(), 0u);
}

TEST(ResponseStore, ToolCallDsmlIsFoundByMatchingCall) {
  const size_t each = ResponseStore::cost(response(100, "call_1"));
  ResponseStore store(each);
  const std::string id = store.new_id(true);
  store.put(id, response(100, "call_1"));
  EXPECT_EQ(store.tool_call_dsml({"call_1", "f", "{}", true}), "<dsml call_1>");
  EXPECT_EQ(store.tool_call_dsml({"call_1", "g", "{}", true}), std::nullopt);  // other name
  EXPECT_EQ(store.tool_call_dsml({"call_1", "f", "{\"a\":1}", true}), std::nullopt);
  EXPECT_EQ(store.tool_call_dsml({"call_2", "f", "{}", true}), std::nullopt);
  // Evicted with its response.
  store.put(store.new_id(true), response(100, "call_2"));
  EXPECT_EQ(store.find(id).state, StoredState::kGone);
  EXPECT_EQ(store.tool_call_dsml({"call_1", "f", "{}", true}), std::nullopt);
  EXPECT_EQ(store.tool_call_dsml({"call_2", "f", "{}", true}), "<dsml call_2>");
}

}  // namespace
}  // namespace v4::router
