import { Errors } from "@conclave/protocol"
import { errorOf, expectType, noId, op, register, type Session, startServer } from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Option } from "effect"
import * as SqliteStore from "../src/SqliteStore.js"
import { Store } from "../src/Store.js"

const notFound = (c: string) => ({ kind: "not_found", message: Errors.Messages.channelNotFound(c) })
const invite = (s: Session, channel: string, uses: number | null, expires_in_secs: number | null = null) =>
  Effect.map(
    s.request(op({ kind: "invite_create", channel, uses, expires_in_secs })),
    (f) => expectType(f, "invite_token").token
  )
const join = (s: Session, channel: string, token: string | null = null) => s.request({ type: "join", channel, token })

describe("Invite tokens", () => {
  it.scopedLive("multi-use tokens exhaust; revoked and unknown tokens fail alike; members don't consume (S-061, S-063, S-064, S-071)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      const [david, carol, evan, fay] = yield* Effect.all(
        ["david", "carol", "evan", "fay"].map((u) => register(url, u))
      )
      yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "private" }))
      const two = yield* invite(aaron, "ops", 2)
      assert.strictEqual((yield* join(david, "ops", two)).type, "joined")
      // david is a member now: joining with the token again does not consume it
      assert.strictEqual((yield* join(david, "ops", two)).type, "joined")
      assert.strictEqual((yield* join(carol, "ops", two)).type, "joined")
      assert.deepStrictEqual(errorOf(yield* join(evan, "ops", two)), notFound("ops"))
      const listed = expectType(yield* aaron.request(op({ kind: "invite_list", channel: "ops" })), "invite_list")
      assert.deepStrictEqual(listed.invites, [])

      const tok = yield* invite(aaron, "ops", null)
      assert.deepStrictEqual(noId(yield* aaron.request(op({ kind: "invite_revoke", token: tok }))), {
        type: "ack",
        detail: tok,
        seq: null
      })
      assert.deepStrictEqual(errorOf(yield* join(evan, "ops", tok)), notFound("ops"))
      assert.deepStrictEqual(errorOf(yield* join(evan, "ops", "nope")), notFound("ops"))

      // a non-admin's revoke acks but deletes nothing (S-066)
      const keep = yield* invite(aaron, "ops", 1)
      assert.strictEqual((yield* fay.request(op({ kind: "invite_revoke", token: keep }))).type, "ack")
      assert.strictEqual((yield* fay.request(op({ kind: "invite_revoke", token: "ghost" }))).type, "ack")
      assert.strictEqual((yield* join(fay, "ops", keep)).type, "joined")
    }))

  it.scopedLive("uses=0 is rejected, absurd expiries are an error not a crash, expiry is listed (S-069, D-16)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "private" }))
      assert.strictEqual(
        errorOf(yield* aaron.request(op({ kind: "invite_create", channel: "ops", uses: 0, expires_in_secs: null })))
          .kind,
        "malformed_frame"
      )
      assert.deepStrictEqual(
        errorOf(yield* aaron.request(op({ kind: "invite_create", channel: "ops", uses: 1, expires_in_secs: 1e17 }))),
        { kind: "malformed_frame", message: "invite expiry is too far in the future" }
      )
      assert.strictEqual((yield* aaron.request({ type: "ping" })).type, "pong")
      yield* invite(aaron, "ops", 3, 3600)
      const listed = expectType(yield* aaron.request(op({ kind: "invite_list", channel: "ops" })), "invite_list")
      assert.strictEqual(listed.invites.length, 1)
      assert.strictEqual(listed.invites[0]!.uses_remaining, 3)
      assert.isTrue(Date.parse(listed.invites[0]!.expires_at!) > Date.now())
    }))

  it.scopedLive("an expired token is refused and deleted (S-062)", () =>
    Effect.gen(function*() {
      const { dbFile, url } = yield* startServer({ store: "file" })
      const aaron = yield* register(url, "aaron")
      const david = yield* register(url, "david")
      yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "private" }))
      const store = yield* Layer.build(SqliteStore.layer({ filename: dbFile })).pipe(Effect.map(Context.get(Store)))
      yield* store.createInvite({
        token: "expired-token",
        channel: "ops",
        uses_remaining: null,
        expires_at: "2000-01-01T00:00:00+00:00",
        created_by: "aaron"
      })
      assert.deepStrictEqual(errorOf(yield* join(david, "ops", "expired-token")), notFound("ops"))
      assert.isTrue(Option.isNone(yield* store.getInvite("expired-token")))
    }))

  it.scopedLive("16 concurrent redeemers of a one-use token: exactly one wins (S-067); 12 unlimited joins lose no ACL rows (S-068)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "private" }))
      const racers = yield* Effect.all(
        Array.from({ length: 16 }, (_, i) => register(url, `racer${i}`)),
        { concurrency: "unbounded" }
      )
      const once = yield* invite(aaron, "ops", 1)
      const results = yield* Effect.all(racers.map((r) => join(r, "ops", once)), { concurrency: "unbounded" })
      assert.strictEqual(results.filter((r) => r.type === "joined").length, 1)
      assert.strictEqual(results.filter((r) => r.type === "error" && r.error.kind === "not_found").length, 15)

      yield* aaron.request(op({ kind: "create_channel", name: "crowd", visibility: "private" }))
      const open = yield* invite(aaron, "crowd", null)
      const joins = yield* Effect.all(racers.slice(0, 12).map((r) => join(r, "crowd", open)), {
        concurrency: "unbounded"
      })
      assert.isTrue(joins.every((j) => j.type === "joined"))
      const acl = expectType(yield* aaron.request(op({ kind: "acl_list", channel: "crowd" })), "user_list")
      assert.strictEqual(acl.users.length, 13)
    }))

  it.scopedLive("invites follow a rename and die with their channel (S-072)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      const david = yield* register(url, "david")
      yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "private" }))
      const tok = yield* invite(aaron, "ops", null)
      yield* aaron.request(op({ kind: "rename_channel", name: "ops", new_name: "operations" }))
      const listed = expectType(yield* aaron.request(op({ kind: "invite_list", channel: "operations" })), "invite_list")
      assert.deepStrictEqual(listed.invites.map((i) => i.token), [tok])
      yield* aaron.request(op({ kind: "delete_channel", name: "operations" }))
      yield* aaron.request(op({ kind: "create_channel", name: "operations", visibility: "private" }))
      assert.deepStrictEqual(errorOf(yield* join(david, "operations", tok)), notFound("operations"))
    }))
})
