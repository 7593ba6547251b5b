# Body of `klab-demo` (see nix/demo.nix). writeShellApplication adds the
# shebang and `set -o errexit -o nounset -o pipefail`, puts klab, k3d, kubectl
# and coreutils on PATH, and exports:
#   KLAB_DEMO_MANIFESTS   the kustomize base (manifests/ in the Nix store)
#   KLAB_DEMO_K3D_CONFIG  manifests/k3d-cluster.yaml
#   KLAB_DEMO_IMAGES      the klab images as NAME:TAG=DERIVATION, space
#                         separated (empty on Darwin: the images are Linux-only).
#                         Derivations, not outputs: the images are built only
#                         when --target k3d needs them (nix-store --realise, the
#                         Nix on the user's PATH), never for the local demo.

cluster=klab
context=k3d-$cluster
namespace=klab
rollout_timeout=${KLAB_DEMO_ROLLOUT_TIMEOUT:-300s}

usage() {
  cat <<'EOF'
Usage: klab-demo [--target local|k3d] [--down] [klab demo options...]

Runs every lab unattended.

  (default)       local broker, a child process of klab: `klab demo ...`
  --target k3d    create or reuse the k3d cluster "klab", import the klab
                  images into it, deploy manifests/ and run the labs there:
                  `klab demo --target k8s --namespace klab --context k3d-klab ...`
  --down          delete the k3d cluster "klab" and exit

Every other option (--quick, --json FILE, ...) is passed on to `klab demo`;
see `klab demo --help`.
EOF
}

die() {
  printf 'klab-demo: %s\n' "$*" >&2
  exit 1
}

target=local
down=0
args=()
while [ $# -gt 0 ]; do
  case "$1" in
  --target)
    [ $# -ge 2 ] || die "--target needs a value: local or k3d"
    target=$2
    shift 2
    ;;
  --target=*)
    target=${1#--target=}
    shift
    ;;
  --down)
    down=1
    shift
    ;;
  -h | --help)
    usage
    exit 0
    ;;
  *)
    args+=("$1")
    shift
    ;;
  esac
done

cluster_exists() {
  k3d cluster list "$cluster" >/dev/null 2>&1
}

# k3d talks to the Docker API; `k3d cluster list` fails when it cannot.
require_docker() {
  local out tool
  for tool in k3d kubectl; do
    command -v "$tool" >/dev/null || die "$tool is not on PATH (nix run .#demo provides it)"
  done
  if ! out=$(k3d cluster list 2>&1); then
    printf '%s\n' "$out" >&2
    die "k3d cannot reach a Docker daemon. Start Docker (or set DOCKER_HOST to a running daemon) and run this again."
  fi
}

if [ "$down" = 1 ]; then
  require_docker
  if cluster_exists; then
    k3d cluster delete "$cluster" || die "k3d could not delete the cluster '$cluster' (see above)"
  else
    echo "klab-demo: there is no k3d cluster named '$cluster'; nothing to delete"
  fi
  exit 0
fi

case "$target" in
local)
  exec klab demo "${args[@]}"
  ;;
k3d) ;;
k8s)
  die "for a cluster you already have: import the klab images into its nodes, 'kubectl apply -k manifests', create the Secret klab-hmac (see manifests/kustomization.yaml), then run 'klab demo --target k8s --context CTX'; '--target k3d' does all of it on a k3d cluster"
  ;;
*)
  die "unknown --target '$target' (expected local or k3d)"
  ;;
esac

[ -n "${KLAB_DEMO_IMAGES:-}" ] ||
  die "the k3d target needs the klab container images, which are built for Linux only; run klab-demo on a Linux machine"

command -v nix-store >/dev/null ||
  die "the k3d target builds the klab images with Nix, and nix-store is not on PATH"
require_docker

workdir=$(mktemp -d "${TMPDIR:-/tmp}/klab-demo.XXXXXX") ||
  die "could not create a temporary directory"
trap 'rm -rf "$workdir"' EXIT

# The images first, before any cluster exists: Nix builds each one (or fetches
# it from a binary cache; the first build also builds klab) and gives the
# script that streams it, kept alive by a GC root in the work directory.
read -r -a images <<<"$KLAB_DEMO_IMAGES"
image_names=()
for entry in "${images[@]}"; do
  name=${entry%%=*}
  drv=${entry#*=}
  echo "klab-demo: building the image $name with Nix"
  nix-store --realise "$drv" --add-root "$workdir/${name//[\/:]/-}.stream" >/dev/null ||
    die "Nix could not build the image $name ($drv)"
  image_names+=("$name")
done

if cluster_exists; then
  echo "klab-demo: reusing k3d cluster '$cluster'"
  k3d cluster start "$cluster" ||
    die "k3d could not start the existing cluster '$cluster'; 'klab-demo --down' deletes it so the next run starts fresh"
else
  echo "klab-demo: creating k3d cluster '$cluster' (the first run pulls the k3s image)"
  k3d cluster create --config "$KLAB_DEMO_K3D_CONFIG" ||
    die "k3d could not create the cluster '$cluster' (see above). 'klab-demo --down' removes a half-created one; check that Docker has at least 4 GiB of memory."
fi

# Make sure the kube context exists (it may have been removed from the
# kubeconfig since the cluster was created), without switching to it.
k3d kubeconfig merge "$cluster" --kubeconfig-merge-default --kubeconfig-switch-context=false >/dev/null ||
  die "could not write the '$context' context into your kubeconfig"

kc() {
  kubectl --context "$context" "$@"
}

kc get --raw /readyz >/dev/null 2>&1 ||
  die "the API server of '$context' does not answer; 'kubectl --context $context get nodes' shows more"

# `k3d image import` (k3d 5.x, default tools-node mode) copies the archive into
# the cluster's tools node and runs `ctr image import` in every node; when that
# fails for a node it only logs "failed to import images in node 'NAME': ..."
# (likewise "failed to copy image tar ..." when the copy fails) and still exits
# 0, and the broker would then wait for its rollout timeout. So its log is read
# too, and each image is imported on its own so that a failure names it.
import_image() { # import_image NAME ARCHIVE
  local name=$1 archive=$2 log=$workdir/import.log status=0 line copy_failed=0
  local nodes=()
  k3d image import --cluster "$cluster" "$archive" 2>&1 | tee "$log" || status=$?
  while IFS= read -r line; do
    if [[ $line =~ failed\ to\ import\ images\ in\ node\ \'([^\']+)\' ]]; then
      nodes+=("${BASH_REMATCH[1]}")
    elif [[ $line == *"failed to copy image tar"* ]]; then
      copy_failed=1
    fi
  done <"$log"
  if [ ${#nodes[@]} -gt 0 ]; then
    die "k3d could not import the image $name into node ${nodes[*]} of cluster '$cluster' (k3d's error above says why, although it exited $status). 'klab-demo --down' and a new run start over."
  fi
  [ "$copy_failed" = 0 ] ||
    die "k3d could not copy the image $name into the tools node of cluster '$cluster', so no node has it (see above)"
  [ "$status" = 0 ] ||
    die "k3d image import failed (exit $status) for the image $name into cluster '$cluster' (see above)"
}

# Each image streamed to a docker-archive file (k3d imports files, not
# streams), imported, deleted.
for name in "${image_names[@]}"; do
  file=$workdir/${name//[\/:]/-}
  echo "klab-demo: writing $name to $file.tar"
  "$file.stream" >"$file.tar" || die "could not write the image $name to $file.tar"
  import_image "$name" "$file.tar"
  rm -f "$file.tar"
done

kc apply -k "$KLAB_DEMO_MANIFESTS" ||
  die "kubectl could not apply the manifests to '$context'"

# The HMAC secret that producer and consumer share, and the tuner must never
# see: random, created once per cluster, never printed or put on a command line.
if ! kc -n "$namespace" get secret klab-hmac >/dev/null 2>&1; then
  (
    umask 077
    head -c 32 /dev/urandom | base64 | tr -d '\n' >"$workdir/hmac"
  ) || die "could not write a random secret to $workdir/hmac"
  kc -n "$namespace" create secret generic klab-hmac --from-file=secret="$workdir/hmac" >/dev/null ||
    die "could not create the secret klab-hmac"
  rm -f "$workdir/hmac"
  kc -n "$namespace" label secret klab-hmac \
    app.kubernetes.io/name=klab-hmac app.kubernetes.io/part-of=klab >/dev/null ||
    die "could not label the secret klab-hmac"
  echo "klab-demo: created secret $namespace/klab-hmac"
fi

echo "klab-demo: waiting for the broker (statefulset/kafka, timeout $rollout_timeout)"
if ! kc -n "$namespace" rollout status statefulset/kafka --timeout="$rollout_timeout"; then
  echo "klab-demo: the broker did not become ready; what the cluster says:" >&2
  kc -n "$namespace" get pods -o wide >&2 || true
  kc -n "$namespace" describe pod kafka-0 >&2 || true
  kc -n "$namespace" logs kafka-0 --tail=50 >&2 || true
  die "broker not ready. Fix the cause above and rerun, or start over with 'klab-demo --down'."
fi

rm -rf "$workdir"
trap - EXIT
exec klab demo --target k8s --namespace "$namespace" --context "$context" "${args[@]}"
