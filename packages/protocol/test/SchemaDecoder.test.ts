/**
 * The decoders compiled from the `ClientFrame` Schema's AST (`internal/schemaDecoder.ts`) against the
 * Schema decode itself: on valid frames of every client type they must return exactly the Schema's
 * value (same fields, defaults and key order); on anything else they must refuse (`FAIL`, and then
 * the Schema decodes and words the error) or agree — never accept what the Schema refuses.
 */
import { Codec, Frames, Limits } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import type * as AST from "effect/SchemaAST"
import { compileMembers, FAIL, makeCompiler } from "../src/internal/schemaDecoder.js"

const params = { seed: 20261207 }
const options: AST.ParseOptions = { errors: "first", onExcessProperty: "ignore" }

type Json = { [key: string]: unknown }

const compiled = compileMembers(Frames.ClientFrame.ast, options)
const typeOf = (member: (typeof Frames.ClientFrame.members)[number]): string => member.fields.type.literals[0]
const members = Frames.ClientFrame.members.map((member) =>
  [
    typeOf(member),
    Arbitrary.make(member as Schema.Schema<Frames.ClientFrame>).map((frame) =>
      JSON.parse(Codec.encodeFrame(frame)) as Json
    )
  ] as const
)
const anyFrame = fc.oneof(...members.map(([, arbitrary]) => arbitrary))

const compiledDecode = (json: Json): unknown => {
  const decode = compiled.get(json.type as string)
  return decode === undefined ? FAIL : decode(json)
}

/**
 * The compiled decoder declines or agrees with the Schema decode, and the public decode (compiled
 * decoders first) answers exactly as the pure-Schema one: same value and key order, or same error.
 */
const assertDeclinesOrAgrees = (text: string) => {
  const reference = Codec.decodeClientFrameSchema(text)
  const json: unknown = JSON.parse(text)
  if (typeof json === "object" && json !== null && !Array.isArray(json)) {
    const mine = compiledDecode(json as Json)
    if (mine !== FAIL) {
      if (Either.isLeft(reference)) assert.fail(`${text}: compiled decoder accepted what the Schema refused`)
      assert.deepStrictEqual(mine, reference.right, text)
      assert.strictEqual(JSON.stringify(mine), JSON.stringify(reference.right), text)
    }
  }
  const actual = Codec.decodeClientFrame(text)
  if (Either.isRight(reference)) {
    if (Either.isLeft(actual)) return assert.fail(`${text}: refused (${actual.left.detail}), Schema decoded it`)
    assert.deepStrictEqual(actual.right, reference.right, text)
    assert.strictEqual(JSON.stringify(actual.right), JSON.stringify(reference.right), text)
  } else {
    if (Either.isRight(actual)) return assert.fail(`${text}: decoded, Schema refused`)
    assert.strictEqual(actual.left.reason, reference.left.reason, text)
    assert.strictEqual(actual.left.detail, reference.left.detail, text)
    assert.strictEqual(actual.left.frameType, reference.left.frameType, text)
    assert.strictEqual(actual.left.requestId, reference.left.requestId, text)
  }
  return reference
}

/** The compiled decoder takes the frame, with the Schema's exact value. */
const assertTaken = (json: Json) => {
  const text = JSON.stringify(json)
  const mine = compiledDecode(json)
  if (mine === FAIL) return assert.fail(`compiled decoder declined a valid frame: ${text}`)
  const reference = Codec.decodeClientFrameSchema(text)
  if (Either.isLeft(reference)) return assert.fail(`${text}: Schema refused: ${reference.left.detail}`)
  assert.deepStrictEqual(mine, reference.right, text)
  assert.strictEqual(JSON.stringify(mine), JSON.stringify(reference.right), text)
  assertDeclinesOrAgrees(text)
}

describe("decoders compiled from the ClientFrame Schema", () => {
  it("every client frame type compiles", () => {
    assert.sameMembers([...compiled.keys()], Frames.ClientFrame.members.map(typeOf))
  })

  for (const [type, arbitrary] of members) {
    it(`every valid ${type} decodes to the Schema's exact value (property-based)`, () => {
      fc.assert(fc.property(arbitrary, assertTaken), { ...params, numRuns: 150 })
    })
  }

  it("valid variants (explicit nulls dropped, null ids, excess keys at any level) decode as the Schema does", () => {
    const variant = fc.record({
      frame: anyFrame,
      dropNulls: fc.boolean(),
      nullId: fc.boolean(),
      extraTop: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }),
      extraNested: fc.option(fc.jsonValue({ maxDepth: 1 }), { nil: undefined }),
      from: fc.boolean()
    }).map(({ dropNulls, extraNested, extraTop, frame, from, nullId }) => {
      const json: Json = structuredClone(frame)
      if (dropNulls) {
        for (const [key, value] of Object.entries(json)) if (value === null) delete json[key]
      }
      if (
        nullId && json.id === undefined && json.type !== "hello" && json.type !== "register" && json.type !== "auth"
      ) {
        json.id = null
      }
      if (extraTop !== undefined) json.extra = extraTop
      if (from) json.from = { user: "u", machine: "m", session: "s" }
      for (const nested of ["payload", "target", "op"]) {
        const inner = json[nested]
        if (extraNested !== undefined && typeof inner === "object" && inner !== null) {
          ;(inner as Json).extra = extraNested
        }
      }
      return json
    })
    fc.assert(fc.property(variant, assertTaken), { ...params, numRuns: 500 })
  })

  describe("mutated frames (wrong types, missing fields, out-of-range numbers): declined or agreed, never accepted alone", () => {
    const nestedKeys = ["kind", "text", "ciphertext", "key_id", "user", "machine", "session", "name", "uses"]
    const DELETE = Symbol("delete")
    const value = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.constantFrom<unknown>(
          DELETE,
          null,
          "",
          "x",
          "a".repeat(64),
          "a".repeat(65),
          "not base64!",
          "abcde",
          "\ud800",
          "plain",
          "encrypted",
          "bridge",
          "robot",
          "public",
          0,
          -0,
          -1,
          1.5,
          2 ** 32 - 1,
          2 ** 32,
          2 ** 53 - 1,
          2 ** 53,
          8.64e15,
          8.64e15 + 1,
          -8.64e15 - 1,
          1e300,
          true,
          false,
          {},
          [],
          ["x"],
          { kind: "plain" },
          { kind: "plain", text: 1 },
          { kind: "encrypted", ciphertext: "a" },
          { kind: "encrypted", ciphertext: "abcd", key_id: 5 },
          { kind: "create_channel", name: "c", visibility: "secret" },
          { kind: "invite_create", channel: "c", uses: -1 },
          { user: "u", machine: "m" },
          { user: "u", machine: "m", session: 1 },
          ...Frames.ClientFrame.members.map(typeOf)
        )
      },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }
    )
    for (const [type, arbitrary] of members) {
      const member = Frames.ClientFrame.members.find((m) => typeOf(m) === type)!
      const keys = [...Object.keys(member.fields), "extra"]
      const mutation = fc.record({
        key: fc.constantFrom(...keys),
        nested: fc.boolean(),
        nestedKey: fc.constantFrom(...nestedKeys),
        value
      })
      const mutated = fc.tuple(arbitrary, fc.array(mutation, { minLength: 1, maxLength: 3 })).map(
        ([frame, mutations]) => {
          const json: Json = structuredClone(frame)
          for (const { key, nested, nestedKey, value } of mutations) {
            const inner = json[key]
            const target: Json = nested && typeof inner === "object" && inner !== null && !Array.isArray(inner)
              ? inner as Json
              : json
            const at = target === json ? key : nestedKey
            if (value === DELETE) delete target[at]
            else target[at] = structuredClone(value)
          }
          return JSON.stringify(json)
        }
      )
      it(type, () => {
        let refused = 0
        fc.assert(
          fc.property(mutated, (text) => {
            if (Either.isLeft(assertDeclinesOrAgrees(text))) refused++
          }),
          { ...params, numRuns: 300 }
        )
        // The mutations must exercise refusals, not only valid frames.
        assert.isAbove(refused, 50)
      })
    }
  })

  it("numbers JSON.stringify never writes: 1e400, 1.0, -0, exponents", () => {
    const texts = [
      `{"type":"read_since","channel":"c","since_seq":1e400}`,
      `{"type":"read_since","channel":"c","since_ms":-1e400}`,
      `{"type":"read_since","channel":"c","since_seq":1.0}`,
      `{"type":"read_since","channel":"c","since_seq":-0}`,
      `{"type":"read_since","channel":"c","since_ms":-0.0}`,
      `{"type":"read_since","channel":"c","since_ms":8.64e15}`,
      `{"type":"read_since","channel":"c","since_ms":8.640000000000001e15}`,
      `{"type":"channel_msg","channel":"c","payload":{"kind":"plain","text":"t"},"reply_to":1e2}`,
      `{"type":"channel_msg","channel":"c","payload":{"kind":"plain","text":"t"},"reply_to":9007199254740993}`,
      `{"type":"hello","protocol_version":4294967295,"session":"s"}`,
      `{"type":"hello","protocol_version":4294967296,"session":"s"}`,
      `{"type":"hello","protocol_version":1e0,"session":"s","client":"cli","host":"h:1"}`,
      `{"type":"admin","op":{"kind":"invite_create","channel":"c","expires_in_secs":1e17}}`,
      `{"type":"admin","op":{"kind":"invite_create","channel":"c","expires_in_secs":-1}}`,
      `{"type":"ping","__proto__":{"id":"x"}}`,
      `{"type":"channel_msg","channel":"c","payload":{"kind":"plain","text":"t","__proto__":null}}`
    ]
    for (const text of texts) assertDeclinesOrAgrees(text)
    // -0 passes through as -0, as the Schema decode leaves it.
    const negativeZero = Codec.decodeClientFrame(texts[3]!)
    assert.isTrue(
      Either.isRight(negativeZero) && Object.is((negativeZero.right as { since_seq: unknown }).since_seq, -0)
    )
  })

  it("defaults: absent or null id is absent, nullable keys become null, client defaults to bridge", () => {
    const cases: ReadonlyArray<readonly [string, unknown]> = [
      [`{"type":"channel_msg","id":null,"channel":"c","payload":{"kind":"plain","text":"hi"},"from":"x"}`, {
        type: "channel_msg",
        channel: "c",
        payload: { kind: "plain", text: "hi" },
        reply_to: null
      }],
      [
        `{"type":"whisper","id":"r1","target":{"user":"u","machine":"m","session":"s","x":1},"payload":{"kind":"encrypted","ciphertext":"AAAA"}}`,
        {
          type: "whisper",
          id: "r1",
          target: { user: "u", machine: "m", session: "s" },
          payload: { kind: "encrypted", ciphertext: "AAAA", key_id: null }
        }
      ],
      [`{"type":"read_since","channel":"c","since_seq":0}`, {
        type: "read_since",
        channel: "c",
        since_seq: 0,
        since_ms: null,
        before_seq: null
      }],
      [`{"type":"read_since","channel":"c","before_seq":7}`, {
        type: "read_since",
        channel: "c",
        since_seq: null,
        since_ms: null,
        before_seq: 7
      }],
      [`{"type":"join","channel":"c"}`, { type: "join", channel: "c", token: null }],
      [`{"type":"who","id":"w"}`, { type: "who", id: "w", channel: null }],
      [`{"type":"ping"}`, { type: "ping" }],
      [`{"type":"hello","protocol_version":1,"session":"s","client":null}`, {
        type: "hello",
        protocol_version: 1,
        session: "s",
        host: null,
        client: "bridge"
      }],
      [`{"type":"auth","pubkey":"AAAA","signature":"BBBB"}`, { type: "auth", pubkey: "AAAA", signature: "BBBB" }],
      [`{"type":"admin","id":"a","op":{"kind":"invite_create","channel":"c"}}`, {
        type: "admin",
        id: "a",
        op: { kind: "invite_create", channel: "c", uses: null, expires_in_secs: null }
      }]
    ]
    for (const [text, expected] of cases) {
      const json = JSON.parse(text) as Json
      assert.deepStrictEqual(compiledDecode(json), expected, text)
      assertTaken(json)
    }
  })

  it("refuses what the Schema refuses, and the error is the Schema's", () => {
    const refused = [
      { type: "channel_msg", id: "", channel: "c", payload: { kind: "plain", text: "t" } },
      { type: "channel_msg", id: "a".repeat(65), channel: "c", payload: { kind: "plain", text: "t" } },
      { type: "channel_msg", channel: "c", payload: { kind: "plain", text: "t" }, reply_to: -1 },
      { type: "channel_msg", channel: "c", payload: { kind: "plain", text: "t" }, reply_to: 1.5 },
      { type: "channel_msg", channel: "c", payload: [] },
      { type: "channel_msg", channel: "c", payload: { kind: "encrypted", ciphertext: "abcde" } },
      { type: "whisper", target: "u/m/s", payload: { kind: "plain", text: "t" } },
      { type: "read_since", channel: 1, since_seq: 1 },
      { type: "hello", protocol_version: -1, session: "s" },
      { type: "hello", protocol_version: 1, session: "s", client: "robot" },
      { type: "auth", pubkey: "AAAA", signature: "B+B/" },
      { type: "register", username: "u", machine: "m", pubkey: "A" },
      { type: "admin", op: { kind: "nope" } },
      { type: "admin", op: [] }
    ]
    for (const json of refused) {
      const text = JSON.stringify(json)
      assert.strictEqual(compiledDecode(json), FAIL, text)
      assert.isTrue(Either.isLeft(assertDeclinesOrAgrees(text)), text)
    }
    const invalid = Codec.decodeClientFrame(`{"type":"channel_msg","id":"r","channel":"c","payload":[]}`)
    assert.isTrue(Either.isLeft(invalid) && invalid.left.reason === "invalid" && invalid.left.requestId === "r")
  })

  it("the size cap is still checked before decoding", () => {
    const text = Codec.encodeFrame({
      type: "channel_msg",
      channel: "c",
      payload: { kind: "plain", text: "x".repeat(200) },
      reply_to: null
    })
    const refused = Codec.decodeClientFrame(text, 100)
    assert.isTrue(Either.isLeft(refused) && refused.left.reason === "too_large")
    assert.isTrue(Either.isRight(Codec.decodeClientFrame(text, text.length)))
    assert.isTrue(Either.isRight(Codec.decodeClientFrame(text, Limits.DEFAULT_MAX_FRAME_BYTES)))
  })
})

describe("the AST compiler on other schemas", () => {
  const compile = makeCompiler(options)

  it("declines what it does not cover", () => {
    interface Tree {
      readonly children: ReadonlyArray<Tree>
    }
    const Tree: Schema.Schema<Tree> = Schema.Struct({
      children: Schema.Array(Schema.suspend((): Schema.Schema<Tree> => Tree))
    })
    const uncovered: ReadonlyArray<Schema.Schema.Any> = [
      Schema.Record({ key: Schema.String, value: Schema.Number }),
      Schema.Struct({ a: Schema.String }, Schema.Record({ key: Schema.String, value: Schema.String })),
      Schema.Tuple(Schema.String),
      Schema.NumberFromString,
      Schema.DateFromSelf,
      Tree,
      Schema.Struct({ a: Schema.NumberFromString }),
      Schema.Union(Schema.Struct({ a: Schema.Literal("x") }), Schema.String),
      Schema.Struct({ a: Schema.String }).annotations({ parseOptions: { onExcessProperty: "error" } })
    ]
    for (const schema of uncovered) assert.isUndefined(compile(schema.ast), String(schema.ast))
    assert.isUndefined(makeCompiler({ onExcessProperty: "preserve" })(Frames.Ping.ast))
    assert.isUndefined(makeCompiler({ exact: true })(Frames.Ping.ast))
    assert.isUndefined(makeCompiler({ propertyOrder: "original" })(Frames.Ping.ast))
    assert.strictEqual(compileMembers(Schema.Union(Schema.String, Schema.Number).ast, options).size, 0)
  })

  // Covered shapes beyond the frames: literal unions, unions tried in order, optional keys with
  // and without defaults, nested transformations, filters on objects.
  const covered = [
    Schema.Literal("a", "b", 1, true, null),
    Schema.Union(Schema.Number, Schema.String, Schema.Boolean),
    Schema.Struct({
      a: Schema.optional(Schema.String),
      b: Schema.optionalWith(Schema.Number, { default: () => 7 }),
      c: Schema.optionalWith(Schema.String, { nullable: true }),
      d: Schema.optionalWith(Schema.Boolean, { exact: true }),
      e: Schema.Union(Schema.Undefined, Schema.String),
      f: Schema.Unknown
    }),
    Schema.Struct({ inner: Frames.EncryptedPayload, list: Schema.Struct({}) }),
    Schema.Struct({ lo: Schema.Number, hi: Schema.Number }).pipe(Schema.filter((r) => r.lo <= r.hi)),
    Schema.Union(
      Schema.Struct({ tag: Schema.Literal("one"), n: Schema.optionalWith(Schema.Number, { default: () => 1 }) }),
      Schema.Struct({ tag: Schema.Literal("two"), s: Schema.String })
    ),
    // a union tried in order over objects: decoding `to` again may pick an earlier member
    Schema.Struct({
      x: Schema.Union(Schema.Struct({ a: Schema.optional(Schema.String) }), Schema.Struct({ b: Schema.String })),
      y: Schema.optionalWith(Schema.String, { default: () => "y" })
    }),
    Frames.ClientFrame
  ] as const
  const input = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.record({
      a: fc.option(fc.string(), { nil: undefined }),
      b: fc.oneof(fc.integer(), fc.constant(null), fc.string()),
      c: fc.option(fc.string()),
      d: fc.boolean(),
      e: fc.option(fc.string(), { nil: undefined }),
      f: fc.jsonValue({ maxDepth: 1 }),
      lo: fc.integer(),
      hi: fc.integer(),
      tag: fc.constantFrom("one", "two", "three"),
      n: fc.integer(),
      s: fc.string(),
      inner: fc.record({ kind: fc.constantFrom("encrypted", "plain"), ciphertext: fc.constantFrom("AAAA", "A") }),
      list: fc.oneof(fc.constant({}), fc.constant(null), fc.constant([])),
      x: fc.record({ a: fc.oneof(fc.integer(), fc.string()), b: fc.string() }, { requiredKeys: [] }),
      y: fc.option(fc.string())
    }, { requiredKeys: [] })
  )

  it("agrees with ParseResult on arbitrary inputs, or refuses (property-based)", () => {
    for (const schema of covered) {
      const decoder = compile(schema.ast)
      if (decoder === undefined) return assert.fail(`not compiled: ${String(schema.ast)}`)
      const reference = ParseResult.decodeUnknownEither(schema as Schema.Schema<unknown, unknown>, options)
      let accepted = 0
      fc.assert(
        fc.property(input, (u) => {
          const mine = decoder(structuredClone(u))
          const theirs = reference(structuredClone(u))
          if (mine === FAIL) return
          accepted++
          if (Either.isLeft(theirs)) return assert.fail(`${JSON.stringify(u)}: accepted what the Schema refused`)
          assert.deepStrictEqual(mine, theirs.right)
          assert.strictEqual(JSON.stringify(mine), JSON.stringify(theirs.right))
        }),
        { ...params, numRuns: 400 }
      )
      if (schema !== Frames.ClientFrame) assert.isAbove(accepted, 0, String(schema.ast))
    }
  })

  it("refuses only what the Schema refuses on inputs the Schema accepts (property-based)", () => {
    for (const schema of covered.slice(0, -1)) {
      const decoder = compile(schema.ast)!
      const arbitrary = Arbitrary.make(Schema.encodedSchema(schema as Schema.Schema<unknown, unknown>))
      fc.assert(
        fc.property(arbitrary, (u) => {
          const theirs = ParseResult.decodeUnknownEither(schema as Schema.Schema<unknown, unknown>, options)(u)
          const mine = decoder(u)
          if (Either.isRight(theirs)) {
            assert.notStrictEqual(mine, FAIL, JSON.stringify(u))
            assert.deepStrictEqual(mine, theirs.right)
          } else {
            assert.strictEqual(mine, FAIL, JSON.stringify(u))
          }
        }),
        { ...params, numRuns: 200 }
      )
    }
  })
})
