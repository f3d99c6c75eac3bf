#include "router/grpc/link_security.h"

#include "core/tls_files.h"

namespace v4::router_grpc {

Result<LinkSecurity> load_link_security(const WorkerTlsClientFiles& tls,
                                        const std::string& auth_token_file) {
  LinkSecurity out;
  if (!auth_token_file.empty()) {
    Result<std::string> token = read_token_file(auth_token_file, "--workers-auth-token-file");
    if (!token) return token.status();
    out.auth_token = std::move(*token);
  }
  if (!tls.enabled()) {
    out.credentials = grpc::InsecureChannelCredentials();
    return out;
  }
  if (tls.ca.empty())
    return Status::error(
        "--workers-tls-cert, --workers-tls-key and --workers-tls-server-name need "
        "--workers-tls-ca (the CA that signed the workers' certificates)");
  Result<std::string> ca = read_pem_certificates(tls.ca, "--workers-tls-ca");
  if (!ca) return ca.status();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = std::move(*ca);
  if (!tls.certificate.empty() || !tls.key.empty()) {
    Result<TlsKeyPair> pair =
        read_tls_key_pair(tls.certificate, "--workers-tls-cert", tls.key, "--workers-tls-key");
    if (!pair) return pair.status();
    options.pem_cert_chain = std::move(pair->certificate_chain);
    options.pem_private_key = std::move(pair->private_key);
  }
  out.credentials = grpc::SslCredentials(options);
  out.server_name = tls.server_name;
  out.tls = true;
  return out;
}

}  // namespace v4::router_grpc
