#!/usr/bin/python3
"""The README's Python decoder (tests/integration/batch_decode.py) reads the envelopes
salvo's codec makes (tests/codec/make_envelopes.c): plain, lz4 and zstd, at several levels,
small and large, record for record; refuses the malformed ones and those over its limit;
and is the code the README shows.

    test_batch_decode.py CASE MAKE_ENVELOPES

Exit 0 pass, 1 fail, 77 skipped (python3-lz4 or python3-zstandard missing).
"""
import os
import subprocess
import sys
import tempfile
import types

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))


def fail(msg):
    sys.stderr.write("FAIL: %s\n" % msg)
    sys.exit(1)


def load(d, name):
    """The properties (as pika's BasicProperties names them), body and expected records of
    envelope name in directory d."""
    with open(os.path.join(d, name + ".props")) as f:
        kv = dict(line.rstrip("\n").split("=", 1) for line in f)
    props = types.SimpleNamespace(content_type=kv["content_type"],
                                  content_encoding=kv["content_encoding"] or None,
                                  headers={"x-salvo-records": int(kv["x-salvo-records"])})
    with open(os.path.join(d, name + ".body"), "rb") as f:
        body = f.read()
    with open(os.path.join(d, name + ".expect")) as f:
        expect = [bytes.fromhex(line.rstrip("\n")) for line in f]
    return props, body, expect


def decodes(d, names):
    from batch_decode import salvo_records
    for name in names:
        props, body, expect = load(d, name)
        got = salvo_records(props, body)
        if got != expect:
            fail("%s: %d records decoded, %d expected%s" % (
                name, len(got), len(expect),
                "" if len(got) != len(expect) else " (contents differ)"))
        print("%s: %d records, %d bytes on the wire, %d decoded" % (
            name, len(got), len(body), sum(4 + len(r) for r in got)))


def refuses(d, names, limit=64 << 20):
    from batch_decode import salvo_records
    for name in names:
        props, body, _ = load(d, name)
        try:
            got = salvo_records(props, body, limit)
        except Exception as e:  # noqa: BLE001 (each library raises its own kind)
            print("%s: refused: %s: %s" % (name, type(e).__name__, e))
            continue
        fail("%s: accepted (%d records)" % (name, len(got)))


def envelopes(d, prefix):
    return sorted(n[:-len(".body")] for n in os.listdir(d)
                  if n.startswith(prefix) and n.endswith(".body"))


def not_envelope(d):
    from batch_decode import salvo_records
    props, body, _ = load(d, "plain")
    for ct in (None, "application/json", "application/vnd.salvo.batch+v2"):
        props.content_type = ct
        if salvo_records(props, body) is not None:
            fail("content_type %r read as an envelope" % ct)


def limit(d):
    """Large envelopes under a limit below their size: refused, however the codec says it;
    with the limit exactly their size: read."""
    from batch_decode import salvo_records
    for name in ("lz4-large", "zstd-large"):
        props, body, expect = load(d, name)
        size = sum(4 + len(r) for r in expect)
        refuses(d, [name], limit=size - 1)
        if salvo_records(props, body, size) != expect:
            fail("%s: not decoded with the limit exactly its size" % name)


def same_as_readme(d):
    """The README shows batch_decode.py's code from its first import on, unchanged."""
    with open(os.path.join(here, "..", "integration", "batch_decode.py")) as f:
        code = f.read()
    code = code[code.index("import struct"):]
    with open(os.path.join(here, "..", "..", "README.md")) as f:
        readme = f.read()
    start = readme.index("### Reading envelopes in Python")
    block = readme[readme.index("```python\n", start) + len("```python\n"):]
    block = block[:block.index("```")]
    if block != code:
        fail("README's decoder differs from tests/integration/batch_decode.py")


def main(cases):
    if sys.argv[1:] == ["--list"]:
        print("\n".join(cases))
        return
    name, make_envelopes = sys.argv[1], sys.argv[2]
    if name not in cases:
        fail("no case named %r" % name)
    try:
        import lz4.frame  # noqa: F401
        import zstandard  # noqa: F401
    except ImportError as e:
        print("skipped: %s (apt-get install python3-lz4 python3-zstandard)" % e)
        sys.exit(77)
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([make_envelopes, d], check=True)
        cases[name](d)


main({
    "plain": lambda d: decodes(d, envelopes(d, "plain")),
    "lz4": lambda d: decodes(d, envelopes(d, "lz4")),
    "zstd": lambda d: decodes(d, envelopes(d, "zstd")),
    "malformed": lambda d: refuses(d, envelopes(d, "bad-")),
    "not an envelope": not_envelope,
    "limit": limit,
    "same as the README": same_as_readme,
})
