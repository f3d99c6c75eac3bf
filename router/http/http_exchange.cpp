// The handle handlers hold: each call is posted to the connection's strand, so any thread may
// call it without blocking, and calls keep their order.
#include <utility>

#include "router/http/http_connection.h"

namespace v4::router {
namespace {

class ExchangeHandle final : public HttpExchange {
 public:
  ExchangeHandle(std::shared_ptr<Connection> connection, std::shared_ptr<ExchangeState> state)
      : connection_(std::move(connection)), state_(std::move(state)) {}

  ~ExchangeHandle() override {
    try {
      connection_->post([state = state_](Connection& c) { c.abandon(state); });
    } catch (const std::exception&) {
      // Only allocation can fail here; the connection then times out instead of getting a 500.
    }
  }

  void respond(int status, std::string content_type, std::string body,
               HttpHeaders headers) override {
    connection_->post([state = state_, status, content_type = std::move(content_type),
                       body = std::move(body),
                       headers = std::move(headers)](Connection& c) mutable {
      c.respond(state, status, content_type, std::move(body), headers);
    });
  }

  void start_events(int status, HttpHeaders headers) override {
    connection_->post([state = state_, status, headers = std::move(headers)](Connection& c) {
      c.start_events(state, status, headers);
    });
  }

  void send_event(std::string data) override {
    connection_->post([state = state_, data = std::move(data)](Connection& c) mutable {
      c.send_event(state, std::move(data));
    });
  }

  void end_events() override {
    connection_->post([state = state_](Connection& c) { c.end_events(state); });
  }

  void on_disconnect(std::function<void()> callback) override {
    auto shared = std::make_shared<std::function<void()>>(std::move(callback));
    const bool posted = connection_->post(
        [state = state_, shared](Connection& c) { c.on_disconnect(state, std::move(*shared)); });
    // Refused once the server has stopped: this exchange either was disconnected then or can
    // never end now, so the client is as good as gone.
    const bool gone = state_->disconnected || !state_->finished;
    if (!posted && gone && *shared) (*shared)();
  }

  void on_finished(std::function<void(double)> callback) override {
    auto shared = std::make_shared<std::function<void(double)>>(std::move(callback));
    const bool posted = connection_->post(
        [state = state_, shared](Connection& c) { c.on_finished(state, std::move(*shared)); });
    // Refused once the server has stopped: nothing more will be charged.
    if (!posted && *shared) (*shared)(state_->http_seconds());
  }

  bool disconnected() const override { return state_->disconnected; }

 private:
  std::shared_ptr<Connection> connection_;
  std::shared_ptr<ExchangeState> state_;
};

}  // namespace

std::shared_ptr<HttpExchange> make_exchange(std::shared_ptr<Connection> connection,
                                            std::shared_ptr<ExchangeState> exchange) {
  return std::make_shared<ExchangeHandle>(std::move(connection), std::move(exchange));
}

}  // namespace v4::router
