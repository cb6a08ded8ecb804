import { Errors, type Frames } from "@conclave/protocol"
import {
  connect,
  dial,
  errorOf,
  expectType,
  handshake,
  newIdentity,
  noId,
  op,
  plain,
  reconnect,
  register,
  type Session,
  startServer,
  tempDir
} from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"

const join = (s: Session, channel: string) => s.request({ type: "join", channel, token: null })
const notice = (
  channel: string,
  reason: Frames.UnsubscribeReason,
  new_name: string | null = null
): Frames.ServerFrame => ({ type: "unsubscribed", channel, reason, new_name })
const killedWith = (s: Session, text: string) =>
  Effect.gen(function*() {
    const e = errorOf(yield* s.next())
    assert.strictEqual(e.kind, "unauthorized")
    assert.include(e.message!, text)
    yield* s.closed
  })

describe("Presence, revocation and moderation", () => {
  it.scopedLive("a newer session on the same path supersedes the old one, which loses its subscriptions", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const first = yield* register(url, "aaron", "ws", "razel")
      yield* first.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
      yield* join(first, "lobby")
      const second = yield* reconnect(url, first.identity, "razel")
      yield* killedWith(first, "superseded")
      const who = expectType(yield* second.request({ type: "who", channel: "lobby" }), "presence")
      assert.deepStrictEqual(who.sessions, [])
      const all = expectType(yield* second.request({ type: "who", channel: null }), "presence")
      assert.deepStrictEqual(all.sessions, [second.path])
    }))

  it.scopedLive("machine_add offers a key its holder accepts by registering (possession, issue 22); machine_remove drops its sessions after the Ack (S-034, S-089)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const s1 = yield* register(url, "aaron", "workstation", "s1")
      const s2 = yield* reconnect(url, s1.identity, "s2")
      const laptop = newIdentity()
      assert.deepStrictEqual(
        noId(yield* s1.request(op({ kind: "machine_add", name: "laptop", pubkey: laptop.pubkey }))),
        {
          type: "ack",
          detail: "laptop",
          seq: null
        }
      )
      assert.deepStrictEqual(
        errorOf(yield* s1.request(op({ kind: "machine_add", name: "laptop", pubkey: newIdentity().pubkey }))),
        { kind: "conflict", message: "machine `laptop` already exists" }
      )
      assert.strictEqual(
        errorOf(yield* s1.request(op({ kind: "machine_add", name: "other", pubkey: laptop.pubkey }))).kind,
        "conflict"
      )
      assert.strictEqual(
        errorOf(yield* s1.request(op({ kind: "machine_add", name: "short", pubkey: "AAAA" }))).kind,
        "malformed_frame"
      )
      // an offer grants nothing to plain auth: the key's holder accepts it by registering as
      // aaron/laptop, signing the server's challenge (issue 22)
      const plainAuth = yield* dial(url)
      assert.deepStrictEqual(errorOf(yield* handshake(plainAuth, { identity: laptop, handle: "onthego" })), {
        kind: "unauthorized",
        message:
          "unknown machine key: it is offered as machine `laptop` of `aaron`; accept with `conclave register --username aaron --machine laptop` on the machine that holds it"
      })
      // the offer is for aaron/laptop only
      const wrongName = yield* dial(url)
      assert.strictEqual(
        errorOf(
          yield* handshake(wrongName, {
            identity: laptop,
            handle: "x",
            register: { username: "aaron", machine: "desk" }
          })
        ).message,
        "username `aaron` is already taken"
      )
      const accepted = yield* connect(url, {
        identity: laptop,
        handle: "onthego",
        register: { username: "aaron", machine: "laptop" }
      })
      assert.deepStrictEqual(accepted.path, { user: "aaron", machine: "laptop", session: "onthego" })
      yield* accepted.close
      const onthego = yield* connect(url, { identity: laptop, handle: "onthego" })
      assert.deepStrictEqual(onthego.path, { user: "aaron", machine: "laptop", session: "onthego" })
      const impostor = yield* dial(url)
      assert.strictEqual(
        errorOf(yield* handshake(impostor, { identity: newIdentity(), handle: "x" })).kind,
        "unauthorized"
      )
      const machines = expectType(yield* s1.request({ type: "list_machines" }), "machine_list")
      assert.sameMembers(machines.machines.map((m) => m.name), ["workstation", "laptop"])

      const ack = yield* s1.request(op({ kind: "machine_remove", name: "workstation" }))
      assert.deepStrictEqual(noId(ack), { type: "ack", detail: "workstation", seq: null })
      yield* killedWith(s1, "machine key revoked")
      yield* killedWith(s2, "machine key revoked")
      const who = expectType(yield* onthego.request({ type: "who", channel: null }), "presence")
      assert.deepStrictEqual(who.sessions, [onthego.path])
      const again = yield* dial(url)
      assert.strictEqual(
        errorOf(yield* handshake(again, { identity: s1.identity, handle: "s1" })).message,
        "unknown machine key"
      )
    }))

  it.scopedLive("kick by path and by user unsubscribes with a notice; the connection stays (S-091, D-7)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      yield* aaron.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
      const sa = yield* register(url, "david", "wd", "sa")
      const sb = yield* reconnect(url, sa.identity, "sb")
      yield* join(sa, "lobby")
      yield* join(sb, "lobby")
      expectType(yield* aaron.request(op({ kind: "kick", channel: "lobby", target: "david/wd/sb" })), "ack")
      assert.deepStrictEqual(yield* sb.next(), notice("lobby", "kicked"))
      yield* sa.expectNothingQueued()
      const who = expectType(yield* aaron.request({ type: "who", channel: "lobby" }), "presence")
      assert.deepStrictEqual(who.sessions, [sa.path])
      expectType(yield* aaron.request(op({ kind: "kick", channel: "lobby", target: "david" })), "ack")
      assert.deepStrictEqual(yield* sa.next(), notice("lobby", "kicked"))
      expectType(yield* join(sb, "lobby"), "joined")
    }))

  it.scopedLive("ban drops and blocks rejoin even on public; unban grants no membership; acl_add lifts a ban (S-092, S-093, S-098)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      const david = yield* register(url, "david")
      const mallory = yield* register(url, "mallory")
      yield* aaron.request(op({ kind: "create_channel", name: "lobby", visibility: "public" }))
      yield* join(david, "lobby")
      expectType(yield* aaron.request(op({ kind: "ban", channel: "lobby", user: "david" })), "ack")
      assert.deepStrictEqual(yield* david.next(), notice("lobby", "banned"))
      assert.deepStrictEqual(errorOf(yield* join(david, "lobby")), {
        kind: "unauthorized",
        message: Errors.Messages.banned("lobby")
      })
      assert.deepStrictEqual(
        expectType(yield* aaron.request(op({ kind: "ban_list", channel: "lobby" })), "user_list").users,
        [
          "david"
        ]
      )
      assert.deepStrictEqual(
        errorOf(yield* mallory.request(op({ kind: "ban_list", channel: "lobby" }))).kind,
        "unauthorized"
      )
      assert.deepStrictEqual(
        errorOf(yield* mallory.request(op({ kind: "unban", channel: "lobby", user: "david" }))).kind,
        "unauthorized"
      )
      expectType(yield* aaron.request(op({ kind: "unban", channel: "lobby", user: "david" })), "ack")
      assert.deepStrictEqual(
        expectType(yield* aaron.request(op({ kind: "ban_list", channel: "lobby" })), "user_list").users,
        []
      )
      assert.deepStrictEqual(
        expectType(yield* aaron.request(op({ kind: "acl_list", channel: "lobby" })), "user_list").users,
        [
          "aaron"
        ]
      )
      expectType(yield* join(david, "lobby"), "joined")

      // private channel: ban, then acl_add lifts it; acl_remove unsubscribes with a notice
      yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "private" }))
      yield* aaron.request(op({ kind: "ban", channel: "ops", user: "david" }))
      yield* aaron.request(op({ kind: "acl_add", channel: "ops", user: "david" }))
      expectType(yield* join(david, "ops"), "joined")
      expectType(yield* aaron.request(op({ kind: "acl_remove", channel: "ops", user: "david" })), "ack")
      assert.deepStrictEqual(yield* david.next(), notice("ops", "removed"))
      assert.deepStrictEqual(
        expectType(yield* aaron.request(op({ kind: "acl_list", channel: "ops" })), "user_list").users,
        [
          "aaron"
        ]
      )
    }))

  it.scopedLive("rename moves live subscriptions and says so; delete drops them with a notice (D-7)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer()
      const aaron = yield* register(url, "aaron")
      const david = yield* register(url, "david")
      yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "public" }))
      yield* join(aaron, "ops")
      yield* join(david, "ops")
      yield* aaron.request({ type: "channel_msg", channel: "ops", payload: plain("before") })
      expectType(yield* david.next(), "channel_msg")
      assert.deepStrictEqual(
        noId(yield* aaron.request(op({ kind: "rename_channel", name: "ops", new_name: "ops-2" }))),
        {
          type: "ack",
          detail: "ops-2",
          seq: null
        }
      )
      assert.deepStrictEqual(yield* david.next(), notice("ops", "renamed", "ops-2"))
      assert.deepStrictEqual(yield* aaron.next(), notice("ops", "renamed", "ops-2"))
      expectType(yield* aaron.request({ type: "channel_msg", channel: "ops-2", payload: plain("after") }), "ack")
      assert.strictEqual(expectType(yield* david.next(), "channel_msg").channel, "ops-2")
      const history = expectType(
        yield* david.request({ type: "read_since", channel: "ops-2", since_seq: 0 }),
        "history"
      )
      assert.deepStrictEqual(history.messages.map((m) => (m.payload as { text: string }).text), ["before", "after"])
      expectType(yield* aaron.request(op({ kind: "delete_channel", name: "ops-2" })), "ack")
      assert.deepStrictEqual(yield* david.next(), notice("ops-2", "deleted"))
      assert.deepStrictEqual(
        errorOf(yield* david.request({ type: "read_since", channel: "ops-2", since_seq: 0 })).kind,
        "unauthorized"
      )
    }))

  it.scopedLive("user_remove purges access and drops live sessions, the admin's own last (S-097)", () =>
    Effect.gen(function*() {
      const { url } = yield* startServer({ admins: [{ user: "root", pin: null }] })
      const root = yield* register(url, "root")
      const aaron = yield* register(url, "aaron")
      const victim = yield* register(url, "victim")
      const watcher = yield* register(url, "watcher")
      yield* aaron.request(op({ kind: "create_channel", name: "lobby", visibility: "private" }))
      yield* aaron.request(op({ kind: "acl_add", channel: "lobby", user: "victim" }))
      yield* victim.request(op({ kind: "create_channel", name: "victim-ops", visibility: "public" }))
      yield* join(watcher, "victim-ops")
      assert.deepStrictEqual(noId(yield* root.request(op({ kind: "user_remove", username: "victim" }))), {
        type: "ack",
        detail: "victim",
        seq: null
      })
      yield* killedWith(victim, "user removed from this server")
      assert.deepStrictEqual(yield* watcher.next(), notice("victim-ops", "deleted"))
      const acl = expectType(yield* aaron.request(op({ kind: "acl_list", channel: "lobby" })), "user_list")
      assert.deepStrictEqual(acl.users, ["aaron"])
      const back = yield* register(url, "victim")
      assert.deepStrictEqual(errorOf(yield* join(back, "lobby")).kind, "not_found")
      assert.deepStrictEqual(expectType(yield* back.request({ type: "list_channels" }), "channel_list").channels, [])
      // removing a user that does not exist still acks; an admin may remove themselves
      expectType(yield* root.request(op({ kind: "user_remove", username: "nobody" })), "ack")
      expectType(yield* root.request(op({ kind: "user_remove", username: "root" })), "ack")
      yield* killedWith(root, "user removed")
    }))

  it.scopedLive("bans survive a restart (S-094)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const bob = newIdentity()
      const firstRun = Effect.gen(function*() {
        const { url } = yield* startServer({ store: "file" }, dir)
        const aaron = yield* register(url, "aaron")
        yield* connect(url, { identity: bob, handle: "s", register: { username: "bob", machine: "m" } })
        yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "public" }))
        expectType(yield* aaron.request(op({ kind: "ban", channel: "ops", user: "bob" })), "ack")
      })
      yield* Effect.scoped(firstRun)
      const { url } = yield* startServer({ store: "file" }, dir)
      const again = yield* connect(url, { identity: bob, handle: "s" })
      assert.deepStrictEqual(errorOf(yield* join(again, "ops")), {
        kind: "unauthorized",
        message: Errors.Messages.banned("ops")
      })
    }))
})
