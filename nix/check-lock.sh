#!/usr/bin/env bash
# Check that flake.lock pins nixpkgs exactly as the shared, verified pin says.
#
#   nix/check-lock.sh [PIN_JSON]
#
# PIN_JSON defaults to ../shared/nixpkgs-pin.json next to the repository.
# Needs jq. Works without Nix (no `nix flake metadata`, no network).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pin=${1:-$repo/../shared/nixpkgs-pin.json}
lock=$repo/flake.lock

command -v jq >/dev/null || {
  echo "check-lock: jq is needed (nix develop has it; or apt-get install jq)" >&2
  exit 2
}
[ -f "$pin" ] || {
  echo "check-lock: no pin file at $pin (pass its path as the first argument)" >&2
  exit 2
}
jq -e . "$lock" >/dev/null || {
  echo "check-lock: $lock is not valid JSON" >&2
  exit 1
}

fail=0
check() {
  local what=$1 filter=$2
  if jq -e --slurpfile pin "$pin" "$filter" "$lock" >/dev/null; then
    echo "ok   $what"
  else
    echo "FAIL $what" >&2
    fail=1
  fi
}

check "lock file version is 7" '.version == 7'
check "root node is \"root\" with the single input nixpkgs" \
  '.root == "root" and .nodes.root == {inputs: {nixpkgs: "nixpkgs"}}'
check "no other nodes" '(.nodes | keys) == ["nixpkgs", "root"]'
# shellcheck disable=SC2016 # $pin is a jq variable, not a shell one
check "nodes.nixpkgs.locked equals the pin" '.nodes.nixpkgs.locked == $pin[0].locked'
# shellcheck disable=SC2016
check "nodes.nixpkgs.original equals the pin" '.nodes.nixpkgs.original == $pin[0].original'

# flake.nix must ask for the same branch the lock records as `original`.
want=$(jq -r '.original | "github:\(.owner)/\(.repo)/\(.ref)"' "$pin")
if grep -Fq "inputs.nixpkgs.url = \"$want\";" "$repo/flake.nix"; then
  echo "ok   flake.nix input url is $want"
else
  echo "FAIL flake.nix does not set inputs.nixpkgs.url = \"$want\"" >&2
  fail=1
fi

exit "$fail"
