#!/usr/bin/env bash
# Builds Bertha's image from the Containerfile on a machine that cannot pull from a registry:
# the local base from build-ci-base.sh, and npm installing offline from this machine's npm
# cache (filled by `npm ci` in the work tree; mounted copy-on-write, so the build cannot change
# it). Layers are cached: a change under src/ rebuilds only the last layers. Prints the image.
#   BERTHA_IMAGE   tag to build (default localhost/bertha:ci)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"
image="${BERTHA_IMAGE:-localhost/bertha:ci}"

base="$(bash "$here/build-ci-base.sh")"
cache="$(npm config get cache)"
previous="$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)"
echo "image: building $image on $base" >&2
podman build --format docker --layers \
  --build-arg "BASE_IMAGE=$base" \
  --build-arg NPM_CONFIG_CACHE=/npm-cache \
  --build-arg NPM_CONFIG_OFFLINE=true \
  --volume "$cache:/npm-cache:O" \
  --tag "$image" --file "$root/Containerfile" "$root" >&2
# The image this build replaced, now untagged; the stages' cached layers stay for the next build.
current="$(podman image inspect --format '{{.Id}}' "$image")"
if [ -n "$previous" ] && [ "$previous" != "$current" ]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "$image"
