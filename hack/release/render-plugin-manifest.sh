#!/bin/sh
# Print flux-stageset.yaml for a release: the version and the SHA-256 of each
# archive, read from the checksums file GoReleaser wrote.
#
#   hack/release/render-plugin-manifest.sh 1.2.0 dist/flux-stageset_1.2.0_checksums.txt
set -eu
version=${1:?usage: render-plugin-manifest.sh VERSION CHECKSUMS_FILE}
checksums=${2:?usage: render-plugin-manifest.sh VERSION CHECKSUMS_FILE}
manifest=$(dirname "$0")/flux-stageset.yaml
script="s/\${VERSION}/$version/g"
for platform in $(sed -n 's/.*\${SHA256_\([a-z0-9_]*\)}.*/\1/p' "$manifest"); do
  sha=$(awk -v f="flux-stageset_${version}_${platform}" '$2 == f".tar.gz" || $2 == f".zip" { print $1 }' "$checksums")
  if [ -z "$sha" ]; then
    echo "no checksum for the ${platform} archive in $checksums" >&2
    exit 1
  fi
  script="$script;s/\${SHA256_${platform}}/$sha/"
done
grep -v '^#' "$manifest" | sed "$script"
