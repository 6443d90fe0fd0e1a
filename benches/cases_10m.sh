#!/usr/bin/env bash
# The suspension queue at scale (issue 19): on the database that
# benches/match_10m.sh prepares (N pensioners, about N/10 death records),
# time `vigil match --full` and the case step that follows it when every
# case is new (the queue emptied first), again when nothing changed, and
# `vigil cases list --band review` over the whole queue.
#
#   benches/cases_10m.sh             # 10,000,000 pensioners
#   benches/cases_10m.sh 1000000
#
# Target: opening the cases adds at most a fifth to `vigil match --full`;
# `vigil cases list` of 100k cases filtered by band in under 2 s.
set -euo pipefail
N=${1:-10000000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/tmp/vigil-match}/$N
DB=$DIR/match.db
VIGIL=${CARGO_TARGET_DIR:-$ROOT/target}/release/vigil

PREPARE_ONLY=1 "$ROOT/benches/match_10m.sh" "$N"

# An empty queue, as before the first run that opens cases (a bench-only
# reset: vigil itself never deletes a case).
python3 - "$DB" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for t in ["recoveries", "overpayments", "payment_changes", "tips", "proposals", "case_events", "cases"]:
    c.execute(f"DELETE FROM {t}")
c.execute("UPDATE case_sync SET events_run = 0")
c.commit()
PY

run() {
    local name=$1
    VIGIL_LOG=info,sqlx=warn /usr/bin/time -v "$VIGIL" --database-url "sqlite://$DB" match --full \
        >"$DIR/$name.out" 2>"$DIR/$name.err"
}
# The first: every case opened. The second: nothing to do.
run cases-first
run cases-again
/usr/bin/time -v "$VIGIL" --database-url "sqlite://$DB" cases list --band review \
    --out "$DIR/review.csv" >"$DIR/list.out" 2>"$DIR/list.err"

python3 - "$DIR" <<'PY'
import re, sys
d = sys.argv[1]
strip = lambda t: re.sub(r"\x1b\[[0-9;]*m", "", t)
def wall(err):
    w = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", err).group(1).split(":")
    return sum(float(x) * 60 ** i for i, x in enumerate(reversed(w)))
def rss(err):
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1)) / 1024 / 1024
for name in ["cases-first", "cases-again"]:
    out, err = open(f"{d}/{name}.out").read(), strip(open(f"{d}/{name}.err").read())
    match_s = float(re.search(r"([\d.]+) s in all", out).group(1))
    m = re.search(r"wrote the cases.*?opened=(\d+).*?updated=(\d+).*?held=(\d+).*?seconds=([\d.]+)", err)
    if m:
        opened, updated, held, cases_s = int(m[1]), int(m[2]), int(m[3]), float(m[4])
    else:
        opened = updated = held = 0
        cases_s = 0.0
    loaded = re.search(r"loaded the deaths and the cases.*?seconds=([\d.]+)", err)
    print(f"{name}: match --full {match_s:.1f} s; case step {cases_s:.1f} s "
          f"({cases_s / match_s:.0%} of the match; loaded in {float(loaded[1]) if loaded else 0:.1f} s): "
          f"{opened} opened, {updated} updated, {held} held; wall {wall(err):.1f} s, "
          f"peak RSS {rss(err):.2f} GiB")
err = open(f"{d}/list.err").read()
rows = sum(1 for _ in open(f"{d}/review.csv")) - 1
print(f"cases list --band review: {rows} cases in {wall(err):.2f} s, peak RSS {rss(err) * 1024:.0f} MiB")
PY
