#!/usr/bin/env bash
# Compression codecs on text files of 2 KB, 100 KB and 10 MB (docs/benchmarks.md, "Codecs"):
# prose (docs and changelogs), source code (Rust sources of the crates in cargo's registry)
# and a web server's access log (generated with a fixed seed), each cut to the three sizes.
# Prints a markdown table: ratio, and medians of compress and decompress times on one core.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
source bench/texts.sh
make_texts "$WORK"
mkdir "$WORK/in"
for kind in prose source log; do
  head -c 2048 "$WORK/$kind.all" > "$WORK/in/$kind-2KB.txt"
  head -c 102400 "$WORK/$kind.all" > "$WORK/in/$kind-100KB.txt"
  head -c 10485760 "$WORK/$kind.all" > "$WORK/in/$kind-10MB.txt"
done
cargo run --quiet --release --manifest-path bench/codecs/Cargo.toml -- "$WORK/in"
