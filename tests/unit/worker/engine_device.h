// Shared by the engine tests on a device backend: the backend ("emulated" or "cuda", see
// device_test_util.h) with the model's weights in its memory, since a GPU cannot read the host's
// mapping of the file.
#pragma once

#include <memory>
#include <string>

#include "model/v4/device_weights.h"
#include "tests/unit/model/backend/device_test_util.h"

namespace v4::testing_device {

struct EngineDevice {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<DeviceWeights> weights;
};

// A null backend where the device is not usable, and null weights where their upload failed;
// `why` says which.
inline EngineDevice engine_device(const std::string& name, const V4Weights& host,
                                  std::string* why) {
  EngineDevice d;
  d.backend = make_device_backend(name, why);
  if (!d.backend) return d;
  Result<std::unique_ptr<DeviceWeights>> w = DeviceWeights::upload(host, *d.backend);
  if (!w) {
    *why = "weights upload: " + w.message();
    return d;
  }
  d.weights = std::move(*w);
  return d;
}

}  // namespace v4::testing_device
