// Certificates made when a test runs (nothing secret is committed): a CA, a server certificate
// for localhost / 127.0.0.1 and a client certificate it signed, and a second CA that signed
// neither. Made with the openssl command-line tool; EC P-256 keys so it takes milliseconds.
#pragma once

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace v4::test {

struct TestCertificates {
  std::filesystem::path dir;
  std::string path(const std::string& name) const { return (dir / name).string(); }
  // File contents, for gRPC's credential options.
  std::string read(const std::string& name) const {
    std::ifstream in(dir / name);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
  }
  bool ok = false;
};

// Files: ca.crt, other-ca.crt, server.crt / server.key (SAN localhost, 127.0.0.1),
// client.crt / client.key (client authentication), all valid for one day.
inline TestCertificates make_test_certificates(const std::string& tag) {
  TestCertificates c;
  c.dir = std::filesystem::temp_directory_path() /
          ("v4serve-certs-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::remove_all(c.dir);
  std::filesystem::create_directories(c.dir);
  const std::string d = c.dir.string();
  const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  const std::string script =
      "cd '" + d + "' && " + "openssl req -x509" + key +
      " -keyout ca.key -out ca.crt -days 1 -subj /CN=v4-test-ca && " + "openssl req -x509" + key +
      " -keyout other-ca.key -out other-ca.crt -days 1 -subj /CN=v4-other-ca && " + "openssl req" +
      key + " -keyout server.key -out server.csr -subj /CN=localhost && " +
      "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > server.ext && " +
      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2 -days 1 " +
      "-extfile server.ext -out server.crt && " + "openssl req" + key +
      " -keyout client.key -out client.csr -subj /CN=v4-router && " +
      "printf 'extendedKeyUsage=clientAuth\\n' > client.ext && " +
      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -set_serial 3 -days 1 " +
      "-extfile client.ext -out client.crt) > '" + d + "/openssl.log' 2>&1";
  c.ok = std::system(("(" + script).c_str()) == 0 && std::filesystem::exists(c.dir / "client.crt");
  return c;
}

}  // namespace v4::test
