# `nix flake check`: the package builds, the tests pass against a real Kafka,
# the Nix files are formatted, the manifests render, the demo script lints.
{
  lib,
  stdenv,
  runCommandLocal,
  symlinkJoin,
  nixfmt,
  kubectl,
  kubernetes,
  etcd_3_6,
  openssl,
  curl,
  util-linux,
  nix,
  klab,
  demo,
}:
let
  inherit (klab)
    unwrapped
    kafka
    jre
    version
    ;

  # The Kubernetes tests (Linux only) start kube-apiserver, etcd and
  # kube-controller-manager through scripts/kube-testenv; in the sandbox they
  # come from nixpkgs (KUBE_TESTENV_BIN) instead of a Go build.
  kubeTestenvBin = symlinkJoin {
    name = "klab-kube-testenv-bin";
    paths = [
      kubernetes
      etcd_3_6
    ];
  };
  isLinux = stdenv.hostPlatform.isLinux;

  # testSrc's paths and the skips, shared with scripts/sandbox-tests.
  sandboxTests = import ./sandbox-tests.nix;
in
{
  inherit klab;

  # writeShellApplication runs shellcheck on the script while building it.
  klab-demo = demo;

  # `cargo test` against Kafka 4.1 on loopback inside the build sandbox. The
  # tests find Kafka through KLAB_KAFKA_HOME and java on PATH; `nix hash path`
  # checks the lab fingerprint. One test thread: each test may start its own
  # broker.
  klab-tests = unwrapped.overrideAttrs (old: {
    pname = "klab-tests";
    src = klab.testSrc;
    name = "klab-tests-${version}";
    doCheck = true;
    dontUseCargoParallelTests = true;
    checkFlags = map (name: "--skip=${name}") sandboxTests.skips;
    nativeCheckInputs =
      (old.nativeCheckInputs or [ ])
      ++ [
        jre
        nix
      ]
      ++ lib.optionals isLinux [
        kubectl
        openssl
        curl
        util-linux
      ];
    __darwinAllowLocalNetworking = true;
    # The store paths here; the rest, shared with scripts/sandbox-tests (which
    # sets these variables to its own Kafka, Toxiproxy and Kubernetes
    # binaries), is in
    # nix/sandbox-pre-check.sh.
    preCheck = ''
      export KLAB_KAFKA_HOME=${kafka}
      export KLAB_TOXIPROXY=${klab.toxiproxy}/bin/toxiproxy-server
    ''
    + lib.optionalString isLinux ''
      export KUBE_TESTENV_BIN=${kubeTestenvBin}/bin
    ''
    + ''
      source ${./sandbox-pre-check.sh}
    '';
    # A check, not a package: record that the tests ran instead of installing
    # klab a second time.
    installPhase = ''
      runHook preInstall
      mkdir -p $out
      echo "cargo test passed against ${kafka.name}" > $out/result
      runHook postInstall
    '';
    postInstall = "";
  });

  # Every *.nix file in the repository is formatted (`nix fmt` fixes it).
  nix-format =
    runCommandLocal "klab-nix-format"
      {
        nativeBuildInputs = [ nixfmt ];
        src = lib.fileset.toSource {
          root = ../.;
          fileset = lib.fileset.fileFilter (file: file.hasExt "nix") ../.;
        };
      }
      ''
        cd "$src"
        find . -name '*.nix' -print0 | xargs -0 nixfmt --check
        touch $out
      '';

  # The kustomize base renders and deploys the images this flake builds.
  manifests =
    runCommandLocal "klab-manifests"
      {
        nativeBuildInputs = [ kubectl ];
      }
      ''
        export HOME=$TMPDIR
        kubectl kustomize ${../manifests} > rendered.yaml
        if ! grep -q 'image: klab/broker:${version}$' rendered.yaml; then
          echo "manifests/ must deploy klab/broker:${version} (the version in Cargo.toml)" >&2
          exit 1
        fi
        if ! grep -q 'app.kubernetes.io/version: ${version}$' rendered.yaml; then
          echo "manifests/: app.kubernetes.io/version must be ${version} (Cargo.toml)" >&2
          exit 1
        fi
        if grep -q 'image: .*:latest' rendered.yaml; then
          echo "manifests/ must not use :latest images" >&2
          exit 1
        fi
        # The optional Grafana dashboard: a Component an overlay outside the
        # base includes (kustomize wants relative paths there).
        mkdir overlay
        printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - %s\ncomponents:\n  - %s\n' \
          "$(realpath --relative-to=overlay ${../manifests})" \
          "$(realpath --relative-to=overlay ${../manifests}/components/grafana)" \
          > overlay/kustomization.yaml
        kubectl kustomize overlay > with-grafana.yaml
        if ! grep -q 'grafana_dashboard: "1"' with-grafana.yaml; then
          echo "manifests/components/grafana: no dashboard ConfigMap in the overlay" >&2
          exit 1
        fi
        if grep -q grafana_dashboard rendered.yaml; then
          echo "manifests/ must leave the Grafana dashboard out (it is optional)" >&2
          exit 1
        fi
        mkdir -p $out
        cp rendered.yaml with-grafana.yaml $out/
      '';
}
