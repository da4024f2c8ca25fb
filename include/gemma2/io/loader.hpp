// Opening a model's files and binding their tensors: the checkpoint of a
// path (a GGUF file or a Hugging Face directory of safetensors: the loader
// chooses the reader), and WeightBinder, which checks each tensor's name,
// shape and type and converts, interleaves or uses it in place as
// LoadOptions ask. It knows nothing of the model's structure: model.hpp
// names the tensors it binds.
#pragma once

#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemma2/io/checkpoint.hpp"
#include "gemma2/io/gguf_gemma.hpp"
#include "gemma2/kernels/dispatch.hpp"
#include "gemma2/load_options.hpp"

GEMMA2_BEGIN_NAMESPACE

namespace detail {
// The checkpoint of a model path: a GGUF file, or a Hugging Face directory.
inline Result<Checkpoint> open_model_files(const std::string& path, Mapping mapping) {
  return is_gguf_path(path) ? open_gguf_checkpoint(path, mapping) : open_checkpoint(path, mapping);
}

// Touches every page of the checkpoint's tensors (see LoadOptions::preload).
inline void preload(const std::map<std::string, TensorView>& tensors, const LoadOptions& options) {
  size_t total = 0, done = 0, reported = 0;
  for (const auto& [name, t] : tensors) total += t.nbytes;
  volatile unsigned char sink = 0;
  for (const auto& [name, t] : tensors) {
    for (size_t off = 0; off < t.nbytes; off += 4096) sink = sink + static_cast<unsigned char>(t.data[off]);
    done += t.nbytes;
    if (options.progress && (done - reported >= (size_t{64} << 20) || done == total)) {
      options.progress("reading", done, total);
      reported = done;
    }
  }
}

// The first NaN or infinity in a tensor (see LoadOptions::check_finite),
// found row by row in parallel.
inline Status check_finite(const std::string& name, const TensorView& t, const Executor* pool) {
  const int64_t cols = t.shape.empty() ? 1 : t.shape.back();
  const size_t stride = row_bytes(t.dtype, static_cast<int>(cols));
  if (cols == 0 || stride == 0) return {};
  const auto rows = static_cast<int64_t>(t.nbytes / stride);
  std::atomic<int64_t> first{std::numeric_limits<int64_t>::max()};
  parallel_for(pool, rows, 64, [&](int64_t r0, int64_t r1) {
    std::vector<float> row(static_cast<size_t>(cols));
    for (int64_t r = r0; r < r1 && r * cols < first.load(); ++r) {
      convert_to_float(t.dtype, t.data + static_cast<size_t>(r) * stride, row.data(), static_cast<size_t>(cols));
      for (int64_t c = 0; c < cols; ++c) {
        if (std::isfinite(row[static_cast<size_t>(c)])) continue;
        int64_t seen = first.load();
        while (r * cols + c < seen && !first.compare_exchange_weak(seen, r * cols + c)) {}
        break;
      }
    }
  });
  const int64_t at = first.load();
  if (at == std::numeric_limits<int64_t>::max()) return {};
  return err("load: tensor ", name, " holds NaN or infinity at element ", at, " (row ", at / cols, ", column ",
             at % cols, ")");
}

// Binds checkpoint tensors to model weights, checking name, shape and dtype.
// Records the first error and keeps going, so loading reads top to bottom.
// With `plan_only` it reads no weight and only counts the memory binding
// would take (Gemma2Model::plan): both go through the same decisions.
class WeightBinder {
 public:
  WeightBinder(const std::map<std::string, TensorView>& tensors, std::vector<std::shared_ptr<const void>>& storage,
               const LoadOptions& options, bool plan_only = false)
      : tensors_(tensors), storage_(storage), options_(options), plan_only_(plan_only) {
    for (const auto& [name, t] : tensors) total_ += t.nbytes;
    auto k = select_kernels(options.kernels);
    if (k) kernels_ = *k;
    else status_ = err("load: ", k.message());
  }

  // The kernel set every bound matrix uses.
  const Kernels* kernels() const { return kernels_; }

  Matrix matrix(const std::string& name, int rows, int cols) {
    Matrix m = bind_matrix(name, rows, cols);
    m.bf16_activations = options_.prefill_precision == PrefillPrecision::BF16;
    return m;
  }

  size_t matrix_bytes() const { return matrix_bytes_; }

  // The RMSNorm gain 1 + w, as float; `holds_gain` when the stored weights
  // are 1 + w already (GGUF).
  std::vector<float> gain(const std::string& name, int n, bool holds_gain) {
    const TensorView* t = find(name, {n});
    allocated_ += static_cast<size_t>(n) * sizeof(float);
    if (t == nullptr || plan_only_) return {};
    if (options_.check_finite) check(name, *t);
    std::vector<float> g(static_cast<size_t>(n));
    convert_to_float(t->dtype, t->data, g.data(), g.size());
    if (!holds_gain)
      for (float& x : g) x += 1.0f;
    return g;
  }

  Status finish() {
    if (!status_) return status_;
    for (const auto& [name, t] : tensors_)
      if (used_.count(name) == 0 && name != "lm_head.weight")  // lm_head, when present, is the tied embedding
        return err(t.source, ": unexpected tensor ", name, " (not part of a Gemma 2 model of this config)");
    return {};
  }

  // The memory the bound weights hold (see MemoryPlan).
  MemoryPlan plan() const {
    MemoryPlan p;
    p.allocated_bytes = allocated_;
    for (const MappedFile* file : files_in_use_) {
      const bool mapped = file->file_backed() && options_.mapping == Mapping::Mapped;
      (mapped ? p.mapped_bytes : p.allocated_bytes) += file->size();
    }
    p.weight_bytes = matrix_bytes_;
    return p;
  }

 private:
  // The tensor `name` as a matrix of the kernels' layout and the asked type.
  Matrix bind_matrix(const std::string& name, int rows, int cols) {
    const TensorView* found = find(name, {rows, cols});
    if (found == nullptr) return {};
    const TensorView t = plan_only_ ? *found : library_layout(*found);
    if (!plan_only_ && options_.check_finite) check(name, t);
    const Matrix m{t.dtype, rows, cols, aligned(name, t), kernels_};
    const PlainMatrix source{m.dtype, rows, cols, m.data, row_bytes(m.dtype, cols)};  // a file's rows lie in place
    matrix_bytes_ += m.bytes();
    const DType to = options_.weight_type.value_or(m.dtype);
    const bool keep = to == m.dtype || (is_block32(to) && cols % kQuantBlock != 0);
    if (keep && to != m.dtype && options_.log)
      options_.log(LogLevel::Info, name + ": width not a multiple of 32, kept as " + dtype_name(m.dtype));
    if (keep && interleaves(m.dtype)) return interleave(source);  // a regrouped copy of t, if any, is dropped here
    if (keep) {
      if (m.data == t.data) use_in_place(t, found->ggml_blocks);
      return m;
    }
    const Matrix out = convert(source, to);
    converted_ += t.nbytes;
    if (options_.progress && !plan_only_) options_.progress("converting", converted_, total_);
    matrix_bytes_ += out.bytes() - m.bytes();
    return out;
  }

  const TensorView* find(const std::string& name, const std::vector<int64_t>& shape) {
    if (!status_) return nullptr;
    const auto it = tensors_.find(name);
    if (it == tensors_.end()) {
      status_ = err("checkpoint has no tensor ", name);
      return nullptr;
    }
    if (it->second.shape != shape) {
      status_ = err(it->second.source, ": tensor ", name, " has shape ", shape_string(it->second.shape),
                    " but the config needs ", shape_string(shape));
      return nullptr;
    }
    used_.insert(name);
    return &it->second;
  }

  void check(const std::string& name, const TensorView& t) {
    if (status_) status_ = check_finite(name, t, options_.pool);
  }

  // The model keeps the file a weight used in place points into, or the
  // copy `regrouped` into the library's block order.
  void use_in_place(const TensorView& t, bool regrouped) {
    if (regrouped) {
      allocated_ += t.nbytes;
      if (!plan_only_) storage_.push_back(t.owner);
    } else if (files_in_use_.insert(t.owner.get()).second) {
      storage_.push_back(t.owner);
    }
  }

  // Whether this kernel set wants `t` interleaved (weights.hpp).
  bool interleaves(DType t) const {
    return is_blocked(t) && kernels_ != nullptr && kernels_->interleaved_rows != nullptr;
  }

  // Storage for a matrix of `to`, interleaved where the kernels want it:
  // the Matrix (data null when planning) and its buffer.
  std::pair<Matrix, std::byte*> allocate(const PlainMatrix& m, DType to) {
    Matrix out{to, m.rows, m.cols, nullptr, kernels_, interleaves(to)};
    allocated_ += out.bytes();
    if (plan_only_) return {out, nullptr};
    auto buf =
        std::make_shared<std::vector<std::byte>>(out.bytes());  // zeroed: an interleaved group's padding rows are 0
    storage_.push_back(buf);
    out.data = buf->data();
    return {out, buf->data()};
  }

  // The block-format matrix m in interleaved storage.
  Matrix interleave(const PlainMatrix& m) {
    auto [out, buf] = allocate(m, m.dtype);
    if (plan_only_) return out;
    parallel_for(options_.pool, m.rows, 64,
                 [&, buf = buf](int64_t r0, int64_t r1) { interleave_rows(m, buf, r0, r1); });
    return out;
  }

  // The matrix stored as `to`, row by row through float.
  Matrix convert(const PlainMatrix& m, DType to) {
    auto [out, buf] = allocate(m, to);
    if (plan_only_) return out;
    parallel_for(options_.pool, m.rows, 64, [&, out = out, buf = buf](int64_t r0, int64_t r1) {
      std::vector<float> row(static_cast<size_t>(m.cols));
      std::vector<std::byte> scratch(out.interleaved ? row_bytes(to, m.cols) : 0);
      for (int64_t r = r0; r < r1; ++r) {
        convert_to_float(m.dtype, m.row(r), row.data(), row.size());
        std::byte* dst = out.interleaved ? scratch.data() : buf + static_cast<size_t>(r) * row_bytes(to, m.cols);
        if (is_block32(to)) {
          quantize_row(to, row.data(), dst, m.cols);
          if (out.interleaved) interleaved_row_copy<true>(to, m.cols, static_cast<int>(r), dst, buf);
        } else {
          for (int c = 0; c < m.cols; ++c) {
            if (to == DType::F32) std::memcpy(dst + 4 * c, &row[static_cast<size_t>(c)], 4);
            else {
              const uint16_t bits = to == DType::BF16 ? to_bf16(row[static_cast<size_t>(c)]).bits
                                                      : to_f16(row[static_cast<size_t>(c)]).bits;
              std::memcpy(dst + 2 * c, &bits, 2);
            }
          }
        }
      }
    });
    return out;
  }

  // Weights are used in place; a tensor whose offset breaks the element
  // alignment (legal in safetensors) is copied once.
  const std::byte* aligned(const std::string& name, const TensorView& t) {
    if (reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) == 0) return t.data;
    allocated_ += t.nbytes;
    if (plan_only_) return nullptr;
    if (options_.log)
      options_.log(LogLevel::Info, "tensor " + name + " is not aligned in " + t.source + "; using a copy");
    auto copy = std::make_shared<std::vector<std::byte>>(t.data, t.data + t.nbytes);
    storage_.push_back(copy);
    return copy->data();
  }

  const std::map<std::string, TensorView>& tensors_;
  std::vector<std::shared_ptr<const void>>& storage_;
  const LoadOptions& options_;
  const bool plan_only_;
  size_t total_ = 0, converted_ = 0, matrix_bytes_ = 0, allocated_ = 0;
  std::set<const MappedFile*> files_in_use_;  // files weights are used in place from
  std::set<std::string> used_;
  Status status_;
  const Kernels* kernels_ = nullptr;
};
}  // namespace detail

GEMMA2_END_NAMESPACE
