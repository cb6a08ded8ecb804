// Local verbs and flag validation, run in process (fast): S-171 first half, S-172, S-173, S-179.
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { ko, ok } from "./support/InProcess.js"

const writeConfig = (dir: string, text: string) => Fs.writeFileSync(Path.join(dir, "config.toml"), text)
const readConfig = (dir: string) => Fs.readFileSync(Path.join(dir, "config.toml"), "utf8")

/** A TCP listener that counts connections, to prove that a verb made none. */
const countingListener = Effect.acquireRelease(
  Effect.async<{ readonly url: string; readonly count: () => number; readonly server: Net.Server }>((resume) => {
    let n = 0
    const server = Net.createServer((socket) => {
      n++
      socket.destroy()
    })
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as Net.AddressInfo).port
      resume(Effect.succeed({ url: `ws://127.0.0.1:${port}`, count: () => n, server }))
    })
  }),
  ({ server }) => Effect.sync(() => server.close())
)

describe("conclave (local verbs, in process)", () => {
  it.scopedLive("S-173: perm set scope rules", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const S = "wss://a.example"
      const noScope = yield* ko(["perm", "set", "converse", "--server", S], { configDir: dir })
      assert.strictEqual(noScope.code, 1)
      assert.include(noScope.stderr, "explicit scope")
      const both = yield* ko(["perm", "set", "converse", "--server", S, "--channel", "ops", "--whisper"], {
        configDir: dir
      })
      assert.include(both.stderr, "mutually exclusive")
      const noServer = yield* ko(["perm", "set", "converse", "--channel", "ops"], { configDir: dir })
      assert.include(noServer.stderr, "--server")
      const noServerWhisper = yield* ko(["perm", "set", "converse", "--whisper"], { configDir: dir })
      assert.include(noServerWhisper.stderr, "--server")
      const badLevel = yield* ko(["perm", "set", "loud"], { configDir: dir })
      assert.include(badLevel.stderr, "unknown permission level `loud`")
      assert.isFalse(Fs.existsSync(Path.join(dir, "config.toml")), "no failed perm set wrote the config")

      const whisper = yield* ok(["perm", "set", "converse", "--server", `${S}/`, "--whisper"], { configDir: dir })
      assert.match(whisper.stdout, /^✓ /)
      assert.include(whisper.stdout, "set_perm")
      yield* ok(["perm", "set", "act", "--server", S, "--channel", "ops"], { configDir: dir })
      yield* ok(["perm", "set", "mute", "--server", S, "--channel", "ops"], { configDir: dir })
      yield* ok(["perm", "set", "converse"], { configDir: dir })
      const show = yield* ok(["perm", "show"], { configDir: dir })
      assert.deepStrictEqual(show.stdout.trim().split("\n"), [
        "default: converse",
        `${S} <whisper> -> converse`,
        `${S} ops -> mute`
      ])
      const json = JSON.parse((yield* ok(["perm", "show", "--json"], { configDir: dir })).stdout)
      assert.deepStrictEqual(json, {
        default_permission: "converse",
        overrides: [
          { server: S, channel: null, level: "converse" },
          { server: S, channel: "ops", level: "mute" }
        ]
      })
      const toml = readConfig(dir)
      assert.notInclude(toml, "act", "replace-in-place: one override per scope")
    }))

  it.scopedLive("S-172: server list / server remove", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const empty = yield* ok(["server", "list"], { configDir: dir })
      assert.include(empty.stdout, "conclave register")
      writeConfig(
        dir,
        [
          `[[servers]]`,
          `url = "wss://a.example"`,
          `username = "aaron"`,
          `machine = "workstation"`,
          `[[servers]]`,
          `url = "wss://b.example"`,
          `username = "aaron"`,
          `machine = "workstation"`,
          `[[overrides]]`,
          `server = "wss://a.example"`,
          `channel = "ops"`,
          `level = "converse"`,
          `[[overrides]]`,
          `server = "wss://b.example"`,
          `channel = "ops"`,
          `level = "act"`,
          `[[overrides]]`,
          `server = "wss://b.example"`,
          `level = "converse"`,
          ``
        ].join("\n")
      )
      const list = yield* ok(["server", "list"], { configDir: dir })
      assert.deepStrictEqual(list.stdout.trim().split("\n"), [
        "wss://a.example\taaron/workstation",
        "wss://b.example\taaron/workstation"
      ])
      const json = JSON.parse((yield* ok(["server", "list", "--json"], { configDir: dir })).stdout)
      assert.deepStrictEqual(json.servers[1], { url: "wss://b.example", username: "aaron", machine: "workstation" })
      const removed = yield* ok(["server", "remove", "WSS://B.example/"], { configDir: dir })
      assert.strictEqual(removed.stdout.trim(), "✓ forgot `wss://b.example` (2 permission override(s) removed)")
      const after = yield* ok(["server", "list"], { configDir: dir })
      assert.strictEqual(after.stdout.trim(), "wss://a.example\taaron/workstation")
      const show = yield* ok(["perm", "show"], { configDir: dir })
      assert.include(show.stdout, "wss://a.example ops -> converse")
      assert.notInclude(show.stdout, "b.example")
      const unknown = yield* ko(["server", "remove", "wss://nope.example"], { configDir: dir })
      assert.strictEqual(unknown.code, 1)
      assert.include(unknown.stderr, "no registration for `wss://nope.example`")
    }))

  it.scopedLive("a config.toml that does not parse is an error for verbs that load it", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      writeConfig(dir, "default_permission = [unclosed\n")
      const r = yield* ko(["perm", "show"], { configDir: dir })
      assert.include(r.stderr, "config.toml")
      const s = yield* ko(["status"], { configDir: dir })
      assert.include(s.stderr, "config.toml")
    }))

  it.scopedLive("S-171 (no registrations): status says so, hints at register, exits 0 without a key", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const r = yield* ok(["status"], { configDir: dir })
      assert.include(r.stdout, "no servers registered")
      assert.include(r.stdout, "conclave register --server <url> --username <you>")
      assert.isFalse(Fs.existsSync(Path.join(dir, "key")))
    }))

  it.scopedLive("S-179: invalid inputs fail before contacting a server", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* ok(["key"], { configDir: dir })
      const listener = yield* countingListener
      const U = listener.url
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["machine", "add", "--server", U, "--name", "laptop", "--pubkey", "!!"], "invalid public key"],
        [["machine", "add", "--server", U, "--name", "laptop", "--pubkey", "AAAA"], "invalid public key"],
        [["channel", "create", "--server", U, "ops", "--visibility", "secret"], "unknown visibility tier `secret`"],
        [["channel", "set-visibility", "--server", U, "ops", "hidden"], "unknown visibility tier"],
        [["invite", "create", "--server", U, "--channel", "ops", "--expires-in", "1.5h"], "invalid duration `1.5h`"],
        [["invite", "create", "--server", U, "--channel", "ops", "--expires-in", "-5"], "invalid duration"],
        [["invite", "create", "--server", U, "--channel", "ops", "--expires-in", "+5"], "invalid duration `+5`"],
        [["invite", "create", "--server", U, "--channel", "ops", "--expires-in", "5w"], "invalid duration `5w`"],
        [
          ["invite", "create", "--server", U, "--channel", "ops", "--expires-in", "99999999999999999d"],
          "invalid duration"
        ],
        [["invite", "create", "--server", U, "--channel", "ops", "--uses", "-1"], "--uses"],
        [["invite", "create", "--server", U, "--channel", "ops", "--uses", "0"], "expected an integer 1–4294967295"],
        [["invite", "create", "--server", U, "--channel", "ops", "--uses", "4294967296"], "--uses"],
        [["join", "--server", U, "ops", "--perm", "bogus"], "unknown permission level `bogus`"],
        [["tail", "--server", U, "--channel", "ops", "--since", "soon"], "invalid duration `soon`"],
        [["tail", "--server", U, "--channel", "ops", "--as", "a/b"], "invalid session handle"],
        [["tail", "--server", U, "--channel", "ops", "--before", "0"], "expected an integer 1–9007199254740991"],
        [["tail", "--server", U, "--channel", "ops", "--before", "-1"], "--before"],
        [["tail", "--server", U, "--channel", "ops", "--before", "1.5"], "invalid value for `--before`: `1.5`"],
        [["tail", "--server", U, "--channel", "ops", "--before", "x"], "--before"],
        [["tail", "--server", U, "--channel", "ops", "--before", "9007199254740992"], "--before"],
        [["tail", "--server", U, "--channel", "ops", "--before", "5", "--since", "1h"], "drop one of them"],
        [["send", "--server", U, "--channel", "ops", "--reply-to", "x", "hi"], "--reply-to"],
        [["machine", "add", "--server", U, "--name", "a/b", "--pubkey", "A".repeat(43)], "invalid machine name"],
        [["perm", "set", "bogus"], "unknown permission level `bogus` (expected mute, notify, converse, or act)"],
        [["completions", "tcsh"], "unsupported shell"],
        [["register", "--server", U, "--username", "a/b"], "invalid username"],
        [["register", "--server", U, "--username", "ok", "--machine", "has space"], "invalid machine name"],
        [["who", "--server", "ftp://example.com"], "unsupported URL scheme"],
        [["who", "--server", "not a url"], "invalid server URL"]
      ]
      for (const [args, expected] of cases) {
        const r = yield* ko(args, { configDir: dir })
        assert.strictEqual(r.code, 1, args.join(" "))
        assert.include(r.stderr, expected, args.join(" "))
      }
      assert.strictEqual(listener.count(), 0, "no verb connected to the server")
      assert.isFalse(Fs.existsSync(Path.join(dir, "config.toml")), "nothing was recorded")
    }))

  it.scopedLive("a missing key suggests `conclave key`; an unreachable server is an error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const listener = yield* countingListener
      const noKey = yield* ko(["who", "--server", listener.url], { configDir: dir })
      assert.include(noKey.stderr, "conclave key")
      assert.strictEqual(listener.count(), 0)
      yield* ok(["key"], { configDir: dir })
      const closed = yield* ko(["who", "--server", "ws://127.0.0.1:1"], { configDir: dir })
      assert.strictEqual(closed.code, 1)
      assert.include(closed.stderr, "failed to connect to `ws://127.0.0.1:1`")
      assert.notInclude(closed.stderr, "    at ", "no stack trace")
    }))

  it.live("an unknown verb, flag or help topic fails with exit 1; `help <verb>` shows that verb's help", () =>
    Effect.gen(function*() {
      const r = yield* ko(["frobnicate"])
      assert.strictEqual(r.code, 1)
      const f = yield* ko(["key", "--bogus-flag"])
      assert.strictEqual(f.code, 1)
      const h = yield* ko(["help", "frobnicate"])
      assert.include(h.stderr, "unknown command `frobnicate`")
      const nested = yield* ko(["help", "channel", "nope"])
      assert.include(nested.stderr, "unknown command `channel nope`")
      const help = yield* ok(["help", "channel", "create"])
      assert.include(help.stdout, "--visibility")
    }))

  it.scopedLive("skill install writes <dir>/conclave/SKILL.md, overwriting", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const target = Path.join(dir, "skills")
      Fs.mkdirSync(Path.join(target, "conclave"), { recursive: true })
      Fs.writeFileSync(Path.join(target, "conclave", "SKILL.md"), "stale")
      const r = yield* ok(["skill", "install", "--dir", target])
      const file = Path.join(target, "conclave", "SKILL.md")
      assert.strictEqual(r.stdout.trim(), `✓ installed the conclave skill to ${file}`)
      const text = Fs.readFileSync(file, "utf8")
      assert.isTrue(text.startsWith("---\n"))
      const shown = yield* ok(["skill", "show"])
      assert.strictEqual(shown.stdout, text)
    }))
})
