#!/usr/bin/env python3
"""Checks the structure docs/ARCHITECTURE.md promises, from the sources alone.

  scripts/check-structure.py [--root DIR] [--graph]

- Every header under include/gemma2 belongs to exactly one layer of the
  document's layer table, and every file the document names exists.
- Includes between the library's headers run one way: no header includes one
  of a higher layer, and there is no circle of includes.
- No header is longer than --max-header lines (450), no function outside
  tests/ is longer than --max-function lines (80), and no test case longer
  than --max-test-case lines (60).
- No file cites a design document other than docs/ARCHITECTURE.md.

--graph prints the include graph (one edge a line, with layers) instead.
Exits 1 and prints one line per fault when anything is off.
"""
import argparse
import fnmatch
import pathlib
import re
import sys

HEADER_SUFFIXES = (".hpp", ".h", ".inc")
SOURCE_SUFFIXES = (".hpp", ".h", ".inc", ".cpp", ".c")
INCLUDE = re.compile(r'^\s*#\s*include\s+[<"](gemma2/[^>"]+)[>"]', re.M)


def headers(root):
    base = root / "include"
    return sorted(str(p.relative_to(base / "gemma2")) for p in (base / "gemma2").rglob("*") if p.suffix in HEADER_SUFFIXES)


def read_layers(doc):
    """The layer table: rows `| N name | `a.hpp`, `kernels/*` ... |` under '## Layers'."""
    text = doc.read_text(encoding="utf-8")
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0] if "## Layers" in text else ""
    layers = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.match(r"^\d+\b", cells[0]):
            layers.append((int(re.match(r"^\d+", cells[0]).group()), cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return layers


def layer_of(name, layers):
    hits = [(n, label) for n, label, pats in layers if any(fnmatch.fnmatchcase(name, p) for p in pats)]
    return hits


def includes(root, name):
    text = (root / "include" / "gemma2" / name).read_text(encoding="utf-8")
    return sorted({m[len("gemma2/"):] for m in INCLUDE.findall(text)})


def circles(graph):
    """Strongly connected components with more than one node, or a self edge (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def strip_code(text):
    """The text with comments, string and character literals blanked (newlines kept)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "R" and text.startswith('R"', i) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'R"([^(\s]*)\(', text[i:])
            if not m:
                out.append(c)
                i += 1
                continue
            end = text.find(")" + m.group(1) + '"', i)
            end = n if end < 0 else end + len(m.group(1)) + 2
            out.append(re.sub(r"[^\n]", " ", text[i:end]))
            i = end
        elif c in "\"'":
            if c == "'" and i > 0 and text[i - 1].isalnum():  # a digit separator (1'000)
                out.append(" ")
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            out.append(" " * (min(j + 1, n) - i))
            i = j + 1
        else:
            out.append(c)
            i += 1
    text = "".join(out)
    # Preprocessor lines (with their continuations) hold no function bodies.
    return re.sub(r"(?m)^[ \t]*#(?:[^\n]*\\\n)*[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group()), text)


SCOPE_HEAD = re.compile(r"\b(namespace|class|struct|union|enum)\b|\bextern\s*$")


def functions(text):
    """(first line, last line, head) of every function body at namespace or class scope."""
    code = strip_code(text)
    found, scopes, head_start = [], [], 0
    i, n = 0, len(code)
    while i < n:
        c = code[i]
        if c in ";}" or (c == "{" and scopes and scopes[-1][0] == "body"):
            if c == "}" and scopes:
                kind, start, head = scopes.pop()
                if kind == "function":
                    found.append((code.count("\n", 0, start) + 1, code.count("\n", 0, i) + 1, head))
            head_start = i + 1
            if c == "{":
                scopes.append(("body", i, ""))
        elif c == "{":
            head = code[head_start:i].strip()
            inside = scopes and scopes[-1][0] in ("function", "body")
            if inside:
                kind = "body"
            elif SCOPE_HEAD.search(head.split("(")[0]) and "(" not in head.split("{")[0].split(":")[0]:
                kind = "scope"
            elif "(" in head and not re.search(r"=\s*$|=\s*\{?$", head) and not re.match(r"^[^(]*=", head):
                kind = "function"
            else:
                kind = "body"
            scopes.append((kind, head_start + len(code[head_start:i]) - len(code[head_start:i].lstrip()), " ".join(head.split())[:100]))
            head_start = i + 1
        i += 1
    return found


def test_cases(text):
    """(first line, last line, name) of every doctest TEST_CASE."""
    code = strip_code(text)
    out = []
    for m in re.finditer(r"\bTEST_CASE(?:_TEMPLATE)?\s*\(", code):
        line = code.count("\n", 0, m.start()) + 1
        name = re.match(r'\s*"((?:[^"\\]|\\.)*)"', text[m.end():])
        brace = code.find("{", m.end())
        depth, i = 0, brace
        while i < len(code):
            depth += {"{": 1, "}": -1}.get(code[i], 0)
            if depth == 0:
                break
            i += 1
        out.append((line, code.count("\n", 0, i) + 1, name.group(1) if name else "?"))
    return out


def check(root, args):
    faults = []
    doc = root / "docs" / "ARCHITECTURE.md"
    if not doc.exists():
        return ["docs/ARCHITECTURE.md is missing"]
    layers = read_layers(doc)
    if not layers:
        faults.append("docs/ARCHITECTURE.md: no layer table under '## Layers'")
    names = headers(root)
    level = {}
    for h in names:
        hits = layer_of(h, layers)
        if len(hits) != 1:
            faults.append(f"include/gemma2/{h}: in {len(hits)} layers of docs/ARCHITECTURE.md ({', '.join(l for _, l in hits) or 'none'}), must be in one")
        else:
            level[h] = hits[0][0]
    graph = {h: [d for d in includes(root, h)] for h in names}
    for h, deps in graph.items():
        for d in deps:
            if d not in graph:
                faults.append(f"include/gemma2/{h}: includes gemma2/{d}, which does not exist")
            elif h in level and d in level and level[d] > level[h]:
                faults.append(f"include/gemma2/{h} (layer {level[h]}) includes gemma2/{d} of the higher layer {level[d]}")
    for comp in circles(graph):
        faults.append("include circle: " + " -> ".join(comp))
    # Files the document names exist (a name may be a path's tail: `main.cpp`).
    text = doc.read_text(encoding="utf-8")
    skip = {".git", "build"}
    files = [str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and not skip & set(p.relative_to(root).parts)]
    for ref in sorted(set(re.findall(r"`([\w./*-]+\.(?:hpp|h|inc|cpp|c|md|py|sh|cmake|txt))`", text))):
        if "*" in ref:
            continue
        if not any(f == ref or f.endswith("/" + ref) for f in files):
            faults.append(f"docs/ARCHITECTURE.md names {ref}, which does not exist")
    # Sizes.
    for h in names:
        lines = (root / "include" / "gemma2" / h).read_text(encoding="utf-8").count("\n")
        if lines > args.max_header:
            faults.append(f"include/gemma2/{h}: {lines} lines (at most {args.max_header})")
    for top in ("include", "src", "examples", "bench"):
        for p in sorted((root / top).rglob("*")):
            if p.suffix not in SOURCE_SUFFIXES or not p.is_file():
                continue
            for first, last, head in functions(p.read_text(encoding="utf-8", errors="replace")):
                if last - first + 1 > args.max_function:
                    faults.append(f"{p.relative_to(root)}:{first}: a function of {last - first + 1} lines (at most {args.max_function}): {head}")
    for p in sorted((root / "tests").rglob("*.cpp")):
        for first, last, name in test_cases(p.read_text(encoding="utf-8", errors="replace")):
            if last - first + 1 > args.max_test_case:
                faults.append(f"{p.relative_to(root)}:{first}: a test case of {last - first + 1} lines (at most {args.max_test_case}): {name}")
    # One design document.
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in SOURCE_SUFFIXES + (".md", ".txt", ".cmake") and "build" not in p.parts and ".git" not in p.parts:
            if re.search(r"\bDESIGN\.md\b", p.read_text(encoding="utf-8", errors="replace")) and p.name != "check-structure.py":
                faults.append(f"{p.relative_to(root)}: cites DESIGN.md; the design document is docs/ARCHITECTURE.md")
    return faults


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", default=pathlib.Path(__file__).resolve().parent.parent, type=pathlib.Path)
    ap.add_argument("--max-header", type=int, default=450)
    ap.add_argument("--max-function", type=int, default=80)
    ap.add_argument("--max-test-case", type=int, default=60)
    ap.add_argument("--graph", action="store_true")
    args = ap.parse_args()
    root = args.root.resolve()
    if args.graph:
        layers = read_layers(root / "docs" / "ARCHITECTURE.md") if (root / "docs" / "ARCHITECTURE.md").exists() else []
        lv = lambda h: ",".join(str(n) for n, _ in layer_of(h, layers)) or "?"
        for h in headers(root):
            for d in includes(root, h):
                print(f"{h} ({lv(h)}) -> {d} ({lv(d)})")
        return 0
    faults = check(root, args)
    for f in faults:
        print(f)
    if not faults:
        print("structure: ok (layers, include direction, no circles, header and function sizes, one design document)")
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main())
