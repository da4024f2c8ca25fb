// Paths that do not name readable regular files, weights copied instead of
// mapped, and the memory plan.
#include <csignal>
#include <cstdlib>
#include <exception>
#include <functional>

#include "support.hpp"

#if !defined(_WIN32)
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {

using test::contains;
using test::TempDir;
namespace fs = std::filesystem;

// The kinds of thing a path can name instead of a readable regular file
// (issue: a directory, a FIFO, devices that never end, symlinks to nothing
// and to themselves, a file that cannot be read, an empty file), each
// made at `path` over whatever was there, and the words the error must use.
struct BadKind {
  const char* name;
  const char* says;
  std::function<void(const std::string& path)> make;
};

#if !defined(_WIN32)
void replace_with_symlink(const std::string& target, const std::string& path) {
  fs::remove_all(path);
  fs::create_symlink(target, path);
}
#endif

// On Windows: a directory and an empty file (MinGW's std::filesystem makes
// no symbolic links, FIFOs and devices have no paths in a directory, and
// unreadable files are a matter of ACLs).
const std::vector<BadKind>& bad_kinds() {
  static const std::vector<BadKind> kinds = {
    {"directory", "is a directory, not a file",
     [](const std::string& p) {
       fs::remove_all(p);
       fs::create_directory(p);
     }},
#if !defined(_WIN32)
    {"FIFO", "is a named pipe (FIFO), not a regular file",
     [](const std::string& p) {
       fs::remove_all(p);
       REQUIRE(::mkfifo(p.c_str(), 0644) == 0);
     }},
    {"/dev/zero", "is a character device, not a regular file",
     [](const std::string& p) { replace_with_symlink("/dev/zero", p); }},
    {"/dev/urandom", "is a character device, not a regular file",
     [](const std::string& p) { replace_with_symlink("/dev/urandom", p); }},
    {"dangling symlink", "is a dangling symbolic link",
     [](const std::string& p) { replace_with_symlink(p + ".missing", p); }},
    {"symlink loop", "is a symbolic link loop", [](const std::string& p) { replace_with_symlink(p, p); }},
    {"unreadable file", "cannot be read: permission denied",
     [](const std::string& p) { fs::permissions(p, fs::perms::none); }},
#endif
    {"empty file", "is empty", [](const std::string& p) { fs::resize_file(p, 0); }},
  };
  return kinds;
}

#if !defined(_WIN32)
// The user tests run as when root can read anything: nobody.
constexpr uid_t kNobody = 65534;

// fn() run as an unprivileged user (a forked child drops root first), so
// that permission checks apply; returns what fn returned.
std::string as_unprivileged(const std::function<std::string()>& fn) {
  if (::geteuid() != 0) return fn();
  int pipe_fds[2];
  REQUIRE(::pipe(pipe_fds) == 0);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pipe_fds[0]);
    std::string out = ::setgid(kNobody) == 0 && ::setuid(kNobody) == 0 ? fn() : "cannot drop root";
    (void)!::write(pipe_fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status));
  return out;
}

#ifdef GEMMA2_CLI
// Whether the unprivileged user can read `path` (temporary directories are
// open to all; a build tree may not be).
bool reachable_by_nobody(const std::string& path) {
  return as_unprivileged([&] { return ::access(path.c_str(), R_OK) == 0 ? std::string("yes") : std::string("no"); }) ==
         "yes";
}
#endif
#endif

// fn() as a row needs it: the unreadable-file row runs it unprivileged.
std::string run_for(const BadKind& kind, const std::function<std::string()>& fn) {
#if !defined(_WIN32)
  if (kind.name == std::string("unreadable file")) return as_unprivileged(fn);
#else
  (void)kind;
#endif
  return fn();
}

std::string load_error(const std::string& path, gemma2::Mapping mapping = gemma2::Mapping::Mapped) {
  gemma2::LoadOptions o;
  o.mapping = mapping;
  auto m = gemma2::Gemma2Model<>::load(path, o);
  return m.ok() ? "loaded" : m.message();
}

// A file the library opens, in a fresh copy of a valid model, and how the
// library is asked to open it.
struct Role {
  const char* name;
  std::string file;                                         // relative to the model directory
  std::function<std::string(const std::string& dir)> open;  // the error message, or "loaded"
};

// A directory holding a tiny model in both layouts, a GGUF file, a saved
// session, and the demo model (its files linked, its tokenizer copied).
struct Fixture {
  TempDir tmp;
  std::string single = tmp.str() + "/single", sharded = tmp.str() + "/sharded", demo = tmp.str() + "/demo";
  Fixture() {
    fs::create_directories(single);
    fs::create_directories(sharded);
    fs::create_directories(demo);
    for (const char* file : {"config.json", "model.safetensors"}) {
#if defined(_WIN32)  // MinGW's std::filesystem makes no symbolic links
      fs::copy_file(std::string(GEMMA2_DEMO_MODEL) + "/" + file, demo + "/" + file);
#else
      fs::create_symlink(std::string(GEMMA2_DEMO_MODEL) + "/" + file, demo + "/" + file);
#endif
    }
    fs::copy_file(std::string(GEMMA2_DEMO_MODEL) + "/tokenizer.model", demo + "/tokenizer.model");
    test::TinyModel tiny;
    tiny.write(single);
    // Two shards and their index, as Hugging Face writes large models.
    std::map<std::string, gemma2::TensorToWrite> a, b;
    nlohmann::json map;
    for (const auto& [name, t] : tiny.tensors) {
      const bool first = name.find("layers.2.") == std::string::npos;
      (first ? a : b)[name] = t;
      map[name] = first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors";
    }
    std::ofstream(sharded + "/config.json") << tiny.config_json().dump();
    REQUIRE(gemma2::write_safetensors(sharded + "/model-00001-of-00002.safetensors", a).ok());
    REQUIRE(gemma2::write_safetensors(sharded + "/model-00002-of-00002.safetensors", b).ok());
    std::ofstream(sharded + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", map}}.dump();
    test::write_gguf(gemma2::open_checkpoint(single).value(), tmp.str() + "/model.gguf", gemma2::DType::Q8_0);
    auto model = gemma2::Gemma2Model<>::load(single).value();
    auto session = gemma2::Session<gemma2::Gemma2Model<>>::create(model).value();
    REQUIRE(session.feed({2, 5, 9}).ok());
    const std::vector<uint8_t> blob = session.save();
    std::ofstream(tmp.str() + "/session.bin", std::ios::binary)
        .write(reinterpret_cast<const char*>(blob.data()), static_cast<std::streamsize>(blob.size()));
    fs::permissions(tmp.path, fs::perms::all);  // reachable by the unprivileged user
  }
};

std::vector<Role> library_roles(const Fixture& f) {
  using gemma2::Mapping;
  const std::string root = f.tmp.str();
  auto session = [root](const std::string&) {
    auto model = gemma2::Gemma2Model<>::load(root + "/single").value();
    using Session = gemma2::Session<gemma2::Gemma2Model<>>;
    auto bytes = gemma2::read_file(root + "/session.bin", Session::max_saved_bytes(model));
    if (!bytes) return bytes.message();
    auto s = Session::restore(model, std::vector<uint8_t>(bytes->begin(), bytes->end()));
    return s ? std::string("loaded") : s.message();
  };
  return {
      {"config.json", "single/config.json", [root](const std::string&) { return load_error(root + "/single"); }},
      {"model.safetensors", "single/model.safetensors",
       [root](const std::string&) { return load_error(root + "/single"); }},
      {"model.safetensors (copied)", "single/model.safetensors",
       [root](const std::string&) { return load_error(root + "/single", Mapping::Copied); }},
      {"shard index", "sharded/model.safetensors.index.json",
       [root](const std::string&) { return load_error(root + "/sharded"); }},
      {"shard", "sharded/model-00002-of-00002.safetensors",
       [root](const std::string&) { return load_error(root + "/sharded"); }},
      {"GGUF file", "model.gguf", [root](const std::string&) { return load_error(root + "/model.gguf"); }},
      {"GGUF file (copied)", "model.gguf",
       [root](const std::string&) { return load_error(root + "/model.gguf", Mapping::Copied); }},
      {"GGUF file (plan)", "model.gguf",
       [root](const std::string&) {
         auto p = gemma2::Gemma2Model<>::plan(root + "/model.gguf");
         return p ? std::string("loaded") : p.message();
       }},
      {"tokenizer.model", "demo/tokenizer.model",
       [root](const std::string&) {
         auto t = gemma2::Tokenizer::load(root + "/demo/tokenizer.model");
         return t ? std::string("loaded") : t.message();
       }},
      {"session blob", "session.bin", session},
  };
}

}  // namespace

TEST_CASE("paths that are not readable regular files give an error saying what the path is") {
  for (const BadKind& kind : bad_kinds()) {
    Fixture f;
    for (const Role& role : library_roles(f)) {
      CAPTURE(role.name);
      CAPTURE(kind.name);
      const std::string path = f.tmp.str() + "/" + role.file;
      const std::string backup = path + ".good";
      fs::copy_file(path, backup);
      REQUIRE(role.open(path) == "loaded");  // valid before
      kind.make(path);
      const std::string message = run_for(kind, [&] { return role.open(path); });
      CHECK(contains(message, path));
      CHECK(contains(message, kind.says));
      fs::remove_all(path);
      fs::rename(backup, path);
    }
  }
}

TEST_CASE("a model path that is not a model directory or a file says what it is") {
  TempDir tmp;
  fs::permissions(tmp.path, fs::perms::all);  // reachable by the unprivileged user
  const std::string p = tmp.str() + "/model";
  const std::string gguf = tmp.str() + "/model.gguf";
  std::ofstream(p) << "x";
  CHECK(contains(load_error(p), p + " is a file, not a model directory"));
  for (const BadKind& kind : bad_kinds()) {
    CAPTURE(kind.name);
    const std::string kind_name = kind.name;
    if (kind_name == "directory") {  // a directory is a model directory; an empty one lacks config.json
      kind.make(p);
      CHECK(contains(load_error(p), p + "/config.json does not exist"));
      kind.make(gguf);
      CHECK(contains(load_error(gguf), gguf + " is a directory, not a file"));
      continue;
    }
    if (kind_name == "empty file") continue;  // no such thing for a directory; an empty one is above
    if (kind_name == "unreadable file") {
      fs::remove_all(p);
      fs::create_directory(p);
      fs::permissions(p, fs::perms::none);
      CHECK(contains(run_for(kind, [&] { return load_error(p); }), "permission denied"));
      continue;
    }
    kind.make(p);
    const std::string message = load_error(p);
    CHECK(contains(message, p));
    if (kind_name == "FIFO") CHECK(contains(message, "is a named pipe (FIFO), not a model directory"));
    else if (kind_name.rfind("/dev/", 0) == 0) CHECK(contains(message, "is a character device, not a model directory"));
    else CHECK(contains(message, kind.says));
  }
}

TEST_CASE("the null device (/dev/null, NUL on Windows) is a character device, never read") {
  const std::string null = test::kNullDevice;
  CHECK(contains(load_error(null), null + " is a character device, not a model directory"));
  CHECK(contains(gemma2::Tokenizer::load(null).message(), null + " is a character device, not a regular file"));
  CHECK(contains(gemma2::read_file(null, 100).message(), null + " is a character device, not a regular file"));
}

#ifdef GEMMA2_CLI
namespace {
struct CliRun {
  int rc = -1;  // exit code; -1 when it died of a signal
  std::string err;
};

CliRun cli(const std::string& args, const std::string& tmp, bool unprivileged = false) {
  const std::string err = tmp + "/cli.err";
  std::string cmd = std::string(GEMMA2_CLI) + " " + args + " < " + test::kNullDevice;
#if !defined(_WIN32)
  if (unprivileged && ::geteuid() == 0) cmd = "setpriv --reuid=65534 --regid=65534 --clear-groups " + cmd;
#else
  (void)unprivileged;
#endif
  CliRun r;
  r.rc = test::run_cli_command(cmd, test::kNullDevice, err);
  r.err = test::read_text(err);
  return r;
}
}  // namespace

TEST_CASE("CLI: paths that are not readable regular files give an error, never a crash") {
  // The unreadable-file rows run the CLI as an unprivileged user, who must
  // be able to reach the binary and the demo model.
#if defined(_WIN32)
  const bool can_drop_root = false;  // no unreadable-file row there
#else
  const bool can_drop_root =
      ::geteuid() != 0 || (std::system("command -v setpriv > /dev/null") == 0 && reachable_by_nobody(GEMMA2_CLI) &&
                           reachable_by_nobody(std::string(GEMMA2_DEMO_MODEL) + "/config.json"));
#endif
  for (const BadKind& kind : bad_kinds()) {
    Fixture f;
    const std::string root = f.tmp.str(), out = root + "/out.bin";
    const std::string text = root + "/text.txt";
    std::ofstream(text) << "ROMEO:\nBut soft!\n";
    struct CliRole {
      const char* file;
      std::string args;
    };
    const std::vector<CliRole> roles = {
        {"single/config.json", "logits --model " + root + "/single --ids 2,3 --out " + out},
        {"single/model.safetensors", "logits --model " + root + "/single --ids 2,3 --out " + out},
        {"single/model.safetensors", "info --model " + root + "/single"},
        {"sharded/model.safetensors.index.json", "logits --model " + root + "/sharded --ids 2 --out " + out},
        {"sharded/model-00001-of-00002.safetensors", "perplexity --model " + root + "/sharded --ids 2,3,4"},
        {"model.gguf", "generate --model " + root + "/model.gguf --ids 2 --max-new 2 --greedy"},
        {"model.gguf", "logits --dry-run --model " + root + "/model.gguf --ids 2 --out " + out},
        {"demo/tokenizer.model", "tokenize --tokenizer " + root + "/demo/tokenizer.model --text hi"},
        {"demo/tokenizer.model", "generate --model " + root + "/demo --prompt hi --max-new 1 --greedy"},
        {"text.txt", "perplexity --model " + root + "/demo --text-file " + text},
    };
    for (const CliRole& role : roles) {
      CAPTURE(role.args);
      CAPTURE(kind.name);
      const std::string path = root + "/" + role.file;
      fs::copy_file(path, path + ".good");
      const bool unprivileged = kind.name == std::string("unreadable file");
      if (unprivileged && !can_drop_root) {
        MESSAGE("skipped: running as root without setpriv or a build tree the nobody user can reach");
        continue;
      }
      REQUIRE(cli(role.args, root, unprivileged).rc == 0);  // valid before
      kind.make(path);
      const CliRun r = cli(role.args, root, unprivileged);
      CHECK(r.rc == 1);  // an error, not a signal or an abort
      CHECK(contains(r.err, path));
      CHECK(contains(r.err, kind.says));
      fs::remove_all(path);
      fs::rename(path + ".good", path);
    }
  }
}

TEST_CASE("CLI: commands that take ids never open a tokenizer") {
  Fixture f;
  const std::string root = f.tmp.str(), model = root + "/single", out = root + "/out.bin";
  fs::remove(model + "/tokenizer.model");
  fs::create_directory(model + "/tokenizer.model");  // would fail any attempt to read it
  for (const std::string& args :
       {"logits --model " + model + " --ids 2,3 --out " + out, "perplexity --model " + model + " --ids 2,3,4",
        "generate --model " + model + " --ids 2,3 --max-new 3 --greedy --print-ids",
        "bench --model " + model + " --prompt 4 --gen 2 --threads 1"}) {
    CAPTURE(args);
    const CliRun r = cli(args, root);
    CHECK(r.rc == 0);
    CHECK(!contains(r.err, "tokenizer"));
  }
  CHECK(
      contains(cli("generate --model " + model + " --prompt hi --max-new 1", root).err, "is a directory, not a file"));
  // bench's JSON line names the KV storage and what it and the process took.
  const auto bench = test::cli("bench --model " + model + " --prompt 4 --gen 2 --threads 1 --kv-cache int8");
  REQUIRE(bench.rc == 0);
  const nlohmann::json j = nlohmann::json::parse(bench.out);
  CHECK(j.at("kv_cache") == "int8");
  CHECK(j.at("model") == model);  // escaped (Windows paths hold backslashes)
  const gemma2::MemoryPlan plan = gemma2::Gemma2Model<>::plan(model).value();
  const size_t kv_bytes = plan.cache_bytes<gemma2::FullKVCache<int8_t>>(6);
  CHECK(j.at("kv_cache_bytes") == kv_bytes);
  CHECK(j.at("peak_rss_bytes") > 0);
}

TEST_CASE("CLI: info and --dry-run print the memory plan, and --max-memory refuses before loading") {
  TempDir tmp;
  const std::string demo = GEMMA2_DEMO_MODEL;
  auto plan = gemma2::Gemma2Model<>::plan(demo).value();
  const auto run_info = test::cli("info --model " + demo + " --context 100");
  REQUIRE(run_info.rc == 0);
  const std::string info = run_info.out;
  CHECK(contains(info,
                 "(" + std::to_string(plan.mapped_bytes) + " + " + std::to_string(plan.allocated_bytes) + " bytes"));
  CHECK(contains(info, "KV cache for 100 positions"));
  const auto dry_run = test::cli("generate --dry-run --prompt x");
  REQUIRE(dry_run.rc == 0);
  CHECK(contains(dry_run.out, "mapped + "));
  const CliRun refused =
      cli("logits --model " + demo + " --ids 2 --out " + tmp.str() + "/x --max-memory 1M", tmp.str());
  CHECK(refused.rc == 1);
  CHECK(contains(refused.err, "needs 13.9 MB"));
  CHECK(contains(refused.err, "limit 1.0 MB"));
  CHECK(cli("logits --model " + demo + " --ids 2 --out " + tmp.str() + "/x --max-memory 1G --mapping copied", tmp.str())
            .rc == 0);
}
#endif

namespace {
// The first golden case of gqa_f32: its ids and reference logits.
struct GoldenCase {
  std::vector<int32_t> ids;
  std::vector<float> want;
};
GoldenCase first_golden_case() {
  const auto golden = test::read_json(test::golden_dir("gqa_f32") + "/expected.json");
  const auto& seq = golden["cases"][0];
  return {seq["tokens"].get<std::vector<int32_t>>(),
          test::read_f32(test::golden_dir("gqa_f32") + "/" + seq["logits_file"].get<std::string>())};
}

gemma2::Activations all_logits(const gemma2::Gemma2Model<>& m, const std::vector<int32_t>& ids) {
  auto cache = m.make_cache(static_cast<int>(ids.size())).value();
  gemma2::ForwardOptions o;
  o.all_logits = true;
  return m.forward(ids, cache, o).value();
}

gemma2::LoadOptions copied_mapping() {
  gemma2::LoadOptions o;
  o.mapping = gemma2::Mapping::Copied;
  return o;
}
}  // namespace

TEST_CASE("Mapping::Copied: the model keeps working after its file is truncated or replaced") {
  const GoldenCase g = first_golden_case();
  TempDir tmp;
  fs::copy(test::golden_dir("gqa_f32"), tmp.path);
  const std::string weights = tmp.str() + "/model.safetensors";
  auto model = gemma2::Gemma2Model<>::load(tmp.str(), copied_mapping()).value();
  const gemma2::Activations before = all_logits(model, g.ids);
  CHECK(test::max_abs_diff(before.data(), g.want.data(), g.want.size()) < 4e-4f);
  fs::resize_file(weights, 0);
  CHECK(all_logits(model, g.ids).isApprox(before, 0.0f));
  fs::remove(weights);  // replaced, as an updater does
  std::ofstream(weights) << "not the model any more";
  CHECK(all_logits(model, g.ids).isApprox(before, 0.0f));
}

TEST_CASE("Mapping::Copied: a model from a GGUF file keeps working after the file is truncated") {
  const GoldenCase g = first_golden_case();
  TempDir tmp;
  const std::string gguf = tmp.str() + "/copy.gguf";
  test::write_gguf(gemma2::open_checkpoint(test::golden_dir("gqa_f32")).value(), gguf, gemma2::DType::Q8_0);
  auto q8 = gemma2::Gemma2Model<>::load(gguf, copied_mapping()).value();
  const gemma2::Activations q8_before = all_logits(q8, g.ids);
  fs::resize_file(gguf, 0);
  CHECK(all_logits(q8, g.ids).isApprox(q8_before, 0.0f));
}

#if defined(_WIN32)
TEST_CASE("Mapping::Mapped: Windows refuses to truncate a file while a model maps it") {
  const GoldenCase g = first_golden_case();
  TempDir mapped_dir;
  fs::copy(test::golden_dir("gqa_f32"), mapped_dir.path);
  auto mapped = gemma2::Gemma2Model<>::load(mapped_dir.str()).value();
  const gemma2::Activations before = all_logits(mapped, g.ids);
  std::error_code ec;
  fs::resize_file(mapped_dir.str() + "/model.safetensors", 0, ec);
  CHECK(ec);
  CHECK(all_logits(mapped, g.ids).isApprox(before, 0.0f));
}
#else
TEST_CASE("Mapping::Mapped: the hazard Copied avoids, a mapped model whose file is truncated faults (SIGBUS)") {
  // In a child process, so the fault ends only that process.
  const GoldenCase g = first_golden_case();
  TempDir mapped_dir;
  fs::copy(test::golden_dir("gqa_f32"), mapped_dir.path);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);  // a sanitizer's report of the fault is expected
    ::dup2(null, STDERR_FILENO);
    auto mapped = gemma2::Gemma2Model<>::load(mapped_dir.str());
    if (!mapped) ::_exit(2);
    fs::resize_file(mapped_dir.str() + "/model.safetensors", 0);
    (void)all_logits(*mapped, g.ids);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
#if defined(__SANITIZE_ADDRESS__)  // AddressSanitizer catches the SIGBUS, reports it and exits with 1
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 1));
#else
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK(WTERMSIG(status) == SIGBUS);
#endif
}
#endif

namespace {
// Bytes of the demo model's norm gains, which the model always holds as floats.
size_t demo_norm_bytes() {
  const gemma2::RuntimeConfig c = gemma2::load_config_json(std::string(GEMMA2_DEMO_MODEL) + "/config.json").value();
  return (4 * static_cast<size_t>(c.num_hidden_layers) + 1) * c.hidden_size * sizeof(float);
}
}  // namespace

TEST_CASE("plan: the memory a model takes, from headers alone, equal to what load then holds") {
  const std::string demo = GEMMA2_DEMO_MODEL;
  const gemma2::RuntimeConfig c = gemma2::load_config_json(demo + "/config.json").value();
  const size_t norms = demo_norm_bytes();
  const size_t file = fs::file_size(demo + "/model.safetensors");

  auto mapped = gemma2::Gemma2Model<>::plan(demo).value();
  CHECK(mapped.mapped_bytes == file);
  CHECK(mapped.allocated_bytes == norms);
  CHECK(mapped.config.hidden_size == c.hidden_size);
  auto model = gemma2::Gemma2Model<>::load(demo).value();
  CHECK(mapped.weight_bytes == model.weight_bytes());
  for (int context : {1, 100, c.max_position_embeddings}) {
    CHECK(mapped.cache_bytes(context) == model.make_cache(context).value().bytes());
    CHECK(mapped.cache_bytes<gemma2::SlidingWindowKVCache<gemma2::bf16>>(context) ==
          model.make_cache<gemma2::SlidingWindowKVCache<gemma2::bf16>>(context).value().bytes());
  }

  auto copied = gemma2::Gemma2Model<>::plan(demo, copied_mapping()).value();
  CHECK(copied.mapped_bytes == 0);
  CHECK(copied.allocated_bytes == file + norms);

  gemma2::LoadOptions o;
  o.weight_type = gemma2::DType::Q8_0;  // every matrix converted: the file is not kept
  auto q8 = gemma2::Gemma2Model<>::plan(demo, o).value();
  CHECK(q8.mapped_bytes == 0);
  CHECK(q8.allocated_bytes == q8.weight_bytes + norms);
  CHECK(q8.weight_bytes == gemma2::Gemma2Model<>::load(demo, o).value().weight_bytes());
}

TEST_CASE("plan: GGUF Q8_0 blocks are regrouped in memory, so the file is not kept, and F32 is used in place") {
  const std::string demo = GEMMA2_DEMO_MODEL;
  const size_t norms = demo_norm_bytes();
  TempDir tmp;
  const std::string gguf = tmp.str() + "/m.gguf";
  test::write_gguf(gemma2::open_checkpoint(demo).value(), gguf, gemma2::DType::Q8_0);
  auto p = gemma2::Gemma2Model<>::plan(gguf).value();
  CHECK(p.mapped_bytes == 0);
  CHECK(p.allocated_bytes == p.weight_bytes + norms);
  test::write_gguf(gemma2::open_checkpoint(demo).value(), gguf, gemma2::DType::F32);
  p = gemma2::Gemma2Model<>::plan(gguf).value();
  CHECK(p.mapped_bytes == fs::file_size(gguf));
  CHECK(p.allocated_bytes == norms);
}

TEST_CASE("plan: reads no weight, so NaN weights plan fine and are found by load") {
  TempDir tmp;
  test::TinyModel tiny;
  float nan = std::nanf("");
  std::memcpy(tiny.tensors["model.layers.1.mlp.up_proj.weight"].bytes.data(), &nan, 4);
  tiny.write(tmp.str());
  gemma2::LoadOptions check;
  check.check_finite = true;
  CHECK(gemma2::Gemma2Model<>::plan(tmp.str(), check).ok());
  CHECK(contains(gemma2::Gemma2Model<>::load(tmp.str(), check).message(), "up_proj.weight holds NaN"));
}

TEST_CASE("plan: max_memory refuses before loading, naming both sizes") {
  const std::string demo = GEMMA2_DEMO_MODEL;
  const auto mapped = gemma2::Gemma2Model<>::plan(demo).value();
  gemma2::LoadOptions limited;
  limited.max_memory = mapped.total_bytes() - 1;
  const std::string message = gemma2::Gemma2Model<>::load(demo, limited).message();
  CHECK(contains(message, "needs 13.9 MB (13.9 MB mapped + 25600 bytes allocated), limit 13.9 MB"));
  limited.max_memory = mapped.total_bytes();
  CHECK(gemma2::Gemma2Model<>::load(demo, limited).ok());
}

TEST_CASE("plan: finds what load finds in the headers") {
  TempDir tmp;
  test::TinyModel tiny;
  tiny.write(tmp.str(), {{"hidden_size", 32}});
  CHECK(contains(gemma2::Gemma2Model<>::plan(tmp.str()).message(), "has shape [64, 24] but the config needs [64, 32]"));
}

TEST_CASE("exceptions thrown inside dependencies come back as errors") {
  // The test binary fails on any exception reaching std::terminate (main.cpp).
  const bool handler_installed = std::get_terminate() != nullptr;
  CHECK(handler_installed);
  TempDir tmp;
  // nlohmann::json throws type_error 316 dumping a name that is not UTF-8.
  std::map<std::string, gemma2::TensorToWrite> bad;
  bad["\xff\xfe"] = {gemma2::DType::F32, {1}, std::vector<std::byte>(4)};
  const gemma2::Status s = gemma2::write_safetensors(tmp.str() + "/x.safetensors", bad);
  CHECK(contains(s.message(), "writing " + tmp.str() + "/x.safetensors: "));
  CHECK(contains(s.message(), "invalid UTF-8"));
  // ... and type_error 302 reading a string as a number.
  std::map<std::string, gemma2::GgufValue> md;
  md["general.alignment"] = {gemma2::GgufType::U32, gemma2::GgufType::U8, "thirty-two"};
  const gemma2::Status g = gemma2::write_gguf(tmp.str() + "/x.gguf", md, {});
  CHECK(contains(g.message(), "writing " + tmp.str() + "/x.gguf: "));
  CHECK(contains(g.message(), "type must be number"));
  // A plain call that throws, through the one helper every boundary uses.
  auto r = gemma2::detail::guard("doing X with F", []() -> gemma2::Status { throw std::runtime_error("broke"); });
  CHECK(r.message() == "doing X with F: broke");
}
