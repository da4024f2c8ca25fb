"""The C ABI from Python's ctypes, as a Python host would use it: the demo
model's reference greedy continuations (models/<demo>/expected.json),
token for token, through load, tokenize, feed, sample and detokenize; and
the mistakes a dynamic host makes (None for a handle, a negative or
out-of-vocabulary id, a count past the end) rejected with a message naming
the function and the argument.

    python3 test_c_api.py LIBRARY MODEL_DIR
"""
import ctypes as C
import json
import os
import sys


def main(lib_path, model_dir):
    lib = C.CDLL(lib_path)
    lib.gemma2_last_error.restype = C.c_char_p
    lib.gemma2_version.restype = C.c_char_p
    lib.gemma2_model_kernels.restype = C.c_char_p
    p = C.c_void_p
    for name, args in {
        "gemma2_model_load": [C.c_char_p, p, C.POINTER(p)],
        "gemma2_model_free": [p],
        "gemma2_model_vocab_size": [p],
        "gemma2_model_kernels": [p],
        "gemma2_tokenizer_load": [C.c_char_p, C.POINTER(p)],
        "gemma2_tokenizer_free": [p],
        "gemma2_tokenize": [p, C.c_char_p, C.c_size_t, C.c_int, C.POINTER(C.c_int32), C.c_size_t, C.POINTER(C.c_size_t)],
        "gemma2_detokenize": [p, C.POINTER(C.c_int32), C.c_size_t, C.c_char_p, C.c_size_t, C.POINTER(C.c_size_t)],
        "gemma2_session_new": [p, C.c_int32, C.POINTER(p)],
        "gemma2_session_free": [p],
        "gemma2_session_feed": [p, C.POINTER(C.c_int32), C.c_size_t, C.POINTER(C.c_float)],
        "gemma2_sampler_new": [p, C.POINTER(p)],
        "gemma2_sampler_free": [p],
        "gemma2_session_sample": [p, p, C.POINTER(C.c_int32)],
        "gemma2_session_rollback": [p, C.c_size_t],
        "gemma2_session_length": [p],
        "gemma2_stream_new": [p, C.POINTER(p)],
        "gemma2_stream_push": [p, C.c_int32, C.POINTER(C.c_char_p), C.POINTER(C.c_size_t)],
        "gemma2_stream_free": [p],
        "gemma2_sampler_finished": [p],
    }.items():
        getattr(lib, name).argtypes = args
    lib.gemma2_session_length.restype = C.c_size_t

    class SamplingParams(C.Structure):
        _fields_ = [("greedy", C.c_int), ("temperature", C.c_float), ("top_k", C.c_int32), ("top_p", C.c_float),
                    ("min_p", C.c_float), ("repetition_penalty", C.c_float), ("frequency_penalty", C.c_float),
                    ("presence_penalty", C.c_float), ("penalty_last_n", C.c_int32), ("seed", C.c_uint64)]

    lib.gemma2_sampling_params_default.restype = SamplingParams

    def ok(status):
        if status != 0:
            raise RuntimeError(lib.gemma2_last_error().decode())

    failures = 0
    model = p()
    bad = lib.gemma2_model_load(b"/nonexistent", None, C.byref(model))
    if bad != 1 or b"/nonexistent" not in lib.gemma2_last_error():
        print("FAILED: a missing model is not a clear error"); failures += 1
    ok(lib.gemma2_model_load(model_dir.encode(), None, C.byref(model)))
    tok = p()
    ok(lib.gemma2_tokenizer_load(model_dir.encode(), C.byref(tok)))
    vocab = lib.gemma2_model_vocab_size(model)
    params = lib.gemma2_sampling_params_default()
    params.greedy = 1
    sampler = p()
    ok(lib.gemma2_sampler_new(C.byref(params), C.byref(sampler)))

    expected = json.load(open(os.path.join(model_dir, "expected.json")))
    for case in expected["cases"]:
        text = case["prompt"].encode()
        n = C.c_size_t()
        ids = (C.c_int32 * 4096)()
        ok(lib.gemma2_tokenize(tok, text, len(text), 1, ids, 4096, C.byref(n)))
        prompt_ids = list(ids[: n.value])
        if prompt_ids != case["prompt_ids"]:
            print("FAILED: tokenization of", repr(case["prompt"])); failures += 1
        session = p()
        ok(lib.gemma2_session_new(model, 0, C.byref(session)))
        ok(lib.gemma2_session_feed(session, ids, n, None))
        out = []
        token = C.c_int32()
        for _ in case["greedy_ids"]:
            ok(lib.gemma2_session_sample(session, sampler, C.byref(token)))
            out.append(token.value)
            ok(lib.gemma2_session_feed(session, C.byref(token), 1, None))
        if out != case["greedy_ids"]:
            print("FAILED: greedy continuation of", repr(case["prompt"]), out, "!=", case["greedy_ids"]); failures += 1
        arr = (C.c_int32 * len(out))(*out)
        length = C.c_size_t()
        if lib.gemma2_detokenize(tok, arr, len(out), None, 0, C.byref(length)) != 2:
            print("FAILED: the size query of detokenize"); failures += 1
        buf = C.create_string_buffer(length.value)
        ok(lib.gemma2_detokenize(tok, arr, len(out), buf, length.value, C.byref(length)))
        lib.gemma2_session_free(session)

    # Mistakes: a call, what it must return, how its error must start.
    session = p()
    ok(lib.gemma2_session_new(model, 0, C.byref(session)))
    prompt = (C.c_int32 * 2)(2, 100)
    ok(lib.gemma2_session_feed(session, prompt, 2, None))
    stream = p()
    ok(lib.gemma2_stream_new(tok, C.byref(stream)))
    piece, length = C.c_char_p(), C.c_size_t()
    outside = (C.c_int32 * 2)(100, vocab)
    vocabulary = ", outside the tokenizer's vocabulary [0, %d)" % vocab
    for call, want, error in [
        (lambda: lib.gemma2_stream_push(stream, -1, C.byref(piece), C.byref(length)), 1,
         "gemma2_stream_push: id is -1" + vocabulary),
        (lambda: lib.gemma2_detokenize(tok, outside, 2, None, 0, C.byref(length)), 1,
         "gemma2_detokenize: ids[1] is %d" % vocab + vocabulary),
        (lambda: lib.gemma2_session_feed(session, outside, 2, None), 1,
         "gemma2_session_feed: ids[1] is %d, outside the model's vocabulary [0, %d)" % (vocab, vocab)),
        (lambda: lib.gemma2_session_rollback(session, 3), 1, "gemma2_session_rollback: count is 3, outside [0, 2]"),
        (lambda: lib.gemma2_session_feed(None, prompt, 2, None), 1, "gemma2_session_feed: session is NULL"),
        (lambda: lib.gemma2_model_vocab_size(None), 0, "gemma2_model_vocab_size: model is NULL"),
        (lambda: lib.gemma2_session_length(None), 0, "gemma2_session_length: session is NULL"),
        (lambda: lib.gemma2_sampler_finished(None), 0, "gemma2_sampler_finished: sampler is NULL"),
    ]:
        got = call()
        message = lib.gemma2_last_error().decode()
        if got != want or not message.startswith(error):
            print("FAILED: expected", want, "and", repr(error), "got", got, "and", repr(message)); failures += 1
    if lib.gemma2_session_length(session) != 2:
        print("FAILED: a rejected feed or rollback changed the session"); failures += 1
    lib.gemma2_stream_free(stream)
    lib.gemma2_session_free(session)
    lib.gemma2_sampler_free(sampler)
    lib.gemma2_tokenizer_free(tok)
    print("c_api from Python:", len(expected["cases"]), "cases, kernels", lib.gemma2_model_kernels(model).decode(),
          "vocab", vocab, "failures", failures)
    lib.gemma2_model_free(model)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
