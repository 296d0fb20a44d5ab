#!/bin/sh
# install_deps.sh — installs the Debian packages sift needs to build and test, if any is missing.
# Build: liblua5.4-dev libreadline-dev libopenblas-openmp-dev (OpenBLAS on OpenMP threads) libcjson-dev;
# tests: lua5.4 tmux; data-parallel training (make MPI=1, tests/sh/test_dist.sh): mpich libmpich-dev.
set -e
PKGS="build-essential liblua5.4-dev lua5.4 libreadline-dev libopenblas-openmp-dev libcjson-dev tmux mpich libmpich-dev"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && { echo "deps: all installed"; exit 0; }
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
