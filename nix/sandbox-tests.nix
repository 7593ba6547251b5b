# How `checks.<system>.klab-tests` runs the test suite in the build sandbox,
# as plain data. nix/package.nix builds testSrc from these paths,
# nix/checks.nix passes the skips, and scripts/sandbox-tests (the rehearsal
# scripts/check-nix runs without Nix) reads this file with nix-instantiate, so
# the rehearsal cannot drift from the check. Paths are relative to the
# repository root; one that does not exist is left out.
{
  # What the Rust build reads (klab.unwrapped's source).
  buildPaths = [
    "Cargo.toml"
    "Cargo.lock"
    "src"
    "build.rs"
    "benches"
  ];

  # What the tests read or run on top of that: the integration tests, the labs
  # they load, the manifests the Kubernetes tests deploy, the script that
  # starts their kube-apiserver, and the one that builds librdkafka's benchmark
  # for tests/bench.rs (preCheck runs it).
  testPaths = [
    "tests"
    "labs"
    "manifests"
    "scripts/kube-testenv"
    "scripts/rdkafka-performance"
  ];

  # Tests the build sandbox cannot run, passed on as `--skip NAME`: the live
  # view's browser test drives Chromium over WebDriver (scripts/test runs it).
  skips = [ "a_lab_run_live_in_a_browser_then_its_replay" ];
}
