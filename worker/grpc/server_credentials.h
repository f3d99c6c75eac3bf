// The worker's transport security (docs/design.md, "Securing the link"): gRPC's own TLS server
// credentials from the files of --tls-cert / --tls-key, and with --tls-client-ca mutual TLS
// (a router must present a certificate signed by that CA). No files: plaintext, as before.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "core/status.h"

namespace v4::worker_grpc {

struct WorkerTlsFiles {
  std::string certificate;  // PEM chain, leaf first
  std::string key;          // PEM private key of the leaf
  std::string client_ca;    // PEM CA bundle; set: client certificates are required and verified

  bool enabled() const { return !certificate.empty() || !key.empty() || !client_ca.empty(); }
};

// Insecure credentials when no file is named; TLS (or mTLS) credentials from checked files
// otherwise; an error naming the flag and the file when one is missing, holds no PEM, or the
// key does not match the certificate.
Result<std::shared_ptr<grpc::ServerCredentials>> server_credentials(const WorkerTlsFiles& files);

}  // namespace v4::worker_grpc
