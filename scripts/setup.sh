#!/usr/bin/env bash
# Installs everything GPT-Trader needs on Debian 12 (Debian packages + PyPI) and builds it.
# Idempotent: a second run only rebuilds what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(build-essential cmake ninja-build pkg-config clang-format
  libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libyaml-cpp-dev libtbb-dev
  libgtest-dev libgmock-dev libbenchmark-dev libhiredis-dev libxxhash-dev zlib1g-dev redis-server
  python3 python3-venv python3-dev iproute2 util-linux procps chromium)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Python: reference tools for the tests (ta-lib, backtrader, vectorbt) in a project-local venv.
if [[ ! -x .venv/bin/python ]]; then
  python3 -m venv .venv
fi
if ! cmp -s requirements-dev.txt .venv/.requirements-installed 2>/dev/null; then
  echo "setup: installing Python packages from requirements-dev.txt"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r requirements-dev.txt
  cp requirements-dev.txt .venv/.requirements-installed
fi

cmake --preset release >/dev/null
cmake --build --preset release -j"$(nproc)"

# The Python package over the same core (incremental: scikit-build-core keeps build/python).
.venv/bin/python -m pip install -q --no-build-isolation --no-deps .
