// Threads for the matrix products. The caller creates a ThreadPool (or none,
// for single-threaded work) and passes it to each forward call, so the host
// decides how many threads the library may use and can share one pool
// between models.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>

#include <unsupported/Eigen/CXX11/ThreadPool>

#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

class ThreadPool {
 public:
  static constexpr int kMaxThreads = 512;

  // A pool of `num_threads` threads in total: the calling thread works too,
  // so num_threads - 1 workers are started.
  static Result<ThreadPool> create(int num_threads) {
    if (num_threads < 1 || num_threads > kMaxThreads)
      return detail::err("thread count must be between 1 and ", kMaxThreads, ", got ", num_threads);
    return ThreadPool(num_threads);
  }

  int num_threads() const { return num_threads_; }

  // Splits [0, n) into at most num_threads() contiguous ranges whose
  // boundaries are multiples of `grain`, runs fn(begin, end) on each and
  // returns when all are done. The split depends only on n, grain and the
  // thread count, so results are deterministic for a fixed thread count.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) const {
    const int64_t blocks = (n + grain - 1) / grain;
    const int64_t parts = std::min<int64_t>(num_threads_, blocks);
    if (parts <= 1) {
      if (n > 0) fn(0, n);
      return;
    }
    auto range = [&](int64_t p) { return std::min(n, blocks * p / parts * grain); };
    Eigen::Barrier barrier(static_cast<unsigned>(parts - 1));
    for (int64_t p = 1; p < parts; ++p)
      pool_->Schedule([&, p] {
        fn(range(p), range(p + 1));
        barrier.Notify();
      });
    fn(0, range(1));
    barrier.Wait();
  }

 private:
  explicit ThreadPool(int n)
      : num_threads_(n), pool_(n > 1 ? std::make_unique<Eigen::ThreadPool>(n - 1) : nullptr) {}
  int num_threads_;
  std::unique_ptr<Eigen::ThreadPool> pool_;
};

namespace detail {
// parallel_for on an optional pool: without one, runs inline.
inline void parallel_for(const ThreadPool* pool, int64_t n, int64_t grain,
                         const std::function<void(int64_t, int64_t)>& fn) {
  if (pool != nullptr) pool->parallel_for(n, grain, fn);
  else if (n > 0) fn(0, n);
}
}  // namespace detail

GEMMA2_END_NAMESPACE
