/**
 * Bad MCP input to a spawned `conclave bridge` (BENCH-AND-RELIABILITY §6.3, SPEC §4.7, hardening
 * #32): malformed JSON-RPC lines, unknown methods and tools, wrong argument types for every tool,
 * non-object arguments, calls without a name, odd ids, huge lines, garbage notifications. The
 * bridge must answer every request that has an id, refuse every wrongly typed call, and keep
 * running (its link stays up and `whoami` answers at the end).
 */
import * as Kit from "@conclave/testkit"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Deferred, type Duration, Effect, Option } from "effect"
import * as Path from "node:path"
import * as Prng from "../src/Prng.js"
import * as Processes from "../src/Processes.js"
import * as Profile from "../src/Profile.js"
import * as Report from "../src/Report.js"

const rows: Array<Report.Row> = []
const notes: Array<string> = []

interface Tool {
  readonly name: string
  readonly inputSchema: { readonly properties?: Record<string, { readonly type?: string | ReadonlyArray<string> }> }
}

const wrongFor = (type: string | ReadonlyArray<string> | undefined, rng: Prng.Prng): unknown => {
  const t = Array.isArray(type) ? type[0] : type
  switch (t) {
    case "string":
      return rng.pick([42, true, { a: 1 }, ["x"], -1.5])
    case "number":
    case "integer":
      return rng.pick(["12", "x", true, { n: 1 }, [1], 1.5e400 > 0 ? "Infinity" : 0])
    case "boolean":
      return rng.pick(["yes", 1, "true", {}, []])
    case "array":
      return rng.pick(["a,b", 5, { 0: "a" }])
    case "object":
      return rng.pick(["{}", 5, ["x"]])
    default:
      return undefined
  }
}

describe("bridge", () => {
  it.live(
    "bad MCP input: every request answered, wrong types refused, the bridge keeps running",
    () =>
      Effect.scoped(Effect.gen(function*() {
        if (!Processes.conclaveBuilt()) {
          return yield* Effect.dieMessage("conclave is not built: run `npx tsc -b packages/cli` before this suite")
        }
        const server = yield* Kit.startServer(Kit.noLimits)
        const dir = yield* Kit.tempDir("conclave-bridge-")
        const cfg = Path.join(dir, "cfg")
        const reg = yield* Processes.spawn(process.execPath, [
          Processes.conclaveBin,
          "--config-dir",
          cfg,
          "register",
          "--server",
          server.url,
          "--username",
          "agentuser"
        ])
        const regExit = yield* Effect.timeout(Deferred.await(reg.exited), "30 seconds").pipe(
          Effect.orElseSucceed(() => "timeout")
        )
        assert.strictEqual(regExit, 0, `register failed: ${reg.stderr()}`)
        const owner = yield* Kit.register(server.url, "chanowner")
        yield* owner.request(Kit.op({ kind: "create_channel", name: "lobby", visibility: "public" }))
        const bridge = yield* Processes.spawn(process.execPath, [
          Processes.conclaveBin,
          "--config-dir",
          cfg,
          "bridge",
          "--server",
          server.url,
          "--as",
          "agent"
        ])
        const write = (line: string) => bridge.proc.stdin!.write(`${line}\n`)
        const responses = new Map<string, Record<string, unknown>>()
        let parseErrors = 0
        let consumed = 0
        const drain = () => {
          for (; consumed < bridge.stdoutLines.length; consumed++) {
            const line = bridge.stdoutLines[consumed]!
            try {
              const msg = JSON.parse(line) as Record<string, unknown>
              if ((msg.error as { readonly code?: number } | undefined)?.code === -32700) parseErrors++
              if ("id" in msg && ("result" in msg || "error" in msg)) responses.set(JSON.stringify(msg.id), msg)
            } catch {
              responses.set(`unparseable:${consumed}`, { line })
            }
          }
        }
        const sentAs = new Map<string, string>()
        const call = (id: unknown, method: string, params?: unknown) => {
          const line = JSON.stringify({ jsonrpc: "2.0", id, method, ...(params === undefined ? {} : { params }) })
          sentAs.set(JSON.stringify(id), line.slice(0, 200))
          write(line)
        }
        const awaitId = (id: unknown, timeout: Duration.DurationInput = "15 seconds") =>
          Kit.eventually(
            `a response to ${JSON.stringify(id)}`,
            Effect.sync(() => {
              drain()
              return Option.fromNullable(responses.get(JSON.stringify(id)))
            }),
            timeout
          )
        call(1, "initialize", {
          protocolVersion: "2025-06-18",
          capabilities: {},
          clientInfo: { name: "reliability", version: "1" }
        })
        yield* awaitId(1)
        write(JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" }))
        call(2, "tools/list")
        const list = yield* awaitId(2)
        const tools = (list.result as { readonly tools: ReadonlyArray<Tool> }).tools
        assert.isAbove(tools.length, 0)
        // Wait for the link so tool calls are decided on their arguments, not on a missing link.
        yield* Kit.eventually(
          "the bridge's link to come up",
          Effect.sync(() => (bridge.stderr().includes("link up") ? Option.some(true) : Option.none())),
          "20 seconds"
        )

        const n = Profile.count(150, 5000)
        const rng = Prng.make(Profile.seed ^ 0x7007)
        const expectRefusal = new Map<string, string>()
        const expectAnswer = new Set<string>()
        const invalidRequests = new Set<string>()
        let nextId = 100
        const tally = new Map<string, number>()
        for (let i = 0; i < n; i++) {
          const kind = rng.int(0, 8)
          const id = nextId++
          const count = (k: string) => tally.set(k, (tally.get(k) ?? 0) + 1)
          switch (kind) {
            case 0:
              count("malformed JSON")
              write(
                rng.pick(["{", "}", "[", "garbage", "{\"jsonrpc\":\"2.0\",\"id\":", "\u0000\u0001", "[]", "null", "1"])
              )
              break
            case 1:
              count("unknown method")
              call(id, rng.pick(["nope", "tools/cal", "resources/list", "prompts/get", "", "__proto__"]))
              expectAnswer.add(JSON.stringify(id))
              break
            case 2:
              count("unknown tool")
              call(id, "tools/call", { name: rng.pick(["nope", "JOIN_CHANNEL", "join_channel ", "", "constructor"]) })
              expectRefusal.set(JSON.stringify(id), "unknown tool")
              break
            case 3:
            case 4:
            case 5: {
              const tool = rng.pick(tools)
              const props = Object.entries(tool.inputSchema.properties ?? {})
              const typed = props.filter(([, p]) => p.type !== undefined)
              if (typed.length === 0) {
                count("tool without typed arguments")
                call(id, "tools/call", { name: tool.name, arguments: {} })
                expectAnswer.add(JSON.stringify(id))
                break
              }
              const [key, prop] = rng.pick(typed)
              const args: Record<string, unknown> = {}
              for (const [k, p] of props) {
                if (p.type === "string") args[k] = "lobby"
              }
              args[key] = wrongFor(prop.type, rng)
              count("wrong argument type")
              call(id, "tools/call", { name: tool.name, arguments: args })
              expectRefusal.set(JSON.stringify(id), `${tool.name}.${key}=${JSON.stringify(args[key])}`)
              break
            }
            case 6:
              count("non-object arguments")
              call(id, "tools/call", { name: rng.pick(tools).name, arguments: rng.pick([[], "x", 5, true]) })
              expectRefusal.set(JSON.stringify(id), "non-object arguments")
              break
            case 7:
              count("call without a name / odd params")
              if (rng.chance(0.25)) {
                // `params` that is not an object: not a valid JSON-RPC request; the SDK drops it unanswered.
                count("params not an object")
                call(id, "tools/call", rng.pick([[], "x"]))
                invalidRequests.add(JSON.stringify(id))
              } else {
                call(id, "tools/call", rng.pick([{}, { arguments: {} }, { name: 5 }, { name: null }]))
                expectAnswer.add(JSON.stringify(id))
              }
              break
            default:
              count("garbage notifications / huge line")
              if (rng.chance(0.5)) {
                write(JSON.stringify({
                  jsonrpc: "2.0",
                  method: rng.pick([
                    "notifications/claude/channel/permission_request",
                    "notifications/cancelled",
                    "x/y"
                  ]),
                  params: rng.pick([null, 5, "s", { request_id: 5 }, { request_id: "abcde", tool_name: {} }, []])
                }))
              } else {
                call(id, "tools/call", {
                  name: "send_channel",
                  arguments: { channel: "lobby", text: "y".repeat(1_000_000) }
                })
                expectAnswer.add(JSON.stringify(id))
              }
          }
          if (i % 25 === 24) yield* Effect.sleep("5 millis")
        }
        // Every request with an id gets exactly one answer.
        const ids = [...expectRefusal.keys(), ...expectAnswer]
        yield* Kit.eventually(
          "answers to every request",
          Effect.sync(() => {
            drain()
            return ids.every((id) => responses.has(id)) ? Option.some(true) : Option.none()
          }),
          "60 seconds"
        ).pipe(Effect.ignore)
        const unanswered = ids.filter((id) => !responses.has(id))
        const accepted: Array<string> = []
        for (const [id, what] of expectRefusal) {
          const r = responses.get(id)
          if (r === undefined) continue
          const refused = "error" in r || (r.result as { readonly isError?: boolean } | undefined)?.isError === true
          // SPEC §4.7: a `decision` other than exactly "allow" is a deny (fail-safe), not an error.
          const failSafe = what.startsWith("submit_permission.decision=") && JSON.stringify(r).includes("`deny`")
          if (!refused && !failSafe) accepted.push(what)
        }
        call(9_999_999, "tools/call", { name: "whoami", arguments: {} })
        const who = yield* awaitId(9_999_999)
        const alive = bridge.proc.exitCode === null && bridge.proc.signalCode === null
        const whoText = JSON.stringify(who)
        const linkUp = whoText.includes("link up") || !whoText.includes("link down")
        const invalidAnswered = [...invalidRequests].filter((id) => responses.has(id)).length
        if (invalidRequests.size > invalidAnswered) {
          notes.push(
            `\`tools/call\` with \`params\` that is not an object (\`[]\`, \`"x"\`): ${
              invalidRequests.size - invalidAnswered
            }/${invalidRequests.size} got no reply (no \`-32600\`); the SDK's stdio transport drops them before the bridge sees them.`
          )
        }
        const unparseable = [...responses.keys()].filter((k) => k.startsWith("unparseable")).length
        rows.push({
          test: "bad MCP input to a spawned `conclave bridge`",
          figure: `${n} tried (${[...tally.entries()].map(([k, v]) => `${k} ${v}`).join(", ")}), bridge ${
            alive ? "alive (0 crashes)" : "DEAD (1 crash)"
          }, ${unanswered.length} requests unanswered, ${accepted.length} wrongly typed calls accepted, ${unparseable} non-JSON stdout lines, link ${
            linkUp ? "up" : "down"
          } at the end`,
          target: "0 crashes, every request answered, every wrong type refused",
          checks: [
            Report.atLeast("tried", n, 5000),
            Report.equals("crashes", alive ? 0 : 1, 0),
            Report.equals("requests unanswered", unanswered.length, 0),
            Report.equals("wrongly typed calls accepted", accepted.length, 0),
            Report.equals("non-JSON stdout lines", unparseable, 0)
          ]
        })
        if (accepted.length > 0) {
          notes.push(`Wrongly typed tool calls the bridge accepted: ${[...new Set(accepted)].slice(0, 20).join("; ")}`)
        }
        const malformedLines = tally.get("malformed JSON") ?? 0
        notes.push(
          parseErrors >= malformedLines
            ? `Every non-JSON line got a JSON-RPC \`-32700\` reply (${parseErrors}).`
            : `${
              malformedLines - parseErrors
            } of ${malformedLines} non-JSON lines got no JSON-RPC \`-32700\` reply (reported; not asserted).`
        )
        assert.isTrue(alive, `bridge died: ${bridge.stderr().slice(-2000)}`)
        if (unanswered.length > 0) {
          notes.push(`Unanswered requests: ${unanswered.slice(0, 10).map((id) => sentAs.get(id)).join(" ; ")}`)
        }
        assert.deepStrictEqual(
          unanswered.slice(0, 10).map((id) => sentAs.get(id)),
          [],
          "every request with an id is answered"
        )
        assert.strictEqual(unparseable, 0, "stdout carries only JSON-RPC")
        assert.deepStrictEqual([...new Set(accepted)].slice(0, 20), [], "wrongly typed calls are refused")
      })),
    600_000
  )

  afterAll(() => Effect.runPromise(Report.record("bridge", "Bridge: bad MCP input", rows, notes)))
})
