import { Frames, JsonSchema } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as fc from "effect/FastCheck"
import type * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const committedPath = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "protocol.schema.json")

interface Node {
  readonly [keyword: string]: unknown
}

const document = JSON.parse(JsonSchema.document()) as {
  readonly $schema: string
  readonly $defs: Record<string, Node>
  readonly properties: Record<string, Node>
}

const SUPPORTED = new Set([
  "$ref",
  "anyOf",
  "type",
  "enum",
  "required",
  "properties",
  "additionalProperties",
  "items",
  "minimum",
  "maximum",
  "minLength",
  "maxLength",
  "pattern",
  "description",
  "title"
])

/**
 * A small validator for the JSON Schema keywords the document uses (draft-07 semantics). It throws on
 * any other keyword, so a document that starts using one makes this test fail instead of passing
 * vacuously. Returns the problems found (empty = valid).
 */
const validate = (schema: Node, value: unknown, at = "$"): ReadonlyArray<string> => {
  for (const keyword of Object.keys(schema)) {
    if (!SUPPORTED.has(keyword)) throw new Error(`unsupported JSON Schema keyword ${keyword} at ${at}`)
  }
  if (typeof schema.$ref === "string") {
    const name = schema.$ref.replace("#/$defs/", "")
    const target = document.$defs[name]
    if (target === undefined) return [`${at}: dangling $ref ${schema.$ref}`]
    return validate(target, value, at)
  }
  if (Array.isArray(schema.anyOf)) {
    const branches = (schema.anyOf as ReadonlyArray<Node>).map((branch) => validate(branch, value, at))
    return branches.some((problems) => problems.length === 0) ? [] : [`${at}: matches no anyOf branch`]
  }
  const problems: Array<string> = []
  const type = schema.type
  if (typeof type === "string") {
    const ok = type === "null"
      ? value === null
      : type === "integer"
      ? typeof value === "number" && Number.isInteger(value)
      : type === "number"
      ? typeof value === "number" && Number.isFinite(value)
      : type === "array"
      ? Array.isArray(value)
      : type === "object"
      ? typeof value === "object" && value !== null && !Array.isArray(value)
      : typeof value === type
    if (!ok) return [`${at}: expected ${type}`]
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) problems.push(`${at}: not one of ${schema.enum}`)
  if (typeof value === "number") {
    if (typeof schema.minimum === "number" && value < schema.minimum) problems.push(`${at}: below minimum`)
    if (typeof schema.maximum === "number" && value > schema.maximum) problems.push(`${at}: above maximum`)
  }
  if (typeof value === "string") {
    const length = [...value].length
    if (typeof schema.minLength === "number" && length < schema.minLength) problems.push(`${at}: too short`)
    if (typeof schema.maxLength === "number" && length > schema.maxLength) problems.push(`${at}: too long`)
    if (typeof schema.pattern === "string" && !new RegExp(schema.pattern, "u").test(value)) {
      problems.push(`${at}: does not match ${schema.pattern}`)
    }
  }
  if (Array.isArray(value) && typeof schema.items === "object" && schema.items !== null) {
    value.forEach((item, i) => problems.push(...validate(schema.items as Node, item, `${at}[${i}]`)))
  }
  if (typeof value === "object" && value !== null && !Array.isArray(value)) {
    const record = value as Record<string, unknown>
    for (const key of (schema.required as ReadonlyArray<string> | undefined) ?? []) {
      if (!Object.hasOwn(record, key)) problems.push(`${at}: missing ${key}`)
    }
    const properties = (schema.properties as Record<string, Node> | undefined) ?? {}
    for (const [key, item] of Object.entries(record)) {
      const property = properties[key]
      if (property !== undefined) problems.push(...validate(property, item, `${at}.${key}`))
      else if (schema.additionalProperties === false) problems.push(`${at}: unexpected ${key}`)
    }
  }
  return problems
}

const ClientFrameSchema = { $ref: "#/$defs/ClientFrame" }
const ServerFrameSchema = { $ref: "#/$defs/ServerFrame" }

const frameTypes = (def: Node): Array<string> =>
  (def.anyOf as ReadonlyArray<{ readonly properties: { readonly type: { readonly enum: ReadonlyArray<string> } } }>)
    .flatMap((member) => member.properties.type.enum)

describe("protocol.schema.json", () => {
  it("is up to date with the Schema definitions", () => {
    const committed = fs.existsSync(committedPath) ? fs.readFileSync(committedPath, "utf8") : "(missing)"
    assert.isTrue(
      committed === JsonSchema.document(),
      "packages/protocol/protocol.schema.json is stale: run `npm run generate -w @conclave/protocol` and commit the result"
    )
  })

  it("is a draft-07 document with ClientFrame and ServerFrame definitions", () => {
    assert.strictEqual(document.$schema, "http://json-schema.org/draft-07/schema#")
    assert.isDefined(document.$defs.ClientFrame)
    assert.isDefined(document.$defs.ServerFrame)
    assert.deepStrictEqual(document.properties.client_frame, ClientFrameSchema)
    assert.deepStrictEqual(document.properties.server_frame, ServerFrameSchema)
  })

  it("lists every frame type and every admin op", () => {
    const client = Frames.ClientFrame.members.map((member) => member.fields.type.literals[0])
    const server = Frames.ServerFrame.members.map((member) => member.fields.type.literals[0])
    assert.deepStrictEqual(frameTypes(document.$defs.ClientFrame), client)
    assert.deepStrictEqual(frameTypes(document.$defs.ServerFrame), server)
    assert.deepStrictEqual(
      [...new Set([...client, ...server])].sort(),
      [...Frames.FRAME_TYPES].sort()
    )
    const ops = (document.$defs.AdminOp.anyOf as ReadonlyArray<{ properties: { kind: { enum: Array<string> } } }>)
      .flatMap((member) => member.properties.kind.enum)
    assert.deepStrictEqual(ops, [...Frames.ADMIN_OP_KINDS])
  })

  it("accepts example frames and refuses broken ones", () => {
    const pubkey = Buffer.alloc(32, 9).toString("base64url")
    const client: ReadonlyArray<unknown> = [
      { type: "hello", protocol_version: 1, session: "razel", host: "conclave.example.com", client: "bridge" },
      { type: "hello", protocol_version: 1, session: "razel" },
      { type: "auth", pubkey, signature: Buffer.alloc(64).toString("base64url") },
      { type: "join", id: "7", channel: "ops", token: null },
      // D-2: a client may send `from` on a post; it is ignored, so the document must not forbid it.
      {
        type: "channel_msg",
        id: "8",
        channel: "ops",
        from: { user: "a", machine: "b", session: "c" },
        payload: { kind: "plain", text: "hi" }
      },
      { type: "read_since", id: "9", channel: "ops", since_seq: 0 },
      { type: "read_since", id: "9", channel: "ops", before_seq: 1001 },
      { type: "admin", id: "10", op: { kind: "create_channel", name: "ops", visibility: "private" } },
      { type: "admin", op: { kind: "invite_create", channel: "ops", uses: null, expires_in_secs: 1e17 } },
      { type: "ping", id: null }
    ]
    for (const frame of client) {
      assert.deepStrictEqual(validate(ClientFrameSchema, frame), [], JSON.stringify(frame))
    }
    const server: ReadonlyArray<unknown> = [
      { type: "ack", id: "8", detail: null, seq: 42 },
      { type: "error", error: { kind: "rate_limited", message: "slow down", retry_after_ms: 480 } },
      { type: "unsubscribed", channel: "ops", reason: "renamed", new_name: "ops-2" },
      { type: "shutdown", reason: "server shutting down" }
    ]
    for (const frame of server) {
      assert.deepStrictEqual(validate(ServerFrameSchema, frame), [], JSON.stringify(frame))
    }
    const broken: ReadonlyArray<readonly [Node, unknown]> = [
      [ClientFrameSchema, { type: "nonsense" }],
      [ClientFrameSchema, { channel: "ops" }],
      [ClientFrameSchema, { type: "join" }],
      [ClientFrameSchema, { type: "hello", protocol_version: 1.5, session: "s" }],
      [ClientFrameSchema, { type: "auth", pubkey: "a+b/", signature: "AA" }],
      [ClientFrameSchema, { type: "auth", pubkey: "AAAAA", signature: "AA" }],
      [ClientFrameSchema, { type: "ping", id: "x".repeat(65) }],
      [ClientFrameSchema, { type: "admin", op: { kind: "create_channel", name: "ops", visibility: "secret" } }],
      [ClientFrameSchema, { type: "pong" }],
      [ClientFrameSchema, { type: "read_since", channel: "ops", before_seq: 0 }],
      [ClientFrameSchema, { type: "read_since", channel: "ops", before_seq: -3 }],
      [ClientFrameSchema, { type: "read_since", channel: "ops", before_seq: 2.5 }],
      [ServerFrameSchema, { type: "ping" }],
      [ServerFrameSchema, { type: "ack", seq: -1 }],
      [ServerFrameSchema, { type: "error", error: { kind: "nope", message: "m" } }]
    ]
    for (const [schema, frame] of broken) {
      assert.isAbove(validate(schema, frame).length, 0, `${JSON.stringify(frame)} should be refused`)
    }
  })

  it("accepts every frame the codec accepts (generated samples)", () => {
    const samples = [
      ...Frames.ClientFrame.members.flatMap((member) =>
        fc.sample(Arbitrary.make(member as Schema.Schema<Frames.ClientFrame>), { seed: 3, numRuns: 8 })
          .map((frame) => [ClientFrameSchema, frame] as const)
      ),
      ...Frames.ServerFrame.members.flatMap((member) =>
        fc.sample(Arbitrary.make(member as Schema.Schema<Frames.ServerFrame>), { seed: 3, numRuns: 8 })
          .map((frame) => [ServerFrameSchema, frame] as const)
      )
    ]
    for (const [schema, frame] of samples) {
      const wire = JSON.parse(JSON.stringify(frame))
      assert.deepStrictEqual(validate(schema, wire), [], JSON.stringify(wire))
    }
  })
})
