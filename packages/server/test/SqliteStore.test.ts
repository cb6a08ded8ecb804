import type { Frames } from "@conclave/protocol"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as FileSystem from "@effect/platform/FileSystem"
import * as SqliteClient from "@effect/sql-sqlite-node/SqliteClient"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Option } from "effect"
import * as path from "node:path"
import * as SqliteStore from "../src/SqliteStore.js"
import { type NewMessage, Store, StoreConflict, StoreError, type StoreShape } from "../src/Store.js"

const NOW = "2026-11-24T00:00:00Z"
const NOW_MS = Date.parse(NOW)

const tempDir = Effect.gen(function*() {
  const fs = yield* FileSystem.FileSystem
  return yield* fs.makeTempDirectoryScoped({ prefix: "conclave-store-" })
}).pipe(Effect.provide(NodeFileSystem.layer))

const openStore = (filename: string) =>
  Layer.build(SqliteStore.layer({ filename })).pipe(Effect.map((ctx) => Context.get(ctx, Store)))

const openWithSql = (filename: string) =>
  Layer.build(SqliteStore.layerClient.pipe(Layer.provideMerge(SqliteStore.layerSqlite({ filename })))).pipe(
    Effect.map((ctx) => ({ store: Context.get(ctx, Store), sql: Context.get(ctx, SqlClient.SqlClient) }))
  )

/** `openWithSql` over a client that does not say it is SQLite's: a store without its read-only connection. */
const openWithoutReadConnection = (filename: string) =>
  Layer.build(
    SqliteStore.layerClient.pipe(
      Layer.provideMerge(Layer.map(SqliteStore.layerSqlite({ filename }), Context.omit(SqliteClient.SqliteClient)))
    )
  ).pipe(
    Effect.map((ctx) => ({ store: Context.get(ctx, Store), sql: Context.get(ctx, SqlClient.SqlClient) }))
  )

const dbFile = Effect.map(tempDir, (dir) => path.join(dir, "conclave.db"))

/** A store in a fresh file plus raw SQL access to the same connection. */
const fresh = Effect.flatMap(dbFile, openWithSql)

const plain = (text: string): Frames.Payload => ({ kind: "plain", text })

const msg = (channel: string, ts_ms: number, text: string, extra: Partial<NewMessage> = {}): NewMessage => ({
  channel,
  from: "aaron/workstation/razel",
  payload: plain(text),
  ts_ms,
  origin: "agent",
  reply_to: null,
  ...extra
})

const texts = (messages: ReadonlyArray<Frames.HistoryMessage>) =>
  messages.map((m) => m.payload.kind === "plain" ? m.payload.text : `<${m.payload.kind}>`)

const channel = (store: StoreShape, name: string, createdBy = "aaron", visibility: Frames.Visibility = "private") =>
  store.createChannel({ name, visibility, createdBy, now: NOW })

const assertConflict = (error: unknown, what: StoreConflict["what"], value: string) => {
  assert.instanceOf(error, StoreConflict)
  assert.deepStrictEqual({ what: error.what, value: error.value }, { what, value })
}

const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.exit(effect), (exit) =>
    Exit.isFailure(exit) && exit.cause._tag === "Fail"
      ? Effect.succeed(exit.cause.error)
      : Effect.dieMessage(`expected a failure, got ${Exit.isSuccess(exit) ? "success" : "a defect"}`))

describe("SqliteStore", () => {
  describe("opening", () => {
    it.scoped("applies the PRAGMAs and records the schema version", () =>
      Effect.gen(function*() {
        const { sql } = yield* fresh
        const [journal] = yield* sql<{ journal_mode: string }>`PRAGMA journal_mode`
        const [sync] = yield* sql<{ synchronous: number }>`PRAGMA synchronous`
        const [fk] = yield* sql<{ foreign_keys: number }>`PRAGMA foreign_keys`
        const [busy] = yield* sql<{ timeout: number }>`PRAGMA busy_timeout`
        const [version] = yield* sql<{ user_version: number }>`PRAGMA user_version`
        assert.strictEqual(journal?.journal_mode, "wal")
        assert.strictEqual(sync?.synchronous, 1) // NORMAL
        assert.strictEqual(fk?.foreign_keys, 1)
        assert.strictEqual(busy?.timeout, SqliteStore.BUSY_TIMEOUT_MS)
        assert.strictEqual(version?.user_version, 1)
      }))

    it.scoped("refuses a database written by a newer schema", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        yield* Effect.scoped(Effect.gen(function*() {
          const { sql } = yield* openWithSql(file)
          yield* sql.unsafe("PRAGMA user_version = 99")
        }))
        const error = yield* failure(Effect.scoped(openStore(file)))
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.operation, "open")
      }))

    it.scoped("fails with StoreError when the file cannot be opened", () =>
      Effect.gen(function*() {
        const dir = yield* tempDir
        const error = yield* failure(Effect.scoped(openStore(path.join(dir, "missing", "conclave.db"))))
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.operation, "open")
        assert.strictEqual(error.message, "storage failure during open")
      }))

    it.scoped("S-102 the instance id is stable across reads and reopen", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        const first = yield* Effect.scoped(Effect.gen(function*() {
          const store = yield* openStore(file)
          const a = yield* store.instanceId
          const b = yield* store.instanceId
          assert.strictEqual(a, b)
          return a
        }))
        assert.match(first, /^[A-Za-z0-9_-]{32}$/)
        const again = yield* Effect.scoped(Effect.flatMap(openStore(file), (store) => store.instanceId))
        assert.strictEqual(again, first)
      }))

    it.scoped("stores held open together on one file (separate connections) agree on one instance id", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        // each build stays open in the test scope, so every later one races the first's row
        const ids = yield* Effect.all(
          Array.from({ length: 4 }, () => Effect.flatMap(openStore(file), (store) => store.instanceId))
        )
        assert.strictEqual(new Set(ids).size, 1)
      }))

    it.scoped("in-memory stores get a fresh instance id per build", () =>
      Effect.gen(function*() {
        const a = yield* Effect.flatMap(
          Layer.build(SqliteStore.layerMemory),
          (ctx) => Context.get(ctx, Store).instanceId
        )
        const b = yield* Effect.flatMap(
          Layer.build(SqliteStore.layerMemory),
          (ctx) => Context.get(ctx, Store).instanceId
        )
        assert.notStrictEqual(a, b)
      }))

    it.scoped("reopening keeps users, machines, channels, ACL, bans, invites and messages; seqs continue", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        const lastSeq = yield* Effect.scoped(Effect.gen(function*() {
          const store = yield* openStore(file)
          yield* store.registerUser({ username: "aaron", machine: "ws", pubkey: "k1", now: NOW })
          yield* channel(store, "ops")
          yield* store.addMember("ops", "david")
          yield* store.ban("ops", "bob")
          yield* store.createInvite({
            token: "tok",
            channel: "ops",
            uses_remaining: 2,
            expires_at: null,
            created_by: "aaron"
          })
          yield* store.appendMessage(msg("ops", 100, "one"))
          return yield* store.appendMessage(msg("ops", 200, "two"))
        }))
        const store = yield* openStore(file)
        assert.isTrue(yield* store.userExists("aaron"))
        assert.deepStrictEqual((yield* store.listMachines("aaron")).map((m) => m.name), ["ws"])
        assert.isTrue(Option.isSome(yield* store.getChannel("ops")))
        assert.deepStrictEqual(yield* store.listMembers("ops"), ["aaron", "david"])
        assert.deepStrictEqual(yield* store.allBans, [{ channel: "ops", user: "bob" }])
        assert.deepStrictEqual((yield* store.listInvites("ops")).map((i) => i.token), ["tok"])
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(texts(page.messages), ["one", "two"])
        const next = yield* store.appendMessage(msg("ops", 300, "three"))
        assert.isTrue(next > lastSeq)
      }))
  })

  describe("users and machines", () => {
    it.scoped("S-103 register, exists, list, duplicate username, remove", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* store.registerUser({ username: "aaron", machine: "ws", pubkey: "k1", now: NOW })
        yield* store.registerUser({ username: "bob", machine: "laptop", pubkey: "k2", now: NOW })
        assert.isTrue(yield* store.userExists("aaron"))
        assert.isFalse(yield* store.userExists("nobody"))
        assert.deepStrictEqual(yield* store.listUsers, ["aaron", "bob"])

        const dup = yield* failure(store.registerUser({ username: "aaron", machine: "other", pubkey: "k3", now: NOW }))
        assertConflict(dup, "username", "aaron")
        assert.isTrue(Option.isNone(yield* store.findMachineByKey("k3")), "the machine insert rolled back")

        yield* store.removeUser("bob")
        assert.deepStrictEqual(yield* store.listUsers, ["aaron"])
      }))

    it.scoped("registering with an enrolled key is a pubkey conflict and leaves no user row", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* store.registerUser({ username: "aaron", machine: "ws", pubkey: "k1", now: NOW })
        const dup = yield* failure(store.registerUser({ username: "carol", machine: "ws", pubkey: "k1", now: NOW }))
        assertConflict(dup, "pubkey", "k1")
        assert.isFalse(yield* store.userExists("carol"), "user insert rolled back with the failed machine insert")
      }))

    it.scoped("S-104 machines: per-user names, global keys, find, list, remove", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* store.registerUser({ username: "aaron", machine: "ws", pubkey: "k1", now: NOW })
        yield* store.registerUser({ username: "bob", machine: "laptop", pubkey: "k2", now: NOW })
        yield* store.addMachine({ user: "aaron", name: "laptop", pubkey: "k3", now: "2026-11-25T00:00:00Z" })

        const sameName = yield* failure(store.addMachine({ user: "aaron", name: "ws", pubkey: "k9", now: NOW }))
        assertConflict(sameName, "machine", "ws")
        const sameKey = yield* failure(store.addMachine({ user: "bob", name: "desk", pubkey: "k1", now: NOW }))
        assertConflict(sameKey, "pubkey", "k1")
        yield* store.addMachine({ user: "bob", name: "ws", pubkey: "k4", now: NOW }) // same name, other user

        assert.deepStrictEqual(
          yield* store.findMachineByKey("k3"),
          Option.some({
            user: "aaron",
            name: "laptop",
            pubkey: "k3",
            added_at: "2026-11-25T00:00:00Z"
          })
        )
        assert.isTrue(Option.isNone(yield* store.findMachineByKey("nope")))
        assert.deepStrictEqual((yield* store.listMachines("aaron")).map((m) => m.name), ["laptop", "ws"])
        assert.deepStrictEqual((yield* store.listMachines("bob")).map((m) => m.name), ["laptop", "ws"])

        yield* store.removeMachine("aaron", "laptop")
        yield* store.removeMachine("aaron", "laptop") // idempotent
        assert.isTrue(Option.isNone(yield* store.findMachineByKey("k3")))
        assert.deepStrictEqual((yield* store.listMachines("aaron")).map((m) => m.name), ["ws"])
        // the freed key can be enrolled again
        yield* store.addMachine({ user: "bob", name: "spare", pubkey: "k3", now: NOW })
      }))

    it.scoped("hot reads: findMachineByKey, getChannel, isMember, userExists, messageExists; unusual rows", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* store.registerUser({ username: "aaron", machine: "ws", pubkey: "k1", now: NOW })
        yield* channel(store, "ops", "aaron", "unlisted")
        const seq = yield* store.appendMessage(msg("ops", 1, "hi"))
        assert.deepStrictEqual(
          yield* store.findMachineByKey("k1"),
          Option.some({ user: "aaron", name: "ws", pubkey: "k1", added_at: NOW })
        )
        assert.deepStrictEqual(
          yield* store.getChannel("ops"),
          Option.some({ name: "ops", visibility: "unlisted" as const, created_by: "aaron", created_at: NOW })
        )
        assert.isTrue(Option.isNone(yield* store.getChannel("nope")))
        assert.isTrue(yield* store.isMember("ops", "aaron"))
        assert.isFalse(yield* store.isMember("ops", "bob"))
        assert.isFalse(yield* store.isMember("nope", "aaron"))
        assert.isTrue(yield* store.userExists("aaron"))
        assert.isFalse(yield* store.userExists("bob"))
        assert.isTrue(yield* store.messageExists("ops", seq))
        assert.isFalse(yield* store.messageExists("ops", seq + 1))
        // unusual but decodable: empty and non-ASCII strings, a numeric-looking text
        yield* sql`INSERT INTO machines (user, name, pubkey, added_at) VALUES ('aaron', '', 'k2', '12')`
        yield* sql`INSERT INTO channels (name, visibility, created_by, created_at)
                   VALUES ('ünï', 'private', '', '')`
        assert.deepStrictEqual(
          yield* store.findMachineByKey("k2"),
          Option.some({ user: "aaron", name: "", pubkey: "k2", added_at: "12" })
        )
        assert.deepStrictEqual(
          yield* store.getChannel("ünï"),
          Option.some({ name: "ünï", visibility: "private" as const, created_by: "", created_at: "" })
        )
        // undecodable rows (a BLOB where text belongs) are a StoreError of the read, as with the schema
        yield* sql`INSERT INTO machines (user, name, pubkey, added_at) VALUES ('aaron', 'blob', 'k3', X'00')`
        yield* sql`INSERT INTO channels (name, visibility, created_by, created_at) VALUES ('bin', 'public', X'01', '')`
        const badMachine = yield* failure(store.findMachineByKey("k3"))
        assert.instanceOf(badMachine, StoreError)
        assert.strictEqual(badMachine.operation, "findMachineByKey")
        const badChannel = yield* failure(store.getChannel("bin"))
        assert.instanceOf(badChannel, StoreError)
        assert.strictEqual(badChannel.operation, "getChannel")
      }))

    it.scoped("removeUser deletes created channels, memberships, machines; keeps bans and messages elsewhere", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* store.registerUser({ username: "root", machine: "m", pubkey: "k0", now: NOW })
        yield* store.registerUser({ username: "victim", machine: "m1", pubkey: "k1", now: NOW })
        yield* store.addMachine({ user: "victim", name: "m2", pubkey: "k2", now: NOW })
        yield* channel(store, "lobby", "aaron", "public")
        yield* channel(store, "other", "aaron", "public")
        yield* channel(store, "victim-ops", "victim")
        yield* channel(store, "victim-pub", "victim", "public")
        yield* store.addMember("lobby", "victim")
        yield* store.ban("other", "victim")
        yield* store.createInvite({
          token: "t",
          channel: "victim-ops",
          uses_remaining: null,
          expires_at: null,
          created_by: "victim"
        })
        yield* store.appendMessage(msg("lobby", 100, "from victim", { from: "victim/m1/s" }))
        yield* store.appendMessage(msg("victim-ops", 100, "private"))

        const removed = yield* store.removeUser("victim")
        assert.deepStrictEqual([...removed.deletedChannels].sort(), ["victim-ops", "victim-pub"])
        assert.isTrue(Option.isNone(yield* store.getChannel("victim-ops")))
        assert.isTrue(Option.isNone(yield* store.getChannel("victim-pub")))
        assert.isFalse(yield* store.isMember("lobby", "victim"))
        assert.isFalse(yield* store.userExists("victim"))
        assert.deepStrictEqual(yield* store.listMachines("victim"), [])
        assert.isTrue(Option.isNone(yield* store.findMachineByKey("k2")))
        assert.isTrue(Option.isNone(yield* store.getInvite("t")))
        assert.deepStrictEqual(yield* store.listBans("other"), ["victim"], "bans naming the user are kept")
        const lobby = yield* store.readSince({
          channel: "lobby",
          since: { _tag: "Seq", seq: 0 },
          cutoffMs: 0,
          limit: 10
        })
        assert.deepStrictEqual(texts(lobby.messages), ["from victim"], "messages elsewhere are kept")
        const [orphans] = yield* sql<{ n: number }>`SELECT count(*) AS n FROM messages WHERE channel = 'victim-ops'`
        assert.strictEqual(orphans?.n, 0)

        // idempotent, and a re-registered victim holds no rights
        assert.deepStrictEqual(yield* store.removeUser("victim"), { deletedChannels: [] })
        yield* store.registerUser({ username: "victim", machine: "m1", pubkey: "k1", now: NOW })
        const visible = yield* store.listVisibleChannels("victim", false)
        assert.deepStrictEqual(visible.filter((c) => c.member), [])
      }))
  })

  describe("channels", () => {
    it.scoped("create seeds the creator, duplicates conflict, get, set visibility", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        assert.deepStrictEqual(
          yield* store.getChannel("ops"),
          Option.some({
            name: "ops",
            visibility: "private" as const,
            created_by: "aaron",
            created_at: NOW
          })
        )
        assert.isTrue(Option.isNone(yield* store.getChannel("nope")))
        assert.deepStrictEqual(yield* store.listMembers("ops"), ["aaron"])
        const dup = yield* failure(channel(store, "ops", "bob", "public"))
        assertConflict(dup, "channel", "ops")
        assert.deepStrictEqual(yield* store.listMembers("ops"), ["aaron"], "bob's membership rolled back")

        yield* store.setVisibility("ops", "unlisted")
        assert.strictEqual(Option.getOrThrow(yield* store.getChannel("ops")).visibility, "unlisted")
      }))

    it.scoped("listVisibleChannels: admins see all, others public + ACL channels, member flag", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "lobby", "aaron", "public")
        yield* channel(store, "hidden", "aaron", "unlisted")
        yield* channel(store, "secret", "aaron", "private")
        yield* channel(store, "team", "aaron", "private")
        yield* store.addMember("team", "david")
        yield* store.addMember("lobby", "david")

        const sort = (cs: ReadonlyArray<Frames.ChannelInfo>) => [...cs].sort((a, b) => a.name.localeCompare(b.name))
        assert.deepStrictEqual(sort(yield* store.listVisibleChannels("david", false)), [
          { name: "lobby", visibility: "public", member: true },
          { name: "team", visibility: "private", member: true }
        ])
        assert.deepStrictEqual(sort(yield* store.listVisibleChannels("mallory", false)), [
          { name: "lobby", visibility: "public", member: false }
        ])
        assert.deepStrictEqual(sort(yield* store.listVisibleChannels("root", true)).map((c) => [c.name, c.member]), [
          ["hidden", false],
          ["lobby", false],
          ["secret", false],
          ["team", false]
        ])
      }))

    it.scoped("rename moves memberships, invites, bans and messages; S-086", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.addMember("ops", "david")
        yield* store.ban("ops", "bob")
        yield* store.createInvite({
          token: "tok",
          channel: "ops",
          uses_remaining: 1,
          expires_at: null,
          created_by: "aaron"
        })
        const seq = yield* store.appendMessage(msg("ops", 100, "hello"))

        yield* store.renameChannel("ops", "ops2")
        assert.isTrue(Option.isNone(yield* store.getChannel("ops")))
        assert.strictEqual(Option.getOrThrow(yield* store.getChannel("ops2")).created_by, "aaron")
        assert.deepStrictEqual(yield* store.listMembers("ops2"), ["aaron", "david"])
        assert.deepStrictEqual(yield* store.listMembers("ops"), [])
        assert.deepStrictEqual(yield* store.listBans("ops2"), ["bob"])
        assert.strictEqual(Option.getOrThrow(yield* store.getInvite("tok")).channel, "ops2")
        const read = (name: string) =>
          store.readSince({ channel: name, since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual((yield* read("ops")).messages, [])
        assert.deepStrictEqual(texts((yield* read("ops2")).messages), ["hello"])
        assert.isTrue(yield* store.messageExists("ops2", seq))
        assert.isFalse(yield* store.messageExists("ops", seq))

        yield* store.deleteChannel("ops2")
        yield* store.deleteChannel("ops2") // idempotent
        assert.deepStrictEqual((yield* read("ops2")).messages, [])
        assert.deepStrictEqual(yield* store.listMembers("ops2"), [])
        assert.deepStrictEqual(yield* store.allBans, [])
        assert.isTrue(Option.isNone(yield* store.getInvite("tok")))
        for (const table of ["memberships", "bans", "invites", "messages"]) {
          const [row] = yield* sql<{ n: number }>`SELECT count(*) AS n FROM ${sql(table)}`
          assert.strictEqual(row?.n, 0, `${table} is empty after the delete`)
        }
        // a future channel of the same name inherits nothing
        yield* channel(store, "ops2", "carol")
        assert.deepStrictEqual(yield* store.listMembers("ops2"), ["carol"])
        assert.strictEqual(
          yield* store.redeemInvite({ token: "tok", channel: "ops2", user: "evan", nowMs: NOW_MS }),
          "invalid"
        )
      }))

    it.scoped("rename onto an existing name conflicts and changes nothing", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* channel(store, "dev", "bob")
        yield* store.appendMessage(msg("ops", 100, "one"))
        const error = yield* failure(store.renameChannel("ops", "dev"))
        assertConflict(error, "channel", "dev")
        assert.deepStrictEqual(yield* store.listMembers("ops"), ["aaron"])
        assert.deepStrictEqual(yield* store.listMembers("dev"), ["bob"])
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(texts(page.messages), ["one"])
      }))
  })

  describe("point reads", () => {
    it.scoped("machine and channel reads follow every committed write", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        assert.deepStrictEqual(yield* store.getChannel("ops"), Option.none())
        assert.deepStrictEqual(yield* store.findMachineByKey("k1"), Option.none())
        yield* store.registerUser({ username: "aaron", machine: "ws", pubkey: "k1", now: NOW })
        yield* channel(store, "ops", "aaron", "public")
        assert.deepStrictEqual(
          yield* store.findMachineByKey("k1"),
          Option.some({ user: "aaron", name: "ws", pubkey: "k1", added_at: NOW })
        )
        assert.deepStrictEqual(
          yield* store.getChannel("ops"),
          Option.some({ name: "ops", visibility: "public", created_by: "aaron", created_at: NOW })
        )
        yield* store.setVisibility("ops", "private")
        assert.strictEqual(Option.getOrUndefined(yield* store.getChannel("ops"))?.visibility, "private")
        yield* store.renameChannel("ops", "ops2")
        assert.deepStrictEqual(yield* store.getChannel("ops"), Option.none())
        assert.isTrue(Option.isSome(yield* store.getChannel("ops2")))
        yield* store.deleteChannel("ops2")
        assert.deepStrictEqual(yield* store.getChannel("ops2"), Option.none())
        yield* store.removeMachine("aaron", "ws")
        assert.deepStrictEqual(yield* store.findMachineByKey("k1"), Option.none(), "a revoked key is gone at once")
        yield* store.registerUser({ username: "bob", machine: "laptop", pubkey: "k2", now: NOW })
        yield* store.removeUser("bob")
        assert.deepStrictEqual(yield* store.findMachineByKey("k2"), Option.none(), "a removed user's keys are gone")
      }))

    it.scoped("a file store's point reads see committed state only, without waiting for a transaction in progress", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        const inserted = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const writer = yield* sql.withTransaction(
          Effect.zipRight(
            sql`INSERT INTO channels (name, visibility, created_by, created_at) VALUES ('ops', 'public', 'aaron', ${NOW})`,
            Effect.zipRight(Deferred.succeed(inserted, undefined), Deferred.await(release))
          )
        ).pipe(Effect.fork)
        yield* Deferred.await(inserted)
        assert.deepStrictEqual(yield* store.getChannel("ops"), Option.none(), "the uncommitted row is not read")
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(writer)
        assert.isTrue(Option.isSome(yield* store.getChannel("ops")), "read once committed")
      }))
  })

  describe("ACL and bans", () => {
    it.scoped("S-107 memberships: idempotent add, list, remove; no rows for absent channels", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.addMember("ops", "david")
        yield* store.addMember("ops", "david")
        yield* store.addMember("ops", "ghost-user") // need not be registered
        assert.deepStrictEqual(yield* store.listMembers("ops"), ["aaron", "david", "ghost-user"])
        assert.isTrue(yield* store.isMember("ops", "david"))
        yield* store.removeMember("ops", "david")
        yield* store.removeMember("ops", "david")
        assert.isFalse(yield* store.isMember("ops", "david"))
        yield* store.addMember("nope", "david")
        yield* store.aclAdd("nope", "david")
        yield* store.ban("nope", "david")
        assert.deepStrictEqual(yield* store.listMembers("nope"), [])
        assert.deepStrictEqual(yield* store.listBans("nope"), [])
      }))

    it.scoped("S-108 bans: ban removes membership, idempotent, unban grants nothing, aclAdd lifts", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* channel(store, "dev")
        yield* store.addMember("ops", "david")
        yield* store.ban("ops", "david")
        yield* store.ban("ops", "david")
        yield* store.ban("dev", "bob")
        assert.isFalse(yield* store.isMember("ops", "david"))
        assert.deepStrictEqual(yield* store.listBans("ops"), ["david"])
        assert.deepStrictEqual(yield* store.allBans, [{ channel: "dev", user: "bob" }, {
          channel: "ops",
          user: "david"
        }])

        yield* store.unban("ops", "david")
        yield* store.unban("ops", "david")
        assert.deepStrictEqual(yield* store.listBans("ops"), [])
        assert.isFalse(yield* store.isMember("ops", "david"), "unban grants no membership")

        yield* store.ban("ops", "david")
        yield* store.aclAdd("ops", "david")
        assert.deepStrictEqual(yield* store.listBans("ops"), [])
        assert.isTrue(yield* store.isMember("ops", "david"))
      }))
  })

  describe("invites", () => {
    const invite = (token: string, uses: number | null, expires_at: string | null = null, ch = "ops") => ({
      token,
      channel: ch,
      uses_remaining: uses,
      expires_at,
      created_by: "aaron"
    })
    const redeem = (store: StoreShape, token: string, user: string, ch = "ops", nowMs = NOW_MS) =>
      store.redeemInvite({ token, channel: ch, user, nowMs })

    it.scoped("S-106 create, get, list, delete; tokens are unique", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.createInvite(invite("a", 3, "2030-01-01T00:00:00Z"))
        yield* store.createInvite(invite("b", null))
        assert.deepStrictEqual(yield* store.getInvite("a"), Option.some(invite("a", 3, "2030-01-01T00:00:00Z")))
        assert.deepStrictEqual(yield* store.listInvites("ops"), [
          invite("a", 3, "2030-01-01T00:00:00Z"),
          invite("b", null)
        ])
        const dup = yield* failure(store.createInvite(invite("a", 1)))
        assert.instanceOf(dup, StoreError)
        assert.notInclude(dup.message, "UNIQUE")
        yield* store.deleteInvite("a")
        yield* store.deleteInvite("a")
        assert.isTrue(Option.isNone(yield* store.getInvite("a")))
        const missing = yield* failure(store.createInvite(invite("c", 1, null, "nope")))
        assert.instanceOf(missing, StoreError)
      }))

    it.scoped("S-061 a multi-use token exhausts and is deleted by its last use", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.createInvite(invite("tok", 2))
        assert.strictEqual(yield* redeem(store, "tok", "david"), "redeemed")
        assert.strictEqual(Option.getOrThrow(yield* store.getInvite("tok")).uses_remaining, 1)
        assert.strictEqual(yield* redeem(store, "tok", "carol"), "redeemed")
        assert.isTrue(Option.isNone(yield* store.getInvite("tok")))
        assert.strictEqual(yield* redeem(store, "tok", "evan"), "invalid")
        assert.deepStrictEqual(yield* store.listMembers("ops"), ["aaron", "carol", "david"])
      }))

    it.scoped("S-062 expired tokens (and unparseable expiries) are refused and deleted", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.createInvite(invite("old", 5, "2000-01-01T00:00:00+00:00"))
        yield* store.createInvite(invite("garbage", null, "next tuesday"))
        yield* store.createInvite(invite("edge", null, NOW)) // expired iff expires_at <= now
        yield* store.createInvite(invite("later", 1, "2026-11-24T00:00:01.000+00:00"))
        yield* store.createInvite(invite("far", null, "+010000-01-01T00:00:00.000Z"))
        yield* store.createInvite(invite("lower", null, "2030-01-01t00:00:00z"))
        for (const token of ["old", "garbage", "edge"]) {
          assert.strictEqual(yield* redeem(store, token, "david"), "invalid", token)
          assert.isTrue(Option.isNone(yield* store.getInvite(token)), `${token} deleted`)
        }
        assert.isFalse(yield* store.isMember("ops", "david"))
        assert.strictEqual(yield* redeem(store, "later", "david"), "redeemed")
        assert.isTrue(yield* store.isMember("ops", "david"))
        assert.strictEqual(yield* redeem(store, "far", "carol"), "redeemed")
        assert.strictEqual(yield* redeem(store, "lower", "evan"), "redeemed")
      }))

    it.scoped("S-064 unknown token, token of another channel, uses = 0", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* channel(store, "dev")
        yield* store.createInvite(invite("dev-tok", 1, null, "dev"))
        yield* store.createInvite(invite("zero", 0))
        assert.strictEqual(yield* redeem(store, "nope", "david"), "invalid")
        assert.strictEqual(yield* redeem(store, "dev-tok", "david", "ops"), "invalid")
        assert.strictEqual(Option.getOrThrow(yield* store.getInvite("dev-tok")).uses_remaining, 1, "not consumed")
        assert.strictEqual(yield* redeem(store, "zero", "david"), "invalid")
        assert.isFalse(yield* store.isMember("ops", "david"))
        assert.isFalse(yield* store.isMember("dev", "david"))
      }))

    it.scoped("unlimited tokens are never consumed", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.createInvite(invite("open", null))
        for (const user of ["u1", "u2", "u3", "u1"]) {
          assert.strictEqual(yield* redeem(store, "open", user), "redeemed")
        }
        assert.deepStrictEqual(yield* store.getInvite("open"), Option.some(invite("open", null)))
        assert.deepStrictEqual(yield* store.listMembers("ops"), ["aaron", "u1", "u2", "u3"])
      }))

    it.scoped("S-067 16 concurrent redeemers of a single-use token: exactly one wins", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.createInvite(invite("once", 1))
        const users = Array.from({ length: 16 }, (_, i) => `user${i}`)
        const results = yield* Effect.all(users.map((user) => redeem(store, "once", user)), {
          concurrency: "unbounded"
        })
        assert.strictEqual(results.filter((r) => r === "redeemed").length, 1)
        assert.strictEqual(results.filter((r) => r === "invalid").length, 15)
        assert.strictEqual((yield* store.listMembers("ops")).length, 2)
        assert.isTrue(Option.isNone(yield* store.getInvite("once")))
      }))

    it.scoped("S-068 12 concurrent joins with an unlimited token lose no ACL entries", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.createInvite(invite("open", null))
        const users = Array.from({ length: 12 }, (_, i) => `user${i}`)
        const results = yield* Effect.all(users.map((user) => redeem(store, "open", user)), {
          concurrency: "unbounded"
        })
        assert.deepStrictEqual(results, users.map(() => "redeemed"))
        assert.strictEqual((yield* store.listMembers("ops")).length, 13)
      }))
  })

  describe("messages", () => {
    it.scoped("S-083 readSince by ms and by seq, exclusive, oldest first, with more", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* channel(store, "other")
        const s1 = yield* store.appendMessage(msg("ops", 100, "one"))
        yield* store.appendMessage(msg("other", 150, "elsewhere"))
        const s2 = yield* store.appendMessage(msg("ops", 200, "two", { origin: "human", reply_to: s1 }))
        assert.isTrue(s2 > s1)

        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Ms", ms: 50 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(page, {
          more: false,
          messages: [
            {
              seq: s1,
              from: { user: "aaron", machine: "workstation", session: "razel" },
              ts_ms: 100,
              payload: plain("one"),
              origin: "agent",
              reply_to: null
            },
            {
              seq: s2,
              from: { user: "aaron", machine: "workstation", session: "razel" },
              ts_ms: 200,
              payload: plain("two"),
              origin: "human",
              reply_to: s1
            }
          ]
        })
        const byMs = yield* store.readSince({ channel: "ops", since: { _tag: "Ms", ms: 100 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(texts(byMs.messages), ["two"])
        const capped = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 1 })
        assert.deepStrictEqual(texts(capped.messages), ["one"])
        assert.isTrue(capped.more)
        const bySeq = yield* store.readSince({
          channel: "ops",
          since: { _tag: "Seq", seq: s1 },
          cutoffMs: 0,
          limit: 10
        })
        assert.deepStrictEqual(texts(bySeq.messages), ["two"])
        assert.isFalse(bySeq.more)
        const exact = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 2 })
        assert.isFalse(exact.more, "a page that holds exactly the rest has no more")
        const negative = yield* store.readSince({
          channel: "ops",
          since: { _tag: "Ms", ms: -5 },
          cutoffMs: 0,
          limit: 10
        })
        assert.strictEqual(negative.messages.length, 2)
      }))

    it.scoped("encrypted payloads round-trip verbatim", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        const payload: Frames.Payload = { kind: "encrypted", ciphertext: "AAEC_-", key_id: "k1" }
        yield* store.appendMessage(msg("ops", 1, "", { payload }))
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(page.messages[0]?.payload, payload)
      }))

    it.scoped("S-084 the page cap cuts at the limit and the rest follows from the last seq", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        for (let i = 0; i < 501; i++) yield* store.appendMessage(msg("ops", 1_000 + i, `m${i}`))
        const first = yield* store.readSince({
          channel: "ops",
          since: { _tag: "Seq", seq: 0 },
          cutoffMs: 0,
          limit: 500
        })
        assert.strictEqual(first.messages.length, 500)
        assert.isTrue(first.more)
        assert.strictEqual(texts(first.messages)[0], "m0")
        assert.strictEqual(texts(first.messages)[499], "m499")
        const last = first.messages[499]!
        const rest = yield* store.readSince({
          channel: "ops",
          since: { _tag: "Seq", seq: last.seq },
          cutoffMs: 0,
          limit: 500
        })
        assert.deepStrictEqual(texts(rest.messages), ["m500"])
        assert.isFalse(rest.more)
        const byMs = yield* store.readSince({
          channel: "ops",
          since: { _tag: "Ms", ms: last.ts_ms },
          cutoffMs: 0,
          limit: 500
        })
        assert.deepStrictEqual(texts(byMs.messages), ["m500"])
      }))

    it.scoped("many messages in the same millisecond page by seq with no gaps or duplicates", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* channel(store, "noise")
        const written: Array<number> = []
        for (let i = 0; i < 250; i++) {
          written.push(yield* store.appendMessage(msg("ops", 5_000, `m${i}`)))
          if (i % 3 === 0) yield* store.appendMessage(msg("noise", 5_000, "x"))
        }
        const seen: Array<number> = []
        let since = 0
        let pages = 0
        while (true) {
          const page = yield* store.readSince({
            channel: "ops",
            since: { _tag: "Seq", seq: since },
            cutoffMs: 0,
            limit: 40
          })
          pages++
          seen.push(...page.messages.map((m) => m.seq))
          if (!page.more) break
          since = page.messages[page.messages.length - 1]!.seq
          assert.isBelow(pages, 20, "paging terminates")
        }
        assert.deepStrictEqual(seen, written)
        assert.strictEqual(pages, 7)
      }))

    it.scoped("D-18 rows older than the cutoff are skipped", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.appendMessage(msg("ops", 100, "old"))
        yield* store.appendMessage(msg("ops", 200, "edge"))
        yield* store.appendMessage(msg("ops", 300, "new"))
        const bySeq = yield* store.readSince({
          channel: "ops",
          since: { _tag: "Seq", seq: 0 },
          cutoffMs: 200,
          limit: 10
        })
        assert.deepStrictEqual(texts(bySeq.messages), ["edge", "new"])
        const byMs = yield* store.readSince({ channel: "ops", since: { _tag: "Ms", ms: 0 }, cutoffMs: 250, limit: 10 })
        assert.deepStrictEqual(texts(byMs.messages), ["new"])
      }))

    it.scoped("undecodable rows are skipped without starving the page", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        const insert = (sender: string, payload: string, origin = "agent", reply_to: number | null = null) =>
          sql`INSERT INTO messages (channel, sender, payload, ts_ms, origin, reply_to)
              VALUES ('ops', ${sender}, ${payload}, 10, ${origin}, ${reply_to})`
        yield* insert("a/b/c", "not json")
        yield* insert("a/b", JSON.stringify(plain("short path")))
        yield* insert("a/b/c", JSON.stringify({ kind: "telepathy" }))
        yield* insert("a/b/c", JSON.stringify(plain("bad origin")), "robot")
        yield* insert("a/b/c", JSON.stringify(plain("bad reply")), "agent", -3)
        yield* store.appendMessage(msg("ops", 10, "good1"))
        yield* insert("a//c", JSON.stringify(plain("empty machine")))
        yield* store.appendMessage(msg("ops", 10, "good2"))
        yield* store.appendMessage(msg("ops", 10, "good3"))

        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 2 })
        assert.deepStrictEqual(texts(page.messages), ["good1", "good2"])
        assert.isTrue(page.more)
        const all = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 1 })
        assert.deepStrictEqual(texts(all.messages), ["good1"])
        const rest = yield* store.readSince({
          channel: "ops",
          since: { _tag: "Seq", seq: page.messages[1]!.seq },
          cutoffMs: 0,
          limit: 2
        })
        assert.deepStrictEqual(texts(rest.messages), ["good3"])
        assert.isFalse(rest.more)
      }))

    it.scoped("seqs are never reused, messageExists checks the channel, missing channel is a StoreError", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* channel(store, "dev")
        const a = yield* store.appendMessage(msg("ops", 1, "a"))
        const b = yield* store.appendMessage(msg("ops", 2, "b"))
        assert.isTrue(yield* store.messageExists("ops", a))
        assert.isFalse(yield* store.messageExists("dev", a))
        assert.isFalse(yield* store.messageExists("ops", b + 100))
        yield* store.deleteChannel("ops")
        const c = yield* store.appendMessage(msg("dev", 3, "c"))
        assert.isTrue(c > b, "AUTOINCREMENT never hands out a deleted seq again")
        const error = yield* failure(store.appendMessage(msg("gone", 4, "d")))
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.operation, "appendMessage")
        assert.notInclude(error.message, "FOREIGN")
      }))

    it.scoped("purgeOlderThan deletes only older rows and counts them", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        yield* channel(store, "dev")
        yield* store.appendMessage(msg("ops", 100, "old1"))
        yield* store.appendMessage(msg("dev", 150, "old2"))
        yield* store.appendMessage(msg("ops", 200, "keep1"))
        yield* store.appendMessage(msg("dev", 300, "keep2"))
        assert.strictEqual(yield* store.purgeOlderThan(200), 2)
        assert.strictEqual(yield* store.purgeOlderThan(200), 0)
        const read = (name: string) =>
          store.readSince({ channel: name, since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(texts((yield* read("ops")).messages), ["keep1"])
        assert.deepStrictEqual(texts((yield* read("dev")).messages), ["keep2"])
      }))
    it.scoped("fast-path decoding matches the schema: extra fields dropped, wrong types skipped", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        const insert = (payload: string, ts = 10, sender = "a/b/c") =>
          sql`INSERT INTO messages (channel, sender, payload, ts_ms, origin, reply_to)
              VALUES ('ops', ${sender}, ${payload}, ${ts}, 'human', NULL)`
        yield* insert(JSON.stringify({ kind: "plain", text: "extra", by: "someone" }))
        yield* insert(JSON.stringify({ kind: "plain", text: 7 }))
        yield* insert(JSON.stringify({ kind: "encrypted", ciphertext: "AAEC", key_id: null, junk: 1 }))
        yield* insert(JSON.stringify({ kind: "encrypted", ciphertext: "not base64url!", key_id: null }))
        yield* insert("null")
        yield* insert(JSON.stringify(plain("fractional ts")), 10.5)
        yield* insert(JSON.stringify(plain("x")), 11, "a/b/c/d")
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(
          page.messages.map((m) => ({ from: m.from, payload: m.payload, origin: m.origin, reply_to: m.reply_to })),
          [
            {
              from: { user: "a", machine: "b", session: "c" },
              payload: { kind: "plain", text: "extra" },
              origin: "human",
              reply_to: null
            },
            {
              from: { user: "a", machine: "b", session: "c" },
              payload: { kind: "encrypted", ciphertext: "AAEC", key_id: null },
              origin: "human",
              reply_to: null
            }
          ]
        )
        assert.isFalse(page.more)
      }))
  })

  describe("group commit (D-5)", () => {
    const committedRows = (sql: SqlClient.SqlClient, seq: number) =>
      Effect.map(sql<{ n: number }>`SELECT count(*) AS n FROM messages WHERE id = ${seq}`, (rows) => rows[0]?.n ?? 0)

    /** A second connection to the same file: it sees committed rows only. */
    const observer = (filename: string) =>
      Layer.build(SqliteClient.layer({ filename, disableWAL: true })).pipe(
        Effect.map((ctx) => Context.get(ctx, SqlClient.SqlClient))
      )

    it.scoped("concurrent appends all resolve with distinct seqs, in seq order, after COMMIT", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        const { store } = yield* openWithSql(file)
        const other = yield* observer(file)
        yield* channel(store, "ops")
        const seen: Array<{ readonly seq: number; readonly visible: number }> = []
        const n = 200
        const seqs = yield* Effect.forEach(
          Array.from({ length: n }, (_, i) => i),
          (i) =>
            store.appendMessage(msg("ops", 1_000 + i, `m${i}`)).pipe(
              Effect.tap((seq) =>
                Effect.orDie(committedRows(other, seq)).pipe(
                  Effect.map((visible) => {
                    seen.push({ seq, visible })
                  })
                )
              )
            ),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(new Set(seqs).size, n, "every post got its own seq")
        assert.strictEqual(seen.length, n, "each append resolved once")
        for (let i = 1; i < seen.length; i++) {
          assert.isTrue(seen[i]!.seq > seen[i - 1]!.seq, "appends resolve in seq order")
        }
        assert.isTrue(seen.every((s) => s.visible === 1), "the row was committed before its append resolved")
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 500 })
        assert.deepStrictEqual(page.messages.map((m) => m.seq), [...seqs].sort((a, b) => a - b))
      }))

    it.scoped("a failing insert refuses only its own post; the rest of the batch commits", () =>
      Effect.gen(function*() {
        const { store } = yield* fresh
        yield* channel(store, "ops")
        const published: Array<number> = []
        const record = (seq: number) => Effect.sync(() => void published.push(seq))
        const results = yield* Effect.forEach(
          ["ops", "gone", "ops", "gone", "ops"],
          (name, i) => Effect.either(Effect.tap(store.appendMessage(msg(name, 10 + i, `m${i}`)), record)),
          { concurrency: "unbounded" }
        )
        const ok = results.flatMap((r) => r._tag === "Right" ? [r.right] : [])
        const refused = results.flatMap((r) => r._tag === "Left" ? [r.left] : [])
        assert.strictEqual(ok.length, 3)
        assert.strictEqual(refused.length, 2)
        for (const e of refused) {
          assert.instanceOf(e, StoreError)
          assert.strictEqual(e.operation, "appendMessage")
        }
        assert.deepStrictEqual(published, [...ok].sort((a, b) => a - b), "only committed posts are published")
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(texts(page.messages), ["m0", "m2", "m4"])
      }))

    it.scoped("a failing COMMIT refuses every post of the batch and publishes none of them", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        // Leaving WAL needs the file to itself: no second (read) connection.
        const { sql, store } = yield* openWithoutReadConnection(file)
        yield* channel(store, "ops")
        // Rollback journal + a reader holding its shared lock: COMMIT cannot take the exclusive lock.
        yield* sql.unsafe("PRAGMA journal_mode = DELETE")
        yield* sql.unsafe("PRAGMA busy_timeout = 20")
        const other = yield* observer(file)
        const reading = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const reader = yield* other.withTransaction(
          Effect.zipRight(
            other`SELECT count(*) AS n FROM messages`,
            Effect.zipRight(Deferred.succeed(reading, undefined), Deferred.await(release))
          )
        ).pipe(Effect.fork)
        yield* Deferred.await(reading)
        const published: Array<number> = []
        const record = (seq: number) => Effect.sync(() => void published.push(seq))
        const results = yield* Effect.forEach(
          [0, 1, 2, 3],
          (i) => Effect.either(Effect.tap(store.appendMessage(msg("ops", 10 + i, `m${i}`)), record)),
          { concurrency: "unbounded" }
        )
        for (const r of results) {
          assert.strictEqual(r._tag, "Left", "no post is acknowledged when its COMMIT fails")
          if (r._tag === "Left") assert.instanceOf(r.left, StoreError)
        }
        assert.deepStrictEqual(published, [])
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(reader)
        const after = yield* store.appendMessage(msg("ops", 20, "after"))
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(texts(page.messages), ["after"], "nothing of the refused batch was kept")
        assert.strictEqual(page.messages[0]?.seq, after)
      }))

    /** Hold the connection in a transaction until `release` runs (the writer waits meanwhile). */
    const holdConnection = (sql: SqlClient.SqlClient) =>
      Effect.gen(function*() {
        const holding = yield* Deferred.make<void>()
        const release = yield* Deferred.make<void>()
        const holder = yield* sql.withTransaction(
          Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(release))
        ).pipe(Effect.fork)
        yield* Deferred.await(holding)
        return Effect.zipRight(Deferred.succeed(release, undefined), Fiber.join(holder))
      })

    /** Start `appends` in order and wait until each has been queued (its fiber suspended on its commit). */
    const startInOrder = <A, E>(appends: ReadonlyArray<Effect.Effect<A, E>>) =>
      Effect.gen(function*() {
        let started = 0
        const fibers: Array<Fiber.RuntimeFiber<A, E>> = []
        for (const append of appends) {
          fibers.push(
            yield* Effect.fork(Effect.suspend(() => {
              started++
              return append
            }))
          )
        }
        while (started < appends.length) yield* Effect.yieldNow()
        return fibers
      })

    /**
     * Queue `messages` while another transaction holds the connection, so the writer finds them all
     * waiting at once (one group commit spanning several multi-row chunks), then let it go. The
     * results in queue order, and the seqs in the order the appends resolved.
     */
    const appendHeld = (
      sql: SqlClient.SqlClient,
      store: StoreShape,
      messages: ReadonlyArray<NewMessage>
    ) =>
      Effect.gen(function*() {
        const release = yield* holdConnection(sql)
        const published: Array<number> = []
        const fibers = yield* startInOrder(
          messages.map((m) => Effect.tap(store.appendMessage(m), (seq) => Effect.sync(() => void published.push(seq))))
        )
        yield* release
        const results = yield* Effect.forEach(fibers, (fiber) => Effect.either(Fiber.join(fiber))).pipe(
          Effect.timeoutFail({ duration: "10 seconds", onTimeout: () => "appends never resolved" })
        )
        return { results, published }
      })

    it.scoped("a batch spanning several multi-row chunks commits every row in queue order", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        yield* store.appendMessage(msg("ops", 1, "first")) // seqs of the batch do not start at 1
        // 128 + 128 + 32 + 8 + 4 + 1 + 1 rows: every chunk size is used
        const n = 302
        const { published, results } = yield* appendHeld(
          sql,
          store,
          Array.from({ length: n }, (_, i) => msg("ops", 10 + i, `m${i}`, i % 3 === 0 ? { reply_to: 1 } : {}))
        )
        const seqs = results.map((r) => {
          assert.strictEqual(r._tag, "Right", "every post commits")
          return r._tag === "Right" ? r.right : -1
        })
        for (let i = 1; i < n; i++) assert.isTrue(seqs[i]! > seqs[i - 1]!, "seqs increase in queue order")
        assert.deepStrictEqual(published, seqs, "each append resolves once, in seq order")
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 1 }, cutoffMs: 0, limit: 500 })
        assert.deepStrictEqual(page.messages.map((m) => m.seq), seqs)
        // each seq carries its own row (the ids of a multi-row insert map onto its rows in order)
        page.messages.forEach((m, i) => {
          assert.deepStrictEqual(
            { text: m.payload.kind === "plain" ? m.payload.text : "", ts_ms: m.ts_ms, reply_to: m.reply_to },
            { text: `m${i}`, ts_ms: 10 + i, reply_to: i % 3 === 0 ? 1 : null }
          )
        })
      }))

    it.scoped("a failing row inside a multi-row chunk refuses only that post; its chunk commits row by row", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        const n = 300
        const bad = new Set([0, 5, 140, 141, 299]) // the channel "gone" does not exist: FOREIGN KEY fails
        const { published, results } = yield* appendHeld(
          sql,
          store,
          Array.from({ length: n }, (_, i) => msg(bad.has(i) ? "gone" : "ops", 10 + i, `m${i}`))
        )
        const committed: Array<number> = []
        const expected: Array<string> = []
        results.forEach((r, i) => {
          if (bad.has(i)) {
            assert.strictEqual(r._tag, "Left", `post ${i} is refused`)
            if (r._tag === "Left") {
              assert.instanceOf(r.left, StoreError)
              assert.strictEqual(r.left.operation, "appendMessage")
            }
          } else {
            assert.strictEqual(r._tag, "Right", `post ${i} commits`)
            if (r._tag === "Right") committed.push(r.right)
            expected.push(`m${i}`)
          }
        })
        for (let i = 1; i < committed.length; i++) assert.isTrue(committed[i]! > committed[i - 1]!)
        assert.deepStrictEqual(published, committed, "only committed posts are published, in seq order")
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 500 })
        assert.deepStrictEqual(texts(page.messages), expected)
        assert.deepStrictEqual(page.messages.map((m) => m.seq), committed)
      }))

    it.scoped("an append whose wait is interrupted still commits, once", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        const release = yield* holdConnection(sql)
        const [abandoned] = yield* startInOrder([store.appendMessage(msg("ops", 1, "one"))])
        yield* Fiber.interrupt(abandoned!)
        yield* release
        const after = yield* store.appendMessage(msg("ops", 2, "two"))
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(texts(page.messages), ["one", "two"])
        assert.strictEqual(page.messages[1]?.seq, after)
      }))

    it.scoped("a full database (SQLITE_FULL) refuses the posts with StoreError, not a defect; the store recovers", () =>
      Effect.gen(function*() {
        const { sql, store } = yield* fresh
        yield* channel(store, "ops")
        const [{ page_count }] = yield* sql<{ page_count: number }>`PRAGMA page_count`
        yield* sql.unsafe(`PRAGMA max_page_count = ${page_count + 2}`)
        const big = "x".repeat(64 * 1024)
        const { published, results } = yield* appendHeld(
          sql,
          store,
          Array.from({ length: 12 }, (_, i) => msg("ops", 10 + i, `${big}${i}`))
        )
        for (const r of results) {
          assert.strictEqual(r._tag, "Left", "nothing fits")
          if (r._tag === "Left") {
            assert.instanceOf(r.left, StoreError)
            const sqlError: unknown = r.left.cause
            const code = typeof sqlError === "object" && sqlError !== null && "cause" in sqlError
              ? (sqlError.cause as { readonly code?: unknown }).code
              : undefined
            assert.strictEqual(code, "SQLITE_FULL")
          }
        }
        assert.deepStrictEqual(published, [])
        yield* sql.unsafe("PRAGMA max_page_count = 1073741823")
        const seq = yield* store.appendMessage(msg("ops", 30, "after"))
        const page = yield* store.readSince({ channel: "ops", since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit: 10 })
        assert.deepStrictEqual(page.messages.map((m) => [m.seq, texts([m])[0]]), [[seq, "after"]])
      }))

    it.scopedLive("closing the store refuses appends still queued instead of leaving them hanging", () =>
      Effect.gen(function*() {
        const file = yield* dbFile
        const pending = yield* Effect.scoped(Effect.gen(function*() {
          const store = yield* openStore(file)
          yield* channel(store, "ops")
          return yield* Effect.forEach(
            [0, 1, 2, 3, 4, 5, 6, 7],
            (i) => Effect.fork(store.appendMessage(msg("ops", i, `m${i}`))),
            { concurrency: "unbounded" }
          )
        }))
        for (const fiber of pending) {
          const exit = yield* Fiber.await(fiber).pipe(Effect.timeout("5 seconds"), Effect.option)
          assert.isTrue(Option.isSome(exit), "every append resolves (committed or refused) once the store closes")
        }
      }))
  })
})
