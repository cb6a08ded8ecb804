// Real `conclave serve` + real `conclave bridge` processes driven over MCP stdio.
import { type Identity, LocalConfig } from "@conclave/client"
import * as Kit from "@conclave/testkit"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { ResultSchema } from "@modelcontextprotocol/sdk/types.js"
import { Effect, Option, Stream } from "effect"
import {
  assertBuilt,
  callOk,
  connectAs,
  eventuallyUp,
  post,
  register,
  setConfig,
  startBridge,
  startServer
} from "./E2E.js"

const ALWAYS = [
  "join_channel",
  "leave_channel",
  "list_channels",
  "who",
  "catch_up",
  "submit_permission",
  "set_perm",
  "whoami",
  "inbox"
]
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

const createChannel = (url: string, identity: Identity.Identity, name: string) =>
  Effect.scoped(Effect.gen(function*() {
    const c = yield* connectAs(url, identity, "cli-setup")
    yield* c.request({ type: "admin", op: { kind: "create_channel", name, visibility: "public" } }).pipe(Effect.orDie)
  }))

describe("bridge e2e: tools, injection, levels, whispers, catch_up", () => {
  assertBuilt()

  it.live("S-183-style flow over real processes", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const dirA = yield* tempDir()
      const dirD = yield* tempDir()
      const aaron = yield* register(dirA, server.url, "aaron")
      const david = yield* register(dirD, server.url, "david", "desktop")
      yield* createChannel(server.url, aaron, "lobby")

      const a = yield* startBridge({ configDir: dirA, args: ["--as", "alice"] })
      // D-21: the SDK 1.x answers server/discover with method-not-found
      const discover = yield* Effect.promise(() =>
        a.client.request({ method: "server/discover", params: {} }, ResultSchema).then(
          () => undefined,
          (e: { code?: number }) => e.code
        )
      )
      assert.strictEqual(discover, -32601)
      const caps = a.client.getServerCapabilities()!
      assert.deepStrictEqual(caps.experimental, { "claude/channel": {}, "claude/channel/permission": {} })
      assert.sameMembers([...(yield* a.tools)], ALWAYS)

      assert.strictEqual(yield* callOk(a, "join_channel", { channel: "lobby" }), "joined lobby")
      assert.strictEqual(a.listChanged(), 0)

      // a human posts: injected at notify with the exact tag and meta
      const d = yield* connectAs(server.url, david, "dsess")
      yield* d.request({ type: "join", channel: "lobby", token: null }).pipe(Effect.orDie)
      const ack = yield* post(d, "lobby", "hello <there> & \"you\"")
      const seq = ack.type === "ack" ? ack.seq : null
      yield* Kit.eventually("channel injection", () =>
        a.channel().some((n) => n.meta["kind"] === "channel"), "10 seconds")
      const n = a.channel().find((x) =>
        x.meta["kind"] === "channel"
      )!
      assert.deepStrictEqual(n.meta, {
        server: server.url,
        channel: "lobby",
        from: "david/desktop/dsess",
        kind: "channel",
        seq: String(seq),
        origin: "human"
      })
      assert.include(n.content, "untrusted")
      assert.include(
        n.content,
        `<channel server="${server.url}" channel="lobby" from="david/desktop/dsess" kind="channel" seq="${seq}" origin="human">\nhello &lt;there&gt; &amp; &quot;you&quot;\n</channel>`
      )
      assert.include(n.content, "Permission level notify")

      // notify refuses emit
      const refused = yield* a.call("send_channel", { channel: "lobby", text: "hi" })
      assert.isTrue(refused.isError)
      assert.include(refused.text, "below `converse`")

      // converse allows; the offered set changes exactly once
      assert.strictEqual(yield* callOk(a, "set_perm", { channel: "lobby", level: "converse" }), "permission updated")
      yield* Kit.eventually("list_changed after set_perm", () => a.listChanged() === 1, "10 seconds")
      assert.include(yield* a.tools, "send_channel")
      assert.notInclude(yield* a.tools, "whisper")
      yield* callOk(a, "set_perm", { channel: "lobby", level: "converse" })
      yield* callOk(a, "set_perm", { channel: "lobby", level: "act" })
      assert.strictEqual(yield* callOk(a, "send_channel", { channel: "lobby", text: "from alice" }), "sent to lobby")
      const got = yield* d.unsolicited.pipe(
        Stream.filter((f) => f.type === "channel_msg"),
        Stream.take(1),
        Stream.runHead
      )
      const delivered = Option.getOrThrow(got)
      assert.strictEqual(delivered.type === "channel_msg" && delivered.origin, "agent")
      assert.strictEqual(
        delivered.type === "channel_msg" && delivered.payload.kind === "plain" && delivered.payload.text,
        "from alice"
      )

      // mute drops
      yield* callOk(a, "set_perm", { channel: "lobby", level: "mute" })
      yield* Kit.eventually("list_changed after mute", () => a.listChanged() === 2, "10 seconds")
      const before = a.channel().length
      yield* post(d, "lobby", "muted message")
      yield* post(d, "lobby", "still muted")
      // A whisper sent after them arrives after them: once it is injected, the muted ones were dropped.
      yield* d.request({
        type: "whisper",
        target: { user: "aaron", machine: "workstation", session: "alice" },
        payload: { kind: "plain", text: "marker" }
      }).pipe(Effect.orDie)
      yield* Kit.eventually("the marker whisper", () =>
        a.channel().some((x) =>
          x.content.includes("marker")
        ), "10 seconds")
      assert.strictEqual(a.channel().length, before + 1)

      // whispers: the whisper scope gates and offers `whisper`
      yield* callOk(a, "set_perm", { whisper: true, level: "converse" })
      yield* Kit.eventually("list_changed for whisper", () =>
        a.listChanged() === 3, "10 seconds")
      assert.include(yield* a.tools, "whisper")
      assert.strictEqual(yield* callOk(a, "whisper", { target: "david/desktop/dsess", text: "psst" }), "whisper sent")
      const w = Option.getOrThrow(
        yield* d.unsolicited.pipe(Stream.filter((f) => f.type === "whisper"), Stream.take(1), Stream.runHead)
      )
      assert.strictEqual(w.type === "whisper" && w.payload.kind === "plain" && w.payload.text, "psst")
      yield* d.request({
        type: "whisper",
        target: { user: "aaron", machine: "workstation", session: "alice" },
        payload: { kind: "plain", text: "psst back" }
      }).pipe(Effect.orDie)
      yield* Kit.eventually(
        "whisper injection",
        () => a.channel().some((x) => x.meta["kind"] === "whisper" && x.content.includes("psst back")),
        "10 seconds"
      )
      const wi = a.channel().find((x) => x.meta["kind"] === "whisper" && x.content.includes("psst back"))!
      assert.include(wi.content, `<whisper server="${server.url}" from="david/desktop/dsess" kind="whisper"`)
      assert.include(wi.content, "psst back")
      assert.isUndefined(wi.meta["channel"])

      // catch_up: by seq from the last seen (muted ones moved it), and by window
      assert.strictEqual(
        yield* callOk(a, "catch_up", { channel: "lobby" }),
        "#lobby: no retained messages in that window"
      )
      const window = yield* callOk(a, "catch_up", { channel: "lobby", since: "1h" })
      for (const s of ["hello", "from alice", "muted message", "still muted", "david/desktop/dsess", "untrusted"]) {
        assert.include(window, s)
      }
      const who = yield* callOk(a, "who", { channel: "lobby" })
      assert.include(who, "aaron/workstation/alice")
      assert.include(who, "david/desktop/dsess")
      const whoami = yield* callOk(a, "whoami")
      assert.include(whoami, "aaron/workstation/alice")
      assert.include(whoami, "#lobby: mute")
      const inbox = yield* callOk(a, "inbox")
      assert.include(inbox, "psst back")

      // leaving flips nothing now (lobby is mute) — list_changed never fired without a change
      yield* callOk(a, "leave_channel", { channel: "lobby" })
      assert.strictEqual(a.listChanged(), 3)
    }).pipe(Effect.scoped), 60_000)

  it.live("admin tools appear only for server admins and are refused per server", () =>
    Effect.gen(function*() {
      const s1 = yield* startServer({ admins: ["boss"] })
      const s2 = yield* startServer()
      const dirB = yield* tempDir()
      const dirA = yield* tempDir()
      yield* register(dirB, s1.url, "boss")
      yield* register(dirB, s2.url, "boss")
      yield* register(dirA, s1.url, "aaron")
      const boss = yield* startBridge({ configDir: dirB, args: ["--as", "b"] })
      const plain = yield* startBridge({ configDir: dirA, args: ["--as", "p"] })
      yield* Kit.eventually("admin list_changed", () => boss.listChanged() === 1, "10 seconds")
      const tools = yield* boss.tools
      for (const t of ADMIN_14) assert.include(tools, t)
      // Once its link is up (its server_info read), a tool result is the marker: every notification
      // sent before it has arrived.
      yield* eventuallyUp(plain)
      assert.strictEqual(plain.listChanged(), 0)
      assert.sameMembers([...(yield* plain.tools)], ALWAYS)
      assert.strictEqual(yield* callOk(boss, "create_channel", { server: s1.url, name: "ops" }), "ops")
      const refused = yield* boss.call("create_channel", { server: s2.url, name: "ops" })
      assert.deepStrictEqual(refused, { text: `not an admin on \`${s2.url}\``, isError: true })
      const typo = yield* boss.call("create_channel", { server: s1.url, name: "x", visibility: "privte" })
      assert.isTrue(typo.isError)
      const token = yield* callOk(boss, "invite_create", { server: s1.url, channel: "ops", uses: 2 })
      assert.match(token, /^invite token: \S+$/)
      const notAdmin = yield* plain.call("acl_list", { channel: "ops" })
      assert.deepStrictEqual(notAdmin, { text: `not an admin on \`${s1.url}\``, isError: true })
    }).pipe(Effect.scoped), 60_000)

  it.live("S-184 join_channel with perm converse lets the session send", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const dir = yield* tempDir()
      const aaron = yield* register(dir, server.url, "aaron")
      yield* createChannel(server.url, aaron, "lobby")
      yield* setConfig(dir, (c) => LocalConfig.setDefault(c, "notify"))
      const a = yield* startBridge({ configDir: dir, args: ["--as", "alice"] })
      assert.strictEqual(yield* callOk(a, "join_channel", { channel: "lobby", perm: "converse" }), "joined lobby")
      yield* Kit.eventually("send_channel offered", () => a.listChanged() === 1, "10 seconds")
      assert.strictEqual(
        yield* callOk(a, "send_channel", { channel: "lobby", text: "joined via the skill" }),
        "sent to lobby"
      )
    }).pipe(Effect.scoped), 60_000)

  it.live("D-7 kick and rename reach the bridge as notices and update its joined set", () =>
    Effect.gen(function*() {
      const server = yield* startServer({ admins: ["boss"] })
      const dir = yield* tempDir()
      const boss = yield* register(dir, server.url, "boss")
      yield* createChannel(server.url, boss, "ops")
      yield* setConfig(
        dir,
        (c) => LocalConfig.setOverride(c, { server: server.url, channel: "ops", level: "converse" })
      )
      const b = yield* startBridge({ configDir: dir, args: ["--as", "bee"] })
      assert.strictEqual(yield* callOk(b, "join_channel", { channel: "ops" }), "joined ops")
      yield* Kit.eventually("admin and send_channel offered", () => b.listChanged() >= 2, "10 seconds")
      assert.include(yield* b.tools, "send_channel")
      const admin = yield* connectAs(server.url, boss, "cli-admin")
      yield* admin.request({ type: "admin", op: { kind: "rename_channel", name: "ops", new_name: "ops2" } }).pipe(
        Effect.orDie
      )
      yield* Kit.eventually(
        "rename notice",
        () => b.channel().some((n) => n.meta["reason"] === "renamed"),
        "10 seconds"
      )
      const renamed = b.channel().find((n) => n.meta["reason"] === "renamed")!
      assert.include(renamed.content, "#ops2")
      assert.strictEqual(renamed.meta["channel"], "ops2")
      const whoami = yield* callOk(b, "whoami")
      assert.include(whoami, "#ops2: converse")
      assert.notInclude(whoami, "#ops:")
      // still subscribed under the new name, with the level moved
      assert.strictEqual(yield* callOk(b, "send_channel", { channel: "ops2", text: "still here" }), "sent to ops2")
      const changes = b.listChanged()
      yield* admin.request({
        type: "admin",
        op: { kind: "kick", channel: "ops2", target: "boss/workstation/bee" }
      }).pipe(Effect.orDie)
      yield* Kit.eventually("kick notice", () => b.channel().some((n) => n.meta["reason"] === "kicked"), "10 seconds")
      const kicked = b.channel().find((n) => n.meta["reason"] === "kicked")!
      assert.include(kicked.content, "#ops2")
      assert.strictEqual(kicked.meta["kind"], "unsubscribed")
      assert.include(yield* callOk(b, "whoami"), "no joined channels")
      // no joined channel may emit any more: send_channel is withdrawn with one list_changed
      yield* Kit.eventually("list_changed after the kick", () => b.listChanged() === changes + 1, "10 seconds")
      assert.notInclude(yield* b.tools, "send_channel")
    }).pipe(Effect.scoped), 60_000)
})
