/* Generation from C as a frame loop drives it: a reply sliced into calls of
 * 1, 2, 3 and 7 tokens, or saved and restored between two calls, is the
 * reply of one call (ids, text, stop reason), for every sampler, constraint
 * and drafter the C ABI offers; a long prompt runs in chunks within a time
 * budget; a fed session restored generates what the original does; a
 * finished grammar is refused. On the demo model (argv[1]). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../seeded_sampling.h"
#include "check.h"

enum { kMaxIds = 512, kMaxText = 8192 };

/* What a reply produced, through the callback and the results. */
typedef struct {
  int32_t ids[kMaxIds];
  size_t count;
  char text[kMaxText];
  size_t length;
  gemma2_stop_reason stop;
  int calls, calls_without_text;
  size_t this_call_text; /* bytes the current call streamed */
} Reply;

static int collect(void* user, int32_t token, const char* text, size_t length) {
  Reply* r = (Reply*)user;
  if (token >= 0 && r->count < kMaxIds) r->ids[r->count++] = token;
  if (r->length + length < kMaxText) {
    memcpy(r->text + r->length, text, length);
    r->length += length;
    r->text[r->length] = '\0';
  }
  r->this_call_text += length;
  return 0;
}

static gemma2_model* model;
static gemma2_model* draft_model;
static gemma2_tokenizer* tok;

typedef enum { SAMPLING, GREEDY, GRAMMAR, SCHEMA } SamplerKind;

typedef struct {
  const char* name;
  const char* prompt;
  SamplerKind sampler;
  int lookup;    /* prompt lookup n-gram, 0: off */
  int draft;     /* 1: the demo model drafts for itself */
  char stop[16]; /* a stop string, "" for none */
} Scenario;

static gemma2_sampler* make_sampler(SamplerKind kind) {
  gemma2_sampling_params p = gemma2_sampling_params_default();
  if (kind == GREEDY) p.greedy = 1;
  else GEMMA2_TEST_SEEDED_SAMPLING(p, 17);
  gemma2_sampler* s = NULL;
  REQUIRE(gemma2_sampler_new(&p, &s) == GEMMA2_OK);
  if (kind == GRAMMAR)
    REQUIRE(gemma2_sampler_set_grammar(
                s, tok, "root ::= \"\xC3\x9Cn\xC3\xAF\x63\xC3\xB8\x64\xC3\xA9 \xE2\x9C\x93 \xE6\x97\xA5\xE6\x9C\xAC\"",
                0) == GEMMA2_OK);
  if (kind == SCHEMA)
    REQUIRE(gemma2_sampler_set_json_schema(
                s, tok,
                "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\",\"maxLength\":12},"
                "\"age\":{\"type\":\"integer\"}},\"required\":[\"name\",\"age\"]}",
                30) == GEMMA2_OK);
  return s;
}

static gemma2_session* new_session(const char* prompt) {
  gemma2_session* s = NULL;
  REQUIRE(gemma2_session_new(model, 1024, &s) == GEMMA2_OK);
  int32_t ids[kMaxIds];
  size_t n = 0;
  REQUIRE(gemma2_tokenize(tok, prompt, strlen(prompt), 1, ids, kMaxIds, &n) == GEMMA2_OK);
  REQUIRE(gemma2_session_append(s, ids, n) == GEMMA2_OK);
  return s;
}

/* Runs the scenario in calls of at most `slice` tokens (0: one call); with
 * save_at >= 0 the session is saved before that call, freed, and restored. */
static void run(const Scenario* sc, int slice, int save_at, Reply* out) {
  memset(out, 0, sizeof *out);
  gemma2_session* session = new_session(sc->prompt);
  gemma2_sampler* sampler = make_sampler(sc->sampler);
  gemma2_generate_options o = gemma2_generate_options_default();
  const char* stops[1] = {sc->stop};
  o.max_tokens = 40;
  o.call_max_tokens = slice;
  if (sc->stop[0] != '\0') o.stop_strings = stops, o.stop_string_count = 1;
  o.lookup_ngram = sc->lookup;
  o.draft_model = sc->draft ? draft_model : NULL;
  gemma2_generate_result r;
  memset(&r, 0, sizeof r);
  for (int call = 0; !r.done; ++call) {
    REQUIRE(call < 1000);
    if (call == save_at) {
      size_t size = 0;
      REQUIRE(gemma2_session_save(session, NULL, 0, &size) == GEMMA2_BUFFER_TOO_SMALL);
      uint8_t* blob = (uint8_t*)malloc(size);
      REQUIRE(blob != NULL && gemma2_session_save(session, blob, size, &size) == GEMMA2_OK);
      gemma2_session_free(session);
      session = NULL;
      REQUIRE(gemma2_session_restore(model, blob, size, &session) == GEMMA2_OK);
      free(blob);
    }
    out->this_call_text = 0;
    REQUIRE(gemma2_session_generate_with(session, sampler, tok, &o, collect, out, &r) == GEMMA2_OK);
    ++out->calls;
    out->calls_without_text += out->this_call_text == 0;
    if (slice > 0) CHECK(r.generated <= (size_t)slice);
    if (!r.done) CHECK(r.stop == GEMMA2_STOP_CALL_LIMIT);
    CHECK(gemma2_session_stop_reason(session) == r.stop);
  }
  out->stop = r.stop;
  gemma2_sampler_free(sampler);
  gemma2_session_free(session);
}

static void check_same(const Scenario* sc, const Reply* whole, const Reply* part, int slice, int save_at) {
  const int same = part->count == whole->count && memcmp(part->ids, whole->ids, whole->count * sizeof(int32_t)) == 0 &&
                   part->length == whole->length && memcmp(part->text, whole->text, whole->length) == 0 &&
                   part->stop == whole->stop;
  if (!CHECK(same))
    fprintf(stderr, "  %s, slice %d, saved before call %d: %zu ids \"%s\" (stop %d) against %zu ids \"%s\" (stop %d)\n",
            sc->name, slice, save_at, part->count, part->text, (int)part->stop, whole->count, whole->text,
            (int)whole->stop);
}

/* A stop string across the edge of two tokens, from the reply without it:
 * the last two bytes of one token's text and the first of the next's. */
static void pick_stop(Scenario* sc) {
  gemma2_session* session = new_session(sc->prompt);
  gemma2_sampler* sampler = make_sampler(sc->sampler);
  char pieces[64][64];
  size_t lengths[64] = {0}, n = 0;
  gemma2_generate_options o = gemma2_generate_options_default();
  o.max_tokens = 40;
  o.call_max_tokens = 1;
  gemma2_generate_result r;
  memset(&r, 0, sizeof r);
  Reply text;
  while (!r.done && n < 64) {
    memset(&text, 0, sizeof text);
    REQUIRE(gemma2_session_generate_with(session, sampler, tok, &o, collect, &text, &r) == GEMMA2_OK);
    if (text.length < 64) memcpy(pieces[n], text.text, text.length), lengths[n++] = text.length;
  }
  sc->stop[0] = '\0';
  for (size_t i = n / 2; i + 1 < n && sc->stop[0] == '\0'; ++i)
    if (lengths[i] >= 2 && lengths[i + 1] >= 1) {
      memcpy(sc->stop, pieces[i] + lengths[i] - 2, 2);
      sc->stop[2] = pieces[i + 1][0];
      sc->stop[3] = '\0';
    }
  REQUIRE(sc->stop[0] != '\0');
  gemma2_sampler_free(sampler);
  gemma2_session_free(session);
}

static void sliced_and_saved(void) {
  Scenario scenarios[] = {
      {"sampling with penalties", "ROMEO:\n", SAMPLING, 0, 0, ""},
      {"greedy", "JULIET:\n", GREEDY, 0, 0, ""},
      {"grammar of byte-spelled characters", "KING:\n", GRAMMAR, 0, 0, ""},
      {"JSON Schema with a budget", "NURSE:\n", SCHEMA, 0, 0, ""},
      {"stop string across slices", "ROMEO:\n", SAMPLING, 0, 0, ""},
      {"prompt lookup", "ROMEO:\nBut soft, what light through yonder window breaks?\nROMEO:\nBut soft,", GREEDY, 3, 0,
       ""},
      {"draft model", "MERCUTIO:\n", SAMPLING, 0, 1, ""},
  };
  pick_stop(&scenarios[4]);
  const int slices[] = {1, 2, 3, 7};
  Reply whole, part;
  for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; ++i) {
    const Scenario* sc = &scenarios[i];
    run(sc, 0, -1, &whole);
    CHECK(whole.calls == 1 && whole.count > 0);
    for (size_t k = 0; k < sizeof slices / sizeof slices[0]; ++k) {
      run(sc, slices[k], -1, &part);
      check_same(sc, &whole, &part, slices[k], -1);
    }
    for (int save_at = 1; save_at <= 4; save_at += 3) {
      run(sc, 1, save_at, &part);
      check_same(sc, &whole, &part, 1, save_at);
      run(sc, 3, save_at, &part);
      check_same(sc, &whole, &part, 3, save_at);
    }
  }
  /* The reasons of one call, and pieces of characters carried over. */
  run(&scenarios[2], 0, -1, &whole);
  CHECK(whole.stop == GEMMA2_STOP_COMPLETE);
  CHECK(strcmp(whole.text, "\xC3\x9Cn\xC3\xAF\x63\xC3\xB8\x64\xC3\xA9 \xE2\x9C\x93 \xE6\x97\xA5\xE6\x9C\xAC") == 0);
  run(&scenarios[2], 1, -1, &part);
  CHECK(part.calls_without_text > 0);
  run(&scenarios[3], 0, -1, &whole);
  CHECK(whole.stop == GEMMA2_STOP_COMPLETE && whole.text[0] == '{');
  run(&scenarios[4], 0, -1, &whole);
  CHECK(whole.stop == GEMMA2_STOP_STRING && strstr(whole.text, scenarios[4].stop) == NULL);
}

/* The old entry point, a token per call, continues one reply too. */
static void one_token_per_call(void) {
  gemma2_session* a = new_session("KING:\n");
  gemma2_session* b = new_session("KING:\n");
  gemma2_sampler* sa = make_sampler(GRAMMAR);
  gemma2_sampler* sb = make_sampler(GRAMMAR);
  Reply whole, part;
  memset(&whole, 0, sizeof whole);
  memset(&part, 0, sizeof part);
  size_t generated = 0;
  CHECK(gemma2_session_generate(a, sa, tok, 100, collect, &whole, &generated) == GEMMA2_OK);
  CHECK(generated == whole.count && gemma2_session_stop_reason(a) == GEMMA2_STOP_COMPLETE);
  for (int call = 0; call < 100 && gemma2_session_stop_reason(b) != GEMMA2_STOP_COMPLETE; ++call) {
    CHECK(gemma2_session_generate(b, sb, tok, 1, collect, &part, &generated) == GEMMA2_OK);
    CHECK(generated == 1);
  }
  CHECK(part.count == whole.count && memcmp(part.ids, whole.ids, whole.count * sizeof(int32_t)) == 0);
  CHECK(part.length == whole.length && memcmp(part.text, whole.text, whole.length) == 0);
  CHECK(strstr(part.text, "\xEF\xBF\xBD") == NULL); /* no U+FFFD */
  /* The grammar is complete: the sampler is refused until it changes. */
  CHECK(gemma2_session_generate(b, sb, tok, 1, collect, &part, &generated) == GEMMA2_ERROR && generated == 0);
  CHECK(strstr(gemma2_last_error(), "gemma2_session_generate_with: the sampler has finished") != NULL);
  CHECK(gemma2_sampler_set_grammar(sb, tok, NULL, 0) == GEMMA2_OK);
  CHECK(gemma2_session_generate(b, sb, tok, 2, collect, &part, &generated) == GEMMA2_OK && generated == 2);
  gemma2_sampler_free(sa);
  gemma2_sampler_free(sb);
  gemma2_session_free(a);
  gemma2_session_free(b);
}

/* A fed session, saved and restored, generates what the original does:
 * the blob holds the feed's logits. */
static void fed_then_restored(void) {
  gemma2_session* a = NULL;
  REQUIRE(gemma2_session_new(model, 512, &a) == GEMMA2_OK);
  int32_t ids[64];
  size_t n = 0;
  REQUIRE(gemma2_tokenize(tok, "ROMEO:\nWhat say you?", 20, 1, ids, 64, &n) == GEMMA2_OK);
  REQUIRE(gemma2_session_feed(a, ids, n, NULL) == GEMMA2_OK);
  size_t size = 0;
  gemma2_session_save(a, NULL, 0, &size);
  uint8_t* blob = (uint8_t*)malloc(size);
  REQUIRE(blob != NULL && gemma2_session_save(a, blob, size, &size) == GEMMA2_OK);
  gemma2_session* b = NULL;
  REQUIRE(gemma2_session_restore(model, blob, size, &b) == GEMMA2_OK);
  gemma2_sampler* sa = make_sampler(SAMPLING);
  gemma2_sampler* sb = make_sampler(SAMPLING);
  Reply ra, rb;
  memset(&ra, 0, sizeof ra);
  memset(&rb, 0, sizeof rb);
  CHECK(gemma2_session_generate(a, sa, tok, 24, collect, &ra, NULL) == GEMMA2_OK);
  CHECK(gemma2_session_generate(b, sb, tok, 24, collect, &rb, NULL) == GEMMA2_OK);
  CHECK(ra.count > 0 && ra.count == rb.count && memcmp(ra.ids, rb.ids, ra.count * sizeof(int32_t)) == 0);
  CHECK(ra.length == rb.length && memcmp(ra.text, rb.text, ra.length) == 0);
  /* A corrupt reply container is refused with a message. */
  blob[size / 2] ^= 1;
  gemma2_session* c = NULL;
  CHECK(gemma2_session_restore(model, blob, size, &c) == GEMMA2_ERROR && c == NULL);
  CHECK(strstr(gemma2_last_error(), "checksum") != NULL);
  free(blob);
  gemma2_sampler_free(sa);
  gemma2_sampler_free(sb);
  gemma2_session_free(a);
  gemma2_session_free(b);
}

/* A long prompt appended runs in chunks, each call within its budget but
 * one step, and the reply is that of one call. */
static void prefill_in_chunks(void) {
  int32_t* prompt = (int32_t*)malloc(1500 * sizeof(int32_t));
  REQUIRE(prompt != NULL);
  const char* line = "ROMEO:\nBut soft, what light through yonder window breaks? It is the east.\n";
  size_t n = 0;
  REQUIRE(gemma2_tokenize(tok, line, strlen(line), 0, prompt, 1500, &n) == GEMMA2_OK && n > 0);
  for (size_t i = n; i < 1500; ++i) prompt[i] = prompt[i % n];
  Reply replies[2];
  int calls[2] = {0, 0};
  for (int sliced = 0; sliced < 2; ++sliced) {
    gemma2_session* s = NULL;
    REQUIRE(gemma2_session_new(model, 2048, &s) == GEMMA2_OK);
    REQUIRE(gemma2_session_append(s, prompt, 1500) == GEMMA2_OK);
    gemma2_sampler* sampler = make_sampler(GREEDY);
    gemma2_generate_options o = gemma2_generate_options_default();
    o.max_tokens = 8;
    o.prefill_chunk = 64;
    o.time_budget_ms = sliced ? 1e-3 : 0; /* below any step: one step per call */
    gemma2_generate_result r;
    memset(&r, 0, sizeof r);
    memset(&replies[sliced], 0, sizeof replies[sliced]);
    while (!r.done) {
      REQUIRE(gemma2_session_generate_with(s, sampler, tok, &o, collect, &replies[sliced], &r) == GEMMA2_OK);
      ++calls[sliced];
      if (!r.done) CHECK(r.stop == GEMMA2_STOP_TIME_BUDGET);
      CHECK(calls[sliced] < 100);
    }
    gemma2_sampler_free(sampler);
    gemma2_session_free(s);
  }
  CHECK(calls[0] == 1);
  CHECK(calls[1] >= (1500 + 63) / 64 + 7); /* a chunk, then a token, per call */
  CHECK(replies[0].count == 8 && replies[1].count == 8);
  CHECK(memcmp(replies[0].ids, replies[1].ids, 8 * sizeof(int32_t)) == 0);
  free(prompt);
}

/* Options that cannot be are named. */
static void bad_options(void) {
  gemma2_session* s = new_session("x");
  gemma2_sampler* sampler = make_sampler(GREEDY);
  const char* null_stop[1] = {NULL};
  struct {
    const char* mention;
    gemma2_generate_options o;
  } rows[7];
  for (int i = 0; i < 7; ++i) rows[i].o = gemma2_generate_options_default();
  rows[0].mention = "options->max_tokens", rows[0].o.max_tokens = -1;
  rows[1].mention = "options->prefill_chunk", rows[1].o.prefill_chunk = 0;
  rows[2].mention = "options->draft_max", rows[2].o.draft_max = 7;
  rows[3].mention = "options->time_budget_ms", rows[3].o.time_budget_ms = -5;
  rows[4].mention = "options->stop_strings[0] is NULL", rows[4].o.stop_strings = null_stop,
  rows[4].o.stop_string_count = 1;
  rows[5].mention = "options->lookup_ngram", rows[5].o.lookup_ngram = 17;
  rows[6].mention = "both set", rows[6].o.lookup_ngram = 2, rows[6].o.draft_model = draft_model;
  for (int i = 0; i < 7; ++i) {
    gemma2_generate_result r;
    CHECK(gemma2_session_generate_with(s, sampler, tok, &rows[i].o, NULL, NULL, &r) == GEMMA2_ERROR);
    if (!CHECK(strstr(gemma2_last_error(), rows[i].mention) != NULL)) fprintf(stderr, "  row %d\n", i);
    CHECK(r.generated == 0 && gemma2_session_length(s) == 2);
  }
  CHECK(gemma2_session_stop_reason(NULL) == GEMMA2_STOP_NONE);
  gemma2_sampler_free(sampler);
  gemma2_session_free(s);
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
    return 2;
  }
  gemma2_load_options options = gemma2_load_options_default();
  REQUIRE(gemma2_model_load(argv[1], &options, &model) == GEMMA2_OK);
  REQUIRE(gemma2_model_load(argv[1], &options, &draft_model) == GEMMA2_OK);
  REQUIRE(gemma2_tokenizer_load(argv[1], &tok) == GEMMA2_OK);
  sliced_and_saved();
  one_token_per_call();
  fed_then_restored();
  prefill_in_chunks();
  bad_options();
  gemma2_tokenizer_free(tok);
  gemma2_model_free(draft_model);
  gemma2_model_free(model);
  if (failures != 0) fprintf(stderr, "%d checks failed\n", failures);
  else printf("all checks passed\n");
  return failures == 0 ? 0 : 1;
}
