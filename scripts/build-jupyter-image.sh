#!/usr/bin/env bash
# Builds a real JupyterLab workspace image from Debian's packages and PyPI
# (nothing is pulled from an image registry): a minimal Debian rootfs made by
# debootstrap, python3 with a venv holding `jupyterlab` from PyPI, then
# `docker import`. Used by the apps tests and as the README's example type.
#
#   scripts/build-jupyter-image.sh [TAG]
#
# The tag defaults to berth-test/jupyter:<hash of this script>, so a machine
# builds it once (about 5 minutes) and again only when this script changes.
# Prints the tag.
set -euo pipefail
cd "$(dirname "$0")/.."
JUPYTERLAB_VERSION=4.6.6
SUITE=bookworm
MIRROR=http://deb.debian.org/debian
hash="$(sha256sum "$0" | cut -c1-16)"
tag="${1:-berth-test/jupyter:$hash}"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
. "$(dirname "$0")/lib.sh"
need_command debootstrap "to make the image's Debian root" debootstrap
root="$(mktemp -d /var/tmp/berth-jupyter.XXXXXX)"
trap '$sudo rm -rf "$root"' EXIT
echo "build-jupyter-image: debootstrap $SUITE into $root" >&2
$sudo debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$root" "$MIRROR" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# The host's trust store (it may hold a proxy's CA) and name servers, for
# pip inside the root; both are removed again before the import.
$sudo cp /etc/ssl/certs/ca-certificates.crt "$root/tmp/host-ca.crt"
$sudo cp -L /etc/resolv.conf "$root/etc/resolv.conf"
echo "build-jupyter-image: pip install jupyterlab==$JUPYTERLAB_VERSION" >&2
$sudo chroot "$root" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root \
  PIP_CERT=/tmp/host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
  sh -c "python3 -m venv /opt/jupyter && /opt/jupyter/bin/pip install --quiet --no-cache-dir jupyterlab==$JUPYTERLAB_VERSION"
$sudo rm -rf "$root/tmp/host-ca.crt" "$root/var/cache/apt" "$root/var/lib/apt/lists" \
  "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale"
$sudo truncate -s 0 "$root/etc/resolv.conf"
$sudo mkdir -p "$root/workspace"
$sudo tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/opt/jupyter/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV SHELL=/bin/bash' \
  --change 'WORKDIR /workspace' \
  --change 'EXPOSE 8888' \
  --change 'CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--allow-root"]' \
  - "$tag" >/dev/null
echo "$tag"
