import { Errors } from "@conclave/protocol"
import { errorOf, expectType, noId, op, register, type Session, startServer } from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const notFound = (c: string) => ({ kind: "not_found", message: Errors.Messages.channelNotFound(c) })
const create = (s: Session, name: string, visibility: "public" | "unlisted" | "private") =>
  Effect.map(s.request(op({ kind: "create_channel", name, visibility })), noId)
const join = (s: Session, channel: string, token: string | null = null) => s.request({ type: "join", channel, token })
const names = (s: Session) =>
  Effect.map(s.request({ type: "list_channels" }), (f) => expectType(f, "channel_list").channels)

describe("Channels, visibility and ACL", () => {
  it.scopedLive("private channel: deny, invite, redeem, spent (S-047, S-051, D-16)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      const david = yield* register(url, "david")
      const carol = yield* register(url, "carol")
      assert.deepStrictEqual(yield* create(aaron, "ops", "private"), { type: "ack", detail: "ops", seq: null })
      assert.deepStrictEqual(errorOf(yield* join(david, "ops")), notFound("ops"))
      assert.deepStrictEqual(errorOf(yield* join(david, "ghost")), notFound("ghost"))
      assert.deepStrictEqual(yield* names(david), [])
      const token = expectType(
        yield* aaron.request(op({ kind: "invite_create", channel: "ops", uses: 1, expires_in_secs: null })),
        "invite_token"
      ).token
      assert.match(token, /^[A-Za-z0-9_-]{32}$/)
      assert.deepStrictEqual(noId(yield* join(david, "ops", token)), { type: "joined", channel: "ops" })
      assert.deepStrictEqual(errorOf(yield* join(carol, "ops", token)), notFound("ops"))
      const who = expectType(yield* aaron.request({ type: "who", channel: "ops" }), "presence")
      assert.deepStrictEqual(who.sessions, [david.path])
      // david is now a member: he sees it listed and rejoins without a token
      assert.deepStrictEqual(yield* names(david), [{ name: "ops", visibility: "private", member: true }])
      assert.strictEqual((yield* join(david, "ops")).type, "joined")
    }))

  it.scopedLive("acl_add grants private access; discovery hides private names; admins see all (S-048, S-049, S-052)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ admins: [{ user: "root", pin: null }] })
      const aaron = yield* register(url, "aaron")
      yield* create(aaron, "lobby", "public")
      yield* create(aaron, "ops", "private")
      assert.deepStrictEqual(noId(yield* aaron.request(op({ kind: "acl_add", channel: "ops", user: "david" }))), {
        type: "ack",
        detail: "david",
        seq: null
      })
      const david = yield* register(url, "david")
      assert.strictEqual((yield* join(david, "ops")).type, "joined")
      const bob = yield* register(url, "bob")
      assert.deepStrictEqual(yield* names(bob), [{ name: "lobby", visibility: "public", member: false }])
      assert.sameDeepMembers([...(yield* names(aaron))], [
        { name: "lobby", visibility: "public", member: true },
        { name: "ops", visibility: "private", member: true }
      ])
      const root = yield* register(url, "root")
      assert.sameMembers((yield* names(root)).map((c) => c.name), ["lobby", "ops"])
      // acl_add of a bad name is refused before any write
      assert.strictEqual(
        errorOf(yield* aaron.request(op({ kind: "acl_add", channel: "ops", user: "a/b" }))).kind,
        "malformed_frame"
      )
    }))

  it.scopedLive("who hides non-public channels and is open on public ones (S-053, S-054)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      const david = yield* register(url, "david")
      yield* create(aaron, "ops", "private")
      yield* create(aaron, "lobby", "public")
      assert.deepStrictEqual(errorOf(yield* david.request({ type: "who", channel: "ops" })), notFound("ops"))
      assert.deepStrictEqual(errorOf(yield* david.request({ type: "who", channel: "ghost" })), notFound("ghost"))
      yield* join(david, "lobby")
      const presence = expectType(yield* david.request({ type: "who", channel: "lobby" }), "presence")
      assert.deepStrictEqual(presence.sessions, [david.path])
      assert.strictEqual(presence.channel, "lobby")
    }))

  it.scopedLive("unlisted joins record membership (D-17); joins are idempotent (S-056); leave (S-059)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      const david = yield* register(url, "david")
      yield* create(aaron, "hidden", "unlisted")
      assert.deepStrictEqual(yield* names(david), [])
      assert.strictEqual((yield* join(david, "hidden")).type, "joined")
      assert.strictEqual((yield* join(david, "hidden")).type, "joined")
      assert.deepStrictEqual(yield* names(david), [{ name: "hidden", visibility: "unlisted", member: true }])
      const who = expectType(yield* david.request({ type: "who", channel: "hidden" }), "presence")
      assert.deepStrictEqual(who.sessions, [david.path])
      assert.deepStrictEqual(noId(yield* david.request({ type: "leave", channel: "hidden" })), {
        type: "ack",
        detail: "hidden",
        seq: null
      })
      assert.deepStrictEqual(noId(yield* david.request({ type: "leave", channel: "never" })), {
        type: "ack",
        detail: "never",
        seq: null
      })
      yield* join(aaron, "hidden")
      yield* aaron.request({ type: "channel_msg", channel: "hidden", payload: { kind: "plain", text: "x" } })
      yield* david.expectNothingQueued()
      const all = expectType(yield* david.request({ type: "who", channel: null }), "presence")
      assert.sameDeepMembers([...all.sessions], [aaron.path, david.path])
    }))

  it.scopedLive("duplicate names and renames onto taken names are conflicts; bad names are refused (S-058, D-8)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      yield* create(aaron, "ops", "private")
      yield* create(aaron, "dev", "public")
      assert.deepStrictEqual(
        errorOf(yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "public" }))),
        {
          kind: "conflict",
          message: "channel `ops` already exists"
        }
      )
      assert.deepStrictEqual(
        errorOf(yield* aaron.request(op({ kind: "rename_channel", name: "dev", new_name: "ops" }))),
        { kind: "conflict", message: "channel `ops` already exists" }
      )
      assert.sameDeepMembers([...(yield* names(aaron))], [
        { name: "dev", visibility: "public", member: true },
        { name: "ops", visibility: "private", member: true }
      ])
      for (const bad of ["", "a/b", "with space", "x".repeat(65)]) {
        assert.strictEqual(
          errorOf(yield* aaron.request(op({ kind: "create_channel", name: bad, visibility: "public" }))).kind,
          "malformed_frame"
        )
      }
    }))

  it.scopedLive("admin ops: uniform not_found when hidden, unauthorized when visible, allowed for creator/admin (S-099)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ admins: [{ user: "root", pin: null }] })
      const aaron = yield* register(url, "aaron")
      const mallory = yield* register(url, "mallory")
      const root = yield* register(url, "root")
      yield* create(aaron, "ops", "private")
      yield* create(aaron, "lobby", "public")
      for (
        const o of [
          { kind: "delete_channel", name: "ops" },
          { kind: "invite_create", channel: "ops", uses: null, expires_in_secs: null },
          { kind: "acl_list", channel: "ops" },
          { kind: "ban", channel: "ops", user: "x" }
        ]
      ) {
        assert.deepStrictEqual(errorOf(yield* mallory.request(op(o))), notFound("ops"))
      }
      assert.deepStrictEqual(errorOf(yield* mallory.request(op({ kind: "delete_channel", name: "lobby" }))), {
        kind: "unauthorized",
        message: Errors.Messages.adminRequired
      })
      assert.deepStrictEqual(errorOf(yield* mallory.request(op({ kind: "user_remove", username: "aaron" }))), {
        kind: "unauthorized",
        message: Errors.Messages.adminRequired
      })
      assert.deepStrictEqual(
        errorOf(yield* mallory.request(op({ kind: "delete_channel", name: "ghost" }))),
        notFound("ghost")
      )
      assert.strictEqual((yield* root.request(op({ kind: "acl_list", channel: "ops" }))).type, "user_list")
      assert.strictEqual((yield* aaron.request(op({ kind: "delete_channel", name: "lobby" }))).type, "ack")
      assert.deepStrictEqual((yield* names(aaron)).map((c) => c.name), ["ops"])
    }))
})
