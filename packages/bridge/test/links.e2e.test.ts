// Real processes: restart recovery, same-server dedupe, defaulted-handle rename, loop guard, exit.
import { LocalConfig } from "@conclave/client"
import * as Kit from "@conclave/testkit"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Option } from "effect"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import {
  assertBuilt,
  BIN,
  callOk,
  connectAs,
  killProcess,
  post,
  register,
  setConfig,
  startBridge,
  startServer
} from "./E2E.js"

const converse = (dir: string) => setConfig(dir, (c) => LocalConfig.setDefault(c, "converse"))

describe("bridge e2e: links", () => {
  assertBuilt()

  it.live(
    "D-22 a SIGKILLed and restarted server is rejoined and the gap injected once each",
    () =>
      Effect.gen(function*() {
        const data = yield* tempDir()
        const first = yield* startServer({ dataDir: data })
        const url = first.url
        const dirA = yield* tempDir()
        const dirH = yield* tempDir()
        const aaron = yield* register(dirA, url, "aaron")
        const human = yield* register(dirH, url, "dana", "desk")
        yield* converse(dirA)
        yield* Effect.scoped(Effect.gen(function*() {
          const c = yield* connectAs(url, aaron, "setup")
          yield* c.request({ type: "admin", op: { kind: "create_channel", name: "ops", visibility: "public" } }).pipe(
            Effect.orDie
          )
        }))
        const a = yield* startBridge({ configDir: dirA, args: ["--as", "alice"] })
        yield* callOk(a, "join_channel", { channel: "ops" })
        yield* Effect.scoped(Effect.gen(function*() {
          const h = yield* connectAs(url, human, "h1")
          yield* h.request({ type: "join", channel: "ops", token: null }).pipe(Effect.orDie)
          yield* post(h, "ops", "before the crash")
        }))
        yield* Kit.eventually("live message", () =>
          a.channel().some((n) => n.content.includes("before the crash")), "10 seconds")

        // Freeze the bridge so it cannot reconnect before the gap is posted.
        process.kill(a.pid, "SIGSTOP")
        yield* first.kill("SIGKILL")
        const second = yield* startServer({ dataDir: data, bind: `127.0.0.1:${first.port}` })
        assert.strictEqual(second.url, url)
        yield* Effect.scoped(Effect.gen(function*() {
          const h = yield* connectAs(url, human, "h2")
          yield* h.request({ type: "join", channel: "ops", token: null }).pipe(Effect.orDie)
          for (const t of ["gap one", "gap two", "gap three"]) {
            yield* post(h, "ops", t)
          }
        }))
        process.kill(a.pid, "SIGCONT")
        yield* Kit.eventually(
          "catch-up injections",
          () =>
            ["gap one", "gap two", "gap three"].every((t) =>
              a.channel().some((n) => n.content.includes(t))
            ),
          "20 seconds"
        )
        // live again after the rejoin; "after" is posted once the catch-up is done, so its injection is
        // the marker that any duplicate catch-up injection would have come before.
        yield* Effect.scoped(Effect.gen(function*() {
          const h = yield* connectAs(url, human, "h3")
          yield* h.request({ type: "join", channel: "ops", token: null }).pipe(Effect.orDie)
          yield* post(h, "ops", "after")
        }))
        yield* Kit.eventually(
          "live",
          () => a.channel().some((n) => n.content.includes("after") && n.meta["catchup"] === undefined),
          "10 seconds"
        )
        for (const t of ["gap one", "gap two", "gap three"]) {
          const hits = a.channel().filter((n) => n.content.includes(t))
          assert.strictEqual(hits.length, 1, t)
          assert.strictEqual(hits[0]!.meta["catchup"], "true")
          assert.include(hits[0]!.content, `catchup="true"`)
        }
        assert.strictEqual(a.channel().filter((n) => n.content.includes("before the crash")).length, 1)
        assert.isTrue(a.channel().some((n) => n.content.includes("Disconnected from")))
        assert.isTrue(a.channel().some((n) => n.content.includes("Reconnected to")))
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("S-159 two URLs of one server: one link disabled with one notice", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const dir = yield* tempDir()
      yield* register(dir, server.url, "aaron")
      const alias = `ws://localhost:${server.port}`
      yield* setConfig(dir, (c) =>
        LocalConfig.setDefault(
          LocalConfig.upsertRegistration(c, { url: alias, username: "aaron", machine: "workstation" }),
          "converse"
        ))
      const b = yield* startBridge({ configDir: dir, args: ["--as", "sess"] })
      yield* Kit.eventually("duplicate notice", () =>
        b.channel().some((n) => n.content.includes("is the same server as")), "10 seconds")
      const notice = b.channel().find((n) =>
        n.content.includes("is the same server as")
      )!
      assert.include(notice.content, "disabled")
      const who = yield* callOk(b, "who")
      assert.strictEqual(who.split("aaron/workstation/sess").length - 1, 1)
      // A tool result is written after every notification sent before it: whoami is the marker.
      assert.include(yield* callOk(b, "whoami"), "disabled (the same server as")
      assert.strictEqual(b.channel().filter((n) => n.content.includes("is the same server as")).length, 1)
    }).pipe(Effect.scoped), 60_000)

  it.live("two bridges with the same defaulted handle end with distinct handles", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const dir = yield* tempDir()
      yield* register(dir, server.url, "aaron")
      const work = yield* tempDir()
      const cwd = Path.join(work, "proj")
      Fs.mkdirSync(cwd)
      const one = yield* startBridge({ configDir: dir, cwd })
      const two = yield* startBridge({ configDir: dir, cwd })
      const handleOf = (b: typeof one) =>
        b.call("whoami").pipe(Effect.map((r) => /^Handle: (\S+)/.exec(r.text)?.[1] ?? ""))
      const [h1, h2] = yield* Kit.eventually(
        "the two bridges to hold distinct handles",
        Effect.zipWith(handleOf(one), handleOf(two), (a, b) =>
          a !== b && a !== "" && b !== "" ? Option.some([a, b] as const) : Option.none()),
        "30 seconds",
        "200 millis"
      )
      assert.sameMembers(
        [h1, h2].map((h) =>
          h.replace(/-\d+$/, "")
        ),
        ["proj", "proj"]
      )
      const renamed = [...one.channel(), ...two.channel()].find((n) => n.content.includes("reconnecting as"))
      assert.isDefined(renamed)
      assert.include(renamed!.content, "--as")
      // both end up online under their own names
      let who = ""
      yield* Kit.eventually(
        () => `both ${h1} and ${h2} online; \`who\` said:\n${who}`,
        one.call("who").pipe(Effect.map((r) => {
          who = r.text
          return who.includes(`aaron/workstation/${h1}`) && who.includes(`aaron/workstation/${h2}`)
            ? Option.some(true)
            : Option.none()
        })),
        "20 seconds",
        "200 millis"
      )
    }).pipe(Effect.scoped), 60_000)

  it.live("D-12 the loop guard trips after the limit and resets on a human message", () =>
    Effect.gen(function*() {
      const server = yield* startServer()
      const dirA = yield* tempDir()
      const dirB = yield* tempDir()
      const aaron = yield* register(dirA, server.url, "aaron")
      const bot = yield* register(dirB, server.url, "bot", "rack")
      yield* converse(dirA)
      yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* connectAs(server.url, aaron, "setup")
        yield* c.request({ type: "admin", op: { kind: "create_channel", name: "ops", visibility: "public" } }).pipe(
          Effect.orDie
        )
      }))
      const a = yield* startBridge({ configDir: dirA, args: ["--as", "alice", "--loop-limit", "3"] })
      yield* callOk(a, "join_channel", { channel: "ops" })
      const agent = yield* connectAs(server.url, bot, "agent", "bridge")
      yield* agent.request({ type: "join", channel: "ops", token: null }).pipe(Effect.orDie)
      for (const t of ["a1", "a2", "a3"]) yield* post(agent, "ops", t)
      yield* Kit.eventually("loop guard notice", () =>
        a.channel().some((n) => n.meta["kind"] === "loop_guard"), "10 seconds")
      const a3 = a.channel().find((n) =>
        n.content.includes("\na3\n")
      )!
      assert.include(a3.content, "Permission level notify")
      assert.strictEqual(a3.meta["origin"], "agent")
      const refused = yield* a.call("send_channel", { channel: "ops", text: "reply" })
      assert.isTrue(refused.isError)
      assert.include(refused.text, "loop guard")
      assert.include(refused.text, "human posts")
      const human = yield* connectAs(server.url, bot, "cli-1", "cli")
      yield* human.request({ type: "join", channel: "ops", token: null }).pipe(Effect.orDie)
      yield* post(human, "ops", "a human speaks")
      yield* Kit.eventually("reset notice", () =>
        a.channel().some((n) =>
          n.content.includes("Loop guard reset")
        ), "10 seconds")
      assert.strictEqual(yield* callOk(a, "send_channel", { channel: "ops", text: "reply" }), "sent to ops")
    }).pipe(Effect.scoped), 60_000)

  it.live(
    "the bridge exits 0 within 1 s of stdin closing, and on SIGTERM/SIGINT; stdout is MCP only",
    () =>
      Effect.gen(function*() {
        const server = yield* startServer()
        const dir = yield* tempDir()
        yield* register(dir, server.url, "aaron")
        const run = (stop: "stdin" | NodeJS.Signals) =>
          Effect.gen(function*() {
            const proc = yield* Effect.acquireRelease(
              Effect.sync(() =>
                spawn(process.execPath, [BIN, "--config-dir", dir, "bridge", "--as", `x${stop}`], {
                  cwd: dir,
                  env: { ...process.env, CONCLAVE_LOG_FORMAT: "json" },
                  stdio: ["pipe", "pipe", "pipe"]
                })
              ),
              (p) => killProcess(p, "SIGKILL")
            )
            let out = ""
            let err = ""
            proc.stdout.on("data", (b: Buffer) => void (out += b.toString("utf8")))
            proc.stderr.on("data", (b: Buffer) => void (err += b.toString("utf8")))
            proc.stdin.write(
              JSON.stringify({
                jsonrpc: "2.0",
                id: 1,
                method: "initialize",
                params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } }
              }) + "\n"
            )
            yield* Kit.eventually(
              "initialized and linked",
              () => out.includes("\n") && err.includes("link up"),
              "10 seconds"
            )
            const exited = Effect.async<number | null>((resume) => {
              if (proc.exitCode !== null) return resume(Effect.succeed(proc.exitCode))
              proc.once("exit", (code) => resume(Effect.succeed(code)))
            })
            const [elapsed, code] = yield* Effect.suspend(() => {
              if (stop === "stdin") proc.stdin.end()
              else proc.kill(stop)
              return exited
            }).pipe(
              Effect.timeoutFail({ duration: 3000, onTimeout: () => `no exit (${stop}) within 3 s` }),
              Effect.timed
            )
            const took = Duration.toMillis(elapsed)
            assert.strictEqual(code, 0, `${stop}: ${err}`)
            assert.isBelow(took, 1000, `${stop} took ${took} ms`)
            for (const line of out.split("\n").filter((l) => l.length > 0)) {
              assert.strictEqual((JSON.parse(line) as { jsonrpc: string }).jsonrpc, "2.0")
            }
          }).pipe(Effect.scoped)
        yield* run("stdin")
        yield* run("SIGTERM")
        yield* run("SIGINT")
      }).pipe(Effect.scoped),
    60_000
  )

  it.live("startup errors: bad flags", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const runBridge = (args: ReadonlyArray<string>) =>
        Effect.async<{ code: number | null; err: string }>((resume) => {
          const p = spawn(process.execPath, [BIN, "--config-dir", dir, "bridge", ...args], {
            stdio: ["pipe", "pipe", "pipe"]
          })
          let err = ""
          p.stderr.on("data", (b: Buffer) => void (err += b.toString("utf8")))
          p.once("exit", (code) => resume(Effect.succeed({ code, err })))
        })
      // No key and no registration start degraded instead (issue 23, item 4: firsthour.e2e.test.ts).
      Fs.writeFileSync(Path.join(dir, "key"), Buffer.alloc(32, 7).toString("base64url"), { mode: 0o600 })
      const badLimit = yield* runBridge(["--loop-limit", "-1"])
      assert.notStrictEqual(badLimit.code, 0)
      assert.include(badLimit.err, "--loop-limit")
      const badHandle = yield* runBridge(["--as", "a/b"])
      assert.notStrictEqual(badHandle.code, 0)
      assert.include(badHandle.err, "invalid session handle `a/b`")
    }).pipe(Effect.scoped), 30_000)
})
