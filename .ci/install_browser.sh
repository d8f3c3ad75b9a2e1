#!/usr/bin/env bash
# Install Debian's Chromium for the end-to-end UI test (nmc_assets_tests/ops/test_e2e_ui.py).
# Idempotent: does nothing when a chromium binary is already on PATH. Non-interactive.
set -euo pipefail

for candidate in chromium chromium-browser google-chrome; do
    if command -v "$candidate" >/dev/null 2>&1; then
        echo "install_browser: $(command -v "$candidate") already present: $("$candidate" --version 2>/dev/null || true)"
        exit 0
    fi
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo -n"
    else
        echo "install_browser: not root and no sudo; cannot install chromium" >&2
        exit 1
    fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
echo "install_browser: installed $(chromium --version)"
