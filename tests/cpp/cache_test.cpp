// The result cache: what it keys on, what it serves, and that a damaged or foreign entry is never
// served. The Redis backend and killed processes are tested end to end in
// tests/python/test_cache.py.
#include "gt/cache.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "gt/data.hpp"
#include "gt/grid.hpp"
#include "gt/optimize.hpp"

namespace {

namespace fs = std::filesystem;

const gt::Bars& orcl() {
  static const gt::Bars bars = gt::load_csv(GT_DATA_DIR "/orcl-1995-2014.csv");
  return bars;
}

const gt::Strategy& ma_cross() {
  return gt::find_strategy("ma_cross");
}

gt::Grid grid(std::string fast) {
  return gt::parse_grid(ma_cross(), {"fast=" + fast, "slow=20:49", "ma_type=0:2", "volume_filter=false,true"},
                        std::nullopt, {});
}

class TempDir {
 public:
  TempDir()
      : path_(fs::temp_directory_path() /
              ("gt-cache-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++))) {
    fs::remove_all(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

struct Outcome {
  gt::OptimizeResult result;
  std::string csv;
};

Outcome optimize_with(gt::ResultCache* cache, const gt::Grid& g, const gt::ExecutionOptions& options = {}) {
  gt::OptimizeOptions opt;
  opt.cache = cache;
  opt.threads = 2;
  Outcome run;
  gt::CsvResultSink sink(g, {orcl().symbol}, [&](std::string_view text) { run.csv += text; });
  run.result = gt::optimize({orcl()}, g, options, opt, &sink);
  return run;
}

// Runs `g` once with an on-disk cache in `dir` (a process of its own, in effect: the store is
// closed afterwards) and returns the store's files.
std::vector<fs::path> fill_cache(const fs::path& dir, const gt::Grid& g, const gt::ExecutionOptions& options = {}) {
  {
    gt::ResultCache cache(gt::make_disk_backend(dir));
    optimize_with(&cache, g, options);
  }
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.push_back(e.path());
  return out;
}

// A batch of the store's file: "GTC3", u32 count, u32 value size, u32 0, the namespace's 16-byte
// hash, then the keys and the values.
struct BatchHeader {
  std::uint32_t magic, count, value_size, reserved;
  char ns[16];
};
static_assert(sizeof(BatchHeader) == 32);

std::vector<std::pair<std::streamoff, BatchHeader>> batch_headers(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::vector<std::pair<std::streamoff, BatchHeader>> out;
  for (std::streamoff at = 0; at < static_cast<std::streamoff>(fs::file_size(file));) {
    BatchHeader h;
    in.seekg(at);
    in.read(reinterpret_cast<char*>(&h), sizeof h);
    out.emplace_back(at, h);
    at += static_cast<std::streamoff>(sizeof h + h.count * (8 + h.value_size));
  }
  return out;
}

TEST(ResultCache, ARerunIsServedEntirelyFromTheCacheWithIdenticalResults) {
  TempDir dir;
  const auto g = grid("5:19");
  const Outcome clean = optimize_with(nullptr, g);
  {
    gt::ResultCache cache(gt::make_disk_backend(dir.path()));
    const Outcome first = optimize_with(&cache, g);
    EXPECT_EQ(first.result.computed, 2700u);
    EXPECT_EQ(first.result.from_cache, 0u);
    EXPECT_EQ(first.csv, clean.csv);
  }
  gt::ResultCache cache(gt::make_disk_backend(dir.path()));  // another process, in effect
  const Outcome again = optimize_with(&cache, g);
  EXPECT_EQ(again.result.computed, 0u);
  EXPECT_EQ(again.result.from_cache, 2700u);
  EXPECT_EQ(again.csv, clean.csv);
  EXPECT_EQ(cache.rejected(), 0u);
}

TEST(ResultCache, AnOverlappingGridComputesOnlyTheNewCombinations) {
  TempDir dir;
  fill_cache(dir.path(), grid("5:19"));
  gt::ResultCache cache(gt::make_disk_backend(dir.path()));
  const auto wider = grid("5:25");
  const Outcome run = optimize_with(&cache, wider);
  EXPECT_EQ(run.result.from_cache, 2700u);
  EXPECT_EQ(run.result.computed, run.result.valid - 2700u);
  EXPECT_EQ(run.csv, optimize_with(nullptr, wider).csv);
}

TEST(ResultCache, StoresWritingOneNamespaceAtOnceLoseNothing) {
  // Two stores over one folder (two processes, in effect) append to the namespace's one file at
  // the same time, each from two threads; a third then finds every result of both, intact.
  TempDir dir;
  const auto first = grid("5:12"), second = grid("13:19");
  std::uint64_t computed[2] = {};
  {
    gt::ResultCache a(gt::make_disk_backend(dir.path())), b(gt::make_disk_backend(dir.path()));
    std::thread other([&] { computed[1] = optimize_with(&b, second).result.computed; });
    computed[0] = optimize_with(&a, first).result.computed;
    other.join();
  }
  EXPECT_GT(fs::file_size(dir.path() / "results.log"), 0u);
  gt::ResultCache cache(gt::make_disk_backend(dir.path()));
  const auto both = grid("5:19");
  const Outcome run = optimize_with(&cache, both);
  EXPECT_EQ(run.result.from_cache, computed[0] + computed[1]);
  EXPECT_EQ(run.result.computed, 0u);
  EXPECT_EQ(cache.rejected(), 0u);
  EXPECT_EQ(run.csv, optimize_with(nullptr, both).csv);
}

TEST(ResultCache, KeysCoverTheDataTheOptionsAndTheStrategyVersion) {
  const std::string base = gt::cache_namespace(orcl(), ma_cross(), {});
  EXPECT_EQ(base, gt::cache_namespace(orcl(), ma_cross(), {}));
  EXPECT_EQ(base.rfind("gt-v3-", 0), 0u);

  gt::Bars changed = orcl();
  changed.close[1000] += 0.01;  // one price, one cent
  EXPECT_NE(base, gt::cache_namespace(changed, ma_cross(), {}));
  gt::Bars volume = orcl();
  volume.volume[5] += 1;
  EXPECT_NE(base, gt::cache_namespace(volume, ma_cross(), {}));

  gt::ExecutionOptions costs;
  costs.commission = 0.001;
  EXPECT_NE(base, gt::cache_namespace(orcl(), ma_cross(), costs));
  gt::ExecutionOptions close_fill;
  close_fill.fill = gt::Fill::kClose;
  EXPECT_NE(base, gt::cache_namespace(orcl(), ma_cross(), close_fill));
  gt::ExecutionOptions annualized;
  annualized.periods_per_year = 250;
  EXPECT_NE(base, gt::cache_namespace(orcl(), ma_cross(), annualized));

  gt::Strategy newer = ma_cross();
  newer.code_version += 1;
  EXPECT_NE(base, gt::cache_namespace(orcl(), newer, {}));
}

// Each execution option and each data column changed alone gives another key: a result computed
// under one setting is never served for another.
TEST(ResultCache, EveryOptionAndEveryColumnChangesTheKey) {
  const std::string base = gt::cache_namespace(orcl(), ma_cross(), {});
  const std::vector<std::pair<const char*, std::function<void(gt::ExecutionOptions&)>>> options = {
      {"fill", [](auto& o) { o.fill = gt::Fill::kClose; }},
      {"allow_short", [](auto& o) { o.allow_short = true; }},
      {"commission", [](auto& o) { o.commission = 0.0005; }},
      {"slippage_bps", [](auto& o) { o.slippage_bps = 50; }},
      {"size", [](auto& o) { o.size = 0.5; }},
      {"cash", [](auto& o) { o.cash = 100001; }},
      {"periods_per_year", [](auto& o) { o.periods_per_year = 365; }},
  };
  std::set<std::string> seen = {base};
  for (const auto& [name, change] : options) {
    gt::ExecutionOptions o;
    change(o);
    EXPECT_TRUE(seen.insert(gt::cache_namespace(orcl(), ma_cross(), o)).second) << name << " is not in the key";
  }
  const std::vector<std::pair<const char*, std::function<void(gt::Bars&)>>> columns = {
      {"time", [](gt::Bars& b) { b.time[2500] += 60; }},       {"open", [](gt::Bars& b) { b.open[2500] *= 1.0001; }},
      {"high", [](gt::Bars& b) { b.high[2500] *= 1.0001; }},   {"low", [](gt::Bars& b) { b.low[2500] *= 0.9999; }},
      {"close", [](gt::Bars& b) { b.close[2500] *= 1.0001; }}, {"volume", [](gt::Bars& b) { b.volume[2500] += 1; }},
  };
  for (const auto& [name, change] : columns) {
    gt::Bars bars = orcl();
    change(bars);
    EXPECT_TRUE(seen.insert(gt::cache_namespace(bars, ma_cross(), {})).second)
        << "column " << name << " is not in the key";
  }
  EXPECT_TRUE(seen.insert(gt::cache_namespace(orcl(), gt::find_strategy("rsi_reversion"), {})).second)
      << "the strategy is not in the key";
}

TEST(ResultCache, ADamagedEntryIsDetectedAndRecomputed) {
  TempDir dir;
  const auto g = grid("5:19");
  const auto files = fill_cache(dir.path(), g);
  ASSERT_EQ(files.size(), 1u);
  const auto size = static_cast<std::streamoff>(fs::file_size(files[0]));
  std::fstream f(files[0], std::ios::in | std::ios::out | std::ios::binary);
  auto flip_bit = [&](std::streamoff at) {
    char byte;
    f.seekg(at);
    f.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x10);
    f.seekp(at);
    f.write(&byte, 1);
  };
  const auto batches = batch_headers(files[0]);
  ASSERT_GE(batches.size(), 3u);
  const std::streamoff first_count = batches[0].second.count;
  flip_bit(1);                          // the first batch's marker: the reader skips the whole batch
  flip_bit(batches[1].first + 32 + 3);  // a key in the second batch: that entry is not found
  flip_bit(size - 50);                  // the metrics of the very last entry: its checksum fails
  f.close();
  gt::ResultCache cache(gt::make_disk_backend(dir.path()));
  const Outcome run = optimize_with(&cache, g);
  EXPECT_EQ(cache.rejected(), 1u);
  EXPECT_EQ(run.result.computed, static_cast<std::uint64_t>(first_count) + 2);
  EXPECT_EQ(run.result.from_cache, 2700u - static_cast<std::uint64_t>(first_count) - 2);
  EXPECT_EQ(run.csv, optimize_with(nullptr, g).csv);
}

TEST(ResultCache, ATornTailLosesOnlyWhatWasNotWrittenWhole) {
  TempDir dir;
  const auto g = grid("5:19");
  const auto files = fill_cache(dir.path(), g);
  ASSERT_EQ(files.size(), 1u);
  const auto size = fs::file_size(files[0]);
  const auto entry = size / 2700;
  fs::resize_file(files[0], size - entry / 2);  // power lost in the middle of the last entry
  {
    std::ofstream garbage(files[0], std::ios::app | std::ios::binary);
    garbage << std::string(7, '\0');  // and a few zeroed sectors after it
  }
  gt::ResultCache cache(gt::make_disk_backend(dir.path()));
  const Outcome run = optimize_with(&cache, g);
  EXPECT_EQ(run.result.from_cache, 2699u);
  EXPECT_EQ(run.result.computed, 1u);
  EXPECT_EQ(run.csv, optimize_with(nullptr, g).csv);
}

TEST(ResultCache, BatchesWrittenAfterATornOneAreRead) {
  // A run killed in the middle of writing a batch, then runs that append after its bytes: the
  // torn batch's header claims bytes that their batches hold.
  TempDir dir;
  const auto first = grid("5:19");
  const auto files = fill_cache(dir.path(), first);
  ASSERT_EQ(files.size(), 1u);
  const auto batches = batch_headers(files[0]);
  const BatchHeader last = batches.back().second;
  ASSERT_GE(last.count, 4u);
  const auto cut = static_cast<std::uintmax_t>(batches.back().first) + sizeof(BatchHeader) + last.count * 8u +
                   last.value_size * (last.count / 2) + last.value_size / 3;
  fs::resize_file(files[0], cut);  // half the last batch's entries written, then a third of one
  fill_cache(dir.path(), grid("20:23"));
  fill_cache(dir.path(), grid("24:29"));

  const auto both = grid("5:29");
  gt::ResultCache cache(gt::make_disk_backend(dir.path()));
  const Outcome run = optimize_with(&cache, both);
  const Outcome clean = optimize_with(nullptr, both);
  const std::uint64_t lost = last.count - last.count / 2;  // the torn batch's entries not wholly written
  EXPECT_EQ(run.result.computed, lost);
  EXPECT_EQ(run.result.from_cache + lost, clean.result.computed);
  EXPECT_EQ(cache.rejected(), 0u);
  EXPECT_EQ(run.csv, clean.csv);
}

TEST(ResultCache, AnEntryOfOtherDataOrOptionsIsNeverServed) {
  TempDir dir, other;
  const auto g = grid("5:19");
  const fs::path store = fill_cache(dir.path(), g).at(0);
  // Move every entry into the namespace of other options, as a confused tool or user might: each
  // batch header takes the namespace hash that a store of those options writes.
  gt::ExecutionOptions costs;
  costs.commission = 0.001;
  const BatchHeader foreign = batch_headers(fill_cache(other.path(), grid("5:6"), costs).at(0)).at(0).second;
  {
    std::fstream f(store, std::ios::in | std::ios::out | std::ios::binary);
    for (const auto& [at, header] : batch_headers(store)) {
      f.seekp(at + 16);
      f.write(foreign.ns, sizeof foreign.ns);
    }
  }
  gt::ResultCache cache(gt::make_disk_backend(dir.path()));
  const Outcome run = optimize_with(&cache, g, costs);
  EXPECT_EQ(cache.rejected(), 2700u);
  EXPECT_EQ(run.result.from_cache, 0u);
  EXPECT_EQ(run.csv, optimize_with(nullptr, g, costs).csv);
}

TEST(ResultCache, OneFileHoldsEveryNamespaceAndKeepsThemApart) {
  TempDir dir;
  const auto g = grid("5:19");
  gt::ExecutionOptions costs;
  costs.commission = 0.001;
  fill_cache(dir.path(), g);
  EXPECT_EQ(fill_cache(dir.path(), g, costs).size(), 1u);  // a new namespace creates no file
  for (const auto& options : {gt::ExecutionOptions{}, costs}) {
    gt::ResultCache cache(gt::make_disk_backend(dir.path()));
    const Outcome run = optimize_with(&cache, g, options);
    EXPECT_EQ(run.result.from_cache, 2700u);
    EXPECT_EQ(cache.rejected(), 0u);
    EXPECT_EQ(run.csv, optimize_with(nullptr, g, options).csv);
  }
}

TEST(ResultCache, ABackendThatFailsMidRunTurnsTheCacheOffWithOneWarning) {
  class FailingBackend final : public gt::CacheBackend {
   public:
    void get(std::string_view, std::span<const std::uint64_t>, std::size_t, std::span<char>,
             std::span<std::uint8_t>) override {
      throw gt::CacheUnavailable("connection reset");
    }
    void put(std::string_view, std::size_t, std::span<const Batch>) override {}
    std::string describe() const override { return "failing"; }
  };
  std::vector<std::string> warnings;
  gt::ResultCache cache(std::make_unique<FailingBackend>(), [&](std::string_view w) { warnings.emplace_back(w); });
  const auto g = grid("5:19");
  const Outcome run = optimize_with(&cache, g);
  EXPECT_FALSE(cache.available());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("connection reset"), std::string::npos);
  EXPECT_EQ(run.result.computed, 2700u);
  EXPECT_EQ(run.csv, optimize_with(nullptr, g).csv);
}

TEST(ResultCache, BadLocationsFailWithWhatIsAllowed) {
  EXPECT_THROW(gt::open_result_cache("memcached://localhost"), gt::ParamError);
  EXPECT_THROW(gt::open_result_cache("redis://localhost:notaport"), gt::ParamError);
  try {
    gt::open_result_cache("redis://127.0.0.1:1/0");  // nothing listens on port 1
    FAIL();
  } catch (const gt::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot connect"), std::string::npos) << e.what();
  }
}

}  // namespace
