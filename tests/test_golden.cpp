// Every case of the reference data (Google's gemma_pytorch, see
// data/golden/README.md): full logits within 3e-3 and identical greedy
// continuations, through the library and through the CLI.
#include <doctest/doctest.h>

#include <cstdlib>
#include <set>

#include "support.hpp"

namespace {

using gemma2::DType;

struct GoldenSeq {
  std::string dir, name;
  std::vector<int32_t> tokens, prompt, greedy;
  std::vector<float> logits, greedy_logits;
};

std::vector<GoldenSeq> golden_sequences() {
  std::vector<GoldenSeq> out;
  const auto index = test::read_json(test::data_dir() + "/golden/index.json");
  for (const auto& c : index["cases"]) {
    const std::string dir = test::golden_dir(c["dir"].get<std::string>());
    const auto expected = test::read_json(dir + "/expected.json");
    for (const auto& s : expected["cases"]) {
      GoldenSeq g{dir,
                  s["name"],
                  s["tokens"],
                  s["prompt"],
                  s["greedy"],
                  test::read_f32(dir + "/" + s["logits_file"].get<std::string>()),
                  test::read_f32(dir + "/" + s["greedy_logits_file"].get<std::string>())};
      out.push_back(std::move(g));
    }
  }
  return out;
}

// golden/README.md recommends 1e-2 for float32. The library holds every
// case to 3e-3 on every kernel set (ctest's kernels_<set> runs these cases
// on each): its float arithmetic stays within 2e-3 of the reference, so a
// set that rounds more (as bf16 activations would) fails here.
constexpr float kTolerance = 3e-3f;

#ifdef GEMMA2_CLI
std::string join(const std::vector<int32_t>& ids, const char* sep) {
  std::string s;
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? sep : "") + std::to_string(ids[i]);
  return s;
}
#endif

}  // namespace

TEST_CASE("golden: full logits and greedy continuations match the reference") {
  const auto seqs = golden_sequences();
  REQUIRE(seqs.size() == 6);
  auto pool = gemma2::ThreadPool::create(2);
  REQUIRE(pool.ok());
  for (const auto& g : seqs) {
    INFO(g.dir, " ", g.name);
    auto model = gemma2::Gemma2Model<>::load(g.dir);
    REQUIRE_MESSAGE(model.ok(), model.message());
    const int V = model->config().vocab_size;

    auto kv = model->make_cache();
    REQUIRE(kv.ok());
    auto logits = model->forward(g.tokens, *kv, {&*pool, true});
    REQUIRE(logits.ok());
    REQUIRE(static_cast<size_t>(logits->size()) == g.logits.size());
    const float worst = test::max_abs_diff(logits->data(), g.logits.data(), g.logits.size());
    MESSAGE(g.dir, " ", g.name, ": worst |logit - ref| = ", worst);
    CHECK(worst <= kTolerance);

    // Greedy: prefill the prompt, then one-token steps through the cache.
    auto gkv = model->make_cache();
    REQUIRE(gkv.ok());
    std::vector<int32_t> out;
    float worst_step = 0.0f;
    auto step = model->forward(g.prompt, *gkv, {&*pool});
    for (size_t k = 0; k < g.greedy.size(); ++k) {
      REQUIRE(step.ok());
      worst_step =
          std::max(worst_step, test::max_abs_diff(step->data(), &g.greedy_logits[k * V], static_cast<size_t>(V)));
      Eigen::Index best;
      step->row(0).maxCoeff(&best);
      out.push_back(static_cast<int32_t>(best));
      if (k + 1 < g.greedy.size()) step = model->forward(&out.back(), 1, *gkv, {&*pool});
    }
    CHECK(out == g.greedy);
    CHECK(worst_step <= kTolerance);
  }
}

// Every golden checkpoint converted to GGUF as llama.cpp's converter writes
// it (norms holding 1 + w): the same logits as from safetensors for each
// weight type, so the reference agreement carries over. Q8_0/Q4_0 files hold
// exactly the blocks the library makes at load from the original weights,
// so their logits equal the safetensors model converted at load. Their
// distance to the float32 reference is reported, not bounded: these random
// models magnify quantization error (up to ~9 logits at Q8_0 and ~35 at
// Q4_0); the quality of the block formats is measured on the trained demo
// model instead (test_generate.cpp).
TEST_CASE("golden: GGUF conversions of each case give the safetensors model's logits") {
  test::TempDir tmp;
  auto pool = gemma2::ThreadPool::create(2);
  REQUIRE(pool.ok());
  const auto seqs = golden_sequences();
  std::set<std::string> dirs;
  for (const auto& g : seqs) {
    if (!dirs.insert(g.dir).second) continue;  // one file per checkpoint; its first sequence
    auto ck = gemma2::open_checkpoint(g.dir);
    REQUIRE(ck.ok());
    const DType stored = ck->tensors.at("model.layers.0.mlp.up_proj.weight").dtype;
    for (DType as : {stored, DType::Q8_0, DType::Q4_0}) {
      const std::string type = gemma2::dtype_name(as);
      INFO(g.dir, " as ", type);
      const std::string path = tmp.str() + "/model.gguf";
      // The scale key is llama.cpp's rule unless the config departs from it.
      test::write_gguf(*ck, path, as, ck->config.query_pre_attn_scalar != ck->config.head_dim);
      auto from_gguf = gemma2::Gemma2Model<>::load(path);
      REQUIRE_MESSAGE(from_gguf.ok(), from_gguf.message());
      gemma2::LoadOptions lo;
      lo.weight_type = as;
      auto original = gemma2::Gemma2Model<>::load(g.dir, lo);
      REQUIRE(original.ok());
      auto kv1 = from_gguf->make_cache().value(), kv2 = original->make_cache().value();
      const auto a = from_gguf->forward(g.tokens, kv1, {&*pool, true}).value();
      const auto b = original->forward(g.tokens, kv2, {&*pool, true}).value();
      CHECK(test::max_abs_diff(a.data(), b.data(), static_cast<size_t>(a.size())) <= 1e-5f);
      const float vs_ref = test::max_abs_diff(a.data(), g.logits.data(), g.logits.size());
      MESSAGE(g.dir, " GGUF ", type, ": worst |logit - ref| = ", vs_ref);
      if (!gemma2::is_block32(as)) CHECK(vs_ref <= kTolerance);
    }
  }
}

TEST_CASE("golden: a preset Config rejects a checkpoint of another size, naming the field") {
  auto m = gemma2::Gemma2Model<gemma2::Gemma2_2B>::load(test::golden_dir("gqa_f32"));
  REQUIRE_FALSE(m.ok());
  CHECK(m.message().find("vocab_size = 512 but the model type gemma2-2b expects 256000") != std::string::npos);
}

#ifdef GEMMA2_CLI
TEST_CASE("golden: the gemma2 CLI (logits, generate --greedy --print-ids) matches the reference") {
  test::TempDir tmp;
  const auto seqs = golden_sequences();
  REQUIRE(seqs.size() == 6);
  for (const auto& g : seqs) {
    INFO(g.dir, " ", g.name);
    const std::string out = tmp.str() + "/logits.f32";
    REQUIRE(test::cli("logits --model " + g.dir + " --ids " + join(g.tokens, ",") + " --out " + out).rc == 0);
    const auto logits = test::read_f32(out);
    REQUIRE(logits.size() == g.logits.size());
    CHECK(test::max_abs_diff(logits.data(), g.logits.data(), logits.size()) <= kTolerance);

    const auto greedy = test::cli("generate --model " + g.dir + " --ids " + join(g.prompt, ",") + " --max-new " +
                                  std::to_string(g.greedy.size()) + " --greedy --print-ids --threads 2");
    REQUIRE(greedy.rc == 0);
    std::string text = greedy.out;
    while (!text.empty() && text.back() == '\n') text.pop_back();
    CHECK(text.substr(text.rfind('\n') + 1) == join(g.greedy, " "));

    // The same through a GGUF file: --model takes a .gguf path.
    const std::string gguf = tmp.str() + "/model.gguf";
    const auto ck = gemma2::open_checkpoint(g.dir).value();
    test::write_gguf(ck, gguf, ck.tensors.at("model.norm.weight").dtype,
                     ck.config.query_pre_attn_scalar != ck.config.head_dim);
    REQUIRE(test::cli("logits --model " + gguf + " --ids " + join(g.tokens, ",") + " --out " + out).rc == 0);
    const auto from_gguf = test::read_f32(out);
    REQUIRE(from_gguf.size() == g.logits.size());
    CHECK(test::max_abs_diff(from_gguf.data(), g.logits.data(), from_gguf.size()) <= kTolerance);
  }
}

TEST_CASE("CLI: errors exit non-zero with a message") {
  test::TempDir tmp;
  auto run = [&](const std::string& args) {
    const auto r = test::cli(args);
    return std::make_pair(r.rc, r.err);
  };
  const std::string model = test::golden_dir("gqa_f32");
  const auto r1 = run("generate --model " + model + " --ids 2,999999 --max-new 2 --greedy");
  CHECK(r1.first != 0);
  CHECK_MESSAGE(r1.second.find("token id 999999") != std::string::npos, "exit code ", r1.first,
                ", stderr: ", r1.second);
  const auto r2 = run("logits --model " + tmp.str() + "/nope --ids 2 --out " + tmp.str() + "/x");
  CHECK(r2.first != 0);
  CHECK_MESSAGE(r2.second.find("/nope does not exist") != std::string::npos, "exit code ", r2.first,
                ", stderr: ", r2.second);
  const auto r3 = run("generate --model " + model + " --ids 2 --threads 0 --greedy");
  CHECK(r3.first != 0);
  CHECK_MESSAGE(r3.second.find("--threads: must be from 1 to 512, got 0") != std::string::npos, "exit code ", r3.first,
                ", stderr: ", r3.second);
}
#endif
