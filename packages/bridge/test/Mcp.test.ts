import { Mcp } from "@conclave/bridge"
import { Dispatcher } from "@conclave/bridge"
import * as Kit from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js"
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js"
import { type Notification, ResultSchema } from "@modelcontextprotocol/sdk/types.js"
import { Effect, Fiber, Layer } from "effect"
import { PassThrough } from "node:stream"
import { S1 } from "./Harness.js"

/** An SDK client connected in memory to a bridge MCP server over a dispatcher with one server. */
const connected = Effect.gen(function*() {
  const server = Mcp.makeServer("9.9.9")
  const d = yield* Dispatcher.make({
    servers: [{ url: S1, username: "aaron", machine: "w" }],
    handle: { name: "razel", explicit: true },
    policy: { default_permission: "notify", overrides: [] },
    loopLimit: 20
  }).pipe(Effect.provide(Layer.merge(Mcp.sinkLayer(server), Mcp.outboundLayer(server))))
  yield* Mcp.install(server, d)
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair()
  yield* Effect.promise(() => server.connect(serverSide))
  const client = new Client({ name: "test", version: "1" }, { capabilities: {} })
  const notifications: Array<Notification> = []
  client.fallbackNotificationHandler = async (n) => void notifications.push(n)
  yield* Effect.acquireRelease(
    Effect.promise(() => client.connect(clientSide)),
    () => Effect.promise(() => client.close())
  )
  return { client, d, notifications }
})

const errorCode = (p: Promise<unknown>) =>
  Effect.promise(() => p.then(() => undefined, (e: { code?: number; message?: string }) => e))

describe("Mcp", () => {
  it.live("S-117 initialize declares the channel capabilities", () =>
    Effect.gen(function*() {
      const { client } = yield* connected
      const caps = client.getServerCapabilities()!
      assert.deepStrictEqual(caps.experimental, { "claude/channel": {}, "claude/channel/permission": {} })
      assert.deepStrictEqual(caps.tools, { listChanged: true })
      assert.deepStrictEqual(client.getServerVersion(), { name: "conclave", version: "9.9.9" })
      const instructions = client.getInstructions()!
      for (const word of ["<channel>", "send_channel", "whisper", "list_channels", "who", "join_channel"]) {
        assert.include(instructions, word)
      }
    }).pipe(Effect.scoped))

  it.live("S-118 tools/call without a name is -32601; unknown methods too (D-21 server/discover)", () =>
    Effect.gen(function*() {
      const { client } = yield* connected
      const noName = yield* errorCode(client.request({ method: "tools/call", params: { arguments: {} } }, ResultSchema))
      assert.strictEqual(noName?.code, -32601)
      const badName = yield* errorCode(
        client.request({ method: "tools/call", params: { name: 7, arguments: {} } }, ResultSchema)
      )
      assert.strictEqual(badName?.code, -32601)
      const discover = yield* errorCode(client.request({ method: "server/discover", params: {} }, ResultSchema))
      assert.strictEqual(discover?.code, -32601)
      const pong = yield* Effect.promise(() => client.ping())
      assert.deepStrictEqual(pong, {})
    }).pipe(Effect.scoped))

  it.live("tools/list and tools/call results; unknown tool is a tool error", () =>
    Effect.gen(function*() {
      const { client } = yield* connected
      const { tools } = yield* Effect.promise(() => client.listTools())
      const names = tools.map((t) => t.name)
      assert.sameMembers(names, [
        "join_channel",
        "leave_channel",
        "list_channels",
        "who",
        "catch_up",
        "submit_permission",
        "set_perm",
        "whoami",
        "inbox"
      ])
      const unknown = yield* Effect.promise(() => client.callTool({ name: "nope", arguments: {} }))
      assert.deepStrictEqual(unknown, { content: [{ type: "text", text: "unknown tool `nope`" }], isError: true })
      const ok = yield* Effect.promise(() => client.callTool({ name: "set_perm", arguments: { level: "act" } }))
      assert.deepStrictEqual(ok, { content: [{ type: "text", text: "permission updated" }] })
    }).pipe(Effect.scoped))

  it.live("S-119/S-124 permission relay over MCP, and list_changed on a gating change", () =>
    Effect.gen(function*() {
      const { client, notifications } = yield* connected
      yield* Effect.promise(() =>
        client.notification({
          method: "notifications/claude/channel/permission_request",
          params: {
            request_id: "abcde",
            tool_name: "Bash",
            description: "run ls",
            input_preview: "ls -la /tmp",
            newer: 1
          }
        })
      )
      yield* Effect.promise(() =>
        client.callTool({ name: "submit_permission", arguments: { request_id: "abcde", decision: "allow" } })
      )
      yield* Effect.promise(() =>
        client.callTool({ name: "set_perm", arguments: { whisper: true, level: "converse" } })
      )
      yield* Kit.eventually(
        "the request, verdict and list_changed notifications",
        () => notifications.length >= 3,
        "5 seconds"
      )
      const [req, verdict, changed] = notifications
      assert.strictEqual(req!.method, "notifications/claude/channel")
      assert.deepStrictEqual((req!.params as { meta: unknown }).meta, {
        kind: "permission_request",
        request_id: "abcde"
      })
      assert.strictEqual(verdict!.method, "notifications/claude/channel/permission")
      assert.deepStrictEqual(verdict!.params, { request_id: "abcde", behavior: "allow" })
      assert.include((req!.params as { content: string }).content, "ls -la /tmp")
      assert.strictEqual(changed!.method, "notifications/tools/list_changed")
      assert.strictEqual(notifications.length, 3)
    }).pipe(Effect.scoped))

  it.live("serveStdio resolves when stdin ends", () =>
    Effect.gen(function*() {
      const stdin = new PassThrough()
      const stdout = new PassThrough()
      const server = Mcp.makeServer("1")
      const done = yield* Mcp.serveStdio(server, stdin, stdout)
      const fiber = yield* Effect.fork(done)
      stdin.write(JSON.stringify({ jsonrpc: "2.0", id: 1, method: "ping" }) + "\n")
      const line = yield* Effect.async<string>((resume) => {
        stdout.once("data", (b: Buffer) => resume(Effect.succeed(b.toString("utf8"))))
      })
      assert.deepStrictEqual(JSON.parse(line), { jsonrpc: "2.0", id: 1, result: {} })
      stdin.end()
      yield* Fiber.join(fiber).pipe(Effect.timeoutFail({ duration: 1000, onTimeout: () => "stdin end not noticed" }))
    }).pipe(Effect.scoped))

  it.live("initialize echoes protocolVersion, defaulting to 2025-06-18 (SPEC §4.2)", () =>
    Effect.gen(function*() {
      const stdin = new PassThrough()
      const stdout = new PassThrough()
      const server = Mcp.makeServer("1.2.3")
      const d = yield* Dispatcher.make({
        servers: [{ url: S1, username: "aaron", machine: "w" }],
        handle: { name: "razel", explicit: true },
        policy: { default_permission: "notify", overrides: [] },
        loopLimit: 20
      }).pipe(Effect.provide(Layer.merge(Mcp.sinkLayer(server), Mcp.outboundLayer(server))))
      yield* Mcp.install(server, d)
      yield* Mcp.serveStdio(server, stdin, stdout)
      const replies: Array<Record<string, unknown>> = []
      let buffer = ""
      stdout.on("data", (b: Buffer) => {
        buffer += b.toString("utf8")
        let i: number
        while ((i = buffer.indexOf("\n")) >= 0) {
          replies.push(JSON.parse(buffer.slice(0, i)))
          buffer = buffer.slice(i + 1)
        }
      })
      stdin.write(
        JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2031-01-01" } }) +
          "\n"
      )
      stdin.write(JSON.stringify({ jsonrpc: "2.0", id: 2, method: "initialize", params: {} }) + "\n")
      stdin.write("this is not json\n")
      stdin.write(JSON.stringify({ jsonrpc: "2.0", id: 3, method: "ping" }) + "\n")
      yield* Kit.eventually("three replies", () => replies.length >= 3, "5 seconds")
      const byId = (id: number) => replies.find((r) => r["id"] === id)!["result"] as Record<string, unknown>
      assert.strictEqual(byId(1)["protocolVersion"], "2031-01-01")
      assert.strictEqual(byId(2)["protocolVersion"], "2025-06-18")
      assert.deepStrictEqual(byId(2)["serverInfo"], { name: "conclave", version: "1.2.3" })
      assert.deepStrictEqual(byId(2)["capabilities"], {
        experimental: { "claude/channel": {}, "claude/channel/permission": {} },
        tools: { listChanged: true }
      })
      assert.include(byId(2)["instructions"] as string, "untrusted")
      assert.deepStrictEqual(byId(3), {})
    }).pipe(Effect.scoped))

  it("parseLine: blank, garbage and non-object lines are ignored; a missing jsonrpc is tolerated", () => {
    for (const line of ["", "   ", "not json", "[1,2]", "42", "null", "{\"id\":1}"]) {
      assert.isUndefined(Mcp.parseLine(line), JSON.stringify(line))
    }
    assert.deepStrictEqual(Mcp.parseLine("{\"id\":7,\"method\":\"tools/call\",\"params\":{\"arguments\":{}}}"), {
      jsonrpc: "2.0",
      id: 7,
      method: "tools/call",
      params: { arguments: {} }
    })
    assert.deepStrictEqual(Mcp.parseLine("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":\"x\"}"), {
      jsonrpc: "2.0",
      id: 1,
      method: "tools/call"
    })
  })

  it.live("raw stdio: S-118 as written (no jsonrpc member) is answered -32601, bad lines never end the session", () =>
    Effect.gen(function*() {
      const stdin = new PassThrough()
      const stdout = new PassThrough()
      const server = Mcp.makeServer("1")
      const d = yield* Dispatcher.make({
        servers: [{ url: S1, username: "aaron", machine: "w" }],
        handle: { name: "razel", explicit: true },
        policy: { default_permission: "notify", overrides: [] },
        loopLimit: 20
      }).pipe(Effect.provide(Layer.merge(Mcp.sinkLayer(server), Mcp.outboundLayer(server))))
      yield* Mcp.install(server, d)
      yield* Mcp.serveStdio(server, stdin, stdout)
      const replies: Array<Record<string, unknown>> = []
      let buffer = ""
      stdout.on("data", (b: Buffer) => {
        buffer += b.toString("utf8")
        let i: number
        while ((i = buffer.indexOf("\n")) >= 0) {
          replies.push(JSON.parse(buffer.slice(0, i)))
          buffer = buffer.slice(i + 1)
        }
      })
      stdin.write("{\"id\":7,\"method\":\"tools/call\",\"params\":{\"arguments\":{}}}\n")
      stdin.write("\n{broken\r\n" + JSON.stringify({ jsonrpc: "2.0", id: 8, method: "tools/call", params: [1] }) + "\n")
      // One message split across writes, then a CRLF line.
      const call = JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "nope" } })
      stdin.write(call.slice(0, 10))
      stdin.write(call.slice(10) + "\r\n")
      // A 12 MiB line (over the SDK's 10 MiB read buffer) is dropped; the session goes on.
      const huge = "x".repeat(1024 * 1024)
      for (let i = 0; i < 12; i++) stdin.write(huge)
      stdin.write("\n" + JSON.stringify({ jsonrpc: "2.0", id: 10, method: "ping" }) + "\n")
      yield* Kit.eventually("four replies", () => replies.length >= 4, "10 seconds")
      const byId = (id: number) => replies.find((r) => r["id"] === id)
      assert.deepStrictEqual(byId(7), { jsonrpc: "2.0", id: 7, error: { code: -32601, message: "method not found" } })
      assert.deepStrictEqual(byId(8), { jsonrpc: "2.0", id: 8, error: { code: -32601, message: "method not found" } })
      assert.deepStrictEqual(byId(10), { jsonrpc: "2.0", id: 10, result: {} })
      assert.deepStrictEqual(byId(9)?.["result"], {
        content: [{ type: "text", text: "unknown tool `nope`" }],
        isError: true
      })
    }).pipe(Effect.scoped))

  it.live("measured: the SDK's StdioServerTransport alone rejects S-118 as written and closes on a 12 MiB line", () =>
    Effect.gen(function*() {
      const stdin = new PassThrough()
      const stdout = new PassThrough()
      const server = Mcp.makeServer("1")
      const d = yield* Dispatcher.make({
        servers: [{ url: S1, username: "aaron", machine: "w" }],
        handle: { name: "razel", explicit: true },
        policy: { default_permission: "notify", overrides: [] },
        loopLimit: 20
      }).pipe(Effect.provide(Layer.merge(Mcp.sinkLayer(server), Mcp.outboundLayer(server))))
      yield* Mcp.install(server, d)
      const errors: Array<string> = []
      let closed = false
      server.onerror = (e) => void errors.push(e.message)
      server.onclose = () => void (closed = true)
      yield* Effect.promise(() => server.connect(new StdioServerTransport(stdin, stdout)))
      const until = (what: string, cond: () => boolean) => Kit.eventually(what, cond, "5 seconds")
      const replies: Array<string> = []
      stdout.on("data", (b: Buffer) => void replies.push(b.toString("utf8")))
      stdin.write("{\"id\":7,\"method\":\"tools/call\",\"params\":{\"arguments\":{}}}\n")
      stdin.write(JSON.stringify({ jsonrpc: "2.0", id: 8, method: "tools/call", params: [1] }) + "\n")
      // Both are refused by the SDK's parser (its onerror fires once per line): never answered.
      yield* until("two parse errors", () => errors.length >= 2)
      const huge = "x".repeat(1024 * 1024)
      for (let i = 0; i < 12; i++) stdin.write(huge)
      yield* until("the transport to close", () => closed)
      assert.deepStrictEqual(replies, [], "no request was answered")
      yield* Effect.promise(() => server.close())
    }).pipe(Effect.scoped))
})
