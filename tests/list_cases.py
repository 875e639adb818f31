#!/usr/bin/env python3
"""The case names of a test program, read from its source, so that meson runs one test per
case without a second list to keep by hand (tests/meson.build).

    list_cases.py SOURCE               the names, one per line, in the table's order
    list_cases.py --check PROGRAM NAME...
                                       PROGRAM --list must print exactly NAME..., in order;
                                       prints them (the build keeps them as a stamp)

The table each kind of source names its cases in:
  C        the one initialized array of struct test_case (check.h) or struct CMUnitTest
           (cmocka): each entry's first string literal ({"name", ...}, NAMED_TEST("name",
           fn)), or for cmocka_unit_test(fn) the function's name, as cmocka names it;
  shell    the patterns of the one top-level `case ... in` (a `*)` fallback excluded);
  Python   the keys of the dict literal passed to main() (tests/sink/sinktest.py).

What differs between the cases of a program (timeouts, is_parallel : false, the suite,
the environment) is not in the tables but in meson, as overrides keyed by case name next
to the program's defaults (tests/meson.build): they are meson's business, the table is
the program's, and the C tables stay the plain names-and-functions the programs need.
An override naming no case fails the configuration, so a renamed case cannot leave its
properties behind. --check closes the other gap: the scraper reads source text, the
program answers --list from its compiled table; the build compares the two.
"""
import ast
import re
import subprocess
import sys


def fail(msg):
    sys.stderr.write("list_cases.py: %s\n" % msg)
    sys.exit(1)


def c_cases(path, text):
    # Comments could hold anything that looks like an entry.
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)
    tables = re.findall(r"struct\s+(?:test_case|CMUnitTest)\s+\w+\s*\[\s*\]\s*=\s*\{(.*?)\n\s*\};",
                        text, flags=re.S)
    if len(tables) != 1:
        fail("%s: %d initialized case tables, expected 1" % (path, len(tables)))
    names = []
    for literal, fn in re.findall(r'(?:\{|\b[A-Z_]+\()\s*"([^"\\]*)"|\bcmocka_unit_test\((\w+)\)',
                                  tables[0]):
        names.append(literal or fn)
    return names


def shell_cases(path, text):
    blocks = re.findall(r"^case \S+ in\n(.*?)^esac$", text, flags=re.S | re.M)
    if len(blocks) != 1:
        fail("%s: %d top-level case statements, expected 1" % (path, len(blocks)))
    names = []
    for quoted, bare in re.findall(r"^(?:'([^']+)'|([^\s'*()][^\s()]*))\)", blocks[0], flags=re.M):
        names.append(quoted or bare)
    return names


def python_cases(path, text):
    calls = [node for node in ast.walk(ast.parse(text, path))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
             and node.func.id == "main" and len(node.args) == 1
             and isinstance(node.args[0], ast.Dict)]
    if len(calls) != 1:
        fail("%s: %d calls of main with a dict of cases, expected 1" % (path, len(calls)))
    keys = calls[0].args[0].keys
    if not all(isinstance(k, ast.Constant) and isinstance(k.value, str) for k in keys):
        fail("%s: a case name that is not a string literal" % path)
    return [k.value for k in keys]


def cases(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if path.endswith((".c", ".h")):
        names = c_cases(path, text)
    elif path.endswith(".sh"):
        names = shell_cases(path, text)
    elif path.endswith(".py"):
        names = python_cases(path, text)
    else:
        fail("%s: not C, shell or Python" % path)
    if not names:
        fail("%s: no cases" % path)
    for name in names:
        if names.count(name) > 1:
            fail("%s: case '%s' named twice" % (path, name))
    return names


def check(program, want):
    have = subprocess.run([program, "--list"], stdout=subprocess.PIPE, check=True,
                          universal_newlines=True).stdout.splitlines()
    if have != want:
        fail("%s --list differs from the cases meson runs:\n  --list: %s\n  meson:  %s"
             % (program, have, want))
    print("\n".join(want))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3:])
    elif len(sys.argv) == 2:
        print("\n".join(cases(sys.argv[1])))
    else:
        fail("usage: list_cases.py SOURCE | list_cases.py --check PROGRAM NAME...")


if __name__ == "__main__":
    main()
