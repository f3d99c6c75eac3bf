#include "core/tls_files.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

namespace v4 {
namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
struct KeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyFree>;

std::string where(std::string_view flag, const std::string& path) {
  return std::string(flag) + " " + path;
}

Result<std::string> read_file(const std::string& path, std::string_view flag) {
  if (path.empty()) return Status::error(std::string(flag) + " names no file");
  std::error_code error;
  if (std::filesystem::is_directory(path, error))
    return Status::error(where(flag, path) + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(where(flag, path) + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::error(where(flag, path) + ": cannot read the file");
  return text.str();
}

BioPtr memory_bio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// The first certificate of a PEM text, or null.
X509Ptr first_certificate(const std::string& pem) {
  BioPtr bio = memory_bio(pem);
  X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();  // OpenSSL's queue is per thread: leave nothing for gRPC to find
  return x;
}

}  // namespace

Result<std::string> read_pem_certificates(const std::string& path, std::string_view flag) {
  Result<std::string> text = read_file(path, flag);
  if (!text) return text.status();
  if (!first_certificate(*text))
    return Status::error(where(flag, path) + ": holds no PEM certificate");
  return text;
}

Result<TlsKeyPair> read_tls_key_pair(const std::string& certificate_path,
                                     std::string_view certificate_flag, const std::string& key_path,
                                     std::string_view key_flag) {
  if (certificate_path.empty() != key_path.empty()) {
    const std::string given(certificate_path.empty() ? key_flag : certificate_flag);
    const std::string missing(certificate_path.empty() ? certificate_flag : key_flag);
    return Status::error(given + " needs " + missing + " too (a certificate and its key)");
  }
  Result<std::string> chain = read_pem_certificates(certificate_path, certificate_flag);
  if (!chain) return chain.status();
  Result<std::string> key = read_file(key_path, key_flag);
  if (!key) return key.status();
  BioPtr bio = memory_bio(*key);
  KeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  ERR_clear_error();
  if (!pkey)
    return Status::error(where(key_flag, key_path) +
                         ": holds no PEM private key (or one protected by a passphrase)");
  X509Ptr leaf = first_certificate(*chain);
  const bool matches = X509_check_private_key(leaf.get(), pkey.get()) == 1;
  ERR_clear_error();
  if (!matches)
    return Status::error(where(key_flag, key_path) + " is not the key of the certificate in " +
                         where(certificate_flag, certificate_path));
  return TlsKeyPair{std::move(*chain), std::move(*key)};
}

Result<std::string> read_token_file(const std::string& path, std::string_view flag) {
  Result<std::string> text = read_file(path, flag);
  if (!text) return text.status();
  std::string token = std::move(*text);
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty()) return Status::error(where(flag, path) + ": the token file is empty");
  for (char c : token) {
    // Visible ASCII only: what an HTTP/2 header value carries unchanged after "Bearer ".
    if (c < 0x21 || c > 0x7e)
      return Status::error(where(flag, path) +
                           ": the token may hold visible ASCII characters only (no spaces, no "
                           "control characters, one line)");
  }
  return token;
}

}  // namespace v4
