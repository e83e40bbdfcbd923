#!/usr/bin/env python3
"""RE2 (PyPI google-re2), the engine Go's regexp reproduces, as the reference of
go-regexp/tests/against_re2.rs.

Reads JSON lines {"pattern": str, "texts": [str]} from the file named by its argument and writes,
for each, one JSON line:
{"error": str} when RE2 refuses the pattern, else {"matches": [bool]} (a match anywhere in
each text, as Go's MatchString).
"""
import json
import sys

import re2

with open(sys.argv[1], encoding="utf-8") as cases:
    lines = cases.readlines()
for line in lines:
    case = json.loads(line)
    try:
        compiled = re2.compile(case["pattern"])
    except re2.error as error:
        message = error.args[0] if error.args else ""
        if isinstance(message, bytes):
            message = message.decode("utf-8", "replace")
        print(json.dumps({"error": str(message)}))
        continue
    print(json.dumps({"matches": [compiled.search(text) is not None for text in case["texts"]]}))
