-- Objects move to a rowid table: a body of a few kilobytes fits one leaf
-- page there, while in the WITHOUT ROWID table every write of a pod also
-- rewrote an overflow page. The key is a unique index; an update of a body
-- leaves both indexes alone. uid is no longer an index of its own: it is 122
-- random bits, and nothing looks objects up by it.
--
-- The event log leaves the database: watches are served from the store's
-- in-memory log of the latest revisions, as Kubernetes' watch cache serves
-- them, and a watch from a revision older than that log is answered 410 Gone,
-- after which the client lists again. Writing every body twice (object and
-- event) and deleting the compacted events was most of the store's disk work.
-- The compaction floor is now the log's; its counter row goes.
CREATE TABLE objects_new (
        id        INTEGER PRIMARY KEY,
        resource  TEXT NOT NULL,
        namespace TEXT NOT NULL DEFAULT '',
        name      TEXT NOT NULL,
        uid       TEXT NOT NULL,
        rev       INTEGER NOT NULL,
        body      TEXT NOT NULL
);
INSERT INTO objects_new (resource, namespace, name, uid, rev, body)
        SELECT resource, namespace, name, uid, rev, body FROM objects
        ORDER BY resource, namespace, name;
DROP TABLE objects;
ALTER TABLE objects_new RENAME TO objects;
CREATE UNIQUE INDEX objects_key ON objects (resource, namespace, name);
DROP TABLE events;
DELETE FROM counters WHERE name = 'compacted';
