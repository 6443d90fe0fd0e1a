#!/usr/bin/env bash
# Interleaved A/B of `vigil match --full` on a prepared benchmark database:
# two binaries run in turn (A, B, A, B, ...), so that a machine whose speed
# drifts from run to run (ours do, by up to half) drifts over both alike.
#
#   benches/ab_match.sh OLD_VIGIL NEW_VIGIL [PAIRS] [DB]
#
# DB defaults to the one benches/match_10m.sh prepares at 10M
# (/tmp/vigil-final/10000000/match.db). Build the old binary from a worktree
# with its own target directory, e.g.
#   git worktree add /tmp/old 53b47d4
#   (cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target cargo build --release --bin vigil)
# Each line: the phases' seconds from the run's log, then wall, CPU and peak RSS (KiB).
set -euo pipefail
A=$1
B=$2
PAIRS=${3:-4}
DB=${4:-/tmp/vigil-final/10000000/match.db}
ERR=$(mktemp)
trap 'rm -f "$ERR"' EXIT
for _ in $(seq 1 "$PAIRS"); do
    for side in A B; do
        if [ "$side" = A ]; then BIN=$A; else BIN=$B; fi
        VIGIL_LOG=info,sqlx=warn /usr/bin/time -f "TIME wall %e user %U sys %S rss %M" \
            "$BIN" --database-url "sqlite://$DB" match --full >/dev/null 2>"$ERR"
        echo "$side $(sed 's/\x1b\[[0-9;]*m//g' "$ERR" \
            | grep -o 'roster for matching persons=[0-9]* seconds=[0-9.]*\|index_seconds=[0-9.]*\|match_seconds=[0-9.]*\|stored the matches.*seconds=[0-9.]*\|TIME.*' \
            | sed 's/roster for matching persons=[0-9]* /roster_/; s/stored the matches matches=[0-9]* events=[0-9]* /store_/' \
            | tr '\n' ' ')"
    done
done
