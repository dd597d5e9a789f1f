// The pieces of the searches' model (docs/SEMANTICS.md "Search"), apart so that tests can read
// them: the random streams, the space as positions along its axes, a side's Parzen density and
// the steps a candidate is drawn away from a good point.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <span>
#include <vector>

#include "gt/grid.hpp"

namespace gt::search_model {

// splitmix64: the same stream from a seed on every machine and standard library (std::
// distributions differ between libraries, and a search must give the same results everywhere).
class Random {
 public:
  explicit Random(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += kGamma);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) {  // uniform in [0, n), unbiased
    const std::uint64_t limit =
        std::numeric_limits<std::uint64_t>::max() - std::numeric_limits<std::uint64_t>::max() % n;
    for (;;)
      if (const std::uint64_t x = next(); x < limit) return x % n;
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }  // [0, 1)
  // The stream of draw `n` of a batch whose stream starts at `seed`: batches draw in parallel,
  // each draw from its own stream, the same whatever the thread count.
  static Random draw(std::uint64_t seed, std::uint64_t n) { return Random(Random(seed + n * kGamma).next()); }

 private:
  static constexpr std::uint64_t kGamma = 0x9E3779B97F4A7C15ULL;
  std::uint64_t state_;
};

// The grid's space as positions along each axis (the first axis most significant, as Grid::decode).
class Space {
 public:
  explicit Space(const Grid& grid) : grid_(grid), scratch_(grid.base().size()) {
    for (const auto& axis : grid.axes()) {
      sizes_.push_back(axis.values.size());
      ordered_.push_back(axis.range);
    }
  }
  std::size_t dims() const { return sizes_.size(); }
  std::uint64_t size(std::size_t k) const { return sizes_[k]; }
  bool ordered(std::size_t k) const { return ordered_[k]; }
  void positions(std::uint64_t index, std::span<std::int64_t> out) const {
    for (std::size_t k = dims(); k-- > 0;) {
      out[k] = static_cast<std::int64_t>(index % sizes_[k]);
      index /= sizes_[k];
    }
  }
  std::uint64_t index(std::span<const std::int64_t> p) const {
    std::uint64_t index = 0;
    for (std::size_t k = 0; k < dims(); ++k) index = index * sizes_[k] + static_cast<std::uint64_t>(p[k]);
    return index;
  }
  // Whether combination `index`, or the one at `positions`, is valid.
  bool valid(std::uint64_t index) {
    grid_.decode(index, scratch_);
    return grid_.is_valid(scratch_);
  }
  bool valid_at(std::span<const std::int64_t> positions) { return valid_at(positions, scratch_); }
  // The same with the caller's scratch (one value per parameter), from any thread.
  bool valid_at(std::span<const std::int64_t> positions, std::span<double> scratch) const {
    const auto& base = grid_.base();
    std::copy(base.begin(), base.end(), scratch.begin());
    for (std::size_t k = 0; k < dims(); ++k) {
      const Grid::Axis& axis = grid_.axes()[k];
      scratch[axis.param] = axis.values[static_cast<std::size_t>(positions[k])];
    }
    return grid_.is_valid(scratch);
  }
  std::size_t parameters() const { return scratch_.size(); }
  const Grid& grid() const { return grid_; }

 private:
  const Grid& grid_;
  std::vector<std::uint64_t> sizes_;
  std::vector<bool> ordered_;
  std::vector<double> scratch_;
};

// One side of the bayes search's model (docs/SEMANTICS.md "Search"): a Parzen density over the
// space's positions, a mixture of product kernels (one per point) and a uniform prior. Its
// kernels are tabled per axis and value: column (k, v) holds every point's kernel along axis k at
// value v (Gaussian in steps on an ordered axis, by equality on a category), the points side by
// side and padded with zeros to whole lanes, so that a density is a sum over the points of
// products of one column per axis. The storage is kept from one fit to the next; a fit told which
// positions will be asked about fills only their columns.
class Parzen {
 public:
  static constexpr double kKeepCategory = 0.8;  // a category's kernel on its own value

  // `points`: n x dims positions; `h`: the bandwidth of each ordered axis, in steps; `asked`: the
  // positions (dims values each) whose densities log_density will be asked, or none for all.
  void fit(const Space& space, std::span<const std::int64_t> points, std::span<const double> h,
           std::span<const std::int64_t> asked = {}) {
    const std::size_t d = space.dims();
    points_ = points.size() / d;
    width_ = (points_ + kLanes - 1) / kLanes * kLanes;
    prior_ = 1;
    std::size_t size = 0;
    axis_start_.clear();
    for (std::size_t k = 0; k < d; ++k) {
      prior_ /= static_cast<double>(space.size(k));
      axis_start_.push_back(size);
      size += space.size(k) * width_;
    }
    columns_.resize(size);
    for (std::size_t k = 0; k < d; ++k) {
      const auto m = static_cast<std::int64_t>(space.size(k));
      kernel_.assign(static_cast<std::size_t>(2 * m - 1), 1.0);  // by the signed distance, + m - 1
      for (std::int64_t delta = -(m - 1); delta <= m - 1; ++delta) {
        double& value = kernel_[static_cast<std::size_t>(delta + m - 1)];
        if (space.ordered(k)) {
          const double z = static_cast<double>(delta) / h[k];
          value = std::exp(-0.5 * z * z) / (h[k] * std::sqrt(2 * std::numbers::pi));
        } else if (m > 1) {
          value = delta == 0 ? kKeepCategory : (1 - kKeepCategory) / static_cast<double>(m - 1);
        }
      }
      filled_.assign(static_cast<std::size_t>(m), asked.empty());
      for (std::size_t a = k; a < asked.size(); a += d) filled_[static_cast<std::size_t>(asked[a])] = true;
      for (std::int64_t v = 0; v < m; ++v) {
        if (!filled_[static_cast<std::size_t>(v)]) continue;
        double* column = columns_.data() + axis_start_[k] + static_cast<std::size_t>(v) * width_;
        for (std::size_t j = 0; j < points_; ++j)
          column[j] = kernel_[static_cast<std::size_t>(v - points[j * d + k] + m - 1)];
        std::fill(column + points_, column + width_, 0.0);
      }
    }
  }

  // The log density at position `x` (dims values); `axis`: the caller's scratch of dims pointers.
  // Lane l adds the points l, l + kLanes, ... in order and the lanes are then added pairwise: the
  // same sum on every machine and thread count.
  double log_density(const std::int64_t* x, std::vector<const double*>& axis) const {
    const std::size_t d = axis.size();
    for (std::size_t k = 0; k < d; ++k)
      axis[k] = columns_.data() + axis_start_[k] + static_cast<std::size_t>(x[k]) * width_;
    std::array<double, kLanes> lanes{};
    for (std::size_t j = 0; j < width_; j += kLanes) {
      std::array<double, kLanes> kernel;
      for (std::size_t l = 0; l < kLanes; ++l) kernel[l] = axis[0][j + l];
      for (std::size_t k = 1; k < d; ++k)
        for (std::size_t l = 0; l < kLanes; ++l) kernel[l] *= axis[k][j + l];
      for (std::size_t l = 0; l < kLanes; ++l) lanes[l] += kernel[l];
    }
    for (std::size_t half = kLanes / 2; half > 0; half /= 2)
      for (std::size_t l = 0; l < half; ++l) lanes[l] += lanes[l + half];
    return std::log((prior_ + lanes[0]) / static_cast<double>(points_ + 1));
  }

 private:
  static constexpr std::size_t kLanes = 8;
  std::vector<double> columns_, kernel_;
  std::vector<bool> filled_;  // per value of the axis being fitted
  std::vector<std::size_t> axis_start_;
  std::size_t width_ = 0, points_ = 0;
  double prior_ = 1;
};

// The steps a candidate is drawn away from a point along an ordered axis of m values: a Gaussian
// of `h` steps rounded to the nearest step (half away from zero), drawn with one uniform from a
// table of its exact probabilities. Offsets of m - 1 steps or more all land on the axis's end
// once clamped, so the table stops there and its ends hold the tails.
class RoundedGaussian {
 public:
  void fit(double h, std::int64_t m) {
    // Beyond 9 bandwidths the tail is below 1e-18: nothing a double's uniform can reach.
    reach_ = std::min<std::int64_t>(m - 1, static_cast<std::int64_t>(std::ceil(9 * h)) + 1);
    const auto below = [&](double steps) { return 0.5 * std::erfc(-steps / (h * std::numbers::sqrt2)); };
    cumulative_.clear();
    for (std::int64_t o = -reach_; o < reach_; ++o) cumulative_.push_back(below(static_cast<double>(o) + 0.5));
    cumulative_.push_back(1.0);
    guide_.resize(cumulative_.size());
    std::size_t at = 0;
    for (std::size_t g = 0; g < guide_.size(); ++g) {
      while (cumulative_[at] <= static_cast<double>(g) / static_cast<double>(guide_.size())) ++at;
      guide_[g] = at;
    }
  }
  std::int64_t draw(Random& random) const {
    const double u = random.uniform();
    // The guide names the first entry that u can fall in; a step or two from there finds it.
    std::size_t at =
        guide_[std::min(guide_.size() - 1, static_cast<std::size_t>(u * static_cast<double>(guide_.size())))];
    while (cumulative_[at] <= u) ++at;
    return static_cast<std::int64_t>(at) - reach_;
  }

 private:
  std::int64_t reach_ = 0;
  std::vector<double> cumulative_;  // P(offset <= -reach_ + i), the last exactly 1
  std::vector<std::size_t> guide_;  // guide_[g]: the first i with cumulative_[i] > g / size
};

}  // namespace gt::search_model
