/**
 * One conformance suite for every implementation of the `Store` port: `describeStore(name, factory)`
 * runs it against a store built by `factory` (SQLite in a file and in memory, PostgreSQL). Tests
 * that only one implementation can have (PRAGMAs, WAL, a second connection, …) live in that
 * implementation's own test file.
 */
import type { Frames } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Option } from "effect"
import type * as Scope from "effect/Scope"
import type { StoreShape } from "../../src/Store.js"
import { type NewMessage, StoreConflict, StoreError } from "../../src/Store.js"
import { describeEnrollCodes } from "./EnrollCodeConformance.js"

export const NOW = "2026-11-24T00:00:00Z"
export const NOW_MS = Date.parse(NOW)

/** A message row written past the store (for rows the store itself would never write). */
export interface RawMessage {
  readonly channel: string
  readonly sender: string
  readonly payload: string
  readonly ts_ms: number
  readonly origin: string
  readonly reply_to: number | null
}

/** A store under test, with a little raw access to its database. */
export interface Subject {
  readonly store: StoreShape
  readonly insertRawMessage: (row: RawMessage) => Effect.Effect<void, unknown>
  /** Rows of `table`, of `channel` only when given. */
  readonly countRows: (
    table: "memberships" | "bans" | "invites" | "messages",
    channel?: string
  ) => Effect.Effect<number, unknown>
  /** Every row of `enroll_codes`, by `code_hash`. */
  readonly enrollCodes: Effect.Effect<
    ReadonlyArray<{ readonly code_hash: unknown; readonly username: unknown; readonly expires_at_ms: unknown }>,
    unknown
  >
}

export interface StoreFactory {
  /** A new, empty store, closed (and its database dropped) with the scope. */
  readonly fresh: Effect.Effect<Subject, unknown, Scope.Scope>
  /**
   * A new, empty database and the effect that opens a store on it (any number of times, together or
   * one after another); undefined for a store that cannot be opened twice (in memory).
   */
  readonly database:
    | Effect.Effect<Effect.Effect<StoreShape, StoreError, Scope.Scope>, unknown, Scope.Scope>
    | undefined
    | Effect.Effect<Effect.Effect<StoreShape, StoreError, Scope.Scope>, StoreError, Scope.Scope>
    | undefined
  /** Seqs numbered per channel, 1, 2, 3 … (D-42), rather than server-wide. */
  readonly seqPerChannel: boolean
}

export const plain = (text: string): Frames.Payload => ({ kind: "plain", text })

export const msg = (channel: string, ts_ms: number, text: string, extra: Partial<NewMessage> = {}): NewMessage => ({
  channel,
  from: "aaron/workstation/razel",
  payload: plain(text),
  ts_ms,
  origin: "agent",
  reply_to: null,
  ...extra
})

export const texts = (messages: ReadonlyArray<Frames.HistoryMessage>) =>
  messages.map((m) => m.payload.kind === "plain" ? m.payload.text : `<${m.payload.kind}>`)

export const channel = (
  store: StoreShape,
  name: string,
  createdBy = "aaron",
  visibility: Frames.Visibility = "private"
) => store.createChannel({ name, visibility, createdBy, now: NOW })

export const assertConflict = (error: unknown, what: StoreConflict["what"], value: string) => {
  assert.instanceOf(error, StoreConflict)
  assert.deepStrictEqual({ what: error.what, value: error.value }, { what, value })
}

export const failure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.flatMap(Effect.exit(effect), (exit) =>
    Exit.isFailure(exit) && exit.cause._tag === "Fail"
      ? Effect.succeed(exit.cause.error)
      : Effect.dieMessage(`expected a failure, got ${Exit.isSuccess(exit) ? "success" : "a defect"}`))

export const readAll = (store: StoreShape, name: string, limit = 500) =>
  store.readSince({ channel: name, since: { _tag: "Seq", seq: 0 }, cutoffMs: 0, limit })

/** Wait until every fiber is suspended (e.g. each has queued its append and waits for it). */
export const allSuspended = (fibers: ReadonlyArray<Fiber.RuntimeFiber<unknown, unknown>>) =>
  Effect.forEach(fibers, (fiber) => fiber.status).pipe(
    Effect.map((statuses) => statuses.every((s) => s._tag === "Suspended")),
    Effect.zipLeft(Effect.yieldNow()),
    Effect.repeat({ until: (all) => all })
  )

export const describeStore = (name: string, factory: StoreFactory) =>
  describe(`Store conformance: ${name}`, () => {
    const fresh = factory.fresh
    const database = factory.database

    describeEnrollCodes(factory)

    describe("opening", () => {
      it.scoped.skipIf(database === undefined)("S-102 the instance id is stable across reads and reopen", () =>
        Effect.gen(function*() {
          const open = yield* database!
          const first = yield* Effect.scoped(Effect.gen(function*() {
            const store = yield* open
            const a = yield* store.instanceId
            const b = yield* store.instanceId
            assert.strictEqual(a, b)
            return a
          }))
          assert.match(first, /^[A-Za-z0-9_-]{32}$/)
          const again = yield* Effect.scoped(Effect.flatMap(open, (store) =>
            store.instanceId))
          assert.strictEqual(again, first)
        }))

      it.scoped.skipIf(database === undefined)("stores opened together on one database agree on one instance id", () =>
        Effect.gen(function*() {
          const open = yield* database!
          // each store stays open in the test scope; all of them race to migrate and to write the id
          const ids = yield* Effect.all(
            Array.from({ length: 4 }, () =>
              Effect.flatMap(open, (store) =>
                store.instanceId)),
            {
              concurrency: "unbounded"
            }
          )
          assert.strictEqual(new Set(ids).size, 1)
        }))

      it.scoped.skipIf(database === undefined)(
        "migrations are idempotent: reopening keeps users, machines, channels, ACL, bans, invites and messages; seqs continue",
        () =>
          Effect.gen(function*() {
            const open = yield* database!
            const lastSeq = yield* Effect.scoped(Effect.gen(function*() {
              const store = yield* open
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
            yield* Effect.scoped(Effect.asVoid(open)) // an open with nothing to migrate
            const store = yield* open
            assert.isTrue(yield* store.userExists("aaron"))
            assert.deepStrictEqual(
              (yield* store.listMachines("aaron")).map((m) =>
                m.name
              ),
              ["ws"]
            )
            assert.isTrue(Option.isSome(yield* store.getChannel("ops")))
            assert.deepStrictEqual(yield* store.listMembers("ops"), ["aaron", "david"])
            assert.deepStrictEqual(yield* store.allBans, [{ channel: "ops", user: "bob" }])
            assert.deepStrictEqual((yield* store.listInvites("ops")).map((i) => i.token), ["tok"])
            const page = yield* readAll(store, "ops", 10)
            assert.deepStrictEqual(texts(page.messages), ["one", "two"])
            const next = yield* store.appendMessage(msg("ops", 300, "three"))
            assert.isTrue(next > lastSeq)
            if (factory.seqPerChannel) assert.strictEqual(next, lastSeq + 1)
          })
      )
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

          const dup = yield* failure(
            store.registerUser({ username: "aaron", machine: "other", pubkey: "k3", now: NOW })
          )
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

      it.scoped("machine offers (issue 22): accepted by the key's holder only; one key, one user", () =>
        Effect.gen(function*() {
          const { store } = yield* fresh
          yield* store.registerUser({ username: "bob", machine: "ws", pubkey: "k1", now: NOW })
          yield* store.registerUser({ username: "dan", machine: "ws", pubkey: "k5", now: NOW })
          // a bound key cannot be offered; a taken or look-alike name neither
          assertConflict(
            yield* failure(store.offerMachine({ user: "bob", name: "x", pubkey: "k5", now: NOW })),
            "pubkey",
            "k5"
          )
          assertConflict(
            yield* failure(store.offerMachine({ user: "bob", name: "WS", pubkey: "k2", now: NOW })),
            "machine",
            "WS"
          )
          yield* store.offerMachine({ user: "bob", name: "laptop", pubkey: "carol-key", now: NOW })
          assertConflict(
            yield* failure(store.offerMachine({ user: "bob", name: "Laptop", pubkey: "k3", now: NOW })),
            "machine",
            "Laptop"
          )
          // an offer binds nothing
          assert.isTrue(Option.isNone(yield* store.findMachineByKey("carol-key")))
          assert.deepStrictEqual(yield* store.findOfferByKey("carol-key"), Option.some({ user: "bob", name: "laptop" }))
          // listed (so it can be withdrawn), but not a machine
          assert.deepStrictEqual((yield* store.listMachines("bob")).map((m) => m.name), ["laptop", "ws"])
          // the key's holder registers its own name instead: the offer lapses
          yield* store.registerUser({ username: "carol", machine: "m", pubkey: "carol-key", now: NOW })
          assert.isTrue(Option.isNone(yield* store.findOfferByKey("carol-key")))
          assert.isFalse(yield* store.claimMachine({ user: "bob", name: "laptop", pubkey: "carol-key", now: NOW }))
          assert.deepStrictEqual(
            yield* store.findMachineByKey("carol-key").pipe(Effect.map(Option.map((m) => m.user))),
            Option.some("carol")
          )
          // an accepted offer: only for the exact user, name and key
          yield* store.offerMachine({ user: "bob", name: "tablet", pubkey: "k7", now: NOW })
          yield* store.offerMachine({ user: "dan", name: "pad", pubkey: "k7", now: NOW })
          assert.isFalse(yield* store.claimMachine({ user: "bob", name: "pad", pubkey: "k7", now: NOW }))
          assert.isFalse(yield* store.claimMachine({ user: "bob", name: "tablet", pubkey: "k8", now: NOW }))
          assert.isTrue(yield* store.claimMachine({ user: "bob", name: "tablet", pubkey: "k7", now: NOW }))
          assert.deepStrictEqual((yield* store.listMachines("bob")).map((m) => m.name), ["tablet", "ws"])
          // the other user's offer of the same key lapsed with it
          assert.isFalse(yield* store.claimMachine({ user: "dan", name: "pad", pubkey: "k7", now: NOW }))
          assert.isTrue(Option.isNone(yield* store.findOfferByKey("k7")))
          // removing a machine name withdraws its offer
          yield* store.offerMachine({ user: "bob", name: "spare", pubkey: "k9", now: NOW })
          yield* store.removeMachine("bob", "spare")
          assert.isTrue(Option.isNone(yield* store.findOfferByKey("k9")))
          yield* store.offerMachine({ user: "bob", name: "spare2", pubkey: "k10", now: NOW })
          yield* store.removeUser("bob")
          assert.isTrue(Option.isNone(yield* store.findOfferByKey("k10")))
        }))

      it.scoped("names that look alike are one name (issue 22): users, machines of a user, channels", () =>
        Effect.gen(function*() {
          const { store } = yield* fresh
          yield* store.registerUser({ username: "alice", machine: "ws", pubkey: "k1", now: NOW })
          for (const [name, i] of [["Alice", 2], ["аlice", 3], ["ａｌｉｃｅ", 4], ["ALICE", 5]] as const) {
            assertConflict(
              yield* failure(store.registerUser({ username: name, machine: "m", pubkey: `k${i}x`, now: NOW })),
              "username",
              name
            )
            assert.isFalse(yield* store.userExists(name))
          }
          assertConflict(
            yield* failure(store.addMachine({ user: "alice", name: "WS", pubkey: "k6", now: NOW })),
            "machine",
            "WS"
          )
          yield* store.registerUser({ username: "bob", machine: "WS", pubkey: "k7", now: NOW }) // other user: fine
          yield* channel(store, "ops", "alice")
          assertConflict(
            yield* failure(store.createChannel({ name: "оps", visibility: "public", createdBy: "alice", now: NOW })),
            "channel",
            "оps"
          )
          yield* channel(store, "dev", "alice")
          assertConflict(yield* failure(store.renameChannel("dev", "OPS")), "channel", "OPS")
          // renaming to a look-alike of itself is fine, and frees the old skeleton
          yield* store.renameChannel("ops", "Ops")
          yield* store.renameChannel("dev", "devs")
          yield* channel(store, "dev", "alice")
          // a removed user's skeleton is free again
          yield* store.removeUser("alice")
          yield* store.registerUser({ username: "Alice", machine: "m", pubkey: "k8", now: NOW })
        }))

      it.scoped("hot reads: findMachineByKey, getChannel, isMember, userExists, messageExists; unusual rows", () =>
        Effect.gen(function*() {
          const { store } = yield* fresh
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
          yield* store.addMachine({ user: "aaron", name: "", pubkey: "k2", now: "12" })
          yield* store.createChannel({ name: "ünï", visibility: "private", createdBy: "", now: "" })
          assert.deepStrictEqual(
            yield* store.findMachineByKey("k2"),
            Option.some({ user: "aaron", name: "", pubkey: "k2", added_at: "12" })
          )
          assert.deepStrictEqual(
            yield* store.getChannel("ünï"),
            Option.some({ name: "ünï", visibility: "private" as const, created_by: "", created_at: "" })
          )
        }))

      it.scoped("removeUser deletes created channels, memberships, machines; keeps bans and messages elsewhere", () =>
        Effect.gen(function*() {
          const { countRows, store } = yield* fresh
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
          // and no longer look written by whoever registers the name next (issue 22)
          assert.deepStrictEqual(lobby.messages.map((m) => m.from), [{
            user: "victim (removed)",
            machine: "m1",
            session: "s"
          }])
          assert.strictEqual(yield* countRows("messages", "victim-ops"), 0)

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
          const { countRows, store } = yield* fresh
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
          for (const table of ["memberships", "bans", "invites", "messages"] as const) {
            assert.strictEqual(yield* countRows(table), 0, `${table} is empty after the delete`)
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
          const page = yield* store.readSince({
            channel: "ops",
            since: { _tag: "Seq", seq: 0 },
            cutoffMs: 0,
            limit: 10
          })
          assert.deepStrictEqual(texts(page.messages), ["one"])
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

      it.scoped("S-067 20 concurrent redeemers of a single-use token: exactly one wins", () =>
        Effect.gen(function*() {
          const { store } = yield* fresh
          yield* channel(store, "ops")
          yield* store.createInvite(invite("once", 1))
          const users = Array.from({ length: 20 }, (_, i) => `user${i}`)
          const results = yield* Effect.all(users.map((user) => redeem(store, "once", user)), {
            concurrency: "unbounded"
          })
          assert.strictEqual(results.filter((r) => r === "redeemed").length, 1)
          assert.strictEqual(results.filter((r) => r === "invalid").length, 19)
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
          const byMs = yield* store.readSince({
            channel: "ops",
            since: { _tag: "Ms", ms: 100 },
            cutoffMs: 0,
            limit: 10
          })
          assert.deepStrictEqual(texts(byMs.messages), ["two"])
          const capped = yield* store.readSince({
            channel: "ops",
            since: { _tag: "Seq", seq: 0 },
            cutoffMs: 0,
            limit: 1
          })
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
          const exact = yield* store.readSince({
            channel: "ops",
            since: { _tag: "Seq", seq: 0 },
            cutoffMs: 0,
            limit: 2
          })
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
          const page = yield* store.readSince({
            channel: "ops",
            since: { _tag: "Seq", seq: 0 },
            cutoffMs: 0,
            limit: 10
          })
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
          const byMs = yield* store.readSince({
            channel: "ops",
            since: { _tag: "Ms", ms: 0 },
            cutoffMs: 250,
            limit: 10
          })
          assert.deepStrictEqual(texts(byMs.messages), ["new"])
        }))

      it.scoped("undecodable rows are skipped without starving the page", () =>
        Effect.gen(function*() {
          const { insertRawMessage, store } = yield* fresh
          yield* channel(store, "ops")
          const insert = (sender: string, payload: string, origin = "agent", reply_to: number | null = null) =>
            insertRawMessage({ channel: "ops", sender, payload, ts_ms: 10, origin, reply_to })
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

      it.scoped("readSince with maxBytes reads only the rows that fit, at least one (issue 22)", () =>
        Effect.gen(function*() {
          const { store } = yield* fresh
          yield* channel(store, "big", "aaron", "public")
          for (let i = 0; i < 4; i++) yield* store.appendMessage(msg("big", NOW_MS + i, `${i}`.repeat(10_000)))
          const read = (maxBytes: number | undefined) =>
            store.readSince({
              channel: "big",
              since: { _tag: "Seq", seq: 0 },
              cutoffMs: 0,
              limit: 500,
              ...(maxBytes === undefined ? {} : { maxBytes })
            })
          const one = yield* read(15_000)
          assert.deepStrictEqual([one.messages.length, one.more], [1, true])
          const atLeastOne = yield* read(1)
          assert.deepStrictEqual([atLeastOne.messages.length, atLeastOne.more], [1, true])
          const two = yield* read(25_000)
          assert.deepStrictEqual([two.messages.length, two.more], [2, true])
          const all = yield* read(1_000_000)
          assert.deepStrictEqual([all.messages.length, all.more], [4, false])
          const unbounded = yield* read(undefined)
          assert.deepStrictEqual([unbounded.messages.length, unbounded.more], [4, false])
          // the next page goes on after the cut
          const next = yield* store.readSince({
            channel: "big",
            since: { _tag: "Seq", seq: one.messages[0]!.seq },
            cutoffMs: 0,
            limit: 500,
            maxBytes: 15_000
          })
          assert.strictEqual(next.messages[0]!.seq, one.messages[0]!.seq + 1)
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
          yield* channel(store, "ops")
          const c = yield* store.appendMessage(msg("ops", 3, "c"))
          assert.isTrue(c > b, "a channel created again under a deleted one's name does not hand out its seqs again")
          assert.isFalse(yield* store.messageExists("ops", a), "the deleted channel's messages are gone")
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
          const { insertRawMessage, store } = yield* fresh
          yield* channel(store, "ops")
          const insert = (payload: string, ts = 10, sender = "a/b/c") =>
            insertRawMessage({ channel: "ops", sender, payload, ts_ms: ts, origin: "human", reply_to: null })
          yield* insert(JSON.stringify({ kind: "plain", text: "extra", by: "someone" }))
          yield* insert(JSON.stringify({ kind: "plain", text: 7 }))
          yield* insert(JSON.stringify({ kind: "encrypted", ciphertext: "AAEC", key_id: null, junk: 1 }))
          yield* insert(JSON.stringify({ kind: "encrypted", ciphertext: "not base64url!", key_id: null }))
          yield* insert("null")
          yield* insert(JSON.stringify(plain("x")), 11, "a/b/c/d")
          const page = yield* store.readSince({
            channel: "ops",
            since: { _tag: "Seq", seq: 0 },
            cutoffMs: 0,
            limit: 10
          })
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

    describe("appends (D-5, D-42)", () => {
      it.scoped("concurrent appends to one channel from many fibers: gap-free seqs, resolved in seq order, durable when resolved", () =>
        Effect.gen(function*() {
          const { store } = yield* fresh
          yield* channel(store, "ops")
          const n = 300
          const resolved: Array<number> = []
          const visible: Array<boolean> = []
          const seqs = yield* Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            (i) =>
              store.appendMessage(msg("ops", 1_000 + i, `m${i}`)).pipe(
                Effect.tap((seq) => Effect.sync(() => resolved.push(seq))),
                // the row is committed by the time its append resolves: a read (on any connection) sees it
                Effect.tap((seq) => Effect.map(store.messageExists("ops", seq), (found) => visible.push(found)))
              ),
            { concurrency: "unbounded" }
          )
          assert.deepStrictEqual(
            [...seqs].sort((a, b) => a - b),
            Array.from({ length: n }, (_, i) => i + 1),
            "seqs are 1..N: every append got its own, none skipped"
          )
          for (let i = 1; i < resolved.length; i++) {
            assert.isTrue(resolved[i]! > resolved[i - 1]!, "appends to one channel resolve in seq order")
          }
          assert.isTrue(visible.length === n && visible.every((v) => v), "every row was committed when it resolved")
          const page = yield* readAll(store, "ops")
          assert.deepStrictEqual(page.messages.map((m) => m.seq), Array.from({ length: n }, (_, i) => i + 1))
          // each seq carries its own row
          for (const m of page.messages) {
            const i = seqs.indexOf(m.seq)
            assert.deepStrictEqual({ text: texts([m])[0], ts_ms: m.ts_ms }, { text: `m${i}`, ts_ms: 1_000 + i })
          }
        }))

      it.scoped("appends across channels: per channel, seqs increase in resolution order and read back in order", () =>
        Effect.gen(function*() {
          const { store } = yield* fresh
          const names = ["a", "b", "c", "d"]
          yield* Effect.forEach(names, (name) => channel(store, name), { discard: true })
          const n = 400
          const resolved = new Map<string, Array<number>>(names.map((name) => [name, []]))
          const seqs = yield* Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            (i) => {
              const name = names[(i * 7 + (i >> 3)) % names.length]!
              return store.appendMessage(msg(name, 10 + i, `m${i}`)).pipe(
                Effect.tap((seq) => Effect.sync(() => resolved.get(name)!.push(seq))),
                Effect.map((seq) => ({ name, seq, text: `m${i}` }))
              )
            },
            { concurrency: "unbounded" }
          )
          for (const name of names) {
            const got = resolved.get(name)!
            for (let i = 1; i < got.length; i++) assert.isTrue(got[i]! > got[i - 1]!, `#${name} resolves in seq order`)
            if (factory.seqPerChannel) {
              assert.deepStrictEqual(got, Array.from({ length: got.length }, (_, i) => i + 1), `#${name} is 1..n`)
            }
            const page = yield* readAll(store, name)
            const mine = seqs.filter((s) => s.name === name).sort((x, y) => x.seq - y.seq)
            assert.deepStrictEqual(page.messages.map((m) => m.seq), mine.map((s) => s.seq))
            assert.deepStrictEqual(texts(page.messages), mine.map((s) => s.text), `#${name} holds exactly its messages`)
          }
        }))

      it.scoped("a failing append refuses only itself; the others commit", () =>
        Effect.gen(function*() {
          const { store } = yield* fresh
          yield* channel(store, "ops")
          const results = yield* Effect.forEach(
            ["ops", "gone", "ops", "gone", "ops"],
            (name, i) => Effect.either(store.appendMessage(msg(name, 10 + i, `m${i}`))),
            { concurrency: "unbounded" }
          )
          const ok = results.flatMap((r) => r._tag === "Right" ? [r.right] : [])
          const refused = results.flatMap((r) => r._tag === "Left" ? [r.left] : [])
          assert.strictEqual(ok.length, 3)
          assert.strictEqual(refused.length, 2)
          for (const e of refused) {
            assert.instanceOf(e, StoreError)
            assert.strictEqual(e.operation, "appendMessage")
            assert.strictEqual(e.message, "storage failure during appendMessage")
          }
          const page = yield* readAll(store, "ops", 10)
          assert.deepStrictEqual(texts(page.messages), ["m0", "m2", "m4"])
          assert.deepStrictEqual(page.messages.map((m) => m.seq), [...ok].sort((a, b) => a - b))
          if (factory.seqPerChannel) assert.deepStrictEqual([...ok].sort((a, b) => a - b), [1, 2, 3], "no gap")
        }))

      it.scoped("an append whose waiter is interrupted still commits, once", () =>
        Effect.gen(function*() {
          const { store } = yield* fresh
          yield* channel(store, "ops")
          const abandoned = yield* Effect.fork(store.appendMessage(msg("ops", 1, "abandoned")))
          yield* allSuspended([abandoned])
          yield* Fiber.interrupt(abandoned)
          const after = yield* store.appendMessage(msg("ops", 2, "after"))
          const page = yield* readAll(store, "ops", 10)
          assert.deepStrictEqual(texts(page.messages), ["abandoned", "after"])
          assert.strictEqual(page.messages[1]?.seq, after)
        }))

      it.scopedLive("closing the store refuses appends still queued instead of leaving them hanging", () =>
        Effect.gen(function*() {
          const pending = yield* Effect.scoped(Effect.gen(function*() {
            const { store } = yield* fresh
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
