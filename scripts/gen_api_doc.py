#!/usr/bin/env python3
"""Generates docs/api.md from include/heed.h: every section banner becomes a heading,
every declaration (function, type, macro) a code block followed by its comment.
Usage: python3 scripts/gen_api_doc.py [include/heed.h] > docs/api.md
The test 'api-doc' fails when docs/api.md differs from this output."""
import re
import sys

BANNER = re.compile(r"^/\* [-=]{8,} (.+?) \*/$")


def clean_comment(text):
    text = re.sub(r"^/\*+\s?|\s*\*+/$", "", text.strip())
    lines = [re.sub(r"^\s*\* ?", "", l) for l in text.splitlines()]
    return " ".join(l.strip() for l in lines if l.strip())


def read_spliced(path):
    """heed.h with each #include "heed/x.h" replaced by that file's lines."""
    import os
    lines = []
    for line in open(path).read().splitlines():
        m = re.match(r'#include "(heed/[a-z_]+\.h)"', line)
        if m:
            lines += open(os.path.join(os.path.dirname(path), m.group(1))).read().splitlines()
        else:
            lines.append(line)
    return lines


GUARD = re.compile(r"^#(ifndef|include|ifdef|endif)\b|^#define HEED_[A-Z_]+_H$")


def main(path):
    src = [l for l in read_spliced(path) if not GUARD.match(l.strip())]
    out = ["# heed API reference", "",
           "Generated from `include/heed.h` by `scripts/gen_api_doc.py`; the header is the source of truth.", ""]
    i, pending, started = 0, [], False
    while i < len(src):
        line = src[i]
        m = BANNER.match(line.strip())
        if m:
            started = True
            out += ["## " + m.group(1), ""]
            pending = []
            i += 1
            continue
        if not started:
            if line.startswith("#define HEED_VERSION"):
                started = True
                out += ["## basics", ""]
            i += 1
            continue
        s = line.strip()
        if s.startswith("/*"):
            block = [line]
            while "*/" not in src[i]:
                i += 1
                block.append(src[i])
            pending.append(clean_comment("\n".join(block)))
            i += 1
            continue
        if not s or s == "}" or s.startswith('extern "C"'):
            i += 1
            continue
        # a declaration: up to the line ending it
        decl = [line]
        if s.startswith("#define"):
            while decl[-1].rstrip().endswith("\\"):
                i += 1
                decl.append(src[i])
        else:
            depth = line.count("{") - line.count("}")
            while not (depth == 0 and re.sub(r"/\*.*?\*/", "", decl[-1]).rstrip().endswith(";")) and i + 1 < len(src):
                i += 1
                decl.append(src[i])
                depth += src[i].count("{") - src[i].count("}")
        i += 1
        code = "\n".join(decl)
        if code.startswith("#define HEED__"):  # internal helper macros
            pending = []
            continue
        trailing = re.findall(r"/\*(.*?)\*/", decl[-1]) if len(decl) == 1 else []
        out += ["```c", code, "```"]
        text = " ".join(pending + [t.strip() for t in trailing if t.strip() and t.strip() not in " ".join(pending)])
        if text:
            out += [text]
        out += [""]
        pending = []
    while out and out[-1] == "":
        out.pop()
    print("\n".join(out))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "include/heed.h")
