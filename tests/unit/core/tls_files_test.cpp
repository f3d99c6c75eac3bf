// The TLS and token files of the router-worker link are checked at start-up: each bad input is
// one error naming the flag and the file.
#include "core/tls_files.h"

#include <gtest/gtest.h>

#include <fstream>

#include "tests/unit/common/test_certificates.h"

namespace v4 {
namespace {

class TlsFilesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certificates_ = new test::TestCertificates(test::make_test_certificates("tls-files"));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(certificates_->dir);
    delete certificates_;
  }
  void SetUp() override {
    ASSERT_TRUE(certificates_->ok)
        << "openssl could not make certificates in " << certificates_->dir;
  }
  static std::string path(const std::string& name) { return certificates_->path(name); }
  static std::string write(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name);
  }
  static inline test::TestCertificates* certificates_ = nullptr;
};

bool names(const Status& s, const std::string& part) {
  return s.message().find(part) != std::string::npos;
}

TEST_F(TlsFilesTest, MatchingCertificateAndKeyAreRead) {
  Result<TlsKeyPair> pair =
      read_tls_key_pair(path("server.crt"), "--tls-cert", path("server.key"), "--tls-key");
  ASSERT_TRUE(pair) << pair.message();
  EXPECT_NE(pair->certificate_chain.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(pair->private_key.find("PRIVATE KEY"), std::string::npos);
  EXPECT_TRUE(read_pem_certificates(path("ca.crt"), "--tls-client-ca"));
}

TEST_F(TlsFilesTest, KeyOfAnotherCertificateIsRefused) {
  Result<TlsKeyPair> pair =
      read_tls_key_pair(path("server.crt"), "--tls-cert", path("client.key"), "--tls-key");
  ASSERT_FALSE(pair);
  EXPECT_TRUE(names(pair.status(), "is not the key of the certificate")) << pair.message();
  EXPECT_TRUE(names(pair.status(), "--tls-key " + path("client.key"))) << pair.message();
}

TEST_F(TlsFilesTest, CertificateWithoutKeyAndKeyWithoutCertificateAreRefused) {
  Result<TlsKeyPair> no_key = read_tls_key_pair(path("server.crt"), "--tls-cert", "", "--tls-key");
  ASSERT_FALSE(no_key);
  EXPECT_EQ(no_key.message(), "--tls-cert needs --tls-key too (a certificate and its key)");
  Result<TlsKeyPair> no_cert = read_tls_key_pair("", "--tls-cert", path("server.key"), "--tls-key");
  ASSERT_FALSE(no_cert);
  EXPECT_TRUE(names(no_cert.status(), "--tls-key needs --tls-cert")) << no_cert.message();
}

TEST_F(TlsFilesTest, MissingOrNonPemFilesAreRefused) {
  Result<std::string> missing = read_pem_certificates(path("absent.crt"), "--workers-tls-ca");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(
      names(missing.status(), "--workers-tls-ca " + path("absent.crt") + ": cannot read the file"))
      << missing.message();
  Result<std::string> key_as_ca = read_pem_certificates(path("server.key"), "--workers-tls-ca");
  ASSERT_FALSE(key_as_ca);
  EXPECT_TRUE(names(key_as_ca.status(), "holds no PEM certificate")) << key_as_ca.message();
  Result<TlsKeyPair> cert_as_key =
      read_tls_key_pair(path("server.crt"), "--tls-cert", path("server.crt"), "--tls-key");
  ASSERT_FALSE(cert_as_key);
  EXPECT_TRUE(names(cert_as_key.status(), "holds no PEM private key")) << cert_as_key.message();
  Result<std::string> directory = read_pem_certificates(certificates_->dir.string(), "--tls-cert");
  ASSERT_FALSE(directory);
  EXPECT_TRUE(names(directory.status(), "is a directory")) << directory.message();
  const std::string garbage = write("garbage.pem", "-----BEGIN CERTIFICATE-----\nnot base64\n");
  EXPECT_FALSE(read_pem_certificates(garbage, "--tls-cert"));
}

TEST_F(TlsFilesTest, TokenFileIsOneLineOfVisibleCharacters) {
  Result<std::string> token =
      read_token_file(write("token", "s3cret-Token_1\n"), "--auth-token-file");
  ASSERT_TRUE(token) << token.message();
  EXPECT_EQ(*token, "s3cret-Token_1");
  Result<std::string> empty = read_token_file(write("empty", "\n"), "--auth-token-file");
  ASSERT_FALSE(empty);
  EXPECT_TRUE(names(empty.status(), "the token file is empty")) << empty.message();
  EXPECT_FALSE(read_token_file(write("spaced", "two words\n"), "--auth-token-file"));
  EXPECT_FALSE(read_token_file(write("lines", "one\ntwo\n"), "--auth-token-file"));
  Result<std::string> missing = read_token_file(path("no-token"), "--auth-token-file");
  ASSERT_FALSE(missing);
  EXPECT_TRUE(names(missing.status(), "cannot read the file")) << missing.message();
}

}  // namespace
}  // namespace v4
