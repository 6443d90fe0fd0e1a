#!/usr/bin/env python3
"""Splink 5 (DuckDB backend) on the data `vigil match` reads, scored like `vigil eval`.

Reads the active roster and the stored death records from a vigil SQLite
database (the same normalised fields vigil matches on: normalised name, its
pinyin key, the valid ID, birth date or a funeral record's age range, sex,
region), trains a Fellegi-Sunter model the way Splink's documentation does
(u by random sampling, m by expectation maximisation on two blocking rules,
term-frequency adjustment on the pinyin key), predicts, keeps each death
record's best-scoring pensioner, and scores precision and recall against the
generator's truth.csv with `vigil eval`'s counting: a link is correct when
the truth says the record is a pensioner's death and names that pensioner;
recall is over all such truth rows.

    benches/.venv/bin/python benches/splink_compare.py --db DB --truth truth.csv [--json OUT]

Prints the time of each step and precision/recall at several match
probability thresholds.
"""

import argparse
import csv
import json
import logging
import sqlite3
import sys
import time

import duckdb
import pyarrow as pa
import splink
import splink.comparison_level_library as cll
import splink.comparison_library as cl
from splink import DuckDBAPI, Linker, SettingsCreator

PERSONS_SQL = """
SELECT person_no, name_norm, name_key, id_number, sex, birth_date,
       insured_region, residence_region
FROM pensioners WHERE status = 'active'
"""

RECORDS_SQL = """
SELECT source, record_key, name_norm, name_key, id_number, sex, birth_date,
       birth_year_min, birth_year_max, region
FROM death_records
"""

THRESHOLDS = [0.5, 0.9, 0.99, 0.999, 0.9999]


def id_birth(id_number):
    if id_number and len(id_number) == 18:
        d = id_number[6:14]
        return f"{d[0:4]}-{d[4:6]}-{d[6:8]}"
    return None


def load(db_path):
    """Both tables as Arrow tables with the same columns (Splink's link_only needs that)."""
    src = sqlite3.connect(db_path)
    cols = {k: [] for k in (
        "unique_id", "name_norm", "name_key", "id_number", "id_mid", "sex",
        "birth_date", "birth_year", "birth_year_min", "birth_year_max",
        "city", "city2", "province", "province2")}

    def add(uid, norm, key, idn, sex, birth, ymin, ymax, city, city2):
        year = int(birth[:4]) if birth else None
        cols["unique_id"].append(uid)
        cols["name_norm"].append(norm or None)
        cols["name_key"].append(key or None)
        cols["id_number"].append(idn or None)
        cols["id_mid"].append(idn[6:17] if idn and len(idn) == 18 else None)
        cols["sex"].append(sex if sex in (1, 2) else None)
        cols["birth_date"].append(birth)
        cols["birth_year"].append(year)
        cols["birth_year_min"].append(ymin if ymin is not None else year)
        cols["birth_year_max"].append(ymax if ymax is not None else year)
        cols["city"].append(city[:4] if city and len(city) >= 4 else None)
        cols["city2"].append(city2[:4] if city2 and len(city2) >= 4 else None)
        cols["province"].append(city[:2] if city and len(city) >= 4 else None)
        cols["province2"].append(city2[:2] if city2 and len(city2) >= 4 else None)

    for (pno, norm, key, idn, sex, birth, ins, res) in src.execute(PERSONS_SQL):
        add(pno, norm, key, idn, sex, birth, None, None, ins, res)
    persons = pa.table({k: list(v) for k, v in cols.items()})
    for v in cols.values():
        v.clear()
    for (source, key_, norm, key, idn, sex, birth, ymin, ymax, region) in src.execute(RECORDS_SQL):
        if not region and source == "funeral" and key_.startswith("FH") and key_[2:8].isdigit():
            # As vigil does: a funeral home's code names its city.
            region = key_[2:8]
        birth = birth or id_birth(idn)
        add(f"{source}|{key_}", norm, key, idn, sex, birth, ymin, ymax, region, region)
    records = pa.table(cols)
    src.close()
    return persons, records


def settings():
    either_null = lambda c: cll.CustomLevel(f"{c}_l IS NULL OR {c}_r IS NULL").configure(is_null_level=True)
    return SettingsCreator(
        link_type="link_only",
        comparisons=[
            cl.CustomComparison(
                output_column_name="id_number",
                comparison_levels=[
                    either_null("id_number"),
                    cll.ExactMatchLevel("id_number"),
                    cll.CustomLevel("id_mid_l = id_mid_r", "birth and sequence digits equal"),
                    cll.ElseLevel(),
                ],
            ),
            cl.CustomComparison(
                output_column_name="name",
                comparison_levels=[
                    either_null("name_key"),
                    cll.ExactMatchLevel("name_norm"),
                    cll.ExactMatchLevel("name_key", term_frequency_adjustments=True),
                    cll.JaroWinklerLevel("name_key", 0.93),
                    cll.ElseLevel(),
                ],
            ),
            cl.CustomComparison(
                output_column_name="birth",
                comparison_levels=[
                    cll.CustomLevel(
                        "birth_year_min_l IS NULL OR birth_year_min_r IS NULL"
                    ).configure(is_null_level=True),
                    cll.ExactMatchLevel("birth_date"),
                    cll.CustomLevel(
                        "(birth_year_l BETWEEN birth_year_min_r AND birth_year_max_r) "
                        "OR (birth_year_r BETWEEN birth_year_min_l AND birth_year_max_l)",
                        "birth year within the other's range",
                    ),
                    cll.ElseLevel(),
                ],
            ),
            cl.ExactMatch("sex"),
            cl.CustomComparison(
                output_column_name="region",
                comparison_levels=[
                    either_null("city"),
                    cll.CustomLevel(
                        "city_l = city_r OR city2_l = city2_r OR city_l = city2_r OR city2_l = city_r",
                        "same city",
                    ),
                    cll.CustomLevel(
                        "province_l = province_r OR province2_l = province2_r "
                        "OR province_l = province2_r OR province2_l = province_r",
                        "same province",
                    ),
                    cll.ElseLevel(),
                ],
            ),
        ],
        blocking_rules_to_generate_predictions=[
            "l.id_number = r.id_number",
            "l.id_mid = r.id_mid",
            "l.name_key = r.name_key AND ("
            "l.birth_year BETWEEN r.birth_year_min AND r.birth_year_max "
            "OR r.birth_year BETWEEN l.birth_year_min AND l.birth_year_max)",
        ],
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )


def read_truth(path):
    truth = {}
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            truth[f"{row['source']}|{row['record_key']}"] = (row["person_no"] or None, row["kind"])
    return truth


def evaluate(best, truth, threshold):
    """vigil eval's counting, on each record's best link at or above `threshold`."""
    true_links = sum(1 for p, k in truth.values() if k == "pensioner" and p)
    links = correct = 0
    for rec, person, prob in best:
        if prob < threshold:
            continue
        links += 1
        t = truth.get(rec)
        if t and t[1] == "pensioner" and t[0] == person:
            correct += 1
    return {
        "threshold": threshold,
        "links": links,
        "correct": correct,
        "precision": correct / links if links else 1.0,
        "recall": correct / true_links if true_links else 1.0,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True, help="vigil SQLite database file")
    ap.add_argument("--truth", required=True)
    ap.add_argument("--json", help="write the results here as JSON")
    ap.add_argument("--u-pairs", type=float, default=1e7)
    args = ap.parse_args()
    logging.getLogger("splink").setLevel(logging.WARNING)
    times = {}
    started = time.monotonic()

    t = time.monotonic()
    persons, records = load(args.db)
    con = duckdb.connect()
    con.register("persons_arrow", persons)
    con.register("records_arrow", records)
    con.execute("CREATE TABLE persons AS SELECT * FROM persons_arrow")
    con.execute("CREATE TABLE records AS SELECT * FROM records_arrow")
    con.unregister("persons_arrow")
    con.unregister("records_arrow")
    del persons, records
    times["load"] = time.monotonic() - t

    db_api = DuckDBAPI(connection=con)
    linker = Linker(
        [db_api.register("persons", table_name="persons_in"),
         db_api.register("records", table_name="records_in")],
        settings(),
    )

    t = time.monotonic()
    linker.training.estimate_probability_two_random_records_match(
        ["l.id_number = r.id_number"], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=args.u_pairs, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(
        "l.id_number = r.id_number"
    )
    linker.training.estimate_parameters_using_expectation_maximisation(
        "l.name_key = r.name_key AND l.birth_date = r.birth_date"
    )
    times["train"] = time.monotonic() - t

    t = time.monotonic()
    predictions = linker.inference.predict(threshold_match_probability=min(THRESHOLDS))
    times["predict"] = time.monotonic() - t

    t = time.monotonic()
    # Each record's best pensioner (the records may sit on either side).
    best = con.execute(f"""
        WITH p AS (
            SELECT CASE WHEN source_dataset_l = 'records_in' THEN unique_id_l ELSE unique_id_r END AS rec,
                   CASE WHEN source_dataset_l = 'records_in' THEN unique_id_r ELSE unique_id_l END AS person,
                   match_weight, match_probability
            FROM {predictions.physical_name}
        )
        SELECT rec, person, match_probability FROM (
            SELECT *, row_number() OVER (PARTITION BY rec ORDER BY match_weight DESC, person) AS n FROM p
        ) WHERE n = 1
    """).fetchall()
    pairs = con.execute(f"SELECT count(*) FROM {predictions.physical_name}").fetchone()[0]
    times["best_per_record"] = time.monotonic() - t
    times["total"] = time.monotonic() - started

    truth = read_truth(args.truth)
    results = [evaluate(best, truth, th) for th in THRESHOLDS]
    n_persons = con.execute("SELECT count(*) FROM persons").fetchone()[0]
    n_records = con.execute("SELECT count(*) FROM records").fetchone()[0]
    out = {
        "splink": splink.__version__,
        "duckdb": duckdb.__version__,
        "persons": n_persons,
        "records": n_records,
        "pairs_above_lowest_threshold": pairs,
        "seconds": times,
        "records_per_second": n_records / times["total"],
        "thresholds": results,
    }
    print(f"splink {splink.__version__} (duckdb {duckdb.__version__}): {n_persons} pensioners, {n_records} death records")
    print("  " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
    print(f"  {n_records / times['total']:,.0f} records/s overall; {pairs} pairs at p >= {min(THRESHOLDS)}")
    for r in results:
        print(f"  p >= {r['threshold']:<7} links {r['links']:>8}  precision {100 * r['precision']:.3f}%  recall {100 * r['recall']:.2f}%")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
