import { Tools } from "@conclave/bridge"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, TestClock } from "effect"
import {
  DAVID,
  delivery,
  fakeConnection,
  type Harness,
  harness,
  isDone,
  ME,
  S1,
  S2,
  settle,
  startCall,
  toolNames,
  whisperFrame
} from "./Harness.js"

const ADMIN_14 = [
  "create_channel",
  "delete_channel",
  "rename_channel",
  "set_visibility",
  "acl_add",
  "acl_remove",
  "acl_list",
  "invite_create",
  "invite_revoke",
  "invite_list",
  "kick",
  "ban",
  "unban",
  "ban_list"
]

const joinedReply = (channel: string) => ({ type: "joined" as const, channel })
const ack = (detail: string | null = null, seq: number | null = null) => ({ type: "ack" as const, detail, seq })

/** A harness with S1 up and `channels` joined (confirmed). */
const upAndJoined = (channels: ReadonlyArray<string>, options: Parameters<typeof harness>[0] = {}, admin = false) =>
  Effect.gen(function*() {
    const h = yield* harness(options)
    const fake = fakeConnection({
      admin,
      auto: (f) => (f.type === "join" ? joinedReply(f.channel) : undefined)
    })
    yield* h.d.linkUp(S1, fake.connection, "razel")
    for (const c of channels) {
      const r = yield* h.d.callTool("join_channel", { channel: c })
      assert.strictEqual(r.text, `joined ${c}`)
    }
    return { h, fake }
  })

describe("Dispatcher: catalogue", () => {
  it("has the 23 tools of SPEC §4.7 plus whoami and inbox", () => {
    assert.strictEqual(Tools.ALL.length, 25)
    assert.sameMembers(Tools.ADMIN_TOOLS as Array<string>, ADMIN_14)
    for (const t of Tools.ALL) {
      assert.strictEqual(t.inputSchema.type, "object")
      assert.isAbove(t.description.length, 20)
      for (const r of t.inputSchema.required ?? []) assert.property(t.inputSchema.properties, r)
      if ("server" in t.inputSchema.properties) {
        assert.notInclude(t.inputSchema.required ?? [], "server")
      }
    }
  })
})

describe("Dispatcher: policy (L)", () => {
  it.scoped("S-126 notify is the default for channels and whispers", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops"])
      yield* h.d.inbound(S1, delivery("ops", 1, "hi"))
      yield* h.d.inbound(S1, whisperFrame("psst"))
      assert.strictEqual(h.injected.length, 2)
      for (const n of h.injected) assert.include(n.content, "Permission level notify")
    }))

  it.scoped("S-127 send below converse is refused at call time, nothing sent", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined(["ops"])
      const before = fake.sent.length
      const r = yield* h.d.callTool("send_channel", { channel: "ops", text: "hi" })
      assert.isTrue(r.isError)
      assert.strictEqual(r.text, `permission denied: \`ops\` on \`${S1}\` is below \`converse\``)
      assert.strictEqual(fake.sent.length, before)
    }))

  it.scoped("S-128 send at converse is deferred and confirmed", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined(["ops"], {
        policy: { default_permission: "notify", overrides: [{ server: S1, channel: "ops", level: "converse" }] }
      })
      const fiber = yield* startCall(h, "send_channel", { channel: "ops", text: "deploying", reply_to: 3 })
      assert.isFalse(yield* isDone(fiber))
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, {
        type: "channel_msg",
        channel: "ops",
        payload: { kind: "plain", text: "deploying" },
        reply_to: 3
      })
      yield* fake.answer(ack(null, 9))
      const r = yield* Fiber.join(fiber)
      assert.deepStrictEqual(r, { text: "sent to ops", isError: false })
    }))

  it.scoped("S-129 live set_perm: notify, converse, then mute drops", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops"])
      yield* h.d.inbound(S1, delivery("ops", 1, "a", "human"))
      const r1 = yield* h.d.callTool("set_perm", { channel: "ops", level: "converse" })
      assert.strictEqual(r1.text, "permission updated")
      yield* h.d.inbound(S1, delivery("ops", 2, "b", "human"))
      yield* h.d.callTool("set_perm", { channel: "ops", level: "mute" })
      yield* h.d.inbound(S1, delivery("ops", 3, "c", "human"))
      assert.strictEqual(h.injected.length, 2)
      assert.include(h.injected[0]!.content, "level notify")
      assert.include(h.injected[1]!.content, "level converse")
    }))

  it.scoped("set_perm without a scope sets the default; whisper: true wins over channel", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops"])
      yield* h.d.callTool("set_perm", { level: "act" })
      yield* h.d.inbound(S1, delivery("ops", 1, "a", "human"))
      assert.include(h.injected[0]!.content, "level act")
      yield* h.d.callTool("set_perm", { channel: "ops", whisper: true, level: "mute" })
      yield* h.d.inbound(S1, whisperFrame("dropped"))
      yield* h.d.inbound(S1, delivery("ops", 2, "b", "human"))
      assert.strictEqual(h.injected.length, 2)
      assert.include(h.injected[1]!.content, "level act")
    }))

  it.scoped("S-131 emit tools offered only when a joined channel may emit", () =>
    Effect.gen(function*() {
      const h = yield* harness({
        policy: { default_permission: "notify", overrides: [{ server: S1, channel: "ops", level: "converse" }] }
      })
      const fake = fakeConnection({ auto: (f) => (f.type === "join" ? joinedReply(f.channel) : undefined) })
      yield* h.d.linkUp(S1, fake.connection, "razel")
      let names = yield* toolNames(h)
      assert.include(names, "join_channel")
      assert.notInclude(names, "send_channel")
      assert.notInclude(names, "whisper")
      yield* h.d.callTool("join_channel", { channel: "ops" })
      names = yield* toolNames(h)
      assert.include(names, "send_channel")
      // D-25: whisper follows the whisper scope, not the channels
      assert.notInclude(names, "whisper")
      yield* h.d.callTool("set_perm", { whisper: true, level: "converse" })
      assert.include(yield* toolNames(h), "whisper")
    }))

  it.scoped("D-25 whisper offered by the whisper scope alone, even with nothing joined", () =>
    Effect.gen(function*() {
      const h = yield* harness({ policy: { default_permission: "converse", overrides: [] } })
      const names = yield* toolNames(h)
      assert.include(names, "whisper")
      assert.notInclude(names, "send_channel")
    }))

  it.scoped("S-132 whisper uses its own scope", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined(["ops"], {
        policy: { default_permission: "notify", overrides: [{ server: S1, channel: "ops", level: "converse" }] }
      })
      const r = yield* h.d.callTool("whisper", { target: "a/b/c", text: "hi" })
      assert.isTrue(r.isError)
      assert.strictEqual(r.text, `permission denied: whispers on \`${S1}\` are below \`converse\``)
      yield* h.d.callTool("set_perm", { whisper: true, level: "converse" })
      const fiber = yield* startCall(h, "whisper", { target: "a/b/c", text: "hi" })
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, {
        type: "whisper",
        target: { user: "a", machine: "b", session: "c" },
        payload: { kind: "plain", text: "hi" }
      })
      yield* fake.answer(ack())
      assert.deepStrictEqual(yield* Fiber.join(fiber), { text: "whisper sent", isError: false })
    }))

  it.scoped("S-133 whisper target must be a path", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined([], { policy: { default_permission: "converse", overrides: [] } })
      for (const target of ["not-a-path", "a/b", "a//c", "a/b/c/d"]) {
        const r = yield* h.d.callTool("whisper", { target, text: "x" })
        assert.isTrue(r.isError)
        assert.strictEqual(r.text, "`target` must be a `user/machine/session` path")
      }
    }))
})

describe("Dispatcher: correlation, joins, admin gating, list_changed (M)", () => {
  it.scoped("S-134 admin tools appear and disappear with server_info", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined([])
      const has = (names: ReadonlyArray<string>) => ADMIN_14.filter((t) => names.includes(t)).length
      assert.strictEqual(has(yield* toolNames(h)), 0)
      yield* h.d.inbound(S1, { type: "server_info", admin: true })
      assert.strictEqual(has(yield* toolNames(h)), 14)
      yield* h.d.inbound(S1, { type: "server_info", admin: false })
      assert.strictEqual(has(yield* toolNames(h)), 0)
      assert.strictEqual(h.listChanged.count, 2)
    }))

  it.scoped("S-136 join_channel defers until joined; perm applies only then (D-25)", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const fake = fakeConnection()
      yield* h.d.linkUp(S1, fake.connection, "razel")
      const fiber = yield* startCall(h, "join_channel", { channel: "ops", perm: "converse" })
      assert.isFalse(yield* isDone(fiber))
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, { type: "join", channel: "ops", token: null })
      assert.notInclude(yield* toolNames(h), "send_channel")
      assert.deepStrictEqual(yield* h.d.joined(S1), [])
      yield* fake.answer({ type: "joined", channel: "ops" })
      assert.deepStrictEqual(yield* Fiber.join(fiber), { text: "joined ops", isError: false })
      assert.deepStrictEqual(yield* h.d.joined(S1), ["ops"])
      assert.include(yield* toolNames(h), "send_channel")
      assert.strictEqual(h.listChanged.count, 1)
    }))

  it.scoped("G-35 a rejected join applies no perm and joins nothing", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const fake = fakeConnection()
      yield* h.d.linkUp(S1, fake.connection, "razel")
      const fiber = yield* startCall(h, "join_channel", { channel: "ops", perm: "converse", token: "t" })
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, { type: "join", channel: "ops", token: "t" })
      yield* fake.reject({ kind: "not_found", message: "channel `ops` not found" })
      const r = yield* Fiber.join(fiber)
      assert.deepStrictEqual(r, { text: "not found: channel `ops` not found", isError: true })
      assert.deepStrictEqual(yield* h.d.joined(S1), [])
      yield* h.d.inbound(S1, delivery("ops", 1, "x", "human"))
      assert.include(h.injected[0]!.content, "level notify")
    }))

  it.scoped("S-137 replies are correlated per request, not by order", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined([], { policy: { default_permission: "converse", overrides: [] } })
      const f1 = yield* startCall(h, "whisper", { target: "ghost/box/sess", text: "x" })
      const f2 = yield* startCall(h, "who", {})
      yield* fake.reject({ kind: "not_found", message: "session `ghost/box/sess` is not online" })
      yield* fake.answer({ type: "presence", channel: null, sessions: [] })
      assert.isTrue((yield* Fiber.join(f1)).isError)
      assert.deepStrictEqual(yield* Fiber.join(f2), { text: "server-wide: nobody online", isError: false })
    }))

  it.scoped("S-138 link drop fails pending calls", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined([])
      const fiber = yield* startCall(h, "who", {})
      yield* h.d.linkDown(S1)
      assert.deepStrictEqual(yield* Fiber.join(fiber), {
        text: `connection to \`${S1}\` lost; retry`,
        isError: true
      })
    }))

  it.scoped("D-26 a call on a down link waits at most 10 s", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const fiber = yield* startCall(h, "who", {})
      yield* TestClock.adjust("9 seconds")
      assert.isFalse(yield* isDone(fiber))
      yield* TestClock.adjust("2 seconds")
      assert.deepStrictEqual(yield* Fiber.join(fiber), {
        text: `connection to \`${S1}\` lost; retry`,
        isError: true
      })
    }))

  it.scoped("D-26 a call on a down link proceeds when the link comes up in time", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const fiber = yield* startCall(h, "who", { channel: "ops" })
      yield* TestClock.adjust("3 seconds")
      const fake = fakeConnection({ auto: () => ({ type: "presence", channel: "ops", sessions: [ME, DAVID] }) })
      yield* h.d.linkUp(S1, fake.connection, "razel")
      assert.deepStrictEqual(yield* Fiber.join(fiber), {
        text: "#ops: aaron/workstation/razel, david/desktop/main",
        isError: false
      })
    }))

  it.scoped("S-139 resubscribe on link up is silent; D-22 catch-up reads from the last seen seq", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops"], {
        policy: { default_permission: "converse", overrides: [] }
      })
      yield* h.d.inbound(S1, delivery("ops", 5, "seen"))
      yield* h.d.linkDown(S1)
      const injectedBefore = h.injected.length
      const fake2 = fakeConnection({
        auto: (f) => {
          if (f.type === "join") return joinedReply(f.channel)
          if (f.type === "read_since") {
            return {
              type: "history",
              channel: "ops",
              more: false,
              messages: [5, 6, 7].map((seq) => ({
                seq,
                from: DAVID,
                ts_ms: 1000 + seq,
                payload: { kind: "plain" as const, text: `m${seq}` },
                origin: "agent" as const,
                reply_to: null
              }))
            }
          }
          return undefined
        }
      })
      yield* h.d.linkUp(S1, fake2.connection, "razel")
      yield* settle(() => h.injected.length >= injectedBefore + 3, "catch-up injections")
      assert.deepStrictEqual(fake2.sent.map((s) => s.frame), [
        { type: "join", channel: "ops", token: null },
        { type: "read_since", channel: "ops", since_seq: 5, since_ms: null, before_seq: null }
      ])
      const fresh = h.injected.slice(injectedBefore)
      assert.include(fresh[0]!.content, "Reconnected to")
      assert.include(fresh[1]!.content, `seq="6"`)
      assert.include(fresh[1]!.content, `catchup="true"`)
      assert.strictEqual(fresh[1]!.meta["catchup"], "true")
      assert.include(fresh[2]!.content, "m7")
      // a live duplicate of an injected seq is dropped
      yield* h.d.inbound(S1, delivery("ops", 7, "m7"))
      assert.strictEqual(h.injected.length, injectedBefore + 3)
    }))

  it.scoped("D-22 more than 100 missed: newest 100 injected, one notice, catch_up reads the rest", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops"])
      yield* h.d.inbound(S1, delivery("ops", 10, "seen", "human"))
      yield* h.d.linkDown(S1)
      const before = h.injected.length
      const rows = Array.from({ length: 130 }, (_, i) => ({
        seq: 11 + i,
        from: DAVID,
        ts_ms: 0,
        payload: { kind: "plain" as const, text: `m${11 + i}` },
        origin: "human" as const,
        reply_to: null
      }))
      const fake2 = fakeConnection({
        auto: (f) => {
          if (f.type === "join") return joinedReply(f.channel)
          if (f.type === "read_since" && f.since_seq === 10) {
            return { type: "history", channel: "ops", more: false, messages: rows }
          }
          if (f.type === "read_since") {
            return { type: "history", channel: "ops", more: false, messages: rows.slice(0, 30) }
          }
          return undefined
        }
      })
      yield* h.d.linkUp(S1, fake2.connection, "razel")
      yield* settle(() => h.injected.length >= before + 102, "catch-up")
      const fresh = h.injected.slice(before)
      const notice = fresh.find((n) => n.meta["kind"] === "catchup")!
      assert.include(notice.content, "30 older message(s)")
      assert.include(notice.content, "catch_up")
      const msgs = fresh.filter((n) => n.meta["kind"] === "channel")
      assert.strictEqual(msgs.length, 100)
      assert.strictEqual(msgs[0]!.meta["seq"], "41")
      const r = yield* h.d.callTool("catch_up", { channel: "ops" })
      assert.include(r.text, "m11")
      assert.strictEqual(fake2.sent.at(-1)!.frame.type, "read_since")
      assert.deepStrictEqual(fake2.sent.at(-1)!.frame, {
        type: "read_since",
        channel: "ops",
        since_seq: 10,
        since_ms: null,
        before_seq: null
      })
    }))

  it.scoped("D-22 live deliveries during catch-up are not lost or duplicated", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops"])
      yield* h.d.inbound(S1, delivery("ops", 1, "seen", "human"))
      yield* h.d.linkDown(S1)
      const fake2 = fakeConnection({ auto: (f) => (f.type === "join" ? joinedReply(f.channel) : undefined) })
      yield* h.d.linkUp(S1, fake2.connection, "razel")
      yield* settle(() => fake2.unanswered().length === 1, "read_since sent")
      const before = h.injected.length
      yield* h.d.inbound(S1, delivery("ops", 4, "live", "human"))
      assert.strictEqual(h.injected.length, before, "buffered while catching up")
      yield* fake2.answer({
        type: "history",
        channel: "ops",
        more: false,
        messages: [2, 3, 4].map((seq) => ({
          seq,
          from: DAVID,
          ts_ms: 0,
          payload: { kind: "plain" as const, text: `m${seq}` },
          origin: "human" as const,
          reply_to: null
        }))
      })
      yield* settle(() => h.injected.length === before + 3, "flush")
      const seqs = h.injected.slice(before).map((n) => [n.meta["seq"], n.meta["catchup"]])
      assert.deepStrictEqual(seqs, [["2", "true"], ["3", "true"], ["4", undefined]])
    }))

  it.scoped("a failed re-join drops the channel with a notice", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops"], {
        policy: { default_permission: "converse", overrides: [] }
      })
      yield* h.d.linkDown(S1)
      const fake2 = fakeConnection()
      yield* h.d.linkUp(S1, fake2.connection, "razel")
      yield* settle(() => fake2.unanswered().length === 1, "join sent")
      yield* fake2.reject({ kind: "unauthorized", message: "you are banned from channel `ops`" })
      yield* settle(() => Effect.map(h.d.joined(S1), (j) => j.length === 0), "dropped")
      assert.include(h.injected.at(-1)!.content, "banned")
      assert.notInclude(yield* toolNames(h), "send_channel")
    }))

  it.scoped("S-141 leave_channel removes immediately and answers left", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined(["ops"])
      const fiber = yield* startCall(h, "leave_channel", { channel: "ops" })
      assert.deepStrictEqual(yield* h.d.joined(S1), [])
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, { type: "leave", channel: "ops" })
      yield* fake.answer(ack("ops"))
      assert.deepStrictEqual(yield* Fiber.join(fiber), { text: "left ops", isError: false })
    }))

  it.scoped("S-142 link-state notices: once per outage", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const fake = fakeConnection()
      yield* h.d.linkUp(S1, fake.connection, "razel")
      yield* TestClock.adjust("31 seconds")
      yield* h.d.linkDown(S1)
      yield* h.d.linkDown(S1)
      yield* h.d.linkUp(S1, fakeConnection().connection, "razel")
      const texts = h.injected.map((n) => n.content)
      assert.strictEqual(texts.filter((t) => t.includes("Disconnected from")).length, 1)
      assert.strictEqual(texts.filter((t) => t.includes("Reconnected to")).length, 1)
      assert.deepStrictEqual(h.injected[0]!.meta, { server: S1, kind: "link" })
    }))

  it.scoped("S-143/S-149 admin calls are refused unless the target server asserted admin", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined([])
      const before = fake.sent.length
      const r1 = yield* h.d.callTool("create_channel", { name: "ops" })
      assert.deepStrictEqual(r1, { text: `not an admin on \`${S1}\``, isError: true })
      const r2 = yield* h.d.callTool("unban", { channel: "ops", user: "bob" })
      assert.include(r2.text, "not an admin")
      assert.strictEqual(fake.sent.length, before)
      yield* h.d.inbound(S1, { type: "server_info", admin: true })
      const fiber = yield* startCall(h, "create_channel", { name: "ops" })
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, {
        type: "admin",
        op: { kind: "create_channel", name: "ops", visibility: "public" }
      })
      yield* fake.answer(ack("ops"))
      assert.deepStrictEqual(yield* Fiber.join(fiber), { text: "ops", isError: false })
    }))

  it.scoped("admin gate is per server (hardening #31)", () =>
    Effect.gen(function*() {
      const h = yield* harness({
        servers: [
          { url: S1, username: "aaron", machine: "w" },
          { url: S2, username: "aaron", machine: "w" }
        ]
      })
      yield* h.d.linkUp(S1, fakeConnection({ admin: true }).connection, "razel")
      yield* h.d.linkUp(S2, fakeConnection().connection, "razel")
      assert.include(yield* toolNames(h), "kick")
      const r = yield* h.d.callTool("kick", { server: S2, channel: "ops", target: "bob" })
      assert.deepStrictEqual(r, { text: `not an admin on \`${S2}\``, isError: true })
    }))

  it.scoped("S-144 list_changed only on a change of the offered set", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops"])
      assert.strictEqual(h.listChanged.count, 0)
      yield* h.d.callTool("set_perm", { channel: "ops", level: "converse" })
      assert.strictEqual(h.listChanged.count, 1)
      yield* h.d.callTool("set_perm", { channel: "ops", level: "converse" })
      yield* h.d.callTool("set_perm", { channel: "ops", level: "act" })
      yield* h.d.inbound(S1, delivery("ops", 1, "x"))
      assert.strictEqual(h.listChanged.count, 1)
      yield* h.d.callTool("leave_channel", { channel: "ops" }).pipe(Effect.fork)
      yield* settle(() => h.listChanged.count === 2, "leave flips send_channel off")
    }))

  it.scoped("S-148 audit/moderation tools round trip", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined([], {}, true)
      const call = (name: string, args: unknown, reply: Parameters<typeof fake.answer>[0]) =>
        Effect.gen(function*() {
          const fiber = yield* startCall(h, name, args)
          const frame = fake.unanswered()[0]!.frame
          yield* fake.answer(reply)
          return { frame, result: yield* Fiber.join(fiber) }
        })
      const unban = yield* call("unban", { channel: "ops", user: "bob" }, ack("bob"))
      assert.deepStrictEqual(unban.frame, { type: "admin", op: { kind: "unban", channel: "ops", user: "bob" } })
      assert.strictEqual(unban.result.text, "bob")
      const acl = yield* call("acl_list", { channel: "ops" }, { type: "user_list", users: ["aaron", "david"] })
      assert.strictEqual(acl.result.text, "aaron, david")
      const bans = yield* call("ban_list", { channel: "ops" }, { type: "user_list", users: [] })
      assert.strictEqual(bans.result.text, "nobody")
      const invites = yield* call("invite_list", { channel: "ops" }, {
        type: "invite_list",
        invites: [{ token: "tok-1", uses_remaining: 2, expires_at: null }]
      })
      assert.strictEqual(invites.result.text, "tok-1 (uses remaining: 2, expires: never)")
      const rename = yield* call("rename_channel", { name: "ops", new_name: "ops2" }, ack("ops2"))
      assert.deepStrictEqual(rename.frame, {
        type: "admin",
        op: { kind: "rename_channel", name: "ops", new_name: "ops2" }
      })
      const token = yield* call("invite_create", { channel: "ops", uses: 2, expires_in_secs: 60 }, {
        type: "invite_token",
        token: "tok-9"
      })
      assert.deepStrictEqual(token.frame, {
        type: "admin",
        op: { kind: "invite_create", channel: "ops", uses: 2, expires_in_secs: 60 }
      })
      assert.strictEqual(token.result.text, "invite token: tok-9")
      const list = yield* call("list_channels", {}, {
        type: "channel_list",
        channels: [{ name: "ops", visibility: "private", member: true }, {
          name: "lobby",
          visibility: "public",
          member: false
        }]
      })
      assert.strictEqual(list.result.text, "ops (private, member)\nlobby (public)")
    }))
})

describe("Dispatcher: argument validation", () => {
  it.scoped("S-146 server resolution", () =>
    Effect.gen(function*() {
      const one = yield* upAndJoined([])
      const fiber = yield* startCall(one.h, "who", {})
      assert.strictEqual(one.fake.unanswered().length, 1)
      yield* one.fake.answer({ type: "presence", channel: null, sessions: [ME] })
      assert.deepStrictEqual(yield* Fiber.join(fiber), { text: "server-wide: aaron/workstation/razel", isError: false })
      const r = yield* one.h.d.callTool("who", { server: "wss://other" })
      assert.deepStrictEqual(r, { text: "not connected to server `wss://other`", isError: true })
      const two = yield* harness({
        servers: [
          { url: S1, username: "a", machine: "m" },
          { url: S2, username: "a", machine: "m" }
        ]
      })
      const r2 = yield* two.d.callTool("who", {})
      assert.deepStrictEqual(r2, { text: "multiple servers connected; pass `server`", isError: true })
    }))

  it.scoped("S-147 unknown tool and bad arguments", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined([])
      const before = fake.sent.length
      assert.deepStrictEqual(yield* h.d.callTool("nope", {}), { text: "unknown tool `nope`", isError: true })
      assert.deepStrictEqual(yield* h.d.callTool("join_channel", {}), {
        text: "`channel` is required",
        isError: true
      })
      const bogus = yield* h.d.callTool("join_channel", { channel: "ops", perm: "bogus" })
      assert.isTrue(bogus.isError)
      assert.include(bogus.text, "unknown permission level `bogus`")
      assert.strictEqual(fake.sent.length, before)
    }))

  it.scoped("every tool rejects bad arguments without sending anything", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined([], { policy: { default_permission: "act", overrides: [] } }, true)
      const before = fake.sent.length
      const cases: ReadonlyArray<readonly [string, unknown, string]> = [
        ["join_channel", [], "tool arguments must be a JSON object"],
        ["join_channel", { channel: 5 }, "`channel` is required"],
        ["send_channel", { channel: "ops", text: 5 }, "`channel` and `text` are required"],
        ["whisper", { target: ["a", "b", "c"], text: "x" }, "`target` and `text` are required"],
        ["set_perm", { level: 3 }, "`level` must be mute, notify, converse, or act"],
        ["set_perm", { channel: "ops", level: "Converse" }, "`level` must be mute, notify, converse, or act"],
        ["submit_permission", { request_id: 7, decision: "allow" }, "`request_id` is required"],
        ["join_channel", { channel: "" }, "`channel` is required"],
        ["join_channel", { channel: "ops", token: 1 }, "`token` must be a string"],
        ["join_channel", { server: 1, channel: "ops" }, "`server` must be a string"],
        ["leave_channel", {}, "`channel` is required"],
        ["list_channels", { server: "ws://nope" }, "not connected to server `ws://nope`"],
        ["who", { channel: 3 }, "`channel` must be a string"],
        ["catch_up", {}, "`channel` is required"],
        ["catch_up", { channel: "ops", since: "abc" }, "invalid `since`: invalid duration `abc`"],
        ["catch_up", { channel: "ops", since: "-5m" }, "invalid `since`: invalid duration `-5m`"],
        ["submit_permission", { decision: "allow" }, "`request_id` is required"],
        ["set_perm", {}, "`level` must be mute, notify, converse, or act"],
        ["set_perm", { level: "loud" }, "`level` must be mute, notify, converse, or act"],
        ["set_perm", { channel: "ops", level: "loud" }, "`level` must be mute, notify, converse, or act"],
        ["set_perm", { whisper: "yes", level: "act" }, "`whisper` must be a boolean"],
        ["send_channel", { channel: "ops" }, "`channel` and `text` are required"],
        ["send_channel", { text: "x" }, "`channel` and `text` are required"],
        [
          "send_channel",
          { channel: "ops", text: "x", reply_to: -1 },
          "`reply_to` must be a message seq (a non-negative integer)"
        ],
        [
          "send_channel",
          { channel: "ops", text: "x", reply_to: "4" },
          "`reply_to` must be a message seq (a non-negative integer)"
        ],
        ["whisper", { target: "a/b/c" }, "`target` and `text` are required"],
        ["create_channel", {}, "`name` is required"],
        ["create_channel", { name: "ops", visibility: "privte" }, "`visibility` must be public, unlisted, or private"],
        ["delete_channel", {}, "`name` is required"],
        ["set_visibility", { name: "ops" }, "`name` and a valid `visibility` are required"],
        ["set_visibility", { name: "ops", visibility: "secret" }, "`name` and a valid `visibility` are required"],
        ["acl_add", { channel: "ops" }, "`channel` and `user` are required"],
        ["acl_remove", { user: "bob" }, "`channel` and `user` are required"],
        ["invite_create", {}, "`channel` is required"],
        ["invite_create", { channel: "ops", uses: -1 }, "`uses` must be an integer between 1 and 4294967295"],
        ["invite_create", { channel: "ops", uses: 0 }, "`uses` must be an integer between 1 and 4294967295"],
        ["invite_create", { channel: "ops", uses: 1.5 }, "`uses` must be an integer between 1 and 4294967295"],
        ["invite_create", { channel: "ops", uses: 4294967296 }, "`uses` must be an integer between 1 and 4294967295"],
        ["invite_create", { channel: "ops", uses: "3" }, "`uses` must be an integer between 1 and 4294967295"],
        ["invite_create", { channel: "ops", expires_in_secs: -1 }, "`expires_in_secs` must be a non-negative integer"],
        ["invite_create", { channel: "ops", expires_in_secs: 2.5 }, "`expires_in_secs` must be a non-negative integer"],
        ["invite_revoke", {}, "`token` is required"],
        ["kick", { channel: "ops" }, "`channel` and `target` are required"],
        ["ban", { channel: "ops" }, "`channel` and `user` are required"],
        ["unban", { user: "x" }, "`channel` and `user` are required"],
        ["rename_channel", { name: "ops" }, "`name` and `new_name` are required"],
        ["acl_list", {}, "`channel` is required"],
        ["ban_list", {}, "`channel` is required"],
        ["invite_list", {}, "`channel` is required"]
      ]
      for (const [name, args, text] of cases) {
        const r = yield* h.d.callTool(name, args)
        assert.deepStrictEqual(r, { text, isError: true }, `${name} ${JSON.stringify(args)}`)
      }
      assert.strictEqual(fake.sent.length, before)
    }))
})

describe("Dispatcher: catch_up (O, seq watermarks)", () => {
  it.scoped("S-161 explicit window uses since_ms", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined([])
      yield* TestClock.setTime(1751510000000)
      const fiber = yield* startCall(h, "catch_up", { channel: "ops", since: "2h" })
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, {
        type: "read_since",
        channel: "ops",
        since_seq: null,
        since_ms: 1751510000000 - 7_200_000,
        before_seq: null
      })
      yield* fake.answer({
        type: "history",
        channel: "ops",
        more: false,
        messages: [
          {
            seq: 1,
            from: DAVID,
            ts_ms: 1751500000000,
            payload: { kind: "plain", text: "one" },
            origin: "agent",
            reply_to: null
          },
          {
            seq: 2,
            from: DAVID,
            ts_ms: 1751500060000,
            payload: { kind: "plain", text: "two" },
            origin: "agent",
            reply_to: null
          }
        ]
      })
      const r = yield* Fiber.join(fiber)
      assert.isFalse(r.isError)
      for (const s of ["one", "two", "david/desktop/main", "untrusted"]) assert.include(r.text, s)
    }))

  it.scoped("S-162 default watermark: last seen seq, else 0; S-163 a page raises it", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined(["ops"])
      yield* h.d.inbound(S1, delivery("ops", 17, "live"))
      const f1 = yield* startCall(h, "catch_up", { channel: "ops" })
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, {
        type: "read_since",
        channel: "ops",
        since_seq: 17,
        since_ms: null,
        before_seq: null
      })
      yield* fake.answer({ type: "history", channel: "ops", more: false, messages: [] })
      assert.strictEqual((yield* Fiber.join(f1)).text, "#ops: no retained messages in that window")
      const f2 = yield* startCall(h, "catch_up", { channel: "fresh" })
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, {
        type: "read_since",
        channel: "fresh",
        since_seq: 0,
        since_ms: null,
        before_seq: null
      })
      yield* fake.answer({
        type: "history",
        channel: "fresh",
        more: true,
        messages: [{
          seq: 30,
          from: DAVID,
          ts_ms: 0,
          payload: { kind: "plain", text: "x" },
          origin: "human",
          reply_to: null
        }]
      })
      assert.include((yield* Fiber.join(f2)).text, "More messages remain")
      const f3 = yield* startCall(h, "catch_up", { channel: "fresh" })
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, {
        type: "read_since",
        channel: "fresh",
        since_seq: 30,
        since_ms: null,
        before_seq: null
      })
      yield* fake.reject({ kind: "unauthorized", message: "not a member of channel `fresh`" })
      assert.deepStrictEqual(yield* Fiber.join(f3), {
        text: "unauthorized: not a member of channel `fresh`",
        isError: true
      })
    }))
})

describe("Dispatcher: loop guard (D-12)", () => {
  it.scoped("trips at the limit, frames as notify, refuses sends, resets on a human message", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined(["ops"], {
        loopLimit: 3,
        policy: { default_permission: "converse", overrides: [] }
      })
      yield* h.d.inbound(S1, delivery("ops", 1, "a1"))
      yield* h.d.inbound(S1, delivery("ops", 2, "a2"))
      assert.include(h.injected.at(-1)!.content, "level converse")
      // own send counts as the third agent message
      const fiber = yield* startCall(h, "send_channel", { channel: "ops", text: "me" })
      yield* fake.answer(ack(null, 3))
      const sent = yield* Fiber.join(fiber)
      assert.include(sent.text, "sent to ops")
      assert.include(sent.text, "loop guard tripped")
      assert.include(h.injected.at(-1)!.content, "Loop guard tripped")
      const sentBefore = fake.sent.length
      const refused = yield* h.d.callTool("send_channel", { channel: "ops", text: "again" })
      assert.isTrue(refused.isError)
      assert.include(refused.text, "loop guard")
      assert.include(refused.text, "human posts")
      assert.include(refused.text, "set_perm")
      assert.strictEqual(fake.sent.length, sentBefore)
      yield* h.d.inbound(S1, delivery("ops", 4, "a4"))
      assert.include(h.injected.at(-1)!.content, "level notify")
      yield* h.d.inbound(S1, delivery("ops", 5, "human says", "human"))
      assert.include(h.injected.at(-1)!.content, "Loop guard reset")
      assert.include(h.injected.at(-2)!.content, "level converse")
      const f2 = yield* startCall(h, "send_channel", { channel: "ops", text: "ok now" })
      yield* fake.answer(ack(null, 6))
      assert.strictEqual((yield* Fiber.join(f2)).text, "sent to ops")
    }))

  it.scoped("set_perm on the channel resets it; limit 0 is off; whispers count per peer", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops"], {
        loopLimit: 2,
        policy: { default_permission: "converse", overrides: [] }
      })
      yield* h.d.inbound(S1, delivery("ops", 1, "a"))
      yield* h.d.inbound(S1, delivery("ops", 2, "b"))
      assert.isTrue((yield* h.d.callTool("send_channel", { channel: "ops", text: "x" })).isError)
      const reset = yield* h.d.callTool("set_perm", { channel: "ops", level: "converse" })
      assert.strictEqual(reset.text, "permission updated; the loop guard for #ops was reset")
      assert.include(h.injected.at(-1)!.content, "Loop guard reset")
      yield* h.d.inbound(S1, whisperFrame("w1"))
      yield* h.d.inbound(S1, whisperFrame("w2"))
      const w = yield* h.d.callTool("whisper", { target: "david/desktop/main", text: "x" })
      assert.isTrue(w.isError)
      assert.include(w.text, "loop guard")
      const wr = yield* h.d.callTool("set_perm", { whisper: true, level: "converse" })
      assert.strictEqual(wr.text, "permission updated; the loop guard for whispers with david/desktop/main was reset")
      const off = yield* upAndJoined(["ops"], {
        loopLimit: 0,
        policy: { default_permission: "converse", overrides: [] }
      })
      for (let i = 1; i <= 50; i++) yield* off.h.d.inbound(S1, delivery("ops", i, "spam"))
      assert.include(off.h.injected.at(-1)!.content, "level converse")
    }))
})

describe("Dispatcher: permission relay, notices, unsubscribed, whoami, inbox", () => {
  it.scoped("S-124 permission relay", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined([])
      yield* h.d.permissionRequest({ request_id: "abcde", tool_name: "Bash", description: "run ls", extra: 1 })
      const n = h.injected.at(-1)!
      assert.deepStrictEqual(n.meta, { kind: "permission_request", request_id: "abcde" })
      assert.include(n.content, "Bash")
      assert.include(n.content, "run ls")
      assert.include(n.content, "submit_permission")
      const r1 = yield* h.d.callTool("submit_permission", { request_id: "abcde", decision: "allow" })
      assert.deepStrictEqual(r1, { text: "permission verdict `allow` sent", isError: false })
      const r2 = yield* h.d.callTool("submit_permission", { request_id: "abcde", decision: "maybe" })
      assert.strictEqual(r2.text, "permission verdict `deny` sent")
      // Anything but exactly "allow" denies: wrong case, a non-string, or no decision at all.
      for (const decision of ["ALLOW", true, undefined]) {
        const r = yield* h.d.callTool("submit_permission", { request_id: "abcde", decision })
        assert.deepStrictEqual(r, { text: "permission verdict `deny` sent", isError: false }, String(decision))
      }
      assert.deepStrictEqual(h.verdicts, [
        { requestId: "abcde", behavior: "allow" },
        { requestId: "abcde", behavior: "deny" },
        { requestId: "abcde", behavior: "deny" },
        { requestId: "abcde", behavior: "deny" },
        { requestId: "abcde", behavior: "deny" }
      ])
      // GAPS #9: the input preview is shown so the approver sees what would run.
      yield* h.d.permissionRequest({
        request_id: "p2",
        tool_name: "Bash",
        description: "d",
        input_preview: "rm -rf /tmp/x"
      })
      assert.include(h.injected.at(-1)!.content, "rm -rf /tmp/x")
      yield* h.d.permissionRequest(null)
      assert.deepStrictEqual(h.injected.at(-1)!.meta, { kind: "permission_request", request_id: "" })
    }))

  it.scoped("stray server errors become an error notice", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined([])
      yield* h.d.inbound(S1, { type: "error", error: { kind: "unauthorized", message: "session superseded" } })
      assert.strictEqual(h.injected.at(-1)!.content, `Server ${S1} error: unauthorized: session superseded`)
      assert.deepStrictEqual(h.injected.at(-1)!.meta, { server: S1, kind: "error" })
    }))

  it.scoped("D-7 unsubscribed: kicked removes; renamed moves the channel and its override", () =>
    Effect.gen(function*() {
      const { h } = yield* upAndJoined(["ops", "dev"], {
        policy: { default_permission: "notify", overrides: [{ server: S1, channel: "ops", level: "converse" }] }
      })
      assert.include(yield* toolNames(h), "send_channel")
      yield* h.d.inbound(S1, { type: "unsubscribed", channel: "ops", reason: "renamed", new_name: "ops-2" })
      assert.sameMembers([...(yield* h.d.joined(S1))], ["ops-2", "dev"])
      assert.include(h.injected.at(-1)!.content, "renamed to #ops-2")
      yield* h.d.inbound(S1, delivery("ops-2", 3, "x", "human"))
      assert.include(h.injected.at(-1)!.content, "level converse")
      assert.include(yield* toolNames(h), "send_channel")
      const changes = h.listChanged.count
      yield* h.d.inbound(S1, { type: "unsubscribed", channel: "ops-2", reason: "kicked", new_name: null })
      assert.deepStrictEqual(yield* h.d.joined(S1), ["dev"])
      assert.include(h.injected.at(-1)!.content, "kicked")
      assert.strictEqual(h.injected.at(-1)!.meta["kind"], "unsubscribed")
      assert.notInclude(yield* toolNames(h), "send_channel")
      assert.strictEqual(h.listChanged.count, changes + 1)
    }))

  it.scoped("whoami and inbox", () =>
    Effect.gen(function*() {
      const early = yield* harness()
      const before = yield* early.d.callTool("whoami", {})
      assert.include(before.text, "aaron/workstation/razel (not yet connected)")
      assert.include(before.text, "link down")
      const { h } = yield* upAndJoined(["ops"], {
        policy: { default_permission: "notify", overrides: [{ server: S1, channel: "ops", level: "act" }] }
      })
      const who = yield* h.d.callTool("whoami", {})
      assert.include(who.text, "aaron/workstation/razel")
      assert.include(who.text, "link up")
      assert.include(who.text, "#ops: act")
      assert.include(who.text, "whispers: notify")
      assert.strictEqual((yield* h.d.callTool("inbox", {})).text, "inbox: nothing new since the last call")
      yield* h.d.inbound(S1, delivery("ops", 1, "line one\nline two", "human"))
      const inbox = yield* h.d.callTool("inbox", {})
      assert.include(inbox.text, "#ops")
      assert.include(inbox.text, "line one\n    line two")
      assert.strictEqual((yield* h.d.callTool("inbox", {})).text, "inbox: nothing new since the last call")
      for (let i = 2; i < 260; i++) yield* h.d.inbound(S1, delivery("ops", i, `m${i}`, "human"))
      const full = yield* h.d.callTool("inbox", {})
      assert.include(full.text, "200 item(s)")
      assert.include(full.text, "58 older item(s) dropped")
    }))

  it.scoped("mute drops injections but still moves the watermark", () =>
    Effect.gen(function*() {
      const { fake, h } = yield* upAndJoined(["ops"], {
        policy: { default_permission: "mute", overrides: [] }
      })
      yield* h.d.inbound(S1, delivery("ops", 8, "hidden"))
      yield* h.d.inbound(S1, whisperFrame("hidden"))
      assert.strictEqual(h.injected.length, 0)
      const f = yield* startCall(h, "catch_up", { channel: "ops" })
      assert.deepStrictEqual(fake.unanswered()[0]!.frame, {
        type: "read_since",
        channel: "ops",
        since_seq: 8,
        since_ms: null,
        before_seq: null
      })
      yield* fake.answer({ type: "history", channel: "ops", more: false, messages: [] })
      yield* Fiber.join(f)
    }))
})

describe("Dispatcher: breaker, rename, dedupe (N)", () => {
  const flap = (h: Harness, dialed: string) =>
    Effect.gen(function*() {
      yield* h.d.linkUp(S1, fakeConnection().connection, dialed)
      yield* TestClock.adjust("1 second")
      yield* h.d.linkDown(S1)
    })

  it.scoped("S-157 explicit handle: advisory once, quiet, then notices resume after a stable link", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const texts = () => h.injected.map((n) => n.content)
      yield* flap(h, "razel")
      yield* flap(h, "razel")
      assert.strictEqual(texts().filter((t) => t.includes("Disconnected")).length, 2)
      assert.isFalse(texts().some((t) => t.includes("--as")))
      yield* flap(h, "razel")
      assert.strictEqual(texts().filter((t) => t.includes("--as")).length, 1)
      const n = h.injected.length
      yield* flap(h, "razel")
      yield* flap(h, "razel")
      yield* flap(h, "razel")
      assert.strictEqual(h.injected.length, n, "quiet while tripped")
      yield* h.d.inbound(S1, { type: "error", error: { kind: "unauthorized", message: "session superseded" } })
      assert.strictEqual(h.injected.length, n, "kill reasons are quiet too")
      yield* h.d.linkUp(S1, fakeConnection().connection, "razel")
      yield* TestClock.adjust("31 seconds")
      yield* h.d.linkDown(S1)
      assert.include(h.injected.at(-1)!.content, "Disconnected")
      assert.strictEqual(yield* h.d.currentHandle, "razel")
    }))

  it.scoped("S-158 defaulted handle renames razel → razel-2 → razel-3", () =>
    Effect.gen(function*() {
      const h = yield* harness({ handle: { name: "razel", explicit: false } })
      for (let i = 0; i < 3; i++) yield* flap(h, yield* h.d.currentHandle)
      assert.strictEqual(yield* h.d.currentHandle, "razel-2")
      assert.include(h.injected.at(-1)!.content, "razel-2")
      assert.include(h.injected.at(-1)!.content, "`razel`")
      for (let i = 0; i < 3; i++) yield* flap(h, yield* h.d.currentHandle)
      assert.strictEqual(yield* h.d.currentHandle, "razel-3")
      assert.include(h.injected.at(-1)!.content, "razel-3")
    }))

  it.scoped("drops over a frame too large for this client (1009) are not flaps: no rename, no advisory (issue 22)", () =>
    Effect.gen(function*() {
      const h = yield* harness({ handle: { name: "razel", explicit: false } })
      for (let i = 0; i < 5; i++) {
        yield* h.d.linkUp(S1, fakeConnection().connection, yield* h.d.currentHandle)
        yield* TestClock.adjust("1 second")
        yield* h.d.linkDown(S1, "too_large")
      }
      assert.strictEqual(yield* h.d.currentHandle, "razel")
      const explicit = yield* harness()
      for (let i = 0; i < 5; i++) {
        yield* explicit.d.linkUp(S1, fakeConnection().connection, "razel")
        yield* TestClock.adjust("1 second")
        yield* explicit.d.linkDown(S1, "too_large")
      }
      assert.isFalse(explicit.injected.some((n) => n.content.includes("--as")))
      // the ordinary flaps still trip the breaker
      for (let i = 0; i < 3; i++) yield* flap(h, yield* h.d.currentHandle)
      assert.strictEqual(yield* h.d.currentHandle, "razel-2")
    }))

  it.scoped("D-27 a trip on a link that dialed an old name does not rename again", () =>
    Effect.gen(function*() {
      const h = yield* harness({ handle: { name: "razel", explicit: false } })
      for (let i = 0; i < 3; i++) yield* flap(h, "razel")
      assert.strictEqual(yield* h.d.currentHandle, "razel-2")
      const n = h.injected.length
      // three more quick drops of a link that still dialed "razel" (another link's collision)
      for (let i = 0; i < 3; i++) yield* flap(h, "razel")
      assert.strictEqual(yield* h.d.currentHandle, "razel-2")
      assert.isFalse(h.injected.slice(n).some((x) => x.content.includes("razel-3")))
    }))

  it.scoped("duplicate link: pending calls fail naming the canonical URL, server forgotten, one notice", () =>
    Effect.gen(function*() {
      const h = yield* harness({
        servers: [
          { url: S1, username: "a", machine: "m" },
          { url: S2, username: "a", machine: "m" }
        ]
      })
      const fiber = yield* startCall(h, "who", { server: S2 })
      yield* h.d.linkDuplicate(S2, S1)
      assert.deepStrictEqual(yield* Fiber.join(fiber), {
        text: `\`${S2}\` is the same server as \`${S1}\`; target \`${S1}\` instead`,
        isError: true
      })
      assert.strictEqual(h.injected.length, 1)
      assert.include(h.injected[0]!.content, "is the same server as")
      assert.include(h.injected[0]!.content, "disabled")
      const r = yield* h.d.callTool("who", { server: S2 })
      assert.strictEqual(r.text, `not connected to server \`${S2}\``)
      // S2 disappeared from resolution: `who` without server now targets S1
      const fake = fakeConnection({ auto: () => ({ type: "presence", channel: null, sessions: [ME] }) })
      yield* h.d.linkUp(S1, fake.connection, "razel")
      assert.isFalse((yield* h.d.callTool("who", {})).isError)
      yield* h.d.linkDuplicate(S2, S1)
      assert.strictEqual(h.injected.length, 1)
    }))
})
