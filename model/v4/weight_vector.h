// A small weight vector (norm weights, HC scale/base, sinks, biases, compressor ape, the hash
// table) widened on the host when the weights are bound. Once the weights are resident on a
// device (device_weights.h) `device()` is its copy there; until then it is the host values, which
// is where CpuBackend reads them. The forward passes `device()` to backend ops and nothing else.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace v4 {

template <class T>
class WeightVector {
 public:
  WeightVector() = default;
  WeightVector(std::vector<T> values) : host_(std::move(values)) {}  // NOLINT: a vector is one
  WeightVector& operator=(std::vector<T> values) {
    host_ = std::move(values);
    device_ = nullptr;
    return *this;
  }

  const std::vector<T>& host() const { return host_; }
  std::vector<T>& host() { return host_; }
  const T* data() const { return host_.data(); }
  size_t size() const { return host_.size(); }
  bool empty() const { return host_.empty(); }
  const T& operator[](size_t i) const { return host_[i]; }
  T& operator[](size_t i) { return host_[i]; }
  auto begin() const { return host_.begin(); }
  auto end() const { return host_.end(); }

  // Where a backend reads the values: the device copy when there is one, else the host values.
  const T* device() const { return device_ ? device_ : host_.data(); }
  void set_device(const T* copy) { device_ = copy; }

 private:
  std::vector<T> host_;
  const T* device_ = nullptr;
};

}  // namespace v4
