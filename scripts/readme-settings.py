#!/usr/bin/env python3
"""Regenerates the settings table from `switchyard serve --help` in README.md
and docs/configuration.md (or the files given as arguments).

Usage: go run ./cmd/switchyard serve --help | scripts/readme-settings.py [FILE...]
The table sits between the markers <!-- settings --> and <!-- /settings -->.
"""
import re
import sys

rows = []
lines = sys.stdin.read().splitlines()
for i, line in enumerate(lines):
    m = re.match(r'\s+--(\S+)\s+(.*)', line)
    if not m:
        continue
    flag, usage = m.group(1), m.group(2).strip()
    m2 = re.match(r'\s+env: (.*); default: (.*)', lines[i + 1])
    env, default = m2.group(1), m2.group(2)
    envs = ", ".join("`%s`" % e.strip() for e in env.split(",") if e.strip())
    default = "`%s`" % default if default != '-' else "—"
    rows.append("| `--%s` | %s | %s | %s |" % (flag, envs, default, usage.replace("|", "\\|")))

table = "\n".join([
    "| flag | environment | default | what it does |",
    "|---|---|---|---|",
    *rows,
    "| `HEADER_<NAME>=value` | (environment only) | — | adds `<Name>: value` to every response; underscores become hyphens (`HEADER_X_FRAME_OPTIONS=DENY`) |",
    "| positional `UPSTREAM [WORKERS]` | | | gunicorn-proxy's form: `switchyard serve gunicorn:8080 3` |",
])
for path in sys.argv[1:] or ["README.md", "docs/configuration.md"]:
    text = open(path).read()
    new, n = re.subn(r"<!-- settings -->.*<!-- /settings -->",
                     "<!-- settings -->\n" + table + "\n<!-- /settings -->", text, flags=re.S)
    if n != 1:
        sys.exit("%s: no <!-- settings --> ... <!-- /settings --> block" % path)
    open(path, "w").write(new)
    print("%s: %d settings" % (path, len(rows)), file=sys.stderr)
