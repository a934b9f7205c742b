#!/usr/bin/env bash
# Installs what llamablocks needs to build and test on Debian/Ubuntu (root or sudo).
set -euo pipefail
# python3-sentencepiece: the tokenizer parity test compares our encoder with SentencePiece itself.
# clang-14 + libclang-rt-14-dev (libFuzzer, the sanitizer runtimes): the fuzz targets of tests/fuzz.
packages=(cmake make g++ libeigen3-dev catch2 libbenchmark-dev python3 python3-sentencepiece
          clang-14 libclang-rt-14-dev)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all of ${packages[*]} already installed"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
