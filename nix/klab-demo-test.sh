#!/usr/bin/env bash
# Runs nix/klab-demo.sh's `--target k3d` path without Docker, Nix or a
# cluster: stub `k3d`, `kubectl`, `nix-store` and `klab` on PATH stand in for
# them, and the script runs under the options writeShellApplication gives it.
# The k3d stub prints what k3d 5.8.3 (nixos-25.11's) prints when `ctr image
# import` fails in a node, and exits 0 as k3d does (pkg/client/tools.go,
# importWithToolsNode; cmd/image/imageImport.go). scripts/check-nix runs this.
#
#   nix/klab-demo-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/bin"

# The script as writeShellApplication writes it (without the PATH it adds).
{
  printf '#!/usr/bin/env bash\nset -o errexit\nset -o nounset\nset -o pipefail\n'
  cat nix/klab-demo.sh
} >"$work/klab-demo"
chmod +x "$work/klab-demo"

cat >"$work/bin/k3d" <<'EOF'
#!/usr/bin/env bash
# k3d's logrus lines: INFO and below on stdout, WARN and above on stderr, colours forced.
info() { printf '\033[36mINFO\033[0m[%04d] %s\n' "$1" "$2"; }
erro() { printf '\033[31mERRO\033[0m[%04d] %s\n' "$1" "$2" >&2; }
echo "k3d $*" >>"$STUB_LOG"
case "$1 $2" in
"cluster list") echo "NAME   SERVERS   AGENTS   LOADBALANCER" ;;
"image import")
  archive=${*: -1}
  base=${archive##*/}
  info 0 "Importing image(s) into cluster 'klab'"
  info 0 "Saving 1 tarball(s) to shared image volume..."
  info 1 "Importing images into nodes..."
  info 1 "Importing images from tarball '/k3d/images/k3d-klab-images-20260101120000-file-$base' into node 'k3d-klab-server-0'..."
  if [ "${STUB_IMPORT_FAILS_FOR:-}" = "$base" ]; then
    erro 2 "failed to import images in node 'k3d-klab-server-0': Exec process in node 'k3d-klab-server-0' failed with exit code '1': Logs from failed access process:
ctr: unrecognized image format"
  fi
  info 2 "Removing the tarball(s) from image volume..."
  info 3 "Removing k3d-tools node..."
  info 3 "Successfully imported image(s)"
  info 3 "Successfully imported 1 image(s) into 1 cluster(s)"
  ;;
esac
exit 0
EOF

cat >"$work/bin/kubectl" <<'EOF'
#!/usr/bin/env bash
echo "kubectl $*" >>"$STUB_LOG"
case " $* " in
*" get secret klab-hmac "*) exit 1 ;; # NotFound: the script creates it
*" label secret "*) [ -z "${STUB_LABEL_FAILS:-}" ] || exit 1 ;;
esac
exit 0
EOF

# nix-store --realise DRV --add-root ROOT: the root becomes an image stream script.
cat >"$work/bin/nix-store" <<'EOF'
#!/usr/bin/env bash
echo "nix-store $*" >>"$STUB_LOG"
root=${*: -1}
printf '#!/usr/bin/env bash\necho "docker-archive of %s"\n' "$2" >"$root"
chmod +x "$root"
echo "$root"
EOF

cat >"$work/bin/klab" <<'EOF'
#!/usr/bin/env bash
echo "klab $*" >>"$STUB_LOG"
EOF
chmod +x "$work/bin/"*

fail=0
# run NAME EXPECTED_STATUS PATTERN [VAR=VALUE...]: run the k3d target; its stderr must
# contain every |-separated part of PATTERN.
run() {
  local name=$1 want=$2 pattern=$3 status=0 part
  shift 3
  : >"$work/stub.log"
  env "$@" PATH="$work/bin:$PATH" STUB_LOG="$work/stub.log" TMPDIR="$work" \
    KLAB_DEMO_MANIFESTS=/nix/store/x-manifests \
    KLAB_DEMO_K3D_CONFIG=/nix/store/x-manifests/k3d-cluster.yaml \
    KLAB_DEMO_IMAGES="klab/broker:0.1.0=/nix/store/a-stream-broker.drv klab/tuner:0.1.0=/nix/store/b-stream-tuner.drv" \
    "$work/klab-demo" --target k3d --quick >"$work/out" 2>"$work/err" || status=$?
  IFS='|' read -r -a parts <<<"$pattern"
  for part in "${parts[@]}"; do
    grep -qF -- "$part" "$work/err" || status="$status, no '$part' in its stderr"
  done
  if [ "$status" = "$want" ]; then
    echo "ok   klab-demo: $name"
  else
    echo "FAIL klab-demo: $name: exit $status, expected $want" >&2
    sed 's/^/  | /' "$work/out" "$work/err" >&2
    fail=1
  fi
}

run "a failed image import stops it, naming image and node" 1 \
  "klab-demo: k3d could not import the image klab/tuner:0.1.0 into node k3d-klab-server-0" \
  STUB_IMPORT_FAILS_FOR=klab-tuner-0.1.0.tar
if grep -q 'apply -k' "$work/stub.log"; then
  echo "FAIL klab-demo: it applied the manifests after a failed import" >&2
  fail=1
fi
run "a failed label of the secret stops it" 1 "could not label the secret klab-hmac" \
  STUB_LABEL_FAILS=1
run "with every step succeeding it runs the labs in the cluster" 0 "" STUB_NONE=1
if ! grep -qx 'klab demo --target k8s --namespace klab --context k3d-klab --quick' "$work/stub.log"; then
  echo "FAIL klab-demo: the successful run did not end in 'klab demo --target k8s ...':" >&2
  sed 's/^/  | /' "$work/stub.log" >&2
  fail=1
fi
exit "$fail"
