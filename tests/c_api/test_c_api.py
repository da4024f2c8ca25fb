"""The C ABI from Python's ctypes, as a Python host would use it: the demo
model's reference greedy continuations (models/<demo>/expected.json),
token for token, through load, tokenize, feed, sample and detokenize.

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
    }.items():
        getattr(lib, name).argtypes = args

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
    lib.gemma2_sampler_free(sampler)
    lib.gemma2_tokenizer_free(tok)
    print("c_api from Python:", len(expected["cases"]), "cases, kernels", lib.gemma2_model_kernels(model).decode(),
          "vocab", vocab, "failures", failures)
    lib.gemma2_model_free(model)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
