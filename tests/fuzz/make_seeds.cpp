// Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/):
// small valid inputs the fuzzers mutate. Deterministic, so rerunning it
// reproduces the committed files:
//   make_seeds <corpus dir> <tests/data dir>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gemma2/io/gguf.hpp>
#include <gemma2/testing/random_model.hpp>

#include "tiny.hpp"

namespace fs = std::filesystem;
using gemma2::DType;
using gemma2::GgufType;
using gemma2::GgufValue;

namespace {

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

std::map<std::string, gemma2::TensorToWrite> to_write(const gemma2::Checkpoint& ck) {
  std::map<std::string, gemma2::TensorToWrite> out;
  for (const auto& [name, t] : ck.tensors)
    out[name] = {t.dtype, t.shape, std::vector<std::byte>(t.data, t.data + t.nbytes)};
  return out;
}

std::string safetensors_bytes(const fs::path& scratch, const std::map<std::string, gemma2::TensorToWrite>& tensors) {
  if (!gemma2::write_safetensors(scratch.string(), tensors)) std::exit(1);
  std::string s = read(scratch);
  fs::remove(scratch);
  return s;
}

// A small sentencepiece vocabulary as GGUF tokenizer metadata: the special
// pieces, the 256 byte pieces and a few words.
void add_tokenizer(std::map<std::string, GgufValue>& md) {
  nlohmann::json tokens = {"<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"};
  nlohmann::json types = {3, 3, 3, 2, 4, 4};
  for (int b = 0; b < 256; ++b) {
    char piece[8];
    std::snprintf(piece, sizeof piece, "<0x%02X>", b);
    tokens.push_back(piece);
    types.push_back(6);
  }
  for (const char* w : {"\xE2\x96\x81", "\xE2\x96\x81the", "he", "ll", "o", "\xE2\x96\x81w", "or", "ld", "1", "2"}) {
    tokens.push_back(w);
    types.push_back(1);
  }
  nlohmann::json scores = nlohmann::json::array();
  for (size_t i = 0; i < tokens.size(); ++i) scores.push_back(-static_cast<float>(i));
  md["tokenizer.ggml.model"] = {GgufType::STRING, GgufType::U8, "llama"};
  md["tokenizer.ggml.tokens"] = {GgufType::ARRAY, GgufType::STRING, tokens};
  md["tokenizer.ggml.scores"] = {GgufType::ARRAY, GgufType::F32, scores};
  md["tokenizer.ggml.token_type"] = {GgufType::ARRAY, GgufType::I32, types};
  md["tokenizer.ggml.bos_token_id"] = {GgufType::U32, GgufType::U8, 2};
  md["tokenizer.ggml.eos_token_id"] = {GgufType::U32, GgufType::U8, 1};
  md["tokenizer.ggml.unknown_token_id"] = {GgufType::U32, GgufType::U8, 3};
  md["tokenizer.ggml.padding_token_id"] = {GgufType::U32, GgufType::U8, 0};
  md["tokenizer.ggml.add_space_prefix"] = {GgufType::BOOL, GgufType::U8, false};
}

std::string gguf_bytes(const fs::path& scratch, const std::map<std::string, GgufValue>& md,
                       const std::vector<gemma2::GgufTensorToWrite>& tensors) {
  if (!gemma2::write_gguf(scratch.string(), md, tensors)) std::exit(1);
  std::string s = read(scratch);
  fs::remove(scratch);
  return s;
}

// The tiny model as GGUF tensors (F32; norm weights hold 1 + w as in llama.cpp files).
std::vector<gemma2::GgufTensorToWrite> gguf_tensors(const gemma2::Checkpoint& ck) {
  std::vector<gemma2::GgufTensorToWrite> out;
  for (const auto& spec : gemma2::gemma2_tensors(ck.config)) {
    const gemma2::TensorView& t = ck.tensors.at(spec.name);
    std::vector<float> f(t.nbytes / 4);
    std::memcpy(f.data(), t.data, t.nbytes);
    if (spec.shape.size() == 1)
      for (float& x : f) x += 1.0f;
    gemma2::GgufTensorToWrite w;
    w.name = gemma2::detail::gguf_name(spec.name);
    for (auto d = spec.shape.rbegin(); d != spec.shape.rend(); ++d) w.dims.push_back(static_cast<uint64_t>(*d));
    w.ggml_type = 0;
    w.bytes.resize(t.nbytes);
    std::memcpy(w.bytes.data(), f.data(), t.nbytes);
    out.push_back(std::move(w));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seeds <corpus dir> <tests/data dir>\n");
    return 2;
  }
  const fs::path out = argv[1], data = argv[2];
  const fs::path scratch = fs::temp_directory_path() / ("gemma2_make_seeds_" + std::to_string(::getpid()));
  const gemma2::RuntimeConfig tiny = fuzz::tiny_config();

  // safetensors: the tiny model in one file, a sharded copy, a minimal file.
  const gemma2::Checkpoint bf16 = gemma2::random_checkpoint(tiny, DType::BF16, 1);
  write(out / "safetensors/tiny_bf16.safetensors", safetensors_bytes(scratch, to_write(bf16)));
  std::map<std::string, gemma2::TensorToWrite> a, b;
  nlohmann::json map;
  for (auto& [name, t] : to_write(gemma2::random_checkpoint(tiny, DType::F16, 2))) {
    const bool first = name < "model.layers.1";
    (first ? a : b)[name] = t;
    map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
  }
  const std::string sep = "\n#shard#\n";
  write(out / "safetensors/sharded_f16.bin", nlohmann::json{{"weight_map", map}}.dump(1) + sep +
                                                 safetensors_bytes(scratch, a) + sep + safetensors_bytes(scratch, b));
  gemma2::TensorToWrite small{DType::F32, {2, 2}, std::vector<std::byte>(16, std::byte{0})};
  write(out / "safetensors/small_f32.safetensors", safetensors_bytes(scratch, {{"w", small}}));

  // config: the golden configs and the tiny one.
  for (const auto& entry : fs::directory_iterator(data / "golden"))
    if (fs::exists(entry.path() / "config.json"))
      write(out / "config" / (entry.path().filename().string() + ".json"), read(entry.path() / "config.json"));
  write(out / "config/tiny.json", gemma2::to_config_json(tiny, "float32").dump(1));

  // gguf: the tiny model; the tokenizer alone; block-quantized tensors.
  const gemma2::Checkpoint f32 = gemma2::random_checkpoint(tiny, DType::F32, 3);
  write(out / "gguf/tiny_f32.gguf", gguf_bytes(scratch, gemma2::gguf_config_metadata(tiny), gguf_tensors(f32)));
  auto md = gemma2::gguf_config_metadata(tiny);
  add_tokenizer(md);
  const gemma2::GgufTensorToWrite embd{"token_embd.weight", 0, {8, 32}, std::vector<std::byte>(8 * 32 * 4)};
  write(out / "gguf/tokenizer.gguf", gguf_bytes(scratch, md, {embd}));
  // gguf_tokenizer: that file alone, and with texts to tokenize.
  const std::string tokenizer_gguf = gguf_bytes(scratch, md, {embd});
  write(out / "gguf_tokenizer/tokenizer.gguf", tokenizer_gguf);
  write(out / "gguf_tokenizer/with_text.bin", tokenizer_gguf + "\n#text#\nab ba\n\xE2\x96\x81 <start_of_turn>a");
  write(out / "gguf_tokenizer/with_bytes.bin", tokenizer_gguf + "\n#text#\n\xF0\x9F\x98\x80\xC3\xA9 99");
  std::vector<gemma2::GgufTensorToWrite> blocks = {
      {"token_embd.weight", 8, {32, 4}, std::vector<std::byte>(4 * 34)},     // Q8_0
      {"blk.0.attn_q.weight", 2, {32, 2}, std::vector<std::byte>(2 * 18)},   // Q4_0
      {"blk.0.ffn_up.weight", 12, {256, 1}, std::vector<std::byte>(144)},    // Q4_K
      {"blk.0.ffn_gate.weight", 13, {256, 1}, std::vector<std::byte>(176)},  // Q5_K
      {"blk.0.ffn_down.weight", 14, {256, 1}, std::vector<std::byte>(210)},  // Q6_K
      {"output_norm.weight", 1, {8}, std::vector<std::byte>(16)},            // F16
      {"blk.0.attn_norm.weight", 30, {8}, std::vector<std::byte>(16)}};      // BF16
  write(out / "gguf/blocks.gguf", gguf_bytes(scratch, gemma2::gguf_config_metadata(tiny), blocks));

  // tokenizer: the texts of the tokenizer test cases.
  const auto cases = nlohmann::json::parse(read(data / "tokenizer/cases.json"));
  int n = 0;
  for (const auto& c : cases["cases"]) {
    char name[32];
    std::snprintf(name, sizeof name, "case%02d.txt", n++);
    write(out / "tokenizer" / name, c["text"].get<std::string>());
  }

  // chat: conversations (flags byte, then role byte + text per message,
  // separated by 0x1e).
  auto chat = [](const auto& literal) { return std::string(literal, sizeof literal - 1); };  // NUL bytes kept
  write(out / "chat/user.bin", chat("\x01\x01Hello there!"));
  write(out / "chat/system_user_model_user.bin",
        chat("\x01\x00"
             "Answer in verse.\x1e\x01 Who art thou? \x1e\x02I am a player.\x1e\x01\xC3\xA9t\xC3\xA9?"));
  write(out / "chat/no_generation_prompt.bin", chat("\x00\x01<start_of_turn>user\nhi<end_of_turn>"));

  // session: saved sessions of the tiny model, full float cache and bf16
  // sliding-window cache, one with a pending token.
  auto model = gemma2::Gemma2Model<>::from_checkpoint(gemma2::random_checkpoint(tiny, DType::F32)).value();
  auto save = [](const auto& session) {
    const std::vector<uint8_t> blob = session.save();
    return std::string(blob.begin(), blob.end());
  };
  auto full = gemma2::Session<gemma2::Gemma2Model<>>::create(model, 8).value();
  (void)full.feed({2, 5, 9, 3, 7, 1}).value();
  write(out / "session/full_f32.bin", save(full));
  (void)full.rollback(4);
  write(out / "session/full_f32_pending.bin", save(full));
  auto window =
      gemma2::Session<gemma2::Gemma2Model<>, gemma2::SlidingWindowKVCache<gemma2::bf16>>::create(model, 16).value();
  (void)window.feed({2, 4, 6, 8, 10, 12, 14}).value();
  write(out / "session/window_bf16.bin", save(window));
  // Replies in progress (Generation::save): one after its prompt and two
  // tokens, one done.
  for (const int max : {6, 2}) {
    auto s = gemma2::Session<gemma2::Gemma2Model<>>::create(model, 16).value();
    gemma2::GenerateOptions o;
    o.max_new_tokens = max;
    o.call_max_tokens = 2;
    gemma2::Generation g(o);
    gemma2::Sampler sampler;
    (void)g.run(s, {2, 5, 9}, sampler).value();
    const std::vector<uint8_t> blob = g.save();
    write(out / (max == 6 ? "session/reply_paused.bin" : "session/reply_done.bin"),
          std::string(blob.begin(), blob.end()));
  }
  return 0;
}
