// Malformed checkpoints and bad inputs: each gives a clear error that names
// the problem, never a crash.
#include <doctest/doctest.h>

#include <filesystem>

#include "support.hpp"

namespace {

using test::contains;
using test::TempDir;
using test::TinyModel;

// Loads dir and returns the error message ("" if it loaded).
std::string load_error(const std::string& dir) {
  auto m = gemma2::Gemma2Model<>::load(dir);
  return m.ok() ? "" : m.message();
}

// Writes a safetensors file with a hand-made header.
void write_raw(const std::string& path, const std::string& header, const std::vector<std::byte>& data) {
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
}

// A valid tiny checkpoint whose safetensors header is replaced by `header`
// (JSON text; the data section is the original one).
std::string with_header(const TinyModel& tiny, const TempDir& dir, const nlohmann::json& header) {
  tiny.write(dir.str());
  std::vector<std::byte> data;
  for (const auto& [name, t] : tiny.tensors) data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  write_raw(dir.str() + "/model.safetensors", header.dump(), data);
  return load_error(dir.str());
}

// The header write_safetensors produces for tiny, as JSON.
nlohmann::json header_of(const TinyModel& tiny) {
  nlohmann::json h;
  uint64_t offset = 0;
  for (const auto& [name, t] : tiny.tensors) {
    h[name] = {{"dtype", gemma2::dtype_name(t.dtype)},
               {"shape", t.shape},
               {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  return h;
}

const std::string kQ = "model.layers.1.self_attn.q_proj.weight";

}  // namespace

TEST_CASE("a valid tiny checkpoint loads") {
  TempDir dir;
  TinyModel().write(dir.str());
  CHECK(load_error(dir.str()) == "");
}

TEST_CASE("safetensors: truncated, short and oversized headers") {
  TinyModel tiny;
  SUBCASE("truncated data section") {
    TempDir dir;
    tiny.write(dir.str());
    const auto path = dir.str() + "/model.safetensors";
    std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
    CHECK(contains(load_error(dir.str()), "run past the data section"));
  }
  SUBCASE("file shorter than the length prefix") {
    TempDir dir;
    tiny.write(dir.str());
    std::ofstream(dir.str() + "/model.safetensors", std::ios::binary) << "abc";
    CHECK(contains(load_error(dir.str()), "too small"));
  }
  SUBCASE("empty file") {
    TempDir dir;
    tiny.write(dir.str());
    std::ofstream(dir.str() + "/model.safetensors", std::ios::binary).flush();
    CHECK(contains(load_error(dir.str()), "model.safetensors is empty"));
  }
  SUBCASE("header length past the end of the file") {
    TempDir dir;
    tiny.write(dir.str());
    std::fstream f(dir.str() + "/model.safetensors", std::ios::binary | std::ios::in | std::ios::out);
    f.write("\xff\xff\xff\xff\x00\x00\x00\x00", 8);
    f.close();
    CHECK(contains(load_error(dir.str()), "runs past the end of the file"));
  }
  SUBCASE("header length above the supported maximum") {
    TempDir dir;
    tiny.write(dir.str());
    const auto path = dir.str() + "/model.safetensors";
    std::filesystem::resize_file(path, (200u << 20) + 16);  // sparse: no disk used
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.write("\x00\x00\x00\x0c\x00\x00\x00\x00", 8);  // 200 MiB
    f.close();
    CHECK(contains(load_error(dir.str()), "header length 201326592 is larger than the supported 104857600"));
  }
  SUBCASE("bytes after the last tensor") {
    TempDir dir;
    tiny.write(dir.str());
    std::ofstream(dir.str() + "/model.safetensors", std::ios::binary | std::ios::app) << "trailing";
    CHECK(contains(load_error(dir.str()), "the data section has 8 bytes after the last tensor"));
  }
  SUBCASE("header that is not JSON") {
    TempDir dir;
    tiny.write(dir.str());
    write_raw(dir.str() + "/model.safetensors", "{\"a\": [1, 2", {});
    CHECK(contains(load_error(dir.str()), "not valid JSON"));
  }
}

TEST_CASE("safetensors: offsets, dtypes and shapes are validated against the data") {
  TinyModel tiny;
  TempDir dir;
  auto h = header_of(tiny);
  SUBCASE("offsets past the data section") {
    h[kQ]["data_offsets"] = {1u << 30, (1u << 30) + 3072u};
    CHECK(contains(with_header(tiny, dir, h), "run past the data section"));
  }
  SUBCASE("reversed offsets") {
    h[kQ]["data_offsets"] = {100, 50};
    CHECK(contains(with_header(tiny, dir, h), "reversed"));
  }
  SUBCASE("negative offsets") {
    h[kQ]["data_offsets"] = {-8, 100};
    CHECK(contains(with_header(tiny, dir, h), "data_offsets"));
  }
  SUBCASE("overlapping tensors") {
    const auto other = h["model.layers.1.self_attn.k_proj.weight"]["data_offsets"];
    const uint64_t begin = other[0].get<uint64_t>();
    h[kQ]["data_offsets"] = {begin, begin + 32 * 24 * 4};
    CHECK(contains(with_header(tiny, dir, h), "overlap"));
  }
  SUBCASE("unknown dtype") {
    h[kQ]["dtype"] = "I8";
    CHECK(contains(with_header(tiny, dir, h), "unsupported dtype I8"));
  }
  SUBCASE("dtype disagreeing with the byte count") {
    h[kQ]["dtype"] = "BF16";
    CHECK(contains(with_header(tiny, dir, h), "needs 1536 bytes but data_offsets span 3072"));
  }
  SUBCASE("shape disagreeing with the byte count") {
    h[kQ]["shape"] = {32, 25};
    CHECK(contains(with_header(tiny, dir, h), "needs 3200 bytes"));
  }
  SUBCASE("a hole between tensors") {
    h[kQ]["data_offsets"] = {h[kQ]["data_offsets"][0].get<uint64_t>() + 4, h[kQ]["data_offsets"][1].get<uint64_t>()};
    h[kQ]["shape"] = {1, 767};
    CHECK(contains(with_header(tiny, dir, h), "belong to no tensor"));
  }
  SUBCASE("a tensor named twice") {
    tiny.write(dir.str());
    std::vector<std::byte> data;
    for (const auto& [name, t] : tiny.tensors) data.insert(data.end(), t.bytes.begin(), t.bytes.end());
    const std::string twice = "{\"" + kQ + "\": " + h[kQ].dump() + "," + h.dump().substr(1);
    write_raw(dir.str() + "/model.safetensors", twice, data);
    CHECK(contains(load_error(dir.str()), "key \"" + kQ + "\" appears twice"));
  }
  SUBCASE("absurd shape") {
    h[kQ]["shape"] = {1ull << 40, 1ull << 40};
    CHECK(contains(with_header(tiny, dir, h), "too large"));
  }
  SUBCASE("entry missing its fields") {
    h[kQ] = {{"dtype", "F32"}};
    CHECK(contains(with_header(tiny, dir, h), "shape"));
  }
}

TEST_CASE("NaN or infinity in weights: found on request, naming the tensor and element") {
  for (auto [dtype, value] : {std::pair<gemma2::DType, float>{gemma2::DType::F32, std::nanf("")},
                              {gemma2::DType::BF16, -std::numeric_limits<float>::infinity()}}) {
    INFO(gemma2::dtype_name(dtype));
    TinyModel tiny(dtype);
    auto& bytes = tiny.tensors.at(kQ).bytes;
    const size_t at = 7 * 24 + 5;  // row 7, column 5 of [32][24]
    if (dtype == gemma2::DType::F32) {
      std::memcpy(&bytes[at * 4], &value, 4);
    } else {
      const gemma2::bf16 b = gemma2::to_bf16(value);
      std::memcpy(&bytes[at * 2], &b, 2);
    }
    TempDir dir;
    tiny.write(dir.str());
    CHECK(load_error(dir.str()) == "");  // not looked for unless asked
    auto pool = gemma2::ThreadPool::create(2);
    REQUIRE(pool.ok());
    for (const gemma2::Executor* p :
         {static_cast<const gemma2::Executor*>(nullptr), static_cast<const gemma2::Executor*>(&*pool)}) {
      gemma2::LoadOptions o;
      o.check_finite = true;
      o.pool = p;
      CHECK(contains(gemma2::Gemma2Model<>::load(dir.str(), o).message(),
                     "tensor " + kQ + " holds NaN or infinity at element 173 (row 7, column 5)"));
    }
#ifdef GEMMA2_CLI
    const auto run = test::cli("logits --check-weights --model " + dir.str() + " --tokenizer " + GEMMA2_DEMO_MODEL +
                               "/tokenizer.model --ids 2 --out " + dir.str() + "/l.bin");
    CHECK(run.rc != 0);
    const std::string& text = run.err;
    CHECK(contains(text, "holds NaN or infinity"));
#endif
  }
  TempDir dir;
  TinyModel().write(dir.str());
  gemma2::LoadOptions o;
  o.check_finite = true;
  CHECK(gemma2::Gemma2Model<>::load(dir.str(), o).ok());
}

TEST_CASE("checkpoint: tensors must match the config") {
  TempDir dir;
  SUBCASE("wrong shape") {
    TinyModel tiny;
    tiny.add(kQ, {24, 32}, gemma2::DType::F32, 3);
    tiny.write(dir.str());
    const std::string e = load_error(dir.str());
    CHECK(contains(e, kQ));
    CHECK(contains(e, "has shape [24, 32] but the config needs [32, 24]"));
  }
  SUBCASE("missing tensor") {
    TinyModel tiny;
    tiny.tensors.erase("model.layers.2.mlp.up_proj.weight");
    tiny.write(dir.str());
    CHECK(contains(load_error(dir.str()), "checkpoint has no tensor model.layers.2.mlp.up_proj.weight"));
  }
  SUBCASE("unexpected tensor") {
    TinyModel tiny;
    tiny.add("model.layers.3.mlp.up_proj.weight", {40, 24}, gemma2::DType::F32, 3);
    tiny.write(dir.str());
    CHECK(contains(load_error(dir.str()), "unexpected tensor model.layers.3.mlp.up_proj.weight"));
  }
  SUBCASE("config with more layers than the checkpoint") {
    TinyModel tiny;
    tiny.write(dir.str(), {{"num_hidden_layers", 4},
                           {"layer_types", nlohmann::json::array({"sliding_attention", "full_attention",
                                                                  "sliding_attention", "full_attention"})}});
    CHECK(contains(load_error(dir.str()), "no tensor model.layers.3."));
  }
  SUBCASE("mixed dtypes load") {
    TinyModel tiny;
    tiny.add(kQ, {32, 24}, gemma2::DType::BF16, 3);
    tiny.write(dir.str());
    CHECK(load_error(dir.str()) == "");
  }
}

TEST_CASE("checkpoint: tensors at unaligned offsets are used correctly") {
  TinyModel tiny;
  TempDir aligned, unaligned;
  tiny.write(aligned.str());
  // A header of 8k + 2 bytes starts the data section 2 bytes off alignment
  // (the mapping itself is page-aligned): every F32 tensor is misaligned.
  std::string header = header_of(tiny).dump();
  while (header.size() % 8 != 2) header += ' ';
  std::vector<std::byte> data;
  for (const auto& [name, t] : tiny.tensors) data.insert(data.end(), t.bytes.begin(), t.bytes.end());
  tiny.write(unaligned.str());
  write_raw(unaligned.str() + "/model.safetensors", header, data);
  auto a = gemma2::Gemma2Model<>::load(aligned.str());
  auto u = gemma2::Gemma2Model<>::load(unaligned.str());
  REQUIRE(a.ok());
  REQUIRE_MESSAGE(u.ok(), u.message());
  const std::vector<int32_t> ids = {2, 5, 9, 17};
  auto kva = a->make_cache(), kvu = u->make_cache();
  auto la = a->forward(ids, *kva, {nullptr, true});
  auto lu = u->forward(ids, *kvu, {nullptr, true});
  REQUIRE(la.ok());
  REQUIRE(lu.ok());
  CHECK(*la == *lu);
}

TEST_CASE("sharded checkpoints") {
  TinyModel tiny;
  TempDir dir;
  std::map<std::string, gemma2::TensorToWrite> a, b;
  nlohmann::json map;
  for (const auto& [name, t] : tiny.tensors) {
    const bool first = name < "model.layers.1";
    (first ? a : b)[name] = t;
    map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  std::ofstream(dir.str() + "/config.json") << tiny.config_json().dump();
  REQUIRE(gemma2::write_safetensors(dir.str() + "/model-00001-of-00002.safetensors", a).ok());
  REQUIRE(gemma2::write_safetensors(dir.str() + "/model-00002-of-00002.safetensors", b).ok());
  auto write_index = [&](const nlohmann::json& m) {
    std::ofstream(dir.str() + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", m}}.dump();
  };
  SUBCASE("load") {
    write_index(map);
    CHECK(load_error(dir.str()) == "");
  }
  SUBCASE("missing shard") {
    write_index(map);
    std::filesystem::remove(dir.str() + "/model-00002-of-00002.safetensors");
    CHECK(contains(load_error(dir.str()), "names shard model-00002-of-00002.safetensors but"));
  }
  SUBCASE("a tensor in two shards") {
    write_index(map);
    a[kQ] = tiny.tensors.at(kQ);
    REQUIRE(gemma2::write_safetensors(dir.str() + "/model-00001-of-00002.safetensors", a).ok());
    CHECK(contains(load_error(dir.str()), "tensor " + kQ + " also appears in another shard"));
  }
  SUBCASE("a tensor named twice in the index") {
    const std::string text = nlohmann::json{{"weight_map", map}}.dump();
    const std::string twice = "{\"weight_map\":{\"" + kQ + "\":\"model-00002-of-00002.safetensors\"," +
                              text.substr(std::string("{\"weight_map\":{").size());
    std::ofstream(dir.str() + "/model.safetensors.index.json") << twice;
    CHECK(contains(load_error(dir.str()), "key \"" + kQ + "\" appears twice"));
  }
  SUBCASE("index pointing at the wrong shard") {
    map[kQ] = "model-00001-of-00002.safetensors";
    write_index(map);
    CHECK(contains(load_error(dir.str()), "tensor " + kQ + " is not in shard model-00001-of-00002.safetensors"));
  }
  SUBCASE("index escaping the directory") {
    map[kQ] = "../evil.safetensors";
    write_index(map);
    CHECK(contains(load_error(dir.str()), "invalid shard file"));
  }
  SUBCASE("index that is not JSON") {
    std::ofstream(dir.str() + "/model.safetensors.index.json") << "{\"weight_map\": ";
    CHECK(contains(load_error(dir.str()), "index.json: not valid JSON"));
  }
}

TEST_CASE("checkpoint files held in memory parse as they do from disk") {
  using gemma2::detail::MappedFile;
  TinyModel tiny;
  TempDir dir;
  tiny.write(dir.str());
  const std::string path = dir.str() + "/model.safetensors";
  std::ifstream in(path, std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> bytes(text.size());
  std::memcpy(bytes.data(), text.data(), text.size());
  auto disk = gemma2::detail::parse_safetensors(MappedFile::open(path).value());
  auto mem = gemma2::detail::parse_safetensors(MappedFile::from_bytes("mem/model.safetensors", bytes));
  REQUIRE(disk.ok());
  REQUIRE(mem.ok());
  REQUIRE(disk->size() == mem->size());
  for (const auto& [name, t] : *disk) {
    const gemma2::TensorView& m = mem->at(name);
    CHECK(m.shape == t.shape);
    REQUIRE(m.nbytes == t.nbytes);
    CHECK(std::memcmp(m.data, t.data, t.nbytes) == 0);
    CHECK(m.source == "mem/model.safetensors");
  }
  SUBCASE("truncated") {
    bytes.resize(bytes.size() - 10);
    auto r = gemma2::detail::parse_safetensors(MappedFile::from_bytes("mem/model.safetensors", bytes));
    CHECK(contains(r.message(), "mem/model.safetensors: tensor"));
    CHECK(contains(r.message(), "run past the data section"));
  }
  SUBCASE("an index and its shard") {
    nlohmann::json map;
    for (const auto& [name, t] : tiny.tensors) map[name] = "only.safetensors";
    const gemma2::detail::ShardOpener open =
        [&](const std::string& p) -> gemma2::Result<std::shared_ptr<const MappedFile>> {
      if (p != "mem/only.safetensors") return gemma2::detail::err(p, " is not in memory");
      return MappedFile::from_bytes(p, bytes);
    };
    std::map<std::string, gemma2::TensorView> tensors;
    const std::string index = nlohmann::json{{"weight_map", map}}.dump();
    CHECK(gemma2::detail::add_sharded("mem", "mem/index.json", index, open, tensors).ok());
    CHECK(tensors.size() == tiny.tensors.size());
    map[kQ] = "other.safetensors";
    tensors.clear();
    const gemma2::Status s =
        gemma2::detail::add_sharded("mem", "mem/index.json", nlohmann::json{{"weight_map", map}}.dump(), open, tensors);
    CHECK(contains(s.message(),
                   "mem/index.json names shard other.safetensors but mem/other.safetensors is not in memory"));
  }
}

TEST_CASE("config.json is validated, naming the field") {
  TinyModel tiny;
  TempDir dir;
  auto error_with = [&](const nlohmann::json& override_) {
    tiny.write(dir.str(), override_);
    return load_error(dir.str());
  };
  CHECK(contains(error_with({{"model_type", "gemma"}}), "model_type is \"gemma\""));
  CHECK(contains(error_with({{"num_key_value_heads", 3}}), "not a multiple of num_key_value_heads"));
  CHECK(contains(error_with({{"hidden_size", -24}}), "hidden_size must be positive, got -24"));
  CHECK(contains(error_with({{"hidden_size", "24"}}), "hidden_size must be an integer"));
  CHECK(contains(error_with({{"sliding_window", 0}}), "sliding_window must be positive"));
  CHECK(contains(error_with({{"attn_logit_softcapping", 0}}), "attn_logit_softcapping must be a positive"));
  CHECK(contains(error_with({{"final_logit_softcapping", nullptr}}), "final_logit_softcapping must be a number"));
  CHECK(contains(error_with({{"head_dim", 7}}), "head_dim must be even"));
  CHECK(contains(error_with({{"vocab_size", 1 << 30}}), "vocab_size"));
  CHECK(contains(error_with({{"hidden_activation", "gelu"}}), "hidden_activation"));
  CHECK(contains(error_with({{"layer_types", {"sliding_attention"}}}), "layer_types has 1 entries"));
  CHECK(contains(error_with({{"layer_types", {"sliding_attention", "global", "full_attention"}}}), "\"global\""));
  CHECK(contains(error_with({{"tie_word_embeddings", false}}), "tie_word_embeddings"));
  CHECK(contains(error_with({{"hidden_size", 1 << 21}}), "hidden_size = 2097152 is larger than the supported 1048576"));
  CHECK(contains(error_with({{"num_hidden_layers", 0}}), "num_hidden_layers must be positive, got 0"));
  CHECK(contains(error_with({{"num_attention_heads", 65536}, {"head_dim", 256}, {"num_key_value_heads", 1}}),
                 "num_attention_heads * head_dim = 16777216 is too large"));
  CHECK(contains(error_with({{"rms_norm_eps", -1e-6}}), "rms_norm_eps must be a positive finite number"));
  CHECK(contains(error_with({{"rope_theta", 1e300}}), "rope_theta = 1e+300 is out of the range of a 32-bit float"));
  CHECK(contains(error_with({{"query_pre_attn_scalar", 0}}), "query_pre_attn_scalar must be a positive finite number"));
  {  // JSON has no NaN, and a literal overflowing to infinity is not valid JSON either
    std::string text = tiny.config_json().dump();
    text.insert(1, "\"final_logit_softcapping\": 1e999, ");
    tiny.write(dir.str());
    std::ofstream(dir.str() + "/config.json") << text;
    CHECK(contains(load_error(dir.str()), "config.json: not valid JSON"));
    text = tiny.config_json().dump();
    text.insert(1, "\"hidden_size\": 48, ");
    std::ofstream(dir.str() + "/config.json") << text;
    CHECK(contains(load_error(dir.str()), "key \"hidden_size\" appears twice"));
  }

  std::filesystem::resize_file(dir.str() + "/config.json", (64u << 20) + 1);  // sparse; never read
  CHECK(contains(load_error(dir.str()), "config.json: 67108865 bytes is larger than the 67108864 allowed"));
  std::ofstream(dir.str() + "/config.json") << "{ not json";
  CHECK(contains(load_error(dir.str()), "config.json: not valid JSON"));
  std::filesystem::remove(dir.str() + "/config.json");
  CHECK(contains(load_error(dir.str()), "config.json does not exist"));
  TempDir empty;
  std::ofstream(empty.str() + "/config.json") << tiny.config_json().dump();
  CHECK(contains(load_error(empty.str()), "no model.safetensors"));
}

TEST_CASE("forward rejects bad input and leaves the cache usable") {
  TempDir dir;
  TinyModel tiny;
  tiny.write(dir.str());
  auto model = gemma2::Gemma2Model<>::load(dir.str());
  REQUIRE(model.ok());
  auto kv = model->make_cache(8);
  REQUIRE(kv.ok());
  const std::vector<int32_t> bad_id = {2, 64}, negative = {2, -1}, empty = {}, nine(9, 5), ok = {2, 5, 6};
  CHECK(contains(model->forward(bad_id, *kv).message(), "token id 64 at index 1 is outside the vocabulary [0, 64)"));
  CHECK(contains(model->forward(negative, *kv).message(), "token id -1"));
  CHECK(contains(model->forward(empty, *kv).message(), "no tokens"));
  CHECK(contains(model->forward(nine, *kv).message(), "context overflow"));
  CHECK(kv->size() == 0);
  REQUIRE(model->forward(ok, *kv).ok());
  const std::vector<int32_t> six(6, 5);
  CHECK(contains(model->forward(six, *kv).message(), "3 cached + 6 new positions exceed the capacity of 8"));
  CHECK(kv->size() == 3);
  CHECK(contains(model->make_cache(65).message(), "between 1 and max_position_embeddings (64)"));
  CHECK_FALSE(model->make_cache(-1).ok());
  TinyModel other;
  other.config.num_hidden_layers = 2;
  auto foreign = gemma2::KVCache::create(gemma2::cache_shape(other.config, 8));
  REQUIRE(foreign.ok());
  CHECK(contains(model->forward(ok, *foreign).message(), "another model"));
}

TEST_CASE("config.json round trip for every preset") {
  auto check = [](const auto& preset) {
    const gemma2::RuntimeConfig r = gemma2::to_runtime(preset);
    auto parsed = gemma2::parse_config_json(gemma2::to_config_json(r).dump());
    REQUIRE_MESSAGE(parsed.ok(), parsed.message());
    CHECK(gemma2::check_matches(preset, *parsed).ok());
  };
  check(gemma2::Gemma2_2B{});
  check(gemma2::Gemma2_9B{});
  check(gemma2::Gemma2_27B{});
  // Floats keep every bit, written with no more digits than they need.
  gemma2::RuntimeConfig r = gemma2::to_runtime(gemma2::Gemma2_2B{});
  r.rope_theta = 10000.001f;
  r.attn_logit_softcapping = std::nextafter(50.0f, 100.0f);
  const nlohmann::json j = gemma2::to_config_json(r);
  CHECK(j["rms_norm_eps"].dump() == "1e-06");
  auto parsed = gemma2::parse_config_json(j.dump());
  REQUIRE_MESSAGE(parsed.ok(), parsed.message());
  CHECK_MESSAGE(gemma2::check_matches(r, *parsed).ok(), gemma2::check_matches(r, *parsed).message());
  // The 27B preset scales queries by 144 = hidden / heads, not head_dim.
  CHECK(gemma2::Gemma2_27B::query_pre_attn_scalar == 144.0f);
  CHECK(gemma2::Gemma2_27B::head_dim == 128);
}

TEST_CASE("block formats keep matrices whose width is not a multiple of 32, and say so") {
  TempDir dir;
  TinyModel tiny;  // hidden 24: no matrix with 24 columns can be blocked by 32
  tiny.write(dir.str());
  std::vector<std::string> logs;
  gemma2::LoadOptions lo;
  lo.weight_type = gemma2::DType::Q8_0;
  lo.log = [&](gemma2::LogLevel, const std::string& m) { logs.push_back(m); };
  auto q = gemma2::Gemma2Model<>::load(dir.str(), lo);
  auto f = gemma2::Gemma2Model<>::load(dir.str());
  REQUIRE(q.ok());
  REQUIRE(f.ok());
  CHECK(std::any_of(logs.begin(), logs.end(), [](const std::string& m) { return contains(m, "kept as F32"); }));
  // o_proj has 32 columns and is blocked; the 24- and 40-wide ones are not.
  CHECK(q->weight_bytes() < f->weight_bytes());
  CHECK(std::none_of(logs.begin(), logs.end(), [](const std::string& m) { return contains(m, "o_proj"); }));
  CHECK(std::any_of(logs.begin(), logs.end(), [](const std::string& m) { return contains(m, "down_proj"); }));
  const std::vector<int32_t> ids = {2, 7, 9};
  auto kq = q->make_cache(), kf = f->make_cache();
  const auto lq = q->forward(ids, *kq).value(), lf = f->forward(ids, *kf).value();
  CHECK(test::max_abs_diff(lq.data(), lf.data(), lq.size()) < 0.1f);
}
