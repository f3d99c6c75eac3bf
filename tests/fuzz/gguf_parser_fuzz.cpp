// libFuzzer target for parse_gguf (spec §5.1): any input must be either rejected with a one-line
// "<file>: <problem> at byte <offset>" error or accepted with every tensor's bytes in bounds.
// Seeds: tests/fuzz/corpus/gguf/ (made by make_gguf_corpus.py with ggml's gguf-py). Run with a
// scratch corpus first so new inputs stay out of the committed seeds:
//   build-fuzz/tests/fuzz/gguf_parser_fuzz -max_total_time=120 -rss_limit_mb=2048 -max_len=65536
//       -dict=tests/fuzz/gguf.dict /tmp/gguf-corpus tests/fuzz/corpus/gguf
#include <cstdint>
#include <cstdlib>
#include <span>

#include "model/gguf/gguf_reader.h"

namespace {

uint64_t touch_tensor_bytes(const v4::GgufContainer& container) {
  // Reading the first and last byte of each tensor lets ASan catch a range outside the input.
  uint64_t sum = 0;
  for (const v4::GgufTensorInfo& info : container.tensors) {
    sum += info.data[0] + info.data[info.n_bytes - 1];
  }
  return sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  v4::Result<v4::GgufContainer> parsed = v4::parse_gguf("fuzz.gguf", bytes);
  if (!parsed) {
    const std::string& message = parsed.message();
    if (message.find('\n') != std::string::npos || message.rfind("fuzz.gguf: ", 0) != 0 ||
        message.find(" at byte ") == std::string::npos) {
      std::abort();  // every parse error is one line naming the file and a byte offset
    }
    return 0;
  }
  volatile uint64_t sink = touch_tensor_bytes(*parsed);
  (void)sink;
  for (const v4::GgufTensorInfo& info : parsed->tensors) {
    if (info.file_offset % parsed->alignment != 0 || info.n_bytes == 0) std::abort();
  }
  return 0;
}
