// The router's side of the link's security (docs/design.md, "Securing the link"): gRPC's own TLS
// channel credentials from --workers-tls-ca (the CA that signed the workers' certificates),
// with --workers-tls-cert / --workers-tls-key a client certificate for mutual TLS, and the
// shared token of --workers-auth-token-file that every call carries as metadata.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "core/status.h"

namespace v4::router_grpc {

struct WorkerTlsClientFiles {
  std::string ca;           // PEM CA bundle the workers' certificates must chain to
  std::string certificate;  // PEM client chain, for workers that require one (mTLS)
  std::string key;          // its private key
  std::string server_name;  // the name checked in the workers' certificates (default: the host)

  bool enabled() const {
    return !ca.empty() || !certificate.empty() || !key.empty() || !server_name.empty();
  }
};

// What every WorkerLink of a router dials with.
struct LinkSecurity {
  std::shared_ptr<grpc::ChannelCredentials> credentials;  // insecure without TLS files
  std::string server_name;                                // empty: the address's host
  std::string auth_token;                                 // empty: calls carry no token
  bool tls = false;
};

// Reads and checks the files (one error naming the flag and the file when one is missing, holds
// no PEM, or a key does not match its certificate) and builds the credentials.
Result<LinkSecurity> load_link_security(const WorkerTlsClientFiles& tls,
                                        const std::string& auth_token_file);

}  // namespace v4::router_grpc
