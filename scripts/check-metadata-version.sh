#!/bin/sh
# Fails when the release metadata does not follow the crate version in Cargo.toml.
#
# Checked: metadata.yml (io.kubewarden.policy.version), artifacthub-pkg.yml (version, the
# policy image tag, the release download link, the install commands) and the module tags of
# deploy/kubewarden/*.yaml, the provider image of deploy/gatekeeper/*.yaml. Run from anywhere: `scripts/check-metadata-version.sh`.
set -eu

root=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd)
cd "$root"

# First `version = "…"` of Cargo.toml: the [package] section comes first.
version=$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
if [ -z "$version" ]; then
    echo "check-metadata-version: no package version in Cargo.toml" >&2
    exit 1
fi

status=0
fail() {
    echo "check-metadata-version: $1" >&2
    status=1
}

# A YAML scalar, unquoted.
scalar() {
    sed -n "s/^$1[[:space:]]*\(.*\)$/\1/p" "$2" | head -n 1 | tr -d "\"' \r"
}

got=$(scalar '[[:space:]]*io\.kubewarden\.policy\.version:' metadata.yml)
[ "$got" = "$version" ] ||
    fail "metadata.yml io.kubewarden.policy.version is '$got', Cargo.toml says '$version'"

got=$(scalar 'version:' artifacthub-pkg.yml)
[ "$got" = "$version" ] ||
    fail "artifacthub-pkg.yml version is '$got', Cargo.toml says '$version'"

# Every versioned reference to the policy image or its release must name v$version.
for file in artifacthub-pkg.yml deploy/kubewarden/*.yaml; do
    [ -f "$file" ] || continue
    stale=$(grep -nE 'cluster-image-policy(:|/releases/download/)v[0-9]' "$file" |
        grep -vE "cluster-image-policy(:|/releases/download/)v$(printf '%s' "$version" | sed 's/\./\\./g')([^0-9.]|$)" || true)
    [ -z "$stale" ] || fail "$file refers to another version than v$version:
$stale"
done

# The provider image the Gatekeeper Deployment runs is the one the release publishes.
for file in deploy/gatekeeper/*.yaml; do
    [ -f "$file" ] || continue
    stale=$(grep -nE 'cip-provider:v[0-9]' "$file" |
        grep -vE "cip-provider:v$(printf '%s' "$version" | sed 's/\./\\./g')([^0-9.]|$)" || true)
    [ -z "$stale" ] || fail "$file runs another provider image than v$version:
$stale"
done

grep -q "image: ghcr.io/.*:v$version\$" artifacthub-pkg.yml ||
    fail "artifacthub-pkg.yml containersImages has no image tagged v$version"

[ "$status" -eq 0 ] && echo "check-metadata-version: metadata, artifacthub-pkg.yml and deploy/ follow version $version"
exit "$status"
