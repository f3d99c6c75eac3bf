// DeepSeek-V4 prompt rendering, following the official encoder step by step (spec §5.8):
// tool messages merge into user turns as <tool_result> blocks ordered like the calls, reasoning
// of turns before the last user message is dropped unless tools are defined, and each message
// is followed by the assistant prefix when an assistant turn (or a reminder) comes next.
#include "model/chat/chat_encoder.h"

#include <algorithm>

#include "model/chat/chat_json.h"

namespace v4 {
namespace {

constexpr const char* kReasoningEffortMax =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to "
    "resolve the root cause, rigorously stress-testing your logic against all potential paths, "
    "edge cases, and adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, "
    "considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
    "unchecked.\n\n";

// The tools section; its wording steers tool-call reliability, keep it byte-exact.
std::string render_tools(const std::vector<std::string>& tools) {
  std::string schemas;
  for (size_t i = 0; i < tools.size(); ++i) {
    if (i > 0) schemas += "\n";
    schemas += python_json_dumps(OrderedJson::parse(tools[i]));
  }
  const std::string d = kDsmlText;
  return "## Tools\n\nYou have access to a set of tools to help answer the user's question. You "
         "can invoke tools by writing a \"<" +
         d + "tool_calls>\" block like the following:\n\n<" + d + "tool_calls>\n<" + d +
         "invoke name=\"$TOOL_NAME\">\n<" + d +
         "parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</" + d +
         "parameter>\n...\n</" + d + "invoke>\n<" + d + "invoke name=\"$TOOL_NAME2\">\n...\n</" +
         d + "invoke>\n</" + d +
         "tool_calls>\n\nString parameters should be specified as is and set `string=\"true\"`. "
         "For all other types (numbers, booleans, arrays, objects), pass the value in JSON format "
         "and set `string=\"false\"`.\n\nIf thinking_mode is enabled (triggered by " +
         kThinkStartText + "), you MUST output your complete reasoning inside " + kThinkStartText +
         "..." + kThinkEndText +
         " BEFORE any tool calls or final response.\n\nOtherwise, output directly after " +
         kThinkEndText + " with tool calls or final response.\n\n### Available Tool Schemas\n\n" +
         schemas +
         "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to "
         "invoke tool calls.\n";
}

// One user-turn block after tool messages are merged.
struct ContentBlock {
  bool is_tool_result = false;
  std::string text;
  std::string tool_call_id;
};

// A message as the encoder sees it after merge_tool_messages.
struct EncoderMessage {
  const ChatMessage* source = nullptr;  // role, content, tool calls, task
  std::string role;
  std::vector<ContentBlock> blocks;  // user turns only
  std::optional<std::string> task;   // tool results merged into a user turn carry none
  bool has_tools = false;
  bool keep_reasoning = true;
};

// Tool results become blocks of a user turn; consecutive tool/user messages share one turn.
std::vector<EncoderMessage> merge_tool_messages(const std::vector<ChatMessage>& messages) {
  std::vector<EncoderMessage> merged;
  for (const ChatMessage& message : messages) {
    auto last_is_open_user = [&](bool require_no_task) {
      return !merged.empty() && merged.back().role == "user" && !merged.back().blocks.empty() &&
             (!require_no_task || !merged.back().task);
    };
    if (message.role == "tool") {
      ContentBlock block{true, message.content, message.tool_call_id};
      if (last_is_open_user(false)) {
        merged.back().blocks.push_back(std::move(block));
      } else {
        merged.push_back(EncoderMessage{&message, "user", {std::move(block)}, std::nullopt});
      }
    } else if (message.role == "user") {
      ContentBlock block{false, message.content, {}};
      if (last_is_open_user(true)) {
        merged.back().blocks.push_back(std::move(block));
      } else {
        merged.push_back(EncoderMessage{&message, "user", {std::move(block)}, message.task});
      }
    } else {
      merged.push_back(EncoderMessage{&message, message.role, {}, message.task});
    }
  }
  return merged;
}

// Orders the tool-result blocks of each user turn like the calls of the last assistant turn
// that made calls (stable; unknown ids sort as position 0).
void sort_tool_results_by_call_order(std::vector<EncoderMessage>& messages) {
  std::vector<std::pair<std::string, size_t>> order;
  auto position = [&](const std::string& id) -> size_t {
    for (const auto& [call_id, index] : order) {
      if (call_id == id) return index;
    }
    return 0;
  };
  for (EncoderMessage& message : messages) {
    if (message.role == "assistant" && !message.source->tool_calls.empty()) {
      order.clear();
      const auto& calls = message.source->tool_calls;
      for (size_t i = 0; i < calls.size(); ++i) {
        // A later duplicate id overrides the earlier position, as a dict assignment does.
        if (calls[i].id.empty()) continue;
        auto it = std::find_if(order.begin(), order.end(),
                               [&](const auto& entry) { return entry.first == calls[i].id; });
        if (it != order.end()) {
          it->second = i;
        } else {
          order.emplace_back(calls[i].id, i);
        }
      }
    } else if (message.role == "user") {
      std::vector<ContentBlock> tool_blocks;
      for (const ContentBlock& block : message.blocks) {
        if (block.is_tool_result) tool_blocks.push_back(block);
      }
      if (tool_blocks.size() < 2 || order.empty()) continue;
      std::stable_sort(tool_blocks.begin(), tool_blocks.end(),
                       [&](const ContentBlock& a, const ContentBlock& b) {
                         return position(a.tool_call_id) < position(b.tool_call_id);
                       });
      size_t next = 0;
      for (ContentBlock& block : message.blocks) {
        if (block.is_tool_result) block = tool_blocks[next++];
      }
    }
  }
}

int find_last_user_index(const std::vector<EncoderMessage>& messages) {
  for (int i = static_cast<int>(messages.size()) - 1; i >= 0; --i) {
    if (messages[i].role == "user" || messages[i].role == "developer") return i;
  }
  return -1;
}

// Before the last user message: assistant turns lose their reasoning, developer turns go away.
std::vector<EncoderMessage> drop_thinking_messages(const std::vector<EncoderMessage>& messages) {
  const int last_user = find_last_user_index(messages);
  std::vector<EncoderMessage> kept;
  for (int i = 0; i < static_cast<int>(messages.size()); ++i) {
    const EncoderMessage& message = messages[i];
    const std::string& role = message.role;
    if (role == "user" || role == "system" || role == "tool" || role == "latest_reminder" ||
        i >= last_user) {
      kept.push_back(message);
    } else if (role == "assistant") {
      kept.push_back(message);
      kept.back().keep_reasoning = false;
    }
  }
  return kept;
}

Status append_dsml_parameters(const ChatToolCall& call, std::string& out) {
  OrderedJson arguments;
  OrderedJson parsed =
      call.arguments_is_text ? OrderedJson::parse(call.arguments, nullptr, false) : OrderedJson();
  if (call.arguments_is_text && !parsed.is_discarded()) {
    if (!parsed.is_object()) {
      return Status::error("tool call \"" + call.name + "\": arguments must be a JSON object");
    }
    arguments = std::move(parsed);
  } else {
    // The official encoder wraps arguments it cannot load as one parameter named "arguments".
    arguments = OrderedJson::object();
    arguments["arguments"] =
        call.arguments_is_text ? OrderedJson(call.arguments) : OrderedJson::parse(call.arguments);
  }
  bool first = true;
  for (auto it = arguments.begin(); it != arguments.end(); ++it) {
    if (!first) out += "\n";
    first = false;
    const bool is_string = it.value().is_string();
    out += std::string("<") + kDsmlText + "parameter name=\"" + it.key() + "\" string=\"" +
           (is_string ? "true" : "false") + "\">";
    out += is_string ? it.value().get<std::string>() : python_json_dumps(it.value());
    out += std::string("</") + kDsmlText + "parameter>";
  }
  return Status::ok();
}

struct RenderContext {
  const ChatRequest& request;
  const std::vector<EncoderMessage>& messages;
  bool thinking;
  bool drop_thinking;
  int last_user;
};

bool is_valid_task(const std::string& task) {
  for (const char* t : {"action", "query", "authority", "domain", "title", "read_url"}) {
    if (task == t) return true;
  }
  return false;
}

Status render_assistant(const RenderContext& ctx, int index, std::string& prompt) {
  const EncoderMessage& message = ctx.messages[index];
  const ChatMessage& source = *message.source;
  std::string tool_calls;
  if (!source.tool_calls.empty()) {
    tool_calls = std::string("\n\n<") + kDsmlText + "tool_calls>\n";
    for (size_t i = 0; i < source.tool_calls.size(); ++i) {
      const ChatToolCall& call = source.tool_calls[i];
      if (i > 0) tool_calls += "\n";
      auto replay = ctx.request.tool_call_dsml.find(call.id);
      if (!call.id.empty() && replay != ctx.request.tool_call_dsml.end()) {
        tool_calls += replay->second;  // exact bytes the model produced (spec §5.8 replay)
        continue;
      }
      Result<std::string> invoke = render_dsml_invoke(call);
      if (!invoke) return invoke.status();
      tool_calls += *invoke;
    }
    tool_calls += std::string("\n</") + kDsmlText + "tool_calls>";
  }
  // A turn answering a quick-instruction task carries no reasoning block.
  const bool previous_has_task = index > 0 && ctx.messages[index - 1].task.has_value();
  std::string thinking_part;
  if (ctx.thinking && !previous_has_task && (!ctx.drop_thinking || index > ctx.last_user)) {
    if (message.keep_reasoning && source.reasoning) thinking_part = *source.reasoning;
    thinking_part += kThinkEndText;
  }
  prompt += thinking_part + source.content + tool_calls + kEosText;
  return Status::ok();
}

Status render_message(const RenderContext& ctx, int index, std::string& prompt) {
  const EncoderMessage& message = ctx.messages[index];
  const ChatMessage& source = *message.source;
  const std::string& role = message.role;
  if (index == 0 && ctx.thinking && ctx.request.reasoning_effort == "max") {
    prompt += kReasoningEffortMax;
  }
  if (role == "system") {
    prompt += source.content;
    if (message.has_tools) prompt += "\n\n" + render_tools(ctx.request.tools);
  } else if (role == "developer") {
    if (source.content.empty()) return Status::error("a developer message needs content");
    prompt += kUserText + source.content;
    if (message.has_tools) prompt += "\n\n" + render_tools(ctx.request.tools);
  } else if (role == "user") {
    prompt += kUserText;
    for (size_t i = 0; i < message.blocks.size(); ++i) {
      if (i > 0) prompt += "\n\n";
      const ContentBlock& block = message.blocks[i];
      prompt += block.is_tool_result ? "<tool_result>" + block.text + "</tool_result>" : block.text;
    }
  } else if (role == "latest_reminder") {
    prompt += kLatestReminderText + source.content;
  } else if (role == "assistant") {
    if (Status s = render_assistant(ctx, index, prompt); !s) return s;
  }

  const bool has_next = index + 1 < static_cast<int>(ctx.messages.size());
  if (has_next) {
    const std::string& next = ctx.messages[index + 1].role;
    if (next != "assistant" && next != "latest_reminder") return Status::ok();
  }
  if (message.task) {
    const std::string task_token = "<｜" + *message.task + "｜>";
    if (*message.task != "action") {
      prompt += task_token;
    } else {
      prompt += std::string(kAssistantText) + (ctx.thinking ? kThinkStartText : kThinkEndText) +
                task_token;
    }
  } else if (role == "user" || role == "developer") {
    prompt += kAssistantText;
    const bool open_thinking = ctx.thinking && (!ctx.drop_thinking || index >= ctx.last_user);
    prompt += open_thinking ? kThinkStartText : kThinkEndText;
  }
  return Status::ok();
}

}  // namespace

Result<std::string> render_dsml_invoke(const ChatToolCall& call) {
  std::string out = std::string("<") + kDsmlText + "invoke name=\"" + call.name + "\">\n";
  if (Status s = append_dsml_parameters(call, out); !s) return s;
  out += std::string("\n</") + kDsmlText + "invoke>";
  return out;
}

Result<std::string> render_chat_prompt(const ChatRequest& request) {
  if (request.messages.empty()) return Status::error("request has no messages");
  // Serving convention: an empty system message first, so tools always have a home.
  std::vector<ChatMessage> messages;
  if (request.messages.front().role != "system") {
    ChatMessage system;
    system.role = "system";
    messages.push_back(std::move(system));
  }
  messages.insert(messages.end(), request.messages.begin(), request.messages.end());
  for (const ChatMessage& message : messages) {
    if (message.task && !is_valid_task(*message.task)) {
      return Status::error("task \"" + *message.task +
                           "\" is not one of action, query, "
                           "authority, domain, title, read_url");
    }
  }

  std::vector<EncoderMessage> merged = merge_tool_messages(messages);
  if (!request.tools.empty()) merged.front().has_tools = true;
  sort_tool_results_by_call_order(merged);

  // Reasoning of earlier turns stays when tools are defined (an agent loop needs it).
  const bool drop_thinking = request.tools.empty();
  if (request.thinking && drop_thinking) merged = drop_thinking_messages(merged);

  const RenderContext ctx{request, merged, request.thinking, drop_thinking,
                          find_last_user_index(merged)};
  std::string prompt = kBosText;
  for (int i = 0; i < static_cast<int>(merged.size()); ++i) {
    if (Status s = render_message(ctx, i, prompt); !s) return s;
  }
  return prompt;
}

}  // namespace v4
