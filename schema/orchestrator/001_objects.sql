-- The orchestrator's object store (orchestrator.db, separate from slipway.db).
-- One row per object; the body is the object's JSON as served by the API.
-- `rev` is the object's resourceVersion, taken from the global revision
-- counter in `counters`. Every write appends to `events`, which feeds
-- watches and is compacted to a bounded window.
CREATE TABLE objects (
        resource  TEXT NOT NULL,          -- "pods", "deployments.apps"
        namespace TEXT NOT NULL DEFAULT '', -- '' for cluster-scoped objects
        name      TEXT NOT NULL,
        uid       TEXT NOT NULL UNIQUE,
        rev       INTEGER NOT NULL,
        body      TEXT NOT NULL,
        PRIMARY KEY (resource, namespace, name)
) WITHOUT ROWID;

CREATE TABLE events (
        rev       INTEGER PRIMARY KEY,    -- the revision this write produced
        type      TEXT NOT NULL CHECK (type IN ('ADDED', 'MODIFIED', 'DELETED')),
        resource  TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name      TEXT NOT NULL,
        body      TEXT NOT NULL
);
CREATE INDEX events_resource ON events (resource, rev);

CREATE TABLE counters (
        name  TEXT PRIMARY KEY,           -- 'revision', 'compacted'
        value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO counters (name, value) VALUES ('revision', 1), ('compacted', 0);
