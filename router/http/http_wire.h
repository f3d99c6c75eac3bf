// Bytes on the wire for the HTTP server: response heads, chunk framing and the OpenAI-style
// error body. Formatting is kept apart from the connection so it can be tested and read alone.
#pragma once

#include <string>
#include <string_view>

#include "router/http/http_server.h"

namespace v4::router::wire {

enum class Framing {
  content_length,  // a whole body of known size
  chunked,         // HTTP/1.1 event streams
  until_close,     // HTTP/1.0 event streams: the body ends when the connection closes
};

struct ResponseHead {
  int status = 200;
  std::string_view content_type;
  Framing framing = Framing::content_length;
  size_t content_length = 0;
  bool keep_alive = true;
  const HttpHeaders* handler_headers = nullptr;  // take precedence over the defaults below
  const HttpHeaders* extra_headers = nullptr;    // the server's options.extra_headers
  const HttpHeaders* default_headers = nullptr;  // e.g. Cache-Control for event streams
};

// Status line and header block, ending with the empty line.
std::string format_head(const ResponseHead& head);

// One chunk of a chunked body; empty data gives "" (an empty chunk would end the body).
std::string format_chunk(std::string_view data);
inline constexpr std::string_view kLastChunk = "0\r\n\r\n";

// {"error":{"message":...,"type":...,"param":null,"code":null}}; the type follows the status
// (invalid_request_error for 4xx, server_error otherwise).
std::string error_json(int status, std::string_view message);

// A whole error response with a JSON body.
std::string format_error(int status, std::string_view message, bool keep_alive,
                         const HttpHeaders& extra_headers);

std::string to_lower(std::string_view text);

}  // namespace v4::router::wire
