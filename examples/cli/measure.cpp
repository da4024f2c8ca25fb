#include "measure.hpp"

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "options.hpp"  // Clock, and gemma2 (with <windows.h>) before psapi.h

#if defined(_WIN32)
#include <psapi.h>  // GetProcessMemoryInfo
#endif

namespace gemma2_cli {

Rss rss() {
#if defined(_WIN32)
  PROCESS_MEMORY_COUNTERS pmc{};
  if (!GetProcessMemoryInfo(GetCurrentProcess(), &pmc, sizeof pmc)) return {};
  return {pmc.WorkingSetSize, pmc.PeakWorkingSetSize};
#else
  Rss r;
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {  // "VmRSS:     1234 kB"
    if (line.rfind("VmRSS:", 0) == 0) r.now = std::stoull(line.substr(6)) * 1024;
    if (line.rfind("VmHWM:", 0) == 0) r.peak = std::stoull(line.substr(6)) * 1024;
  }
  return r;
#endif
}

void reset_peak_rss() {
#if !defined(_WIN32)
  std::ofstream("/proc/self/clear_refs") << "5";
#endif
}

double read_bandwidth(const gemma2::Executor* pool) {
  std::vector<float> buf(size_t{1} << 28, 1.0f);
  double best = 0;
  for (int pass = 0; pass < 4; ++pass) {
    std::vector<double> partial(static_cast<size_t>(pool->num_threads()), 0.0);
    const auto t0 = Clock::now();
    pool->run(pool->num_threads(), [&](int i) {
      const size_t n = buf.size() / partial.size(), from = n * static_cast<size_t>(i);
      Eigen::Map<const Eigen::ArrayXf> part(buf.data() + from, static_cast<Eigen::Index>(n));
      partial[static_cast<size_t>(i)] = part.sum();
    });
    const double s = seconds_since(t0);
    volatile double sink = partial[0];  // the sums must not be optimised away
    (void)sink;
    best = std::max(best, static_cast<double>(buf.size() * sizeof(float)) / s);
  }
  return best;
}

}  // namespace gemma2_cli
