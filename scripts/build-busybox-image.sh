#!/usr/bin/env bash
# Builds a tiny local image from the host's static busybox (nothing is pulled):
# an HTTP server on port 8080 serving /www, with /www/healthz for health
# checks. Used by the tests and by the README's tour.
#
#   scripts/build-busybox-image.sh [TAG] [PROGRAM]
#
# TAG defaults to berth-demo/busybox:latest. PROGRAM, when given, is copied to
# /bin/<its name> together with the shared libraries it links (from ldd), so a
# host-built test fixture such as target/debug/berth-echo runs in the image.
set -euo pipefail
tag="${1:-berth-demo/busybox:latest}"
program="${2:-}"
# ldd exits 1 for a static binary: read its output apart from its status.
is_static() {
  local out
  out="$(ldd "$1" 2>&1 || true)"
  case "$out" in *"not a dynamic"*) return 0 ;; esac
  return 1
}
busybox=""
for c in "$(command -v busybox || true)" /bin/busybox /usr/bin/busybox; do
  if [ -n "$c" ] && [ -x "$c" ] && is_static "$c"; then busybox="$c"; break; fi
done
if [ -z "$busybox" ] || [ ! -x "$busybox" ]; then
  echo "build-busybox-image: no static busybox found; install it with: apt-get install busybox-static" >&2
  exit 1
fi
root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/workspace" "$root/etc"
cp "$busybox" "$root/bin/busybox"
for app in sh ash httpd wget sleep cat echo rm ls mkdir touch true false kill ps env id nc \
           date head tail du tar printf grep sed test cp mv chmod seq yes dd gzip gunzip zcat ln chown; do
  ln -s busybox "$root/bin/$app"
done
echo ok > "$root/www/healthz"
echo '<html><body>berth busybox workspace</body></html>' > "$root/www/index.html"
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
chmod 1777 "$root/tmp"
if [ -n "$program" ]; then
  cp "$program" "$root/bin/$(basename "$program")"
  # Every library ldd resolves (and the loader), at the same path.
  for lib in $(ldd "$program" | grep -o '/[^ ]*' | sort -u); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
fi
tar -C "$root" -c . | docker import \
  --change 'ENV PATH=/bin' \
  --change 'WORKDIR /workspace' \
  --change 'EXPOSE 8080' \
  --change 'CMD ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/www"]' \
  - "$tag" >/dev/null
echo "$tag"
