// One choice's output, fed real DeepSeek-V4 token ids: stop strings at every token boundary,
// DSML tool calls and reasoning written by hand in the documented layout (spec §5.8), special
// tokens, split UTF-8, logprobs and finish reasons.
#include "router/openai/choice_output.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/chat/chat_encoder.h"
#include "tests/unit/common/deepseek_tokenizer.h"

namespace v4::router {
namespace {

using test_support::DeepSeekTest;

// What a streaming client assembles from the deltas, the way the OpenAI SDK does.
struct Assembled {
  std::string content, reasoning;
  struct Call {
    std::string id, name, arguments;
  };
  std::vector<Call> calls;
  std::vector<LogprobEntry> logprobs;

  void add(const ChoiceDelta& delta) {
    content += delta.content;
    reasoning += delta.reasoning;
    for (const ToolCallDelta& call : delta.tool_calls) {
      if (!call.id.empty()) {
        EXPECT_EQ(call.index, static_cast<int>(calls.size()));
        calls.push_back({call.id, call.name, ""});
      }
      ASSERT_FALSE(calls.empty());
      EXPECT_EQ(call.index, static_cast<int>(calls.size()) - 1);
      calls.back().arguments += call.arguments;
    }
    logprobs.insert(logprobs.end(), delta.logprobs.begin(), delta.logprobs.end());
  }
};

EngineEvent token_event(int32_t id, size_t position) {
  EngineEvent event;
  event.token = id;
  event.logprob = -0.5f - static_cast<float>(position);
  for (int32_t k = 0; k < 3; ++k) event.top_logprobs.push_back({id + k, -1.0f * k});
  return event;
}

EngineEvent final_event(EngineFinish finish, int32_t id = -1) {
  EngineEvent event;
  event.token = id;
  event.finish = finish;
  return event;
}

// Pushes each id as a token event, then `last`; every delta goes to `out`.
void run(ChoiceOutput& choice, const std::vector<TokenId>& ids, EngineEvent last, Assembled& out) {
  for (size_t i = 0; i < ids.size(); ++i) out.add(choice.push(token_event(ids[i], i)));
  out.add(choice.push(last));
}

std::vector<TokenId> concat(std::vector<TokenId> a, const std::vector<TokenId>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

const std::string kD = kDsmlText;

// An assistant turn in the official layout: content, then the tool-calls block.
std::string tool_call_output(const std::string& content, const std::string& invoke) {
  return content + "\n\n<" + kD + "tool_calls>\n" + invoke + "\n</" + kD + "tool_calls>";
}

const std::string kWeatherInvoke =
    "<" + kD + "invoke name=\"get_weather\">\n<" + kD +
    "parameter name=\"city\" string=\"true\">Paris \"FR\"</" + kD + "parameter>\n<" + kD +
    "parameter name=\"days\" string=\"false\">3</" + kD + "parameter>\n</" + kD + "invoke>";

class ChoiceOutputTest : public DeepSeekTest {
 protected:
  static ChoiceOutput make(ChoiceOutputOptions options) {
    Result<ChoiceOutput> choice = ChoiceOutput::create(tok(), std::move(options));
    EXPECT_TRUE(choice.is_ok()) << choice.message();
    return std::move(choice).value();
  }
  static ChoiceOutputOptions completions(std::vector<std::string> stop = {}) {
    ChoiceOutputOptions options;
    options.chat = false;
    options.stop = std::move(stop);
    options.logprobs = true;
    options.top_logprobs = 2;
    return options;
  }
};

TEST_F(ChoiceOutputTest, StopStringAtEveryTokenBoundaryNeverLeaks) {
  const std::string text = "The answer is 42. STOP, then more text after it.";
  const std::string stop = "STOP";
  const size_t cut = text.find(stop);
  for (size_t split = 0; split <= text.size(); ++split) {
    SCOPED_TRACE(split);
    const std::vector<TokenId> ids =
        concat(tok().encode(text.substr(0, split)), tok().encode(text.substr(split)));
    ChoiceOutput choice = make(completions({stop}));
    Assembled got;
    // The engine keeps sending until the cancel lands, then reports kCancelled.
    run(choice, ids, final_event(EngineFinish::kCancelled), got);
    EXPECT_EQ(got.content, text.substr(0, cut));
    EXPECT_EQ(choice.content(), text.substr(0, cut));
    EXPECT_TRUE(choice.stopped());
    EXPECT_EQ(choice.finish_reason(), "stop");

    // Token i covers bytes [start[i], start[i+1]); the stop completes inside token `last`.
    std::vector<size_t> start{0};
    for (TokenId id : ids) start.push_back(start.back() + tok().token_bytes(id).size());
    size_t last = 0;
    while (start[last + 1] < cut + stop.size()) ++last;
    EXPECT_EQ(choice.completion_tokens(), last + 1);
    // Logprobs: exactly the tokens whose text starts before the stop.
    size_t released = 0;
    while (released < ids.size() && start[released] < cut) ++released;
    ASSERT_EQ(got.logprobs.size(), released);
    ASSERT_EQ(choice.logprobs().size(), released);
    for (size_t i = 0; i < released; ++i) {
      EXPECT_EQ(got.logprobs[i].token, ids[i]);
      const std::string_view bytes = tok().token_bytes(ids[i]);
      EXPECT_EQ(std::string(got.logprobs[i].bytes.begin(), got.logprobs[i].bytes.end()), bytes);
      EXPECT_FLOAT_EQ(got.logprobs[i].logprob, -0.5f - static_cast<float>(i));
      ASSERT_EQ(got.logprobs[i].top_tokens.size(), 2u);  // top_logprobs = 2 of the 3 sent
      EXPECT_EQ(got.logprobs[i].top_tokens[1], ids[i] + 1);
      EXPECT_EQ(got.logprobs[i].text_offset, start[i]);  // ASCII: bytes are code points
    }
  }
}

TEST_F(ChoiceOutputTest, StopStringsApplyToChatContentAndReasoning) {
  ChoiceOutputOptions options;
  options.thinking = true;
  options.stop = {"42"};
  ChoiceOutput choice = make(options);
  Assembled got;
  run(choice, tok().encode("I think 4</think>The result is 42 for sure", true),
      final_event(EngineFinish::kCancelled), got);
  EXPECT_EQ(got.reasoning, "I think 4");
  EXPECT_EQ(got.content, "The result is ");
  EXPECT_EQ(choice.finish_reason(), "stop");
}

TEST_F(ChoiceOutputTest, ToolCallFromHandWrittenDsml) {
  const std::string output = tool_call_output("Let me check.", kWeatherInvoke);
  const std::vector<TokenId> ids = tok().encode(output, true);
  ASSERT_NE(std::find(ids.begin(), ids.end(), *tok().special_token_id(kDsmlText)), ids.end());
  ChoiceOutputOptions options;
  options.parse_tools = true;
  options.tool_call_id_prefix = "call_7_";
  ChoiceOutput choice = make(options);
  Assembled got;
  run(choice, ids, final_event(EngineFinish::kStop, tok().eos_id()), got);
  EXPECT_EQ(got.content, "Let me check.");
  ASSERT_EQ(got.calls.size(), 1u);
  EXPECT_EQ(got.calls[0].id, "call_7_0");
  EXPECT_EQ(got.calls[0].name, "get_weather");
  EXPECT_EQ(nlohmann::json::parse(got.calls[0].arguments),
            nlohmann::json({{"city", "Paris \"FR\""}, {"days", 3}}));
  ASSERT_EQ(choice.tool_calls().size(), 1u);
  EXPECT_EQ(choice.tool_calls()[0].arguments, got.calls[0].arguments);
  EXPECT_EQ(choice.tool_calls()[0].dsml, kWeatherInvoke);
  EXPECT_EQ(choice.content(), "Let me check.");
  EXPECT_EQ(choice.finish_reason(), "tool_calls");
  EXPECT_EQ(choice.completion_tokens(), ids.size() + 1);  // with the EOS
}

TEST_F(ChoiceOutputTest, ParallelCallsAfterReasoning) {
  const std::string second = "<" + kD + "invoke name=\"now\">\n\n</" + kD + "invoke>";
  const std::string output =
      "The user wants weather.</think>" + tool_call_output("", kWeatherInvoke + "\n" + second);
  ChoiceOutputOptions options;
  options.thinking = true;
  options.parse_tools = true;
  ChoiceOutput choice = make(options);
  Assembled got;
  run(choice, tok().encode(output, true), final_event(EngineFinish::kStop, tok().eos_id()), got);
  EXPECT_EQ(got.reasoning, "The user wants weather.");
  EXPECT_EQ(got.content, "");
  ASSERT_EQ(got.calls.size(), 2u);
  EXPECT_EQ(got.calls[1].name, "now");
  EXPECT_EQ(got.calls[1].arguments, "{}");
  EXPECT_EQ(got.calls[1].id, "call_1");
  EXPECT_EQ(choice.finish_reason(), "tool_calls");
}

// parallel_tool_calls=false: the choice ends as soon as the first invoke is closed, whatever
// the model writes next; the engine's later cancellation does not change the finish reason.
TEST_F(ChoiceOutputTest, SingleToolCallEndsTheOutputAtTheFirstCompleteCall) {
  const std::string second = "<" + kD + "invoke name=\"now\">\n\n</" + kD + "invoke>";
  const std::vector<TokenId> ids =
      tok().encode(tool_call_output("Checking.", kWeatherInvoke + "\n" + second), true);
  ChoiceOutputOptions options;
  options.parse_tools = true;
  options.single_tool_call = true;
  options.logprobs = true;
  ChoiceOutput choice = make(options);
  Assembled got;
  size_t pushed = 0;
  while (pushed < ids.size() && !choice.done()) {
    got.add(choice.push(token_event(ids[pushed], pushed)));
    ++pushed;
  }
  ASSERT_TRUE(choice.done());
  EXPECT_TRUE(choice.stopped());  // the caller cancels the engine request
  // It ended on the token that closes the first invoke: the tokenizer's own decoding of what
  // was pushed holds that invoke, one token fewer does not.
  const std::string first = "Checking.\n\n<" + kD + "tool_calls>\n" + kWeatherInvoke;
  const std::vector<TokenId> used(ids.begin(), ids.begin() + static_cast<long>(pushed));
  EXPECT_EQ(tok().decode(used).rfind(first, 0), 0u);
  EXPECT_EQ(tok().decode({ids.begin(), ids.begin() + static_cast<long>(pushed) - 1}).find(first),
            std::string::npos);
  got.add(choice.push(final_event(EngineFinish::kCancelled)));
  EXPECT_EQ(got.content, "Checking.");
  ASSERT_EQ(got.calls.size(), 1u);
  EXPECT_EQ(got.calls[0].name, "get_weather");
  EXPECT_EQ(nlohmann::json::parse(got.calls[0].arguments),
            nlohmann::json({{"city", "Paris \"FR\""}, {"days", 3}}));
  ASSERT_EQ(choice.tool_calls().size(), 1u);
  EXPECT_EQ(choice.tool_calls()[0].dsml, kWeatherInvoke);
  EXPECT_EQ(choice.finish_reason(), "tool_calls");
  EXPECT_EQ(choice.completion_tokens(), pushed);
  EXPECT_EQ(choice.logprobs().size(), pushed);  // one entry per generated token, none later

  // Without the limit the same tokens give both calls.
  options.single_tool_call = false;
  ChoiceOutput both = make(options);
  Assembled all;
  run(both, ids, final_event(EngineFinish::kStop, tok().eos_id()), all);
  EXPECT_EQ(all.calls.size(), 2u);
}

TEST_F(ChoiceOutputTest, WithoutToolParsingDsmlIsContent) {
  const std::string output = tool_call_output("Let me check.", kWeatherInvoke);
  ChoiceOutputOptions options;
  options.parse_tools = false;
  ChoiceOutput choice = make(options);
  Assembled got;
  run(choice, tok().encode(output, true), final_event(EngineFinish::kStop, tok().eos_id()), got);
  EXPECT_EQ(got.content, output);
  EXPECT_TRUE(got.calls.empty());
  EXPECT_EQ(choice.finish_reason(), "stop");
}

TEST_F(ChoiceOutputTest, ControlTokensAreHiddenAndEndStopMatching) {
  const TokenId bos = tok().bos_id();
  const std::vector<TokenId> ids = concat(concat(tok().encode("xab"), {bos}), tok().encode("cdy"));
  ChoiceOutput choice = make(completions({"bc"}));
  Assembled got;
  run(choice, ids, final_event(EngineFinish::kLength, tok().encode("z")[0]), got);
  EXPECT_EQ(got.content, "xabcdyz");  // "bc" spans the control token: no stop
  EXPECT_EQ(choice.finish_reason(), "length");
  ASSERT_EQ(got.logprobs.size(), ids.size() + 1);
  EXPECT_EQ(got.logprobs[tok().encode("xab").size()].token, bos);
}

TEST_F(ChoiceOutputTest, SplitUtf8IsHeldUntilComplete) {
  // Find a character whose bytes are split over several tokens.
  std::string glyph;
  for (const char* candidate : {"🤔", "🦜", "𝔸", "龘", "🧬"}) {
    const std::vector<TokenId> ids = tok().encode(candidate);
    if (ids.size() > 1) {
      glyph = candidate;
      break;
    }
  }
  ASSERT_FALSE(glyph.empty()) << "no multi-token character found";
  const std::string text = "ab" + glyph + "cd" + glyph;
  const std::vector<TokenId> ids = tok().encode(text);
  ChoiceOutput choice = make(completions({glyph + "cd"}));
  Assembled got;
  for (size_t i = 0; i < ids.size() && !choice.done(); ++i) {
    const ChoiceDelta delta = choice.push(token_event(ids[i], i));
    // Never a broken sequence in any delta.
    EXPECT_EQ(utf8_replace_invalid(delta.content), delta.content);
    got.add(delta);
  }
  EXPECT_EQ(got.content, "ab");
  // Entries: the tokens of "ab" only; the glyph's pieces start at or after the stop.
  const size_t ab_tokens = tok().encode("ab").size();
  ASSERT_EQ(got.logprobs.size(), ab_tokens);

  ChoiceOutput plain = make(completions());
  Assembled all;
  run(plain, ids, final_event(EngineFinish::kLength, tok().encode("!")[0]), all);
  EXPECT_EQ(all.content, text + "!");
  std::string bytes;
  bool replacement = false;
  for (const LogprobEntry& entry : all.logprobs) {
    bytes.append(entry.bytes.begin(), entry.bytes.end());
    replacement |= entry.text.find("\xEF\xBF\xBD") != std::string::npos;
  }
  EXPECT_EQ(bytes, text + "!");
  EXPECT_TRUE(replacement);  // a piece of the glyph alone is not UTF-8
}

TEST_F(ChoiceOutputTest, FinishReasonsAndCounts) {
  const std::vector<TokenId> ids = tok().encode("hello world");
  struct Case {
    EngineFinish finish;
    int32_t token;
    std::string reason;
    std::string content;
  };
  const int32_t bang = tok().encode("!")[0];
  const Case cases[] = {
      {EngineFinish::kLength, bang, "length", "hello world!"},
      {EngineFinish::kStop, bang, "stop", "hello world"},  // a stop token id is not text
      {EngineFinish::kCancelled, -1, "abort", "hello world"},
      {EngineFinish::kError, -1, "error", "hello world"},
  };
  for (const Case& c : cases) {
    ChoiceOutput choice = make(completions({"world!x"}));
    EngineEvent first = token_event(ids[0], 0);
    first.cached_tokens = 5;
    Assembled got;
    got.add(choice.push(first));
    EngineEvent second = token_event(ids[1], 1);
    second.cached_tokens = 9;  // only the first event carries it
    got.add(choice.push(second));
    for (size_t i = 2; i < ids.size(); ++i) got.add(choice.push(token_event(ids[i], i)));
    EXPECT_FALSE(choice.done());
    got.add(choice.push(final_event(c.finish, c.token)));
    EXPECT_TRUE(choice.done());
    EXPECT_EQ(choice.finish_reason(), c.reason);
    EXPECT_EQ(got.content, c.content);  // the held "world!" prefix is released at the end
    EXPECT_EQ(choice.cached_tokens(), 5u);
    EXPECT_EQ(choice.completion_tokens(), ids.size() + (c.token >= 0 ? 1 : 0));
    EXPECT_TRUE(choice.push(token_event(bang, 99)).empty());  // after done: ignored
  }
}

TEST_F(ChoiceOutputTest, ForcedOutputNeedsToolParsing) {
  ChoiceOutputOptions options;
  options.forced_output = tok().encode("\n\n<" + kD + "tool_calls>\n", true);
  EXPECT_FALSE(ChoiceOutput::create(tok(), options).is_ok());
  options.parse_tools = true;
  EXPECT_TRUE(ChoiceOutput::create(tok(), options).is_ok());
  options.forced_output = {-3};
  EXPECT_FALSE(ChoiceOutput::create(tok(), options).is_ok());
}

// tool_choice "required" / named: the prompt builder forces the block opener (and the invoke
// of the named tool); what the model writes after it may be anything.
const std::string kRequiredPrefix = "\n\n<" + kD + "tool_calls>\n";
const std::string kNamedPrefix = kRequiredPrefix + "<" + kD + "invoke name=\"get_weather\">\n";

bool has_markup(const std::string& text) {
  return text.find(kD) != std::string::npos || text.find("invoke") != std::string::npos;
}

// tool_choice "required" or named: junk after the forced opener is malformed markup; it never
// becomes content, and the choice ends at once as an error instead of running on.
TEST_F(ChoiceOutputTest, MalformedToolCallMarkupNeverReachesContent) {
  for (const std::string& prefix : {kRequiredPrefix, kNamedPrefix}) {
    SCOPED_TRACE(prefix);
    ChoiceOutputOptions options;
    options.parse_tools = true;
    options.require_tool_call = true;
    options.forced_output = tok().encode(prefix, true);
    ChoiceOutput choice = make(options);
    Assembled got;
    const std::vector<TokenId> junk = tok().encode("容量 practitioners toppings", true);
    for (size_t i = 0; i < junk.size() && !choice.done(); ++i) {
      got.add(choice.push(token_event(junk[i], i)));
    }
    if (!choice.done()) got.add(choice.push(final_event(EngineFinish::kStop, tok().eos_id())));
    EXPECT_EQ(got.content, "");
    EXPECT_EQ(choice.content(), "");
    EXPECT_FALSE(has_markup(got.content));
    EXPECT_TRUE(got.calls.empty());
    EXPECT_TRUE(choice.tool_calls().empty());
    EXPECT_EQ(choice.finish_reason(), "error");
    EXPECT_EQ(choice.completion_tokens(), 1u);  // it ended at the first token that broke it
  }
}

// A named call cut by max_tokens: finish reason "length", no half call, no markup.
TEST_F(ChoiceOutputTest, ToolCallCutByTheLengthLimitIsNotReported) {
  const std::string partial = "<" + kD + "parameter name=\"city\" string=\"true\">Par";
  const std::vector<TokenId> ids = tok().encode(partial, true);
  for (bool single : {false, true}) {
    ChoiceOutputOptions options;
    options.parse_tools = true;
    options.single_tool_call = single;
    options.forced_output = tok().encode(kNamedPrefix, true);
    ChoiceOutput choice = make(options);
    Assembled got;
    for (size_t i = 0; i + 1 < ids.size(); ++i) got.add(choice.push(token_event(ids[i], i)));
    EXPECT_FALSE(choice.done());
    got.add(choice.push(final_event(EngineFinish::kLength, ids.back())));
    EXPECT_EQ(choice.finish_reason(), "length");
    EXPECT_EQ(got.content, "");
    EXPECT_TRUE(got.calls.empty()) << got.calls[0].arguments;
    EXPECT_TRUE(choice.tool_calls().empty());
  }
}

// parallel_tool_calls=false with a named choice: a malformed first token is not a complete call
// (it used to end the choice with finish reason "tool_calls" and arguments "{").
TEST_F(ChoiceOutputTest, SingleToolCallNeedsACompleteInvoke) {
  ChoiceOutputOptions options;
  options.parse_tools = true;
  options.require_tool_call = true;  // a named choice
  options.single_tool_call = true;
  options.forced_output = tok().encode(kNamedPrefix, true);
  ChoiceOutput choice = make(options);
  Assembled got;
  got.add(choice.push(token_event(tok().encode("junk")[0], 0)));
  ASSERT_TRUE(choice.done());
  EXPECT_NE(choice.finish_reason(), "tool_calls");
  EXPECT_TRUE(got.calls.empty());
  EXPECT_TRUE(choice.tool_calls().empty());
  EXPECT_EQ(got.content, "");

  // The forced invoke completed by the model is the one call.
  const std::string rest = "<" + kD + "parameter name=\"city\" string=\"true\">Paris</" + kD +
                           "parameter>\n</" + kD + "invoke>\n<" + kD + "invoke name=\"x\">";
  ChoiceOutput good = make(options);
  Assembled calls;
  const std::vector<TokenId> ids = tok().encode(rest, true);
  for (size_t i = 0; i < ids.size() && !good.done(); ++i)
    calls.add(good.push(token_event(ids[i], i)));
  EXPECT_EQ(good.finish_reason(), "tool_calls");
  ASSERT_EQ(calls.calls.size(), 1u);
  EXPECT_EQ(calls.calls[0].name, "get_weather");
  EXPECT_EQ(nlohmann::json::parse(calls.calls[0].arguments), nlohmann::json({{"city", "Paris"}}));
}

// "required" honoured: a block closed without any invoke is an error, not a plain "stop".
TEST_F(ChoiceOutputTest, RequiredToolChoiceWithoutACallIsAnError) {
  ChoiceOutputOptions options;
  options.parse_tools = true;
  options.require_tool_call = true;
  options.forced_output = tok().encode(kRequiredPrefix, true);
  ChoiceOutput empty = make(options);
  Assembled got;
  run(empty, tok().encode("</" + kD + "tool_calls>", true),
      final_event(EngineFinish::kStop, tok().eos_id()), got);
  EXPECT_EQ(empty.finish_reason(), "error");
  EXPECT_NE(empty.error().find("no tool call"), std::string::npos) << empty.error();
  EXPECT_EQ(got.content, "");
  // A complete call satisfies it, and goes out as one delta: id, name and arguments together.
  ChoiceOutput called = make(options);
  std::vector<ChoiceDelta> deltas;
  const std::vector<TokenId> ids = tok().encode(kWeatherInvoke + "\n</" + kD + "tool_calls>", true);
  for (size_t i = 0; i < ids.size(); ++i) deltas.push_back(called.push(token_event(ids[i], i)));
  deltas.push_back(called.push(final_event(EngineFinish::kStop, tok().eos_id())));
  EXPECT_EQ(called.finish_reason(), "tool_calls");
  size_t with_calls = 0;
  for (const ChoiceDelta& delta : deltas) {
    for (const ToolCallDelta& call : delta.tool_calls) {
      ++with_calls;
      EXPECT_EQ(call.name, "get_weather");
      EXPECT_EQ(call.id, "call_0");
      EXPECT_EQ(nlohmann::json::parse(call.arguments),
                nlohmann::json({{"city", "Paris \"FR\""}, {"days", 3}}));
    }
  }
  EXPECT_EQ(with_calls, 1u);
}

// Without tool_choice "required", broken markup never swallows the answer: the parser's text
// for it is content, the output goes on, and a warning says what was wrong (spec §5.8).
TEST_F(ChoiceOutputTest, MalformedMarkupIsReturnedAsContentAndTheOutputGoesOn) {
  const std::string broken = "\n\n<" + kD + "tool_calls>\n<" + kD + "oops>";
  const std::vector<TokenId> ids =
      concat(tok().encode("Let me check." + broken, true), tok().encode(" It is sunny.", true));
  ChoiceOutputOptions options;
  options.parse_tools = true;
  ChoiceOutput choice = make(options);
  Assembled got;
  run(choice, ids, final_event(EngineFinish::kStop, tok().eos_id()), got);
  EXPECT_EQ(choice.finish_reason(), "stop");
  EXPECT_EQ(got.content, "Let me check." + broken + " It is sunny.");
  EXPECT_EQ(choice.content(), got.content);
  EXPECT_TRUE(got.calls.empty());
  ASSERT_EQ(choice.warnings().size(), 1u);
  EXPECT_NE(choice.warnings()[0].find("unexpected DSML tag"), std::string::npos);
}

// A complete call stays a call when markup after it breaks; the broken invoke is content.
TEST_F(ChoiceOutputTest, CallsBeforeMalformedMarkupAreKept) {
  const std::string broken = "<" + kD + "invoke name=\"get_time\">\nnoise";
  const std::string output = "\n\n<" + kD + "tool_calls>\n" + kWeatherInvoke + "\n" + broken;
  ChoiceOutputOptions options;
  options.parse_tools = true;
  ChoiceOutput choice = make(options);
  Assembled got;
  run(choice, tok().encode(output, true), final_event(EngineFinish::kStop, tok().eos_id()), got);
  EXPECT_EQ(choice.finish_reason(), "tool_calls");
  ASSERT_EQ(got.calls.size(), 1u);
  EXPECT_EQ(got.calls[0].name, "get_weather");
  EXPECT_EQ(choice.tool_calls()[0].dsml, kWeatherInvoke);
  EXPECT_EQ(got.content, "\n" + broken);  // with the newline that followed the good invoke
  EXPECT_EQ(choice.warnings().size(), 1u);
}

// The model ends its turn (EOS) inside a block: the unfinished markup is content, finish "stop".
// A block cut by the length limit is dropped instead: the call was not finished, not broken.
TEST_F(ChoiceOutputTest, OutputEndedInsideABlockIsContentUnlessCutByTheLimit) {
  const std::string partial = "\n\n<" + kD + "tool_calls>\n<" + kD +
                              "invoke name=\"get_weather\">\n<" + kD +
                              "parameter name=\"city\" string=\"true\">Par";
  const std::vector<TokenId> ids = tok().encode("Checking." + partial, true);
  for (EngineFinish end : {EngineFinish::kStop, EngineFinish::kLength}) {
    ChoiceOutputOptions options;
    options.parse_tools = true;
    ChoiceOutput choice = make(options);
    Assembled got;
    run(choice, ids,
        final_event(end, end == EngineFinish::kStop ? tok().eos_id() : tok().encode("is")[0]), got);
    EXPECT_TRUE(got.calls.empty());
    if (end == EngineFinish::kStop) {
      EXPECT_EQ(choice.finish_reason(), "stop");
      EXPECT_EQ(got.content, "Checking." + partial);
      EXPECT_EQ(choice.warnings().size(), 1u);
    } else {
      EXPECT_EQ(choice.finish_reason(), "length");
      EXPECT_EQ(got.content, "Checking.");
      EXPECT_TRUE(choice.warnings().empty());
    }
  }
}

// Thinking mode, and the model ends its turn without </think>: the reasoning is all the answer
// there is, so it also comes back as content, at the end. Cut by the limit it stays reasoning.
TEST_F(ChoiceOutputTest, ReasoningWithoutThinkEndIsAlsoContent) {
  const std::string text = "The answer is 4.";
  for (EngineFinish end : {EngineFinish::kStop, EngineFinish::kLength}) {
    ChoiceOutputOptions options;
    options.thinking = true;
    options.parse_tools = true;
    ChoiceOutput choice = make(options);
    Assembled got;
    std::vector<TokenId> ids = tok().encode(text, true);
    const TokenId last = end == EngineFinish::kStop ? tok().eos_id() : ids.back();
    if (end == EngineFinish::kLength) ids.pop_back();
    run(choice, ids, final_event(end, last), got);
    EXPECT_EQ(got.reasoning, text);
    EXPECT_EQ(choice.reasoning(), text);
    const bool ended_by_model = end == EngineFinish::kStop;
    EXPECT_EQ(got.content, ended_by_model ? text : "");
    EXPECT_EQ(choice.content(), got.content);
    EXPECT_EQ(choice.warnings().size(), ended_by_model ? 1u : 0u);
    EXPECT_EQ(choice.finish_reason(), ended_by_model ? "stop" : "length");
  }
}

}  // namespace
}  // namespace v4::router
