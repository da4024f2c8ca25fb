// What `gemma2 bench` measures besides speed: the process's resident
// memory and the machine's read bandwidth (for the decode roofline).
#pragma once

#include <cstddef>

#include "gemma2/thread_pool.hpp"

namespace gemma2_cli {

// Resident set size of this process now and at its peak since
// reset_peak_rss() (the working set and its peak on Windows).
struct Rss {
  size_t now = 0, peak = 0;
};
Rss rss();

// Starts Rss::peak afresh from the current RSS (Linux; elsewhere the peak
// stays the process's own, load included).
void reset_peak_rss();

// Sequential read bandwidth of this machine with the given threads, in
// bytes/s: the best of a few passes summing a 1 GiB buffer.
double read_bandwidth(const gemma2::Executor* pool);

}  // namespace gemma2_cli
