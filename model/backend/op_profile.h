// Time per op kind of a Backend (V4_DEVICE_PROFILE): what a step's time is spent on, printed as
// a table when the backend is destroyed.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace v4 {

class OpProfile {
 public:
  struct Entry {
    double seconds = 0;
    uint64_t calls = 0;
    uint64_t launches = 0;
  };

  // `launches`: device kernels the op started (0 on the host, where the column is left out).
  void add(const std::string& name, double seconds, uint64_t launches = 0) {
    Entry& e = entries_[name];
    e.seconds += seconds;
    e.launches += launches;
    ++e.calls;
  }
  void print(const char* title) const;
  const std::map<std::string, Entry>& entries() const { return entries_; }

 private:
  std::map<std::string, Entry> entries_;
};

}  // namespace v4
