-- The roster's generation: a number that changes whenever anything the
-- matcher reads of a pensioner changes (an update of those columns or a
-- delete, by a trigger, whoever writes it; an insert raises max(rowid),
-- which the stamp also holds). The matcher's roster snapshot beside the
-- database (store::roster_snapshot) is used only while its stamp is the
-- database's. `instance` tells this database from any other, so a snapshot
-- is never read against a database it was not written from.
CREATE TABLE roster_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    instance TEXT NOT NULL,
    generation INTEGER NOT NULL
);
INSERT INTO roster_state (id, instance, generation) VALUES (1, lower(hex(randomblob(16))), 0);

-- Not on inserts: a first import writes ten million rows, and a trigger on
-- each would cost seconds; max(rowid) tells them instead. Not on the
-- presence column (missing_since) that imports set and clear.
CREATE TRIGGER roster_changed_by_update
AFTER UPDATE OF person_no, name, name_norm, name_key, id_number, sex, birth_date,
    insured_region, residence_region, benefit_start, status ON pensioners
BEGIN
    UPDATE roster_state SET generation = generation + 1 WHERE id = 1;
END;

CREATE TRIGGER roster_changed_by_delete
AFTER DELETE ON pensioners
BEGIN
    UPDATE roster_state SET generation = generation + 1 WHERE id = 1;
END;
