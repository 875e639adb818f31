#!/usr/bin/env bash
# Install every build, test, benchmark and broker dependency of salvo from Debian's packages.
# Idempotent: packages already installed are skipped, and apt is not touched when nothing is
# missing. Runs as root (or through sudo when available) with no terminal.
#
# The list covers a minimal Debian 12 (debootstrap --variant=minbase), where even ss and
# pgrep are missing; scripts/fresh-machine.sh proves it from an empty root.
#
# SALVO_SETUP_POLICY_RC (default /usr/sbin/policy-rc.d) names the file that forbids service
# starts during the install; tests/scripts/test_setup.sh points it into a temporary directory.
set -euo pipefail

packages=(
	# build
	meson ninja-build pkg-config gcc g++ clang libclang-rt-14-dev
	liburing-dev libck-dev libssl-dev openssl libcmocka-dev libbenchmark-dev
	liblz4-dev libzstd-dev
	# the throwaway broker and the scripts around it (ss, pgrep)
	rabbitmq-server iproute2 procps
	# tests, peers, charts
	python3 python3-pika python3-lz4 python3-zstandard valgrind librabbitmq-dev gnuplot-nox curl
)

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	echo "setup: all ${#packages[@]} packages present"
	exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "setup: need root to install: ${missing[*]}" >&2; exit 1; }
	sudo="sudo"
fi

echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A package's post-install script must not start a system-wide broker: salvo's tests run their
# own throwaway node (scripts/rabbitmq.sh). policy-rc.d answering 101 forbids service starts
# for the duration of the install only. One that exists already is left exactly as it is.
policy=${SALVO_SETUP_POLICY_RC:-/usr/sbin/policy-rc.d}
own_policy=0
cleanup() {
	# An EXIT trap's last status becomes the script's: this one must end in success.
	if [ "$own_policy" -eq 1 ]; then
		$sudo rm -f "$policy" || echo "setup: could not remove $policy" >&2
	fi
	return 0
}
trap cleanup EXIT
if [ ! -e "$policy" ]; then
	own_policy=1
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
	$sudo chmod 755 "$policy"
fi

$sudo apt-get update </dev/null
$sudo apt-get install -y --no-install-recommends "${missing[@]}" </dev/null
echo "setup: done"
