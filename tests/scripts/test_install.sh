#!/usr/bin/env bash
# Building against an installed salvo, as an application would: meson install into a
# scratch DESTDIR, then the README's quick start (examples/quickstart.c) compiled with
# nothing but `pkg-config --cflags --libs salvo` and -Wall -Wextra -Werror.
#   test_install.sh CASE BUILDDIR SOURCE_ROOT
# CASE: readme-matches   the README's quick start block is examples/quickstart.c, verbatim
#       build-against    install, compile, link (shared; and static with --static), and run
#                        it against SALVO_TEST_URI when that is set
set -euo pipefail
# --list: the case names, read from the case statement below (tests/list_cases.py).
[[ ${1-} != --list ]] || exec python3 "$(dirname "$0")/../list_cases.py" "$0"
case_=$1 builddir=$2 src=$3
fail() { echo "FAIL ($case_): $*" >&2; exit 1; }

case $case_ in
readme-matches)
	# The block after the marker line, up to its closing fence.
	block=$(awk '/^<!-- quickstart: examples\/quickstart.c -->$/ { on = 1; next }
		on && /^```c$/ { inside = 1; next }
		inside && /^```$/ { exit }
		inside { print }' "$src/README.md")
	[ -n "$block" ] || fail "no quick start block after '<!-- quickstart: examples/quickstart.c -->' in README.md"
	diff -u "$src/examples/quickstart.c" - <<<"$block" ||
		fail "README.md's quick start differs from examples/quickstart.c"
	;;
build-against)
	tmp=$(mktemp -d)
	trap 'rm -rf -- "$tmp"' EXIT
	meson install -C "$builddir" --destdir "$tmp/root" --no-rebuild --quiet >/dev/null
	pc=$(find "$tmp/root" -name salvo.pc | head -n 1)
	[ -n "$pc" ] || fail "meson install wrote no salvo.pc"
	echo "installed: ${pc#"$tmp/root"}"
	export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$tmp/root
	cflags=$(pkg-config --cflags salvo)
	libs=$(pkg-config --libs salvo)
	echo "pkg-config --cflags salvo: $cflags"
	echo "pkg-config --libs salvo: $libs"
	# Only the include directory: nothing of the libraries salvo uses inside.
	for f in $cflags; do
		[[ $f == -I* ]] || fail "--cflags hands the application '$f'"
	done
	libdir=$(pkg-config --variable=libdir salvo) # with the sysroot
	# shellcheck disable=SC2086 # word splitting of the flags is meant
	cc -std=c11 -Wall -Wextra -Werror -o "$tmp/quickstart" "$src/examples/quickstart.c" \
		$cflags $libs -Wl,-rpath,"$libdir" || fail "the quick start does not compile"
	# Statically: libsalvo.a, then what Libs.private names.
	static=$(pkg-config --static --libs salvo)
	static=${static/-lsalvo/$libdir/libsalvo.a}
	echo "pkg-config --static --libs salvo: $(pkg-config --static --libs salvo)"
	# shellcheck disable=SC2086
	cc -std=c11 -Wall -Wextra -Werror -o "$tmp/quickstart-static" "$src/examples/quickstart.c" \
		$cflags $static || fail "the quick start does not link statically: cc ... $cflags $static"
	! ldd "$tmp/quickstart-static" | grep -q libsalvo || fail "the static build loads libsalvo.so"
	ldd "$tmp/quickstart" | grep -q "libsalvo.* => $libdir/libsalvo" ||
		fail "not linked to the installed libsalvo: $(ldd "$tmp/quickstart" | grep salvo)"
	if [ -n "${SALVO_TEST_URI:-}" ]; then
		"$tmp/quickstart" "$SALVO_TEST_URI" || fail "the quick start failed against $SALVO_TEST_URI"
	else
		echo "SALVO_TEST_URI not set: compiled and linked, not run"
	fi
	;;
*)
	echo "unknown case $case_" >&2
	exit 2
	;;
esac
echo "PASS ($case_)"
