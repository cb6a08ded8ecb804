// `conclave hook claude` (D-52, issue 21) against a real `conclave serve` and a real `conclave
// bridge` driven by an MCP SDK client that shows no channel notifications (as a Claude Code session
// started without the channels flag): the hook prints what the session has not surfaced, framed like
// the channel tags, once.
import * as Kit from "@conclave/testkit"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { socketDir } from "../src/HookWire.js"
import { assertBuilt, BIN, callOk, connectAs, eventuallyUp, post, register, startBridge, startServer } from "./E2E.js"

interface HookRun {
  readonly stdout: string
  readonly stderr: string
  readonly code: number
}

/** One run of `conclave --config-dir DIR hook claude`, fed `input` on stdin. */
const runHook = (configDir: string, input: string, env: Readonly<Record<string, string>> = {}) =>
  Effect.async<HookRun>((resume) => {
    const child = execFile(
      process.execPath,
      [BIN, "--config-dir", configDir, "hook", "claude"],
      { env: { ...process.env, NO_COLOR: "1", ...env }, timeout: 20_000 },
      (error, stdout, stderr) => {
        const code = child.exitCode ?? (error !== null && typeof error.code === "number" ? error.code : -1)
        resume(Effect.succeed({ stdout, stderr, code }))
      }
    )
    child.stdin?.end(input)
    return Effect.sync(() => child.kill("SIGKILL"))
  })

const prompt = JSON.stringify({
  session_id: "s-1",
  transcript_path: "/tmp/t.jsonl",
  cwd: "/tmp",
  hook_event_name: "UserPromptSubmit",
  prompt: "what's new?"
})

const stop = (active: boolean) =>
  JSON.stringify({ session_id: "s-1", hook_event_name: "Stop", stop_hook_active: active })

const contextOf = (run: HookRun) => {
  assert.strictEqual(run.code, 0, run.stderr)
  const out = JSON.parse(run.stdout) as { hookSpecificOutput: { hookEventName: string; additionalContext: string } }
  return out.hookSpecificOutput
}

const setup = Effect.gen(function*() {
  const server = yield* startServer()
  const dirA = yield* tempDir()
  const dirH = yield* tempDir()
  const aaron = yield* register(dirA, server.url, "aaron")
  const human = yield* register(dirH, server.url, "hana")
  const admin = yield* connectAs(server.url, aaron, "cli-setup")
  yield* admin.request({ type: "admin", op: { kind: "create_channel", name: "lobby", visibility: "public" } }).pipe(
    Effect.orDie
  )
  const hana = yield* connectAs(server.url, human, "terminal")
  yield* hana.request({ type: "join", channel: "lobby", token: null }).pipe(Effect.orDie)
  return { server, dirA, hana }
})

describe("conclave hook claude (e2e)", { timeout: 90_000 }, () => {
  assertBuilt()

  it.live("a message posted while the session shows no channel tags is printed once, framed, then nothing", () =>
    Effect.scoped(Effect.gen(function*() {
      const { dirA, hana } = yield* setup
      const a = yield* startBridge({ configDir: dirA, args: ["--as", "alice"] })
      yield* eventuallyUp(a)
      yield* callOk(a, "join_channel", { channel: "lobby" })

      // nothing new: no output at all
      const quiet = yield* runHook(dirA, prompt)
      assert.deepStrictEqual(quiet, { stdout: "", stderr: "", code: 0 })

      yield* post(hana, "lobby", "deploy <b>now</b> & then")
      // the bridge has it once it has sent its notification (which this client does not display)
      yield* Kit.eventually("the bridge to receive the post", () => a.channel().length === 1, "10 seconds")
      const framed = a.channel()[0]!.content
      assert.include(framed, `<channel server=`)
      assert.include(framed, "deploy &lt;b&gt;now&lt;/b&gt; &amp; then")

      const first = contextOf(yield* runHook(dirA, prompt))
      assert.strictEqual(first.hookEventName, "UserPromptSubmit")
      assert.strictEqual(first.additionalContext, framed)

      // surfaced once: neither the hook nor the inbox tool shows it again
      assert.deepStrictEqual(yield* runHook(dirA, prompt), { stdout: "", stderr: "", code: 0 })
      assert.strictEqual(yield* callOk(a, "inbox"), "inbox: nothing new since the last call")
    })))

  it.live("Stop: answers with the Stop event name; a Stop already continuing leaves items for the next prompt", () =>
    Effect.scoped(Effect.gen(function*() {
      const { dirA, hana } = yield* setup
      const a = yield* startBridge({ configDir: dirA, args: ["--as", "alice"] })
      yield* eventuallyUp(a)
      yield* callOk(a, "join_channel", { channel: "lobby" })
      yield* post(hana, "lobby", "one")
      yield* post(hana, "lobby", "two")
      yield* Kit.eventually("both posts at the bridge", () => a.channel().length === 2, "10 seconds")

      assert.deepStrictEqual(yield* runHook(dirA, stop(true)), { stdout: "", stderr: "", code: 0 })
      const out = contextOf(yield* runHook(dirA, stop(false)))
      assert.strictEqual(out.hookEventName, "Stop")
      assert.strictEqual(out.additionalContext, `${a.channel()[0]!.content}\n\n${a.channel()[1]!.content}`)

      // taken by the hook: gone from the inbox tool too, and what arrives next is the inbox tool's
      yield* post(hana, "lobby", "three")
      yield* Kit.eventually("the third post at the bridge", () => a.channel().length === 3, "10 seconds")
      const inbox = yield* callOk(a, "inbox")
      assert.include(inbox, "three")
      assert.notInclude(inbox, "one")
      assert.deepStrictEqual(yield* runHook(dirA, prompt), { stdout: "", stderr: "", code: 0 })
    })))

  it.live("a hook takes only from the bridge of its own client process", () =>
    Effect.scoped(Effect.gen(function*() {
      const { dirA, hana } = yield* setup
      // This bridge's parent is a shell (another client); the hook run by this process is not its child.
      const a = yield* startBridge({
        configDir: dirA,
        args: ["--as", "alice"],
        command: ["/bin/sh", "-c", `"${process.execPath}" "${BIN}" --config-dir "${dirA}" bridge --as alice; exit $?`]
      })
      yield* eventuallyUp(a)
      yield* callOk(a, "join_channel", { channel: "lobby" })
      yield* post(hana, "lobby", "for alice's session")
      yield* Kit.eventually("the post at the bridge", () => a.channel().length === 1, "10 seconds")

      const sockets = Fs.readdirSync(socketDir(dirA))
      assert.strictEqual(sockets.length, 1, sockets.join(", "))
      const clientPid = sockets[0]!.split("-")[0]!
      assert.notStrictEqual(clientPid, String(process.pid))

      assert.deepStrictEqual(yield* runHook(dirA, prompt), { stdout: "", stderr: "", code: 0 })
      // Claude Code exports CLAUDE_PID to its hooks: that names the session.
      const out = contextOf(yield* runHook(dirA, prompt, { CLAUDE_PID: clientPid }))
      assert.include(out.additionalContext, "for alice's session")
    })))

  it.live("input that is not Claude Code's hook JSON exits 1 with the reason (never 2, which blocks the prompt)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const notJson = yield* runHook(dir, "hello")
      assert.strictEqual(notJson.code, 1)
      assert.strictEqual(notJson.stdout, "")
      assert.include(notJson.stderr, "error: expected Claude Code's hook JSON on stdin")
      const array = yield* runHook(dir, "[1]")
      assert.strictEqual(array.code, 1)
      assert.include(array.stderr, "hook JSON object")
      const other = yield* runHook(dir, JSON.stringify({ hook_event_name: "PreToolUse" }))
      assert.strictEqual(other.code, 1)
      assert.include(other.stderr, "answers UserPromptSubmit and Stop, not `PreToolUse`")
      assert.include(other.stderr, "conclave setup claude")
      // a socket directory with a stale socket and foreign files: ignored, the stale one removed
      const run = socketDir(dir)
      Fs.mkdirSync(run, { recursive: true })
      Fs.writeFileSync(Path.join(run, "notes.txt"), "x")
      Fs.writeFileSync(Path.join(run, `${process.pid}-999999999.sock`), "")
      assert.deepStrictEqual(yield* runHook(dir, prompt), { stdout: "", stderr: "", code: 0 })
      assert.deepStrictEqual(Fs.readdirSync(run), ["notes.txt"])
    }).pipe(Effect.scoped))
})
