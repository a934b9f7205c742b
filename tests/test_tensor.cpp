// TensorView, Tensor, Parameter and Workspace: shapes, strides, ownership and their checks.
#include "support/helpers.hpp"

#include <catch2/catch.hpp>

#include <numeric>

using namespace llamablocks;
using Catch::Matchers::Contains;

TEST_CASE("TensorView indexes row-major data and checks its shape", "[tensor]") {
  std::vector<float> data(24);
  std::iota(data.begin(), data.end(), 0.0f);
  TensorView<float, 3> view(data.data(), {2, 3, 4});
  CHECK(view.size() == 24);
  CHECK(view.strides() == Shape<3>{12, 4, 1});
  CHECK(view.is_contiguous());
  CHECK(view(1, 2, 3) == 23.0f);
  CHECK(view[1](0, 1) == 13.0f);

  const TensorView<const float, 3> read_only = view;
  CHECK(read_only(0, 1, 0) == 4.0f);

  const auto flat = reshape<2>(view, {6, 4});
  CHECK(flat(5, 3) == 23.0f);
  CHECK_THROWS_WITH(reshape<2>(view, {5, 5}), Contains("[2, 3, 4]") && Contains("[5, 5]"));

  const TensorView<float, 2> strided(data.data(), {3, 2}, {4, 1});
  CHECK_FALSE(strided.is_contiguous());
  CHECK(strided(2, 1) == 9.0f);
  CHECK_THROWS_AS(reshape<1>(strided, {6}), shape_error);

  CHECK_THROWS_WITH((TensorView<float, 2>(data.data(), {-1, 4})), Contains("negative"));
  CHECK_THROWS_WITH((TensorView<float, 2>(nullptr, {2, 2})), Contains("null data"));
  CHECK_THROWS_WITH((TensorView<float, 2>(data.data(), {INT64_MAX, 4})), Contains("overflows"));
}

TEST_CASE("expect_shape and expect_disjoint name the argument", "[tensor]") {
  std::vector<float> data(16);
  const TensorView<float, 2> view(data.data(), {4, 4});
  CHECK_THROWS_WITH(detail::expect_shape("f", "x", view, {4, 3}),
                    Contains("f: x has shape [4, 4], expected [4, 3]"));
  const TensorView<float, 2> overlapping(data.data() + 2, {2, 4});
  CHECK_THROWS_WITH(detail::expect_disjoint("f", "x", view, "out", overlapping),
                    Contains("x and out overlap"));
  const TensorView<float, 1> after(data.data() + 16, {0});
  CHECK_NOTHROW(detail::expect_disjoint("f", "x", view, "out", after));
}

TEST_CASE("Tensor owns zeroed aligned memory, moves, borrows and shares", "[tensor]") {
  Tensor<float, 2> tensor({3, 5});
  CHECK(tensor.size() == 15);
  CHECK(reinterpret_cast<std::uintptr_t>(tensor.data()) % 64 == 0);
  for (index_t i = 0; i < tensor.size(); ++i) CHECK(tensor.data()[i] == 0.0f);

  tensor.view()(1, 2) = 7.0f;
  Tensor<float, 2> moved = std::move(tensor);
  CHECK(moved.view()(1, 2) == 7.0f);

  const Tensor<float, 2> shared = moved.share();
  CHECK(shared.data() == moved.data());

  auto storage = std::make_shared<std::vector<float>>(6, 1.5f);
  {
    auto borrowed = Tensor<float, 2>::borrow(TensorView<float, 2>(storage->data(), {2, 3}), storage);
    storage.reset();  // the tensor keeps the storage alive
    CHECK(borrowed.view()(1, 2) == 1.5f);
  }
}

TEST_CASE("Parameter keeps its shape whatever is loaded", "[tensor]") {
  Parameter<float, 2> weight("w", {2, 3});
  std::vector<float> source{1, 2, 3, 4, 5, 6};
  weight.copy_from(TensorView<const float, 2>(source.data(), {2, 3}));
  CHECK(weight.view()(1, 0) == 4.0f);
  CHECK_THROWS_WITH(weight.copy_from(TensorView<const float, 2>(source.data(), {3, 2})),
                    Contains("w: source has shape [3, 2], expected [2, 3]"));
  CHECK(weight.view()(1, 0) == 4.0f);  // unchanged by the failed copy
  CHECK_THROWS_WITH(weight.assign(Tensor<float, 2>({3, 3})), Contains("w: cannot assign"));
  CHECK(weight.view()(1, 0) == 4.0f);

  Parameter<float, 2> tied("tied", {2, 3});
  tied.assign(weight.share());
  CHECK(tied.view().data() == weight.view().data());
}

TEST_CASE("Workspace grows to the largest request and then reuses it", "[tensor]") {
  Workspace<float> workspace;
  const auto small = workspace.get<2>({4, 4});
  const auto large = workspace.get<2>({8, 8});
  CHECK(workspace.capacity() == 64);
  const float* storage = large.data();
  const auto again = workspace.get<3>({2, 4, 8});
  CHECK(again.data() == storage);  // no reallocation for a request that fits
  (void)small;
}

TEST_CASE("Tensor of a one-byte element type", "[tensor]") {
  Tensor<std::uint8_t, 1> bytes({1000});
  CHECK(bytes.size() == 1000);
  CHECK(bytes.data()[999] == 0);
}

#if defined(__linux__) && !defined(__SANITIZE_ADDRESS__)
#include <fstream>
#include <string>

namespace {
long resident_kib() {
  std::ifstream status("/proc/self/status");
  std::string key;
  long value = 0;
  while (status >> key)
    if (key == "VmRSS:") return (status >> value) ? value : 0;
  return 0;
}
}  // namespace

TEST_CASE("A large zero-filled tensor costs no resident memory until written", "[tensor]") {
  // A module's parameters are allocated zero-filled and then replaced by checkpoint tensors;
  // untouched they must not count towards the process's memory.
  const long before = resident_kib();
  Tensor<float, 2> large({4096, 4096});  // 64 MiB
  const long untouched = resident_kib() - before;
  CHECK(untouched < 8 * 1024);
  CHECK(large.data()[0] == 0.0f);
  CHECK(large.data()[large.size() - 1] == 0.0f);
  CHECK(reinterpret_cast<std::uintptr_t>(large.data()) % 64 == 0);
}
#endif
