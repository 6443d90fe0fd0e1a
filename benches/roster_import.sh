#!/usr/bin/env bash
# Roster import benchmark: generate N pensioners, import them into a fresh
# database, import the same file again, and report rows/s, wall, user and
# system seconds (user + sys above wall means both cores were busy) and peak
# memory. Note the load average: other work on the machine slows the runs.
#
#   benches/roster_import.sh N sqlite
#   benches/roster_import.sh N postgres://postgres@127.0.0.1:5432/vigil_bench
#
# Needs a release build (cargo build --release). Data goes to $BENCH_DIR
# (default /tmp/vigil-bench), reused between runs with the same N.
set -euo pipefail
N=${1:?usage: roster_import.sh N sqlite|POSTGRES_URL}
TARGET=${2:-sqlite}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VIGIL="$ROOT/target/release/vigil"
DIR=${BENCH_DIR:-/tmp/vigil-bench}/$N
mkdir -p "$DIR"
export VIGIL_LOG=warn

if [ ! -f "$DIR/roster.csv" ]; then
    /usr/bin/time -f "generate: %e s, peak RSS %M KiB" \
        "$VIGIL" generate --pensioners "$N" --seed 7 --as-of 2026-11-01 --out "$DIR" >/dev/null
fi

if [ "$TARGET" = sqlite ]; then
    rm -f "$DIR/bench.db" "$DIR/bench.db-wal" "$DIR/bench.db-shm"
    URL="sqlite://$DIR/bench.db"
else
    URL="$TARGET"
    ADMIN="${URL%/*}/postgres"
    NAME="${URL##*/}"
    psql "$ADMIN" -q -c "DROP DATABASE IF EXISTS $NAME WITH (FORCE)" -c "CREATE DATABASE $NAME"
fi

run() {
    local label=$1
    /usr/bin/time -o "$DIR/$label.time" -f "%e %U %S %M" \
        "$VIGIL" --database-url "$URL" roster import "$DIR/roster.csv" --as-of 2026-11-01 --json >"$DIR/$label.json"
    python3 - "$DIR/$label.json" "$DIR/$label.time" "$label" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
wall, user, sys_s, rss = open(sys.argv[2]).read().split()[-4:]
wall = float(wall)
print(f"{sys.argv[3]}: {s['read']} rows in {wall:.1f} s = {s['read']/wall:,.0f} rows/s; "
      f"user {float(user):.1f} s, sys {float(sys_s):.1f} s, peak RSS {int(rss)//1024} MiB "
      f"(inserted {s['inserted']}, unchanged {s['unchanged']}, quarantined {s['quarantined']})")
PY
}
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores"
run first-import
run re-import
