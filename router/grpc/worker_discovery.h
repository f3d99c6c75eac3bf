// Workers found through DNS (`router --workers-dns NAME:PORT`): the name's A and AAAA records,
// asked of the system resolver (getaddrinfo) every interval, are the worker set — as a
// Kubernetes headless Service lists its ready pods. A resolver is a function so tests can
// feed record sets that change over time.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace v4::router_grpc {

// host:port addresses (IPv6 in brackets) for a name and a port; an empty list when the name
// has no records (NXDOMAIN, or a headless Service without ready pods), an error when the
// resolver could not answer (the current workers are then kept).
using WorkerResolver = std::function<Result<std::vector<std::string>>(const std::string& host,
                                                                      const std::string& port)>;

struct DnsDiscoveryOptions {
  std::string host;
  std::string port;
  std::chrono::milliseconds interval{10000};
  WorkerResolver resolve;  // empty: resolve_with_getaddrinfo
};

// Splits "NAME:PORT" (or "[v6]:PORT"); an error naming the text otherwise.
Result<DnsDiscoveryOptions> parse_dns_target(const std::string& text);

// The system resolver's A and AAAA records, sorted and without duplicates.
Result<std::vector<std::string>> resolve_with_getaddrinfo(const std::string& host,
                                                          const std::string& port);

}  // namespace v4::router_grpc
