#!/usr/bin/env bash
# Regenerate the codec from the spec committed in scripts/spec into a scratch tree and fail
# on any difference from the committed sources (or if the spec is missing: never skipped).
#   check_generated.sh SOURCE_ROOT
set -euo pipefail
src=$1
spec="$src/scripts/spec/amqp-rabbitmq-0.9.1.json"
if [ ! -f "$spec" ]; then
	echo "spec missing: $spec" >&2
	exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 "$src/scripts/gen_codec.py" --spec "$spec" --out "$out"
status=0
for f in src/codec/methods.h src/codec/methods.c tests/codec/methods.txt; do
	if ! diff -u "$src/$f" "$out/$f"; then
		echo "$f is stale: run python3 scripts/gen_codec.py" >&2
		status=1
	fi
done
[ $status -eq 0 ] && echo "generated codec matches scripts/spec/$(basename "$spec")"
exit $status
