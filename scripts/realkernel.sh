#!/usr/bin/env bash
# Runs one command inside Debian's stock kernel, booted under QEMU (TCG, no
# KVM) by virtme-ng with this machine's root filesystem shared read-only over
# 9p, and exits with the command's status.  The lane for the tests marked
# `realkernel`: this host's kernel lacks bond, 802.1Q VLAN and dummy.  See
# docs/testing.md.
#
#   scripts/realkernel.sh CMD [ARG...]      CMD runs in the repository root
#
# In the guest: root, HOSTAGENT_IN_GUEST=1, the host's HOSTAGENT_*, CI and
# PYTEST_ADDOPTS variables, no stdin, TMPDIR and HOME in a fresh directory
# under the guest's writable /tmp (an overlay in guest memory: nothing
# reaches the host), /run/netns writable (the guest's /run is a tmpfs), no
# .pyc written.
#
# Environment:
#   HOSTAGENT_REQUIRE_REALKERNEL=1   a lane that cannot boot (missing kernel,
#       QEMU, virtme-ng...) fails (status 1) instead of skipping (status 0)
#   HOSTAGENT_REALKERNEL_KERNEL      the vmlinuz to boot (default: the newest
#       /boot/vmlinuz-*-amd64 with its modules)
#   HOSTAGENT_REALKERNEL_TIMEOUT     seconds before the guest is killed (300)
#   HOSTAGENT_REALKERNEL_VERBOSE=1   show the guest's boot console
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$repo"

if [ $# -eq 0 ]; then
  echo "usage: scripts/realkernel.sh CMD [ARG...]" >&2
  exit 2
fi

# A missing piece is a skip with its reason, or a failure when CI insists,
# as the other HOSTAGENT_REQUIRE_* switches do.
cannot_boot() {
  if [ -n "${HOSTAGENT_REQUIRE_REALKERNEL:-}" ] && [ "${HOSTAGENT_REQUIRE_REALKERNEL}" != 0 ]; then
    echo "realkernel: cannot boot the guest: $1 (HOSTAGENT_REQUIRE_REALKERNEL is set)" >&2
    exit 1
  fi
  echo "realkernel: SKIPPED, cannot boot the guest: $1 (HOSTAGENT_REQUIRE_REALKERNEL=1 makes this a failure)" >&2
  exit 0
}

[ "$(id -u)" -eq 0 ] || cannot_boot "needs root (the guest runs as the host user, and its tests make namespaces)"
vng="$repo/.venv/bin/vng"
[ -x "$vng" ] || cannot_boot "virtme-ng is not in .venv; run scripts/bootstrap.sh test"
command -v qemu-system-x86_64 >/dev/null || cannot_boot "qemu-system-x86_64 not found; run scripts/bootstrap.sh test (qemu-system-x86)"
# virtme-ng builds the guest's initramfs around a static busybox.
command -v busybox >/dev/null || cannot_boot "busybox not found; run scripts/bootstrap.sh test (busybox-static)"
# virtme-ng's init only hands the command its console once udev has named
# the virtio ports; it looks for udevd at these two paths first.
udevd=""
for p in /usr/lib/systemd/systemd-udevd /lib/systemd/systemd-udevd; do
  [ -e "$p" ] && { udevd=$p; break; }
done
[ -n "$udevd" ] || cannot_boot "udev is not installed (the guest's init needs its udevd); run scripts/bootstrap.sh test"

kernel=${HOSTAGENT_REALKERNEL_KERNEL:-}
if [ -z "$kernel" ]; then
  kernel=$(find /boot -maxdepth 1 -name 'vmlinuz-*-amd64' 2>/dev/null | sort -V | tail -n 1)
  [ -n "$kernel" ] || cannot_boot "no Debian kernel in /boot (vmlinuz-*-amd64); run scripts/bootstrap.sh test (linux-image-amd64)"
fi
[ -r "$kernel" ] || cannot_boot "cannot read the kernel $kernel"
version=${kernel##*/vmlinuz-}
# The guest loads bonding, 8021q, dummy... on demand from the host's
# /lib/modules, through modprobe, which needs depmod's index.
[ -d "/lib/modules/$version" ] || cannot_boot "no modules for $version in /lib/modules; reinstall linux-image-$version"
[ -s "/lib/modules/$version/modules.dep" ] || cannot_boot "modules of $version have no index; run: depmod $version"

work=$(mktemp -d "${TMPDIR:-/tmp}/hostagent-realkernel.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The venv's base Python (its stdlib) lives outside the repository when it
# is not Debian's (pyenv's, under /root, on this machine); /usr is already
# an overlay in the guest, which keeps its cache.
cached=("$repo")
pyhome=$(sed -n 's/^home *= *//p' .venv/pyvenv.cfg 2>/dev/null | head -n 1)
pyhome=$(dirname "${pyhome:-/usr/bin}")
case "$pyhome" in /usr|/usr/*|"$repo"|"$repo"/*) ;; *) [ -d "$pyhome" ] && cached+=("$pyhome") ;; esac

# What the guest runs: a bash script the guest reads from this host path
# (the whole root is shared), so any command line fits: the kernel's own
# command line, where virtme-ng would otherwise put it, holds 2 KiB.
{
  echo 'set -u'
  printf 'cd -- %q || exit 125\n' "$repo"
  # Unbuffered: a guest killed by the timeout still shows how far it got.
  echo 'export HOSTAGENT_IN_GUEST=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1'
  while IFS= read -r name; do
    [ "$name" = HOSTAGENT_IN_GUEST ] && continue
    printf 'export %s=%q\n' "$name" "${!name}"
  done < <(compgen -e | grep -E '^(HOSTAGENT_[A-Z0-9_]+|CI|PYTEST_ADDOPTS)$' || true)
  # Hypothesis's pytest plugin imports all of Hypothesis at the end of every
  # run, tests using it or not: 10 s and more under TCG.  Without the plugin
  # @given still works; only its report options are gone.
  echo 'export PYTEST_ADDOPTS="-p no:hypothesispytest${PYTEST_ADDOPTS:+ $PYTEST_ADDOPTS}"'
  # The guest's /tmp is an overlay whose writes stay in guest memory; a
  # fresh directory there keeps the host's leftovers out of the tests' way.
  echo 'export TMPDIR=$(mktemp -d /tmp/hostagent-guest.XXXXXX) || exit 125'
  echo 'export HOME=$TMPDIR/home; mkdir -p "$HOME" /run/netns'
  # virtme-ng's root share keeps no page cache (9p cache=none): every
  # import re-reads its file from QEMU, several times slower under TCG.  A
  # second share of / (added below), mounted with the cache on, is bound
  # over the repository and the venv's Python; the host's files do not
  # change under a test run, which is what cache=loose assumes.
  echo 'mkdir -p /run/hostagent-root'
  echo 'if mount -t 9p -o ro,trans=virtio,version=9p2000.L,access=any,msize=512000,cache=loose hostagent-root /run/hostagent-root; then'
  for dir in "${cached[@]}"; do
    printf '  mount --bind /run/hostagent-root%q %q\n' "$dir" "$dir"
  done
  echo 'fi'
  printf 'exec'; printf ' %q' "$@"; echo
} > "$work/guest.sh"

# Stand-ins for udevd and udevadm: the real udevd loads a driver for every
# emulated device (kvm, ahci, cdrom...), which costs ten seconds or more
# under TCG; the guest only needs the virtio ports named, as udev's rule
# would.  systemd-tmpfiles (five seconds) sets up nothing the tests use.
cat > "$work/udev-standin" <<'EOF'
#!/bin/sh
# scripts/realkernel.sh's stand-in: as udevadm, nothing to do; as udevd,
# link /dev/virtio-ports/NAME to each named virtio port, waiting for QEMU
# to name them all (5 s at most).
case "$0" in *udevadm) exit 0 ;; esac
mkdir -p /dev/virtio-ports
i=0
while [ "$i" -lt 100 ]; do
  pending=0
  for port in /sys/class/virtio-ports/vport*; do
    name=
    read -r name < "$port/name" 2>/dev/null
    if [ -z "$name" ]; then pending=1; continue; fi
    [ -e "/dev/virtio-ports/$name" ] || ln -s "../${port##*/}" "/dev/virtio-ports/$name"
  done
  [ "$pending" = 0 ] && exit 0
  sleep 0.05; i=$((i + 1))
done
exit 0
EOF
printf '#!/bin/sh\nexit 0\n' > "$work/noop"
chmod 755 "$work/udev-standin" "$work/noop"

# The guest sees the root as QEMU sees it, so the stand-ins are bind-mounted
# over the real programs in a private mount namespace that only QEMU lives
# in: the host's own files and mounts are untouched.
binds=()
for p in "$udevd" "$(command -v udevadm || true)"; do
  [ -n "$p" ] && [ -e "$p" ] && binds+=("$work/udev-standin" "$(readlink -f "$p")")
done
tmpfiles=$(command -v systemd-tmpfiles || true)
[ -n "$tmpfiles" ] && binds+=("$work/noop" "$(readlink -f "$tmpfiles")")

vng_args=(--run "$kernel" --disable-kvm --force-9p --memory 1G --exec "exec bash $work/guest.sh"
  "--qemu-opts=-fsdev local,id=hostagent-root,path=/,security_model=none,readonly=on,multidevs=remap -device virtio-9p-pci,fsdev=hostagent-root,mount_tag=hostagent-root")
# --disable-kvm: this machine's KVM aborts QEMU, and CI has none.
# --force-9p: the root over 9p, read-only; virtiofs would need a virtiofsd
# daemon that bootstrap does not install.
[ -n "${HOSTAGENT_REALKERNEL_VERBOSE:-}" ] && vng_args+=(--verbose)
export PATH="$repo/.venv/bin:$PATH"   # vng runs virtme-run from PATH
limit=${HOSTAGENT_REALKERNEL_TIMEOUT:-300}

launch() {
  if unshare --mount --propagation private true 2>/dev/null; then
    # shellcheck disable=SC2016
    timeout -k 10 "$limit" unshare --mount --propagation private -- bash -c '
      set -e
      while [ $# -gt 0 ] && [ "$1" != -- ]; do mount --bind "$1" "$2"; shift 2; done
      shift
      exec "$@"' realkernel-ns "${binds[@]}" -- "$vng" "${vng_args[@]}"
  else
    echo "realkernel: note: no private mount namespace here (unshare -m); booting with the real udev, about 15 s slower" >&2
    timeout -k 10 "$limit" "$vng" "${vng_args[@]}"
  fi
}

# QEMU reopens /proc/self/fd/1 and 2 for the guest's output, truncating them
# when they are files: a CI log would lose everything before the lane.  Pipes
# through cat keep it (pipefail carries the guest's status out).  No stdin:
# virtme-run fails on a closed one (CI has none), and on a terminal QEMU
# would switch it to raw mode from a background process group.
rc=0
{ { launch </dev/null 2>&1 1>&4 4>&- | cat >&2; } 4>&1 | cat; } || rc=$?
case $rc in
  124|137) echo "realkernel: the guest did not finish within ${limit}s (HOSTAGENT_REALKERNEL_TIMEOUT)" >&2 ;;
  255) echo "realkernel: status 255: the command's own, or the guest died before reporting one (rerun with HOSTAGENT_REALKERNEL_VERBOSE=1 to see its console)" >&2 ;;
esac
exit "$rc"
