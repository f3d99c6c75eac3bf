#include "model/backend/device/device_backend.h"

#include <algorithm>
#include <cstdio>
#include <vector>

namespace v4::device {

Status check_tensor_span(const Tensor& t, size_t offset, size_t bytes, const char* what) {
  if (!t.valid()) return Status::error(std::string(what) + ": tensor has no buffer");
  if (offset > t.bytes() || bytes > t.bytes() - offset ||
      t.offset + t.bytes() > t.buffer->bytes()) {
    return Status::error(std::string(what) + ": bytes [" + std::to_string(offset) + ", " +
                         std::to_string(offset + bytes) + ") outside a tensor of " +
                         std::to_string(t.bytes()) + " bytes");
  }
  return Status::ok();
}

}  // namespace v4::device

namespace v4::device {

void OpProfile::print() const {
  std::vector<std::pair<std::string, Entry>> rows(entries_.begin(), entries_.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.seconds > b.second.seconds; });
  double total = 0;
  for (const auto& [name, e] : rows) total += e.seconds;
  std::fprintf(stderr, "device op profile (each op timed to its end):\n");
  uint64_t calls = 0, launches = 0;
  for (const auto& [name, e] : rows) {
    std::fprintf(stderr, "  %-20s %9.3f ms %5.1f%% %8llu calls %9.1f us/call %5.1f kernels/call\n",
                 name.c_str(), e.seconds * 1e3, total > 0 ? 100.0 * e.seconds / total : 0.0,
                 static_cast<unsigned long long>(e.calls), e.seconds * 1e6 / e.calls,
                 static_cast<double>(e.launches) / e.calls);
    calls += e.calls;
    launches += e.launches;
  }
  std::fprintf(stderr, "  total %.3f ms, %llu op calls, %llu kernels\n", total * 1e3,
               static_cast<unsigned long long>(calls), static_cast<unsigned long long>(launches));
}

}  // namespace v4::device
