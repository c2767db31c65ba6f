-- retention_watermarks: for a table whose rows the maintenance pass expires,
-- the time before which rows may have been deleted (rows started before
-- deleted_before). The measurements rollups outlive the rows
-- (ROLLUPS_RETENTION), so a count read from them matches the rows only for a
-- window that starts at or after this mark: the list sorted by method
-- (internal/store/postgres/measurements.go) pages through the methods with
-- such counts only then. The pass raises the mark before it deletes
-- (internal/store/postgres/lifecycle.go). A database that already holds
-- measurements may have had rows expired before this migration: its mark
-- starts at the migration's time; an empty one's at -infinity.

-- +goose Up
CREATE TABLE retention_watermarks (
    table_name     text        PRIMARY KEY,
    deleted_before timestamptz NOT NULL
);

COMMENT ON TABLE retention_watermarks IS
    'Per table the maintenance pass expires: rows started before deleted_before may have been deleted (the rollups, kept longer, may still count them).';

INSERT INTO retention_watermarks (table_name, deleted_before)
SELECT 'measurements', CASE WHEN EXISTS (SELECT 1 FROM measurements) THEN now() ELSE '-infinity' END;

-- +goose Down
DROP TABLE IF EXISTS retention_watermarks;
