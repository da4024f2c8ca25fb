#!/usr/bin/env bash
# What one source file using gemma2 costs to compile: CPU time (user + sys),
# wall time and the compiler's peak memory (/usr/bin/time -v), for the
# umbrella header alone and for bench/compile_cost/host.cpp (load a model,
# a session, a sampler, generate with a tokenizer) built header-only, with
# GEMMA2_KERNELS_EXTERN and with GEMMA2_COMPILED, including either the
# umbrella or the one header it needs; and for src/gemma2.cpp, the compiled
# unit itself. Prints a Markdown table.
#
#   scripts/compile-cost.sh [-O2 -O3 ...]     (default: -O2 -O3)
#
# Environment: CXX (default g++), CXXFLAGS (added to every compile),
# REPEAT (runs per row, the fastest kept; default 1).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cxx=${CXX:-g++}
repeat=${REPEAT:-1}
levels=("$@")
[ ${#levels[@]} -eq 0 ] && levels=(-O2 -O3)
if [ ! -x /usr/bin/time ]; then
  echo "compile-cost.sh needs /usr/bin/time (Debian: apt-get install time)" >&2
  exit 1
fi

eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo '#include <gemma2/gemma2.hpp>' > "$work/umbrella.cpp"

# One compile of $1 with flags $2...: "cpu_s wall_s peak_mb" (fastest of REPEAT runs by CPU time).
measure() {
  local src=$1 best="" i
  shift
  for ((i = 0; i < repeat; ++i)); do
    # shellcheck disable=SC2086
    /usr/bin/time -v -o "$work/time.txt" "$cxx" -std=c++17 "$@" ${CXXFLAGS:-} $eigen -I"$root/include" \
      -c "$src" -o "$work/out.o"
    local line
    line=$(awk -F': ' '
      /User time/ {u = $2} /System time/ {s = $2} /Maximum resident/ {m = $2}
      /Elapsed \(wall clock\)/ {n = split($2, p, ":"); w = 0; for (k = 1; k <= n; ++k) w = w * 60 + p[k]}
      END {printf "%.1f %.1f %.0f\n", u + s, w, m / 1024}' "$work/time.txt")
    if [ -z "$best" ] || awk -v a="${line%% *}" -v b="${best%% *}" 'BEGIN {exit !(a < b)}'; then best=$line; fi
  done
  echo "$best"
}

row() {  # label, source, flags...
  local label=$1 src=$2
  shift 2
  local r
  r=$(measure "$src" "$@")
  read -r cpu wall mb <<< "$r"
  printf '| %s | %s | %s s | %s s | %s MB |\n' "$label" "$level" "$cpu" "$wall" "$mb"
}

host=$root/bench/compile_cost/host.cpp
echo "$($cxx --version | head -1); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo '| source file | level | CPU (user+sys) | wall | peak compiler memory |'
echo '|---|---|---|---|---|'
for level in "${levels[@]}"; do
  row '`#include <gemma2/gemma2.hpp>` alone' "$work/umbrella.cpp" "$level"
  row 'host, umbrella, header-only' "$host" "$level" -DGEMMA2_HOST_UMBRELLA
  row 'host, umbrella, `GEMMA2_KERNELS_EXTERN`' "$host" "$level" -DGEMMA2_HOST_UMBRELLA -DGEMMA2_KERNELS_EXTERN
  row 'host, umbrella, `GEMMA2_COMPILED`' "$host" "$level" -DGEMMA2_HOST_UMBRELLA -DGEMMA2_COMPILED
  row 'host, `<gemma2/generate.hpp>`, header-only' "$host" "$level"
  row 'host, `<gemma2/generate.hpp>`, `GEMMA2_KERNELS_EXTERN`' "$host" "$level" -DGEMMA2_KERNELS_EXTERN
  row 'host, `<gemma2/generate.hpp>`, `GEMMA2_COMPILED`' "$host" "$level" -DGEMMA2_COMPILED
  row '`src/gemma2.cpp` (the compiled unit, once)' "$root/src/gemma2.cpp" "$level"
done
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
