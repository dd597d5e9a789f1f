#include "detail.hpp"
#include "gt/incremental.hpp"

namespace gt::ind {

Series obv(std::span<const double> close, std::span<const double> volume) {
  Series out(close.size());
  incremental::Obv state;
  for (std::size_t i = 0; i < close.size(); ++i) out[i] = state.update(close[i], volume[i]);
  return out;
}

}  // namespace gt::ind
