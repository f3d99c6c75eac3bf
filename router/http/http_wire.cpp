#include "router/http/http_wire.h"

#include <boost/beast/http/status.hpp>
#include <cctype>
#include <cstdio>
#include <set>

namespace v4::router::wire {
namespace {

namespace http = boost::beast::http;

// A CR or LF in a header would let a caller inject headers or split the response.
bool is_safe_header(const std::pair<std::string, std::string>& header) {
  auto clean = [](const std::string& s) { return s.find_first_of("\r\n") == std::string::npos; };
  return !header.first.empty() && clean(header.first) && clean(header.second);
}

// The server owns framing and connection management; callers cannot override these.
bool is_reserved(const std::string& lower_name) {
  return lower_name == "content-length" || lower_name == "transfer-encoding" ||
         lower_name == "connection";
}

class HeadWriter {
 public:
  explicit HeadWriter(std::string& out) : out_(out) {}

  // Adds each header whose name has not been written yet.
  void add_all(const HttpHeaders* headers) {
    if (headers == nullptr) return;
    for (const auto& header : *headers) add(header.first, header.second);
  }

  void add(std::string_view name, std::string_view value) {
    std::pair<std::string, std::string> header{std::string(name), std::string(value)};
    if (!is_safe_header(header)) return;
    std::string lower = to_lower(name);
    if (is_reserved(lower) || !written_.insert(lower).second) return;
    out_.append(name).append(": ").append(value).append("\r\n");
  }

  void add_reserved(std::string_view name, std::string_view value) {
    out_.append(name).append(": ").append(value).append("\r\n");
  }

 private:
  std::string& out_;
  std::set<std::string> written_;
};

std::string reason_phrase(int status) {
  auto known = http::int_to_status(static_cast<unsigned>(status));
  if (known == http::status::unknown) return "";
  return std::string(http::obsolete_reason(known));
}

void append_json_string(std::string& out, std::string_view text) {
  out.push_back('"');
  for (char c : text) {
    switch (c) {
      case '"':
        out.append("\\\"");
        break;
      case '\\':
        out.append("\\\\");
        break;
      case '\n':
        out.append("\\n");
        break;
      case '\r':
        out.append("\\r");
        break;
      case '\t':
        out.append("\\t");
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
          out.append(escaped);
        } else {
          out.push_back(c);
        }
    }
  }
  out.push_back('"');
}

}  // namespace

std::string to_lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

std::string format_head(const ResponseHead& head) {
  int status = head.status >= 100 && head.status <= 999 ? head.status : 500;
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\n";
  HeadWriter writer(out);
  writer.add_all(head.handler_headers);
  writer.add_all(head.extra_headers);
  if (!head.content_type.empty()) writer.add("Content-Type", head.content_type);
  writer.add_all(head.default_headers);
  switch (head.framing) {
    case Framing::content_length:
      writer.add_reserved("Content-Length", std::to_string(head.content_length));
      break;
    case Framing::chunked:
      writer.add_reserved("Transfer-Encoding", "chunked");
      break;
    case Framing::until_close:
      break;
  }
  writer.add_reserved("Connection", head.keep_alive ? "keep-alive" : "close");
  out.append("\r\n");
  return out;
}

std::string format_chunk(std::string_view data) {
  if (data.empty()) return "";
  char size[24];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string out(size);
  out.append(data).append("\r\n");
  return out;
}

std::string error_json(int status, std::string_view message) {
  std::string out = "{\"error\":{\"message\":";
  append_json_string(out, message);
  out.append(",\"type\":");
  append_json_string(out, status >= 400 && status < 500 ? "invalid_request_error" : "server_error");
  out.append(",\"param\":null,\"code\":null}}");
  return out;
}

std::string format_error(int status, std::string_view message, bool keep_alive,
                         const HttpHeaders& extra_headers) {
  std::string body = error_json(status, message);
  ResponseHead head;
  head.status = status;
  head.content_type = "application/json";
  head.content_length = body.size();
  head.keep_alive = keep_alive;
  head.extra_headers = &extra_headers;
  return format_head(head) + body;
}

}  // namespace v4::router::wire
