// End-to-end tests of `conclave serve`: spawn the real binary (needs `npx tsc -b packages/cli` first)
// and talk to it with the test kit's protocol client.
import { Auth } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Http from "node:http"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const BIN = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../bin/conclave.js")

interface Serve {
  readonly child: ChildProcess
  readonly url: string
  readonly lines: Array<Record<string, unknown>>
  readonly stderr: () => string
  readonly exited: Effect.Effect<{ readonly code: number | null; readonly signal: string | null }>
}

const baseEnv = (extra: Record<string, string>) => {
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("CONCLAVE_")) env[k] = v
  return { ...env, CONCLAVE_LOG_FORMAT: "json", ...extra }
}

/** Spawn `conclave serve` and wait for its "listening" line. */
const startServe = (
  args: ReadonlyArray<string>,
  env: Record<string, string> = {}
): Effect.Effect<Serve, Error, Scope.Scope> =>
  Effect.gen(function*() {
    const exited = yield* Deferred.make<{ code: number | null; signal: string | null }>()
    const listening = yield* Deferred.make<string, Error>()
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(process.execPath, [BIN, "serve", ...args], { env: baseEnv(env), stdio: "pipe" })),
      (c) => Effect.sync(() => c.exitCode === null && c.signalCode === null && c.kill("SIGKILL"))
    )
    let text = ""
    const lines: Array<Record<string, unknown>> = []
    child.stderr!.on("data", (chunk: Buffer) => {
      text += chunk.toString()
      const parts = text.split("\n")
      text = parts.pop() ?? ""
      for (const line of parts) {
        try {
          const json = JSON.parse(line) as Record<string, unknown>
          lines.push(json)
          if (json.message === "conclave server listening") {
            Deferred.unsafeDone(listening, Exit.succeed(String(json.address)))
          }
        } catch {
          lines.push({ raw: line })
        }
      }
    })
    child.on("exit", (code, signal) => {
      Deferred.unsafeDone(exited, Exit.succeed({ code, signal }))
      Deferred.unsafeDone(
        listening,
        Exit.fail(new Error(`serve exited (${code ?? signal}) before listening: ${JSON.stringify(lines)}`))
      )
    })
    const address = yield* Deferred.await(listening).pipe(
      Effect.timeoutFail({ duration: "20 seconds", onTimeout: () => new Error("serve did not start listening") })
    )
    return {
      child,
      url: `ws://${address}`,
      lines,
      stderr: () => lines.map((l) => JSON.stringify(l)).join("\n"),
      exited: Deferred.await(exited)
    }
  })

/** Run `conclave serve` expecting it to exit on its own. */
const runServe = (args: ReadonlyArray<string>, env: Record<string, string> = {}) =>
  Effect.async<{ code: number | null; stderr: string }>((resume) => {
    const child = spawn(process.execPath, [BIN, "serve", ...args], { env: baseEnv(env), stdio: "pipe" })
    let stderr = ""
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()))
    child.on("exit", (code) => resume(Effect.succeed({ code, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  }).pipe(
    Effect.timeoutFail({ duration: "15 seconds", onTimeout: () => `serve ${args.join(" ")} did not exit within 15 s` }),
    Effect.orDie
  )

/** Handshake as a `cli` client; registers `username/box` when `username` is given. */
const login = (url: string, identity: Kit.Identity, handle: string, username?: string) =>
  Kit.connect(url, {
    identity,
    handle,
    client: "cli",
    ...(username === undefined ? {} : { register: { username, machine: "box" } })
  })

const httpGet = (url: string, path: string) =>
  Effect.async<number, Error>((resume) => {
    Http.get(url.replace("ws://", "http://") + path, (res) => {
      res.resume()
      resume(Effect.succeed(res.statusCode ?? 0))
    }).on("error", (e) => resume(Effect.fail(e)))
  })

describe("conclave serve", () => {
  it.scopedLive("every acknowledged message survives SIGKILL mid-stream (D-5)", () =>
    Effect.gen(function*() {
      const dir = yield* Kit.tempDir()
      const key = Kit.newIdentity()
      const acked = new Map<number, string>()
      yield* Effect.scoped(Effect.gen(function*() {
        const serve = yield* startServe(["--data-dir", dir, "--bind", "127.0.0.1:0", "--rate", "0"])
        const c = yield* login(serve.url, key, "writer", "aaron")
        assert.strictEqual(
          (yield* c.request({ type: "admin", op: { kind: "create_channel", name: "log", visibility: "public" } }))
            .type,
          "ack"
        )
        assert.strictEqual((yield* c.request({ type: "join", channel: "log", token: null })).type, "joined")
        const total = 400
        for (let i = 0; i < total; i++) {
          yield* c.send({
            type: "channel_msg",
            id: `m${i}`,
            channel: "log",
            payload: { kind: "plain", text: `msg ${i}` }
          })
        }
        while (acked.size < 150) {
          const f = yield* c.next()
          if (f.type === "ack" && f.seq !== null && f.id !== undefined) acked.set(f.seq, `msg ${f.id.slice(1)}`)
        }
        serve.child.kill("SIGKILL")
        // acks already on the wire when the process died still count
        for (;;) {
          const f = yield* c.next("300 millis").pipe(Effect.option)
          if (f._tag === "None") break
          if (f.value.type === "ack" && f.value.seq !== null && f.value.id !== undefined) {
            acked.set(f.value.seq, `msg ${f.value.id.slice(1)}`)
          }
        }
        assert.strictEqual((yield* serve.exited).signal, "SIGKILL")
      }))
      const serve = yield* startServe(["--data-dir", dir, "--bind", "127.0.0.1:0"])
      const c = yield* login(serve.url, key, "reader")
      yield* c.request({ type: "join", channel: "log", token: null })
      const stored = new Map<number, string>()
      let since = 0
      for (;;) {
        const page = yield* c.request({ type: "read_since", channel: "log", since_seq: since })
        assert.strictEqual(page.type, "history")
        if (page.type !== "history") break
        for (const m of page.messages) stored.set(m.seq, (m.payload as { text: string }).text)
        if (!page.more) break
        since = page.messages[page.messages.length - 1]!.seq
      }
      assert.isAtLeast(acked.size, 150)
      for (const [seq, text] of acked) assert.strictEqual(stored.get(seq), text, `acked seq ${seq} lost`)
    }))

  it.scopedLive("with no flags it uses the embedded default store and says where (D-13); routes answer", () =>
    Effect.gen(function*() {
      const home = yield* Kit.tempDir()
      const xdg = Path.join(home, "xdg")
      const serve = yield* startServe([], { HOME: home, XDG_DATA_HOME: xdg, CONCLAVE_BIND: "127.0.0.1:0" })
      const expected = Path.join(xdg, "conclave")
      const announced = serve.lines.find((l) => l.message === "using data directory")
      assert.strictEqual(announced?.path, expected, serve.stderr())
      assert.isTrue(Fs.existsSync(Path.join(expected, "conclave.db")))
      assert.strictEqual(yield* httpGet(serve.url, "/health"), 200)
      assert.strictEqual(yield* httpGet(serve.url, "/"), 426)
      assert.strictEqual(yield* httpGet(serve.url, "/elsewhere"), 404)
      const fallback = yield* startServe([], { HOME: home, XDG_DATA_HOME: "", CONCLAVE_BIND: "127.0.0.1:0" })
      assert.strictEqual(
        fallback.lines.find((l) => l.message === "using data directory")?.path,
        process.platform === "darwin"
          ? Path.join(home, "Library", "Application Support", "conclave")
          : Path.join(home, ".local", "share", "conclave")
      )
    }))

  it.scopedLive("CONCLAVE_DATA_DIR and CONCLAVE_ADMINS configure it; --admin (comma lists) replaces the env; --public-url (SPEC §3.1, D-3)", () =>
    Effect.gen(function*() {
      /** Register `username` with a fresh key and report its `server_info.admin`. */
      const adminFlag = (url: string, username: string, host = Auth.authorityOf(url)!) =>
        Effect.gen(function*() {
          const key = Kit.newIdentity()
          const c = yield* Kit.dial(url)
          const established = yield* Kit.handshake(c, {
            identity: key,
            handle: "s",
            host,
            register: { username, machine: "box" },
            client: "cli"
          })
          assert.strictEqual(established.type, "established", JSON.stringify(established))
          const info = yield* c.next()
          if (info.type !== "server_info") return assert.fail(JSON.stringify(info))
          return info.admin
        })
      const dir = Path.join(yield* Kit.tempDir(), "from-env")
      const viaEnv = yield* startServe([], {
        CONCLAVE_BIND: "127.0.0.1:0",
        CONCLAVE_DATA_DIR: dir,
        CONCLAVE_ADMINS: "root, alice"
      })
      assert.strictEqual(viaEnv.lines.find((l) => l.message === "using data directory")?.path, dir)
      // S-113: the JSON line carries the message at fields.message
      const listening = viaEnv.lines.find((l) => String(l.message).includes("listening"))
      assert.deepStrictEqual(listening?.fields, { address: listening?.address, message: "conclave server listening" })
      assert.isTrue(Fs.existsSync(Path.join(dir, "conclave.db")))
      assert.isTrue(yield* adminFlag(viaEnv.url, "root"))
      assert.isTrue(yield* adminFlag(viaEnv.url, "alice"))
      assert.isFalse(yield* adminFlag(viaEnv.url, "bob"))

      const viaFlags = yield* startServe(
        [
          "--ephemeral",
          "--bind",
          "127.0.0.1:0",
          "--admin",
          "carol,dave",
          "--admin",
          "erin",
          "--public-url",
          "wss://Chat.Example.com/"
        ],
        { CONCLAVE_ADMINS: "root" }
      )
      for (const name of ["carol", "dave", "erin"]) assert.isTrue(yield* adminFlag(viaFlags.url, name), name)
      assert.isFalse(yield* adminFlag(viaFlags.url, "root"))
      // --public-url: its authority is accepted as hello.host (D-3)
      assert.isFalse(yield* adminFlag(viaFlags.url, "frank", "chat.example.com"))
    }))

  it.scopedLive("SIGTERM drains: clients get shutdown and close 1001; exit 0 within 5 s (D-19, S-112)", () =>
    Effect.gen(function*() {
      const serve = yield* startServe(["--ephemeral", "--bind", "127.0.0.1:0", "--admin", "root"])
      assert.isTrue(
        serve.lines.some((l) =>
          String(l.message).includes("can be squatted") && String(l.message).includes("root=<pubkey>")
        )
      )
      const c = yield* login(serve.url, Kit.newIdentity(), "s", "aaron")
      const [took, exit] = yield* Effect.timed(Effect.gen(function*() {
        serve.child.kill("SIGTERM")
        assert.deepStrictEqual(yield* c.next(), { type: "shutdown", reason: "server shutting down" })
        assert.strictEqual((yield* c.closed).code, 1001)
        return yield* serve.exited
      }))
      assert.strictEqual(exit.code, 0)
      assert.isBelow(Duration.toMillis(took), 5_000)
      assert.isTrue(serve.lines.some((l) => l.message === "shutdown signal received"))
    }))

  it.live("bad flags exit non-zero with a clear error (D-15, G-13)", () =>
    Effect.gen(function*() {
      const badPin = yield* runServe(["--ephemeral", "--admin", "root=not-a-key"])
      assert.notStrictEqual(badPin.code, 0)
      assert.include(badPin.stderr, "invalid --admin `root=not-a-key`")
      const badEnvPin = yield* runServe(["--ephemeral"], { CONCLAVE_ADMINS: "ok,root=AAAA" })
      assert.notStrictEqual(badEnvPin.code, 0)
      assert.include(badEnvPin.stderr, "root=AAAA")
      const both = yield* runServe(["--ephemeral", "--data-dir", Os.tmpdir()])
      assert.notStrictEqual(both.code, 0)
      assert.include(both.stderr, "mutually exclusive")
      const badBind = yield* runServe(["--ephemeral", "--bind", "nowhere"])
      assert.notStrictEqual(badBind.code, 0)
      assert.include(badBind.stderr, "invalid --bind")
      const badUrl = yield* runServe(["--ephemeral", "--public-url", "not a url"])
      assert.notStrictEqual(badUrl.code, 0)
      assert.include(badUrl.stderr, "invalid --public-url `not a url`")
      const tinyFrames = yield* runServe(["--ephemeral", "--max-frame-bytes", "10"])
      assert.notStrictEqual(tinyFrames.code, 0)
      assert.include(tinyFrames.stderr, "invalid --max-frame-bytes 10")
      const cannotBind = yield* runServe(["--ephemeral", "--bind", "203.0.113.7:4390"])
      assert.notStrictEqual(cannotBind.code, 0)
      assert.include(cannotBind.stderr, "failed to bind `203.0.113.7:4390`")
    }))

  it.scopedLive("--store, --broker and --node-id select the backends by URL (D-41); /status reports them", () =>
    Effect.gen(function*() {
      const dir = yield* Kit.tempDir()
      const file = Path.join(dir, "nested", "store.db")
      const serve = yield* startServe([
        "--bind",
        "127.0.0.1:0",
        "--store",
        `sqlite:${file}`,
        "--broker",
        "memory:",
        "--node-id",
        "node-7"
      ])
      const status = yield* Effect.async<Record<string, unknown>, Error>((resume) => {
        Http.get(serve.url.replace("ws://", "http://") + "/status", (res) => {
          let body = ""
          res.on("data", (c) => (body += c))
          res.on("end", () => resume(Effect.succeed(JSON.parse(body) as Record<string, unknown>)))
        }).on("error", (e) => resume(Effect.fail(e)))
      })
      assert.strictEqual(status.node, "node-7")
      assert.deepStrictEqual(status.store, { kind: "sqlite", ok: true })
      assert.deepStrictEqual(status.broker, { kind: "memory", ok: true })
      assert.isTrue(Fs.existsSync(file), "the SQLite file is where --store says")
      const memory = yield* startServe(["--bind", "127.0.0.1:0"], { CONCLAVE_STORE: "memory:" })
      assert.strictEqual(yield* httpGet(memory.url, "/health"), 200)
    }))

  it.live("bad backend URLs and combinations exit non-zero with a clear error (D-41)", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]> = [
        [["--store", "mysql://x"], "invalid --store `mysql://x`: expected sqlite:PATH, memory: or postgres://"],
        [["--store", "sqlite:"], "sqlite: needs a file path"],
        [["--store", "memory:", "--ephemeral"], "mutually exclusive"],
        [["--store", "memory:", "--data-dir", Os.tmpdir()], "mutually exclusive"],
        [
          ["--ephemeral", "--broker", "redis://x"],
          "invalid --broker `redis://x`: expected memory: or nats://host:port"
        ],
        [["--ephemeral", "--node-id", "a b"], "invalid --node-id `a b`"],
        [["--ephemeral", "--trust-proxy", "proxy.local"], "invalid --trust-proxy `proxy.local`"],
        [
          ["--ephemeral", "--trust-proxy", "10.0.0.0/8", "--trust-proxy", "10.0.0.0/40"],
          "invalid --trust-proxy `10.0.0.0/40`"
        ]
      ]
      for (const [args, message] of cases) {
        const run = yield* runServe(["--bind", "127.0.0.1:0", ...args])
        assert.notStrictEqual(run.code, 0, args.join(" "))
        assert.include(run.stderr, message, args.join(" "))
      }
      const badEnvProxy = yield* runServe(["--bind", "127.0.0.1:0", "--ephemeral"], {
        CONCLAVE_TRUST_PROXY: "10.0.0.0/8,nope"
      })
      assert.notStrictEqual(badEnvProxy.code, 0)
      assert.include(badEnvProxy.stderr, "invalid --trust-proxy `nope`")
      // an unreachable PostgreSQL is a clear start-up failure, not a hang
      const down = yield* runServe(["--bind", "127.0.0.1:0", "--store", "postgres://postgres@127.0.0.1:9/none"])
      assert.notStrictEqual(down.code, 0)
      assert.notInclude(down.stderr, "postgres@", "the URL's credentials are not printed")
    }), 120_000)
  it.live(
    "bad --heartbeat-ms and --nats-prefix values (flag or env) exit non-zero with a clear error (D-42)",
    () =>
      Effect.gen(function*() {
        const cases: ReadonlyArray<readonly [ReadonlyArray<string>, Record<string, string>, string]> = [
          [["--ephemeral", "--heartbeat-ms", "50"], {}, "invalid --heartbeat-ms 50: expected 100..60000"],
          [["--ephemeral", "--heartbeat-ms", "60001"], {}, "invalid --heartbeat-ms 60001: expected 100..60000"],
          [["--ephemeral", "--heartbeat-ms", "soon"], {}, "'soon' is not a integer"],
          [
            ["--ephemeral", "--nats-prefix", "team1"],
            {},
            "--nats-prefix `team1` needs --broker nats://host:port"
          ],
          [
            ["--ephemeral", "--broker", "nats://127.0.0.1:9", "--nats-prefix", "a..b"],
            {},
            "invalid --nats-prefix `a..b`: expected 1–128 characters of dot-separated tokens"
          ],
          [
            ["--ephemeral", "--broker", "nats://127.0.0.1:9", "--nats-prefix", "conclave.>"],
            {},
            "invalid --nats-prefix `conclave.>`"
          ],
          [
            ["--ephemeral", "--broker", "nats://127.0.0.1:9", "--nats-prefix", "x".repeat(129)],
            {},
            "invalid --nats-prefix"
          ],
          [["--ephemeral"], { CONCLAVE_HEARTBEAT_MS: "0" }, "invalid --heartbeat-ms 0: expected 100..60000"],
          [
            ["--ephemeral"],
            { CONCLAVE_BROKER: "nats://127.0.0.1:9", CONCLAVE_NATS_PREFIX: "has space" },
            "invalid --nats-prefix `has space`"
          ]
        ]
        // each case is a cold start of the binary: two at once
        yield* Effect.forEach(cases, ([args, env, message]) =>
          Effect.map(runServe(["--bind", "127.0.0.1:0", ...args], env), (run) => {
            assert.notStrictEqual(run.code, 0, args.join(" "))
            assert.include(run.stderr, message, args.join(" "))
          }), { concurrency: 2, discard: true })
      }),
    120_000
  )
})
