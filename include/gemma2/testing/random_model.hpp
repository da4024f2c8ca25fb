// Random-weight checkpoints of any config, made in memory: for benchmarks
// of the real shapes without multi-gigabyte downloads, and for tests. A
// testing tool, not in the umbrella header.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gemma2/io/checkpoint.hpp"
#include "gemma2/thread_pool.hpp"
#include "gemma2/token.hpp"

GEMMA2_BEGIN_NAMESPACE

// Every tensor a Gemma 2 model of this config needs, stored as `dtype`
// (F32, BF16 or F16), uniform with standard deviation 0.02 (the reference
// initializer_range) for matrices and in [-0.1, 0.1] for norm weights.
// Deterministic for a given seed whatever the thread count.
template <class Config>
Checkpoint random_checkpoint(const Config& config, DType dtype = DType::BF16, uint64_t seed = 1,
                             const Executor* pool = nullptr) {
  Checkpoint ck;
  ck.config = to_runtime(config);
  const RuntimeConfig& c = ck.config;
  auto add = [&](const std::string& name, std::vector<int64_t> shape) {
    const bool norm = shape.size() == 1;
    const size_t n = static_cast<size_t>(shape[0] * (norm ? 1 : shape[1]));
    auto buf = std::make_shared<std::vector<std::byte>>(n * dtype_size(dtype));
    const float a = norm ? 0.1f : 0.02f * 1.7320508f;  // uniform [-a, a): sd a / sqrt(3)
    const uint64_t tensor_seed = seed ^ (std::hash<std::string>()(name) * 0x9e3779b97f4a7c15ull);
    constexpr int64_t kChunk = 1 << 16;
    detail::parallel_for(pool, static_cast<int64_t>(n), kChunk, [&](int64_t b, int64_t e) {
      for (int64_t i0 = b; i0 < e; i0 += kChunk) {
        Rng rng(tensor_seed + static_cast<uint64_t>(i0));
        for (int64_t i = i0; i < std::min(e, i0 + kChunk); ++i) {
          const float v = static_cast<float>(rng.next() >> 40) * (2.0f * a / 16777216.0f) - a;
          std::byte* dst = buf->data() + static_cast<size_t>(i) * dtype_size(dtype);
          if (dtype == DType::F32) std::memcpy(dst, &v, 4);
          else {
            const uint16_t bits = dtype == DType::BF16 ? to_bf16(v).bits : to_f16(v).bits;
            std::memcpy(dst, &bits, 2);
          }
        }
      }
    });
    TensorView t;
    t.dtype = dtype;
    t.shape = shape;
    t.nbytes = buf->size();
    t.owner = detail::MappedFile::from_bytes("random", std::move(*buf));
    t.data = t.owner->data();
    t.source = "random";
    ck.tensors.emplace(name, std::move(t));
  };
  for (const TensorSpec& spec : gemma2_tensors(c)) add(spec.name, spec.shape);
  return ck;
}

GEMMA2_END_NAMESPACE
