import { Codec, Frames, Limits } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import type * as Schema from "effect/Schema"
import { FAST_CLIENT_TYPES, fastDecodeClientFrame } from "../src/FastDecode.js"

const params = { seed: 20261124 }

type Json = { [key: string]: unknown }

const hotMembers = Frames.ClientFrame.members.filter((member) =>
  FAST_CLIENT_TYPES.includes(member.fields.type.literals[0])
)
const hotArbitraries = hotMembers.map((member) =>
  [
    member.fields.type.literals[0] as string,
    Arbitrary.make(member as Schema.Schema<Frames.ClientFrame>).map((frame) =>
      JSON.parse(Codec.encodeFrame(frame)) as Json
    )
  ] as const
)
const anyHotFrame = fc.oneof(...hotArbitraries.map(([, arbitrary]) => arbitrary))

/** The public decode and the pure-Schema decode agree exactly: same value (and key order) or same error. */
const assertSameAsSchema = (text: string) => {
  const fast = Codec.decodeClientFrame(text)
  const reference = Codec.decodeClientFrameSchema(text)
  if (Either.isRight(reference)) {
    if (Either.isLeft(fast)) assert.fail(`${text}: fast path refused (${fast.left.detail}), Schema decoded it`)
    assert.deepStrictEqual(fast.right, reference.right, text)
    assert.strictEqual(JSON.stringify(fast.right), JSON.stringify(reference.right), text)
  } else {
    if (Either.isRight(fast)) assert.fail(`${text}: fast path decoded ${JSON.stringify(fast.right)}, Schema refused`)
    assert.strictEqual(fast.left.reason, reference.left.reason, text)
    assert.strictEqual(fast.left.detail, reference.left.detail, text)
    assert.strictEqual(fast.left.frameType, reference.left.frameType, text)
  }
  return reference
}

const schemaRight = (text: string): unknown => {
  const reference = Codec.decodeClientFrameSchema(text)
  if (Either.isLeft(reference)) return assert.fail(`${text}: Schema refused: ${reference.left.detail}`)
  return reference.right
}

describe("fast decode of hot client frames", () => {
  it("covers the hot frames", () => {
    assert.sameMembers([...FAST_CLIENT_TYPES], [
      "channel_msg",
      "whisper",
      "read_since",
      "join",
      "leave",
      "who",
      "ping",
      "hello",
      "auth"
    ])
    assert.strictEqual(hotMembers.length, FAST_CLIENT_TYPES.length)
  })

  for (const [type, arbitrary] of hotArbitraries) {
    it(`every valid ${type} is taken by the fast path with the Schema's exact result (property-based)`, () => {
      fc.assert(
        fc.property(arbitrary, (json) => {
          const text = JSON.stringify(json)
          const fast = fastDecodeClientFrame(json, type)
          if (fast === undefined) return assert.fail(`fast path declined a valid frame: ${text}`)
          const expected = schemaRight(text)
          assert.deepStrictEqual(fast, expected, text)
          assert.strictEqual(JSON.stringify(fast), JSON.stringify(expected), text)
          assertSameAsSchema(text)
        }),
        { ...params, numRuns: 100 }
      )
    })
  }

  it("valid variants (explicit nulls, omitted nullable keys, null ids, excess keys) match the Schema", () => {
    const variant = fc.record({
      frame: anyHotFrame,
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
      if (nullId && json.id === undefined) json.id = null
      if (extraTop !== undefined) json.extra = extraTop
      if (from) json.from = { user: "u", machine: "m", session: "s" }
      for (const nested of ["payload", "target"]) {
        const inner = json[nested]
        if (extraNested !== undefined && typeof inner === "object" && inner !== null) {
          ;(inner as Json).extra = extraNested
        }
      }
      return json
    })
    fc.assert(
      fc.property(variant, (json) => {
        const text = JSON.stringify(json)
        const type = json.type as string
        const fast = fastDecodeClientFrame(json, type)
        if (fast === undefined) return assert.fail(`fast path declined a valid frame: ${text}`)
        assert.deepStrictEqual(fast, schemaRight(text), text)
        assertSameAsSchema(text)
      }),
      { ...params, numRuns: 400 }
    )
  })

  describe("mutated frames (wrong types, missing fields, out-of-range numbers) give exactly the Schema's result", () => {
    const nestedKeys = ["kind", "text", "ciphertext", "key_id", "user", "machine", "session"]
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
          "cli",
          "web",
          "robot",
          0,
          -0,
          -1,
          1.5,
          2 ** 32 - 1,
          2 ** 32,
          2 ** 53 - 1,
          2 ** 53,
          -(2 ** 53),
          8.64e15,
          8.64e15 + 1,
          -8.64e15,
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
          { user: "u", machine: "m" },
          { user: "u", machine: "m", session: 1 },
          ...FAST_CLIENT_TYPES,
          "register"
        )
      },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }
    )
    for (const [type, arbitrary] of hotArbitraries) {
      // Mutate the frame's own fields (and its payload/target), plus an excess key now and then.
      const member = hotMembers.find((m) => m.fields.type.literals[0] === type)!
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
            if (Either.isLeft(assertSameAsSchema(text))) refused++
          }),
          { ...params, numRuns: 500 }
        )
        // The mutations must exercise the fallback, not only valid frames.
        assert.isAbove(refused, 100)
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
      `{"type":"hello","protocol_version":1e0,"session":"s","client":"cli","host":"h:1"}`
    ]
    for (const text of texts) assertSameAsSchema(text)
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
        since_ms: null
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
      [`{"type":"auth","pubkey":"AAAA","signature":"BBBB"}`, { type: "auth", pubkey: "AAAA", signature: "BBBB" }]
    ]
    for (const [text, expected] of cases) {
      const json = JSON.parse(text) as Json
      assert.deepStrictEqual(fastDecodeClientFrame(json, json.type as string), expected, text)
      assert.deepStrictEqual(schemaRight(text), expected, text)
      assertSameAsSchema(text)
    }
  })

  it("declines what it is unsure of, so errors come from the Schema path", () => {
    const declined = [
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
      { type: "register", username: "u", machine: "m", pubkey: "AAAA" },
      { type: "list_channels" }
    ]
    for (const json of declined) {
      const text = JSON.stringify(json)
      assert.isUndefined(fastDecodeClientFrame(json, json.type), text)
      assertSameAsSchema(text)
    }
  })

  it("the size cap is still checked before the fast path", () => {
    const text = Codec.encodeFrame({
      type: "channel_msg",
      channel: "c",
      payload: { kind: "plain", text: "x".repeat(200) },
      reply_to: null
    })
    const refused = Codec.decodeClientFrame(text, 100)
    assert.isTrue(Either.isLeft(refused) && refused.left.reason === "too_large")
    assert.isTrue(Either.isRight(Codec.decodeClientFrame(text, text.length)))
    assert.isTrue(Either.isLeft(Codec.decodeClientFrame(text, Limits.DEFAULT_MAX_FRAME_BYTES)) === false)
  })
})
