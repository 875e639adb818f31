#!/usr/bin/env bash
# scripts/setup.sh on a machine where every package is missing, without installing anything:
# a PATH shim makes dpkg-query report each package absent and stands in for apt-get (it
# records its arguments and what policy-rc.d held while it "installed"), and
# SALVO_SETUP_POLICY_RC points policy-rc.d into a temporary directory, so the real
# /usr/sbin/policy-rc.d is never touched.
#   test_setup.sh CASE SETUP_SH
# CASE: policy-absent   no policy-rc.d before: one forbidding starts (exit 101) exists
#                       during the install, none after; exit 0
#       policy-present  a policy-rc.d of the machine's own before: used as it is, left
#                       byte for byte and mode for mode; exit 0
#       all-present     nothing missing: exit 0 and apt-get never called
#       install-fails   apt-get install failing: setup.sh fails too, policy-rc.d removed
set -euo pipefail

# --list: the case names, read from the case statement below (tests/list_cases.py).
[[ ${1-} != --list ]] || exec python3 "$(dirname "$0")/../list_cases.py" "$0"
case_=$1
setup=$2
tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/root/usr/sbin"
policy="$tmp/root/usr/sbin/policy-rc.d"
log="$tmp/apt.log"

fail() { echo "FAIL ($case_): $*" >&2; [ -f "$tmp/out" ] && sed 's/^/  setup.sh: /' "$tmp/out" >&2; exit 1; }

# dpkg-query -W -f='${Status}' PKG: "not installed" unless the case says otherwise.
cat >"$tmp/bin/dpkg-query" <<'SH'
#!/bin/sh
[ "$SHIM_INSTALLED" = 1 ] && { printf 'install ok installed'; exit 0; }
echo "dpkg-query: no packages found matching $4" >&2
exit 1
SH
# apt-get: one line per call, then the policy file's state at that moment.
cat >"$tmp/bin/apt-get" <<'SH'
#!/bin/sh
echo "apt-get $*" >>"$SHIM_LOG"
if [ -e "$SHIM_POLICY" ]; then
	"$SHIM_POLICY"; echo "policy-rc.d present, exits $?" >>"$SHIM_LOG"
else
	echo "policy-rc.d absent" >>"$SHIM_LOG"
fi
[ "$1" = install ] && [ "$SHIM_INSTALL_FAILS" = 1 ] && exit 100
exit 0
SH
# Root whoever runs the test, so sudo is never needed.
printf '#!/bin/sh\n[ "$1" = -u ] && { echo 0; exit 0; }\nexec /usr/bin/id "$@"\n' >"$tmp/bin/id"
chmod 755 "$tmp/bin/"*

export SHIM_LOG=$log SHIM_POLICY=$policy SHIM_INSTALLED=0 SHIM_INSTALL_FAILS=0
export SALVO_SETUP_POLICY_RC=$policy
run_setup() {
	status=0
	PATH="$tmp/bin:$PATH" bash "$setup" </dev/null >"$tmp/out" 2>&1 || status=$?
	echo "setup.sh exited $status"
}

# The packages setup.sh lists, as it would pass them to apt-get install.
expect_install() {
	local listed
	listed=$(sed -n "s/^setup: installing //p" "$tmp/out")
	[ -n "$listed" ] || fail "setup.sh did not say what it installs"
	grep -qxF "apt-get update" "$log" || fail "no apt-get update"
	grep -qxF "apt-get install -y --no-install-recommends $listed" "$log" ||
		fail "apt-get install was not called with the missing packages: $(cat "$log")"
	for p in rabbitmq-server liburing-dev libck-dev iproute2 procps; do
		grep -qw -- "$p" <<<"$listed" || fail "$p is not among the packages installed"
	done
	# Every apt-get call ran with service starts forbidden.
	if grep -q 'policy-rc.d absent\|exits [^1]' "$log"; then
		fail "apt-get ran without a policy-rc.d exiting 101: $(cat "$log")"
	fi
}

case $case_ in
policy-absent)
	run_setup
	[ "$status" -eq 0 ] || fail "exit status $status, expected 0"
	expect_install
	[ ! -e "$policy" ] || fail "policy-rc.d left behind: $(cat "$policy")"
	;;
policy-present)
	printf '#!/bin/sh\n# the machine'"'"'s own\nexit 101\n' >"$policy"
	chmod 700 "$policy"
	before=$(stat -c '%a %s' "$policy")$(sha256sum <"$policy")
	run_setup
	[ "$status" -eq 0 ] || fail "exit status $status, expected 0"
	expect_install
	[ -e "$policy" ] || fail "the machine's policy-rc.d was removed"
	after=$(stat -c '%a %s' "$policy")$(sha256sum <"$policy")
	[ "$before" = "$after" ] || fail "policy-rc.d changed: '$before' -> '$after'"
	;;
all-present)
	SHIM_INSTALLED=1 run_setup
	[ "$status" -eq 0 ] || fail "exit status $status, expected 0"
	[ ! -e "$log" ] || fail "apt-get called with every package present: $(cat "$log")"
	grep -q 'packages present' "$tmp/out" || fail "no 'packages present' line"
	;;
install-fails)
	SHIM_INSTALL_FAILS=1 run_setup
	[ "$status" -ne 0 ] || fail "a failed apt-get install passed for success"
	[ ! -e "$policy" ] || fail "policy-rc.d left behind after a failed install"
	;;
*)
	echo "unknown case $case_" >&2
	exit 2
	;;
esac
echo "PASS ($case_)"
