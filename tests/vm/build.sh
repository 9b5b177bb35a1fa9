#!/bin/bash
# Builds the guest for the kernel IPVS tests: a Debian cloud kernel (booted
# uncompressed, PVH) and a base initramfs with busybox-static, ipvsadm,
# iproute2's ip, BIRD 2 (bird2), the IPVS/veth/dummy/bridge modules and
# tests/vm/init; and, beside it, Debian's keepalived for the import
# scenario ($cache/keepalived).
#
# Idempotent and cached: everything goes to $CLUSTERF_VM_CACHE (default
# target/vm-cache, so `cargo clean` clears it). A warm run only checks a
# stamp. Nothing is installed into /boot or the host's /lib/modules.
#
# Prints the cache directory on stdout; logs go to stderr.
#
# Environment:
#   CLUSTERF_VM_CACHE        cache directory (default <repo>/target/vm-cache)
#   CLUSTERF_VM_KERNEL_PKG   kernel package (default: what linux-image-cloud-amd64
#                            depends on; once downloaded, the cached one is kept)
#
# This script does not boot anything (run.sh does) and does not touch the
# clusterf binary (run.sh adds it per run).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${CLUSTERF_VM_CACHE:-$root/target/vm-cache}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

log() { echo "vm/build: $*" >&2; }
die() { echo "vm/build: error: $*" >&2; exit 1; }

# One build at a time (tests run in parallel, other checkouts share caches).
exec 9>"$cache/.lock"
flock 9

# Host tools: install the missing ones when we can (root with apt).
need() { # command package
    command -v "$1" >/dev/null 2>&1 && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing $2 (for $1)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2 ||
            { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$2" >&2; } ||
            die "cannot install $2"
    fi
    command -v "$1" >/dev/null 2>&1 || die "$1 not found: install $2"
}
need cpio cpio
need dpkg-deb dpkg
need flock util-linux
need ldd libc-bin
need lz4 lz4
[ -x /usr/sbin/ipvsadm ] || need ipvsadm ipvsadm
[ -x /usr/sbin/ip ] || need ip iproute2
busybox=""
for b in /usr/bin/busybox /bin/busybox; do
    if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
if [ -z "$busybox" ]; then
    need busybox busybox-static
    busybox=$(command -v busybox)
    ldd "$busybox" >/dev/null 2>&1 && die "$busybox is dynamically linked: install busybox-static"
fi

# --- kernel package ---------------------------------------------------------
debs=$cache/debs
mkdir -p "$debs"
pkg=${CLUSTERF_VM_KERNEL_PKG:-}
deb=""
if [ -z "$pkg" ]; then
    deb=$(ls "$debs"/linux-image-*-cloud-amd64_*.deb 2>/dev/null | sort -V | tail -n1 || true)
fi
if [ -z "$deb" ]; then
    if [ -z "$pkg" ]; then
        resolve() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}'; }
        pkg=$(resolve || true)
        if [ -z "$pkg" ]; then
            log "no package lists for linux-image-cloud-amd64: running apt-get update"
            apt-get update -q >&2 || die "apt-get update failed"
            pkg=$(resolve || true)
        fi
        [ -n "$pkg" ] || die "cannot resolve linux-image-cloud-amd64 (is this Debian with main enabled?)"
    fi
    deb=$(ls "$debs"/"${pkg}"_*.deb 2>/dev/null | sort -V | tail -n1 || true)
    if [ -z "$deb" ]; then
        log "downloading $pkg"
        # apt's _apt user may not write here; download in a world-writable temp dir.
        tmpd=$(mktemp -d)
        chmod 777 "$tmpd"
        if ! (cd "$tmpd" && apt-get download -q "$pkg" >&2 2>"$tmpd/err"); then
            log "download failed ($(tail -n1 "$tmpd/err")): running apt-get update"
            apt-get update -q >&2 || die "apt-get update failed"
            (cd "$tmpd" && apt-get download -q "$pkg" >&2) || die "apt-get download $pkg failed"
        fi
        mv "$tmpd"/*.deb "$debs"/
        rm -rf "$tmpd"
        deb=$(ls "$debs"/"${pkg}"_*.deb | sort -V | tail -n1)
    fi
fi
[ -f "$deb" ] || die "no kernel package in $debs"

# --- keepalived, for the import scenario -------------------------------------
# Debian's keepalived with the libraries the host lacks, unpacked into
# $cache/keepalived (the binary and lib/, every library ldd lists but the
# loader and libc): not in the base image, which every scenario boots, but
# handed to the one scenario that runs it as a data directory
# (tests/kernel.rs; run it with LD_LIBRARY_PATH=/data/keepalived/lib).
kpkgs="keepalived libnftnl11 libsnmp40 libpci3 libwrap0"
kdebs=$cache/debs/keepalived
mkdir -p "$kdebs"
kmissing=""
for p in $kpkgs; do
    ls "$kdebs/${p}_"*.deb >/dev/null 2>&1 || kmissing="$kmissing $p"
done
if [ -n "$kmissing" ]; then
    log "downloading$kmissing"
    tmpd=$(mktemp -d)
    chmod 777 "$tmpd"
    # shellcheck disable=SC2086
    if ! (cd "$tmpd" && apt-get download -q $kmissing >&2 2>"$tmpd/err"); then
        log "download failed ($(tail -n1 "$tmpd/err")): running apt-get update"
        apt-get update -q >&2 || die "apt-get update failed"
        # shellcheck disable=SC2086
        (cd "$tmpd" && apt-get download -q $kmissing >&2) || die "apt-get download$kmissing failed"
    fi
    mv "$tmpd"/*.deb "$kdebs"/
    rm -rf "$tmpd"
fi
kstamp=$(sha256sum "$kdebs"/*.deb "$here/build.sh" | awk '{print $1}' | sha256sum | awk '{print $1}')
if [ "$(cat "$cache/keepalived.stamp" 2>/dev/null)" != "$kstamp" ] || [ ! -x "$cache/keepalived/keepalived" ]; then
    kroot=$cache/keepalived-debroot
    rm -rf "$kroot" "$cache/keepalived"
    mkdir -p "$kroot" "$cache/keepalived/lib"
    for d in "$kdebs"/*.deb; do dpkg-deb -x "$d" "$kroot"; done
    cp "$kroot/usr/sbin/keepalived" "$cache/keepalived/keepalived"
    klibs=$kroot/usr/lib/x86_64-linux-gnu:$kroot/lib/x86_64-linux-gnu
    if LD_LIBRARY_PATH=$klibs ldd "$cache/keepalived/keepalived" | grep -q "not found"; then
        LD_LIBRARY_PATH=$klibs ldd "$cache/keepalived/keepalived" | grep "not found" >&2
        die "keepalived: libraries not found (add their packages to kpkgs)"
    fi
    for lib in $(LD_LIBRARY_PATH=$klibs ldd "$cache/keepalived/keepalived" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'); do
        case $(basename "$lib") in libc.so.* | ld-linux*) continue ;; esac
        cp -L "$lib" "$cache/keepalived/lib/"
    done
    rm -rf "$kroot"
    echo "$kstamp" >"$cache/keepalived.stamp"
    log "keepalived: $(du -sh "$cache/keepalived" | cut -f1) in $cache/keepalived"
fi
# download_debs PKG...: each package's .deb into $debs, unless there.
download_debs() {
    for p in "$@"; do
        ls "$debs/${p}_"*.deb >/dev/null 2>&1 && continue
        log "downloading $p"
        tmpd=$(mktemp -d)
        chmod 777 "$tmpd"
        (cd "$tmpd" && apt-get download -q "$p" >&2) ||
            { apt-get update -q >&2 && (cd "$tmpd" && apt-get download -q "$p" >&2); } ||
            die "apt-get download $p failed"
        mv "$tmpd"/*.deb "$debs"/
        rm -rf "$tmpd"
    done
}
# --- BIRD 2 (the BGP scenario): Debian's bird2 and the libraries it loads
# (but libc and zlib), downloaded like the kernel, so the host need not have
# them; unpacked into the guest below.
bird_pkgs="bird2 libssh-gcrypt-4 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0
libkeyutils1 libcom-err2 libgcrypt20 libgpg-error0 libreadline8 libtinfo6"
# shellcheck disable=SC2086
download_debs $bird_pkgs
bird_debs=$(for p in $bird_pkgs; do ls "$debs/${p}_"*.deb | sort -V | tail -n1; done)
# --- nft (the DNAT scenario's checks; a test-only component): Debian's
# nftables and the libraries it loads, downloaded and unpacked like BIRD.
nft_pkgs="nftables libnftables1 libnftnl11 libmnl0 libjansson4 libxtables12 libgmp10 libedit2 libbsd0 libmd0"
# shellcheck disable=SC2086
download_debs $nft_pkgs
nft_debs=$(for p in $nft_pkgs; do ls "$debs/${p}_"*.deb | sort -V | tail -n1; done)

# --- stamp: skip everything when nothing changed ----------------------------
stamp_inputs() {
    # shellcheck disable=SC2086
    sha256sum "$here/build.sh" "$here/init" "$deb" $bird_debs $nft_debs "$busybox" /usr/sbin/ipvsadm /usr/sbin/ip | awk '{print $1}'
}
want_stamp=$(stamp_inputs | sha256sum | awk '{print $1}')
if [ -f "$cache/stamp" ] && [ "$(cat "$cache/stamp")" = "$want_stamp" ] &&
    [ -f "$cache/base.cpio" ] && [ -f "$cache/kernel" ]; then
    echo "$cache"
    exit 0
fi
start=$(date +%s.%N)
rm -f "$cache/stamp"

# --- unpack the kernel ------------------------------------------------------
log "unpacking $(basename "$deb")"
kroot=$cache/kernel-root
rm -rf "$kroot"
mkdir -p "$kroot"
dpkg-deb -x "$deb" "$kroot"
kver=$(ls "$kroot/lib/modules" | head -n1)
[ -n "$kver" ] || die "no modules in $deb"
vmlinuz=$kroot/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || die "no vmlinuz-$kver in $deb"

# Uncompressed vmlinux (booted directly through its PVH entry point): find
# the compressed payload inside the bzImage and decompress it.
extract_vmlinux() {
    local magic tool off
    for pair in '\x02\x21\x4c\x18:lz4 -dc' '\xfd\x37\x7a\x58\x5a\x00:xz -dc' \
        '\x28\xb5\x2f\xfd:zstd -dc' '\x1f\x8b\x08:gzip -dc'; do
        magic=${pair%%:*}
        tool=${pair#*:}
        command -v "${tool%% *}" >/dev/null || continue
        for off in $(LC_ALL=C grep -obUaP "$magic" "$vmlinuz" | cut -d: -f1 | head -n5); do
            tail -c +$((off + 1)) "$vmlinuz" | $tool >"$cache/vmlinux.tmp" 2>/dev/null || true
            if [ "$(head -c4 "$cache/vmlinux.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
                mv "$cache/vmlinux.tmp" "$cache/kernel"
                return 0
            fi
        done
    done
    rm -f "$cache/vmlinux.tmp"
    return 1
}
if extract_vmlinux; then
    echo pvh >"$cache/kernel.kind"
else
    log "cannot extract vmlinux; booting the compressed bzImage instead"
    cp "$vmlinuz" "$cache/kernel"
    echo bzimage >"$cache/kernel.kind"
fi
echo "$kver" >"$cache/kernel.version"

# --- base initramfs ---------------------------------------------------------
stage=$cache/base-root
rm -rf "$stage"
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,lib,lib64,proc,sys,dev,run,tmp,etc,root,data,scenario,var/run/netns}
cp "$busybox" "$stage/bin/busybox"
cp /usr/sbin/ipvsadm /usr/sbin/ip "$stage/usr/sbin/"
# Shared libraries, at the paths ldd names (the loader included).
copy_libs() {
    local lib
    for lib in $(ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}' | sort -u); do
        mkdir -p "$stage$(dirname "$lib")"
        cp -L "$lib" "$stage$lib"
    done
}
copy_libs /usr/sbin/ipvsadm /usr/sbin/ip
# Also what a plain `cargo build` binary needs (run.sh adds its own ldd list,
# this only makes the base image usable on its own).
for lib in libgcc_s.so.1 libm.so.6; do
    p=$(ldconfig -p 2>/dev/null | awk -v l="$lib" '$1 == l && /x86-64/ {print $NF; exit}')
    if [ -n "$p" ]; then mkdir -p "$stage$(dirname "$p")"; cp -L "$p" "$stage$p"; fi
done
# stage_debs NAME "DEBS" BIN...: unpacks DEBS into $cache/NAME-root, copies
# each BIN (a path under /usr/sbin) into the stage with the libraries ldd
# finds for them in the unpacked packages (at their own paths) or, for libc
# and the like, on the host.
stage_debs() {
    _root=$cache/$1-root
    _debs=$2
    shift 2
    rm -rf "$_root"
    for d in $_debs; do dpkg-deb -x "$d" "$_root"; done
    for b in "$@"; do cp "$_root/usr/sbin/$b" "$stage/usr/sbin/"; done
    _ldd() {
        for b in "$@"; do
            LD_LIBRARY_PATH=$_root/lib/x86_64-linux-gnu:$_root/usr/lib/x86_64-linux-gnu ldd "$_root/usr/sbin/$b"
        done
    }
    missing=$(_ldd "$@" | awk '/not found/ {print $1}' | sort -u | tr '\n' ' ')
    [ -z "$missing" ] || die "libraries of $1 not found: $missing"
    for lib in $(_ldd "$@" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
        dest=${lib#"$_root"}
        mkdir -p "$stage$(dirname "$dest")"
        cp -L "$lib" "$stage$dest"
    done
    rm -rf "$_root"
}
# BIRD (bird, birdc, birdcl) and nft.
stage_debs bird "$bird_debs" bird birdc birdcl
stage_debs nft "$nft_debs" nft
install -m 0755 "$here/init" "$stage/init"
echo "root:x:0:0:root:/root:/bin/sh" >"$stage/etc/passwd"
echo "root:x:0:" >"$stage/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$stage/etc/hosts"

# Modules: the wanted ones and everything they depend on.
mods=$kroot/lib/modules/$kver
want="ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_lblc ip_vs_lblcr ip_vs_dh
ip_vs_sh ip_vs_sed ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_mh ip_vs_twos ip_vs_pe_sip veth dummy bridge
ipip"
want="$want nf_tables nft_chain_nat nft_nat nft_numgen nft_masq nft_ct nft_fib_inet nft_fib_ipv4 nft_fib_ipv6"
declare -A path_of=()
while IFS= read -r f; do
    n=$(basename "$f" .ko)
    path_of[${n//-/_}]=$f
done < <(find "$mods/kernel" -name '*.ko')
declare -A have=()
queue=()
for m in $want; do
    [ -n "${path_of[$m]:-}" ] && queue+=("$m")
done
while [ ${#queue[@]} -gt 0 ]; do
    m=${queue[0]}
    queue=("${queue[@]:1}")
    [ -n "${have[$m]:-}" ] && continue
    f=${path_of[$m]:-}
    if [ -z "$f" ]; then
        grep -q "/${m//_/[_-]}.ko\$" "$mods/modules.builtin" 2>/dev/null ||
            log "warning: module $m not found (and not built in)"
        continue
    fi
    have[$m]=1
    rel=${f#"$kroot"}
    mkdir -p "$stage$(dirname "$rel")"
    cp "$f" "$stage$rel"
    deps=$(tr '\0' '\n' <"$f" | grep -a '^depends=' | head -n1 | cut -d= -f2 | tr ',' ' ')
    for d in $deps; do queue+=("${d//-/_}"); done
done
for m in ip_vs veth dummy; do [ -n "${have[$m]:-}" ] || die "module $m missing from $deb"; done
cp "$mods"/modules.builtin "$mods"/modules.order "$stage/lib/modules/$kver/" 2>/dev/null || true
"$busybox" depmod -b "$stage" "$kver"
[ -s "$stage/lib/modules/$kver/modules.dep" ] || die "depmod produced no modules.dep"
log "modules: ${!have[*]}"

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) >"$cache/base.cpio.tmp"
# Pad to a 4-byte boundary so that an appended archive starts aligned.
size=$(stat -c %s "$cache/base.cpio.tmp")
pad=$(((4 - size % 4) % 4))
[ "$pad" = 0 ] || head -c "$pad" /dev/zero >>"$cache/base.cpio.tmp"
mv "$cache/base.cpio.tmp" "$cache/base.cpio"
rm -rf "$kroot"

echo "$want_stamp" >"$cache/stamp"
end=$(date +%s.%N)
log "built guest: kernel $kver ($(cat "$cache/kernel.kind")), base initramfs $(($(stat -c %s "$cache/base.cpio") / 1024)) KiB in $(awk "BEGIN{printf \"%.1f\", $end - $start}") s"
echo "$cache"
