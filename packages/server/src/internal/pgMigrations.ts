// Schema migrations for the PostgreSQL store, applied in order on start under an advisory lock;
// the table `conclave_schema_migrations` records each version applied. Append new versions, never
// edit a shipped one.
//
// Text columns are `COLLATE "C"` (byte order, as SQLite's BINARY): listings sort the same on both
// stores whatever the database's locale. The user column is `username` (`user` is reserved).
// Constraints are named: conflicts are told apart by constraint name (see `conflictKinds`).

export interface Migration {
  readonly version: number
  readonly statements: ReadonlyArray<string>
}

import type { SkeletonBackfill } from "./migrations.js"

/** Issue 22 in the PostgreSQL schema: name skeletons and machine offers. */
export const PG_SKELETON_VERSION = 2

export const MIGRATIONS_TABLE = "conclave_schema_migrations"

export const migrations: ReadonlyArray<Migration> = [
  {
    version: 1,
    statements: [
      `CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL)`,
      `CREATE TABLE users (
        username TEXT COLLATE "C" NOT NULL,
        created_at TEXT NOT NULL,
        CONSTRAINT users_pkey PRIMARY KEY (username))`,
      `CREATE TABLE machines (
        username TEXT COLLATE "C" NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        name TEXT COLLATE "C" NOT NULL,
        pubkey TEXT COLLATE "C" NOT NULL,
        added_at TEXT NOT NULL,
        CONSTRAINT machines_pkey PRIMARY KEY (username, name),
        CONSTRAINT machines_pubkey_key UNIQUE (pubkey))`,
      `CREATE TABLE channels (
        name TEXT COLLATE "C" NOT NULL,
        visibility TEXT NOT NULL CHECK (visibility IN ('public', 'unlisted', 'private')),
        created_by TEXT COLLATE "C" NOT NULL,
        created_at TEXT NOT NULL,
        CONSTRAINT channels_pkey PRIMARY KEY (name))`,
      `CREATE INDEX channels_created_by ON channels (created_by)`,
      `CREATE TABLE memberships (
        channel TEXT COLLATE "C" NOT NULL REFERENCES channels(name) ON DELETE CASCADE ON UPDATE CASCADE,
        username TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (channel, username))`,
      `CREATE INDEX memberships_username ON memberships (username)`,
      `CREATE TABLE bans (
        channel TEXT COLLATE "C" NOT NULL REFERENCES channels(name) ON DELETE CASCADE ON UPDATE CASCADE,
        username TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (channel, username))`,
      `CREATE TABLE invites (
        token TEXT COLLATE "C" PRIMARY KEY,
        channel TEXT COLLATE "C" NOT NULL REFERENCES channels(name) ON DELETE CASCADE ON UPDATE CASCADE,
        uses_remaining INTEGER,
        expires_at TEXT,
        created_by TEXT NOT NULL)`,
      `CREATE INDEX invites_channel ON invites (channel)`,
      // The last seq handed out per channel name (D-42). Not a foreign key on purpose: the row
      // outlives its channel, so a channel deleted and created again under the same name goes on
      // from its old seqs instead of handing them out a second time (a client's watermark for that
      // name would otherwise hide the new channel's first messages).
      `CREATE TABLE channel_seq (
        channel TEXT COLLATE "C" PRIMARY KEY,
        last_seq BIGINT NOT NULL)`,
      `CREATE TABLE messages (
        channel TEXT COLLATE "C" NOT NULL REFERENCES channels(name) ON DELETE CASCADE ON UPDATE CASCADE,
        seq BIGINT NOT NULL,
        sender TEXT NOT NULL,
        payload TEXT NOT NULL,
        ts_ms BIGINT NOT NULL,
        origin TEXT NOT NULL,
        reply_to BIGINT,
        PRIMARY KEY (channel, seq))`,
      `CREATE INDEX messages_ts ON messages (ts_ms)`
    ]
  },
  {
    // Issue 22: name skeletons (filled for existing rows by `skeletonBackfills`), and machine offers
    // (`machine_add` offers a key; its holder accepts by registering as that user/machine).
    version: PG_SKELETON_VERSION,
    statements: [
      `ALTER TABLE users ADD COLUMN skeleton TEXT COLLATE "C"`,
      `CREATE UNIQUE INDEX users_skeleton_key ON users (skeleton)`,
      `ALTER TABLE machines ADD COLUMN skeleton TEXT COLLATE "C"`,
      `CREATE UNIQUE INDEX machines_skeleton_key ON machines (username, skeleton)`,
      `ALTER TABLE channels ADD COLUMN skeleton TEXT COLLATE "C"`,
      `CREATE UNIQUE INDEX channels_skeleton_key ON channels (skeleton)`,
      `CREATE TABLE machine_offers (
        username TEXT COLLATE "C" NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        name TEXT COLLATE "C" NOT NULL,
        skeleton TEXT COLLATE "C" NOT NULL,
        pubkey TEXT COLLATE "C" NOT NULL,
        offered_at TEXT NOT NULL,
        CONSTRAINT machine_offers_pkey PRIMARY KEY (username, name))`,
      `CREATE UNIQUE INDEX machine_offers_skeleton_key ON machine_offers (username, skeleton)`,
      `CREATE INDEX machine_offers_pubkey ON machine_offers (pubkey)`
    ]
  },
  {
    // Console enrollment codes (D-51), shared by every node: the SHA-256 of each code (never the
    // code), its user, its expiry and when it was redeemed (NULL: not yet).
    version: 3,
    statements: [
      `CREATE TABLE enroll_codes (
        code_hash TEXT COLLATE "C" NOT NULL,
        username TEXT COLLATE "C" NOT NULL REFERENCES users(username) ON DELETE CASCADE,
        expires_at_ms BIGINT NOT NULL,
        used_at_ms BIGINT,
        CONSTRAINT enroll_codes_pkey PRIMARY KEY (code_hash))`,
      `CREATE INDEX enroll_codes_username ON enroll_codes (username)`,
      `CREATE INDEX enroll_codes_expires ON enroll_codes (expires_at_ms)`
    ]
  }
]

/** The PostgreSQL form of the SQLite store's `skeletonBackfills` (numbered parameters). */
export const skeletonBackfills: ReadonlyArray<SkeletonBackfill> = [
  {
    select: "SELECT username AS name, username FROM users WHERE skeleton IS NULL",
    update:
      "UPDATE users SET skeleton = $1 WHERE NOT EXISTS (SELECT 1 FROM users WHERE skeleton = $2) AND username = $3",
    keys: ["username"],
    scope: []
  },
  {
    select: "SELECT name, username FROM machines WHERE skeleton IS NULL",
    update:
      "UPDATE machines SET skeleton = $1 WHERE NOT EXISTS (SELECT 1 FROM machines WHERE skeleton = $2 AND username = $3) AND username = $4 AND name = $5",
    keys: ["username", "name"],
    scope: ["username"]
  },
  {
    select: "SELECT name FROM channels WHERE skeleton IS NULL",
    update:
      "UPDATE channels SET skeleton = $1 WHERE NOT EXISTS (SELECT 1 FROM channels WHERE skeleton = $2) AND name = $3",
    keys: ["name"],
    scope: []
  }
]

export const latestVersion = migrations.reduce((max, m) => Math.max(max, m.version), 0)
