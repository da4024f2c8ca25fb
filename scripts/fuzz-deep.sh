#!/usr/bin/env bash
# Fuzzes every libFuzzer target to depth (default 10 million executions each,
# two at a time), then merges what each found with its committed corpus into
# a minimized one (libFuzzer -merge=1 over edges only, -use_counters=0: the
# fewest inputs that keep every covered edge, so the corpus stays small).
#   scripts/fuzz-deep.sh [executions] [target ...]
# Logs (executions, coverage, findings) go to build-fuzz/deep/<target>.log;
# a crash leaves its input in build-fuzz/deep/<target>/artifacts/ and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(safetensors config gguf gguf_tokenizer tokenizer chat session grammar json_schema)
cmake -S tests/fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ > /dev/null
cmake --build build-fuzz -j2 > /dev/null
limits=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=256)

fuzz_one() {
  local t=$1 work=build-fuzz/deep/$1
  rm -rf "$work" && mkdir -p "$work/corpus" "$work/artifacts"
  cp -r "tests/fuzz/corpus/$t/." "$work/corpus/"
  build-fuzz/fuzz_$t "${limits[@]}" -runs="$runs" -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" > "build-fuzz/deep/$t.log" 2>&1
  rm -rf "$work/merged" && mkdir "$work/merged"
  build-fuzz/fuzz_$t "${limits[@]}" -use_counters=0 -merge=1 "$work/merged" "tests/fuzz/corpus/$t" "$work/corpus" \
    > "build-fuzz/deep/$t.merge.log" 2>&1
  rm -rf "tests/fuzz/corpus/$t" && mv "$work/merged" "tests/fuzz/corpus/$t"
  echo "$t: $(grep -E '^#[0-9]+' "build-fuzz/deep/$t.log" | tail -1)"
}

mkdir -p build-fuzz/deep
status=0
for ((i = 0; i < ${#targets[@]}; i += 2)); do
  fuzz_one "${targets[i]}" & a=$!
  b=""
  if [ $((i + 1)) -lt ${#targets[@]} ]; then fuzz_one "${targets[i + 1]}" & b=$!; fi
  wait $a || status=1
  [ -z "$b" ] || wait $b || status=1
done
exit $status
