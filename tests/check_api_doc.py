#!/usr/bin/env python3
"""Fails when docs/api.md is stale: regenerate with python3 scripts/gen_api_doc.py > docs/api.md"""
import subprocess
import sys

root = sys.argv[1]
want = subprocess.run([sys.executable, root + "/scripts/gen_api_doc.py", root + "/include/heed.h"],
                      capture_output=True, text=True, check=True).stdout
have = open(root + "/docs/api.md").read()
if want != have:
    print("docs/api.md is stale: run  python3 scripts/gen_api_doc.py > docs/api.md")
    sys.exit(1)
print("docs/api.md matches include/heed.h")
