#!/usr/bin/env bash
# The shared library exports the public API (salvo_*) and nothing else: internals (sv_*)
# stay hidden, so applications cannot come to depend on them.
#   check_exports.sh LIBSALVO.so
set -euo pipefail
syms=$(nm -D --defined-only "$1" | awk '{print $3}' | grep -v '^_' || true)
bad=$(grep -v '^salvo_' <<<"$syms" || true)
if [ -n "$bad" ]; then
	echo "exported symbols outside the salvo_ API:" >&2
	echo "$bad" >&2
	exit 1
fi
grep -qx salvo_err2str <<<"$syms" || { echo "salvo_err2str is not exported" >&2; exit 1; }
echo "exports: $(wc -l <<<"$syms") salvo_ symbols, no internals"
