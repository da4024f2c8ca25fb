// safetensors: an 8-byte little-endian header length N, N bytes of JSON
// describing each tensor (dtype, shape, [begin, end) offsets into the data
// section), then the data. Everything in the header is validated against the
// file before a single weight is touched: a hostile file gets an error, never
// a read past the mapping or an absurd allocation.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/io/json.hpp"
#include "gemma2/io/mmap.hpp"
#include "gemma2/status.hpp"
#include "gemma2/weights.hpp"

GEMMA2_BEGIN_NAMESPACE

// One tensor of a checkpoint, pointing into its mapped file.
struct TensorView {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const std::byte* data = nullptr;
  size_t nbytes = 0;
  std::shared_ptr<const detail::MappedFile> owner;  // the file (mapped, copied or in memory) data points into
  std::string source;                               // file it came from, for messages
  // Q8_0/Q4_0 blocks in ggml's interleaved [d | qs] order (GGUF), which the
  // loader regroups into the library's (see detail::library_layout).
  bool ggml_blocks = false;
};

inline std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

namespace detail {

// Largest header we accept: real checkpoints have headers of a few hundred KB.
constexpr uint64_t kMaxSafetensorsHeader = 100u << 20;

inline bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32") *out = DType::F32;
  else if (s == "BF16") *out = DType::BF16;
  else if (s == "F16") *out = DType::F16;
  else return false;
  return true;
}

// Parses and validates the safetensors file mapped in `file`.
inline Result<std::map<std::string, TensorView>> parse_safetensors(std::shared_ptr<const MappedFile> file) {
  return detail::guard("reading " + file->path(), [&]() -> Result<std::map<std::string, TensorView>> {
    const std::string& path = file->path();
    const size_t size = file->size();
    if (size < 8) return err(path, ": file too small for a safetensors header (", size, " bytes)");
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<uint8_t>(file->data()[i]);
    if (header_len > size - 8)
      return err(path, ": header length ", header_len, " runs past the end of the file (", size, " bytes)");
    if (header_len > kMaxSafetensorsHeader)
      return err(path, ": header length ", header_len, " is larger than the supported ", kMaxSafetensorsHeader);
    const char* hdr = reinterpret_cast<const char*>(file->data() + 8);
    auto parsed = parse_json(hdr, hdr + header_len, path + ": safetensors header");
    if (!parsed) return Error{parsed.message()};
    const nlohmann::json& j = *parsed;
    if (!j.is_object()) return err(path, ": safetensors header is not a JSON object");

    const std::byte* data = file->data() + 8 + header_len;
    const uint64_t data_size = size - 8 - header_len;
    std::map<std::string, TensorView> tensors;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const auto& [name, t] : j.items()) {
      if (name == "__metadata__") continue;
      const std::string where = path + ": tensor " + name;
      if (!t.is_object()) return err(where, ": entry is not an object");
      const auto dt = t.find("dtype");
      const auto sh = t.find("shape");
      const auto off = t.find("data_offsets");
      if (dt == t.end() || !dt->is_string()) return err(where, ": missing or non-string \"dtype\"");
      if (sh == t.end() || !sh->is_array()) return err(where, ": missing or non-array \"shape\"");
      if (off == t.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
          !(*off)[1].is_number_unsigned())
        return err(where, ": \"data_offsets\" must be two non-negative integers");
      TensorView v;
      if (!parse_dtype(dt->get<std::string>(), &v.dtype))
        return err(where, ": unsupported dtype ", dt->get<std::string>(), " (supported: F32, BF16, F16)");
      uint64_t count = 1;
      for (const auto& d : *sh) {
        if (!d.is_number_unsigned()) return err(where, ": shape entries must be non-negative integers");
        const uint64_t n = d.get<uint64_t>();
        if (n > (uint64_t{1} << 40) || (n != 0 && count > (uint64_t{1} << 48) / n))
          return err(where, ": shape ", sh->dump(), " is too large");
        count *= n;
        v.shape.push_back(static_cast<int64_t>(n));
      }
      const uint64_t begin = (*off)[0].get<uint64_t>(), end = (*off)[1].get<uint64_t>();
      if (begin > end) return err(where, ": data_offsets [", begin, ", ", end, "] are reversed");
      if (end > data_size)
        return err(where, ": data_offsets [", begin, ", ", end, "] run past the data section (", data_size, " bytes)");
      if (end - begin != count * dtype_size(v.dtype))
        return err(where, ": ", dtype_name(v.dtype), " shape ", sh->dump(), " needs ", count * dtype_size(v.dtype),
                   " bytes but data_offsets span ", end - begin);
      v.data = data + begin;
      v.nbytes = end - begin;
      v.owner = file;
      v.source = path;
      ranges.emplace_back(begin, end);
      tensors.emplace(name, std::move(v));
    }
    // As the format's specification requires, tensors tile the data section
    // exactly: no overlaps (two tensors sharing bytes), no holes and nothing
    // after the last tensor (bytes no tensor accounts for).
    std::sort(ranges.begin(), ranges.end());
    uint64_t covered = 0;
    for (const auto& [begin, end] : ranges) {
      if (begin < covered) return err(path, ": tensor data ranges overlap at byte ", begin, " of the data section");
      if (begin > covered)
        return err(path, ": bytes ", covered, " to ", begin, " of the data section belong to no tensor");
      covered = end;
    }
    if (covered != data_size)
      return err(path, ": the data section has ", data_size - covered, " bytes after the last tensor (", data_size,
                 " bytes, tensors end at ", covered, ")");
    return tensors;
  });
}

}  // namespace detail

// A tensor to write: dtype, shape and the raw little-endian bytes.
struct TensorToWrite {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
};

// Writes a safetensors file (tensors stored in name order, header padded with
// spaces to a multiple of 8 as the reference writer does). Used by the tools
// that make test and benchmark checkpoints.
inline Status write_safetensors(const std::string& path, const std::map<std::string, TensorToWrite>& tensors) {
  return detail::guard("writing " + path, [&]() -> Status {
    nlohmann::json header = nlohmann::json::object();
    header["__metadata__"] = {{"format", "pt"}};
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
      header[name] = {
          {"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}};
      offset += t.bytes.size();
    }
    std::string h = header.dump();
    h.append((8 - h.size() % 8) % 8, ' ');
    std::ofstream out;
    if (Status s = detail::open_for_writing(path, out); !s) return s;
    const uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out.write(h.data(), static_cast<std::streamsize>(h.size()));
    for (const auto& [name, t] : tensors)
      out.write(reinterpret_cast<const char*>(t.bytes.data()), static_cast<std::streamsize>(t.bytes.size()));
    if (!out) return detail::err("cannot write ", path, ": ", std::strerror(errno));
    return {};
  });
}

GEMMA2_END_NAMESPACE
