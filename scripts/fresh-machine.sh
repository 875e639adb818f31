#!/usr/bin/env bash
# The README's two commands on a fresh machine, for real: build a minimal Debian 12 root
# with debootstrap (--variant=minbase: no iproute2, no procps, no policy-rc.d, nothing of
# salvo's), copy a clean clone of this repository's HEAD into it (no ../shared beside it),
# and run `scripts/test.sh` and then `scripts/run.sh` inside it as root with no standard
# input and an empty environment. Prints how long each step took and the closing lines of
# both commands; exits non-zero if either fails.
#
#   scripts/fresh-machine.sh
#
# Needs root, the network to a Debian mirror (it downloads a base system and every
# package setup.sh installs), and about 3 GB in SALVO_FRESH_DIR. Takes about 9 minutes on
# the project's 2-core machine (517 s in the last run, the base system cached). Not part of CI; run it before resolving a change to
# dependencies or scripts.
#
# Isolation: everything runs in a mount and PID namespace of its own (unshare). /proc,
# /sys, /dev, /dev/pts and /dev/shm are mounted into the root there and unmounted by this
# script when the commands end; the namespace's end takes anything left with it, and when
# its first process exits the kernel ends every process it started. The network is the
# host's (the install needs the mirror), so every server the commands start listens on
# 127.0.0.1 on ports derived from SALVO_FRESH_PORT (default 5779), clear of the default
# test port 5679.
#
# Environment:
#   SALVO_FRESH_DIR      work directory (default: a new mktemp -d under /var/tmp); the root
#                        is DIR/root, the logs DIR/test.log and DIR/run.log
#   SALVO_FRESH_KEEP=1   keep DIR afterwards (default: deleted on success, kept on failure)
#   SALVO_FRESH_MIRROR   Debian mirror (default http://deb.debian.org/debian)
#   SALVO_FRESH_CACHE    a debootstrap tarball of the base packages: made there if missing,
#                        then reused (saves the base download, not the install)
#   SALVO_FRESH_PORT     SALVO_TEST_PORT inside the root (default 5779)
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

log() { printf '[%s] fresh-machine: %s\n' "$(date +%T)" "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, mounts)"
suite=bookworm
mirror=${SALVO_FRESH_MIRROR:-http://deb.debian.org/debian}
port=${SALVO_FRESH_PORT:-5779}
cache=${SALVO_FRESH_CACHE:-}

if [ "${1:-}" = --inside ]; then
	# Second half, in the new namespaces: mount, run both commands, unmount.
	root=$2
	mounts=()
	unmount_all() {
		local i
		for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
			umount -l "${mounts[i]}" 2>/dev/null || log "could not unmount ${mounts[i]}"
		done
	}
	trap unmount_all EXIT
	mnt() { # mnt TARGET MOUNT-ARGS...
		local target=$root$1
		shift
		mkdir -p "$target"
		mount "$@" "$target" || die "mount $* $target failed"
		mounts+=("$target")
	}
	mnt /proc -t proc proc
	mkdir -p "$root/sys"
	if mount -t sysfs -o ro sysfs "$root/sys" 2>/dev/null; then
		mounts+=("$root/sys")
	else
		mnt /sys --rbind /sys
	fi
	mnt /dev -t tmpfs -o mode=755,nosuid tmpfs
	for d in null zero full random urandom tty; do
		touch "$root/dev/$d"
		mount --bind "/dev/$d" "$root/dev/$d"
		mounts+=("$root/dev/$d")
	done
	ln -sf /proc/self/fd "$root/dev/fd"
	ln -sf /proc/self/fd/0 "$root/dev/stdin"
	ln -sf /proc/self/fd/1 "$root/dev/stdout"
	ln -sf /proc/self/fd/2 "$root/dev/stderr"
	mnt /dev/pts -t devpts -o newinstance,ptmxmode=0666 devpts
	ln -sf pts/ptmx "$root/dev/ptmx"
	mnt /dev/shm -t tmpfs -o mode=1777 tmpfs
	mnt /tmp -t tmpfs -o mode=1777 tmpfs
	cp /etc/resolv.conf "$root/etc/resolv.conf"

	# A fresh machine's environment: nothing of this session's.
	inside() {
		env -i HOME=/root LANG=C.UTF-8 TERM=dumb CI=true SALVO_TEST_PORT="$port" \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			chroot "$root" /bin/bash -c "cd /root/salvo && $1" </dev/null
	}
	status=0
	t0=$SECONDS
	log "scripts/test.sh (log: $root/../test.log)"
	inside 'scripts/test.sh' >"$root/../test.log" 2>&1 || status=$?
	echo "test.sh: exit $status after $((SECONDS - t0)) s" >"$root/../test.status"
	t0=$SECONDS
	rstatus=0
	log "scripts/run.sh (log: $root/../run.log)"
	inside 'scripts/run.sh' >"$root/../run.log" 2>&1 || rstatus=$?
	echo "run.sh: exit $rstatus after $((SECONDS - t0)) s" >"$root/../run.status"
	[ -e "$root/usr/sbin/policy-rc.d" ] && log "setup.sh left /usr/sbin/policy-rc.d in the root" && status=1
	[ $status -eq 0 ] && [ $rstatus -eq 0 ]
	exit
fi

start=$SECONDS
if ! command -v debootstrap >/dev/null; then
	log "installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends debootstrap </dev/null >/dev/null
fi
command -v unshare >/dev/null || die "unshare (util-linux) is missing"

dir=${SALVO_FRESH_DIR:-$(mktemp -d /var/tmp/salvo-fresh.XXXXXX)}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
root=$dir/root
[ ! -e "$root" ] || die "$root exists already: give SALVO_FRESH_DIR a new directory"
ok=0
finish() {
	if [ $ok -eq 1 ] && [ "${SALVO_FRESH_KEEP:-0}" != 1 ]; then
		rm -rf --one-file-system -- "$dir"
	else
		log "kept $dir"
	fi
}
trap finish EXIT

if ! git diff --quiet HEAD -- 2>/dev/null; then
	log "note: uncommitted changes are not part of the clone; testing $(git rev-parse --short HEAD)"
fi

t0=$SECONDS
if [ -n "$cache" ] && [ ! -f "$cache" ]; then
	log "debootstrap --make-tarball $cache"
	mkdir -p "$(dirname "$cache")"
	debootstrap --variant=minbase --make-tarball="$cache" "$suite" "$dir/tarball-work" "$mirror" >"$dir/debootstrap.log" 2>&1 ||
		die "debootstrap --make-tarball failed: see $dir/debootstrap.log"
	rm -rf -- "$dir/tarball-work"
fi
log "debootstrap --variant=minbase $suite into $root"
if [ -n "$cache" ]; then
	debootstrap --variant=minbase --unpack-tarball="$cache" "$suite" "$root" "$mirror" >>"$dir/debootstrap.log" 2>&1
else
	debootstrap --variant=minbase "$suite" "$root" "$mirror" >"$dir/debootstrap.log" 2>&1
fi || die "debootstrap failed: see $dir/debootstrap.log"
log "base system in $((SECONDS - t0)) s ($(du -sh --one-file-system "$root" | cut -f1))"
# No package ships /etc/hosts: the Debian installer (or a cloud or container image) writes
# it, so every installed machine has one and a debootstrap root has none. Without it
# "localhost" does not resolve (RabbitMQ's node name, the TLS tests' host name). This is
# the installer's file.
if [ ! -e "$root/etc/hosts" ]; then
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
fi

git clone --quiet --no-hardlinks "$repo" "$root/root/salvo"
log "clean clone of $(git -C "$root/root/salvo" rev-parse --short HEAD) in /root/salvo (no ../shared)"

status=0
unshare --mount --pid --fork --propagation private -- \
	bash "$repo/scripts/fresh-machine.sh" --inside "$root" || status=$?

echo
for f in test run; do
	echo "== scripts/$f.sh: last lines"
	tail -n 12 "$dir/$f.log" 2>/dev/null || echo "(no log)"
	cat "$dir/$f.status" 2>/dev/null || echo "$f.sh: did not run"
	echo
done
echo "fresh machine: exit $status, total $((SECONDS - start)) s"
[ $status -eq 0 ] && ok=1
exit $status
