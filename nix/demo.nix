# `nix run .#demo`: every lab, unattended. Locally by default (`klab demo`);
# with `--target k3d` in a k3d cluster built from the Nix images and
# manifests/. The script body is nix/klab-demo.sh; writeShellApplication runs
# shellcheck on the result at build time.
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
    KLAB_DEMO_IMAGES = lib.concatMapStringsSep " " toString (lib.attrValues images);
  };
  text = builtins.readFile ./klab-demo.sh;
  meta.description = "Run every klab lab unattended, locally or in a k3d cluster";
}
