-- The pensioners the roster says are terminated, by person number: a
-- partial index, small (only those rows), so that the case step after a
-- match run learns whom not to hold without reading the whole roster (one
-- lookup per held pensioner in the person-number index, cold, took minutes
-- at ten million pensioners).
CREATE INDEX pensioners_terminated ON pensioners (person_no) WHERE status = 'terminated';
