# klab, built from this repository, in two layers:
#
# - `klab.unwrapped`: the Rust build (buildRustPackage). The OCI images use
#   this one, so the producer/consumer/tuner images do not carry Kafka or a JDK.
# - `klab`: `klab.unwrapped` wrapped so it finds Kafka and a JRE by default:
#   KLAB_KAFKA_HOME, KLAB_TOXIPROXY and KLAB_DEFAULT_LABS_DIR get defaults (`--set-default`: a
#   value the user set wins) and Kafka's own JRE is put on PATH. The labs are a
#   store path of their own (`klab.labs`), so editing a lab does not rebuild
#   the Rust code; klab prefers ./labs (a student's checkout) over them.
{
  lib,
  rustPlatform,
  pkg-config,
  zlib,
  makeWrapper,
  symlinkJoin,
  apacheKafka_4_1,
  toxiproxy,
}:
let
  inherit ((builtins.fromTOML (builtins.readFile ../Cargo.toml)).package) version;

  kafka = apacheKafka_4_1;
  # The JRE nixpkgs builds this Kafka against (jdk17_headless in nixos-25.11).
  inherit (kafka) jre;

  hasLabs = builtins.pathExists ../labs;

  # The lab exercises, as they are in the repository.
  labs = lib.fileset.toSource {
    root = ../labs;
    fileset = ../labs;
  };

  # What the Rust build reads, and what checks.klab-tests adds for the tests:
  # nix/sandbox-tests.nix lists both (scripts/sandbox-tests reads it too). The
  # tests and labs are left out of the build's source, so editing them, README
  # or nix/ does not rebuild klab.
  sandboxTests = import ./sandbox-tests.nix;
  rustSrc =
    paths:
    lib.fileset.toSource {
      root = ../.;
      fileset = lib.fileset.unions (
        map (path: lib.fileset.maybeMissing (../. + "/${path}")) (sandboxTests.buildPaths ++ paths)
      );
    };

  meta = {
    description = "Reproducible Kafka tuning lab: numbered labs, open-loop load, tuner";
    license = lib.licenses.asl20;
    mainProgram = "klab";
  };

  unwrapped = rustPlatform.buildRustPackage {
    pname = "klab";
    inherit version meta;

    src = rustSrc [ ];

    cargoLock.lockFile = ../Cargo.lock;

    # rdkafka-sys (default features) builds its bundled librdkafka with
    # mklove's ./configure + make: it needs only the C toolchain, make and
    # bash from stdenv; zlib is found through libz-sys (pkg-config). The zstd
    # feature adds zstd-sys, which compiles the zstd sources it ships with the
    # C compiler and hands librdkafka's configure their path (no pkg-config,
    # no system libzstd). No cmake
    # (that is the cmake-build feature), no openssl/sasl (ssl/gssapi features
    # are off), no python3 (without it configure skips the lds-gen.py linker
    # script, which the static library does not need). kube 5 uses rustls with
    # ring by default: a C compiler is enough (no aws-lc-rs, so no cmake/go).
    nativeBuildInputs = [ pkg-config ];
    buildInputs = [ zlib ];

    # librdkafka's configure starts with `#!/usr/bin/env bash`, which does not
    # exist in the build sandbox. cargoSetupHook has copied the vendored crates
    # to a writable $cargoDepsCopy before this runs. (If python3 is ever added
    # to the inputs, configure enables lds-gen.py: patch that one too.)
    postPatch = ''
      patchShebangs --build "$cargoDepsCopy"/rdkafka-sys-*/librdkafka/configure
    '';

    # The tests start a real Kafka broker: they run in checks.klab-tests, so
    # `nix build` stays fast.
    doCheck = false;
  };

  wrapperArgs = [
    "--set-default"
    "KLAB_KAFKA_HOME"
    "${kafka}"
    # The proxies of a run with a network (docs/network.md).
    "--set-default"
    "KLAB_TOXIPROXY"
    "${toxiproxy}/bin/toxiproxy-server"
  ]
  ++ lib.optionals hasLabs [
    "--set-default"
    "KLAB_DEFAULT_LABS_DIR"
    "${labs}"
  ]
  ++ [
    "--prefix"
    "PATH"
    ":"
    (lib.makeBinPath [ jre ])
  ];
in
symlinkJoin {
  name = "klab-${version}";
  inherit version meta;
  paths = [ unwrapped ];
  nativeBuildInputs = [ makeWrapper ];
  postBuild = "wrapProgram $out/bin/klab ${lib.escapeShellArgs wrapperArgs}";
  passthru = {
    inherit
      unwrapped
      kafka
      jre
      toxiproxy
      hasLabs
      labs
      ;
    # The source checks.klab-tests builds from.
    testSrc = rustSrc sandboxTests.testPaths;
  };
}
