// Which model a stored KV page belongs to (kv_page_file.h): a digest cheap to compute at start-up
// from the loaded file — its size, its tensor table (names, types, shapes, byte sizes) and the
// first bytes of every tensor's data. Two files of one architecture made with different seeds
// share the table but not the bytes; re-quantising changes the table.
#pragma once

#include <cstdint>
#include <string_view>

#include "model/gguf/gguf_reader.h"

namespace v4 {

uint64_t model_identity(const GgufFile& file, const GgufFile* mtp_file = nullptr);
// `identity` made specific to a device kind ("cpu", "cuda"): page bytes computed by different
// kernels may differ in their last bits, and a hit must give the tokens of a cold run.
uint64_t model_identity_on_device(uint64_t identity, std::string_view device_kind);

}  // namespace v4
