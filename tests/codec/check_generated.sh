#!/usr/bin/env bash
# Regenerate the codec from the spec into a scratch tree and fail on any difference from
# the committed sources. Skips (77) when the spec is not beside the source tree.
#   check_generated.sh SOURCE_ROOT [SPEC]
set -euo pipefail
src=$1
spec=${2:-}
[ -n "$spec" ] || spec="$src/../shared/spec/amqp-rabbitmq-0.9.1.json"
if [ ! -f "$spec" ]; then
	echo "spec not found at $spec: nothing to compare against" >&2
	exit 77
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
python3 "$src/scripts/gen_codec.py" --spec "$spec" --out "$out"
status=0
for f in src/codec/methods.h src/codec/methods.c tests/codec/methods.txt; do
	if ! diff -u "$src/$f" "$out/$f"; then
		echo "$f is stale: run python3 scripts/gen_codec.py --spec $spec" >&2
		status=1
	fi
done
[ $status -eq 0 ] && echo "generated codec matches $spec"
exit $status
