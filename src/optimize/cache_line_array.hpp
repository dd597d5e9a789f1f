// Arrays on cache-line (or huge-page) boundaries, for the engines' tables and masks.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace gt::detail {

// Arrays on cache-line boundaries, uninitialized: a 64-byte load from them never spans two lines
// (malloc's 16-byte alignment splits every such load in three allocations of four, and the
// crossing masks make three a step). Arrays of a megabyte or more (the engines' tables of every
// period, their resume points, the range table) lie on 2 MiB boundaries and ask the kernel for
// huge pages: they are written once, from fresh memory, where 4 KiB pages would cost a page fault
// every 4 KiB.
struct CacheLineDelete {
  std::align_val_t alignment{64};
  void operator()(void* p) const { ::operator delete[](p, alignment); }
};
template <class T>
using CacheLineArray = std::unique_ptr<T[], CacheLineDelete>;
constexpr std::size_t kHugePage = std::size_t{2} << 20;
constexpr std::size_t kHugePagesFrom = std::size_t{1} << 20;  // bytes
// The alignment an array of `bytes` gets.
constexpr std::align_val_t array_alignment(std::size_t bytes) {
  return std::align_val_t{bytes < kHugePagesFrom ? 64 : kHugePage};
}
inline void* array_allocation(std::size_t bytes) {
  const std::align_val_t alignment = array_alignment(bytes);
  if (alignment != std::align_val_t{kHugePage}) return ::operator new[](bytes, alignment);
  const std::size_t whole = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = ::operator new[](whole, alignment);
  // A hint: where the kernel declines, plain pages serve. The whole pages are advised, the last
  // one's tail included, or that last page would be served in 4 KiB pieces.
  madvise(p, whole, MADV_HUGEPAGE);
  return p;
}
template <class T>
CacheLineArray<T> cache_line_array(std::size_t count) {
  return CacheLineArray<T>(static_cast<T*>(array_allocation(count * sizeof(T))),
                           CacheLineDelete{array_alignment(count * sizeof(T))});
}
// The same placement for a std::vector (zero-filled as vectors are, and resizable).
template <class T>
struct CacheLineAllocator {
  using value_type = T;
  CacheLineAllocator() = default;
  template <class U>
  explicit CacheLineAllocator(const CacheLineAllocator<U>&) {}
  T* allocate(std::size_t count) { return static_cast<T*>(array_allocation(count * sizeof(T))); }
  void deallocate(T* p, std::size_t count) { ::operator delete[](p, array_alignment(count * sizeof(T))); }
  friend bool operator==(const CacheLineAllocator&, const CacheLineAllocator&) { return true; }
};
template <class T>
using CacheLineVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace gt::detail
