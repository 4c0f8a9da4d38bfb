#!/bin/bash
# Copy of shared/envtest/build-from-debian.sh (credits: the shared/envtest authors), kept in the
# repo so a machine without ../shared can still build the envtest binaries. hubtasks.dev.envtest runs it
# only when neither KUBEBUILDER_ASSETS nor a shared/envtest folder provides them.
#
# Rebuilds kube-apiserver and kube-controller-manager v1.20.2 from Debian bookworm's
# `kubernetes` source package (full upstream tree with vendor/), using Debian's Go 1.19.
# Cold build: about 16 minutes on 2 cores (measured by a user on a fresh clone), ~3.5 GB scratch.
# usage: build-from-debian.sh OUTDIR   (WORK=scratch dir, default $TMPDIR/k8s-debsrc)
set -euo pipefail
OUT=${1:?usage: build-from-debian.sh OUTDIR}; WORK=${WORK:-${TMPDIR:-/tmp}/k8s-debsrc}
mkdir -p "$OUT" "$WORK"
# Enable source packages by copying the machine's own Debian sources with Types: deb-src.
if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
    > /etc/apt/sources.list.d/debian-src.sources
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go rsync dpkg-dev >/dev/null
cd "$WORK"
[ -d src ] || { apt-get source --download-only kubernetes; dpkg-source -x kubernetes_*.dsc src >/dev/null; }
cd src
# 1.20 builds in GOPATH mode; `make` also runs openapi-gen, which a plain `go build` lacks.
HOME=${HOME:-/root} KUBE_BUILD_PLATFORMS=linux/amd64 CGO_ENABLED=0 \
  make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
cp _output/bin/kube-apiserver _output/bin/kube-controller-manager "$OUT/"
"$OUT/kube-apiserver" --version
