#include "router/grpc/worker_discovery.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>

namespace v4::router_grpc {

Result<DnsDiscoveryOptions> parse_dns_target(const std::string& text) {
  const size_t colon = text.rfind(':');
  auto bad = [&] {
    return Status::error("--workers-dns " + text + ": expected NAME:PORT (e.g. " +
                         "v4serve-workers.default.svc.cluster.local:50051)");
  };
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size()) return bad();
  DnsDiscoveryOptions out;
  out.host = text.substr(0, colon);
  out.port = text.substr(colon + 1);
  if (out.host.front() == '[' && out.host.back() == ']')
    out.host = out.host.substr(1, out.host.size() - 2);
  unsigned port = 0;
  auto [end, error] = std::from_chars(out.port.data(), out.port.data() + out.port.size(), port);
  if (error != std::errc() || end != out.port.data() + out.port.size() || port == 0 ||
      port > 65535 || out.host.empty())
    return bad();
  return out;
}

Result<std::vector<std::string>> resolve_with_getaddrinfo(const std::string& host,
                                                          const std::string& port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  if (rc == EAI_NONAME || rc == EAI_NODATA) return std::vector<std::string>{};
  if (rc != 0) return Status::error("cannot resolve " + host + ": " + ::gai_strerror(rc));
  std::vector<std::string> out;
  for (const addrinfo* a = found; a; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a->ai_family == AF_INET) {
      const auto* v4 = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      ::inet_ntop(AF_INET, &v4->sin_addr, text, sizeof text);
      out.push_back(std::string(text) + ":" + port);
    } else if (a->ai_family == AF_INET6) {
      const auto* v6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      ::inet_ntop(AF_INET6, &v6->sin6_addr, text, sizeof text);
      out.push_back("[" + std::string(text) + "]:" + port);
    }
  }
  ::freeaddrinfo(found);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace v4::router_grpc
