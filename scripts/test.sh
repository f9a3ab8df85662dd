#!/usr/bin/env bash
# Runs all of Berth's tests: installs what they need, builds, then runs the
# unit tests and the integration tests (as root: a real registry, a private
# bus with Berth's policy, a real berthd). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
berth_need_root
berth_apt_install "${BERTH_TEST_PACKAGES[@]}"
berth_need_cargo

echo "==> building"
cargo build --workspace --bins
echo "==> testing"
cargo test --workspace --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-2}"
