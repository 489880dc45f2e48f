#!/usr/bin/env bash
# Builds the previous release (tests/cluster/previous-release) from git for
# the upgrade and rollback trials, and prints the binary's path. Its source
# comes out of git into target/previous-release/src; its binary is renamed
# offer-cancel-operator-previous and built into this checkout's target/,
# so it reuses the dependencies already built there and replaces nothing
# of this release's. Built once per commit.
set -euo pipefail
cd "$(dirname "$0")/.."

commit=$(sed -n 's/^commit //p' tests/cluster/previous-release)
dir=target/previous-release
bin=target/debug/offer-cancel-operator-previous
if [ -x "$bin" ] && [ "$(cat "$dir/built" 2>/dev/null)" = "$commit" ]; then
  realpath "$bin"
  exit 0
fi
if ! git cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "the previous release ($commit, tests/cluster/previous-release) is not in this clone's history:" >&2
  echo "the upgrade and rollback trials need a clone with history (git fetch --unshallow)" >&2
  exit 1
fi
rm -rf "$dir/src"
mkdir -p "$dir/src"
git archive "$commit" | tar -x -C "$dir/src"
# Its binary under another name: the same package built from another
# path is another package to cargo, so only the bin's file could clash.
sed -i 's/^default-run = .*/default-run = "offer-cancel-operator-previous"\nautobins = false/' "$dir/src/Cargo.toml"
printf '\n[[bin]]\nname = "offer-cancel-operator-previous"\npath = "src/main.rs"\n' >> "$dir/src/Cargo.toml"
cargo build --locked --quiet --manifest-path "$dir/src/Cargo.toml" --target-dir target \
  --bin offer-cancel-operator-previous >&2
echo "$commit" > "$dir/built"
realpath "$bin"
