// Fuzzes the safetensors header parser and the sharded index
// (model.safetensors.index.json), then binds what parses to the tiny model
// as loading a checkpoint does.
//
// Input: parts separated by kShardSeparator. Every part is parsed as a
// safetensors file. With two or more parts, the first is also read as an
// index, and the shards it names are served from memory by the following
// parts, in the order add_sharded opens them.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "tiny.hpp"

namespace {

constexpr std::string_view kShardSeparator = "\n#shard#\n";

// A model from the tensors of a checkpoint, and a token through it.
void bind(std::map<std::string, gemma2::TensorView> tensors) {
  gemma2::Checkpoint ck;
  ck.config = fuzz::tiny_config();
  ck.tensors = std::move(tensors);
  auto model = gemma2::Gemma2Model<>::from_checkpoint(std::move(ck));
  if (!model) return;
  auto cache = model->make_cache(2);
  if (!cache) std::abort();
  const std::vector<int32_t> ids = {2};
  if (!model->forward(ids, *cache)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> parts;
  for (size_t at = 0;;) {
    const size_t next = input.find(kShardSeparator, at);
    parts.push_back(input.substr(at, next == std::string_view::npos ? std::string_view::npos : next - at));
    if (next == std::string_view::npos) break;
    at = next + kShardSeparator.size();
  }
  auto file_of = [](const std::string& name, std::string_view part) {
    return gemma2::detail::MappedFile::from_bytes(
        name, fuzz::bytes_of(reinterpret_cast<const uint8_t*>(part.data()), part.size()));
  };

  for (std::string_view part : parts) {
    auto tensors = gemma2::detail::parse_safetensors(file_of("fuzz/model.safetensors", part));
    if (tensors && parts.size() == 1) bind(std::move(*tensors));
  }
  if (parts.size() < 2) return 0;

  size_t served = 1;
  const gemma2::detail::ShardOpener open =
      [&](const std::string& path) -> gemma2::Result<std::shared_ptr<const gemma2::detail::MappedFile>> {
    if (served >= parts.size()) return gemma2::detail::err(path, " does not exist");
    return file_of(path, parts[served++]);
  };
  std::map<std::string, gemma2::TensorView> tensors;
  const gemma2::Status s =
      gemma2::detail::add_sharded("fuzz", "fuzz/model.safetensors.index.json", std::string(parts[0]), open, tensors);
  if (s) bind(std::move(tensors));
  return 0;
}
