#include "worker/grpc/server_credentials.h"

#include "core/tls_files.h"

namespace v4::worker_grpc {

Result<std::shared_ptr<grpc::ServerCredentials>> server_credentials(const WorkerTlsFiles& files) {
  if (!files.enabled()) return grpc::InsecureServerCredentials();
  if (files.certificate.empty() && files.key.empty())
    return Status::error(
        "--tls-client-ca needs --tls-cert and --tls-key (the worker's own "
        "certificate and key)");
  Result<TlsKeyPair> pair =
      read_tls_key_pair(files.certificate, "--tls-cert", files.key, "--tls-key");
  if (!pair) return pair.status();
  const bool mutual = !files.client_ca.empty();
  grpc::SslServerCredentialsOptions options(
      mutual ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
             : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  if (mutual) {
    Result<std::string> ca = read_pem_certificates(files.client_ca, "--tls-client-ca");
    if (!ca) return ca.status();
    options.pem_root_certs = std::move(*ca);
  }
  options.pem_key_cert_pairs.push_back(
      {std::move(pair->private_key), std::move(pair->certificate_chain)});
  return grpc::SslServerCredentials(options);
}

}  // namespace v4::worker_grpc
