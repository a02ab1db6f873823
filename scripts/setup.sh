#!/usr/bin/env bash
# Installs what heed needs to build and test on Debian 12 (run as root, or with sudo).
# Each package and why: docs/dependencies.md.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
pkgs=(gcc pkg-config meson ninja-build libsleef-dev libopenblas-openmp-dev libpng-dev
      clang clang-format libclang-rt-14-dev zlib1g-dev libjsmn-dev dataset-fashion-mnist
      libopenmpi-dev openmpi-bin
      libsndfile1-dev libsamplerate0-dev libfftw3-dev espeak-ng libespeak-ng-dev flite)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
