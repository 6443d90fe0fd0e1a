-- The pensioners the roster says are terminated, and those it says are
-- suspended, by person number: partial indexes, small (only those rows),
-- so that the case step after a match run learns whom not to hold, and
-- the queue's listing tells each case's payment, without reading the whole
-- roster (one cold lookup per pensioner in the person-number index, then
-- in the table, took minutes at ten million pensioners).
CREATE INDEX pensioners_terminated ON pensioners (person_no) WHERE status = 'terminated';
CREATE INDEX pensioners_suspended ON pensioners (person_no) WHERE status = 'suspended';
