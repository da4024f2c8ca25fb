/* The C ABI from C: every entry point, its error paths and its buffer
 * protocol, on the demo model (argv[1]). Exits non-zero on the first
 * failed check. */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int error_mentions(const char* text) { return strstr(gemma2_last_error(), text) != NULL; }

/* Generation callback state. */
typedef struct {
  int32_t ids[256];
  size_t count;
  char text[4096];
  size_t length;
  size_t stop_after; /* return 1 after this many tokens (0: never) */
} Collected;

static int collect(void* user, int32_t token, const char* text, size_t length) {
  Collected* c = (Collected*)user;
  if (token >= 0 && c->count < 256) c->ids[c->count++] = token;
  if (c->length + length < sizeof c->text) {
    memcpy(c->text + c->length, text, length);
    c->length += length;
  }
  return c->stop_after != 0 && c->count >= c->stop_after;
}

/* Spaces, tabs and line breaks in JSON text outside its strings. */
static size_t json_spaces(const char* text) {
  size_t n = 0;
  int in_string = 0;
  for (; *text; ++text) {
    if (in_string && *text == '\\' && text[1]) ++text;
    else if (*text == '"') in_string = !in_string;
    else if (!in_string && strchr(" \t\r\n", *text)) ++n;
  }
  return n;
}

static int same_floats(const float* a, const float* b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

/* Equal up to float rounding (the same positions computed in another
 * grouping: a step of two tokens instead of two steps of one). */
static int close_floats(const float* a, const float* b, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    const float d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
    if (d > 1e-3f) return 0;
  }
  return 1;
}

static int32_t argmax(const float* a, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i)
    if (a[i] > a[best]) best = i;
  return best;
}

static float max_difference(const float* a, const float* b, int32_t n) {
  float worst = 0.0f;
  for (int32_t i = 0; i < n; ++i) {
    const float d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
    if (d > worst) worst = d;
  }
  return worst;
}

/* ---- Argument checks ------------------------------------------------------
 * Every rejected call returns GEMMA2_ERROR (or, for a call returning a
 * value, the value its header gives for NULL) and a last error that starts
 * with the function's name and holds `mention` (the argument and what is
 * allowed); what it was called on is unchanged. */

static int named_error(int ok, const char* function, size_t name_length, const char* mention, const char* what,
                       int line) {
  const char* error = gemma2_last_error();
  ok = ok && strncmp(error, function, name_length) == 0 && error[name_length] == ':' && strstr(error, mention) != NULL;
  if (!ok) {
    fprintf(stderr, "%s:%d: %s: expected a rejection naming \"%.*s\" and \"%s\"; last error: %s\n", __FILE__, line,
            what, (int)name_length, function, mention, error);
    ++failures;
  }
  return ok;
}
/* `cond` starts with the call, whose name the error must start with. */
#define REJECTED(cond, mention) named_error((cond) != 0, #cond, strcspn(#cond, "("), mention, #cond, __LINE__)
/* For the tables below, which name the function in a row. */
#define ROW_REJECTED(cond, function, mention) \
  named_error((cond) != 0, function, strlen(function), mention, #cond, __LINE__)

typedef struct {
  const char* dir;
  gemma2_model* model;
  gemma2_tokenizer* tok;
  gemma2_session* session; /* fed with a prompt, capacity 64 */
} Fixture;

/* Input arrays (pointer, count), one call per row. */
typedef gemma2_status (*InputCall)(const Fixture* f, const void* data, size_t count);
static gemma2_status tokenize_input(const Fixture* f, const void* data, size_t count) {
  size_t n;
  return gemma2_tokenize(f->tok, (const char*)data, count, 0, NULL, 0, &n);
}
static gemma2_status detokenize_input(const Fixture* f, const void* data, size_t count) {
  size_t n;
  return gemma2_detokenize(f->tok, (const int32_t*)data, count, NULL, 0, &n);
}
static gemma2_status format_input(const Fixture* f, const void* data, size_t count) {
  size_t n;
  (void)f;
  return gemma2_format_user_turn((const char*)data, count, NULL, 0, &n);
}
static gemma2_status feed_input(const Fixture* f, const void* data, size_t count) {
  return gemma2_session_feed(f->session, (const int32_t*)data, count, NULL);
}
static gemma2_status append_input(const Fixture* f, const void* data, size_t count) {
  return gemma2_session_append(f->session, (const int32_t*)data, count);
}

/* Output buffers (buffer, capacity, &length), one call per row. */
typedef gemma2_status (*OutputCall)(const Fixture* f, void* buffer, size_t capacity, size_t* length);
static gemma2_status tokenize_output(const Fixture* f, void* buffer, size_t capacity, size_t* length) {
  return gemma2_tokenize(f->tok, "to be", 5, 1, (int32_t*)buffer, capacity, length);
}
static gemma2_status detokenize_output(const Fixture* f, void* buffer, size_t capacity, size_t* length) {
  const int32_t some[2] = {100, 200};
  return gemma2_detokenize(f->tok, some, 2, (char*)buffer, capacity, length);
}
static gemma2_status format_output(const Fixture* f, void* buffer, size_t capacity, size_t* length) {
  (void)f;
  return gemma2_format_user_turn("hi", 2, (char*)buffer, capacity, length);
}
static gemma2_status tokens_output(const Fixture* f, void* buffer, size_t capacity, size_t* length) {
  return gemma2_session_tokens(f->session, (int32_t*)buffer, capacity, length);
}
static gemma2_status save_output(const Fixture* f, void* buffer, size_t capacity, size_t* length) {
  return gemma2_session_save(f->session, (uint8_t*)buffer, capacity, length);
}

/* A function's array argument: its names (data and count, or buffer and
 * length), its element size, and a call with it (one of the two). */
typedef struct {
  const char* function;
  const char* pointer;
  const char* size;
  size_t element;
  InputCall input;
  OutputCall output;
} ArrayRow;

/* One element more than an array may hold: its bytes would pass PTRDIFF_MAX. */
static size_t past_max(const ArrayRow* row) { return (size_t)PTRDIFF_MAX / row->element + 1; }

static void check_arguments(const Fixture* f) {
  gemma2_model* model = f->model;
  gemma2_tokenizer* tok = f->tok;
  gemma2_session* s = f->session;
  const int32_t vocab = gemma2_model_vocab_size(model);
  const int32_t context = gemma2_model_context_length(model);
  char want[256];

  /* What every rejection below must leave as it was. */
  const size_t length = gemma2_session_length(s);
  int32_t tokens[64], tokens_after[64];
  size_t n_tokens = 0, n_after = 0;
  REQUIRE(gemma2_session_tokens(s, tokens, 64, &n_tokens) == GEMMA2_OK);
  gemma2_sampling_params greedy_params = gemma2_sampling_params_default();
  greedy_params.greedy = 1;
  gemma2_sampler* greedy = NULL;
  REQUIRE(gemma2_sampler_new(&greedy_params, &greedy) == GEMMA2_OK);
  int32_t next = -1, next_after = -1;
  REQUIRE(gemma2_session_sample(s, greedy, &next) == GEMMA2_OK);

  /* NULL handles and output pointers, for every call. */
  gemma2_model* no_model = NULL; /* none of these may be made */
  gemma2_tokenizer* no_tok = NULL;
  gemma2_session* no_session = NULL;
  gemma2_sampler* no_sampler = NULL;
  gemma2_stream* stream = NULL;
  REQUIRE(gemma2_stream_new(tok, &stream) == GEMMA2_OK);
  const char* piece = NULL;
  size_t piece_len = 0, len = 0, count = 0;
  int32_t id = 0;
  const int32_t one = 100;
  char text[256];
  uint8_t blob[8];
  const gemma2_sampling_params params = gemma2_sampling_params_default();
  REJECTED(gemma2_model_load(NULL, NULL, &no_model) == GEMMA2_ERROR, "path is NULL");
  REJECTED(gemma2_model_load(f->dir, NULL, NULL) == GEMMA2_ERROR, "model is NULL");
  REJECTED(gemma2_model_vocab_size(NULL) == 0, "model is NULL");
  REJECTED(gemma2_model_context_length(NULL) == 0, "model is NULL");
  REJECTED(gemma2_model_kernels(NULL)[0] == '\0', "model is NULL");
  REJECTED(gemma2_tokenizer_load(NULL, &no_tok) == GEMMA2_ERROR && no_tok == NULL, "path is NULL");
  REJECTED(gemma2_tokenizer_load(f->dir, NULL) == GEMMA2_ERROR, "tokenizer is NULL");
  REJECTED(gemma2_tokenizer_bos_id(NULL) == -1, "tokenizer is NULL");
  REJECTED(gemma2_tokenizer_eos_id(NULL) == -1, "tokenizer is NULL");
  REJECTED(gemma2_tokenizer_end_of_turn_id(NULL) == -1, "tokenizer is NULL");
  REJECTED(gemma2_tokenize(NULL, "a", 1, 0, NULL, 0, &count) == GEMMA2_ERROR, "tokenizer is NULL");
  REJECTED(gemma2_detokenize(NULL, &one, 1, NULL, 0, &len) == GEMMA2_ERROR, "tokenizer is NULL");
  REJECTED(gemma2_stream_new(NULL, &stream) == GEMMA2_ERROR, "tokenizer is NULL");
  REJECTED(gemma2_stream_new(tok, NULL) == GEMMA2_ERROR, "stream is NULL");
  REJECTED(gemma2_stream_push(NULL, one, &piece, &piece_len) == GEMMA2_ERROR, "stream is NULL");
  REJECTED(gemma2_stream_push(stream, one, NULL, &piece_len) == GEMMA2_ERROR, "text is NULL");
  REJECTED(gemma2_stream_push(stream, one, &piece, NULL) == GEMMA2_ERROR, "length is NULL");
  REJECTED(gemma2_stream_finish(NULL, &piece, &piece_len) == GEMMA2_ERROR, "stream is NULL");
  REJECTED(gemma2_stream_finish(stream, NULL, &piece_len) == GEMMA2_ERROR, "text is NULL");
  REJECTED(gemma2_stream_finish(stream, &piece, NULL) == GEMMA2_ERROR, "length is NULL");
  REJECTED(gemma2_session_new(NULL, 0, &no_session) == GEMMA2_ERROR && no_session == NULL, "model is NULL");
  REJECTED(gemma2_session_new(model, 0, NULL) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_new_with(NULL, NULL, &no_session) == GEMMA2_ERROR, "model is NULL");
  REJECTED(gemma2_session_new_with(model, NULL, NULL) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_feed(NULL, &one, 1, NULL) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_append(NULL, &one, 1) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_fork(NULL, &no_session) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_fork(s, NULL) == GEMMA2_ERROR, "copy is NULL");
  REJECTED(gemma2_session_rollback(NULL, 0) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_length(NULL) == 0, "session is NULL");
  REJECTED(gemma2_session_tokens(NULL, NULL, 0, &count) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_save(NULL, NULL, 0, &len) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_restore(NULL, blob, sizeof blob, &no_session) == GEMMA2_ERROR, "model is NULL");
  REJECTED(gemma2_session_restore(model, blob, sizeof blob, NULL) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_restore(model, NULL, 8, &no_session) == GEMMA2_ERROR, "data is NULL");
  REJECTED(gemma2_sampler_new(NULL, &no_sampler) == GEMMA2_ERROR, "params is NULL");
  REJECTED(gemma2_sampler_new(&params, NULL) == GEMMA2_ERROR, "sampler is NULL");
  REJECTED(gemma2_session_sample(NULL, greedy, &id) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_sample(s, NULL, &id) == GEMMA2_ERROR, "sampler is NULL");
  REJECTED(gemma2_session_sample(s, greedy, NULL) == GEMMA2_ERROR, "token is NULL");
  REJECTED(gemma2_sampler_set_grammar(NULL, tok, "root ::= \"a\"", 0) == GEMMA2_ERROR, "sampler is NULL");
  REJECTED(gemma2_sampler_set_grammar(greedy, NULL, "root ::= \"a\"", 0) == GEMMA2_ERROR, "tokenizer is NULL");
  REJECTED(gemma2_sampler_set_json_schema(NULL, tok, "{}", 0) == GEMMA2_ERROR, "sampler is NULL");
  REJECTED(gemma2_sampler_set_json_schema(greedy, NULL, "{}", 0) == GEMMA2_ERROR, "tokenizer is NULL");
  REJECTED(gemma2_sampler_finished(NULL) == 0, "sampler is NULL");
  REJECTED(gemma2_session_generate(NULL, greedy, tok, 1, NULL, NULL, NULL) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_generate(s, NULL, tok, 1, NULL, NULL, NULL) == GEMMA2_ERROR, "sampler is NULL");
  REJECTED(gemma2_session_generate_with(NULL, greedy, tok, NULL, NULL, NULL, NULL) == GEMMA2_ERROR, "session is NULL");
  REJECTED(gemma2_session_generate_with(s, NULL, tok, NULL, NULL, NULL, NULL) == GEMMA2_ERROR, "sampler is NULL");
  REJECTED(gemma2_session_stop_reason(NULL) == GEMMA2_STOP_NONE, "session is NULL");
  CHECK(no_model == NULL && no_tok == NULL && no_session == NULL && no_sampler == NULL);
  gemma2_tokenizer_free(NULL);
  gemma2_session_free(NULL);
  gemma2_sampler_free(NULL);
  gemma2_stream_free(NULL);

  /* Input arrays: NULL with a count, and a count past what memory can hold.
   * Output buffers: the length pointer NULL, a NULL buffer with a capacity,
   * a capacity past what memory can hold; *length is then untouched, and
   * the size query still works. */
  static const ArrayRow arrays[] = {
      {"gemma2_tokenize", "text", "length", 1, tokenize_input, NULL},
      {"gemma2_detokenize", "ids", "count", 4, detokenize_input, NULL},
      {"gemma2_format_user_turn", "message", "length", 1, format_input, NULL},
      {"gemma2_session_feed", "ids", "count", 4, feed_input, NULL},
      {"gemma2_session_append", "ids", "count", 4, append_input, NULL},
      {"gemma2_tokenize", "ids", "count", 4, NULL, tokenize_output},
      {"gemma2_detokenize", "text", "length", 1, NULL, detokenize_output},
      {"gemma2_format_user_turn", "text", "written", 1, NULL, format_output},
      {"gemma2_session_tokens", "ids", "count", 4, NULL, tokens_output},
      {"gemma2_session_save", "data", "size", 1, NULL, save_output},
  };
  const int32_t words[4] = {100, 101, 102, 103}; /* for the char and the int32_t rows alike */
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; ++i) {
    const ArrayRow* row = &arrays[i];
    if (row->input != NULL) {
      snprintf(want, sizeof want, "%s is NULL but %s is 3", row->pointer, row->size);
      ROW_REJECTED(row->input(f, NULL, 3) == GEMMA2_ERROR, row->function, want);
      snprintf(want, sizeof want, "%s is %zu, more than an array of %zu-byte elements can hold", row->size,
               past_max(row), row->element);
      ROW_REJECTED(row->input(f, words, past_max(row)) == GEMMA2_ERROR, row->function, want);
      ROW_REJECTED(row->input(f, words, SIZE_MAX) == GEMMA2_ERROR, row->function, "more than an array");
      continue;
    }
    int32_t buffer[16];
    size_t got = 12345;
    snprintf(want, sizeof want, "%s is NULL", row->size);
    ROW_REJECTED(row->output(f, buffer, sizeof buffer / row->element, NULL) == GEMMA2_ERROR, row->function, want);
    snprintf(want, sizeof want, "%s is NULL but capacity is 4", row->pointer);
    ROW_REJECTED(row->output(f, NULL, 4, &got) == GEMMA2_ERROR && got == 12345, row->function, want);
    snprintf(want, sizeof want, "capacity is %zu, more than a buffer", past_max(row));
    ROW_REJECTED(row->output(f, buffer, past_max(row), &got) == GEMMA2_ERROR && got == 12345, row->function, want);
    CHECK(row->output(f, NULL, 0, &got) == GEMMA2_BUFFER_TOO_SMALL && got > 0);
  }

  /* Token ids outside the vocabulary, wherever ids go in: the stream, the
   * detokenizer, the session (the bad id last, so the error gives its
   * index). A character split over byte pieces is pending in the stream
   * meanwhile, and comes out whole after the rejected pushes. */
  const char* smile = "\xF0\x9F\x98\x80";
  int32_t bytes[8];
  size_t n_bytes = 0;
  REQUIRE(gemma2_tokenize(tok, smile, 4, 0, bytes, 8, &n_bytes) == GEMMA2_OK);
  REQUIRE(n_bytes >= 2 && gemma2_stream_push(stream, bytes[0], &piece, &piece_len) == GEMMA2_OK && piece_len == 0);
  const int32_t bad_ids[] = {-1, vocab, vocab + 1000, INT32_MIN, INT32_MAX};
  for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; ++i) {
    const int32_t bad = bad_ids[i];
    snprintf(want, sizeof want, "id is %" PRId32 ", outside the tokenizer's vocabulary [0, %" PRId32 ")", bad, vocab);
    REJECTED(gemma2_stream_push(stream, bad, &piece, &piece_len) == GEMMA2_ERROR, want);
    const int32_t pair[2] = {one, bad};
    snprintf(want, sizeof want, "ids[1] is %" PRId32 ", outside the tokenizer's vocabulary [0, %" PRId32 ")", bad,
             vocab);
    REJECTED(gemma2_detokenize(tok, pair, 2, text, sizeof text, &len) == GEMMA2_ERROR, want);
    const int32_t three[3] = {one, one, bad};
    snprintf(want, sizeof want, "ids[2] is %" PRId32 ", outside the model's vocabulary [0, %" PRId32 ")", bad, vocab);
    REJECTED(gemma2_session_feed(s, three, 3, NULL) == GEMMA2_ERROR, want);
    REJECTED(gemma2_session_append(s, three, 3) == GEMMA2_ERROR, want);
  }
  char streamed[64];
  size_t streamed_len = 0;
  for (size_t i = 1; i <= n_bytes; ++i) {
    REQUIRE((i < n_bytes ? gemma2_stream_push(stream, bytes[i], &piece, &piece_len)
                         : gemma2_stream_finish(stream, &piece, &piece_len)) == GEMMA2_OK);
    REQUIRE(streamed_len + piece_len <= sizeof streamed);
    memcpy(streamed + streamed_len, piece, piece_len);
    streamed_len += piece_len;
  }
  CHECK(streamed_len == 4 && memcmp(streamed, smile, 4) == 0);
  gemma2_stream_free(stream);

  /* Counts a session cannot take: nothing pending with count 0, one more
   * token than the positions left, a rollback past the end. */
  REJECTED(gemma2_session_feed(s, NULL, 0, NULL) == GEMMA2_ERROR, "count is 0 and no token is pending");
  const size_t room = 64 - length;
  int32_t* many = (int32_t*)malloc((room + 1) * sizeof(int32_t));
  REQUIRE(many != NULL);
  for (size_t i = 0; i <= room; ++i) many[i] = one;
  snprintf(want, sizeof want, "count is %zu, more than the %zu positions left", room + 1, room);
  REJECTED(gemma2_session_feed(s, many, room + 1, NULL) == GEMMA2_ERROR, want);
  REJECTED(gemma2_session_append(s, many, room + 1) == GEMMA2_ERROR, want);
  free(many);
  const size_t past[] = {length + 1, length + 1000, SIZE_MAX};
  for (size_t i = 0; i < sizeof past / sizeof past[0]; ++i) {
    snprintf(want, sizeof want, "count is %zu, outside [0, %zu]", past[i], length);
    REJECTED(gemma2_session_rollback(s, past[i]) == GEMMA2_ERROR, want);
  }

  /* Generation options out of range: rejected before the reply starts. */
  static const struct {
    size_t field; /* of an int32_t in gemma2_generate_options */
    int32_t value;
    const char* mention;
  } spoiled[] = {
      {offsetof(gemma2_generate_options, max_tokens), -1, "options->max_tokens is -1, outside [0, 2147483647]"},
      {offsetof(gemma2_generate_options, prefill_chunk), 0, "options->prefill_chunk is 0, outside [1, 2147483647]"},
      {offsetof(gemma2_generate_options, lookup_ngram), -1, "options->lookup_ngram is -1, outside [0, 16]"},
      {offsetof(gemma2_generate_options, lookup_ngram), 17, "options->lookup_ngram is 17, outside [0, 16]"},
      {offsetof(gemma2_generate_options, draft_max), 0, "options->draft_max is 0, outside [1, 6]"},
      {offsetof(gemma2_generate_options, draft_max), 7, "options->draft_max is 7, outside [1, 6]"},
      {offsetof(gemma2_generate_options, call_max_tokens), INT32_MIN, "options->call_max_tokens is -2147483648"},
  };
  enum { kOtherOptions = 5 };
  gemma2_generate_options bad[sizeof spoiled / sizeof spoiled[0] + kOtherOptions];
  const char* bad_mention[sizeof bad / sizeof bad[0]];
  size_t n_bad = 0;
  for (size_t i = 0; i < sizeof spoiled / sizeof spoiled[0]; ++i, ++n_bad) {
    bad[n_bad] = gemma2_generate_options_default();
    memcpy((char*)&bad[n_bad] + spoiled[i].field, &spoiled[i].value, sizeof(int32_t));
    bad_mention[n_bad] = spoiled[i].mention;
  }
  const char* stops[2] = {"\n", NULL};
  for (size_t i = 0; i < kOtherOptions; ++i) bad[n_bad + i] = gemma2_generate_options_default();
  bad[n_bad].time_budget_ms = -1.0;
  bad_mention[n_bad++] = "options->time_budget_ms is -1, not a finite number >= 0";
  bad[n_bad].time_budget_ms = HUGE_VAL;
  bad_mention[n_bad++] = "options->time_budget_ms is inf";
  bad[n_bad].stop_string_count = 2;
  bad_mention[n_bad++] = "options->stop_strings is NULL but options->stop_string_count is 2";
  bad[n_bad].stop_string_count = 2;
  bad[n_bad].stop_strings = stops;
  bad_mention[n_bad++] = "options->stop_strings[1] is NULL";
  bad[n_bad].lookup_ngram = 2;
  bad[n_bad].draft_model = model;
  bad_mention[n_bad++] = "options->lookup_ngram and options->draft_model are both set";
  for (size_t i = 0; i < n_bad; ++i)
    REJECTED(gemma2_session_generate_with(s, greedy, tok, &bad[i], NULL, NULL, NULL) == GEMMA2_ERROR, bad_mention[i]);
  REJECTED(gemma2_session_generate(s, greedy, tok, -1, NULL, NULL, NULL) == GEMMA2_ERROR,
           "max_new is -1, outside [0, 2147483647]");
  CHECK(gemma2_session_stop_reason(s) == GEMMA2_STOP_NONE);
  CHECK(gemma2_session_length(s) == length);
  REQUIRE(gemma2_session_tokens(s, tokens_after, 64, &n_after) == GEMMA2_OK);
  CHECK(n_after == n_tokens && memcmp(tokens, tokens_after, n_tokens * sizeof(int32_t)) == 0);
  CHECK(gemma2_session_sample(s, greedy, &next_after) == GEMMA2_OK && next_after == next);

  /* Numbers in option structs and parameters. */
  const int threads[] = {0, -1, 513, INT_MIN};
  for (size_t i = 0; i < sizeof threads / sizeof threads[0]; ++i) {
    gemma2_load_options o = gemma2_load_options_default();
    o.threads = threads[i];
    snprintf(want, sizeof want, "options->threads is %d, outside [1, 512]", threads[i]);
    REJECTED(gemma2_model_load(f->dir, &o, &no_model) == GEMMA2_ERROR && no_model == NULL, want);
  }
  const int32_t capacities[] = {-1, context + 1, INT32_MIN, INT32_MAX};
  for (size_t i = 0; i < sizeof capacities / sizeof capacities[0]; ++i) {
    gemma2_session_options o = gemma2_session_options_default();
    o.capacity = capacities[i];
    snprintf(want, sizeof want, "capacity is %" PRId32 ", outside [0, %" PRId32 "]", capacities[i], context);
    REJECTED(gemma2_session_new(model, capacities[i], &no_session) == GEMMA2_ERROR && no_session == NULL, want);
    snprintf(want, sizeof want, "options->capacity is %" PRId32 ", outside [0, %" PRId32 "]", capacities[i], context);
    REJECTED(gemma2_session_new_with(model, &o, &no_session) == GEMMA2_ERROR && no_session == NULL, want);
  }
  const int flags[] = {2, -1, INT_MAX};
  for (size_t i = 0; i < sizeof flags / sizeof flags[0]; ++i) {
    gemma2_load_options lo = gemma2_load_options_default();
    lo.copied = flags[i];
    snprintf(want, sizeof want, "options->copied is %d, outside [0, 1]", flags[i]);
    REJECTED(gemma2_model_load(f->dir, &lo, &no_model) == GEMMA2_ERROR, want);
    lo = gemma2_load_options_default();
    lo.check_finite = flags[i];
    snprintf(want, sizeof want, "options->check_finite is %d, outside [0, 1]", flags[i]);
    REJECTED(gemma2_model_load(f->dir, &lo, &no_model) == GEMMA2_ERROR, want);
    gemma2_session_options so = gemma2_session_options_default();
    so.sliding_window = flags[i];
    snprintf(want, sizeof want, "options->sliding_window is %d, outside [0, 1]", flags[i]);
    REJECTED(gemma2_session_new_with(model, &so, &no_session) == GEMMA2_ERROR, want);
    gemma2_sampling_params p = gemma2_sampling_params_default();
    p.greedy = flags[i];
    snprintf(want, sizeof want, "params->greedy is %d, outside [0, 1]", flags[i]);
    REJECTED(gemma2_sampler_new(&p, &no_sampler) == GEMMA2_ERROR && no_sampler == NULL, want);
  }

  /* A negative budget leaves the sampler's grammar in place: its next
   * token still spells a, b or c. */
  REQUIRE(gemma2_sampler_set_grammar(greedy, tok, "root ::= [a-c]{3}", 3) == GEMMA2_OK);
  const int32_t budgets[] = {-1, INT32_MIN};
  for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; ++i) {
    snprintf(want, sizeof want, "max_tokens is %" PRId32 ", negative (0: no budget)", budgets[i]);
    REJECTED(gemma2_sampler_set_grammar(greedy, tok, "root ::= \"z\"", budgets[i]) == GEMMA2_ERROR, want);
    REJECTED(gemma2_sampler_set_json_schema(greedy, tok, "{}", budgets[i]) == GEMMA2_ERROR, want);
    REJECTED(gemma2_sampler_set_grammar(greedy, tok, NULL, budgets[i]) == GEMMA2_ERROR, want);
  }
  CHECK(gemma2_sampler_finished(greedy) == 0);
  REQUIRE(gemma2_session_sample(s, greedy, &id) == GEMMA2_OK);
  REQUIRE(gemma2_detokenize(tok, &id, 1, text, sizeof text, &len) == GEMMA2_OK);
  REQUIRE(len < sizeof text);
  text[len] = '\0';
  CHECK(len >= 1 && len <= 3 && strspn(text, "abc") == len);
  gemma2_sampler_free(greedy);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  const char* dir = argv[1];
  CHECK(strlen(gemma2_version()) >= 5);

  /* Errors are statuses with messages, never crashes. */
  gemma2_model* model = NULL;
  CHECK(gemma2_model_load("/nonexistent/model", NULL, &model) == GEMMA2_ERROR);
  CHECK(model == NULL);
  CHECK(error_mentions("/nonexistent/model"));
  CHECK(gemma2_model_load(NULL, NULL, &model) == GEMMA2_ERROR && error_mentions("path is NULL"));
  gemma2_load_options options = gemma2_load_options_default();
  options.kernels = "vector-machine";
  CHECK(gemma2_model_load(dir, &options, &model) == GEMMA2_ERROR && error_mentions("not a kernel set"));
  options = gemma2_load_options_default();
  options.weight_type = "q3";
  CHECK(gemma2_model_load(dir, &options, &model) == GEMMA2_ERROR && error_mentions("q3"));
  options = gemma2_load_options_default();
  options.max_memory = 1000;
  CHECK(gemma2_model_load(dir, &options, &model) == GEMMA2_ERROR && error_mentions("limit"));
  options = gemma2_load_options_default();
  options.prefill_precision = "fp8";
  CHECK(gemma2_model_load(dir, &options, &model) == GEMMA2_ERROR && error_mentions("fp8"));
  options.prefill_precision = "bf16";
  CHECK(gemma2_model_load(dir, &options, &model) == GEMMA2_OK && model != NULL);
  gemma2_model_free(model);
  model = NULL;

  options = gemma2_load_options_default();
  options.threads = 2;
  REQUIRE(gemma2_model_load(dir, &options, &model) == GEMMA2_OK);
  const int32_t vocab = gemma2_model_vocab_size(model);
  CHECK(vocab > 1000);
  CHECK(gemma2_model_context_length(model) > 64);
  CHECK(strlen(gemma2_model_kernels(model)) > 0);

  gemma2_tokenizer* tok = NULL;
  CHECK(gemma2_tokenizer_load("/nonexistent/tokenizer.model", &tok) == GEMMA2_ERROR &&
        error_mentions("does not exist"));
  REQUIRE(gemma2_tokenizer_load(dir, &tok) == GEMMA2_OK);
  CHECK(gemma2_tokenizer_bos_id(tok) == 2 && gemma2_tokenizer_eos_id(tok) == 1);

  /* Tokenize with the size query first. */
  const char* prompt = "ROMEO:\nBut soft, what light";
  size_t n = 0;
  CHECK(gemma2_tokenize(tok, prompt, strlen(prompt), 1, NULL, 0, &n) == GEMMA2_BUFFER_TOO_SMALL);
  CHECK(n > 3);
  int32_t ids[64];
  REQUIRE(n <= 64 && gemma2_tokenize(tok, prompt, strlen(prompt), 1, ids, 64, &n) == GEMMA2_OK);
  CHECK(ids[0] == 2);
  char text[256];
  size_t len = 0;
  CHECK(gemma2_detokenize(tok, ids + 1, n - 1, text, 3, &len) == GEMMA2_BUFFER_TOO_SMALL && len == strlen(prompt));
  CHECK(gemma2_detokenize(tok, ids + 1, n - 1, text, sizeof text, &len) == GEMMA2_OK);
  CHECK(len == strlen(prompt) && memcmp(text, prompt, len) == 0);
  const int32_t bad = vocab + 5;
  CHECK(gemma2_detokenize(tok, &bad, 1, text, sizeof text, &len) == GEMMA2_ERROR);
  CHECK(gemma2_format_user_turn("hi", 2, text, sizeof text, &len) == GEMMA2_OK);
  CHECK(len > 0 && strstr(text, "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n") == text);

  /* Sessions: feed, fork, save/restore, rollback give the same logits. */
  gemma2_session* s = NULL;
  CHECK(gemma2_session_new(model, -1, &s) == GEMMA2_ERROR);
  REQUIRE(gemma2_session_new(model, 256, &s) == GEMMA2_OK);
  float* logits = (float*)malloc(sizeof(float) * (size_t)vocab);
  float* other = (float*)malloc(sizeof(float) * (size_t)vocab);
  REQUIRE(logits && other);
  gemma2_sampling_params params = gemma2_sampling_params_default();
  params.greedy = 1;
  gemma2_sampler* greedy = NULL;
  REQUIRE(gemma2_sampler_new(&params, &greedy) == GEMMA2_OK);
  int32_t t = 0;
  CHECK(gemma2_session_sample(s, greedy, &t) == GEMMA2_ERROR && error_mentions("feed"));
  CHECK(gemma2_session_feed(s, &bad, 1, logits) == GEMMA2_ERROR);
  CHECK(gemma2_session_length(s) == 0);
  REQUIRE(gemma2_session_feed(s, ids, n, logits) == GEMMA2_OK);
  CHECK(gemma2_session_length(s) == n);

  gemma2_session* copy = NULL;
  REQUIRE(gemma2_session_fork(s, &copy) == GEMMA2_OK);
  size_t size = 0;
  CHECK(gemma2_session_save(s, NULL, 0, &size) == GEMMA2_BUFFER_TOO_SMALL && size > 0);
  uint8_t* blob = (uint8_t*)malloc(size);
  REQUIRE(blob && gemma2_session_save(s, blob, size, &size) == GEMMA2_OK);
  gemma2_session* restored = NULL;
  REQUIRE(gemma2_session_restore(model, blob, size, &restored) == GEMMA2_OK);
  blob[size / 2] ^= 0x55;
  gemma2_session* corrupt = NULL;
  CHECK(gemma2_session_restore(model, blob, size, &corrupt) == GEMMA2_ERROR && corrupt == NULL);

  const int32_t next = 100;
  REQUIRE(gemma2_session_feed(s, &next, 1, logits) == GEMMA2_OK);
  REQUIRE(gemma2_session_feed(copy, &next, 1, other) == GEMMA2_OK);
  CHECK(same_floats(logits, other, (size_t)vocab));
  REQUIRE(gemma2_session_feed(restored, &next, 1, other) == GEMMA2_OK);
  CHECK(same_floats(logits, other, (size_t)vocab));

  /* Rollback past `next`, then the same token again. */
  const int32_t detour[3] = {200, 201, 202};
  REQUIRE(gemma2_session_feed(copy, detour, 3, NULL) == GEMMA2_OK);
  CHECK(gemma2_session_rollback(copy, n + 1000) == GEMMA2_ERROR);
  REQUIRE(gemma2_session_rollback(copy, n) == GEMMA2_OK);
  CHECK(gemma2_session_sample(copy, greedy, &t) == GEMMA2_ERROR); /* no logits until the next feed */
  REQUIRE(gemma2_session_feed(copy, &next, 1, other) == GEMMA2_OK);
  CHECK(close_floats(logits, other, (size_t)vocab));
  int32_t held[64];
  size_t held_n = 0;
  CHECK(gemma2_session_tokens(copy, held, 64, &held_n) == GEMMA2_OK && held_n == n + 1 && held[n] == next);

  /* Context shift: a session of 40 positions generates 150 tokens with the
   * automatic shift, the same tokens as shifting by hand at the same points
   * (the sampled token pending, then the shift, then the feed). */
  {
    gemma2_session* a = NULL;
    gemma2_session* b = NULL;
    REQUIRE(gemma2_session_new(model, 40, &a) == GEMMA2_OK && gemma2_session_new(model, 40, &b) == GEMMA2_OK);
    CHECK(gemma2_session_set_context_shift(a, 1, 40, 0) == GEMMA2_ERROR && error_mentions("keep is 40"));
    CHECK(gemma2_session_set_context_shift(a, 2, 1, 0) == GEMMA2_ERROR && error_mentions("enabled"));
    REQUIRE(gemma2_session_set_context_shift(a, 1, 3, 0) == GEMMA2_OK);
    REQUIRE(gemma2_session_set_context_shift(b, 1, 3, 0) == GEMMA2_OK); /* appends past the room */
    REQUIRE(gemma2_session_append(a, ids, n) == GEMMA2_OK);
    Collected shifted;
    memset(&shifted, 0, sizeof shifted);
    gemma2_generate_options go = gemma2_generate_options_default();
    go.max_tokens = 150;
    gemma2_generate_result result;
    REQUIRE(gemma2_session_generate_with(a, greedy, NULL, &go, collect, &shifted, &result) == GEMMA2_OK);
    CHECK(result.stop == GEMMA2_STOP_MAX_TOKENS && shifted.count == 150 && gemma2_session_length(a) <= 40);

    REQUIRE(gemma2_session_feed(b, ids, n, NULL) == GEMMA2_OK);
    CHECK(gemma2_session_shift(b, 3, (int32_t)n) == GEMMA2_ERROR && error_mentions("drop is"));
    for (size_t i = 0; i < shifted.count; ++i) {
      int32_t want = -1;
      REQUIRE(gemma2_session_sample(b, greedy, &want) == GEMMA2_OK);
      CHECK(want == shifted.ids[i]);
      REQUIRE(gemma2_session_append(b, &want, 1) == GEMMA2_OK);
      const size_t length = gemma2_session_length(b);
      if (length > 40) REQUIRE(gemma2_session_shift(b, 3, (int32_t)(length - 1 - 3) / 2) == GEMMA2_OK);
      REQUIRE(gemma2_session_feed(b, NULL, 0, NULL) == GEMMA2_OK);
    }
    gemma2_session_free(a);
    gemma2_session_free(b);
  }

  /* Generation with streaming equals sampling and feeding by hand, and its
   * text equals detokenizing its ids. */
  Collected got;
  memset(&got, 0, sizeof got);
  size_t generated = 0;
  REQUIRE(gemma2_session_generate(s, greedy, tok, 24, collect, &got, &generated) == GEMMA2_OK);
  CHECK(generated == got.count && got.count > 0);
  for (size_t i = 0; i < got.count; ++i) {
    int32_t want = -1;
    REQUIRE(gemma2_session_sample(restored, greedy, &want) == GEMMA2_OK);
    CHECK(want == got.ids[i]);
    if (want == 1 || want == gemma2_tokenizer_end_of_turn_id(tok)) break;
    REQUIRE(gemma2_session_feed(restored, &want, 1, NULL) == GEMMA2_OK);
  }
  CHECK(gemma2_detokenize(tok, got.ids, got.count, text, sizeof text, &len) == GEMMA2_OK);
  CHECK(len == got.length && memcmp(text, got.text, len) == 0);

  gemma2_stream* stream = NULL;
  REQUIRE(gemma2_stream_new(tok, &stream) == GEMMA2_OK);
  char streamed[4096];
  size_t streamed_len = 0;
  for (size_t i = 0; i < got.count; ++i) {
    const char* piece = NULL;
    size_t piece_len = 0;
    REQUIRE(gemma2_stream_push(stream, got.ids[i], &piece, &piece_len) == GEMMA2_OK);
    memcpy(streamed + streamed_len, piece, piece_len);
    streamed_len += piece_len;
  }
  const char* rest = NULL;
  size_t rest_len = 0;
  REQUIRE(gemma2_stream_finish(stream, &rest, &rest_len) == GEMMA2_OK);
  memcpy(streamed + streamed_len, rest, rest_len);
  streamed_len += rest_len;
  CHECK(streamed_len == got.length && memcmp(streamed, got.text, streamed_len) == 0);

  /* A callback that stops early cancels; sampling parameters are checked. */
  Collected two;
  memset(&two, 0, sizeof two);
  two.stop_after = 2;
  CHECK(gemma2_session_generate(copy, greedy, tok, 24, collect, &two, &generated) == GEMMA2_CANCELLED);
  CHECK(two.count == 2 && generated == 2);
  CHECK(gemma2_session_generate(copy, greedy, NULL, -1, NULL, NULL, NULL) == GEMMA2_ERROR);
  gemma2_sampling_params wrong = gemma2_sampling_params_default();
  wrong.top_p = 2.0f;
  gemma2_sampler* bad_sampler = NULL;
  CHECK(gemma2_sampler_new(&wrong, &bad_sampler) == GEMMA2_ERROR && error_mentions("top-p") && bad_sampler == NULL);
  gemma2_sampling_params seeded = gemma2_sampling_params_default();
  seeded.temperature = 0.8f;
  seeded.top_k = 40;
  seeded.seed = 7;
  gemma2_sampler *a = NULL, *b = NULL;
  REQUIRE(gemma2_sampler_new(&seeded, &a) == GEMMA2_OK && gemma2_sampler_new(&seeded, &b) == GEMMA2_OK);
  int32_t ta = 0, tb = 0;
  /* Sampling needs the logits after the last token: a generated token is
   * pending until it is fed. */
  CHECK(gemma2_session_sample(s, a, &ta) == GEMMA2_ERROR && error_mentions("tokens are pending"));
  REQUIRE(gemma2_session_feed(s, NULL, 0, NULL) == GEMMA2_OK);
  CHECK(gemma2_session_sample(s, a, &ta) == GEMMA2_OK && gemma2_session_sample(s, b, &tb) == GEMMA2_OK && ta == tb);

  /* Cache options: every storage and policy continues the same tokens; the
   * f32 caches give the first session's logits, bf16 and int8 nearly (the
   * same best token); each saves smaller than the last and restores into
   * its own kind of cache. */
  gemma2_session_options so = gemma2_session_options_default();
  gemma2_session* rejected = NULL;
  so.kv_storage = "int4";
  CHECK(gemma2_session_new_with(model, &so, &rejected) == GEMMA2_ERROR && error_mentions("int4") && rejected == NULL);
  so.kv_storage = NULL;
  so.sliding_window = 2;
  CHECK(gemma2_session_new_with(model, &so, &rejected) == GEMMA2_ERROR && error_mentions("sliding_window"));
  const char* storages[3] = {"f32", "bf16", "int8"};
  for (int policy = 0; policy < 2; ++policy) {
    size_t last_size = 0;
    for (int k = 0; k < 3; ++k) {
      gemma2_session_options o = gemma2_session_options_default();
      o.capacity = 256;
      o.kv_storage = storages[k];
      o.sliding_window = policy;
      gemma2_session *c = NULL, *back = NULL;
      REQUIRE(gemma2_session_new_with(model, &o, &c) == GEMMA2_OK);
      REQUIRE(gemma2_session_feed(c, ids, n, NULL) == GEMMA2_OK &&
              gemma2_session_feed(c, &next, 1, other) == GEMMA2_OK);
      if (k == 0) CHECK(close_floats(logits, other, (size_t)vocab));
      else CHECK(argmax(logits, vocab) == argmax(other, vocab) && max_difference(logits, other, vocab) < 0.5f);
      size_t bytes = 0;
      CHECK(gemma2_session_save(c, NULL, 0, &bytes) == GEMMA2_BUFFER_TOO_SMALL);
      CHECK(k == 0 || bytes < last_size);
      last_size = bytes;
      uint8_t* saved = (uint8_t*)malloc(bytes);
      REQUIRE(saved && gemma2_session_save(c, saved, bytes, &bytes) == GEMMA2_OK);
      REQUIRE(gemma2_session_restore(model, saved, bytes, &back) == GEMMA2_OK);
      float* again = (float*)malloc(sizeof(float) * (size_t)vocab);
      REQUIRE(again && gemma2_session_feed(c, detour, 1, other) == GEMMA2_OK);
      REQUIRE(gemma2_session_feed(back, detour, 1, again) == GEMMA2_OK);
      CHECK(same_floats(other, again, (size_t)vocab));
      free(again);
      free(saved);
      gemma2_session_free(back);
      gemma2_session_free(c);
    }
  }

  /* Structured output: a JSON Schema's text complete within the budget, a
   * GBNF grammar's text exactly, bad grammars and schemas named. */
  {
    gemma2_sampler* js = NULL;
    REQUIRE(gemma2_sampler_new(&seeded, &js) == GEMMA2_OK);
    CHECK(gemma2_sampler_set_json_schema(js, tok, "{\"type\":\"object\",\"properties\":{\"n\":{\"multipleOf\":2}}}",
                                         32) == GEMMA2_ERROR &&
          error_mentions("'multipleOf' is not supported"));
    CHECK(gemma2_sampler_set_grammar(js, tok, "root ::= (\"a\"", 8) == GEMMA2_ERROR &&
          error_mentions("line 1, column 10"));
    /* A budget shorter than the shortest completion is refused, naming
     * both; a budget of that completion's length is not. */
    const char* hamlet = "root ::= \"to be or not to be\"";
    CHECK(gemma2_sampler_set_grammar(js, tok, hamlet, 4) == GEMMA2_ERROR &&
          error_mentions("a budget of 4 tokens is too small: the shortest completion takes "));
    const char* takes = strstr(gemma2_last_error(), "takes ");
    int fewest = 0;
    REQUIRE(takes != NULL && sscanf(takes, "takes %d tokens", &fewest) == 1 && fewest > 4);
    CHECK(gemma2_sampler_set_grammar(js, tok, hamlet, fewest - 1) == GEMMA2_ERROR);
    CHECK(gemma2_sampler_set_grammar(js, tok, hamlet, fewest) == GEMMA2_OK);
    CHECK(gemma2_sampler_set_json_schema(js, tok, "{\"enum\":[\"a long enough value\"]}", 2) == GEMMA2_ERROR &&
          error_mentions("a budget of 2 tokens is too small"));
    REQUIRE(gemma2_sampler_set_json_schema(js, tok,
                                           "{\"type\":\"object\",\"properties\":{\"act\":{\"enum\":[\"go\",\"stay\"]}},"
                                           "\"required\":[\"act\"],\"additionalProperties\":false}",
                                           32) == GEMMA2_OK);
    gemma2_session* j = NULL;
    REQUIRE(gemma2_session_fork(s, &j) == GEMMA2_OK);
    Collected out;
    memset(&out, 0, sizeof out);
    CHECK(gemma2_session_generate(j, js, tok, 32, collect, &out, NULL) == GEMMA2_OK);
    CHECK(gemma2_sampler_finished(js) == 1);
    out.text[out.length] = 0;
    CHECK(out.length > 10 && out.text[0] == '{' && out.text[out.length - 1] == '}' &&
          (strstr(out.text, "\"go\"") != NULL || strstr(out.text, "\"stay\"") != NULL));
    gemma2_session_free(j);

    /* JSON options: compact text has no whitespace between tokens, free
     * text may; an integer range holds either way; a bad value is named. */
    {
      const char* ranged =
          "{\"type\":\"object\",\"properties\":{\"urgency\":{\"type\":\"integer\",\"minimum\":0,"
          "\"maximum\":9},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"maxItems\":3}},"
          "\"required\":[\"urgency\",\"tags\"],\"additionalProperties\":false}";
      gemma2_json_options opts = gemma2_json_options_default();
      CHECK(opts.whitespace == GEMMA2_JSON_COMPACT);
      opts.whitespace = 3;
      CHECK(gemma2_sampler_set_json_schema_with(js, tok, ranged, &opts, 40) == GEMMA2_ERROR &&
            error_mentions("options->whitespace is 3"));
      size_t free_spaces = 0;
      for (int ws = GEMMA2_JSON_COMPACT; ws <= GEMMA2_JSON_FREE; ++ws) {
        for (int run = 0; run < 3; ++run) {
          gemma2_sampling_params p = seeded;
          p.seed = seeded.seed + (uint64_t)run;
          gemma2_sampler* w = NULL;
          REQUIRE(gemma2_sampler_new(&p, &w) == GEMMA2_OK);
          opts.whitespace = ws;
          REQUIRE(gemma2_sampler_set_json_schema_with(w, tok, ranged, ws == GEMMA2_JSON_COMPACT ? NULL : &opts, 40) ==
                  GEMMA2_OK);
          REQUIRE(gemma2_session_fork(s, &j) == GEMMA2_OK);
          memset(&out, 0, sizeof out);
          CHECK(gemma2_session_generate(j, w, tok, 40, collect, &out, NULL) == GEMMA2_OK);
          CHECK(gemma2_sampler_finished(w) == 1);
          out.text[out.length] = 0;
          const char* u = strstr(out.text, "\"urgency\"");
          REQUIRE(u != NULL);
          u += strlen("\"urgency\"");
          while (*u == ' ' || *u == '\n' || *u == '\t' || *u == ':') ++u;
          CHECK(*u >= '0' && *u <= '9' && !(u[1] >= '0' && u[1] <= '9'));
          if (ws == GEMMA2_JSON_COMPACT)
            CHECK(json_spaces(out.text) == 0 && strncmp(out.text, "{\"urgency\":", 11) == 0);
          if (ws == GEMMA2_JSON_FREE) free_spaces += json_spaces(out.text);
          gemma2_session_free(j);
          gemma2_sampler_free(w);
        }
      }
      CHECK(free_spaces > 0); /* the model does use the room it is given */
    }

    REQUIRE(gemma2_sampler_set_grammar(js, tok, "root ::= [a-c]{3}", 3) == GEMMA2_OK);
    CHECK(gemma2_sampler_finished(js) == 0);
    REQUIRE(gemma2_session_fork(s, &j) == GEMMA2_OK);
    memset(&out, 0, sizeof out);
    CHECK(gemma2_session_generate(j, js, tok, 3, collect, &out, NULL) == GEMMA2_OK);
    CHECK(out.length == 3 && strspn(out.text, "abc") == 3);
    CHECK(gemma2_sampler_finished(js) == 1);
    CHECK(gemma2_sampler_set_grammar(js, tok, NULL, 0) == GEMMA2_OK && gemma2_sampler_finished(js) == 0);
    gemma2_session_free(j);
    gemma2_sampler_free(js);
  }

  {
    gemma2_session* fed = NULL;
    REQUIRE(gemma2_session_new(model, 64, &fed) == GEMMA2_OK && gemma2_session_feed(fed, ids, n, NULL) == GEMMA2_OK);
    const Fixture fixture = {dir, model, tok, fed};
    check_arguments(&fixture);
    gemma2_session_free(fed);
  }

  gemma2_sampler_free(a);
  gemma2_sampler_free(b);
  gemma2_stream_free(stream);
  gemma2_sampler_free(greedy);
  gemma2_session_free(restored);
  gemma2_session_free(copy);
  gemma2_session_free(s);
  gemma2_tokenizer_free(tok);
  gemma2_model_free(model);
  gemma2_model_free(NULL);
  free(blob);
  free(logits);
  free(other);
  if (failures == 0) printf("c_api: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
