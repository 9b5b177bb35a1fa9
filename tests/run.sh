#!/usr/bin/env bash
# Runs every clusterf test on a fresh Debian machine: installs what the tests
# need (etcd and etcdctl for the overlay tests, qemu and the guest's userland
# for the kernel IPVS and Docker tests in a VM, openssl for TLS certificates,
# promtool from prometheus for the alert rules and dashboard in
# examples/monitoring/, man-db to render the man page, chromium to load the
# daemon's status page in a real browser: tests/status_page.rs),
# then formatting, lint and the whole cargo test suite. Integration tests fail
# (never skip) when CI is set and a component is missing.
#
# Building clusterf itself needs only the Rust toolchain; nothing here is
# needed for `cargo build`.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use (tests/vm/ fetches the guest's kernel and
# the Docker guest's packages itself, with apt-get download).
packages=(etcd-server etcd-client qemu-system-x86 ipvsadm busybox-static cpio
  lz4 iproute2 openssl git kmod prometheus man-db chromium)
need=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need+=("$p")
done
SUDO=""
[ "$(id -u)" = 0 ] || SUDO=sudo
# Package lists first: a new machine has none, and the VM guest's kernel is
# fetched with apt-get download, which needs them too.
if [ ${#need[@]} -gt 0 ] ||
  [ -z "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ]; then
  echo "tests/run.sh: apt-get update" >&2
  $SUDO apt-get update -q
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "tests/run.sh: installing ${need[*]}" >&2
  # Recommends left out: every package here works without them (qemu's
  # firmware and the etcd binaries are dependencies, not recommends).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

export CI="${CI:-true}"
# A fresh clone gains nothing from incremental compilation, and its artifacts
# doubled the target directory. Disk is what CI ran out of once (the linker
# died with SIGBUS writing a test binary), so say how much there is up front.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
echo "tests/run.sh: free disk: $(df -h --output=avail . | tail -1 | tr -d ' ')" >&2
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo clippy --lib --features fuzzing --locked -- -D warnings
cargo test --all-targets --locked
cargo test --doc --locked
# The fuzz targets (fuzz/, docs/fuzzing.md): built, kept crash inputs
# replayed, and a short run of each from its seeds.
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
fuzz/smoke.sh
