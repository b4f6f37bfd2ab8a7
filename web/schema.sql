-- The web app's own tables (accounts, tokens, sessions, drafts, submissions, look-up log).
-- Results themselves live in the assess store; nothing here is a record of truth for a grade.
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('assessor', 'reviewer', 'officer', 'admin')),
    department TEXT NOT NULL,
    organisation TEXT NOT NULL DEFAULT '',
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    token_hash TEXT NOT NULL UNIQUE,       -- SHA-256 of the token; the token is shown once
    label TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    sid_hash TEXT NOT NULL UNIQUE,         -- SHA-256 of the random session id in the signed cookie
    user_id INTEGER NOT NULL REFERENCES users (id),
    created_at TEXT NOT NULL,
    ended_at TEXT                          -- set at logout or expiry: a replayed cookie no longer works
);
CREATE TABLE IF NOT EXISTS login_failures (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    address TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_failures_user ON login_failures (username, at);
CREATE INDEX IF NOT EXISTS ix_failures_addr ON login_failures (address, at);
CREATE TABLE IF NOT EXISTS people (
    id INTEGER PRIMARY KEY,
    person_key TEXT NOT NULL UNIQUE,       -- the store's HMAC person key
    id_enc TEXT NOT NULL,                  -- AES-GCM under the web app's key, person key bound in
    masked TEXT NOT NULL,                  -- first 6 + last 1 only
    name TEXT NOT NULL,
    sex INTEGER,
    birth TEXT,
    created_by INTEGER REFERENCES users (id),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS drafts (
    id TEXT PRIMARY KEY,                   -- random; also the submission's idempotency key
    person_id INTEGER NOT NULL REFERENCES people (id),
    owner_id INTEGER NOT NULL REFERENCES users (id),
    instrument TEXT NOT NULL,
    version TEXT NOT NULL,
    assessed_on TEXT NOT NULL,
    reason TEXT NOT NULL,
    answers TEXT NOT NULL DEFAULT '{}',
    updated_at TEXT NOT NULL,
    record_id TEXT                         -- set once submitted
);
CREATE INDEX IF NOT EXISTS ix_drafts_owner ON drafts (owner_id, updated_at);
CREATE TABLE IF NOT EXISTS submissions (
    submission_id TEXT PRIMARY KEY,        -- idempotency key: a retried submission is stored once
    record_id TEXT NOT NULL,
    department TEXT NOT NULL,
    user_id INTEGER REFERENCES users (id),
    cosigner_id INTEGER REFERENCES users (id),
    person_key TEXT NOT NULL,
    masked TEXT NOT NULL,
    level INTEGER,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_submissions_record ON submissions (record_id);
CREATE TABLE IF NOT EXISTS lookups (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    user_id INTEGER NOT NULL REFERENCES users (id),
    department TEXT NOT NULL,
    purpose TEXT NOT NULL,
    person_key TEXT NOT NULL,
    outcome TEXT NOT NULL
);
