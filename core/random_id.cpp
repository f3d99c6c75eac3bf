#include "core/random_id.h"

#include <random>

namespace v4 {

std::string random_id(std::string_view prefix, size_t length, std::string_view alphabet) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  // Rejection keeps the draw uniform for alphabets that do not divide 2^64 (62 digits).
  const uint64_t n = alphabet.size();
  const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  std::string id(prefix);
  id.reserve(prefix.size() + length);
  for (size_t i = 0; i < length; ++i) {
    uint64_t r = rng();
    while (r >= limit) r = rng();
    id += alphabet[r % n];
  }
  return id;
}

}  // namespace v4
