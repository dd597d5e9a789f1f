// Arrays on cache-line (or huge-page) boundaries, for the engines' tables and masks.
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <memory>
#include <new>

namespace gt::detail {

// Arrays on cache-line boundaries, uninitialized: a 64-byte load from them never spans two lines
// (malloc's 16-byte alignment splits every such load in three allocations of four, and the
// crossing masks make three a step). Arrays of megabytes (the engines' tables of every period) lie
// on 2 MiB boundaries and ask the kernel for huge pages: they are written once, from fresh memory,
// where 4 KiB pages would cost a page fault every 4 KiB.
struct CacheLineDelete {
  std::align_val_t alignment{64};
  void operator()(void* p) const { ::operator delete[](p, alignment); }
};
template <class T>
using CacheLineArray = std::unique_ptr<T[], CacheLineDelete>;
inline void* huge_page_allocation(std::size_t bytes, std::align_val_t alignment) {
  const auto page = static_cast<std::size_t>(alignment);
  const std::size_t whole = (bytes + page - 1) / page * page;
  void* p = ::operator new[](whole, alignment);
  // A hint: where the kernel declines, plain pages serve. The whole pages are advised, the last
  // one's tail included, or that last page would be served in 4 KiB pieces.
  madvise(p, whole, MADV_HUGEPAGE);
  return p;
}
template <class T>
CacheLineArray<T> cache_line_array(std::size_t count) {
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  if (count * sizeof(T) < 2 * kHugePage)
    return CacheLineArray<T>(static_cast<T*>(::operator new[](count * sizeof(T), std::align_val_t{64})));
  const std::align_val_t alignment{kHugePage};
  return CacheLineArray<T>(static_cast<T*>(huge_page_allocation(count * sizeof(T), alignment)),
                           CacheLineDelete{alignment});
}

}  // namespace gt::detail
