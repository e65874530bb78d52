-- When a controller's lease last started to run without a gap. A controller whose lease
-- expired and that renews it again (a partition healed, a stall ended) counts among the
-- controllers that hosts are spread over only once it has held the lease for a settling
-- time: hosts do not move back and forth while a controller lapses repeatedly. A
-- registration (a process starting) counts as settled at once.
ALTER TABLE controllers ADD COLUMN live_since timestamptz NOT NULL DEFAULT '-infinity';
