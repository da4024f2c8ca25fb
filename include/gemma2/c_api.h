/* gemma2's C ABI, for hosts that cannot link C++ (C, C#, Lua, Python
 * ctypes, Rust, ...). Plain C89-compatible declarations over opaque handles;
 * the implementation is src/c_api.cpp, built as the library gemma2::c
 * (shared or static). No C++ exception crosses this boundary.
 *
 * Errors: every call that can fail returns a gemma2_status (GEMMA2_OK = 0).
 * On failure, gemma2_last_error() gives the message, e.g. "model/config.json
 * is a directory, not a file"; it belongs to the calling thread and stays
 * valid until that thread's next failing call.
 *
 * Arguments are checked before anything changes: a rejected call leaves
 * every handle as it was, and its message names the function, the argument
 * and what is allowed ("gemma2_stream_push: id is -1, outside the
 * tokenizer's vocabulary [0, 256000)"). A NULL handle or output pointer is
 * GEMMA2_ERROR; calls that return a value instead of a status return the
 * value noted beside them for a NULL handle and also set the last error.
 * The _free functions accept NULL (and do nothing). Boolean fields of the
 * option structs must be 0 or 1, so that garbage in a struct not made by
 * its _default() function is caught.
 *
 * Arrays in: (pointer, count) may be NULL only when count is 0; a count
 * whose bytes would pass PTRDIFF_MAX is an error.
 *
 * Buffers: calls that return text or bytes take (buffer, capacity,
 * &length). The length needed is always stored; when it exceeds the
 * capacity the call returns GEMMA2_BUFFER_TOO_SMALL and writes nothing, so
 * a NULL buffer with capacity 0 asks for the size. The length pointer is
 * required; a NULL buffer with a capacity above 0, or a capacity whose
 * bytes would pass PTRDIFF_MAX, is an error.
 *
 * Threads: a model is immutable and may be shared by sessions on several
 * threads; a session, sampler, tokenizer stream or any other handle is used
 * by one thread at a time. */
#ifndef GEMMA2_C_API_H
#define GEMMA2_C_API_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32) && defined(GEMMA2_C_SHARED)
#if defined(GEMMA2_C_BUILDING)
#define GEMMA2_C_API __declspec(dllexport)
#else
#define GEMMA2_C_API __declspec(dllimport)
#endif
#elif defined(__GNUC__)
#define GEMMA2_C_API __attribute__((visibility("default")))
#else
#define GEMMA2_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef enum gemma2_status {
  GEMMA2_OK = 0,
  GEMMA2_ERROR = 1,            /* see gemma2_last_error() */
  GEMMA2_BUFFER_TOO_SMALL = 2, /* the length needed was stored; nothing written */
  GEMMA2_CANCELLED = 3         /* a callback asked to stop */
} gemma2_status;

typedef struct gemma2_model gemma2_model;
typedef struct gemma2_tokenizer gemma2_tokenizer;
typedef struct gemma2_session gemma2_session;
typedef struct gemma2_sampler gemma2_sampler;
typedef struct gemma2_stream gemma2_stream;

/* The calling thread's last error message ("" when there was none). */
GEMMA2_C_API const char* gemma2_last_error(void);
/* The library version, "MAJOR.MINOR.PATCH". */
GEMMA2_C_API const char* gemma2_version(void);

/* ---- Models ---------------------------------------------------------- */

typedef struct gemma2_load_options {
  int threads;             /* threads for the matrix products, 1 to 512 (default 1) */
  const char* weight_type; /* NULL: as stored; "f32", "bf16", "f16", "q8", "q4" */
  const char*
      kernels; /* NULL: $GEMMA2_KERNELS, else the best set; "portable", "avx2", "avx512", "neon", "neon-dotprod" */
  int copied;  /* 0: map the weight files; 1: read them into memory */
  uint64_t max_memory; /* refuse to load a model needing more bytes; 0: no limit */
  int check_finite;    /* 1: reject weights holding NaN or infinity */
  /* NULL or "exact": the prefill of BF16 weights reproduces float32;
   * "bf16": its activations are rounded to bf16, about twice as fast on
   * CPUs with bf16 products (llama.cpp's precision). */
  const char* prefill_precision;
} gemma2_load_options;

/* The defaults, to adjust before gemma2_model_load. */
GEMMA2_C_API gemma2_load_options gemma2_load_options_default(void);

/* A Hugging Face model directory or a .gguf file; options may be NULL. */
GEMMA2_C_API gemma2_status gemma2_model_load(const char* path, const gemma2_load_options* options,
                                             gemma2_model** model);
GEMMA2_C_API void gemma2_model_free(gemma2_model* model);
/* 0 for a NULL model, as is the next one. */
GEMMA2_C_API int32_t gemma2_model_vocab_size(const gemma2_model* model);
GEMMA2_C_API int32_t gemma2_model_context_length(const gemma2_model* model);
/* The kernel set in use ("avx512", "avx2", "portable", ...); "" for NULL. */
GEMMA2_C_API const char* gemma2_model_kernels(const gemma2_model* model);

/* ---- Tokenizer ------------------------------------------------------- */

/* A tokenizer.model file, a model directory holding one, or a .gguf file
 * (its embedded tokenizer, else a tokenizer.model beside it). */
GEMMA2_C_API gemma2_status gemma2_tokenizer_load(const char* path, gemma2_tokenizer** tokenizer);
GEMMA2_C_API void gemma2_tokenizer_free(gemma2_tokenizer* tokenizer);
/* These three give -1 for a NULL tokenizer (the last error tells it apart
 * from a vocabulary without the piece). */
GEMMA2_C_API int32_t gemma2_tokenizer_bos_id(const gemma2_tokenizer* tokenizer);
GEMMA2_C_API int32_t gemma2_tokenizer_eos_id(const gemma2_tokenizer* tokenizer);
/* <end_of_turn>, or -1 when the vocabulary has none. */
GEMMA2_C_API int32_t gemma2_tokenizer_end_of_turn_id(const gemma2_tokenizer* tokenizer);

/* UTF-8 text (length bytes) to ids, with <bos> first when add_bos != 0. */
GEMMA2_C_API gemma2_status gemma2_tokenize(const gemma2_tokenizer* tokenizer, const char* text, size_t length,
                                           int add_bos, int32_t* ids, size_t capacity, size_t* count);
/* Ids to UTF-8 text (not NUL-terminated: `length` bytes). Every id must be
 * in the tokenizer's vocabulary. */
GEMMA2_C_API gemma2_status gemma2_detokenize(const gemma2_tokenizer* tokenizer, const int32_t* ids, size_t count,
                                             char* text, size_t capacity, size_t* length);
/* A user turn and the model turn's opening, in Gemma's chat format. */
GEMMA2_C_API gemma2_status gemma2_format_user_turn(const char* message, size_t length, char* text, size_t capacity,
                                                   size_t* written);

/* Streaming detokenization: the text each new token completes (a
 * character split over byte pieces comes out whole). The tokenizer must
 * outlive the stream. */
GEMMA2_C_API gemma2_status gemma2_stream_new(const gemma2_tokenizer* tokenizer, gemma2_stream** stream);
GEMMA2_C_API void gemma2_stream_free(gemma2_stream* stream);
/* *text points into the stream, valid until its next call. An id outside
 * the tokenizer's vocabulary is an error and leaves the stream as it was. */
GEMMA2_C_API gemma2_status gemma2_stream_push(gemma2_stream* stream, int32_t id, const char** text, size_t* length);
/* What is left at the end of the sequence (an incomplete character). */
GEMMA2_C_API gemma2_status gemma2_stream_finish(gemma2_stream* stream, const char** text, size_t* length);

/* ---- Sessions -------------------------------------------------------- */

/* A sequence with its own KV cache of `capacity` positions (0: the model's
 * context; at most the model's context), full and float32. The model must
 * outlive it. */
GEMMA2_C_API gemma2_status gemma2_session_new(const gemma2_model* model, int32_t capacity, gemma2_session** session);

typedef struct gemma2_session_options {
  int32_t capacity;       /* positions, 0 to the model's context (0: the model's context) */
  const char* kv_storage; /* NULL or "f32" (exact); "bf16" (half the memory); "int8" (Q8_0 per head, 17/64) */
  int sliding_window;     /* 0: every layer keeps every position; 1: local layers keep a ring of their
                           * window (the same logits, about half the memory at 8192 positions) */
} gemma2_session_options;

/* The defaults (gemma2_session_new's cache), to adjust. */
GEMMA2_C_API gemma2_session_options gemma2_session_options_default(void);
/* A session with the cache the options describe; options may be NULL. A
 * saved session restores into the same kind of cache. */
GEMMA2_C_API gemma2_status gemma2_session_new_with(const gemma2_model* model, const gemma2_session_options* options,
                                                   gemma2_session** session);
GEMMA2_C_API void gemma2_session_free(gemma2_session* session);
/* Runs `count` more tokens; the logits after the last one are kept for
 * gemma2_session_sample and, when `logits` is not NULL, copied there
 * (vocab_size floats). Each id must be in the model's vocabulary and count
 * at most the positions left (capacity - length); count 0 runs only the
 * pending tokens (the one a rollback keeps, the last one generated), and
 * is an error when there are none. A rejected feed changes nothing. */
GEMMA2_C_API gemma2_status gemma2_session_feed(gemma2_session* session, const int32_t* ids, size_t count,
                                               float* logits);
/* An independent copy of the session (shared prefix computed once). */
GEMMA2_C_API gemma2_status gemma2_session_fork(const gemma2_session* session, gemma2_session** copy);
/* Keeps the first `count` tokens (count <= gemma2_session_length). */
GEMMA2_C_API gemma2_status gemma2_session_rollback(gemma2_session* session, size_t count);
/* Context shift: keeps the first `keep` tokens, drops the next `drop`
 * (cached ones: keep + drop <= the positions run) and moves the rest down,
 * re-rotating their cached keys, so a session at its capacity goes on (see
 * context_shift.hpp for what the model then sees). When nothing is pending
 * the last token becomes pending, as after a rollback. A reply in progress
 * goes on. */
GEMMA2_C_API gemma2_status gemma2_session_shift(gemma2_session* session, int32_t keep, int32_t drop);
/* The automatic context shift of the session's generate calls: when a
 * prompt chunk or a decoding pass has no room, keep `keep` tokens, drop
 * `drop` after them (0: half of the rest) and go on, instead of stopping
 * with GEMMA2_STOP_CONTEXT_FULL; appended tokens may then exceed the room
 * left. `enabled` 1 turns it on, 0 off (the default). A setting of the handle:
 * fork copies it, save does not keep it. */
GEMMA2_C_API gemma2_status gemma2_session_set_context_shift(gemma2_session* session, int enabled, int32_t keep,
                                                            int32_t drop);
/* Tokens in the session; 0 for NULL. */
GEMMA2_C_API size_t gemma2_session_length(const gemma2_session* session);
GEMMA2_C_API gemma2_status gemma2_session_tokens(const gemma2_session* session, int32_t* ids, size_t capacity,
                                                 size_t* count);
/* The session as a versioned, checksummed blob, and back. The blob holds
 * the tokens (pending ones too), the cached keys and values, the last
 * feed's logits, and a reply in progress (its options but the draft model,
 * its partial character, held stop-string text and counts), so the restored
 * session's next generate call continues exactly as the saved one's would
 * have, given the same sampler object (its state is the host's: keep it)
 * and tokenizer; a restored reply drafts without a draft model (the tokens
 * are the same). Blobs of C++'s Session::save restore too. */
GEMMA2_C_API gemma2_status gemma2_session_save(const gemma2_session* session, uint8_t* data, size_t capacity,
                                               size_t* size);
GEMMA2_C_API gemma2_status gemma2_session_restore(const gemma2_model* model, const uint8_t* data, size_t size,
                                                  gemma2_session** session);

/* ---- Sampling and generation ----------------------------------------- */

typedef struct gemma2_sampling_params {
  int greedy;               /* 1: argmax (the other fields but penalties are ignored) */
  float temperature;        /* 0 also means greedy */
  int32_t top_k;            /* 0: off */
  float top_p;              /* 1: off */
  float min_p;              /* 0: off */
  float repetition_penalty; /* 1: off */
  float frequency_penalty;
  float presence_penalty;
  int32_t penalty_last_n; /* 0: the whole sequence */
  uint64_t seed;
} gemma2_sampling_params;

/* Plain sampling at temperature 1, every processor off. */
GEMMA2_C_API gemma2_sampling_params gemma2_sampling_params_default(void);
GEMMA2_C_API gemma2_status gemma2_sampler_new(const gemma2_sampling_params* params, gemma2_sampler** sampler);
GEMMA2_C_API void gemma2_sampler_free(gemma2_sampler* sampler);
/* The next token from the logits of the session's last feed. */
GEMMA2_C_API gemma2_status gemma2_session_sample(gemma2_session* session, gemma2_sampler* sampler, int32_t* token);

/* Structured output: the sampler then chooses only tokens that keep the
 * text a prefix of a sentence of a GBNF grammar (llama.cpp's format), or of
 * JSON matching a JSON Schema (the subset in include/gemma2/json_schema.hpp),
 * over `tokenizer`'s vocabulary. The constrained text starts with the
 * sampler's next token; with max_tokens > 0 it is complete within that many
 * tokens (0: no budget; negative is an error). A malformed grammar or
 * schema is an error naming the line and column or the keyword and where;
 * the sampler is then unchanged. A new grammar replaces the old one (one
 * per reply); NULL text removes it. */
GEMMA2_C_API gemma2_status gemma2_sampler_set_grammar(gemma2_sampler* sampler, const gemma2_tokenizer* tokenizer,
                                                      const char* gbnf, int32_t max_tokens);
GEMMA2_C_API gemma2_status gemma2_sampler_set_json_schema(gemma2_sampler* sampler, const gemma2_tokenizer* tokenizer,
                                                          const char* schema, int32_t max_tokens);

/* Whitespace between the tokens of JSON output (never inside strings). */
typedef enum gemma2_json_whitespace {
  GEMMA2_JSON_COMPACT = 0, /* none: {"a":1,"b":[2,3]} (the default: a budget is not spent on spaces) */
  GEMMA2_JSON_SPACES = 1,  /* at most one space between tokens */
  GEMMA2_JSON_FREE = 2     /* a space, or a line break and up to 16 spaces or tabs */
} gemma2_json_whitespace;

typedef struct gemma2_json_options {
  int whitespace; /* a gemma2_json_whitespace */
} gemma2_json_options;

/* The defaults (GEMMA2_JSON_COMPACT), to adjust before
 * gemma2_sampler_set_json_schema_with. */
GEMMA2_C_API gemma2_json_options gemma2_json_options_default(void);
/* gemma2_sampler_set_json_schema with options; NULL options are the
 * defaults, which gemma2_sampler_set_json_schema uses. An unknown
 * whitespace value is an error. */
GEMMA2_C_API gemma2_status gemma2_sampler_set_json_schema_with(gemma2_sampler* sampler,
                                                               const gemma2_tokenizer* tokenizer, const char* schema,
                                                               const gemma2_json_options* options, int32_t max_tokens);

/* 1 when the constrained text is complete and nothing may follow it; 0 for
 * NULL. */
GEMMA2_C_API int gemma2_sampler_finished(const gemma2_sampler* sampler);

/* ---- Generation: replies, sliced or whole ------------------------------
 *
 * A reply is generated by one call or by many (a few tokens, or a time
 * budget, per frame): the tokens, the text, the stop-string handling and
 * the stop reason are the same either way. The session holds the reply in
 * progress (the streaming decoder's partial character, the held stop-string
 * text, the counts); the sampler is the host's and must be the same object
 * throughout a reply (its random state and grammar position are part of
 * it). A reply starts with the first generate call after the session was
 * created, fed, appended to, rolled back, or after the last reply ended; a
 * call after a reply ended by a complete grammar with the same sampler is
 * an error (set a new grammar or remove it). */

/* Why a generate call returned. */
typedef enum gemma2_stop_reason {
  GEMMA2_STOP_NONE = 0,         /* no generate call yet */
  GEMMA2_STOP_MAX_TOKENS = 1,   /* the reply's max_tokens were generated */
  GEMMA2_STOP_TOKEN = 2,        /* <eos> or <end_of_turn> was sampled (passed to the callback, kept pending) */
  GEMMA2_STOP_STRING = 3,       /* the text reached one of the stop strings */
  GEMMA2_STOP_CALLBACK = 4,     /* the callback returned non-zero */
  GEMMA2_STOP_CANCELLED = 5,    /* reserved: cancelled from another thread */
  GEMMA2_STOP_CONTEXT_FULL = 6, /* the session has no room for another position */
  GEMMA2_STOP_COMPLETE = 7,     /* the sampler's grammar text is complete */
  /* Pauses: the reply goes on with the next generate call. */
  GEMMA2_STOP_CALL_LIMIT = 8, /* this call generated call_max_tokens */
  GEMMA2_STOP_TIME_BUDGET = 9 /* the next step would not fit this call's time budget */
} gemma2_stop_reason;

typedef struct gemma2_generate_options {
  /* Read when a reply starts: */
  int32_t max_tokens;              /* tokens of the whole reply; 0: until a stop, a grammar's end or a full context */
  int32_t prefill_chunk;           /* prompt tokens per step, >= 1 (default 512; a frame loop wants few) */
  const char* const* stop_strings; /* the reply ends where its text first contains one (not printed) */
  size_t stop_string_count;
  int32_t lookup_ngram;            /* speculative decoding by prompt lookup: n-gram length 1-16; 0: off */
  const gemma2_model* draft_model; /* speculative decoding by a smaller model of the same vocabulary; NULL: off */
  int32_t draft_max;               /* guesses checked per pass, 1-6 (default 6) */
  /* Read by every call: */
  int32_t call_max_tokens; /* this call returns after this many tokens; 0: no limit */
  double time_budget_ms;   /* this call returns before a step (a prompt chunk or a decoding pass)
                            * that would end past this many ms; it runs at least one step; 0: none */
} gemma2_generate_options;

/* What a generate call did. */
typedef struct gemma2_generate_result {
  size_t generated;        /* tokens this call sampled */
  gemma2_stop_reason stop; /* why it returned */
  int done;                /* 1: the reply is over; 0: paused, the next call continues it */
} gemma2_generate_result;

/* The defaults: max_tokens 0, prefill_chunk 512, no stop strings, no
 * drafting (draft_max 6), no per-call limits. */
GEMMA2_C_API gemma2_generate_options gemma2_generate_options_default(void);

/* Called with each generated token and the text it makes final (often
 * empty: part of a character, a possible stop string's start, the stop
 * token), and at the end of a reply with token -1 for text left over (an
 * incomplete character); `text` is NUL-terminated. Return non-zero to stop
 * the reply (the call then returns GEMMA2_CANCELLED, reason
 * GEMMA2_STOP_CALLBACK). */
typedef int (*gemma2_token_callback)(void* user, int32_t token, const char* text, size_t length);

/* Appends tokens to the session without running them: the next generate
 * call runs them (in prefill_chunk steps, within its time budget) and
 * starts a reply after them. The ids and the room left are checked. */
GEMMA2_C_API gemma2_status gemma2_session_append(gemma2_session* session, const int32_t* ids, size_t count);

/* Continues the session's reply, or starts one: runs the pending tokens
 * (appended, or a previous reply's last token), samples, streams and feeds
 * until the reply ends or this call's limits pause it. With nothing
 * pending it samples from the last feed's logits. Stop tokens are the
 * tokenizer's <eos> and <end_of_turn>; `tokenizer` may be NULL (no text, no
 * stop tokens), and must be the same throughout a reply. `options` may be
 * NULL (the defaults); `result` may be NULL. A stop token is passed to the
 * callback and kept pending: the next feed or reply runs it first. */
GEMMA2_C_API gemma2_status gemma2_session_generate_with(gemma2_session* session, gemma2_sampler* sampler,
                                                        const gemma2_tokenizer* tokenizer,
                                                        const gemma2_generate_options* options,
                                                        gemma2_token_callback callback, void* user,
                                                        gemma2_generate_result* result);

/* gemma2_session_generate_with with the default options and at most
 * max_new tokens in this call (call_max_tokens; 0 returns at once):
 * consecutive calls continue one reply. `generated` (may be NULL) counts
 * the tokens this call sampled. */
GEMMA2_C_API gemma2_status gemma2_session_generate(gemma2_session* session, gemma2_sampler* sampler,
                                                   const gemma2_tokenizer* tokenizer, int32_t max_new,
                                                   gemma2_token_callback callback, void* user, size_t* generated);

/* Why the session's last generate call returned (GEMMA2_STOP_NONE before
 * any; NULL session: GEMMA2_STOP_NONE and the last error is set). */
GEMMA2_C_API gemma2_stop_reason gemma2_session_stop_reason(const gemma2_session* session);

#ifdef __cplusplus
}
#endif

#endif /* GEMMA2_C_API_H */
