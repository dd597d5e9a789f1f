// NumPy arrays over vectors the engine computed: both extension modules hand results out this way.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <array>
#include <cstddef>
#include <utility>
#include <vector>

namespace gt_python {

// A NumPy array that owns `values` (moved to the heap, freed with the array), of the given shape.
template <class T, std::size_t N>
nanobind::ndarray<nanobind::numpy, T, nanobind::ndim<N>> owned_array(std::vector<T> values,
                                                                     std::array<std::size_t, N> shape) {
  auto* heap = new std::vector<T>(std::move(values));
  nanobind::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return nanobind::ndarray<nanobind::numpy, T, nanobind::ndim<N>>(heap->data(), N, shape.data(), owner);
}

// The one-dimensional case.
template <class T>
nanobind::ndarray<nanobind::numpy, T, nanobind::ndim<1>> owned_array(std::vector<T> values) {
  const std::size_t size = values.size();
  return owned_array<T, 1>(std::move(values), {size});
}

}  // namespace gt_python
