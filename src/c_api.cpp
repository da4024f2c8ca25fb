// The C ABI (include/gemma2/c_api.h) over the header-only library: each
// handle wraps the C++ object, each call turns a failed Result or anything
// thrown into a status and the thread's last error message.
#define GEMMA2_C_BUILDING
#include "gemma2/c_api.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <cmath>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "gemma2/gemma2.hpp"
#include "gemma2/io/gguf.hpp"

namespace {

using Model = gemma2::Gemma2Model<>;
template <class Storage>
using Full = gemma2::Session<Model, gemma2::FullKVCache<Storage>>;
template <class Storage>
using Sliding = gemma2::Session<Model, gemma2::SlidingWindowKVCache<Storage>>;
// A C session holds any cache the options can ask for; the alternatives are
// in gemma2_session_options' order: storage f32, bf16, int8, full then sliding.
using AnySession =
    std::variant<Full<float>, Full<gemma2::bf16>, Full<int8_t>, Sliding<float>, Sliding<gemma2::bf16>, Sliding<int8_t>>;
constexpr const char* kStorageNames[] = {"f32", "bf16", "int8"};

thread_local std::string last_error;

gemma2_status fail(std::string message) {
  last_error = std::move(message);
  return GEMMA2_ERROR;
}

// Runs f, turning an escaped exception into an error: nothing crosses the
// C boundary.
template <class F>
gemma2_status guarded(const char* function, F&& f) {
  try {
    return f();
  } catch (const std::bad_alloc&) {
    return fail(std::string(function) + ": out of memory");
  } catch (const std::exception& e) {
    return fail(std::string(function) + ": " + e.what());
  } catch (...) {
    return fail(std::string(function) + ": unexpected error");
  }
}

// ---- Argument checks ---------------------------------------------------
// Every entry point checks its arguments before it changes anything; a
// rejected call names the function, the argument and what is allowed:
// "gemma2_stream_push: id is -1, outside the tokenizer's vocabulary [0, 256000)".

// "<function>: <parts...>" as the thread's last error.
template <class... Parts>
gemma2_status reject(const char* function, const Parts&... parts) {
  std::ostringstream s;
  s << function << ": ";
  (s << ... << parts);
  return fail(s.str());
}

// For calls that return a value instead of a status: a NULL handle is
// recorded as the last error and `value` returned.
template <class T>
T null_handle(const char* function, const char* argument, T value) {
  reject(function, argument, " is NULL");
  return value;
}

// The most elements an array of T may have: no object is larger than
// PTRDIFF_MAX bytes, so a count past this is a caller's overflow.
template <class T>
constexpr size_t kMaxElements = static_cast<size_t>(PTRDIFF_MAX) / sizeof(T);

// An input array of `count` elements: NULL only when empty.
template <class T>
gemma2_status check_input(const char* function, const char* data_name, const T* data, const char* count_name,
                          size_t count) {
  if (count > kMaxElements<T>)
    return reject(function, count_name, " is ", count, ", more than an array of ", sizeof(T),
                  "-byte elements can hold (", kMaxElements<T>, ")");
  if (data == nullptr && count != 0) return reject(function, data_name, " is NULL but ", count_name, " is ", count);
  return GEMMA2_OK;
}

// An output buffer of the (buffer, capacity, &length) protocol: the length
// pointer is required, and a NULL buffer only asks for the size (capacity 0).
template <class T>
gemma2_status check_output(const char* function, const char* buffer_name, const T* buffer, size_t capacity,
                           const char* length_name, const size_t* length) {
  if (length == nullptr) return reject(function, length_name, " is NULL");
  if (capacity > kMaxElements<T>)
    return reject(function, "capacity is ", capacity, ", more than a buffer of ", sizeof(T),
                  "-byte elements can hold (", kMaxElements<T>, ")");
  if (buffer == nullptr && capacity != 0)
    return reject(function, buffer_name, " is NULL but capacity is ", capacity, " (0 asks for the size)");
  return GEMMA2_OK;
}

// lo <= value <= hi.
template <class V>
gemma2_status check_range(const char* function, const std::string& argument, V value, V lo, V hi,
                          const char* note = "") {
  if (value >= lo && value <= hi) return GEMMA2_OK;
  return reject(function, argument, " is ", value, ", outside [", lo, ", ", hi, "]", note);
}

// A boolean field of an options struct: 0 or 1, so that a struct not made
// by its _default() function (garbage in a field) is caught.
gemma2_status check_flag(const char* function, const char* argument, int value) {
  return check_range(function, argument, value, 0, 1);
}

// A token id of `whose` ("the model's", "the tokenizer's") vocabulary.
gemma2_status check_id(const char* function, const std::string& argument, int32_t id, int32_t vocab,
                       const char* whose) {
  if (id >= 0 && id < vocab) return GEMMA2_OK;
  return reject(function, argument, " is ", id, ", outside ", whose, " vocabulary [0, ", vocab, ")");
}

gemma2_status check_ids(const char* function, const char* argument, const int32_t* ids, size_t count, int32_t vocab,
                        const char* whose) {
  const int32_t* bad = std::find_if(ids, ids + count, [&](int32_t id) { return id < 0 || id >= vocab; });
  if (bad == ids + count) return GEMMA2_OK;
  return check_id(function, std::string(argument) + "[" + std::to_string(bad - ids) + "]", *bad, vocab, whose);
}

// A constraint's token budget (0: none).
gemma2_status check_budget(const char* function, int32_t max_tokens) {
  if (max_tokens >= 0) return GEMMA2_OK;
  return reject(function, "max_tokens is ", max_tokens, ", negative (0: no budget)");
}

// Stores n elements of `src` into `dst` when capacity allows; the length
// needed always goes to *length. Entry points check their buffer up front
// with check_output, under the argument names of their signature.
template <class T>
gemma2_status copy_out(const char* function, const T* src, size_t n, T* dst, size_t capacity, size_t* length) {
  if (gemma2_status s = check_output(function, "the output buffer", dst, capacity, "the length pointer", length);
      s != GEMMA2_OK)
    return s;
  *length = n;
  if (n > capacity) return GEMMA2_BUFFER_TOO_SMALL;
  if (n != 0) std::memcpy(dst, src, n * sizeof(T));
  return GEMMA2_OK;
}

#define GEMMA2_REQUIRE(p)                                               \
  do {                                                                  \
    if ((p) == nullptr) return null_handle(__func__, #p, GEMMA2_ERROR); \
  } while (0)

// Returns the status of a failed check.
#define GEMMA2_CHECK(check)                                                                   \
  do {                                                                                        \
    if (gemma2_status check_status = (check); check_status != GEMMA2_OK) return check_status; \
  } while (0)

}  // namespace

struct gemma2_model {
  std::unique_ptr<gemma2::ThreadPool> pool;
  Model model;
};

struct gemma2_tokenizer {
  gemma2::Tokenizer tokenizer;
  // The pieces' trie for grammars, built on first use.
  mutable std::once_flag trie_once;
  mutable std::shared_ptr<const gemma2::TokenTrie> trie;

  const std::shared_ptr<const gemma2::TokenTrie>& vocabulary() const {
    std::call_once(trie_once, [&] { trie = gemma2::TokenTrie::build(tokenizer); });
    return trie;
  }
};

namespace {
// A reply's options read when it starts (gemma2_generate_options' first part).
struct ReplySpec {
  int32_t max_tokens = 0, prefill_chunk = 512, lookup_ngram = 0, draft_max = gemma2::kMaxDraft;
  std::vector<std::string> stop_strings;
  const gemma2_model* draft_model = nullptr;
};

// The session's reply in progress (gemma2_session_generate*).
struct Reply {
  ReplySpec spec;
  const gemma2_tokenizer* tokenizer = nullptr;
  std::unique_ptr<gemma2::Drafter> drafter;
  std::optional<gemma2::Generation> generation;
  // A restored reply's state, until the next generate call names the
  // tokenizer its streaming decoder needs.
  std::vector<uint8_t> saved;

  bool active() const { return !saved.empty() || (generation && !generation->done()); }
};
}  // namespace

struct gemma2_session {
  const gemma2_model* owner;
  AnySession session;
  std::unique_ptr<Reply> reply;  // null: the next generate call starts one
  gemma2_stop_reason last_stop = GEMMA2_STOP_NONE;
  gemma2::ContextShift shift;  // gemma2_session_set_context_shift

  template <class F>
  decltype(auto) visit(F&& f) {
    return std::visit(std::forward<F>(f), session);
  }
  template <class F>
  decltype(auto) visit(F&& f) const {
    return std::visit(std::forward<F>(f), session);
  }

  // What a feed or rollback is checked against.
  struct Extent {
    size_t tokens, cached, capacity;  // cached <= tokens: the rest are pending
  };
  Extent extent() const {
    return visit([](const auto& s) {
      return Extent{s.tokens().size(), static_cast<size_t>(s.position()), static_cast<size_t>(s.cache().capacity())};
    });
  }
};

namespace {

// Tokens about to join a session (fed or appended): the array, the room
// left for them, the model's vocabulary.
gemma2_status check_new_tokens(const char* function, const gemma2_session& session, const int32_t* ids, size_t count) {
  GEMMA2_CHECK(check_input(function, "ids", ids, "count", count));
  const gemma2_session::Extent e = session.extent();
  if (count > e.capacity - std::min(e.capacity, e.tokens) && !session.shift.enabled)
    return reject(function, "count is ", count, ", more than the ", e.capacity - e.tokens,
                  " positions left in the session (capacity ", e.capacity, ", ", e.tokens, " tokens)");
  return check_ids(function, "ids", ids, count, session.owner->model.config().vocab_size, "the model's");
}

template <class S>
gemma2::Result<AnySession> create_as(const Model& model, int capacity) {
  auto s = S::create(model, capacity);
  if (!s) return gemma2::Error{s.message()};
  return AnySession(std::move(*s));
}

template <class S>
gemma2::Result<AnySession> restore_as(const Model& model, const uint8_t* data, size_t size) {
  auto s = S::restore(model, data, size);
  if (!s) return gemma2::Error{s.message()};
  return AnySession(std::move(*s));
}

template <size_t... I>
gemma2::Result<AnySession> create_any(size_t alternative, const Model& model, int capacity, std::index_sequence<I...>) {
  using Create = gemma2::Result<AnySession> (*)(const Model&, int);
  static constexpr Create create[] = {&create_as<std::variant_alternative_t<I, AnySession>>...};
  return create[alternative](model, capacity);
}

// The blob restores into the alternative whose cache wrote it; one with none
// goes to the first, whose restore names what is wrong.
template <size_t... I>
gemma2::Result<AnySession> restore_any(const Model& model, const uint8_t* data, size_t size,
                                       std::index_sequence<I...>) {
  using Restore = gemma2::Result<AnySession> (*)(const Model&, const uint8_t*, size_t);
  using Matches = bool (*)(const uint8_t*, size_t);
  static constexpr Restore restore[] = {&restore_as<std::variant_alternative_t<I, AnySession>>...};
  static constexpr Matches matches[] = {&std::variant_alternative_t<I, AnySession>::saved_with_this_cache...};
  for (size_t i = 0; i < sizeof...(I); ++i)
    if (matches[i](data, size)) return restore[i](model, data, size);
  return restore[0](model, data, size);
}

using Alternatives = std::make_index_sequence<std::variant_size_v<AnySession>>;

}  // namespace

struct gemma2_sampler {
  gemma2::Sampler sampler;
};

struct gemma2_stream {
  gemma2::StreamDecoder decoder;
  int32_t vocab;     // the tokenizer's, which ids pushed are checked against
  std::string text;  // what the last push/finish returned
};

namespace {

// The C reasons in StopReason's order.
constexpr gemma2_stop_reason kStopReasons[] = {GEMMA2_STOP_MAX_TOKENS, GEMMA2_STOP_TOKEN,      GEMMA2_STOP_STRING,
                                               GEMMA2_STOP_CALLBACK,   GEMMA2_STOP_CANCELLED,  GEMMA2_STOP_CONTEXT_FULL,
                                               GEMMA2_STOP_COMPLETE,   GEMMA2_STOP_CALL_LIMIT, GEMMA2_STOP_TIME_BUDGET};
static_assert(sizeof kStopReasons / sizeof kStopReasons[0] == static_cast<size_t>(gemma2::StopReason::TimeBudget) + 1);

// The reply's drafter, from its spec, drafting on `session`'s sequence.
gemma2_status make_drafter(const gemma2_session& session, Reply& reply) {
  reply.drafter.reset();
  if (reply.spec.lookup_ngram > 0)
    reply.drafter = std::make_unique<gemma2::PromptLookupDrafter>(reply.spec.lookup_ngram);
  if (const gemma2_model* draft = reply.spec.draft_model) {
    gemma2::ModelDrafter<Model>::Options o;
    o.capacity = static_cast<int>(session.extent().capacity);
    o.pool = draft->pool.get();
    auto d = gemma2::ModelDrafter<Model>::create(draft->model, o);
    if (!d) return fail("draft model: " + d.message());
    reply.drafter = std::make_unique<gemma2::ModelDrafter<Model>>(std::move(*d));
  }
  return GEMMA2_OK;
}

// A Generation for the reply's spec.
gemma2::Generation make_generation(const gemma2_session& session, const Reply& reply) {
  gemma2::GenerateOptions o;
  o.max_new_tokens = reply.spec.max_tokens > 0 ? reply.spec.max_tokens : std::numeric_limits<int>::max();
  o.prefill_chunk = reply.spec.prefill_chunk;
  o.stop_strings = reply.spec.stop_strings;
  if (reply.tokenizer != nullptr) o.stop_tokens = gemma2::default_stop_tokens(reply.tokenizer->tokenizer);
  o.pool = session.owner->pool.get();
  o.drafter = reply.drafter.get();
  o.draft_max = reply.spec.draft_max;
  return gemma2::Generation(std::move(o), reply.tokenizer ? &reply.tokenizer->tokenizer : nullptr);
}

// A session with a reply in progress saves as this container: the session's
// blob, the reply's spec and the Generation's blob.
constexpr char kReplyMagic[8] = {'G', 'E', 'M', 'M', 'A', '2', 'C', 'R'};
constexpr uint32_t kReplyVersion = 1;

std::vector<uint8_t> save_with_reply(std::vector<uint8_t> session_blob, const Reply& reply) {
  gemma2::detail::ByteWriter w;
  w.bytes(kReplyMagic, sizeof kReplyMagic);
  w.u32(kReplyVersion);
  w.string(session_blob.data(), session_blob.size());
  const ReplySpec& spec = reply.spec;
  for (int32_t v : {spec.max_tokens, spec.prefill_chunk, spec.lookup_ngram, spec.draft_max})
    w.u32(static_cast<uint32_t>(v));
  w.u32(static_cast<uint32_t>(spec.stop_strings.size()));
  for (const std::string& stop : spec.stop_strings) w.string(stop);
  const std::vector<uint8_t> state = reply.generation ? reply.generation->save() : reply.saved;
  w.string(state.data(), state.size());
  return std::move(w).checksummed();
}

// Splits a container into the session's blob and the reply (its Generation
// blob kept in `saved`); a plain session blob has no reply.
gemma2::Result<std::pair<std::vector<uint8_t>, std::unique_ptr<Reply>>> split_reply(const uint8_t* data, size_t size) {
  using gemma2::detail::err;
  if (size < sizeof kReplyMagic || std::memcmp(data, kReplyMagic, sizeof kReplyMagic) != 0)
    return std::make_pair(std::vector<uint8_t>(data, data + size), std::unique_ptr<Reply>());
  const std::string where = "session restore: ";
  if (size < sizeof kReplyMagic + 12) return err(where, "truncated");
  if (!gemma2::detail::checksum_matches(data, size)) return err(where, "checksum mismatch (corrupt data)");
  gemma2::detail::ByteReader r(data + sizeof kReplyMagic, size - sizeof kReplyMagic - 8);
  if (const uint32_t v = r.u32("version"); v != kReplyVersion)
    return err(where, "reply version ", v, " is not supported");
  std::vector<uint8_t> session_blob = r.byte_string("session");
  auto reply = std::make_unique<Reply>();
  ReplySpec& spec = reply->spec;
  for (int32_t* v : {&spec.max_tokens, &spec.prefill_chunk, &spec.lookup_ngram, &spec.draft_max})
    *v = static_cast<int32_t>(r.u32("reply option"));
  const uint32_t stops = r.u32("stop string count");
  if (!r.ok() || stops > r.left() / 8) return err(where, "truncated");
  for (uint32_t i = 0; i < stops; ++i) spec.stop_strings.push_back(r.string("stop string"));
  reply->saved = r.byte_string("reply");
  if (!r.ok() || r.left() != 0) return err(where, r.ok() ? "unexpected bytes after the reply" : "truncated");
  if (spec.max_tokens < 0 || spec.prefill_chunk < 1 || spec.lookup_ngram < 0 || spec.draft_max < 1 ||
      spec.draft_max > gemma2::kMaxDraft || reply->saved.empty())
    return err(where, "the saved reply's options are invalid");
  return std::make_pair(std::move(session_blob), std::move(reply));
}

}  // namespace

extern "C" {

const char* gemma2_last_error(void) { return last_error.c_str(); }

const char* gemma2_version(void) { return GEMMA2_VERSION_STRING; }

gemma2_load_options gemma2_load_options_default(void) {
  gemma2_load_options o;
  o.threads = 1;
  o.weight_type = nullptr;
  o.kernels = nullptr;
  o.copied = 0;
  o.max_memory = 0;
  o.check_finite = 0;
  o.prefill_precision = nullptr;
  return o;
}

gemma2_status gemma2_model_load(const char* path, const gemma2_load_options* options, gemma2_model** model) {
  GEMMA2_REQUIRE(path);
  GEMMA2_REQUIRE(model);
  *model = nullptr;
  const gemma2_load_options o = options ? *options : gemma2_load_options_default();
  GEMMA2_CHECK(check_range(__func__, "options->threads", o.threads, 1, gemma2::ThreadPool::kMaxThreads));
  GEMMA2_CHECK(check_flag(__func__, "options->copied", o.copied));
  GEMMA2_CHECK(check_flag(__func__, "options->check_finite", o.check_finite));
  return guarded(__func__, [&, function = __func__] {
    gemma2::LoadOptions lo;
    if (o.weight_type != nullptr) {
      lo.weight_type = gemma2::parse_weight_type(o.weight_type);
      if (!lo.weight_type) {
        std::string names;
        for (const auto& [name, type] : gemma2::kWeightTypeNames)
          names += (names.empty() ? "" : ", ") + std::string(name);
        return reject(function, "options->weight_type is \"", o.weight_type, "\", not one of ", names);
      }
    }
    if (o.kernels != nullptr) {
      auto set = gemma2::detail::kernel_set_named(o.kernels, std::string("options->kernels \"") + o.kernels + "\"");
      if (!set) return reject(function, set.message());
      lo.kernels = *set;
    }
    if (o.prefill_precision != nullptr) {
      const auto precision = gemma2::parse_prefill_precision(o.prefill_precision);
      if (!precision)
        return reject(function, "options->prefill_precision is \"", o.prefill_precision, "\", not one of exact, bf16");
      lo.prefill_precision = *precision;
    }
    lo.mapping = o.copied ? gemma2::Mapping::Copied : gemma2::Mapping::Mapped;
    lo.max_memory = o.max_memory;
    lo.check_finite = o.check_finite != 0;
    // Threads start only once the options are known to be valid.
    auto pool = gemma2::ThreadPool::create(o.threads);
    if (!pool) return reject(function, pool.message());
    lo.pool = &*pool;
    auto m = Model::load(path, lo);
    if (!m) return fail(m.message());
    *model = new gemma2_model{std::make_unique<gemma2::ThreadPool>(std::move(*pool)), std::move(*m)};
    return GEMMA2_OK;
  });
}

void gemma2_model_free(gemma2_model* model) { delete model; }

int32_t gemma2_model_vocab_size(const gemma2_model* model) {
  return model ? model->model.config().vocab_size : null_handle(__func__, "model", 0);
}

int32_t gemma2_model_context_length(const gemma2_model* model) {
  return model ? model->model.config().max_position_embeddings : null_handle(__func__, "model", 0);
}

const char* gemma2_model_kernels(const gemma2_model* model) {
  return model ? gemma2::kernel_set_name(model->model.kernel_set()) : null_handle(__func__, "model", "");
}

gemma2_status gemma2_tokenizer_load(const char* path, gemma2_tokenizer** tokenizer) {
  GEMMA2_REQUIRE(path);
  GEMMA2_REQUIRE(tokenizer);
  *tokenizer = nullptr;
  return guarded(__func__, [&] {
    // A directory or a .gguf file is a model's; anything else a tokenizer file.
    auto kind = gemma2::detail::path_kind(path);
    const bool dir = kind && *kind == gemma2::detail::FileKind::Directory;
    auto t = dir || gemma2::is_gguf_path(path) ? gemma2::load_model_tokenizer(path) : gemma2::Tokenizer::load(path);
    if (!t) return fail(t.message());
    *tokenizer = new gemma2_tokenizer{std::move(*t), {}, {}};
    return GEMMA2_OK;
  });
}

void gemma2_tokenizer_free(gemma2_tokenizer* tokenizer) { delete tokenizer; }

int32_t gemma2_tokenizer_bos_id(const gemma2_tokenizer* tokenizer) {
  return tokenizer ? tokenizer->tokenizer.bos_id() : null_handle(__func__, "tokenizer", -1);
}
int32_t gemma2_tokenizer_eos_id(const gemma2_tokenizer* tokenizer) {
  return tokenizer ? tokenizer->tokenizer.eos_id() : null_handle(__func__, "tokenizer", -1);
}
int32_t gemma2_tokenizer_end_of_turn_id(const gemma2_tokenizer* tokenizer) {
  return tokenizer ? tokenizer->tokenizer.end_of_turn_id() : null_handle(__func__, "tokenizer", -1);
}

gemma2_status gemma2_tokenize(const gemma2_tokenizer* tokenizer, const char* text, size_t length, int add_bos,
                              int32_t* ids, size_t capacity, size_t* count) {
  GEMMA2_REQUIRE(tokenizer);
  GEMMA2_CHECK(check_input(__func__, "text", text, "length", length));
  GEMMA2_CHECK(check_output(__func__, "ids", ids, capacity, "count", count));
  return guarded(__func__, [&, function = __func__] {
    const std::string_view s(text ? text : "", length);
    auto r = add_bos ? tokenizer->tokenizer.encode_prompt(s) : tokenizer->tokenizer.encode(s);
    if (!r) return fail(r.message());
    return copy_out(function, r->data(), r->size(), ids, capacity, count);
  });
}

gemma2_status gemma2_detokenize(const gemma2_tokenizer* tokenizer, const int32_t* ids, size_t count, char* text,
                                size_t capacity, size_t* length) {
  GEMMA2_REQUIRE(tokenizer);
  GEMMA2_CHECK(check_input(__func__, "ids", ids, "count", count));
  GEMMA2_CHECK(check_ids(__func__, "ids", ids, count, tokenizer->tokenizer.vocab_size(), "the tokenizer's"));
  GEMMA2_CHECK(check_output(__func__, "text", text, capacity, "length", length));
  return guarded(__func__, [&, function = __func__] {
    auto r = tokenizer->tokenizer.decode(std::vector<int32_t>(ids, ids + count));
    if (!r) return fail(r.message());
    return copy_out(function, r->data(), r->size(), text, capacity, length);
  });
}

gemma2_status gemma2_format_user_turn(const char* message, size_t length, char* text, size_t capacity,
                                      size_t* written) {
  GEMMA2_CHECK(check_input(__func__, "message", message, "length", length));
  GEMMA2_CHECK(check_output(__func__, "text", text, capacity, "written", written));
  return guarded(__func__, [&, function = __func__] {
    auto r = gemma2::format_chat({{gemma2::Role::User, std::string(message ? message : "", length)}});
    if (!r) return fail(r.message());
    return copy_out(function, r->data(), r->size(), text, capacity, written);
  });
}

gemma2_status gemma2_stream_new(const gemma2_tokenizer* tokenizer, gemma2_stream** stream) {
  GEMMA2_REQUIRE(tokenizer);
  GEMMA2_REQUIRE(stream);
  *stream = nullptr;
  return guarded(__func__, [&] {
    *stream = new gemma2_stream{gemma2::StreamDecoder(tokenizer->tokenizer), tokenizer->tokenizer.vocab_size(), {}};
    return GEMMA2_OK;
  });
}

void gemma2_stream_free(gemma2_stream* stream) { delete stream; }

gemma2_status gemma2_stream_push(gemma2_stream* stream, int32_t id, const char** text, size_t* length) {
  GEMMA2_REQUIRE(stream);
  GEMMA2_REQUIRE(text);
  GEMMA2_REQUIRE(length);
  GEMMA2_CHECK(check_id(__func__, "id", id, stream->vocab, "the tokenizer's"));
  return guarded(__func__, [&] {
    stream->text = stream->decoder.push(id);
    *text = stream->text.c_str();
    *length = stream->text.size();
    return GEMMA2_OK;
  });
}

gemma2_status gemma2_stream_finish(gemma2_stream* stream, const char** text, size_t* length) {
  GEMMA2_REQUIRE(stream);
  GEMMA2_REQUIRE(text);
  GEMMA2_REQUIRE(length);
  return guarded(__func__, [&] {
    stream->text = stream->decoder.finish();
    *text = stream->text.c_str();
    *length = stream->text.size();
    return GEMMA2_OK;
  });
}

gemma2_session_options gemma2_session_options_default(void) {
  gemma2_session_options o;
  o.capacity = 0;
  o.kv_storage = nullptr;
  o.sliding_window = 0;
  return o;
}

namespace {
// Both constructors, with errors under the caller's name: `capacity` is
// "capacity" for gemma2_session_new, "options->capacity" for _with.
gemma2_status new_session(const char* function, const char* capacity, const gemma2_model* model,
                          const gemma2_session_options& o, gemma2_session** session) {
  if (model == nullptr) return null_handle(function, "model", GEMMA2_ERROR);
  if (session == nullptr) return null_handle(function, "session", GEMMA2_ERROR);
  *session = nullptr;
  const int32_t context = model->model.config().max_position_embeddings;
  GEMMA2_CHECK(check_range(function, capacity, o.capacity, 0, context, " (0: the model's context)"));
  const std::string storage = o.kv_storage ? o.kv_storage : "f32";
  const auto named = std::find(std::begin(kStorageNames), std::end(kStorageNames), storage);
  if (named == std::end(kStorageNames))
    return reject(function, "options->kv_storage is \"", storage, "\", not one of f32, bf16, int8");
  GEMMA2_CHECK(check_flag(function, "options->sliding_window", o.sliding_window));
  const auto alternative = static_cast<size_t>(named - std::begin(kStorageNames)) + (o.sliding_window ? 3 : 0);
  return guarded(function, [&] {
    auto s = create_any(alternative, model->model, o.capacity, Alternatives{});
    if (!s) return reject(function, s.message());
    *session = new gemma2_session{model, std::move(*s), {}};
    return GEMMA2_OK;
  });
}
}  // namespace

gemma2_status gemma2_session_new_with(const gemma2_model* model, const gemma2_session_options* options,
                                      gemma2_session** session) {
  return new_session(__func__, "options->capacity", model, options ? *options : gemma2_session_options_default(),
                     session);
}

gemma2_status gemma2_session_new(const gemma2_model* model, int32_t capacity, gemma2_session** session) {
  gemma2_session_options o = gemma2_session_options_default();
  o.capacity = capacity;
  return new_session(__func__, "capacity", model, o, session);
}

void gemma2_session_free(gemma2_session* session) { delete session; }

gemma2_status gemma2_session_feed(gemma2_session* session, const int32_t* ids, size_t count, float* logits) {
  GEMMA2_REQUIRE(session);
  GEMMA2_CHECK(check_new_tokens(__func__, *session, ids, count));
  if (const gemma2_session::Extent e = session->extent(); count == 0 && e.tokens == e.cached)
    return reject(__func__, "count is 0 and no token is pending (a rollback or a generated token leaves one)");
  return guarded(__func__, [&] {
    auto r = session->visit([&](auto& s) {
      return s.feed(std::vector<int32_t>(ids, ids + count), gemma2::ForwardOptions(session->owner->pool.get()));
    });
    if (!r) return fail(r.message());
    session->reply.reset();  // new input: the next generate call starts a reply
    if (logits != nullptr) std::memcpy(logits, r->data(), static_cast<size_t>(r->cols()) * sizeof(float));
    return GEMMA2_OK;
  });
}

gemma2_status gemma2_session_fork(const gemma2_session* session, gemma2_session** copy) {
  GEMMA2_REQUIRE(session);
  GEMMA2_REQUIRE(copy);
  *copy = nullptr;
  return guarded(__func__, [&] {
    auto fork = std::make_unique<gemma2_session>(
        gemma2_session{session->owner, session->visit([](const auto& s) { return AnySession(s.fork()); }), nullptr,
                       session->last_stop, session->shift});
    if (session->reply && session->reply->active()) {
      const Reply& from = *session->reply;
      auto& to = *(fork->reply = std::make_unique<Reply>());
      to.spec = from.spec;
      to.tokenizer = from.tokenizer;
      to.saved = from.saved;
      if (from.generation) {
        to.generation = from.generation;  // the reply's state, with a drafter of its own
        if (gemma2_status s = make_drafter(*fork, to); s != GEMMA2_OK) return s;
        to.generation->options().drafter = to.drafter.get();
      }
    }
    *copy = fork.release();
    return GEMMA2_OK;
  });
}

gemma2_status gemma2_session_rollback(gemma2_session* session, size_t count) {
  GEMMA2_REQUIRE(session);
  const size_t length = session->extent().tokens;
  GEMMA2_CHECK(check_range(__func__, "count", count, size_t{0}, length, " (the session's length)"));
  return guarded(__func__, [&] {
    if (count == length) return GEMMA2_OK;
    const gemma2::ForwardOptions options(session->owner->pool.get());
    if (gemma2::Status s = session->visit([&](auto& x) { return x.rollback(count, options); }); !s)
      return fail(s.message());
    session->reply.reset();
    return GEMMA2_OK;
  });
}

gemma2_status gemma2_session_shift(gemma2_session* session, int32_t keep, int32_t drop) {
  GEMMA2_REQUIRE(session);
  const size_t cached = session->extent().cached;
  GEMMA2_CHECK(check_range(__func__, "keep", keep, 0, static_cast<int32_t>(cached), " (the positions run)"));
  GEMMA2_CHECK(check_range(__func__, "drop", drop, 0, static_cast<int32_t>(cached) - keep,
                           " (the positions run after the kept ones)"));
  return guarded(__func__, [&] {
    const gemma2::ForwardOptions options(session->owner->pool.get());
    if (gemma2::Status s = session->visit([&](auto& x) { return x.shift(keep, drop, options); }); !s)
      return fail(s.message());
    return GEMMA2_OK;
  });
}

gemma2_status gemma2_session_set_context_shift(gemma2_session* session, int enabled, int32_t keep, int32_t drop) {
  GEMMA2_REQUIRE(session);
  const int32_t capacity = static_cast<int32_t>(session->extent().capacity);
  GEMMA2_CHECK(check_flag(__func__, "enabled", enabled));
  GEMMA2_CHECK(check_range(__func__, "keep", keep, 0, capacity - 1, " (below the session's capacity)"));
  GEMMA2_CHECK(check_range(__func__, "drop", drop, 0, capacity));
  session->shift = {enabled != 0, keep, drop};
  return GEMMA2_OK;
}

size_t gemma2_session_length(const gemma2_session* session) {
  return session ? session->extent().tokens : null_handle(__func__, "session", size_t{0});
}

gemma2_status gemma2_session_tokens(const gemma2_session* session, int32_t* ids, size_t capacity, size_t* count) {
  GEMMA2_REQUIRE(session);
  GEMMA2_CHECK(check_output(__func__, "ids", ids, capacity, "count", count));
  return session->visit([&, function = __func__](const auto& s) {
    return copy_out(function, s.tokens().data(), s.tokens().size(), ids, capacity, count);
  });
}

gemma2_status gemma2_session_save(const gemma2_session* session, uint8_t* data, size_t capacity, size_t* size) {
  GEMMA2_REQUIRE(session);
  GEMMA2_CHECK(check_output(__func__, "data", data, capacity, "size", size));
  return guarded(__func__, [&, function = __func__] {
    std::vector<uint8_t> blob = session->visit([](const auto& s) { return s.save(); });
    if (session->reply && session->reply->active()) blob = save_with_reply(std::move(blob), *session->reply);
    return copy_out(function, blob.data(), blob.size(), data, capacity, size);
  });
}

gemma2_status gemma2_session_restore(const gemma2_model* model, const uint8_t* data, size_t size,
                                     gemma2_session** session) {
  GEMMA2_REQUIRE(model);
  GEMMA2_REQUIRE(session);
  GEMMA2_CHECK(check_input(__func__, "data", data, "size", size));
  *session = nullptr;
  return guarded(__func__, [&] {
    auto parts = split_reply(data, size);
    if (!parts) return fail(parts.message());
    const std::vector<uint8_t>& blob = parts->first;
    auto s = restore_any(model->model, blob.data(), blob.size(), Alternatives{});
    if (!s) return fail(s.message());
    *session = new gemma2_session{model, std::move(*s), std::move(parts->second), GEMMA2_STOP_NONE};
    return GEMMA2_OK;
  });
}

gemma2_sampling_params gemma2_sampling_params_default(void) {
  const gemma2::SamplingParams d;
  gemma2_sampling_params p;
  p.greedy = d.greedy;
  p.temperature = d.temperature;
  p.top_k = d.top_k;
  p.top_p = d.top_p;
  p.min_p = d.min_p;
  p.repetition_penalty = d.repetition_penalty;
  p.frequency_penalty = d.frequency_penalty;
  p.presence_penalty = d.presence_penalty;
  p.penalty_last_n = d.penalty_last_n;
  p.seed = d.seed;
  return p;
}

gemma2_status gemma2_sampler_new(const gemma2_sampling_params* params, gemma2_sampler** sampler) {
  GEMMA2_REQUIRE(params);
  GEMMA2_REQUIRE(sampler);
  *sampler = nullptr;
  GEMMA2_CHECK(check_flag(__func__, "params->greedy", params->greedy));
  return guarded(__func__, [&, function = __func__] {
    gemma2::SamplingParams p;
    p.greedy = params->greedy != 0;
    p.temperature = params->temperature;
    p.top_k = params->top_k;
    p.top_p = params->top_p;
    p.min_p = params->min_p;
    p.repetition_penalty = params->repetition_penalty;
    p.frequency_penalty = params->frequency_penalty;
    p.presence_penalty = params->presence_penalty;
    p.penalty_last_n = params->penalty_last_n;
    p.seed = params->seed;
    if (gemma2::Status s = gemma2::validate(p); !s) return reject(function, "params: ", s.message());
    *sampler = new gemma2_sampler{gemma2::Sampler(p)};
    return GEMMA2_OK;
  });
}

void gemma2_sampler_free(gemma2_sampler* sampler) { delete sampler; }

namespace {
// Constrains a sampler to a grammar, once it has parsed.
gemma2_status set_constraint(gemma2_sampler* sampler, const gemma2_tokenizer* tokenizer,
                             const gemma2::Result<gemma2::Grammar>& grammar, int32_t max_tokens) {
  if (!grammar) return fail(grammar.message());
  auto c = gemma2::GrammarConstraint::create(*grammar, tokenizer->vocabulary());
  if (!c) return fail(c.message());
  if (max_tokens > 0)
    if (gemma2::Status s = c->set_budget(max_tokens); !s) return fail(s.message());
  sampler->sampler.constrain(std::move(*c));
  return GEMMA2_OK;
}
}  // namespace

gemma2_status gemma2_sampler_set_grammar(gemma2_sampler* sampler, const gemma2_tokenizer* tokenizer, const char* gbnf,
                                         int32_t max_tokens) {
  GEMMA2_REQUIRE(sampler);
  GEMMA2_REQUIRE(tokenizer);
  GEMMA2_CHECK(check_budget(__func__, max_tokens));
  return guarded(__func__, [&] {
    if (gbnf == nullptr) {
      sampler->sampler.unconstrain();
      return GEMMA2_OK;
    }
    return set_constraint(sampler, tokenizer, gemma2::Grammar::parse(gbnf), max_tokens);
  });
}

namespace {
// gemma2_sampler_set_json_schema(_with), errors named after `function`.
gemma2_status set_json_schema(const char* function, gemma2_sampler* sampler, const gemma2_tokenizer* tokenizer,
                              const char* schema, const gemma2_json_options* options, int32_t max_tokens) {
  if (sampler == nullptr) return null_handle(function, "sampler", GEMMA2_ERROR);
  if (tokenizer == nullptr) return null_handle(function, "tokenizer", GEMMA2_ERROR);
  GEMMA2_CHECK(check_budget(function, max_tokens));
  const gemma2_json_options opts = options ? *options : gemma2_json_options_default();
  GEMMA2_CHECK(check_range(function, "options->whitespace", opts.whitespace, int{GEMMA2_JSON_COMPACT},
                           int{GEMMA2_JSON_FREE}, " (0 compact, 1 spaces, 2 free)"));
  gemma2::JsonGrammarOptions o;
  o.whitespace = opts.whitespace == GEMMA2_JSON_FREE     ? gemma2::JsonWhitespace::Free
                 : opts.whitespace == GEMMA2_JSON_SPACES ? gemma2::JsonWhitespace::Spaces
                                                         : gemma2::JsonWhitespace::Compact;
  return guarded(function, [&] {
    if (schema == nullptr) {
      sampler->sampler.unconstrain();
      return GEMMA2_OK;
    }
    return set_constraint(sampler, tokenizer, gemma2::json_schema_grammar(schema, o), max_tokens);
  });
}
}  // namespace

gemma2_status gemma2_sampler_set_json_schema(gemma2_sampler* sampler, const gemma2_tokenizer* tokenizer,
                                             const char* schema, int32_t max_tokens) {
  return set_json_schema(__func__, sampler, tokenizer, schema, nullptr, max_tokens);
}

gemma2_json_options gemma2_json_options_default(void) {
  gemma2_json_options o;
  o.whitespace = GEMMA2_JSON_COMPACT;
  return o;
}

gemma2_status gemma2_sampler_set_json_schema_with(gemma2_sampler* sampler, const gemma2_tokenizer* tokenizer,
                                                  const char* schema, const gemma2_json_options* options,
                                                  int32_t max_tokens) {
  return set_json_schema(__func__, sampler, tokenizer, schema, options, max_tokens);
}

int gemma2_sampler_finished(const gemma2_sampler* sampler) {
  return sampler ? sampler->sampler.finished() : null_handle(__func__, "sampler", 0);
}

gemma2_status gemma2_session_sample(gemma2_session* session, gemma2_sampler* sampler, int32_t* token) {
  GEMMA2_REQUIRE(session);
  GEMMA2_REQUIRE(sampler);
  GEMMA2_REQUIRE(token);
  return guarded(__func__, [&] {
    return session->visit([&](const auto& s) {
      const std::vector<float>* logits = s.next_logits();
      if (logits == nullptr)
        return fail(s.tokens().size() > static_cast<size_t>(s.position())
                        ? "gemma2_session_sample: tokens are pending (feed them first, or generate)"
                        : "gemma2_session_sample: no logits yet (feed the session first)");
      std::vector<float> row = *logits;
      *token = sampler->sampler(row, s.tokens());
      if (*token < 0) return fail("gemma2_session_sample: " + sampler->sampler.error());
      return GEMMA2_OK;
    });
  });
}

gemma2_generate_options gemma2_generate_options_default(void) {
  const ReplySpec d;
  gemma2_generate_options o;
  o.max_tokens = d.max_tokens;
  o.prefill_chunk = d.prefill_chunk;
  o.stop_strings = nullptr;
  o.stop_string_count = 0;
  o.lookup_ngram = d.lookup_ngram;
  o.draft_model = nullptr;
  o.draft_max = d.draft_max;
  o.call_max_tokens = 0;
  o.time_budget_ms = 0;
  return o;
}

gemma2_status gemma2_session_append(gemma2_session* session, const int32_t* ids, size_t count) {
  GEMMA2_REQUIRE(session);
  GEMMA2_CHECK(check_new_tokens(__func__, *session, ids, count));
  return guarded(__func__, [&] {
    session->visit([&](auto& s) { s.tokens().insert(s.tokens().end(), ids, ids + count); });
    session->reply.reset();
    return GEMMA2_OK;
  });
}

gemma2_status gemma2_session_generate_with(gemma2_session* session, gemma2_sampler* sampler,
                                           const gemma2_tokenizer* tokenizer, const gemma2_generate_options* options,
                                           gemma2_token_callback callback, void* user, gemma2_generate_result* result) {
  GEMMA2_REQUIRE(session);
  GEMMA2_REQUIRE(sampler);
  const char* f = __func__;
  if (result != nullptr) *result = gemma2_generate_result{0, GEMMA2_STOP_NONE, 0};
  const gemma2_generate_options o = options ? *options : gemma2_generate_options_default();
  GEMMA2_CHECK(check_range(f, "options->max_tokens", o.max_tokens, 0, std::numeric_limits<int32_t>::max()));
  GEMMA2_CHECK(check_range(f, "options->prefill_chunk", o.prefill_chunk, 1, std::numeric_limits<int32_t>::max()));
  GEMMA2_CHECK(check_range(f, "options->lookup_ngram", o.lookup_ngram, 0, 16));
  GEMMA2_CHECK(check_range(f, "options->draft_max", o.draft_max, 1, gemma2::kMaxDraft));
  GEMMA2_CHECK(check_range(f, "options->call_max_tokens", o.call_max_tokens, 0, std::numeric_limits<int32_t>::max()));
  if (!(o.time_budget_ms >= 0) || std::isinf(o.time_budget_ms))
    return reject(f, "options->time_budget_ms is ", o.time_budget_ms, ", not a finite number >= 0 (0: no budget)");
  GEMMA2_CHECK(
      check_input(f, "options->stop_strings", o.stop_strings, "options->stop_string_count", o.stop_string_count));
  for (size_t i = 0; i < o.stop_string_count; ++i)
    if (o.stop_strings[i] == nullptr) return reject(f, "options->stop_strings[", i, "] is NULL");
  if (o.lookup_ngram > 0 && o.draft_model != nullptr)
    return reject(f, "options->lookup_ngram and options->draft_model are both set (one drafter per reply)");
  if (o.draft_model != nullptr && o.draft_model->model.config().vocab_size != session->owner->model.config().vocab_size)
    return reject(f, "options->draft_model has a vocabulary of ", o.draft_model->model.config().vocab_size,
                  " tokens, the session's model ", session->owner->model.config().vocab_size);
  return guarded(f, [&] {
    if (!session->reply || !session->reply->active()) {
      auto reply = std::make_unique<Reply>();
      reply->spec = ReplySpec{o.max_tokens,
                              o.prefill_chunk,
                              o.lookup_ngram,
                              o.draft_max,
                              std::vector<std::string>(o.stop_strings, o.stop_strings + o.stop_string_count),
                              o.draft_model};
      reply->tokenizer = tokenizer;
      if (gemma2_status s = make_drafter(*session, *reply); s != GEMMA2_OK) return s;
      reply->generation.emplace(make_generation(*session, *reply));
      session->reply = std::move(reply);
    } else if (!session->reply->generation) {  // restored: its tokenizer is this call's
      Reply& reply = *session->reply;
      reply.tokenizer = tokenizer;
      if (gemma2_status s = make_drafter(*session, reply); s != GEMMA2_OK) return s;
      gemma2::Generation g = make_generation(*session, reply);
      if (gemma2::Status s = g.restore(reply.saved); !s) return fail(std::string(f) + ": " + s.message());
      reply.generation.emplace(std::move(g));
      reply.saved.clear();
    } else if (session->reply->tokenizer != tokenizer) {
      return reject(f, "tokenizer is not the one the reply began with");
    }
    gemma2::Generation& g = *session->reply->generation;
    g.options().call_max_tokens = o.call_max_tokens;
    g.options().time_budget_ms = o.time_budget_ms;
    g.options().context_shift = session->shift;
    std::string text;
    auto on_token = [&](int32_t id, std::string_view piece) {
      text.assign(piece);
      return callback == nullptr || callback(user, id, text.c_str(), text.size()) == 0;
    };
    auto r = session->visit([&](auto& s) { return g.run(s, {}, sampler->sampler, on_token); });
    if (!r) {
      // The library names its loop "generate"; the host called this function.
      const std::string m = r.message();
      return fail(std::string(f) + ": " + (m.rfind("generate: ", 0) == 0 ? m.substr(10) : m));
    }
    session->last_stop = kStopReasons[static_cast<size_t>(r->stop)];
    if (result != nullptr) *result = gemma2_generate_result{r->tokens.size(), session->last_stop, g.done() ? 1 : 0};
    return r->stop == gemma2::StopReason::Callback ? GEMMA2_CANCELLED : GEMMA2_OK;
  });
}

gemma2_status gemma2_session_generate(gemma2_session* session, gemma2_sampler* sampler,
                                      const gemma2_tokenizer* tokenizer, int32_t max_new,
                                      gemma2_token_callback callback, void* user, size_t* generated) {
  if (generated != nullptr) *generated = 0;
  GEMMA2_REQUIRE(session);
  GEMMA2_REQUIRE(sampler);
  GEMMA2_CHECK(check_range(__func__, "max_new", max_new, 0, std::numeric_limits<int32_t>::max()));
  if (max_new == 0) return GEMMA2_OK;
  gemma2_generate_options o = gemma2_generate_options_default();
  o.call_max_tokens = max_new;
  gemma2_generate_result r;
  const gemma2_status s = gemma2_session_generate_with(session, sampler, tokenizer, &o, callback, user, &r);
  if (generated != nullptr) *generated = r.generated;
  return s;
}

gemma2_stop_reason gemma2_session_stop_reason(const gemma2_session* session) {
  return session ? session->last_stop : null_handle(__func__, "session", GEMMA2_STOP_NONE);
}

}  // extern "C"
