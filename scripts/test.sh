#!/usr/bin/env bash
# Runs all of Berth's tests: installs what they need, builds, then runs the
# page's unit tests, the Rust unit tests and the integration tests (as
# root: a real registry, a private bus with Berth's policy, a real berthd,
# and the real window under Xvfb). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
berth_need_root
berth_apt_install "${BERTH_TEST_PACKAGES[@]}" "${BERTH_GUI_TEST_PACKAGES[@]}"
berth_need_cargo
berth_need_node
berth_need_tauri_driver

berth_build_ui
echo "==> testing the page's logic (Vitest)"
(cd ui && npm test --silent)
echo "==> building"
cargo build --workspace --bins
echo "==> testing"
# The window's end-to-end test (tests/tests/gui.rs) starts its own Xvfb.
# Strict: a test that lacks root, a tool or a kernel feature fails instead
# of skipping (tests/src/require.rs).
BERTH_TEST_STRICT=1 cargo test --workspace --no-fail-fast -- --test-threads="${BERTH_TEST_THREADS:-2}"
