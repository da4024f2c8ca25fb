// GGUF (versions 2 and 3), the single-file format of llama.cpp: a header
// with typed metadata and tensor infos, padding to `general.alignment`, then
// the tensor data. Every count, length, offset and size is checked against
// the mapped file before it is used, so a hostile file gets an error naming
// the problem, never a read past the mapping or an allocation sized by it.
// Layout reference: ggml's docs/gguf.md.
//
// This header is the format alone and knows nothing of Gemma:
// gguf_gemma.hpp maps a parsed file to a Gemma 2 checkpoint,
// gguf_tokenizer.hpp builds its tokenizer, gguf_writer.hpp writes files.
#pragma once

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/io/bytes.hpp"
#include "gemma2/io/mmap.hpp"
#include "gemma2/status.hpp"
#include "gemma2/weights.hpp"

GEMMA2_BEGIN_NAMESPACE

// Metadata value types, numbered as in the file.
enum class GgufType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// One metadata value: scalars and strings as JSON scalars, arrays as JSON
// arrays of their element type `elem`.
struct GgufValue {
  GgufType type = GgufType::U32;
  GgufType elem = GgufType::U8;  // element type of an ARRAY
  nlohmann::json value;
};

// One tensor of a GGUF file. dims are ggml's ne: dims[0] is the row length.
struct GgufTensor {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<uint64_t> dims;
  uint64_t offset = 0;  // from the start of the data section
  uint64_t nbytes = 0;
  const std::byte* data = nullptr;
};

// A parsed GGUF file; tensor data points into the mapping kept in `file`.
struct GgufFile {
  uint32_t version = 0;
  uint64_t alignment = 32;
  std::map<std::string, GgufValue> metadata;
  std::vector<GgufTensor> tensors;
  std::shared_ptr<const detail::MappedFile> file;
};

namespace detail {

// ggml tensor types this library reads: id, name, elements per block, bytes
// per block, and the DType it runs as.
struct GgmlType {
  uint32_t id;
  const char* name;
  uint32_t block, block_bytes;
  DType dtype;
};
inline const GgmlType* ggml_type(uint32_t id) {
  static constexpr GgmlType kTypes[] = {
      {0, "F32", 1, 4, DType::F32},        {1, "F16", 1, 2, DType::F16},        {30, "BF16", 1, 2, DType::BF16},
      {8, "Q8_0", 32, 34, DType::Q8_0},    {2, "Q4_0", 32, 18, DType::Q4_0},    {12, "Q4_K", 256, 144, DType::Q4_K},
      {13, "Q5_K", 256, 176, DType::Q5_K}, {14, "Q6_K", 256, 210, DType::Q6_K},
  };
  for (const auto& t : kTypes)
    if (t.id == id) return &t;
  return nullptr;
}
// Names of the ggml types a file may hold but this library does not run, for
// the error message.
inline std::string ggml_type_name(uint32_t id) {
  if (const GgmlType* t = ggml_type(id)) return t->name;
  static const std::map<uint32_t, const char*> kOthers = {
      {3, "Q4_1"},     {6, "Q5_0"},    {7, "Q5_1"},     {9, "Q8_1"},   {10, "Q2_K"},   {11, "Q3_K"},  {15, "Q8_K"},
      {16, "IQ2_XXS"}, {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"}, {20, "IQ4_NL"}, {21, "IQ3_S"}, {22, "IQ2_S"},
      {23, "IQ4_XS"},  {24, "I8"},     {25, "I16"},     {26, "I32"},   {27, "I64"},    {28, "F64"},   {29, "IQ1_M"}};
  const auto it = kOthers.find(id);
  return it != kOthers.end() ? it->second : "unknown type " + std::to_string(id);
}

inline size_t gguf_scalar_size(GgufType t) {
  switch (t) {
    case GgufType::U8:
    case GgufType::I8:
    case GgufType::BOOL: return 1;
    case GgufType::U16:
    case GgufType::I16: return 2;
    case GgufType::U32:
    case GgufType::I32:
    case GgufType::F32: return 4;
    case GgufType::U64:
    case GgufType::I64:
    case GgufType::F64: return 8;
    default: return 0;
  }
}

inline nlohmann::json gguf_scalar(ByteReader& r, GgufType t) {
  switch (t) {
    case GgufType::U8: return r.read<uint8_t>("value");
    case GgufType::I8: return r.read<int8_t>("value");
    case GgufType::U16: return r.read<uint16_t>("value");
    case GgufType::I16: return r.read<int16_t>("value");
    case GgufType::U32: return r.read<uint32_t>("value");
    case GgufType::I32: return r.read<int32_t>("value");
    case GgufType::F32: return r.read<float>("value");
    case GgufType::BOOL: {
      const uint8_t b = r.read<uint8_t>("value");
      if (b > 1) r.fail("bool value ", int{b}, " is neither 0 nor 1");
      return b == 1;
    }
    case GgufType::U64: return r.read<uint64_t>("value");
    case GgufType::I64: return r.read<int64_t>("value");
    case GgufType::F64: return r.read<double>("value");
    case GgufType::STRING: return r.string("string value");
    default: return nullptr;
  }
}

// A metadata value as JSON text for an error message. GGUF strings are any
// bytes, and dump() throws on invalid UTF-8 (aborting with exceptions off),
// so invalid sequences are shown as U+FFFD.
inline std::string gguf_dump(const nlohmann::json& v) {
  return v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

inline bool gguf_type_known(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::F64); }

// Metadata array elements a file may hold in all. Each becomes a JSON value
// of 16 bytes or more (a string more than 40) while its encoding can be a
// single byte, so the count is bounded, not only checked against the file:
// a 1 GB file of byte arrays would otherwise take 16 GB or more. Real files
// hold about a million (256000 tokens, scores and types; merges).
constexpr uint64_t kMaxMetadataElements = uint64_t{1} << 22;

// One metadata value; `elements_left` is what remains of kMaxMetadataElements.
inline GgufValue gguf_value(ByteReader& r, const std::string& key, uint64_t& elements_left) {
  GgufValue v;
  const uint32_t type = r.read<uint32_t>("metadata value type");
  if (!r.ok()) return v;
  if (!gguf_type_known(type)) {
    r.fail("metadata ", key, " has unknown value type ", type);
    return v;
  }
  v.type = static_cast<GgufType>(type);
  if (v.type != GgufType::ARRAY) {
    v.value = gguf_scalar(r, v.type);
    return v;
  }
  const uint32_t elem = r.read<uint32_t>("array element type");
  if (!r.ok()) return v;
  if (!gguf_type_known(elem) || elem == static_cast<uint32_t>(GgufType::ARRAY)) {
    r.fail("metadata ", key, " is an array of unsupported element type ", elem);
    return v;
  }
  v.elem = static_cast<GgufType>(elem);
  const size_t min_bytes = v.elem == GgufType::STRING ? 8 : gguf_scalar_size(v.elem);
  const uint64_t n = r.count(("metadata " + key + " array length").c_str(), min_bytes);
  if (n > elements_left) {
    r.fail("metadata ", key, " array of ", n, " elements exceeds the ", kMaxMetadataElements,
           " array elements a file may hold in all");
    return v;
  }
  elements_left -= n;
  v.value = nlohmann::json::array();
  for (uint64_t i = 0; i < n && r.ok(); ++i) v.value.push_back(gguf_scalar(r, v.elem));
  return v;
}

}  // namespace detail

namespace detail {

// Integer metadata of any integer type, range-checked into int.
inline Status gguf_int(const GgufFile& g, const std::string& key, int* out, bool required = true) {
  const auto it = g.metadata.find(key);
  if (it == g.metadata.end()) return required ? err(g.file->path(), ": metadata ", key, " is missing") : Status{};
  const nlohmann::json& v = it->second.value;
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (int64_t{1} << 30))
    return err(g.file->path(), ": metadata ", key, " must be an integer in [0, 2^30], got ", gguf_dump(v));
  *out = v.get<int>();
  return {};
}

inline Status gguf_float(const GgufFile& g, const std::string& key, float* out, bool required = true) {
  const auto it = g.metadata.find(key);
  if (it == g.metadata.end()) return required ? err(g.file->path(), ": metadata ", key, " is missing") : Status{};
  if (!it->second.value.is_number()) return err(g.file->path(), ": metadata ", key, " must be a number");
  if (!narrow_to_float(it->second.value.get<double>(), out))
    return err(g.file->path(), ": metadata ", key, " is out of the range of a 32-bit float");
  return {};
}

// The metadata key-value pairs, then general.alignment checked.
inline Status read_gguf_metadata(ByteReader& r, uint64_t n_kv, GgufFile& g) {
  uint64_t elements_left = kMaxMetadataElements;
  for (uint64_t i = 0; i < n_kv && r.ok(); ++i) {
    std::string key = r.string("metadata key");
    if (!r.ok()) break;
    GgufValue v = gguf_value(r, key, elements_left);
    if (r.ok() && !g.metadata.emplace(key, std::move(v)).second) r.fail("metadata key ", key, " appears twice");
  }
  if (!r.ok()) return r.status();
  if (const auto it = g.metadata.find("general.alignment"); it != g.metadata.end()) {
    const nlohmann::json& a = it->second.value;
    if (it->second.type != GgufType::U32 || a.get<uint64_t>() == 0 ||
        (a.get<uint64_t>() & (a.get<uint64_t>() - 1)) != 0)
      return err(g.file->path(), ": general.alignment must be a power of two (uint32), got ", gguf_dump(a));
    g.alignment = a.get<uint64_t>();
  }
  return {};
}

// One tensor info: name (not seen before), dims, type, offset, checked
// against each other.
inline Status read_gguf_tensor_info(ByteReader& r, const GgufFile& g, std::set<std::string>& names, GgufTensor& t) {
  const std::string& path = g.file->path();
  t.name = r.string("tensor name");
  const uint32_t n_dims = r.u32("tensor dimension count");
  if (!r.ok()) return r.status();
  if (n_dims < 1 || n_dims > 4) return err(path, ": tensor ", t.name, " has ", n_dims, " dimensions (1 to 4 allowed)");
  uint64_t count = 1;
  for (uint32_t d = 0; d < n_dims && r.ok(); ++d) {
    const uint64_t n = r.u64("tensor dimension");
    if (n == 0 || n > (uint64_t{1} << 40) || count > (uint64_t{1} << 48) / n)
      return err(path, ": tensor ", t.name, " has an invalid or too large dimension ", n);
    count *= n;
    t.dims.push_back(n);
  }
  t.ggml_type = r.u32("tensor type");
  t.offset = r.u64("tensor offset");
  if (!r.ok()) return r.status();
  if (!names.insert(t.name).second) return err(path, ": tensor ", t.name, " appears twice");
  const GgmlType* type = ggml_type(t.ggml_type);
  if (type == nullptr)
    return err(path, ": tensor ", t.name, " has type ", ggml_type_name(t.ggml_type),
               ", which this version cannot run (supported: F32, F16, BF16, Q8_0, Q4_0, Q4_K, Q5_K, Q6_K)");
  if (t.dims[0] % type->block != 0)
    return err(path, ": tensor ", t.name, " rows of ", t.dims[0], " are not whole ", type->name, " blocks of ",
               type->block);
  t.nbytes = count / type->block * type->block_bytes;
  if (t.offset % g.alignment != 0)
    return err(path, ": tensor ", t.name, " offset ", t.offset, " is not a multiple of the alignment ", g.alignment);
  return {};
}

// Points each tensor at its data, which must lie inside the data section
// (from `header_end` rounded up to the alignment) without overlapping.
inline Status place_gguf_tensors(GgufFile& g, uint64_t header_end) {
  const MappedFile& file = *g.file;
  const std::string& path = file.path();
  const uint64_t data_start = (header_end + g.alignment - 1) / g.alignment * g.alignment;
  if (data_start > file.size()) return err(path, ": data section starts past the end of the file");
  const uint64_t data_size = file.size() - data_start;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (GgufTensor& t : g.tensors) {
    if (t.offset > data_size || t.nbytes > data_size - t.offset)
      return err(path, ": tensor ", t.name, " data [", t.offset, ", ", t.offset + t.nbytes,
                 ") runs past the data section (", data_size, " bytes)");
    t.data = file.data() + data_start + t.offset;
    ranges.emplace_back(t.offset, t.offset + t.nbytes);
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second)
      return err(path, ": tensor data ranges overlap at byte ", ranges[i].first, " of the data section");
  return {};
}

}  // namespace detail

// Parses and validates a mapped GGUF file.
inline Result<GgufFile> parse_gguf(std::shared_ptr<const detail::MappedFile> file) {
  return detail::guard("reading " + file->path(), [&]() -> Result<GgufFile> {
    using detail::err;
    const std::string& path = file->path();
    detail::ByteReader r(file->data(), file->size(), path, "file");
    GgufFile g;
    g.file = file;
    const uint32_t magic = r.u32("magic");
    if (!r.ok()) return Error{r.status().message()};
    if (magic != 0x46554747u) return err(path, ": not a GGUF file (no GGUF magic)");
    g.version = r.u32("version");
    if (r.ok() && (g.version < 2 || g.version > 3))
      return err(path, ": GGUF version ", g.version, " is not supported (versions 2 and 3 are)");
    // A tensor info takes at least 8 + 4 + 4 + 8 bytes, a key-value 8 + 4 + 1.
    const uint64_t n_tensors = r.count("tensor count", 24);
    const uint64_t n_kv = r.count("metadata count", 13);
    if (Status s = detail::read_gguf_metadata(r, n_kv, g); !s) return Error{s.message()};
    std::set<std::string> names;
    for (uint64_t i = 0; i < n_tensors; ++i) {
      GgufTensor t;
      if (Status s = detail::read_gguf_tensor_info(r, g, names, t); !s) return Error{s.message()};
      g.tensors.push_back(std::move(t));
    }
    if (Status s = detail::place_gguf_tensors(g, r.pos()); !s) return Error{s.message()};
    return g;
  });
}

// Model paths ending in .gguf are GGUF files; anything else is a Hugging
// Face model directory.
inline bool is_gguf_path(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".gguf") == 0;
}

GEMMA2_END_NAMESPACE
