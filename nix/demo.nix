# `nix run .#demo`: every lab, unattended. Locally by default (`klab demo`);
# with `--target k3d` in a k3d cluster built from the Nix images and
# manifests/. The script body is nix/klab-demo.sh; writeShellApplication runs
# shellcheck on the result at build time.
#
# The demo names the images by their derivations, not their outputs, so
# building it (for the local target) builds no image: with `--target k3d` the
# script has Nix build them then (`nix-store --realise`). The derivation files
# stay alive as long as the demo does (they are references of its script).
{
  lib,
  writeShellApplication,
  coreutils,
  k3d,
  kubectl,
  klab,
  images ? { },
}:
writeShellApplication {
  name = "klab-demo";
  runtimeInputs = [
    klab
    coreutils
    k3d
    kubectl
  ];
  runtimeEnv = {
    KLAB_DEMO_MANIFESTS = "${../manifests}";
    KLAB_DEMO_K3D_CONFIG = "${../manifests}/k3d-cluster.yaml";
    KLAB_DEMO_IMAGES = lib.concatMapStringsSep " " (
      image:
      "${image.imageName}:${image.imageTag}=${builtins.unsafeDiscardOutputDependency image.drvPath}"
    ) (lib.attrValues images);
  };
  text = builtins.readFile ./klab-demo.sh;
  meta.description = "Run every klab lab unattended, locally or in a k3d cluster";
}
