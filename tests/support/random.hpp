// Seeded random test data.
#pragma once

#include <llamablocks/core/tensor.hpp>

#include <cstdint>
#include <random>

namespace llamablocks::test {

/// Fills `view` with N(mean, stddev) values from a generator seeded with `seed`.
template <class T, int Rank>
void fill_normal(const TensorView<T, Rank>& view, std::uint32_t seed, double stddev = 1.0,
                 double mean = 0.0) {
  std::mt19937 generator(seed);
  std::normal_distribution<double> distribution(mean, stddev);
  for (index_t i = 0; i < view.size(); ++i) view.data()[i] = static_cast<T>(distribution(generator));
}

template <class T, int Rank>
Tensor<T, Rank> random_tensor(const Shape<Rank>& shape, std::uint32_t seed, double stddev = 1.0,
                              double mean = 0.0) {
  Tensor<T, Rank> tensor(shape);
  fill_normal(tensor.view(), seed, stddev, mean);
  return tensor;
}

}  // namespace llamablocks::test
