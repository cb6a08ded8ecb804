// Issue 23: what a new user meets with the bridge when something is off, through the MCP SDK client
// against the real binary.
import * as Kit from "@conclave/testkit"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { assertBuilt, BIN, register, startBridge, startServer } from "./E2E.js"

/** Wait (bounded) until `check` holds. */
const until = (what: string, check: Effect.Effect<boolean>, ms = 20_000) =>
  Kit.eventually(what, Effect.map(check, (ok) => (ok ? Option.some(true) : Option.none())), Duration.millis(ms))

describe("bridge e2e: issue 23", () => {
  assertBuilt()

  it.live(
    "item 2: a second bridge in the same directory is the one renamed, once, and nobody sees a notice storm",
    () =>
      Effect.gen(function*() {
        const server = yield* startServer()
        const dir = yield* tempDir()
        yield* register(dir, server.url, "aaron")
        const work = yield* tempDir()
        const cwd = Path.join(work, "api")
        Fs.mkdirSync(cwd)
        const handleOf = (b: { readonly call: (name: string) => Effect.Effect<{ readonly text: string }> }) =>
          b.call("whoami").pipe(Effect.map((r) => /^Handle: (\S+)/.exec(r.text)?.[1] ?? ""))

        const older = yield* startBridge({ configDir: dir, cwd })
        yield* until(
          "the first bridge online as api",
          older.call("who").pipe(Effect.map((r) => r.text.includes("aaron/workstation/api")))
        )
        const newer = yield* startBridge({ configDir: dir, cwd })
        yield* until(
          "the second bridge online as api-2",
          Effect.zipWith(
            newer.call("who"),
            handleOf(newer),
            (who, handle) => who.text.includes("aaron/workstation/api-2") && handle === "api-2"
          )
        )
        // A fight starts with the newcomer's first dial superseding the older session (5 times in 1.3 s
        // before the fix): the server logged no supersede at all, now that both are online.
        assert.notInclude(server.stderr(), "superseded", "no session was superseded")
        // Each tool result is written after every notification sent before it: whoami is the marker.
        assert.strictEqual(yield* handleOf(older), "api")
        assert.strictEqual(yield* handleOf(newer), "api-2")
        assert.deepStrictEqual(older.channel().map((n) => n.content), [], "the older session sees nothing")
        const notices = newer.channel().map((n) => n.content)
        assert.strictEqual(notices.length, 1, notices.join("\n"))
        assert.include(notices[0], "reconnecting as `api-2`")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "item 7: send_channel to a channel not joined says so; a leading # in a tool argument is dropped",
    () =>
      Effect.gen(function*() {
        const server = yield* startServer({ admins: ["aaron"] })
        const dir = yield* tempDir()
        yield* register(dir, server.url, "aaron")
        const bridge = yield* startBridge({ configDir: dir })
        yield* until("the link up", bridge.call("who").pipe(Effect.map((r) => !r.isError)))
        const created = yield* bridge.call("create_channel", { name: "#ops" })
        assert.isFalse(created.isError, created.text)
        const notJoined = yield* bridge.call("send_channel", { channel: "#ops", text: "hi" })
        assert.isTrue(notJoined.isError)
        assert.include(notJoined.text, "not joined")
        assert.include(notJoined.text, "#ops on")
        assert.include(notJoined.text, "join_channel")
        assert.notInclude(notJoined.text, "##ops")
        const joined = yield* bridge.call("join_channel", { channel: "#ops", perm: "converse" })
        assert.isFalse(joined.isError, joined.text)
        const sent = yield* bridge.call("send_channel", { channel: "#ops", text: "hi" })
        assert.isFalse(sent.isError, sent.text)
        assert.strictEqual(sent.text, "sent to ops")
        const list = yield* bridge.call("list_channels")
        assert.notInclude(list.text, "##ops")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "item 4: without a key or a registration the bridge starts degraded, says why and the fix, and links once registered",
    () =>
      Effect.gen(function*() {
        const server = yield* startServer()
        const dir = yield* tempDir()
        const bridge = yield* startBridge({ configDir: dir })
        const instructions = bridge.client.getInstructions() ?? ""
        assert.include(instructions, "NOT connected")
        assert.include(instructions, "no machine key")
        assert.include(instructions, "conclave register --server")
        const who = yield* bridge.call("whoami")
        assert.isFalse(who.isError)
        assert.include(who.text, "conclave is not connected")
        const tool = yield* bridge.call("list_channels")
        assert.isTrue(tool.isError)
        assert.include(tool.text, "conclave register")

        // The user runs `conclave register` in a terminal: the bridge notices and links.
        yield* register(dir, server.url, "aaron")
        yield* until(
          "the link up after registering",
          bridge.call("whoami").pipe(Effect.map((r) => r.text.includes("; link up;")))
        )
        assert.isAtLeast(bridge.listChanged(), 1)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "item 4: a key the server does not know: whoami and the tools say so at once, with the register command",
    () =>
      Effect.gen(function*() {
        const server = yield* startServer()
        const dir = yield* tempDir()
        yield* register(dir, server.url, "aaron")
        const other = yield* tempDir()
        // Same config, a key the server never saw (as after an --ephemeral restart).
        Fs.copyFileSync(Path.join(dir, "config.toml"), Path.join(other, "config.toml"))
        Fs.writeFileSync(Path.join(other, "key"), Buffer.alloc(32, 9).toString("base64url"), { mode: 0o600 })
        const bridge = yield* startBridge({ configDir: other })
        yield* until(
          "whoami to explain the failed link",
          bridge.call("whoami").pipe(Effect.map((r) => r.text.includes("not registered on")))
        )
        const who = (yield* bridge.call("whoami")).text
        assert.include(
          who,
          `not registered on ${server.url}: run \`conclave register --server ${server.url} --username`
        )
        const [took, tool] = yield* Effect.timed(bridge.call("list_channels"))
        assert.isTrue(tool.isError)
        assert.include(tool.text, "not registered on")
        assert.isBelow(Duration.toMillis(took), 5_000, "no 10 s wait")
      }).pipe(Effect.scoped),
    60_000
  )
})

/** Claude Code's own CLI (a root devDependency, pinned), run offline in a temporary HOME (STACK.md). */
const CLAUDE = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../../node_modules/.bin/claude")

const claude = (home: string, args: ReadonlyArray<string>) =>
  Effect.async<{ readonly code: number | null; readonly out: string }>((resume) => {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      HOME: home,
      CLAUDE_CONFIG_DIR: Path.join(home, ".claude"),
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      MCP_TIMEOUT: "10000",
      NO_COLOR: "1"
    }
    delete env["ANTHROPIC_API_KEY"]
    const child = execFile(
      CLAUDE,
      [...args],
      { cwd: home, env },
      (error, stdout, stderr) =>
        resume(Effect.succeed({ code: error === null ? 0 : child.exitCode, out: `${stdout}${stderr}` }))
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(
    Effect.timeoutFail({ duration: "45 seconds", onTimeout: () => `claude ${args.join(" ")} did not end within 45 s` }),
    Effect.orDie
  )

/** `claude mcp add` the bridge over `configDir`, then the status line `claude mcp get` reports. */
const mcpStatus = (home: string, configDir: string) =>
  Effect.gen(function*() {
    yield* claude(home, ["mcp", "remove", "conclave", "-s", "local"])
    const added = yield* claude(home, [
      "mcp",
      "add",
      "--scope",
      "local",
      "conclave",
      "--",
      process.execPath,
      BIN,
      "--config-dir",
      configDir,
      "bridge"
    ])
    assert.strictEqual(added.code, 0, added.out)
    const got = yield* claude(home, ["mcp", "get", "conclave"])
    return /Status: (.*)/.exec(got.out)?.[1]?.trim() ?? `no status line in:\n${got.out}`
  })

describe("bridge e2e: issue 23, item 4, as Claude Code sees it (`claude mcp get`)", () => {
  it.live(
    "unregistered, server down, and linked: Claude Code shows the bridge connected each time",
    () =>
      Effect.gen(function*() {
        assert.isTrue(Fs.existsSync(CLAUDE), `${CLAUDE} is missing: run \`npm install\` (root devDependency)`)
        const home = yield* tempDir("conclave-claude-home-")
        const version = yield* claude(home, ["--version"])
        assert.include(version.out, "Claude Code", version.out)

        // No key and no registration: degraded, not CONNECTION_CLOSED.
        const fresh = yield* tempDir()
        assert.strictEqual(yield* mcpStatus(home, fresh), "✔ Connected")

        // Registered, then the server goes away: still connected (the tools say why).
        const down = yield* tempDir()
        const gone = yield* startServer()
        yield* register(down, gone.url, "aaron")
        yield* gone.kill("SIGKILL")
        assert.strictEqual(yield* mcpStatus(home, down), "✔ Connected")

        // Registered and up.
        const server = yield* startServer()
        const linked = yield* tempDir()
        yield* register(linked, server.url, "aaron")
        assert.strictEqual(yield* mcpStatus(home, linked), "✔ Connected")
      }).pipe(Effect.scoped),
    180_000
  )
})
