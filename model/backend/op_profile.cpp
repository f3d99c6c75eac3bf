#include "model/backend/op_profile.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace v4 {

namespace {

void print_table(const std::string& title, const OpProfile::Table& table) {
  std::vector<std::pair<std::string, OpProfile::Entry>> rows(table.begin(), table.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  uint64_t calls = 0, launches = 0;
  for (const auto& [name, e] : rows) {
    total += e.seconds;
    calls += e.calls;
    launches += e.launches;
  }
  std::fprintf(stderr, "%s:\n", title.c_str());
  for (const auto& [name, e] : rows) {
    std::fprintf(stderr, "  %-24s %9.3f ms %5.1f%% %8llu calls %9.1f us/call", name.c_str(),
                 e.seconds * 1e3, total > 0 ? 100.0 * e.seconds / total : 0.0,
                 static_cast<unsigned long long>(e.calls), e.seconds * 1e6 / e.calls);
    if (launches > 0) {
      std::fprintf(stderr, " %5.1f kernels/call", static_cast<double>(e.launches) / e.calls);
    }
    std::fprintf(stderr, "\n");
  }
  std::fprintf(stderr, "  total %.3f ms, %llu op calls", total * 1e3,
               static_cast<unsigned long long>(calls));
  if (launches > 0)
    std::fprintf(stderr, ", %llu kernels", static_cast<unsigned long long>(launches));
  std::fprintf(stderr, "\n");
}

}  // namespace

void OpProfile::begin_section(const std::string& name) {
  for (current_ = 0; current_ < sections_.size(); ++current_) {
    if (sections_[current_].first == name) return;
  }
  sections_.emplace_back(name, Table{});
}

void OpProfile::print(const char* title) const {
  for (const auto& [name, table] : sections_) {
    if (table.empty()) continue;
    print_table(name.empty() ? std::string(title) : std::string(title) + ", " + name, table);
  }
}

OpProfile::Table OpProfile::entries() const {
  Table all;
  for (const auto& [section, table] : sections_) {
    for (const auto& [name, e] : table) {
      Entry& sum = all[name];
      sum.seconds += e.seconds;
      sum.calls += e.calls;
      sum.launches += e.launches;
    }
  }
  return all;
}

OpProfile::Table OpProfile::section(const std::string& name) const {
  for (const auto& [section, table] : sections_) {
    if (section == name) return table;
  }
  return {};
}

}  // namespace v4
