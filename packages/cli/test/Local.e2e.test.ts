// The binary without a server: help, version, key, local config verbs, flag validation before any
// network traffic (S-164, S-171 first half, S-172, S-173, S-177, S-178, S-179).
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import { assertBuilt, BIN, ko, ok } from "./support/Harness.js"

assertBuilt()

const VERBS = [
  "serve",
  "bridge",
  "key",
  "register",
  "machine",
  "server",
  "join",
  "perm",
  "channel",
  "acl",
  "invite",
  "status",
  "send",
  "tail",
  "who",
  "kick",
  "ban",
  "unban",
  "bans",
  "user",
  "skill",
  "completions",
  "demo"
]

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

describe("conclave (local verbs)", () => {
  it.scopedLive("S-164: --help lists every verb in SPEC order, the global options, and no ANSI when piped", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const r = yield* ok(["--help"], { configDir: dir })
      const positions = VERBS.map((v) => r.stdout.search(new RegExp(`^\\s+- ${v}\\b`, "m")))
      for (const [i, v] of VERBS.entries()) assert.isAtLeast(positions[i]!, 0, `help lists ${v}`)
      assert.deepStrictEqual([...positions].sort((a, b) => a - b), positions, "verbs appear in SPEC §6.1 order")
      assert.include(r.stdout, "--config-dir")
      assert.include(r.stdout, "--verbose")
      assert.notInclude(r.stdout, "\x1b[", "no colour on a pipe")
      const sub = yield* ok(["join", "--help"])
      assert.include(sub.stdout, "--perm")
      assert.include(sub.stdout, "--config-dir", "global options are shown on subcommand help too")
    }))

  it.live("-V / --version print the version, also after a subcommand", () =>
    Effect.gen(function*() {
      assert.match((yield* ok(["-V"])).stdout, /^conclave \d+\.\d+\.\d+\n$/)
      assert.match((yield* ok(["--version"])).stdout, /^conclave \d+\.\d+\.\d+\n$/)
      assert.match((yield* ok(["key", "-V"])).stdout, /^conclave \d+\.\d+\.\d+\n$/)
      assert.match((yield* ok(["channel", "list", "--version"])).stdout, /^conclave \d+\.\d+\.\d+\n$/)
    }))

  it.scopedLive("key creates a 0600 key once, prints the same public key every time, --config-dir=DIR works", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const first = yield* ok(["key", `--config-dir=${dir}`])
      const pub = first.stdout.trim()
      assert.match(pub, /^[A-Za-z0-9_-]{43}$/)
      assert.include(first.stderr, "created")
      const mode = Fs.statSync(Path.join(dir, "key")).mode & 0o777
      assert.strictEqual(mode, 0o600)
      const second = yield* ok(["--config-dir", dir, "key"])
      assert.strictEqual(second.stdout.trim(), pub)
      assert.notInclude(second.stderr, "created")
      const json = JSON.parse((yield* ok(["key", "--json"], { configDir: dir })).stdout)
      assert.strictEqual(json.public_key, pub)
      assert.strictEqual(json.created, false)
      const seed = Fs.readFileSync(Path.join(dir, "key"), "utf8")
      assert.notInclude(first.stdout + first.stderr + second.stdout, seed, "the seed is never printed")
    }))

  it.scopedLive("a corrupt key file is an error naming the 32-byte seed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      Fs.writeFileSync(Path.join(dir, "key"), "not-a-key")
      const r = yield* ko(["key"], { configDir: dir })
      assert.strictEqual(r.code, 1)
      assert.include(r.stderr, "32-byte seed")
    }))

  it.live("S-178: completions for bash, zsh and fish mention conclave; other shells fail", () =>
    Effect.gen(function*() {
      for (const shell of ["bash", "zsh", "fish"]) {
        const r = yield* ok(["completions", shell])
        assert.include(r.stdout, "conclave", shell)
      }
      const elvish = yield* ko(["completions", "elvish"])
      assert.include(elvish.stderr, "unsupported shell")
      const builtIn = yield* ok(["--completions", "bash"])
      assert.include(builtIn.stdout, "conclave")
    }))

  it.live("S-177: a closed pipe ends the process quietly", () =>
    Effect.gen(function*() {
      const r = yield* Effect.async<{ stderr: string; code: number | null }>((resume) => {
        const child = spawn(process.execPath, [BIN, "completions", "bash"], {
          stdio: ["ignore", "pipe", "pipe"],
          env: { ...process.env, NO_COLOR: "1" }
        })
        let err = ""
        child.stderr.on("data", (d: Buffer) => (err += d.toString()))
        child.stdout.once("data", () => child.stdout.destroy())
        child.on("exit", (code: number | null) => resume(Effect.succeed({ stderr: err, code })))
      })
      assert.notInclude(r.stderr, "EPIPE")
      assert.notInclude(r.stderr, "Error")
      assert.include([0, 141], r.code ?? 0)
    }))

  it.scopedLive("CONCLAVE_LOG_FORMAT=json writes JSON lines with fields.message to stderr only; -v enables debug", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const r = yield* ko(["who", "--server", "ws://127.0.0.1:1", "-v"], {
        configDir: dir,
        env: { CONCLAVE_LOG_FORMAT: "JSON" }
      })
      assert.strictEqual(r.stdout, "", "nothing on stdout")
      const lines = r.stderr.trim().split("\n").map((l) => JSON.parse(l))
      assert.isAbove(lines.length, 0)
      for (const l of lines) {
        assert.isString(l.message)
        assert.isString(l.level)
        assert.isString(l.timestamp)
        assert.strictEqual(l.fields.message, l.message)
      }
      assert.isTrue(lines.some((l) => l.level === "ERROR" && String(l.message).includes("conclave key")))
      const quiet = yield* ko(["who", "--server", "ws://127.0.0.1:1"], {
        configDir: dir,
        env: { CONCLAVE_LOG_LEVEL: "error", CONCLAVE_LOG_FORMAT: "json" }
      })
      const levels = quiet.stderr.trim().split("\n").map((l) => JSON.parse(l).level)
      assert.deepStrictEqual([...new Set(levels)], ["ERROR"])
      // Notes and usage errors are JSON lines too, so stderr can be parsed line by line.
      const fresh = yield* tempDir()
      const created = yield* ok(["key"], { configDir: fresh, env: { CONCLAVE_LOG_FORMAT: "json" } })
      assert.match(created.stdout, /^[A-Za-z0-9_-]{43}\n$/)
      const note = JSON.parse(created.stderr.trim())
      assert.include(note.fields.message, "created a new machine key")
      const usage = yield* ko(["key", "--bogus-flag"], { configDir: fresh, env: { CONCLAVE_LOG_FORMAT: "json" } })
      const usageLines = usage.stderr.trim().split("\n").map((l) => JSON.parse(l))
      assert.isTrue(usageLines.some((l) => l.level === "ERROR" && String(l.fields.message).includes("--bogus-flag")))
    }))

  it.scopedLive("human log lines: `<timestamp> <LEVEL> <message> key=value`, debug only with -v or CONCLAVE_LOG_LEVEL", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* ok(["key"], { configDir: dir })
      const server = yield* countingListener
      const plain = yield* ko(["who", "--server", server.url], { configDir: dir, env: { CONCLAVE_LOG_LEVEL: "debug" } })
      assert.notInclude(plain.stderr, "\x1b[")
      const verbose = yield* ko(["-v", "who", "--server", server.url], { configDir: dir })
      const quiet = yield* ko(["who", "--server", server.url], { configDir: dir })
      assert.notMatch(quiet.stderr, / DEBUG /)
      assert.strictEqual(verbose.code, 1)
      const bad = yield* ko(["who", "--server", server.url], { configDir: dir, env: { CONCLAVE_LOG_LEVEL: "loud" } })
      assert.match(bad.stderr, /^\S+ WARN +ignoring CONCLAVE_LOG_LEVEL.* value=loud/m)
    }))

  it.scopedLive("S-179 (spawned): invalid flags fail before contacting a server", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* ok(["key"], { configDir: dir })
      const listener = yield* countingListener
      const U = listener.url
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["machine", "add", "--server", U, "--name", "laptop", "--pubkey", "!!"], "invalid public key"],
        [["channel", "create", "--server", U, "ops", "--visibility", "secret"], "unknown visibility tier"],
        [["invite", "create", "--server", U, "--channel", "ops", "--expires-in", "1.5h"], "invalid duration"],
        [["join", "--server", U, "ops", "--perm", "bogus"], "unknown permission level"]
      ]
      for (const [args, expected] of cases) {
        const r = yield* ko(args, { configDir: dir })
        assert.strictEqual(r.code, 1, args.join(" "))
        assert.include(r.stderr, expected, args.join(" "))
        assert.strictEqual(r.stdout, "")
      }
      assert.strictEqual(listener.count(), 0, "no verb connected to the server")
    }))

  it.scopedLive("global options: a missing --config-dir value fails; skill install defaults to ~/.claude/skills", () =>
    Effect.gen(function*() {
      const missing = yield* ko(["--config-dir"])
      assert.strictEqual(missing.code, 1)
      assert.include(missing.stderr, "--config-dir")
      const dir = yield* tempDir()
      const home = yield* ok(["skill", "install"], { env: { HOME: dir } })
      const file = Path.join(dir, ".claude", "skills", "conclave", "SKILL.md")
      assert.include(home.stdout, file)
      assert.isTrue(Fs.readFileSync(file, "utf8").startsWith("---\nname: conclave\n"))
    }))
})
