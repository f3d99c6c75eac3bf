// Incremental parser of DeepSeek-V4 output: reasoning, visible content and DSML tool calls,
// turned into streaming events with OpenAI-style JSON arguments. Spec §5.8.
//
// Markup is recognised only where the model emitted the ｜DSML｜ special token (by id): the same
// characters typed as ordinary tokens are prose. Reasoning ends at the </think> token, the turn
// at EOS. A DSML block that breaks the grammar is returned as content with a warning; an already
// opened tool call is closed first. Nothing here throws.
//
// Output layout handled (spec §5.8):
//   [reasoning]</think>content\n\n<｜DSML｜tool_calls>\n
//   <｜DSML｜invoke name="NAME">\n
//   <｜DSML｜parameter name="K" string="true|false">VALUE</｜DSML｜parameter>\n ...
//   </｜DSML｜invoke>\n ... </｜DSML｜tool_calls><｜end▁of▁sentence｜>
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "model/text/detokenizer.h"
#include "model/text/tokenizer.h"

namespace v4 {

struct DsmlEvent {
  enum class Kind {
    kReasoningDelta,
    kContentDelta,
    kToolCallBegin,           // name, id, index
    kToolCallArgumentsDelta,  // text: a piece of the arguments JSON
    kToolCallEnd,             // dsml: the invoke's exact bytes, for replay
    kWarning,                 // text: what was malformed
  };
  Kind kind;
  std::string text;
  std::string name;
  std::string id;
  int index = -1;
  std::string dsml;
};

struct DsmlParserOptions {
  bool thinking = false;  // the prompt ended with <think>: output starts as reasoning
  TokenId dsml_token = -1;
  TokenId think_end_token = -1;
  TokenId eos_token = -1;
  std::string tool_call_id_prefix = "call_";  // ids are prefix + index
};

// Looks the marker tokens up by string in `tokenizer`.
Result<DsmlParserOptions> dsml_parser_options(const Tokenizer& tokenizer, bool thinking);

class DsmlParser {
 public:
  explicit DsmlParser(DsmlParserOptions options);

  // One generated token: its id and its bytes (any UTF-8 split). Ordinary text may also be fed
  // in arbitrary chunks with an id that is none of the marker ids (e.g. -1).
  void feed(TokenId id, std::string_view bytes, std::vector<DsmlEvent>& events);
  // End of output (also implied by the EOS token): flushes held text, closes what is open.
  void finish(std::vector<DsmlEvent>& events);
  bool finished() const { return mode_ == Mode::kDone; }

 private:
  enum class Mode { kReasoning, kContent, kTag, kBlock, kInvoke, kValue, kAfterBlock, kDone };
  enum class Channel { kNone, kReasoning, kContent, kArguments };

  void on_text(std::string_view bytes, std::vector<DsmlEvent>& events);
  void on_dsml(std::vector<DsmlEvent>& events);
  void on_tag_text(std::vector<DsmlEvent>& events);
  bool close_tag(std::string_view header, std::vector<DsmlEvent>& events);
  void emit_prose(std::vector<DsmlEvent>& events, bool final);
  void emit_value(std::vector<DsmlEvent>& events, bool final);
  void emit(Channel channel, std::string_view bytes, std::vector<DsmlEvent>& events);
  void flush_channel(std::vector<DsmlEvent>& events);
  void push_event(Channel channel, std::string text, std::vector<DsmlEvent>& events);
  void malformed(const std::string& why, std::vector<DsmlEvent>& events);

  DsmlParserOptions options_;
  Mode mode_;
  Mode tag_from_ = Mode::kContent;  // the mode whose "<" / "</" opened the current tag
  bool tag_closing_ = false;        // tag started with "</"
  std::string held_;                // text of the current mode not yet emitted
  std::string tag_;                 // header text of the current tag after the DSML token
  std::string raw_;                 // raw bytes since the last safe point (recovery)
  std::string invoke_raw_;          // raw bytes of the open invoke (replay)
  bool in_invoke_ = false;
  bool value_is_string_ = false;
  int params_in_invoke_ = 0;
  int tool_calls_ = 0;
  Channel channel_ = Channel::kNone;
  Utf8Stream utf8_;
};

}  // namespace v4
