#!/usr/bin/env bash
# Runs every clusterf test on a fresh Debian machine: installs what the tests
# need (etcd for the overlay tests, protoc for etcd-client, qemu and the guest's
# userland for the kernel IPVS tests in a VM), then formatting, lint and the
# whole cargo test suite. Integration tests fail (never skip) when CI is set
# and a component is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use; the VM harness (tests/vm/) may add its own.
packages=(etcd-server etcd-client protobuf-compiler qemu-system-x86 ipvsadm
  busybox-static cpio iproute2 openssl git kmod)
need=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
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
# A fresh clone gains nothing from incremental compilation, and its artifacts
# doubled the target directory. Disk is what CI ran out of once (the linker
# died with SIGBUS writing a test binary), so say how much there is up front.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "tests/run.sh: free disk: $(df -h --output=avail . | tail -1 | tr -d ' ')" >&2
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --all-targets --locked
cargo test --doc --locked
