// Schema migrations for the SQLite store, applied in order; `PRAGMA user_version` records the last
// one applied. Append new versions, never edit a shipped one. Version 1 uses IF NOT EXISTS so two
// processes racing on a fresh file both succeed.

export interface Migration {
  readonly version: number
  readonly statements: ReadonlyArray<string>
}

/**
 * Rows whose `skeleton` a migration added and code must fill (the skeleton is computed in
 * TypeScript): `select` yields `name` and the key columns, `update` takes the skeleton, then the
 * skeleton and the key columns again for its "no look-alike holds it yet" guard, then the keys.
 * A row whose look-alike already holds the skeleton keeps NULL (both rows stay reachable).
 */
export interface SkeletonBackfill {
  readonly select: string
  readonly update: string
  readonly keys: ReadonlyArray<string>
  /** The key columns the uniqueness of a skeleton is scoped to (`user` for machines). */
  readonly scope: ReadonlyArray<string>
}

/** Issue 22: names that look alike are one name; their skeletons are unique. */
export const SKELETON_VERSION = 3

export const skeletonBackfills: ReadonlyArray<SkeletonBackfill> = [
  {
    select: "SELECT username AS name, username FROM users WHERE skeleton IS NULL",
    update: "UPDATE users SET skeleton = ? WHERE NOT EXISTS (SELECT 1 FROM users WHERE skeleton = ?) AND username = ?",
    keys: ["username"],
    scope: []
  },
  {
    select: "SELECT name, user FROM machines WHERE skeleton IS NULL",
    update:
      "UPDATE machines SET skeleton = ? WHERE NOT EXISTS (SELECT 1 FROM machines WHERE skeleton = ? AND user = ?) AND user = ? AND name = ?",
    keys: ["user", "name"],
    scope: ["user"]
  },
  {
    select: "SELECT name FROM channels WHERE skeleton IS NULL",
    update:
      "UPDATE channels SET skeleton = ? WHERE NOT EXISTS (SELECT 1 FROM channels WHERE skeleton = ?) AND name = ?",
    keys: ["name"],
    scope: []
  }
]

export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    statements: [
      `CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS users (username TEXT PRIMARY KEY, created_at TEXT NOT NULL)`,
      `CREATE TABLE IF NOT EXISTS machines (
        user TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        name TEXT NOT NULL,
        pubkey TEXT NOT NULL UNIQUE,
        added_at TEXT NOT NULL,
        PRIMARY KEY (user, name))`,
      `CREATE TABLE IF NOT EXISTS channels (
        name TEXT PRIMARY KEY,
        visibility TEXT NOT NULL CHECK (visibility IN ('public', 'unlisted', 'private')),
        created_by TEXT NOT NULL,
        created_at TEXT NOT NULL)`,
      `CREATE INDEX IF NOT EXISTS channels_created_by ON channels(created_by)`,
      `CREATE TABLE IF NOT EXISTS memberships (
        channel TEXT NOT NULL REFERENCES channels(name) ON DELETE CASCADE ON UPDATE CASCADE,
        user TEXT NOT NULL,
        PRIMARY KEY (channel, user))`,
      `CREATE INDEX IF NOT EXISTS memberships_user ON memberships(user)`,
      `CREATE TABLE IF NOT EXISTS bans (
        channel TEXT NOT NULL REFERENCES channels(name) ON DELETE CASCADE ON UPDATE CASCADE,
        user TEXT NOT NULL,
        PRIMARY KEY (channel, user))`,
      `CREATE TABLE IF NOT EXISTS invites (
        token TEXT PRIMARY KEY,
        channel TEXT NOT NULL REFERENCES channels(name) ON DELETE CASCADE ON UPDATE CASCADE,
        uses_remaining INTEGER,
        expires_at TEXT,
        created_by TEXT NOT NULL)`,
      `CREATE INDEX IF NOT EXISTS invites_channel ON invites(channel)`,
      `CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        channel TEXT NOT NULL REFERENCES channels(name) ON DELETE CASCADE ON UPDATE CASCADE,
        sender TEXT NOT NULL,
        payload TEXT NOT NULL,
        ts_ms INTEGER NOT NULL,
        origin TEXT NOT NULL,
        reply_to INTEGER)`,
      `CREATE INDEX IF NOT EXISTS messages_channel_id ON messages(channel, id)`,
      `CREATE INDEX IF NOT EXISTS messages_ts ON messages(ts_ms)`
    ]
  },
  {
    // Per-channel seq (D-42): each message's seq is taken from its channel's counter inside the
    // append transaction (1, 2, 3 … per channel, no gap). Existing rows keep their seq (the old
    // server-wide row id), and each channel's counter goes on from its highest.
    version: 2,
    statements: [
      `ALTER TABLE messages ADD COLUMN seq INTEGER`,
      `UPDATE messages SET seq = id`,
      `CREATE TABLE IF NOT EXISTS channel_seq (channel TEXT PRIMARY KEY, last_seq INTEGER NOT NULL)`,
      `INSERT OR REPLACE INTO channel_seq (channel, last_seq)
        SELECT channel, MAX(seq) FROM messages WHERE seq IS NOT NULL GROUP BY channel`,
      `CREATE UNIQUE INDEX IF NOT EXISTS messages_channel_seq ON messages(channel, seq)`,
      `DROP INDEX IF EXISTS messages_channel_id`
    ]
  },
  {
    // Issue 22: name skeletons (filled for existing rows by `skeletonBackfills`), and machine offers:
    // `machine_add` offers a key to its holder, who accepts by registering as that user/machine
    // (proof of possession over the server's challenge).
    version: SKELETON_VERSION,
    statements: [
      `ALTER TABLE users ADD COLUMN skeleton TEXT`,
      `CREATE UNIQUE INDEX users_skeleton ON users(skeleton)`,
      `ALTER TABLE machines ADD COLUMN skeleton TEXT`,
      `CREATE UNIQUE INDEX machines_skeleton ON machines(user, skeleton)`,
      `ALTER TABLE channels ADD COLUMN skeleton TEXT`,
      `CREATE UNIQUE INDEX channels_skeleton ON channels(skeleton)`,
      `CREATE TABLE machine_offers (
        user TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        name TEXT NOT NULL,
        skeleton TEXT NOT NULL,
        pubkey TEXT NOT NULL,
        offered_at TEXT NOT NULL,
        PRIMARY KEY (user, name))`,
      `CREATE UNIQUE INDEX machine_offers_skeleton ON machine_offers(user, skeleton)`,
      `CREATE INDEX machine_offers_pubkey ON machine_offers(pubkey)`
    ]
  },
  {
    // Console enrollment codes (D-51) in the store rather than in one node's memory: the SHA-256 of
    // each code (never the code), its user, its expiry and when it was redeemed (NULL: not yet).
    version: 4,
    statements: [
      `CREATE TABLE enroll_codes (
        code_hash TEXT PRIMARY KEY,
        username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        expires_at_ms INTEGER NOT NULL,
        used_at_ms INTEGER)`,
      `CREATE INDEX enroll_codes_username ON enroll_codes(username)`,
      `CREATE INDEX enroll_codes_expires ON enroll_codes(expires_at_ms)`
    ]
  }
]

export const latestVersion = migrations.reduce((max, m) => Math.max(max, m.version), 0)
