-- Every proof that a person was alive on a date, from both feeds: each
-- event of the evidence-of-life feed, and each passed video session on its
-- date in China. The matcher's counter-evidence, the re-match of records
-- whose pensioner was proven alive since, and the certification scheduler
-- all read this one view, so what counts as proof is decided once.
-- Applied migrations never change; later changes come as new files.
CREATE VIEW proofs_of_life AS
    SELECT id_number, event_date AS proven_on, run_id FROM life_evidence
    UNION ALL
    SELECT id_number, session_date AS proven_on, run_id FROM video_sessions
    WHERE result = 'passed';
