#!/usr/bin/env bash
# Every test tier, on a fresh machine: installs what the cluster suite
# needs (Debian's etcd-server and openssl) when missing, points
# KUBEBUILDER_ASSETS at kube-apiserver and etcd, then runs `cargo test`.
# Extra arguments go to cargo test. A kube-apiserver comes from
# KUBEBUILDER_ASSETS (e.g. `setup-envtest use -p path`), KUBE_APISERVER, or
# the workplace's copy in ../shared/envtest.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v etcd >/dev/null 2>&1 || missing+=(etcd-server)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} (Debian) for the cluster suite"
  sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  apiserver=${KUBE_APISERVER:-../shared/envtest/kube-apiserver}
  if [ ! -x "$apiserver" ]; then
    echo "no kube-apiserver: set KUBEBUILDER_ASSETS (setup-envtest use -p path) or KUBE_APISERVER" >&2
    exit 1
  fi
  assets=$(mktemp -d)
  trap 'rm -rf "$assets"' EXIT
  ln -s "$(realpath "$apiserver")" "$assets/kube-apiserver"
  ln -s "$(command -v etcd)" "$assets/etcd"
  export KUBEBUILDER_ASSETS=$assets
fi
echo "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
cargo test --locked --workspace "$@"
