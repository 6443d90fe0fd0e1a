-- The person number becomes a UNIQUE INDEX instead of the PRIMARY KEY, so a
-- first load into an empty table can drop it and build it once at the end,
-- the same on both backends. The uniqueness rule itself is unchanged:
-- `pensioners_person_no` is UNIQUE and vigil refuses to start while it is
-- missing and cannot be rebuilt.

ALTER TABLE pensioners DROP CONSTRAINT pensioners_pkey;
ALTER TABLE pensioners ALTER COLUMN person_no SET NOT NULL;
CREATE UNIQUE INDEX pensioners_person_no ON pensioners (person_no);
