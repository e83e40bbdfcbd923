#!/bin/sh
# Builds the provider image of Containerfile without a container daemon, with umoci (OCI layout,
# rootless) and skopeo (registry transfer):
#
#   scripts/build-image.sh CIP_BINARY POLICY_WASM OCI_DIR            build OCI_DIR:cip-provider
#   scripts/build-image.sh --push OCI_DIR DEST [--insecure]          push it to docker://DEST
#
# The image: /usr/local/bin/cip (must be statically linked), /usr/share/cip/policy.wasm, the
# build host's CA bundle at /etc/ssl/certs/ca-certificates.crt, user 65532:65532, entrypoint
# cip, no shell. `make image` calls it; host/tests/provider_image.rs checks the result.
# CIP_IMAGE_ALLOW_DYNAMIC=1 accepts a dynamically linked cip (a quick local check of the
# packaging only: such an image does not run on its empty base).
set -eu

if [ "${1:-}" = "--push" ]; then
    oci=$2 dest=$3
    tls=true
    [ "${4:-}" = "--insecure" ] && tls=false
    skopeo copy --quiet --dest-tls-verify="$tls" "oci:$oci:cip-provider" "docker://$dest"
    exit 0
fi

cip=$1 policy=$2 oci=$3
if [ -z "${CIP_IMAGE_ALLOW_DYNAMIC:-}" ] && ! file -L "$cip" 2>/dev/null | grep -q 'statically linked\|static-pie linked'; then
    echo "build-image: $cip is not statically linked (the image has no libc)" >&2
    exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$oci"
umoci init --layout "$oci"
umoci new --image "$oci:cip-provider"
umoci unpack --rootless --image "$oci:cip-provider" "$work/bundle" >/dev/null
rootfs="$work/bundle/rootfs"
install -D -m 0755 "$cip" "$rootfs/usr/local/bin/cip"
install -D -m 0644 "$policy" "$rootfs/usr/share/cip/policy.wasm"
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
fi
umoci repack --image "$oci:cip-provider" "$work/bundle" >/dev/null
umoci config --image "$oci:cip-provider" \
    --config.user 65532:65532 \
    --config.entrypoint /usr/local/bin/cip \
    --config.cmd provider --config.cmd --help \
    --config.env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --config.env CIP_CACHE_DIR=/var/cache/cip \
    --config.workingdir / \
    --os linux --architecture amd64 \
    --author "cluster-image-policy maintainers" >/dev/null
umoci gc --layout "$oci"
echo "build-image: $oci:cip-provider ($(du -sh "$oci" | cut -f1))"
