# Container images, one per component, all built from the same
# `klab.unwrapped` derivation so they share its layer (and glibc's, ...).
# streamLayeredImage builds a script, not an image: run, it writes the image
# to stdout as an uncompressed docker-archive tarball (Docker's image format
# v1.2: manifest.json, the config JSON and a layer.tar per layer; what
# `docker save` writes, not an OCI layout). `docker load` and `podman load`
# read it, and so does `k3d image import`, which hands it to each node's
# containerd (`ctr image import`):
#
#   $(nix build --print-out-paths .#broker-image) > broker.tar
#   k3d image import -c klab broker.tar     (or: docker load < broker.tar)
#
# Tags are the klab version from Cargo.toml, never `latest`; manifests/ uses
# the same tag. Linux only (flake.nix does not call this on Darwin).
{
  lib,
  dockerTools,
  fakeNss,
  klab,
}:
let
  inherit (klab)
    unwrapped
    kafka
    jre
    version
    hasLabs
    labs
    ;

  # The non-root user every container runs as (pod specs also say 1000). The
  # images have no /bin/sh or other shell on /bin, so its passwd entry names
  # none (an empty shell field); nothing logs in. (fakeNss's own root and
  # nobody entries say /bin/sh; no container runs as them.)
  uid = 1000;
  gid = 1000;
  etc = fakeNss.override {
    extraPasswdLines = [ "klab:x:${toString uid}:${toString gid}:klab:/tmp:" ];
    extraGroupLines = [ "klab:x:${toString gid}:" ];
  };

  mkImage =
    {
      component,
      args,
      env ? [ ],
      dataDir ? false,
      extraConfig ? { },
    }:
    dockerTools.streamLayeredImage {
      name = "klab/${component}";
      tag = version;

      # /bin/klab, /etc/{passwd,group,nsswitch.conf}, /etc/ssl/certs/*.
      # (Store paths named in `config`, such as the labs below, are part of
      # the image too: streamLayeredImage takes the closure of its config.)
      contents = [
        unwrapped
        etc
        dockerTools.caCertificates
      ];

      # Runs in the customisation layer under fakeroot: paths are relative to
      # the image root. /tmp must be writable (the JVM and klab use it);
      # the broker's data directory belongs to the klab user.
      fakeRootCommands = ''
        mkdir -p tmp
        chmod 1777 tmp
      ''
      + lib.optionalString dataDir ''
        mkdir -p var/lib/kafka/data
        chown -R ${toString uid}:${toString gid} var/lib/kafka
      '';

      config = {
        User = "${toString uid}:${toString gid}";
        Entrypoint = [ (lib.getExe unwrapped) ] ++ args;
        WorkingDir = "/tmp";
        Env = [
          "HOME=/tmp"
          "SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt"
        ]
        ++ lib.optional hasLabs "KLAB_DEFAULT_LABS_DIR=${labs}"
        ++ env;
        Labels = {
          "org.opencontainers.image.title" = "klab-${component}";
          "org.opencontainers.image.version" = version;
          "org.opencontainers.image.licenses" = "Apache-2.0";
        };
      }
      // extraConfig;
    };
in
{
  # `klab broker exec` renders server.properties + JVM flags from
  # KLAB_BROKER_CONFIG (set in the pod spec), formats KRaft storage when the
  # data directory is empty and execs java with Kafka's libs/*.
  broker-image = mkImage {
    component = "broker";
    args = [
      "broker"
      "exec"
      "--data-dir"
      "/var/lib/kafka/data"
    ];
    dataDir = true;
    env = [
      "PATH=/bin:${jre}/bin"
      "KLAB_KAFKA_HOME=${kafka}"
    ];
    extraConfig = {
      ExposedPorts = {
        "9092/tcp" = { };
        "9093/tcp" = { };
      };
      Volumes = {
        "/var/lib/kafka" = { };
      };
    };
  };

  producer-image = mkImage {
    component = "producer";
    args = [ "produce" ];
    env = [ "PATH=/bin" ];
  };

  consumer-image = mkImage {
    component = "consumer";
    args = [ "consume" ];
    env = [ "PATH=/bin" ];
  };

  tuner-image = mkImage {
    component = "tuner";
    args = [ "tune" ];
    env = [ "PATH=/bin" ];
  };
}
