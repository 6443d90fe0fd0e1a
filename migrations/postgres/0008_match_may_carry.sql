-- Whether nothing in a match's own evidence speaks against its pensioner
-- (no other person's ID, an agreeing name, birth date, sex and region, no
-- evidence of life after the death): only such a match may be carried to
-- `auto` by another source's `auto` record of the same death
-- (matching::fuse::match_verdict). Matches stored before this column are
-- never carried until they are matched again; the rules version that came
-- with it re-matches them.
ALTER TABLE matches ADD COLUMN may_carry BOOLEAN NOT NULL DEFAULT FALSE;
