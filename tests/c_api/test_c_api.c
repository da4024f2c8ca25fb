/* The C ABI from C: every entry point, its error paths and its buffer
 * protocol, on the demo model (argv[1]). Exits non-zero on the first
 * failed check. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gemma2/c_api.h"

static int failures = 0;

/* Each evaluates `cond` once (it usually calls the library). */
static int check(int ok, const char* what, int line) {
  if (!ok) {
    fprintf(stderr, "%s:%d: CHECK(%s) failed; last error: %s\n", __FILE__, line, what, gemma2_last_error());
    ++failures;
  }
  return ok;
}
#define CHECK(cond) check((cond) != 0, #cond, __LINE__)
#define REQUIRE(cond)                                    \
  do {                                                   \
    if (!check((cond) != 0, #cond, __LINE__)) exit(1); \
  } while (0)

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
  CHECK(gemma2_tokenizer_load("/nonexistent/tokenizer.model", &tok) == GEMMA2_ERROR && error_mentions("does not exist"));
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
  CHECK(gemma2_session_sample(copy, greedy, &t) == GEMMA2_ERROR);  /* no logits until the next feed */
  REQUIRE(gemma2_session_feed(copy, &next, 1, other) == GEMMA2_OK);
  CHECK(close_floats(logits, other, (size_t)vocab));
  int32_t held[64];
  size_t held_n = 0;
  CHECK(gemma2_session_tokens(copy, held, 64, &held_n) == GEMMA2_OK && held_n == n + 1 && held[n] == next);

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
      REQUIRE(gemma2_session_feed(c, ids, n, NULL) == GEMMA2_OK && gemma2_session_feed(c, &next, 1, other) == GEMMA2_OK);
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
    CHECK(gemma2_sampler_set_json_schema(js, tok, "{\"type\":\"object\",\"properties\":{\"n\":{\"minimum\":1}}}", 32) ==
              GEMMA2_ERROR && error_mentions("'minimum' is not supported"));
    CHECK(gemma2_sampler_set_grammar(js, tok, "root ::= (\"a\"", 8) == GEMMA2_ERROR && error_mentions("line 1, column 10"));
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

  /* NULL handles are errors too. */
  CHECK(gemma2_session_feed(NULL, ids, 1, NULL) == GEMMA2_ERROR && error_mentions("NULL"));
  CHECK(gemma2_tokenize(tok, NULL, 5, 0, ids, 64, &n) == GEMMA2_ERROR);
  CHECK(gemma2_session_tokens(s, held, 64, NULL) == GEMMA2_ERROR);

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
