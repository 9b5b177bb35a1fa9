#!/usr/bin/env bash
# Runs every clusterf test on a fresh Debian machine: installs what the tests
# need (etcd for the overlay tests, protoc for etcd-client, qemu and the guest's
# userland for the kernel IPVS tests in a VM), then formatting, lint and the
# whole cargo test suite. Integration tests fail (never skip) when CI is set
# and a component is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have etcd || need+=(etcd-server)
have etcdctl || need+=(etcd-client)
have protoc || need+=(protobuf-compiler)
have qemu-system-x86_64 || need+=(qemu-system-x86)
have ipvsadm || need+=(ipvsadm)
[ -x /usr/bin/busybox ] && /usr/bin/busybox --list 2>/dev/null | grep -qx depmod || need+=(busybox-static)
have cpio || need+=(cpio)
have ip || need+=(iproute2)
have openssl || need+=(openssl)
have git || need+=(git)
if [ ${#need[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${need[*]}" >&2
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi
# The VM guest's kernel is fetched with apt-get download: package lists must exist.
if [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock | grep -v partial)" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -q
fi

export CI="${CI:-true}"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
cargo test --doc --locked
