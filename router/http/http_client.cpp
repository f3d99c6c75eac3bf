// http_fetch: one request on a fresh loopback connection. Beast's timeouts apply only to
// asynchronous operations, so the exchange runs as a short async chain on a private io_context
// under a single deadline.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "router/http/http_beast.h"
#include "router/http/http_server.h"
#include "router/http/http_wire.h"

namespace v4::router {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

constexpr uint64_t kResponseBodyLimit = uint64_t{1} << 30;

http::request<http::string_body> make_request(uint16_t port, const std::string& method,
                                              const std::string& target, const std::string& body,
                                              const HttpHeaders& headers) {
  http::request<http::string_body> request;
  request.method_string(method);
  request.target(target);
  request.version(11);
  request.set(http::field::host, "127.0.0.1:" + std::to_string(port));
  for (const auto& [name, value] : headers) request.set(name, value);
  request.body() = body;
  if (!body.empty() || request.method() == http::verb::post || request.method() == http::verb::put)
    request.prepare_payload();
  return request;
}

HttpClientResponse to_response(http::response<http::string_body> message) {
  HttpClientResponse response;
  response.status = static_cast<int>(message.result_int());
  for (const auto& field : message) {
    std::string& value = response.headers[wire::to_lower(field.name_string())];
    if (!value.empty()) value.append(", ");
    value.append(field.value());
  }
  response.body = std::move(message.body());
  return response;
}

}  // namespace

Result<HttpClientResponse> http_fetch(uint16_t port, const std::string& method,
                                      const std::string& target, const std::string& body,
                                      const HttpHeaders& headers,
                                      std::chrono::milliseconds timeout) {
  const std::string what = method + " http://127.0.0.1:" + std::to_string(port) + target;
  try {
    net::io_context io;
    beast::tcp_stream stream(io);
    beast::flat_buffer buffer;
    auto request = make_request(port, method, target, body, headers);
    http::response_parser<http::string_body> parser;
    parser.body_limit(kResponseBodyLimit);
    if (request.method() == http::verb::head) parser.skip(true);

    beast::error_code error;
    beast::error_code write_error;
    const char* stage = "connect";
    auto read = [&] {
      stage = "read";
      http::async_read(stream, buffer, parser, [&](beast::error_code ec, size_t) { error = ec; });
    };
    stream.expires_after(timeout);
    stream.async_connect(tcp::endpoint(net::ip::address_v4::loopback(), port),
                         [&](beast::error_code ec) {
                           if (ec) {
                             error = ec;
                             return;
                           }
                           stage = "write";
                           // A server may answer early (413) and stop reading the body: still
                           // read its response when the write fails.
                           http::async_write(stream, request, [&](beast::error_code ec, size_t) {
                             write_error = ec;
                             read();
                           });
                         });
    io.run();
    if (error) {
      const std::string why = write_error ? "write: " + write_error.message()
                                          : std::string(stage) + ": " + error.message();
      return Status::error(what + ": " + why);
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
    return to_response(parser.release());
  } catch (const std::exception& e) {
    return Status::error(what + ": " + e.what());
  }
}

}  // namespace v4::router
