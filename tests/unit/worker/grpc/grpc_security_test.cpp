// The router-worker link secured with gRPC's own mechanisms, both sides in one process, with
// certificates made when the test runs: TLS carries the same tokens as plaintext, a worker
// requiring client certificates refuses a router without one (or one from another CA), and a
// worker with a token answers calls without it or with a wrong one UNAUTHENTICATED — which the
// router sees as an unusable worker with that reason, so requests are refused, not hung.
#include <fstream>

#include "router/grpc/link_security.h"
#include "tests/unit/common/test_certificates.h"
#include "tests/unit/worker/grpc/grpc_test_fixture.h"
#include "worker/grpc/bearer_token.h"
#include "worker/grpc/server_credentials.h"

namespace v4 {
namespace {

class GrpcSecurityTest : public GrpcWorkerTest {
 protected:
  static void SetUpTestSuite() {
    GrpcWorkerTest::SetUpTestSuite();
    certificates_ = new test::TestCertificates(test::make_test_certificates("grpc-security"));
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(certificates_->dir);
    delete certificates_;
    GrpcWorkerTest::TearDownTestSuite();
  }
  void SetUp() override {
    GrpcWorkerTest::SetUp();
    ASSERT_TRUE(certificates_->ok)
        << "openssl could not make test certificates in " << certificates_->dir;
  }
  static const test::TestCertificates& certs() { return *certificates_; }

  static std::shared_ptr<grpc::ServerCredentials> server_tls(bool require_client_certificate) {
    worker_grpc::WorkerTlsFiles files;
    files.certificate = certs().path("server.crt");
    files.key = certs().path("server.key");
    if (require_client_certificate) files.client_ca = certs().path("ca.crt");
    Result<std::shared_ptr<grpc::ServerCredentials>> c = worker_grpc::server_credentials(files);
    EXPECT_TRUE(c) << c.message();
    return c ? *c : nullptr;
  }
  // A router's link settings: trusting `ca`, with the client certificate when asked.
  static router_grpc::LinkSecurity router_tls(const std::string& ca, bool client_certificate,
                                              const std::string& token_file = "") {
    router_grpc::WorkerTlsClientFiles files;
    files.ca = certs().path(ca);
    if (client_certificate) {
      files.certificate = certs().path("client.crt");
      files.key = certs().path("client.key");
    }
    Result<router_grpc::LinkSecurity> s = router_grpc::load_link_security(files, token_file);
    EXPECT_TRUE(s) << s.message();
    return s ? *s : router_grpc::LinkSecurity{};
  }
  // A router over `worker` with `security`; runs two requests when the worker is usable and
  // checks their tokens against the local engine.
  static std::string connect_and_generate(const TestWorker& worker,
                                          router_grpc::LinkSecurity security) {
    router_grpc::GrpcClientOptions o = client_options({worker.address});
    o.link.security = std::move(security);
    router_grpc::GrpcEngineClient client(o);
    client.start();
    if (client.usable_workers() == 0) {
      Collector c;
      EXPECT_FALSE(client.submit(to_engine_request(requests(1, 2)[0]), c.callback(0)))
          << "a router without a usable worker took a request";
      router_grpc::WorkerLink link(
          worker.address, o.link, [](uint64_t, pb::Events&) {},
          [](uint64_t, const std::string&) {});
      Result<pb::HealthResponse> health = link.health();
      return health ? "usable later" : health.message();
    }
    const std::vector<GenerationRequest> rs = requests(2, 4);
    Collector c;
    for (size_t i = 0; i < rs.size(); ++i)
      EXPECT_TRUE(client.submit(to_engine_request(rs[i]), c.callback(i)));
    EXPECT_TRUE(c.wait([&](const auto& s) { return all_final(s, rs.size()); }));
    expect_reference(rs, c.streams());
    return "";
  }
  static std::string write_token(const std::string& name, const std::string& token) {
    std::ofstream(certs().path(name)) << token << "\n";
    return certs().path(name);
  }

  static inline test::TestCertificates* certificates_ = nullptr;
};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(BearerToken, EqualInConstantTimeComparesWholeStrings) {
  using worker_grpc::equal_in_constant_time;
  EXPECT_TRUE(equal_in_constant_time("s3cret", "s3cret"));
  EXPECT_FALSE(equal_in_constant_time("s3cret", "s3creT"));
  EXPECT_FALSE(equal_in_constant_time("s3cret", "s3cre"));
  EXPECT_FALSE(equal_in_constant_time("s3cret", "s3crets"));
  EXPECT_FALSE(equal_in_constant_time("s3cret", ""));
  EXPECT_TRUE(equal_in_constant_time("", ""));
}

TEST_F(GrpcSecurityTest, TlsRoundTripGivesTheLocalEngineTokens) {
  TestWorker worker(weights(), options(), pb::PROTOCOL_VERSION_CURRENT, server_tls(false));
  EXPECT_EQ(connect_and_generate(worker, router_tls("ca.crt", false)), "");
  // Dialled by IP, checked against the certificate's DNS name.
  router_grpc::LinkSecurity named = router_tls("ca.crt", false);
  named.server_name = "localhost";
  EXPECT_EQ(connect_and_generate(worker, named), "");
}

TEST_F(GrpcSecurityTest, RouterThatDoesNotTrustTheWorkerSeesItUnusable) {
  TestWorker worker(weights(), options(), pb::PROTOCOL_VERSION_CURRENT, server_tls(false));
  const std::string other_ca = connect_and_generate(worker, router_tls("other-ca.crt", false));
  EXPECT_TRUE(contains(other_ca, "UNAVAILABLE")) << other_ca;
  EXPECT_TRUE(contains(other_ca, "--workers-tls-ca")) << other_ca;
  router_grpc::LinkSecurity wrong_name = router_tls("ca.crt", false);
  wrong_name.server_name = "worker.example";
  EXPECT_NE(connect_and_generate(worker, wrong_name), "");
  // A plaintext router and a TLS worker do not speak at all.
  router_grpc::LinkSecurity plaintext;
  const std::string clear = connect_and_generate(worker, plaintext);
  EXPECT_TRUE(contains(clear, "does it serve TLS?")) << clear;
}

TEST_F(GrpcSecurityTest, MutualTlsRefusesARouterWithoutACertificate) {
  TestWorker worker(weights(), options(), pb::PROTOCOL_VERSION_CURRENT, server_tls(true));
  const std::string without = connect_and_generate(worker, router_tls("ca.crt", false));
  EXPECT_TRUE(contains(without, "UNAVAILABLE")) << without;
  EXPECT_EQ(connect_and_generate(worker, router_tls("ca.crt", true)), "");
}

TEST_F(GrpcSecurityTest, MissingOrWrongTokenIsUnauthenticated) {
  TestWorker worker(weights(), options(), pb::PROTOCOL_VERSION_CURRENT, nullptr, "s3cret");
  auto stub =
      pb::Worker::NewStub(grpc::CreateChannel(worker.address, grpc::InsecureChannelCredentials()));
  auto health = [&](const std::string& authorization) {
    grpc::ClientContext context;
    if (!authorization.empty()) context.AddMetadata("authorization", authorization);
    pb::HealthRequest request;
    request.set_protocol_version(pb::PROTOCOL_VERSION_CURRENT);
    pb::HealthResponse response;
    return stub->Health(&context, request, &response);
  };
  grpc::Status none = health("");
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(contains(none.error_message(), "no authorization metadata")) << none.error_message();
  grpc::Status wrong = health("Bearer s3creT");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(contains(wrong.error_message(), "wrong token")) << wrong.error_message();
  EXPECT_EQ(health("s3cret").error_code(), grpc::StatusCode::UNAUTHENTICATED) << "no Bearer";
  EXPECT_TRUE(health("Bearer s3cret").ok());
  {  // Stats, Drain and the Generate stream check it too.
    grpc::ClientContext stats_context, drain_context, stream_context;
    pb::StatsResponse stats;
    EXPECT_EQ(stub->Stats(&stats_context, pb::StatsRequest{}, &stats).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    pb::DrainResponse drain;
    EXPECT_EQ(stub->Drain(&drain_context, pb::DrainRequest{}, &drain).error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_FALSE(worker.service->draining());
    // A worker that let the stream in would otherwise keep it open: the deadline ends it.
    stream_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto stream = stub->Generate(&stream_context);
    pb::GenerateIn hello;
    hello.mutable_hello()->set_protocol_version(pb::PROTOCOL_VERSION_CURRENT);
    stream->Write(hello);
    pb::GenerateOut out;
    EXPECT_FALSE(stream->Read(&out));
    stream->WritesDone();
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  // The router without the token, or with a wrong one, has no usable worker and says why.
  router_grpc::LinkSecurity no_token;
  EXPECT_TRUE(contains(connect_and_generate(worker, no_token), "UNAUTHENTICATED"));
  Result<router_grpc::LinkSecurity> wrong_token =
      router_grpc::load_link_security({}, write_token("wrong-token", "s3creT"));
  ASSERT_TRUE(wrong_token) << wrong_token.message();
  const std::string refused = connect_and_generate(worker, *wrong_token);
  EXPECT_TRUE(contains(refused, "UNAUTHENTICATED: wrong token")) << refused;
}

TEST_F(GrpcSecurityTest, RightTokenWorksWithAndWithoutTlsOnEveryMethod) {
  TestWorker plain(weights(), options(), pb::PROTOCOL_VERSION_CURRENT, nullptr, "s3cret");
  const std::string token_file = write_token("token", "s3cret");
  Result<router_grpc::LinkSecurity> token = router_grpc::load_link_security({}, token_file);
  ASSERT_TRUE(token) << token.message();
  EXPECT_EQ(connect_and_generate(plain, *token), "");
  {  // Drain carries it too (the worker drains only for a caller with the token).
    router_grpc::LinkOptions without_token, with_token;
    with_token.security = *token;
    auto link = [&](const router_grpc::LinkOptions& o) {
      return std::make_unique<router_grpc::WorkerLink>(
          plain.address, o, [](uint64_t, pb::Events&) {}, [](uint64_t, const std::string&) {});
    };
    EXPECT_FALSE(link(without_token)->drain());
    EXPECT_FALSE(plain.service->draining());
    Result<uint32_t> drained = link(with_token)->drain();
    ASSERT_TRUE(drained) << drained.message();
    EXPECT_TRUE(plain.service->draining());
  }
  TestWorker secured(weights(), options(), pb::PROTOCOL_VERSION_CURRENT, server_tls(true),
                     "s3cret");
  EXPECT_EQ(connect_and_generate(secured, router_tls("ca.crt", true, token_file)), "");
}

}  // namespace
}  // namespace v4
