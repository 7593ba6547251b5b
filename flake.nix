{
  description = "klab: a reproducible Kafka tuning lab";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";

  # Thin on purpose: every derivation lives in nix/*.nix; this file only wires
  # them together per system.
  outputs =
    { nixpkgs, ... }:
    let
      inherit (nixpkgs) lib;

      systems = [
        "x86_64-linux"
        "aarch64-linux"
        "x86_64-darwin"
        "aarch64-darwin"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Everything one system needs, evaluated once and shared by the outputs.
      perSystem = forAllSystems (
        pkgs:
        let
          klab = pkgs.callPackage ./nix/package.nix { };
          # The container images are Linux-only: on Darwin they would need a
          # Linux builder.
          images = lib.optionalAttrs pkgs.stdenv.hostPlatform.isLinux (
            pkgs.callPackages ./nix/images.nix { inherit klab; }
          );
          demo = pkgs.callPackage ./nix/demo.nix { inherit klab images; };
        in
        {
          inherit
            pkgs
            klab
            images
            demo
            ;
        }
      );
    in
    {
      packages = lib.mapAttrs (
        _: s:
        {
          default = s.klab;
          inherit (s) klab demo;
        }
        // s.images
      ) perSystem;

      devShells = lib.mapAttrs (_: s: {
        default = s.pkgs.callPackage ./nix/shell.nix { inherit (s) klab; };
      }) perSystem;

      apps = lib.mapAttrs (_: s: {
        default = {
          type = "app";
          program = lib.getExe s.klab;
          meta.description = "The klab CLI (labs, tuner, produce/consume, broker)";
        };
        demo = {
          type = "app";
          program = lib.getExe s.demo;
          meta.description = "Run every lab unattended (local broker, or --target k3d)";
        };
      }) perSystem;

      checks = lib.mapAttrs (
        _: s: s.pkgs.callPackages ./nix/checks.nix { inherit (s) klab demo; }
      ) perSystem;

      formatter = lib.mapAttrs (_: s: s.pkgs.nixfmt-tree) perSystem;
    };
}
