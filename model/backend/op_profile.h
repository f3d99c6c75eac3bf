// Time per op kind of a Backend (V4_DEVICE_PROFILE): what a step's time is spent on, printed as
// a table per part of the run (Backend::profile_section) when the backend is destroyed.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace v4 {

class OpProfile {
 public:
  struct Entry {
    double seconds = 0;
    uint64_t calls = 0;
    uint64_t launches = 0;
  };
  using Table = std::map<std::string, Entry>;

  // The ops added from now on go in the table of `name` (a part of a run: a benchmark's prefill,
  // its decode steps), printed under that name; naming a part again adds to its table.
  void begin_section(const std::string& name);
  // `launches`: device kernels the op started (0 on the host, where the column is left out).
  void add(const std::string& name, double seconds, uint64_t launches = 0) {
    Entry& e = sections_[current_].second[name];
    e.seconds += seconds;
    e.launches += launches;
    ++e.calls;
  }
  // One table per part with ops, in the order the parts were first named.
  void print(const char* title) const;
  // Every part's entries, summed per op.
  Table entries() const;
  // The entries of the part named `name` (empty when it has none).
  Table section(const std::string& name) const;

 private:
  std::vector<std::pair<std::string, Table>> sections_{{"", {}}};
  size_t current_ = 0;
};

}  // namespace v4
