# `nix develop` (or direnv's `use flake`): the toolchain for hacking on klab,
# the same Kafka and JRE the package uses, and the k3d/kubectl tooling.
{
  lib,
  mkShell,
  rustPlatform,
  cargo,
  rustc,
  clippy,
  rustfmt,
  rust-analyzer,
  pkg-config,
  zlib,
  rdkafka,
  kcat,
  k3d,
  kubectl,
  jq,
  nixfmt,
  nixfmt-tree,
  klab,
}:
let
  # apacheKafka's version is "<scala>-<kafka>", e.g. 2.13-4.1.1
  kafkaVersion = lib.last (lib.splitString "-" klab.kafka.version);
in
mkShell {
  packages = [
    cargo
    rustc
    clippy
    rustfmt
    rust-analyzer
    # rdkafka-sys's bundled librdkafka build (mklove) and libz-sys
    pkg-config

    # Kafka 4.1 itself (kafka-*.sh on PATH) and the JRE it is built against
    klab.kafka
    klab.jre
    kcat
    # the proxies of a run with a network (docs/network.md)
    klab.toxiproxy

    # the k3d target; `kubectl kustomize` is kustomize
    k3d
    kubectl

    jq
    nixfmt
    nixfmt-tree
  ];

  # Libraries for pkg-config: zlib for libz-sys; librdkafka for anyone trying
  # rdkafka's dynamic-linking feature (the default build bundles its own).
  buildInputs = [
    zlib
    rdkafka
  ];

  RUST_SRC_PATH = "${rustPlatform.rustLibSrc}";
  KLAB_KAFKA_HOME = "${klab.kafka}";
  KLAB_TOXIPROXY = "${klab.toxiproxy}/bin/toxiproxy-server";

  shellHook = ''
    cat <<'EOF'
    klab dev shell: Kafka ${kafkaVersion}, Rust, k3d, kubectl, kcat
      klab lab list          list the labs
      klab lab run NN        run lab NN (worse broker config -> load -> result)
      klab lab check NN      did your fix reach the lab's target?
      klab tune --lab NN     let the tuner search for lab NN
      klab demo --quick      all labs, short runs, local broker
      nix run .#demo -- --target k3d    the same in a k3d cluster
    In this shell run them as `cargo run --release -- lab list`;
    `nix run . -- lab list` runs the packaged klab.
    EOF
  '';
}
