#!/usr/bin/env bash
# Print the path of a sample video for the first run. Prefers the project's test footage when it
# sits beside the repo; otherwise extracts OpenCV's vtest.avi (Apache-2.0/BSD) from Debian's
# opencv-doc package into var/samples/ (apt-get download needs no root and installs nothing).
set -euo pipefail
cd "$(dirname "$0")/.."
for p in ../shared/testdata/clips/falls/Fall01.mp4 var/samples/vtest.avi; do
  [ -s "$p" ] && { echo "$p"; exit 0; }
done
mkdir -p var/samples
tmp=$(mktemp -d)
( cd "$tmp" && apt-get download opencv-doc >/dev/null 2>&1 ) || {
  echo "no sample video: pass one as ./run.sh PATH_OR_S3_URI (apt-get download opencv-doc failed)" >&2
  exit 1; }
dpkg-deb --fsys-tarfile "$tmp"/opencv-doc_*.deb \
  | tar -xO ./usr/share/doc/opencv-doc/examples/data/vtest.avi > var/samples/vtest.avi
rm -rf "$tmp"
echo var/samples/vtest.avi
