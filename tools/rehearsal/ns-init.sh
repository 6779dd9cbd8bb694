#!/usr/bin/env bash
# PID 1 of a sandbox, before it becomes tini. Started by sandbox.py as
#   unshare --mount --pid --uts --ipc --net --fork --propagation private bash ns-init.sh
# so every mount below lives in the sandbox's own mount namespace and vanishes with it: nothing to
# unmount on the host afterwards, even after a crash. It assembles the root (overlay of the cached
# base, or a bind of a plain copy), gives it its own /proc, /sys, /dev, binds the host's toolchains
# and caches, copies in the host's CA certificates, resolver and package-client settings, then
# pivots into it and execs tini (reaps zombies; not systemd, so the lab uses supervisord as on the
# image). Inputs come from the environment (SBX_*), set by sandbox.py.
set -euo pipefail

R="$SBX_ROOT"
die() { echo "ns-init: $*" >&2; exit 3; }

case "$SBX_MODE" in
  overlay) mount -t overlay overlay \
             -o "lowerdir=$SBX_LOWER,upperdir=$SBX_UPPER,workdir=$SBX_WORK" "$R" \
             || die "overlay mount failed" ;;
  copy)    mount --bind "$R" "$R" ;;  # pivot_root needs a mount point
  *)       die "unknown SBX_MODE=$SBX_MODE" ;;
esac

# /proc of the new PID namespace. Kernel-wide knobs stay read-only (as in Docker): a sysctl written
# inside would change the host; the lab writes none.
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
for p in sys sysrq-trigger irq bus; do
  [ -e "$R/proc/$p" ] || continue
  mount --bind "$R/proc/$p" "$R/proc/$p" && mount -o remount,bind,ro "$R/proc/$p"
done
# sysfs of the new network namespace (shows its own interfaces), read-only.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$R/sys"

# A private /dev: the usual character devices, its own pty instance, its own /dev/shm.
mount -t tmpfs -o nosuid,mode=0755,size=64k dev "$R/dev"
for d in null zero full random urandom tty; do
  touch "$R/dev/$d"
  mount --bind "/dev/$d" "$R/dev/$d"
done
mkdir -p "$R/dev/pts" "$R/dev/shm" "$R/dev/mqueue"
mount -t devpts -o newinstance,nosuid,noexec,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$R/dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue "$R/dev/mqueue" 2>/dev/null || true
ln -s /proc/self/fd "$R/dev/fd"
ln -s /proc/self/fd/0 "$R/dev/stdin"
ln -s /proc/self/fd/1 "$R/dev/stdout"
ln -s /proc/self/fd/2 "$R/dev/stderr"

# Host paths: lines "ro|rw|cow<TAB>host path<TAB>path inside". ro/rw are bind mounts; cow (the
# image's toolchain directories) is an overlay whose upper layer is the sandbox's own: writable
# inside (pyenv rehash, npm -g), the host's copy untouched; read-only bind where overlayfs fails.
# A directory gets a directory mount point, anything else a file; a missing source is skipped.
n=0
while IFS=$'\t' read -r mode src dst; do
  [ -n "${src:-}" ] || continue
  [ -e "$src" ] || continue
  if [ -d "$src" ]; then
    mkdir -p "$R$dst"
  else
    mkdir -p "$(dirname "$R$dst")"
    [ -e "$R$dst" ] || [ -L "$R$dst" ] || touch "$R$dst"
  fi
  if [ "$mode" = cow ]; then
    n=$((n + 1))
    mkdir -p "$SBX_COW/$n/upper" "$SBX_COW/$n/work"
    if mount -t overlay overlay -o "lowerdir=$src,upperdir=$SBX_COW/$n/upper,workdir=$SBX_COW/$n/work" \
         "$R$dst" 2>/dev/null; then
      continue
    fi
    mode=ro
  fi
  mount --bind "$src" "$R$dst"
  if [ "$mode" = ro ]; then mount -o remount,bind,ro "$R$dst"; fi
done <<<"${SBX_BINDS:-}"

# Files copied in: lines "host path<TAB>path inside<TAB>octal mode" (resolver, hosts, pip/npm settings).
while IFS=$'\t' read -r src dst fmode; do
  [ -n "${src:-}" ] && [ -e "$src" ] || continue
  install -D -m "$fmode" "$src" "$R$dst"
done <<<"${SBX_FILES:-}"

# The host's extra CA certificates (the egress proxy's among them, created at boot, so possibly newer
# than the cached base): refresh the root's trust store only when they differ from its copies.
ca_changed=0
if [ -d "${SBX_CA_DIR:-}" ]; then
  while IFS= read -r -d '' f; do
    rel="${f#"$SBX_CA_DIR"/}"
    if ! cmp -s "$f" "$R/usr/local/share/ca-certificates/$rel"; then
      install -D -m 0644 "$f" "$R/usr/local/share/ca-certificates/$rel"
      ca_changed=1
    fi
  done < <(find "$SBX_CA_DIR" -type f -name '*.crt' -print0)
fi
if [ "$ca_changed" = 1 ]; then
  chroot "$R" /usr/sbin/update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates failed"
fi

hostname "$SBX_HOSTNAME"
printf '%s\n' "$SBX_HOSTNAME" >"$R/etc/hostname"
{ grep -v "[[:space:]]$SBX_HOSTNAME\$" /etc/hosts | grep -Ev '[[:space:]](vm|runsc)$' || true
  printf '127.0.1.1 %s\n' "$SBX_HOSTNAME"; } >"$R/etc/hosts"

# pivot_root(".", ".") stacks the old root under the new one; detaching it leaves only the sandbox.
cd "$R"
pivot_root . .
umount -l .
cd /
exec /usr/bin/tini -- /bin/sleep infinity
