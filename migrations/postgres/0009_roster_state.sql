-- The roster's generation: a number that changes whenever anything the
-- matcher reads of a pensioner changes (once per statement that inserts,
-- deletes, truncates or updates those columns, by a trigger, whoever
-- writes it). `instance` tells this database from any other. SQLite holds
-- the same table (its triggers are per row, so inserts are told there by
-- max(rowid) instead); the matcher's roster snapshot is read against it.
CREATE TABLE roster_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    instance TEXT NOT NULL,
    generation BIGINT NOT NULL
);
INSERT INTO roster_state (id, instance, generation)
VALUES (1, md5(random()::text || clock_timestamp()::text), 0);

CREATE FUNCTION roster_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE roster_state SET generation = generation + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER roster_changed_by_write
AFTER INSERT OR DELETE OR TRUNCATE ON pensioners
FOR EACH STATEMENT EXECUTE FUNCTION roster_changed();

CREATE TRIGGER roster_changed_by_update
AFTER UPDATE OF person_no, name, name_norm, name_key, id_number, sex, birth_date,
    insured_region, residence_region, benefit_start, status ON pensioners
FOR EACH STATEMENT EXECUTE FUNCTION roster_changed();
