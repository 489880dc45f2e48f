#!/usr/bin/env bash
# Every test tier, on a fresh machine: installs what the tests need
# (Debian's etcd-server and openssl for the cluster suite, prometheus for
# promtool, which checks and unit-tests the alerts) when missing, points
# KUBEBUILDER_ASSETS at kube-apiserver and etcd, builds the previous
# release from git for the upgrade and rollback trials
# (tests/build-previous-release.sh), then runs `cargo test`.
# Extra arguments go to cargo test. A kube-apiserver comes from
# KUBEBUILDER_ASSETS (e.g. `setup-envtest use -p path 1.24.x`),
# KUBE_APISERVER, or the copy beside the checkout (../shared/envtest).
# Without one, every tier that needs no control plane still runs, and then
# the script fails and says how to get one.
set -euo pipefail
cd "$(dirname "$0")/.."

how_to() {
  cat >&2 <<'HOW'
The cluster suite needs a Kubernetes control plane (kube-apiserver + etcd).
Get one of:
  - export KUBEBUILDER_ASSETS=$(setup-envtest use -p path 1.24.x)
    (setup-envtest: go install sigs.k8s.io/controller-runtime/tools/setup-envtest@latest)
  - export KUBE_APISERVER=/path/to/kube-apiserver   (etcd from PATH)
  - the copy beside the checkout, ../shared/envtest/kube-apiserver
The suite has been run on Kubernetes v1.24 (kube-apiserver v1.24.0-alpha.1)
with etcd 3.4. For a kind cluster instead (KUBECONFIG), run the e2e suite:
  cargo test --locked --features e2e --test e2e_cluster
HOW
}

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian) for the cluster suite and the alert tests"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  apiserver=${KUBE_APISERVER:-../shared/envtest/kube-apiserver}
  if [ ! -x "$apiserver" ]; then
    echo "no kube-apiserver at $apiserver: running every tier that needs no control plane, then failing" >&2
    status=0
    cargo test --locked --workspace --no-fail-fast "$@" || status=$?
    how_to
    echo "the cluster suite did not run (other tiers: exit $status)" >&2
    exit 1
  fi
  assets=$(mktemp -d)
  trap 'rm -rf "$assets"' EXIT
  ln -s "$(realpath "$apiserver")" "$assets/kube-apiserver"
  ln -s "$(command -v etcd)" "$assets/etcd"
  export KUBEBUILDER_ASSETS=$assets
fi
echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
# The upgrade and rollback trials run the previous release beside this one.
if [ -z "${OCO_PREVIOUS_RELEASE:-}" ]; then
  echo "building the previous release (tests/cluster/previous-release) for the upgrade trials"
  OCO_PREVIOUS_RELEASE=$(tests/build-previous-release.sh)
  export OCO_PREVIOUS_RELEASE
fi
echo "OCO_PREVIOUS_RELEASE=$OCO_PREVIOUS_RELEASE"
cargo test --locked --workspace "$@"
