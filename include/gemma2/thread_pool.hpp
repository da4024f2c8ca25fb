// Threads for the matrix products and attention. The library never starts
// threads on its own: the caller passes an Executor with each call. Use the
// ready ThreadPool, or implement Executor on top of the host's own job
// system (a game engine's workers, an editor's pool).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "gemma2/status.hpp"

GEMMA2_BEGIN_NAMESPACE

// What the library needs from a thread pool. run() must call task(i) once
// for every i in [0, n), possibly concurrently, and return when all are
// done. It is called with n <= num_threads(). It must be safe to call from
// several threads at once if sessions are decoded concurrently.
class Executor {
 public:
  virtual ~Executor() = default;
  virtual int num_threads() const = 0;
  virtual void run(int n, const std::function<void(int)>& task) const = 0;
};

// A fixed pool of threads; the calling thread works too, so a pool of N
// threads starts N - 1 workers. The workers are Eigen's ThreadPool, whose
// header only the definitions below need (GEMMA2_FUNC, version.hpp).
class ThreadPool final : public Executor {
 public:
  static constexpr int kMaxThreads = 512;

  static Result<ThreadPool> create(int num_threads) {
    if (num_threads < 1 || num_threads > kMaxThreads)
      return detail::err("thread count must be between 1 and ", kMaxThreads, ", got ", num_threads);
    // Starting threads can fail (std::system_error) when the process is at its limit.
    return detail::guard("starting " + std::to_string(num_threads) + " threads",
                         [&]() -> Result<ThreadPool> { return ThreadPool(num_threads); });
  }

  ThreadPool(ThreadPool&&) noexcept;
  ThreadPool& operator=(ThreadPool&&) noexcept;
  ~ThreadPool() override;

  int num_threads() const override { return num_threads_; }
  void run(int n, const std::function<void(int)>& task) const override;

 private:
  struct Workers;
  explicit ThreadPool(int n);
  int num_threads_;
  std::unique_ptr<Workers> workers_;
};

namespace detail {
// Splits [0, n) into at most num_threads contiguous ranges whose boundaries
// are multiples of `grain` and runs fn(begin, end) on each. Without an
// executor, runs inline. Every kernel computes each output element in one
// range with the same code whatever the split, so results do not depend on
// the thread count.
inline void parallel_for(const Executor* ex, int64_t n, int64_t grain,
                         const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t blocks = (n + grain - 1) / grain;
  const int64_t parts = ex == nullptr ? 1 : std::min<int64_t>(ex->num_threads(), blocks);
  if (parts <= 1) return fn(0, n);
  auto bound = [&](int64_t p) { return std::min(n, blocks * p / parts * grain); };
  ex->run(static_cast<int>(parts), [&](int p) { fn(bound(p), bound(p + 1)); });
}
}  // namespace detail

GEMMA2_END_NAMESPACE

#if GEMMA2_DEFINE_COMPILED_PARTS
#include <unsupported/Eigen/CXX11/ThreadPool>

GEMMA2_BEGIN_NAMESPACE

struct ThreadPool::Workers {
  explicit Workers(int n) : pool(n) {}
  Eigen::ThreadPool pool;
};

GEMMA2_FUNC ThreadPool::ThreadPool(int n)
    : num_threads_(n), workers_(n > 1 ? std::make_unique<Workers>(n - 1) : nullptr) {}
GEMMA2_FUNC ThreadPool::ThreadPool(ThreadPool&&) noexcept = default;
GEMMA2_FUNC ThreadPool& ThreadPool::operator=(ThreadPool&&) noexcept = default;
GEMMA2_FUNC ThreadPool::~ThreadPool() = default;

GEMMA2_FUNC void ThreadPool::run(int n, const std::function<void(int)>& task) const {
  if (n <= 0) return;
  Eigen::Barrier barrier(static_cast<unsigned>(n - 1));
  for (int i = 1; i < n; ++i)
    workers_->pool.Schedule([&, i] {
      task(i);
      barrier.Notify();
    });
  task(0);
  barrier.Wait();
}

GEMMA2_END_NAMESPACE
#endif
