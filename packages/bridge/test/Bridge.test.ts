import { Bridge } from "@conclave/bridge"
import type { Connection } from "@conclave/client"
import { Identity, LocalConfig } from "@conclave/client"
import * as Kit from "@conclave/testkit"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Either, Fiber, Option, Stream } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { PassThrough } from "node:stream"
import { ME } from "./Harness.js"

const options = (dir: string, over: Partial<Bridge.BridgeOptions> = {}): Bridge.BridgeOptions => ({
  configDir: dir,
  servers: [],
  handle: Option.none(),
  loopLimit: Option.none(),
  cwd: "/work/proj",
  ...over
})

const withKey = (dir: string) => Identity.save(dir, Identity.generate())

describe("Bridge startup (SPEC §4.1)", () => {
  /** Run the bridge until it answers `initialize`; its instructions (issue 23: degraded, not exiting). */
  const instructionsOf = (dir: string, over: Partial<Bridge.BridgeOptions> = {}) =>
    Effect.gen(function*() {
      const stdin = new PassThrough()
      const stdout = new PassThrough()
      let text = ""
      stdout.on("data", (b: Buffer) => void (text += b.toString("utf8")))
      const fiber = yield* Effect.fork(Bridge.run(options(dir, { stdin, stdout, ...over })))
      stdin.write(
        JSON.stringify({
          jsonrpc: "2.0",
          id: 1,
          method: "initialize",
          params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } }
        }) + "\n"
      )
      yield* Kit.eventually("the initialize reply", () => text.includes("\n"), "5 seconds")
      stdin.end()
      yield* Fiber.join(fiber).pipe(Effect.timeoutFail({ duration: 2000, onTimeout: () => "did not stop" }))
      const reply = JSON.parse(text.slice(0, text.indexOf("\n"))) as { result: { instructions: string } }
      return reply.result.instructions
    })

  it.live("a missing key: the bridge starts degraded and says to run `conclave key` / `register`", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const instructions = yield* instructionsOf(dir)
      assert.include(instructions, "NOT connected")
      assert.include(instructions, "conclave key")
      assert.include(instructions, "conclave register")
    }).pipe(Effect.scoped))

  it.live("no registrations, or no --server match: degraded with the no-server text", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* withKey(dir)
      assert.include(yield* instructionsOf(dir), Bridge.NO_SERVER)
      yield* LocalConfig.save(dir, {
        ...LocalConfig.empty,
        servers: [{ url: "ws://127.0.0.1:1", username: "a", machine: "m" }]
      })
      assert.include(yield* instructionsOf(dir, { servers: ["ws://elsewhere:9"] }), Bridge.NO_SERVER)
    }).pipe(Effect.scoped))

  it.live("a broken config file is degraded with its error; a bad --as is a startup error", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* withKey(dir)
      fs.writeFileSync(path.join(dir, "config.toml"), "default_permission = [\n")
      assert.include(yield* instructionsOf(dir), "config.toml")
      fs.writeFileSync(path.join(dir, "config.toml"), `[[servers]]\nurl = "ws://h:1"\nusername = "a"\nmachine = "m"\n`)
      const bad = yield* Effect.either(Bridge.run(options(dir, { handle: Option.some("a/b") })))
      assert.include(
        Either.getLeft(bad).pipe(Option.map((e) => e.message), Option.getOrElse(() => "")),
        "invalid session handle"
      )
    }).pipe(Effect.scoped))

  it("default handle: cwd basename, `session` for /, invalid characters replaced", () => {
    assert.strictEqual(Bridge.defaultHandle("/home/a/razel"), "razel")
    assert.strictEqual(Bridge.defaultHandle("/"), "session")
    assert.strictEqual(Bridge.defaultHandle("/home/a/my project"), "my-project")
    assert.strictEqual(Bridge.defaultHandle("/x/" + "y".repeat(100)).length, 64)
  })

  it("--server selection compares normalized URLs", () => {
    const config = {
      ...LocalConfig.empty,
      servers: [
        { url: "ws://a.test", username: "u", machine: "m" },
        { url: "ws://b.test", username: "u", machine: "m" }
      ]
    }
    assert.deepStrictEqual(Bridge.selectServers(config, []).selected.length, 2)
    const picked = Bridge.selectServers(config, ["WS://A.test/", "ws://nope"])
    assert.deepStrictEqual(picked.selected.map((r) => r.url), ["ws://a.test"])
    assert.deepStrictEqual(picked.unknown, ["ws://nope"])
    // Two spellings of one URL are linked once (two links to one URL would supersede each other).
    const twice = { ...config, servers: [...config.servers, { url: "WS://A.TEST/", username: "v", machine: "n" }] }
    assert.deepStrictEqual(Bridge.selectServers(twice, []).selected.map((r) => r.url), ["ws://a.test", "ws://b.test"])
    assert.deepStrictEqual(Bridge.selectServers(twice, ["ws://a.test"]).selected.length, 1)
  })

  it.live("runs MCP on stdio, links the servers, and stops when stdin ends", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* withKey(dir)
      yield* LocalConfig.save(dir, {
        ...LocalConfig.empty,
        servers: [{ url: "ws://fake.test", username: "aaron", machine: "workstation" }]
      })
      const dialed: Array<string> = []
      const connect = (o: Connection.ConnectOptions) =>
        Effect.sync(() => {
          dialed.push(`${o.url} as ${o.handle} (${o.client})`)
          return {
            url: o.url,
            handle: o.handle,
            instanceId: Option.none(),
            path: { ...ME, session: o.handle },
            admin: true,
            request: () => Effect.never,
            send: () => Effect.void,
            unsolicited: Stream.never,
            closed: Effect.never,
            isClosed: Effect.succeed(false),
            closeCode: Effect.succeed(undefined)
          } satisfies Connection.Connection
        })
      const stdin = new PassThrough()
      const stdout = new PassThrough()
      const lines: Array<Record<string, unknown>> = []
      let buffer = ""
      stdout.on("data", (b: Buffer) => {
        buffer += b.toString("utf8")
        let i: number
        while ((i = buffer.indexOf("\n")) >= 0) {
          lines.push(JSON.parse(buffer.slice(0, i)))
          buffer = buffer.slice(i + 1)
        }
      })
      const fiber = yield* Effect.fork(Bridge.run(options(dir, { stdin, stdout, connect, cwd: "/tmp/myproj" })))
      const send = (m: unknown) => stdin.write(JSON.stringify(m) + "\n")
      send({
        jsonrpc: "2.0",
        id: 1,
        method: "initialize",
        params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "t", version: "1" } }
      })
      send({ jsonrpc: "2.0", method: "notifications/initialized" })
      yield* Kit.eventually(
        "list_changed after the admin link",
        () => lines.some((l) => l["method"] === "notifications/tools/list_changed"),
        "5 seconds"
      )
      send({ jsonrpc: "2.0", id: 2, method: "tools/list" })
      send({ jsonrpc: "2.0", id: 3, method: "tools/call", params: { arguments: {} } })
      yield* Kit.eventually("the reply to request 3", () => lines.some((l) => l["id"] === 3), "5 seconds")
      const init = lines.find((l) => l["id"] === 1)!["result"] as Record<string, unknown>
      assert.strictEqual(init["protocolVersion"], "2025-06-18")
      assert.deepStrictEqual(dialed, ["ws://fake.test as myproj (bridge)"])
      // admin asserted by the (fake) server: list_changed, then the admin tools are listed
      assert.isTrue(lines.some((l) => l["method"] === "notifications/tools/list_changed"))
      const tools = (lines.find((l) => l["id"] === 2)!["result"] as { tools: Array<{ name: string }> }).tools
      assert.include(tools.map((t) => t.name), "create_channel")
      assert.strictEqual((lines.find((l) => l["id"] === 3)!["error"] as { code: number }).code, -32601)
      stdin.end()
      yield* Fiber.join(fiber).pipe(
        Effect.timeoutFail({ duration: 1000, onTimeout: () => "did not stop on stdin end" })
      )
    }).pipe(Effect.scoped))
})
