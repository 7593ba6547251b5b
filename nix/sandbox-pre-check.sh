# shellcheck shell=bash
# The part of checks.klab-tests' preCheck (nix/checks.nix) that names no store
# path. It is sourced there, in the Nix build sandbox, and by
# scripts/sandbox-tests, the rehearsal of that check without Nix. It runs in the
# source directory (testSrc) after the build phase, under `set -eu -o
# pipefail`; preCheck has set KLAB_KAFKA_HOME and, on Linux, KUBE_TESTENV_BIN.

# The sandbox's HOME does not exist: HOME and klab's cache (KLAB_CACHE_DIR,
# which scripts/kube-testenv uses too) go to the build's temporary directory.
export HOME=$TMPDIR
export KLAB_CACHE_DIR=$TMPDIR/klab-cache

# The sandbox has no /usr/bin/env: stdenv's patchShebangs points the scripts the
# tests run at the bash on PATH.
patchShebangs --build scripts/kube-testenv scripts/rdkafka-performance

# librdkafka's own benchmark for tests/bench.rs (`klab bench`'s second peer),
# compiled from the librdkafka the build phase built: the script finds it under
# target/<triple>/release, where cargo --target puts it.
KLAB_RDKAFKA_PERFORMANCE=$(scripts/rdkafka-performance)
export KLAB_RDKAFKA_PERFORMANCE
