// A bridge tool and the matching CLI verb refuse and accept exactly the same values for every field
// they share: both validate against the one schema per field in `@conclave/client/ToolArgs`.
import { Dispatcher, Ports } from "@conclave/bridge"
import type { Connection } from "@conclave/client"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { ok, run } from "./support/InProcess.js"

const S = "ws://127.0.0.1:1"
const ME = { user: "aaron", machine: "box", session: "parity" }

const autoReply = (frame: Connection.RequestWithoutId): Connection.Reply => {
  switch (frame.type) {
    case "join":
      return { type: "joined", channel: frame.channel }
    case "read_since":
      return { type: "history", channel: frame.channel, messages: [], more: false }
    case "admin":
      return frame.op.kind === "invite_create"
        ? { type: "invite_token", token: "t" }
        : { type: "ack", detail: null, seq: null }
    default:
      return { type: "ack", detail: null, seq: null }
  }
}

/** A dispatcher on one admin link that answers every request; loop guard off, level act. */
const bridge = Effect.gen(function*() {
  const ports = Layer.merge(
    Layer.succeed(Ports.NotificationSink, { inject: () => Effect.void }),
    Layer.succeed(Ports.McpOutbound, { toolListChanged: Effect.void, permissionVerdict: () => Effect.void })
  )
  const d = yield* Dispatcher.make({
    servers: [{ url: S, username: "aaron", machine: "box" }],
    handle: { name: "parity", explicit: true },
    policy: { default_permission: "act", overrides: [] },
    loopLimit: 0
  }).pipe(Effect.provide(ports))
  yield* d.linkUp(S, { path: ME, admin: true, request: (f) => Effect.succeed(autoReply(f)) }, "parity")
  return (tool: string, args: Record<string, unknown>) => d.callTool(tool, args).pipe(Effect.map((r) => !r.isError))
})

interface Field {
  readonly name: string
  readonly tool: string
  readonly toolArgs: (value: unknown) => Record<string, unknown>
  readonly verb: (value: string) => ReadonlyArray<string>
  /** The verb talks to the server once its flags are valid (else it is a local verb: exit 0). */
  readonly connects: boolean
  readonly values: ReadonlyArray<unknown>
}

const integers = [-1, 0, 1, 2, 42, 4294967295, 4294967296, 9007199254740991, 9007199254740992, 1.5, 1e21]

const FIELDS: ReadonlyArray<Field> = [
  {
    name: "reply_to ↔ --reply-to",
    tool: "send_channel",
    toolArgs: (v) => ({ channel: "ops", text: "hi", reply_to: v }),
    verb: (v) => ["send", "--server", S, "--channel", "ops", "--reply-to", v, "hi"],
    connects: true,
    values: integers
  },
  {
    name: "uses ↔ --uses",
    tool: "invite_create",
    toolArgs: (v) => ({ channel: "ops", uses: v }),
    verb: (v) => ["invite", "create", "--server", S, "--channel", "ops", "--uses", v],
    connects: true,
    values: integers
  },
  {
    name: "visibility ↔ --visibility",
    tool: "create_channel",
    toolArgs: (v) => ({ name: "ops", visibility: v }),
    verb: (v) => ["channel", "create", "--server", S, "ops", "--visibility", v],
    connects: true,
    values: ["public", "unlisted", "private", "PUBLIC", " public", "secret", "privte", ""]
  },
  {
    name: "visibility ↔ VISIBILITY",
    tool: "set_visibility",
    toolArgs: (v) => ({ name: "ops", visibility: v }),
    verb: (v) => ["channel", "set-visibility", "--server", S, "ops", v],
    connects: true,
    values: ["public", "unlisted", "private", "Private", "hidden", ""]
  },
  {
    name: "level ↔ LEVEL",
    tool: "set_perm",
    toolArgs: (v) => ({ level: v }),
    verb: (v) => ["perm", "set", v],
    connects: false,
    values: ["mute", "notify", "converse", "act", "Converse", " act", "act ", "loud", ""]
  },
  {
    name: "perm ↔ --perm",
    tool: "join_channel",
    toolArgs: (v) => ({ channel: "ops", perm: v }),
    verb: (v) => ["join", "--server", S, "ops", "--perm", v],
    connects: true,
    values: ["mute", "notify", "converse", "act", "ACT", "bogus", ""]
  },
  {
    name: "since ↔ --since",
    tool: "catch_up",
    toolArgs: (v) => ({ channel: "ops", since: v }),
    verb: (v) => ["tail", "--server", S, "--channel", "ops", "--since", v],
    connects: true,
    values: ["90", "0", "15m", "24h", "7d", " 7d", "1.5h", "-5", "+5", "5w", "soon", "99999999999999999d", ""]
  },
  {
    name: "channel ↔ --channel",
    tool: "send_channel",
    toolArgs: (v) => ({ channel: v, text: "hi" }),
    verb: (v) => ["send", "--server", S, "--channel", v, "hi"],
    connects: true,
    values: ["ops", "o", ""]
  }
]

describe("bridge tools and CLI verbs share one rule per field", () => {
  for (const field of FIELDS) {
    it.scopedLive(field.name, () =>
      Effect.gen(function*() {
        const dir = yield* tempDir()
        yield* ok(["key"], { configDir: dir })
        const tool = yield* bridge
        const verdicts: Array<string> = []
        for (const value of field.values) {
          const toolAccepts = yield* tool(field.tool, field.toolArgs(value))
          const r = yield* run(field.verb(String(value)), { configDir: dir })
          const cliAccepts = field.connects ? r.stderr.includes("failed to connect") : r.code === 0
          verdicts.push(`${JSON.stringify(value)}: ${toolAccepts ? "accepted" : "refused"}`)
          assert.strictEqual(
            cliAccepts,
            toolAccepts,
            `${JSON.stringify(value)}: the tool ${toolAccepts ? "accepts" : "refuses"} it, the verb does not ` +
              `(stderr: ${r.stderr.trim()})`
          )
        }
        assert.isTrue(verdicts.some((v) => v.endsWith("accepted")), `some value is accepted: ${verdicts.join("; ")}`)
        assert.isTrue(verdicts.some((v) => v.endsWith("refused")), `some value is refused: ${verdicts.join("; ")}`)
      }))
  }
})
