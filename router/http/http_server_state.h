// What the HTTP server shares with its connections and exchanges. It is reference-counted so an
// exchange that a handler keeps past the server's life still points at a live io_context; once
// the server has stopped, post() refuses work so nothing queues on a context nobody runs.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "router/http/http_server.h"

namespace v4::router {

class Connection;

struct ServerState {
  ServerState(HttpServerOptions options_in, HttpHandler handler_in)
      : options(std::move(options_in)),
        handler(std::move(handler_in)),
        io(static_cast<int>(options.threads == 0 ? 1 : options.threads)) {}

  // Posts `work` unless the server has stopped; returns whether it was posted.
  template <class Executor, class Work>
  bool post(const Executor& executor, Work&& work) {
    std::lock_guard lock(mutex);
    if (stopped) return false;
    boost::asio::post(executor, std::forward<Work>(work));
    return true;
  }

  // False once stopping: the caller then drops the connection.
  bool add_connection(uint64_t id, const std::shared_ptr<Connection>& connection) {
    std::lock_guard lock(mutex);
    if (stopped) return false;
    connections.emplace(id, connection);
    connections_open++;
    connections_total++;
    return true;
  }

  void remove_connection(uint64_t id) {
    {
      std::lock_guard lock(mutex);
      connections.erase(id);
      connections_open--;
    }
    changed.notify_all();
  }

  void exchange_started() {
    std::lock_guard lock(mutex);
    exchanges_open++;
  }

  // Under the mutex so a drain() waiting on `changed` cannot miss the last one.
  void exchange_ended() {
    {
      std::lock_guard lock(mutex);
      exchanges_open--;
    }
    changed.notify_all();
  }

  // The connections still alive; with `stop` set, post() refuses from now on.
  std::vector<std::shared_ptr<Connection>> live_connections(bool stop) {
    std::lock_guard lock(mutex);
    if (stop) stopped = true;
    std::vector<std::shared_ptr<Connection>> live;
    for (auto& [id, weak] : connections) {
      if (auto connection = weak.lock()) live.push_back(std::move(connection));
    }
    return live;
  }

  const HttpServerOptions options;
  const HttpHandler handler;

  std::mutex mutex;
  std::condition_variable changed;
  bool stopped = false;                                       // under mutex
  std::map<uint64_t, std::weak_ptr<Connection>> connections;  // under mutex
  std::atomic<bool> draining{false};
  std::atomic<uint64_t> connections_open{0};
  std::atomic<uint64_t> connections_total{0};
  std::atomic<uint64_t> exchanges_open{0};

  // Last member: destroyed first, while everything its pending handlers might touch is alive.
  boost::asio::io_context io;
};

}  // namespace v4::router
