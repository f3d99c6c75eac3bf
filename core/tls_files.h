// The files that secure the router–worker link (docs/design.md, "Securing the link"): PEM
// certificates and keys for gRPC's TLS credentials, and the shared token file. Each is read
// and checked here, at start-up, so that a missing file, a file that holds no PEM, or a key that
// does not belong to its certificate is one error naming the flag and the file — not a
// handshake failure later that names neither.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace v4 {

// A certificate chain (PEM, leaf first) and the private key of its leaf.
struct TlsKeyPair {
  std::string certificate_chain;
  std::string private_key;
};

// The certificates of a PEM file (a CA bundle or a chain), checked to hold at least one.
Result<std::string> read_pem_certificates(const std::string& path, std::string_view flag);

// A certificate chain and its private key, checked to parse and to match each other. Both paths
// are needed; one without the other is refused.
Result<TlsKeyPair> read_tls_key_pair(const std::string& certificate_path,
                                     std::string_view certificate_flag, const std::string& key_path,
                                     std::string_view key_flag);

// A shared secret: the file's text without its trailing newline. Refused when empty or when it
// holds characters a gRPC metadata value cannot carry (it travels as `authorization: Bearer`).
Result<std::string> read_token_file(const std::string& path, std::string_view flag);

}  // namespace v4
