// Status and Result<T>: how library code reports failure. Messages name the input and the
// problem; only mains and the HTTP layer turn them into exit codes or API errors (style.md).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace v4 {

class Status {
public:
  Status() = default;
  static Status ok() { return Status(); }
  static Status error(std::string message) { return Status(std::move(message), true); }

  bool is_ok() const { return !failed_; }
  explicit operator bool() const { return !failed_; }
  const std::string& message() const { return message_; }

private:
  Status(std::string message, bool failed) : message_(std::move(message)), failed_(failed) {}
  std::string message_;
  bool failed_ = false;
};

// A value or the Status explaining why there is none.
template <class T> class Result {
public:
  Result(T value) : state_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : state_(std::move(status)) { assert(!std::get<Status>(state_).is_ok()); }

  bool is_ok() const { return std::holds_alternative<T>(state_); }
  explicit operator bool() const { return is_ok(); }

  T& value() & { return std::get<T>(state_); }
  const T& value() const& { return std::get<T>(state_); }
  T&& value() && { return std::get<T>(std::move(state_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  Status status() const { return is_ok() ? Status::ok() : std::get<Status>(state_); }
  const std::string& message() const {
    static const std::string empty;
    return is_ok() ? empty : std::get<Status>(state_).message();
  }

private:
  std::variant<T, Status> state_;
};

}  // namespace v4
