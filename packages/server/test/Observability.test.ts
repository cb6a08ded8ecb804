import { expectType, op, plain, reconnect, register, tempDir } from "@conclave/testkit"
import { SqlClient } from "@effect/sql"
import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Context, Effect, Layer, Logger, LogLevel, Option, Tracer } from "effect"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Path from "node:path"
import * as ServerConfig from "../src/ServerConfig.js"
import { ServerAddress, ServerLive } from "../src/ServerLive.js"
import * as SqliteStore from "../src/SqliteStore.js"
import * as Telemetry from "../src/Telemetry.js"
import { capturing } from "./support/Observe.js"

describe("Observability", () => {
  it.scopedLive("logs and spans carry paths, kinds and channels, never bodies (S-101, SPEC §3.20)", () =>
    Effect.gen(function*() {
      const { capture, lines } = capturing()
      const base = yield* Effect.tracer
      const spans: Array<Tracer.Span> = []
      const recording = Tracer.make({
        span: (name, parent, context, links, startTime, kind, options) => {
          const span = base.span(name, parent, context, links, startTime, kind, options)
          spans.push(span)
          return span
        },
        context: base.context
      })
      const dir = yield* tempDir()
      const ctx = yield* Layer.build(
        ServerLive.pipe(
          Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0, admins: [{ user: "root", pin: null }] })),
          Layer.provide(SqliteStore.layer({ filename: Path.join(dir, "conclave.db") }))
        )
      ).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Logger.withMinimumLogLevel(LogLevel.Debug),
        Effect.withTracer(recording)
      )
      const { port, url } = Context.get(ctx, ServerAddress)
      const aaron = yield* register(url, "aaron", "machine", "session")
      yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "public" }))
      yield* aaron.request({ type: "join", channel: "ops", token: null })
      expectType(yield* aaron.request({ type: "channel_msg", channel: "ops", payload: plain("observable") }), "ack")
      yield* aaron.request({ type: "read_since", channel: "ops", since_seq: 0 })
      // a whisper is answered without an effect step; its span is recorded all the same
      expectType(yield* aaron.request({ type: "whisper", target: aaron.path, payload: plain("hushed") }), "ack")
      yield* aaron.request({ type: "join", channel: "ghost", token: null })
      const token = expectType(
        yield* aaron.request(op({ kind: "invite_create", channel: "ops", uses: null, expires_in_secs: null })),
        "invite_token"
      ).token
      // the same path again supersedes (logged with the path); an undecodable frame's detail is not logged
      yield* reconnect(url, aaron.identity, "session")
      const sloppy = yield* register(url, "sloppy", "machine", "s")
      yield* sloppy.send(
        JSON.stringify({ type: "channel_msg", channel: "ops", payload: { kind: "plain", text: ["leaky-body"] } })
      )
      yield* sloppy.closed

      const listening = lines.find((l) => l.message === "conclave server listening")
      assert.strictEqual(listening?.annotations.address, `127.0.0.1:${port}`)
      const established = lines.find((l) => l.message === "session established")
      assert.strictEqual(established?.level, "INFO")
      assert.strictEqual(established?.annotations.path, "aaron/machine/session")
      assert.strictEqual(established?.annotations.user, "aaron")
      assert.strictEqual(established?.annotations.machine, "machine")
      // written from the socket's callbacks (auth) as from the handshake fiber (register): the same line
      const establishedLines = lines.filter((l) => l.message === "session established")
      assert.deepStrictEqual(
        establishedLines.map((l) => [l.annotations.path, l.annotations.remote]),
        [
          ["aaron/machine/session", "127.0.0.1"],
          ["aaron/machine/session", "127.0.0.1"],
          ["sloppy/machine/s", "127.0.0.1"]
        ]
      )
      assert.isTrue(
        lines.some((l) => l.level === "WARN" && l.message.includes("root") && l.message.includes("squatted"))
      )
      const errorLine = lines.find((l) => l.message === "error frame emitted")
      assert.strictEqual(errorLine?.level, "WARN")
      assert.strictEqual(errorLine?.annotations.kind, "not_found")
      assert.strictEqual(errorLine?.annotations.message, "channel `ghost` not found")
      const superseded = lines.find((l) => l.message === "session superseded by a newer connection")
      assert.strictEqual(superseded?.level, "INFO")
      assert.strictEqual(superseded?.annotations.path, "aaron/machine/session")
      assert.isTrue(
        lines.some((l) => l.message === "session force-dropped" && String(l.annotations.reason).includes("superseded"))
      )
      assert.isTrue(
        lines.some((l) => l.level === "DEBUG" && l.message === "frame" && l.annotations.kind === "channel_msg")
      )

      const named = (name: string) => spans.filter((s) => s.name === name)
      for (const name of ["register", "join", "post", "read_since", "admin", "whisper"]) {
        assert.isAbove(named(name).length, 0, name)
      }
      const whisper = named("whisper")[0]!
      assert.strictEqual(whisper.attributes.get("target"), "aaron/machine/session")
      assert.strictEqual(whisper.attributes.get("path"), "aaron/machine/session")
      assert.strictEqual(whisper.status._tag, "Ended")
      const post = named("post")[0]!
      assert.strictEqual(post.attributes.get("channel"), "ops")
      assert.strictEqual(post.attributes.get("path"), "aaron/machine/session")
      assert.strictEqual(
        named("admin").find((s) => s.attributes.get("op") === "invite_create")?.attributes.get("channel"),
        "ops"
      )

      const everything = JSON.stringify(lines) +
        JSON.stringify(spans.map((s) => [s.name, [...s.attributes.entries()]]))
      assert.notInclude(everything, "observable")
      assert.notInclude(everything, "hushed")
      assert.notInclude(everything, "leaky-body")
      assert.notInclude(everything, token)
      assert.notInclude(everything, aaron.identity.pubkey)
    }))

  it.scopedLive("lines below the minimum level are not written, from the callbacks or from fibers", () =>
    Effect.gen(function*() {
      const levels: Array<string> = []
      const capture = Logger.make(({ logLevel }) => void levels.push(logLevel.label))
      const dir = yield* tempDir()
      const ctx = yield* Layer.build(
        ServerLive.pipe(
          Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0 })),
          Layer.provide(SqliteStore.layer({ filename: Path.join(dir, "conclave.db") }))
        )
      ).pipe(
        Effect.provide(Logger.replace(Logger.defaultLogger, capture)),
        Logger.withMinimumLogLevel(LogLevel.Warning)
      )
      const { url } = Context.get(ctx, ServerAddress)
      const aaron = yield* register(url, "aaron", "machine", "session")
      const again = yield* reconnect(url, aaron.identity, "session")
      yield* again.request({ type: "join", channel: "ghost", token: null })
      // the superseded session's and the unknown channel's error frames; no INFO line (established, superseded)
      assert.deepStrictEqual(levels, ["WARN", "WARN"])
    }))

  it.scopedLive("a storage failure of a post started in the socket's callback is logged as the processor logs it", () =>
    Effect.gen(function*() {
      const { capture, lines } = capturing()
      const dir = yield* tempDir()
      const filename = Path.join(dir, "conclave.db")
      const ctx = yield* Layer.build(
        ServerLive.pipe(
          Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0 })),
          Layer.provide(SqliteStore.layer({ filename }))
        )
      ).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, capture)), Logger.withMinimumLogLevel(LogLevel.Info))
      const { url } = Context.get(ctx, ServerAddress)
      const aaron = yield* register(url, "aaron", "machine", "session")
      yield* aaron.request(op({ kind: "create_channel", name: "ops", visibility: "public" }))
      expectType(yield* aaron.request({ type: "join", channel: "ops", token: null }), "joined")
      const sql = yield* Layer.build(SqliteStore.layerSqlite({ filename })).pipe(
        Effect.map(Context.get(SqlClient.SqlClient))
      )
      yield* Effect.orDie(sql`DROP TABLE messages`)
      const refused = yield* aaron.request({ type: "channel_msg", channel: "ops", payload: plain("secret-body") })
      assert.strictEqual(expectType(refused, "error").error.kind, "internal")
      const failure = lines.find((l) => l.message === "store failure")
      assert.strictEqual(failure?.level, "WARN")
      assert.strictEqual(failure?.annotations.operation, "append message")
      assert.strictEqual(failure?.annotations.path, "aaron/machine/session")
      assert.include(String(failure?.annotations.cause), "SqlError")
      const errorLine = lines.find((l) => l.message === "error frame emitted")
      assert.deepStrictEqual(
        [errorLine?.level, errorLine?.annotations.kind, errorLine?.annotations.message, errorLine?.annotations.path],
        ["WARN", "internal", "storage failure during append message", "aaron/machine/session"]
      )
      assert.notInclude(JSON.stringify(lines), "secret-body")
    }))

  it("OTEL_EXPORTER_OTLP_HEADERS parsing", () => {
    assert.deepStrictEqual(Telemetry.parseHeaders("authorization=Basic%20dGVzdA==, x-tenant = a=b ,bad,=x"), {
      authorization: "Basic dGVzdA==",
      "x-tenant": "a=b"
    })
  })

  it.scopedLive("the OTLP exporter posts spans to <base>/v1/traces with the configured headers (S-114)", () =>
    Effect.gen(function*() {
      const seen: Array<{ path: string; auth: string | undefined; body: string }> = []
      const collector = yield* Effect.acquireRelease(
        Effect.async<Http.Server>((resume) => {
          const s = Http.createServer((req, res) => {
            let body = ""
            req.on("data", (c) => (body += c))
            req.on("end", () => {
              seen.push({ path: req.url ?? "", auth: req.headers.authorization, body })
              res.writeHead(200, { "content-type": "application/json" }).end("{}")
            })
          })
          s.listen(0, "127.0.0.1", () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.sync(() => s.close())
      )
      const base = `http://127.0.0.1:${(collector.address() as AddressInfo).port}/`
      const found = yield* Telemetry.settings.pipe(
        Effect.withConfigProvider(ConfigProvider.fromMap(
          new Map([
            ["CONCLAVE_OTLP_ENDPOINT", base],
            ["OTEL_EXPORTER_OTLP_HEADERS", "authorization=Basic dGVzdC10b2tlbg=="],
            ["OTEL_BSP_SCHEDULE_DELAY", "100"]
          ])
        ))
      )
      const settings = Option.getOrThrow(found)
      assert.strictEqual(settings.baseUrl, base.slice(0, -1))
      yield* Effect.scoped(
        Effect.withSpan("join", { attributes: { channel: "ops" } })(Effect.void).pipe(
          Effect.provide(Telemetry.layerOtlp(settings))
        )
      )
      const traces = seen.find((r) => r.path === "/v1/traces")
      assert.isDefined(traces, JSON.stringify(seen))
      assert.strictEqual(traces!.auth, "Basic dGVzdC10b2tlbg==")
      assert.include(traces!.body, "\"join\"")
      assert.include(traces!.body, "conclave")
      // no endpoint → no exporter
      const none = yield* Telemetry.settings.pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map())))
      assert.isTrue(Option.isNone(none))
    }))
})
