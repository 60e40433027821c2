#!/usr/bin/env bash
# System packages the test suite drives but pip cannot provide: Debian's chromium for the browser test
# (tests/e2e/test_ui_browser.py). `make test` (and so .ci/run) calls this before pytest; it installs
# nothing when everything is already there, and needs root (or passwordless sudo) only when it does.
# Slurm and munge are installed by their fixture (tests/support/slurm.py), which also starts and stops them.
set -euo pipefail

packages=()
[ -x /usr/bin/chromium ] || packages+=(chromium)
[ ${#packages[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-test-system: missing ${packages[*]} and no apt-get; install them by hand" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-test-system: installing ${packages[*]} needs root" >&2; exit 1; }
  sudo=(sudo -n)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
echo "install-test-system: installed ${packages[*]}"
