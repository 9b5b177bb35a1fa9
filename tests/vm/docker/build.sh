#!/bin/bash
# Builds the Docker layer of the test guest: Debian's Docker Engine 20.10
# (docker.io: dockerd, the docker CLI, docker-proxy), containerd, crun, tini
# and iptables (legacy), unpacked with dpkg-deb with their shared libraries;
# the kernel modules Docker needs (overlay, bridge, br_netfilter, NAT); etcd
# and etcdctl from the host; and a busybox-static rootfs tarball to
# `docker import` (no registry is reachable).
#
# The layer is a directory tree, put into the guest as /data/dockerroot by
# tests/vm/run.sh and moved into / by tests/vm/docker/scenario.sh.
#
# Idempotent and cached under $CLUSTERF_VM_CACHE/docker (see ../build.sh);
# a warm run only checks a stamp. Prints the layer directory on stdout; logs
# go to stderr. Boots nothing, touches nothing outside the cache.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
vm=$(cd "$here/.." && pwd)
log() { echo "vm/docker/build: $*" >&2; }
die() { echo "vm/docker/build: error: $*" >&2; exit 1; }

cache=$("$vm/build.sh")
out=$cache/docker
mkdir -p "$out/debs"

exec 8>"$out/.lock"
flock 8

# Packages whose files go into the guest: the Engine and its helpers, and
# every library they load (downloaded, so the host need not have them).
pkgs="docker.io containerd crun tini iptables libip4tc2 libip6tc2 libxtables12
libnftnl11 libnetfilter-conntrack3 libnfnetlink0 libmnl0 libyajl2
libdevmapper1.02.1 libseccomp2 libsystemd0 libcap2 libgcrypt20 liblzma5
libzstd1 liblz4-1 libselinux1 libudev1 libgpg-error0 libpcre2-8-0"
missing=""
for p in $pkgs; do
    ls "$out/debs/${p}_"*.deb >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    log "downloading$missing"
    tmpd=$(mktemp -d)
    chmod 777 "$tmpd"
    # shellcheck disable=SC2086
    if ! (cd "$tmpd" && apt-get download -q $missing >&2 2>"$tmpd/err"); then
        log "download failed ($(tail -n1 "$tmpd/err")): running apt-get update"
        apt-get update -q >&2 || die "apt-get update failed"
        # shellcheck disable=SC2086
        (cd "$tmpd" && apt-get download -q $missing >&2) || die "apt-get download failed"
    fi
    mv "$tmpd"/*.deb "$out/debs/"
    rm -rf "$tmpd"
fi

etcd=${CLUSTERF_ETCD_BIN:-/usr/bin/etcd}
etcdctl=$(command -v etcdctl || true)
[ -x "$etcd" ] || die "no etcd at $etcd: install etcd-server"
[ -n "$etcdctl" ] || die "no etcdctl: install etcd-client"
busybox=""
for b in /usr/bin/busybox /bin/busybox; do
    if [ -x "$b" ] && ! ldd "$b" >/dev/null 2>&1; then busybox=$b; break; fi
done
[ -n "$busybox" ] || die "no static busybox: install busybox-static"

kdeb=$(ls "$cache"/debs/linux-image-*.deb | sort -V | tail -n1)
stamp_inputs() {
    sha256sum "$here/build.sh" "$out"/debs/*.deb "$kdeb" "$etcd" "$etcdctl" "$busybox" | awk '{print $1}'
}
want_stamp=$(stamp_inputs | sha256sum | awk '{print $1}')
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$want_stamp" ] && [ -d "$out/root" ]; then
    echo "$out/root"
    exit 0
fi
start=$(date +%s.%N)
rm -f "$out/stamp"

debroot=$out/debroot
rm -rf "$debroot" "$out/root"
mkdir -p "$debroot"
for d in "$out"/debs/*.deb; do dpkg-deb -x "$d" "$debroot"; done

stage=$out/root
mkdir -p "$stage"/{usr/bin,usr/sbin,etc/docker,var/lib/docker,sys/fs/cgroup,data}
for f in usr/sbin/dockerd usr/bin/docker usr/sbin/docker-proxy usr/bin/containerd \
    usr/bin/containerd-shim-runc-v2 usr/bin/crun usr/bin/tini-static \
    usr/sbin/xtables-legacy-multi; do
    [ -f "$debroot/$f" ] || die "$f missing from the packages"
    cp "$debroot/$f" "$stage/$f"
done
ln -sf tini-static "$stage/usr/bin/docker-init"
# dockerd refuses to start without its built-in runtime "runc" on PATH, even
# with another default runtime: crun stands in.
ln -sf crun "$stage/usr/bin/runc"
mkdir -p "$stage/usr/lib"
printf 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="clusterf test guest"\n' >"$stage/usr/lib/os-release"
for t in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore \
    iptables-legacy iptables-legacy-save iptables-legacy-restore; do
    ln -sf xtables-legacy-multi "$stage/usr/sbin/$t"
done
mkdir -p "$stage/usr/lib/x86_64-linux-gnu"
cp -a "$debroot/usr/lib/x86_64-linux-gnu/xtables" "$stage/usr/lib/x86_64-linux-gnu/"
cp "$etcd" "$stage/usr/bin/etcd"
cp "$etcdctl" "$stage/usr/bin/etcdctl"

# Shared libraries: the unpacked packages' first, else the host's, at the
# paths the guest's loader searches.
libpath=$debroot/usr/lib/x86_64-linux-gnu:$debroot/lib/x86_64-linux-gnu
bins=$(find "$stage/usr/bin" "$stage/usr/sbin" "$stage/usr/lib/x86_64-linux-gnu/xtables" -type f)
# shellcheck disable=SC2086
if LD_LIBRARY_PATH=$libpath ldd $bins 2>/dev/null | grep -q "not found"; then
    # shellcheck disable=SC2086
    LD_LIBRARY_PATH=$libpath ldd $bins 2>/dev/null | grep "not found" | sort -u >&2
    die "libraries not found (add their packages to pkgs)"
fi
# shellcheck disable=SC2086
for lib in $(LD_LIBRARY_PATH=$libpath ldd $bins 2>/dev/null |
    awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u); do
    name=$(basename "$lib")
    case $name in libc.so.*|libm.so.*|ld-linux*) dest=/lib/x86_64-linux-gnu/$name ;; *) dest=/usr/lib/x86_64-linux-gnu/$name ;; esac
    mkdir -p "$stage$(dirname "$dest")"
    cp -L "$lib" "$stage$dest"
done

cat >"$stage/etc/docker/daemon.json" <<'EOF'
{
  "runtimes": {"crun": {"path": "/usr/bin/crun"}},
  "default-runtime": "crun",
  "storage-driver": "overlay2",
  "iptables": true,
  "ip6tables": false,
  "log-level": "warn"
}
EOF

# Kernel modules Docker needs, with their dependencies; the guest runs
# depmod over base and layer modules together.
kroot=$out/kernel-root
rm -rf "$kroot"
mkdir -p "$kroot"
dpkg-deb -x "$kdeb" "$kroot"
kver=$(ls "$kroot/lib/modules" | head -n1)
mods=$kroot/lib/modules/$kver
want="overlay bridge veth br_netfilter nf_nat nf_conntrack ip_tables iptable_nat
iptable_filter xt_MASQUERADE xt_addrtype xt_conntrack xt_nat xt_tcpudp
nf_conntrack_netlink"
declare -A path_of=()
while IFS= read -r f; do
    n=$(basename "$f" .ko)
    n=${n%.ko.xz}
    path_of[${n//-/_}]=$f
done < <(find "$mods/kernel" -name '*.ko' -o -name '*.ko.xz')
declare -A have=()
queue=($want)
while [ ${#queue[@]} -gt 0 ]; do
    m=${queue[0]}
    queue=("${queue[@]:1}")
    [ -n "${have[$m]:-}" ] && continue
    f=${path_of[$m]:-}
    if [ -z "$f" ]; then
        grep -q "/${m//_/[_-]}.ko" "$mods/modules.builtin" 2>/dev/null ||
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
rm -rf "$kroot"
echo "$want" | tr ' \n' '  ' >"$stage/data/docker-modules"

# The image: a busybox-static rootfs (httpd, sleep, sh).
img=$out/image
rm -rf "$img"
mkdir -p "$img/bin" "$img/tmp" "$img/etc"
cp "$busybox" "$img/bin/busybox"
for a in sh httpd sleep cat echo nc ls; do ln -s busybox "$img/bin/$a"; done
echo "root:x:0:0:root:/:/bin/sh" >"$img/etc/passwd"
tar -C "$img" -cf "$stage/data/busybox.tar" .
rm -rf "$img" "$debroot"

echo "$want_stamp" >"$out/stamp"
end=$(date +%s.%N)
log "built docker layer: $(du -sh "$stage" | cut -f1), modules: ${!have[*]} in $(awk "BEGIN{printf \"%.1f\", $end - $start}") s"
echo "$stage"
