// Writing GGUF files (version 3), for the tests and tools that make them
// (a Gemma 2 config's metadata is gguf_config_metadata, gguf_gemma.hpp).
// Not in the umbrella header: include it where a file is written.
#pragma once

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gemma2/io/bytes.hpp"
#include "gemma2/io/file.hpp"
#include "gemma2/io/gguf_format.hpp"

GEMMA2_BEGIN_NAMESPACE

// A tensor to write to GGUF: ggml type id, dims (ne: dims[0] is the row
// length) and the bytes in ggml's layout.
struct GgufTensorToWrite {
  std::string name;
  uint32_t ggml_type = 0;
  std::vector<uint64_t> dims;
  std::vector<std::byte> bytes;
};

// Writes a GGUF version 3 file (tensors in the given order, each aligned to
// general.alignment or 32). Used by the tests and tools.
inline Status write_gguf(const std::string& path, const std::map<std::string, GgufValue>& metadata,
                         const std::vector<GgufTensorToWrite>& tensors) {
  return detail::guard("writing " + path, [&]() -> Status {
    detail::ByteWriter w;
    auto put = [&w](auto v) { w.put(v); };
    auto put_string = [&w](const std::string& s) { w.string(s); };
    std::function<void(GgufType, const nlohmann::json&)> put_scalar = [&](GgufType t, const nlohmann::json& v) {
      switch (t) {
        case GgufType::U8: put(v.get<uint8_t>()); break;
        case GgufType::I8: put(v.get<int8_t>()); break;
        case GgufType::U16: put(v.get<uint16_t>()); break;
        case GgufType::I16: put(v.get<int16_t>()); break;
        case GgufType::U32: put(v.get<uint32_t>()); break;
        case GgufType::I32: put(v.get<int32_t>()); break;
        case GgufType::F32: put(v.get<float>()); break;
        case GgufType::BOOL: put(static_cast<uint8_t>(v.get<bool>())); break;
        case GgufType::U64: put(v.get<uint64_t>()); break;
        case GgufType::I64: put(v.get<int64_t>()); break;
        case GgufType::F64: put(v.get<double>()); break;
        case GgufType::STRING: put_string(v.get<std::string>()); break;
        case GgufType::ARRAY: break;
      }
    };
    uint64_t alignment = 32;
    if (const auto it = metadata.find("general.alignment"); it != metadata.end())
      alignment = it->second.value.get<uint64_t>();
    put(uint32_t{0x46554747u});
    put(uint32_t{3});
    put(static_cast<uint64_t>(tensors.size()));
    put(static_cast<uint64_t>(metadata.size()));
    for (const auto& [key, v] : metadata) {
      put_string(key);
      put(static_cast<uint32_t>(v.type));
      if (v.type != GgufType::ARRAY) {
        put_scalar(v.type, v.value);
        continue;
      }
      put(static_cast<uint32_t>(v.elem));
      put(static_cast<uint64_t>(v.value.size()));
      for (const auto& e : v.value) put_scalar(v.elem, e);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors) {
      put_string(t.name);
      put(static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) put(d);
      put(t.ggml_type);
      put(offset);
      offset = (offset + t.bytes.size() + alignment - 1) / alignment * alignment;
    }
    std::vector<uint8_t>& out = w.out;
    out.resize(out.size() + (alignment - out.size() % alignment) % alignment);
    for (const auto& t : tensors) {
      w.bytes(t.bytes.data(), t.bytes.size());
      out.resize(out.size() + (alignment - t.bytes.size() % alignment) % alignment);
    }
    std::ofstream f;
    if (Status s = detail::open_for_writing(path, f); !s) return s;
    f.write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
    if (!f) return detail::err("cannot write ", path, ": ", std::strerror(errno));
    return {};
  });
}

GEMMA2_END_NAMESPACE
