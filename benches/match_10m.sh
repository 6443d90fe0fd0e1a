#!/usr/bin/env bash
# The matcher at scale (issue 4): generate N pensioners with a death rate
# that gives about N/10 death-source records, import the roster, load the
# death records through the real connectors, then time `vigil match --full`
# (load, index, match, store) and score it with `vigil eval`. With
# SPLINK=1, also run Splink 5 (DuckDB) on the same database and truth
# (benches/splink_compare.py, installed into benches/.venv).
#
#   benches/match_10m.sh                 # 10,000,000 pensioners, ~1M records
#   SPLINK=1 benches/match_10m.sh 1000000
#   WARM=1 benches/match_10m.sh          # time a run straight after another
#   COLD_WAIT=0 benches/match_10m.sh     # no idle wait before the timed run
#
# Data and database go to $BENCH_DIR/N (default /tmp/vigil-match/N) and are
# reused: the roster import (~5 min at 10M) and the pull run once. Delete the
# directory to start again.
set -euo pipefail
N=${1:-10000000}
RATE=${2:-0.023}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${BENCH_DIR:-/tmp/vigil-match}/$N
DB=$DIR/match.db
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VIGIL=$TARGET/release/vigil
mkdir -p "$DIR"

(cd "$ROOT" && cargo build --release --bin vigil --example pull_generated -q)

if [ ! -f "$DIR/roster.csv" ]; then
    /usr/bin/time -f "generate: %e s, peak RSS %M KiB" \
        "$VIGIL" generate --pensioners "$N" --seed 7 --as-of 2026-11-01 --death-rate "$RATE" \
        --out "$DIR" >"$DIR/generate.log"
fi
if [ ! -f "$DIR/prepared" ]; then
    rm -f "$DB" "$DB-wal" "$DB-shm"
    VIGIL_LOG=warn /usr/bin/time -f "roster import: %e s, peak RSS %M KiB" \
        "$VIGIL" --database-url "sqlite://$DB" roster import "$DIR/roster.csv" --as-of 2026-11-01 \
        --json >"$DIR/import.json"
    VIGIL_LOG=warn /usr/bin/time -f "pull: %e s, peak RSS %M KiB" \
        "$TARGET/release/examples/pull_generated" "sqlite://$DB" "$DIR"
    touch "$DIR/prepared"
fi
if [ ! -f "$DIR/evidence-imported" ]; then
    # Evidence of life and passed video sessions: the matcher's counter-evidence.
    VIGIL_LOG=warn /usr/bin/time -f "evidence import: %e s, peak RSS %M KiB" \
        "$VIGIL" --database-url "sqlite://$DB" evidence import "$DIR/evidence_of_life.csv" >/dev/null
    VIGIL_LOG=warn /usr/bin/time -f "video import: %e s, peak RSS %M KiB" \
        "$VIGIL" --database-url "sqlite://$DB" video import "$DIR/video_results.csv" >/dev/null
    touch "$DIR/evidence-imported"
fi
# Only the data and the database (benches/cases_10m.sh builds on them).
if [ "${PREPARE_ONLY:-0}" = 1 ]; then
    exit 0
fi

# Memory first touched costs about 2.4 s per GiB on these machines after a
# few seconds idle, and a tenth of that straight after another process freed
# some (BENCHMARKS.md, Matcher, "Method: cold and warm runs, A/B"): the timed
# run is cold by default (after COLD_WAIT seconds idle, 60 unless set);
# WARM=1 runs a throwaway match first and times the one straight after it.
if [ "${WARM:-0}" = 1 ]; then
    STATE=warm
    VIGIL_LOG=warn "$VIGIL" --database-url "sqlite://$DB" match --full >/dev/null
else
    STATE=cold
    sleep "${COLD_WAIT:-60}"
fi
echo "== vigil match --full ($N pensioners, $STATE)"
VIGIL_LOG=info,sqlx=warn /usr/bin/time -v "$VIGIL" --database-url "sqlite://$DB" match --full \
    >"$DIR/match.out" 2>"$DIR/match.err"
VIGIL_LOG=warn "$VIGIL" --database-url "sqlite://$DB" eval --truth "$DIR/truth.csv" --json >"$DIR/eval.json"
python3 - "$DIR" <<'PY'
import json, re, sys
d = sys.argv[1]
out, err = open(f"{d}/match.out").read(), open(f"{d}/match.err").read()
err = re.sub(r"\x1b\[[0-9;]*m", "", err)
num = lambda pat, text: float(re.search(pat, text).group(1))
records = int(re.search(r"matched (?:all )?(\d+) death records against (\d+)", out).group(1))
persons = int(re.search(r"against (\d+) active", out).group(1))
index_s, match_s = num(r"index (?:built|mapped from its file) in ([\d.]+) s", out), num(r"matched in ([\d.]+) s", out)
wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", err).group(1).split(":")
wall_s = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", err).group(1))
load_p = num(r"loaded the active roster for matching.*?seconds=([\d.]+)", err)
load_r = num(r"loaded the death records for matching.*?seconds=([\d.]+)", err)
store = num(r"stored the matches.*?seconds=([\d.]+)", err)
e = json.load(open(f"{d}/eval.json"))
print(f"{persons} active pensioners, {records} death records")
print(f"load roster {load_p:.1f} s, load records {load_r:.1f} s, index build {index_s:.1f} s, "
      f"match {match_s:.1f} s = {records / match_s:,.0f} records/s, store {store:.1f} s")
print(f"vigil match --full: {wall_s:.1f} s wall, peak RSS {rss / 1024 / 1024:.2f} GiB")
print(f"auto: {e['auto']} matches, precision {100 * e['auto_precision']:.3f}%, recall {100 * e['auto_recall']:.2f}%")
print(f"auto+review: {e['auto_or_review']} matches, precision {100 * e['auto_or_review_precision']:.3f}%, "
      f"recall {100 * e['auto_or_review_recall']:.2f}%")
print(f"auto+review recall of the {e['usable_links']} deaths with a usable ID or a full birth date: "
      f"{100 * e['usable_recall']:.3f}%")
print(f"wrong auto by kind: {e['false_auto_by_kind']}, of them on a pensioner alive in the truth: {e['false_auto_living']}")
json.dump({"persons": persons, "records": records, "wall_seconds": wall_s, "peak_rss_kib": rss,
           "load_roster_seconds": load_p, "load_records_seconds": load_r, "index_seconds": index_s,
           "match_seconds": match_s, "store_seconds": store, "eval": e},
          open(f"{d}/vigil.json", "w"), indent=2)
PY

if [ "${SPLINK:-0}" = 1 ]; then
    VENV=$ROOT/benches/.venv
    if [ ! -x "$VENV/bin/python" ]; then
        python3 -m venv "$VENV"
        "$VENV/bin/pip" install -q -r "$ROOT/benches/requirements.txt"
    fi
    echo "== Splink on the same database and truth"
    /usr/bin/time -f "splink: %e s wall, peak RSS %M KiB" \
        "$VENV/bin/python" "$ROOT/benches/splink_compare.py" --db "$DB" --truth "$DIR/truth.csv" \
        --json "$DIR/splink.json"
fi
