import { Codec, Frames, Limits } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import * as Arbitrary from "effect/Arbitrary"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as fc from "effect/FastCheck"
import type * as Schema from "effect/Schema"

const SEED = 20261124
const RUNS = 30
const params = { seed: SEED, numRuns: RUNS }

type Decoded = Either.Either<unknown, Codec.FrameDecodeError>

/** Deep copy without `undefined`-valued keys: JSON has no `undefined`, so those keys vanish on the wire. */
const withoutUndefined = (u: unknown): unknown => {
  if (Array.isArray(u)) return u.map(withoutUndefined)
  if (typeof u === "object" && u !== null) {
    return Object.fromEntries(
      Object.entries(u).filter(([, v]) => v !== undefined).map(([k, v]) => [k, withoutUndefined(v)])
    )
  }
  return u
}

const expectRight = (decoded: Decoded): unknown => {
  if (Either.isLeft(decoded)) {
    assert.fail(`expected a frame, got ${decoded.left.reason}: ${decoded.left.detail}`)
  }
  return decoded.right
}

const expectRefused = (
  decoded: Decoded,
  reason: Codec.DecodeFailure,
  frameType?: string | undefined
): Codec.FrameDecodeError => {
  if (Either.isRight(decoded)) assert.fail(`expected ${reason}, decoded ${JSON.stringify(decoded.right)}`)
  const error = decoded.left
  assert.instanceOf(error, Codec.FrameDecodeError)
  assert.strictEqual(error._tag, "FrameDecodeError")
  assert.strictEqual(error.reason, reason, error.detail)
  assert.isString(error.detail)
  assert.isAbove(error.detail.length, 0)
  assert.strictEqual(error.message, error.detail)
  if (frameType !== undefined) assert.strictEqual(error.frameType, frameType)
  return error
}

/** The same text as every input shape a `ws` message event can hand over. */
const rawForms = (text: string): ReadonlyArray<readonly [string, Codec.RawMessage]> => {
  const bytes = Buffer.from(text, "utf8")
  const cut = Math.floor(bytes.length / 2)
  const arrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)
  return [
    ["text", text],
    ["Buffer", bytes],
    ["Uint8Array", new Uint8Array(bytes)],
    ["ArrayBuffer", arrayBuffer],
    ["fragments", [bytes.subarray(0, cut), bytes.subarray(cut)]]
  ]
}

const typeOf = (member: { readonly fields: { readonly type: { readonly literals: ReadonlyArray<unknown> } } }) =>
  String(member.fields.type.literals[0])

const roundTrip = <A>(
  arbitrary: fc.Arbitrary<A>,
  decode: (raw: Codec.RawMessage) => Decoded,
  encode: (a: A) => string,
  numRuns: number = RUNS
) =>
  fc.assert(
    fc.property(arbitrary, (frame) => {
      const text = encode(frame)
      const expected = withoutUndefined(frame)
      for (const [form, raw] of rawForms(text)) {
        const decoded = decode(raw)
        if (Either.isLeft(decoded)) {
          assert.fail(`${form} of ${text} refused: ${decoded.left.detail}`)
        }
        assert.deepStrictEqual(decoded.right, expected, `${form} of ${text}`)
      }
    }),
    { ...params, numRuns }
  )

// Arbitrary.make over a whole union is slow (~0.5 s each), so the unions are built from per-member arbitraries.
const clientArbitraries = Frames.ClientFrame.members.map((member) =>
  [typeOf(member), Arbitrary.make(member as Schema.Schema<Frames.ClientFrame>)] as const
)
const serverArbitraries = Frames.ServerFrame.members.map((member) =>
  [typeOf(member), Arbitrary.make(member as Schema.Schema<Frames.ServerFrame>)] as const
)
const anyClientFrame = fc.oneof(...clientArbitraries.map(([, arbitrary]) => arbitrary))
const anyServerFrame = fc.oneof(...serverArbitraries.map(([, arbitrary]) => arbitrary))

describe("Codec round trips (property-based)", () => {
  describe("every client frame", () => {
    for (const [type, arbitrary] of clientArbitraries) {
      it(`client ${type}`, () => {
        roundTrip(arbitrary, (raw) => Codec.decodeClientFrame(raw), Codec.encodeFrame)
      })
    }
  })

  describe("every server frame", () => {
    for (const [type, arbitrary] of serverArbitraries) {
      it(`server ${type}`, () => {
        roundTrip(arbitrary, (raw) => Codec.decodeServerFrame(raw), Codec.encodeFrame)
      })
    }
  })

  describe("every admin op inside an admin frame", () => {
    for (const member of Frames.AdminOp.members) {
      const kind = String(member.fields.kind.literals[0])
      it(`admin ${kind}`, () => {
        const op = Arbitrary.make(member as Schema.Schema<Frames.AdminOp>)
        const requestId = fc.option(Arbitrary.make(Frames.RequestId), { nil: undefined })
        const frame = fc.record({ op, id: requestId }).map(({ id, op }): Frames.ClientFrame =>
          id === undefined ? { type: "admin", op } : { type: "admin", id, op }
        )
        roundTrip(frame, (raw) => Codec.decodeClientFrame(raw), Codec.encodeFrame)
      })
    }
    it("covers all 17 admin ops of SPEC §2.4", () => {
      assert.deepStrictEqual([...Frames.ADMIN_OP_KINDS].sort(), [
        "acl_add",
        "acl_list",
        "acl_remove",
        "ban",
        "ban_list",
        "create_channel",
        "delete_channel",
        "invite_create",
        "invite_list",
        "invite_revoke",
        "kick",
        "machine_add",
        "machine_remove",
        "rename_channel",
        "set_visibility",
        "unban",
        "user_remove"
      ])
    })
  })

  it("the whole unions", () => {
    assert.strictEqual(clientArbitraries.length, Frames.ClientFrame.members.length)
    assert.strictEqual(serverArbitraries.length, Frames.ServerFrame.members.length)
    roundTrip(anyClientFrame, (raw) => Codec.decodeClientFrame(raw), Codec.encodeFrame)
    roundTrip(anyServerFrame, (raw) => Codec.decodeServerFrame(raw), Codec.encodeFrame)
  })

  it("any Unicode text in a payload, lone surrogates included", () => {
    // Built from code points (fast-check's own unicode string arbitraries take ~1 s to construct).
    const codePoints = fc.array(fc.integer({ min: 0, max: 0x10ffff }), { maxLength: 32 })
      .map((points) => String.fromCodePoint(...points))
    const codeUnits = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 32 })
      .map((units) => String.fromCharCode(...units))
    const text = fc.oneof(codePoints, codeUnits, fc.constant("\ud800 \udfff 😀 \u0000"))
    const post = fc.tuple(text, text).map(([channel, body]): Frames.ClientFrame => ({
      type: "channel_msg",
      channel,
      payload: { kind: "plain", text: body },
      reply_to: null
    }))
    roundTrip(post, (raw) => Codec.decodeClientFrame(raw), Codec.encodeFrame)
  })

  it("encodeFrame writes one JSON object with the `type` tag", () => {
    const text = Codec.encodeFrame({ type: "pong", id: "1" })
    assert.strictEqual(text, `{"type":"pong","id":"1"}`)
  })
})

// Values elided in DECISIONS ("q3v…", "Xk…", "b9…") are replaced by real base64url of the right size.
const NONCE = Buffer.alloc(32, 7).toString("base64url")
const PUBKEY = Buffer.alloc(32, 9).toString("base64url")
const SIGNATURE = Buffer.alloc(64, 3).toString("base64url")
const aaron = { user: "aaron", machine: "workstation", session: "razel" }

describe("DECISIONS and SPEC §2.13 example frames decode exactly", () => {
  const clientExamples: ReadonlyArray<readonly [string, unknown]> = [
    [
      `{"type":"hello","protocol_version":1,"session":"razel","host":"conclave.example.com","client":"bridge"}`,
      { type: "hello", protocol_version: 1, session: "razel", host: "conclave.example.com", client: "bridge" }
    ],
    [
      `{"type":"hello","protocol_version":1,"session":"razel"}`,
      { type: "hello", protocol_version: 1, session: "razel", host: null, client: "bridge" }
    ],
    [
      `{"type":"auth","pubkey":"${PUBKEY}","signature":"${SIGNATURE}"}`,
      { type: "auth", pubkey: PUBKEY, signature: SIGNATURE }
    ],
    [
      `{"type":"register","username":"aaron","machine":"workstation","pubkey":"${PUBKEY}"}`,
      { type: "register", username: "aaron", machine: "workstation", pubkey: PUBKEY }
    ],
    [
      `{"type":"join","id":"7","channel":"ops","token":null}`,
      { type: "join", id: "7", channel: "ops", token: null }
    ],
    [`{"type":"join","channel":"ops","token":null}`, { type: "join", channel: "ops", token: null }],
    [
      `{"type":"channel_msg","id":"8","channel":"ops","payload":{"kind":"plain","text":"build is green"},"reply_to":41}`,
      { type: "channel_msg", id: "8", channel: "ops", payload: { kind: "plain", text: "build is green" }, reply_to: 41 }
    ],
    [
      // SPEC §2.13 form: a client-supplied `from` is accepted and dropped (D-2).
      `{"type":"channel_msg","channel":"ops","from":{"user":"aaron","machine":"workstation","session":"razel"},"payload":{"kind":"plain","text":"hi"}}`,
      { type: "channel_msg", channel: "ops", payload: { kind: "plain", text: "hi" }, reply_to: null }
    ],
    [
      `{"type":"read_since","id":"9","channel":"ops","since_seq":0}`,
      { type: "read_since", id: "9", channel: "ops", since_seq: 0, since_ms: null, before_seq: null }
    ],
    [
      `{"type":"read_since","channel":"ops","since_ms":0}`,
      { type: "read_since", channel: "ops", since_seq: null, since_ms: 0, before_seq: null }
    ],
    [
      `{"type":"read_since","id":"11","channel":"ops","before_seq":1001}`,
      { type: "read_since", id: "11", channel: "ops", since_seq: null, since_ms: null, before_seq: 1001 }
    ],
    [
      `{"type":"admin","id":"10","op":{"kind":"create_channel","name":"ops","visibility":"private"}}`,
      { type: "admin", id: "10", op: { kind: "create_channel", name: "ops", visibility: "private" } }
    ],
    [
      `{"type":"admin","op":{"kind":"invite_list","channel":"ops"}}`,
      { type: "admin", op: { kind: "invite_list", channel: "ops" } }
    ]
  ]
  const serverExamples: ReadonlyArray<readonly [string, unknown]> = [
    [`{"type":"challenge","nonce":"${NONCE}"}`, { type: "challenge", nonce: NONCE }],
    [
      `{"type":"established","path":{"user":"aaron","machine":"workstation","session":"razel"}}`,
      { type: "established", path: aaron }
    ],
    [`{"type":"server_info","admin":false}`, { type: "server_info", admin: false }],
    [`{"type":"joined","id":"7","channel":"ops"}`, { type: "joined", id: "7", channel: "ops" }],
    [`{"type":"ack","id":"8","detail":null,"seq":42}`, { type: "ack", id: "8", detail: null, seq: 42 }],
    [`{"type":"ack","detail":null}`, { type: "ack", detail: null, seq: null }],
    [
      `{"type":"channel_msg","channel":"ops","from":{"user":"aaron","machine":"workstation","session":"razel"},"payload":{"kind":"plain","text":"build is green"},"seq":42,"origin":"agent","reply_to":41}`,
      {
        type: "channel_msg",
        channel: "ops",
        from: aaron,
        payload: { kind: "plain", text: "build is green" },
        seq: 42,
        origin: "agent",
        reply_to: 41
      }
    ],
    [
      `{"type":"history","id":"9","channel":"ops","messages":[{"seq":41,"from":{"user":"dana","machine":"desk","session":"cli-812"},"ts_ms":1795000000000,"payload":{"kind":"plain","text":"is the build green?"},"origin":"human","reply_to":null}],"more":false}`,
      {
        type: "history",
        id: "9",
        channel: "ops",
        messages: [{
          seq: 41,
          from: { user: "dana", machine: "desk", session: "cli-812" },
          ts_ms: 1795000000000,
          payload: { kind: "plain", text: "is the build green?" },
          origin: "human",
          reply_to: null
        }],
        more: false
      }
    ],
    [`{"type":"ack","id":"10","detail":"ops","seq":null}`, { type: "ack", id: "10", detail: "ops", seq: null }],
    [
      `{"type":"error","id":"11","error":{"kind":"rate_limited","message":"rate limit: 20 messages burst, 2/s","retry_after_ms":480}}`,
      {
        type: "error",
        id: "11",
        error: { kind: "rate_limited", message: "rate limit: 20 messages burst, 2/s", retry_after_ms: 480 }
      }
    ],
    [
      `{"type":"error","id":"12","error":{"kind":"too_large","message":"message body exceeds 65536 bytes","limit":65536}}`,
      {
        type: "error",
        id: "12",
        error: { kind: "too_large", message: "message body exceeds 65536 bytes", limit: 65536 }
      }
    ],
    [
      `{"type":"error","id":"13","error":{"kind":"conflict","message":"channel \`ops\` already exists"}}`,
      { type: "error", id: "13", error: { kind: "conflict", message: "channel `ops` already exists" } }
    ],
    [
      `{"type":"error","error":{"kind":"not_found","message":"session \`ghost/box/sess\` is not online"}}`,
      { type: "error", error: { kind: "not_found", message: "session `ghost/box/sess` is not online" } }
    ],
    [
      `{"type":"error","error":{"kind":"version_mismatch","ours":1,"theirs":2}}`,
      { type: "error", error: { kind: "version_mismatch", ours: 1, theirs: 2 } }
    ],
    [
      `{"type":"unsubscribed","channel":"ops","reason":"kicked","new_name":null}`,
      { type: "unsubscribed", channel: "ops", reason: "kicked", new_name: null }
    ],
    [
      `{"type":"unsubscribed","channel":"ops","reason":"renamed","new_name":"ops-2"}`,
      { type: "unsubscribed", channel: "ops", reason: "renamed", new_name: "ops-2" }
    ],
    [`{"type":"shutdown","reason":"server shutting down"}`, { type: "shutdown", reason: "server shutting down" }]
  ]

  it("client → server examples", () => {
    for (const [line, expected] of clientExamples) {
      assert.deepStrictEqual(expectRight(Codec.decodeClientFrame(line)), expected, line)
    }
  })
  it("server → client examples", () => {
    for (const [line, expected] of serverExamples) {
      assert.deepStrictEqual(expectRight(Codec.decodeServerFrame(line)), expected, line)
    }
  })
  it("re-encoding a decoded example gives the example back when nothing was defaulted", () => {
    const sides = [[clientExamples, Codec.decodeClientFrame], [serverExamples, Codec.decodeServerFrame]] as const
    let checked = 0
    for (const [examples, decode] of sides) {
      for (const [line, expected] of examples) {
        if (Object.keys(JSON.parse(line)).length !== Object.keys(expected as object).length) continue
        if (line.includes(`"from"`) && decode === Codec.decodeClientFrame) continue
        assert.strictEqual(Codec.encodeFrame(expectRight(decode(line)) as Frames.ServerFrame), line)
        checked++
      }
    }
    assert.isAbove(checked, 20)
  })
  it("the SPEC §2.13 delivery without seq/origin is not a valid v1 server frame (D-4, D-6)", () => {
    const line =
      `{"type":"channel_msg","channel":"ops","from":{"user":"aaron","machine":"workstation","session":"razel"},"payload":{"kind":"plain","text":"hi"}}`
    expectRefused(Codec.decodeServerFrame(line), "invalid", "channel_msg")
  })
  it("the hello tag never changes (S-022)", () => {
    assert.strictEqual(Frames.ClientFrame.members[0].fields.type.literals[0], "hello")
    assert.strictEqual(Frames.FRAME_TYPES[0], "hello")
  })
})

describe("missing nullable keys decode as null (SPEC §2.13)", () => {
  const cases: ReadonlyArray<readonly ["client" | "server", unknown, Record<string, unknown>]> = [
    ["client", { type: "hello", protocol_version: 1, session: "s" }, { host: null, client: "bridge" }],
    ["client", { type: "join", channel: "c" }, { token: null }],
    ["client", { type: "who" }, { channel: null }],
    ["client", { type: "channel_msg", channel: "c", payload: { kind: "plain", text: "t" } }, { reply_to: null }],
    [
      "client",
      { type: "channel_msg", channel: "c", payload: { kind: "encrypted", ciphertext: "AAAA" } },
      { payload: { kind: "encrypted", ciphertext: "AAAA", key_id: null }, reply_to: null }
    ],
    ["client", { type: "read_since", channel: "c", since_seq: 3 }, { since_ms: null, before_seq: null }],
    ["client", { type: "read_since", channel: "c" }, { since_seq: null, since_ms: null, before_seq: null }],
    ["client", { type: "read_since", channel: "c", before_seq: 9 }, { since_seq: null, since_ms: null }],
    [
      "client",
      { type: "admin", op: { kind: "invite_create", channel: "c" } },
      { op: { kind: "invite_create", channel: "c", uses: null, expires_in_secs: null } }
    ],
    ["server", { type: "ack" }, { detail: null, seq: null }],
    ["server", { type: "presence", sessions: [] }, { channel: null }],
    ["server", { type: "unsubscribed", channel: "c", reason: "kicked" }, { new_name: null }],
    ["server", { type: "history", channel: "c", messages: [] }, { more: false }],
    [
      "server",
      { type: "invite_list", invites: [{ token: "t" }] },
      { invites: [{ token: "t", uses_remaining: null, expires_at: null }] }
    ],
    [
      "server",
      {
        type: "channel_msg",
        channel: "c",
        from: aaron,
        payload: { kind: "plain", text: "t" },
        seq: 1,
        origin: "human"
      },
      { reply_to: null }
    ],
    [
      "server",
      { type: "whisper", from: aaron, target: aaron, payload: { kind: "plain", text: "t" } },
      { origin: "agent" }
    ]
  ]
  for (const [side, input, filled] of cases) {
    it(`${side} ${(input as { type: string }).type} ${Object.keys(filled).join(", ")}`, () => {
      const text = JSON.stringify(input)
      const decoded = side === "client" ? Codec.decodeClientFrame(text) : Codec.decodeServerFrame(text)
      assert.deepStrictEqual(expectRight(decoded), { ...(input as object), ...filled })
      // An explicit null means the same as a missing key.
      const explicit = JSON.stringify({
        ...(input as object),
        ...Object.fromEntries(
          Object.entries(filled).filter(([, v]) => typeof v !== "object" || v === null).map(([k]) => [k, null])
        )
      })
      const again = side === "client" ? Codec.decodeClientFrame(explicit) : Codec.decodeServerFrame(explicit)
      assert.deepStrictEqual(expectRight(again), { ...(input as object), ...filled }, explicit)
    })
  }
  it("an absent request id stays absent and an explicit null id decodes as absent (D-2)", () => {
    const absent = expectRight(Codec.decodeClientFrame(`{"type":"ping"}`))
    assert.deepStrictEqual(absent, { type: "ping" })
    assert.isFalse(Object.hasOwn(absent as object, "id"))
    const explicit = expectRight(Codec.decodeClientFrame(`{"type":"ping","id":null}`))
    assert.isFalse(Object.hasOwn(explicit as object, "id"))
    assert.strictEqual(Codec.encodeFrame(explicit as Frames.ClientFrame), `{"type":"ping"}`)
  })
})

describe("malformed input is refused with a typed FrameDecodeError, never a throw", () => {
  it("not JSON", () => {
    for (
      const text of [
        "",
        " ",
        "{",
        "hello",
        `{"type":"ping",}`,
        `{'type':'ping'}`,
        `{"type":"ping"}x`,
        "NaN",
        "undefined"
      ]
    ) {
      for (const [, raw] of rawForms(text)) {
        expectRefused(Codec.decodeClientFrame(raw), "not_json")
        expectRefused(Codec.decodeServerFrame(raw), "not_json")
      }
    }
  })

  it("binary that is not UTF-8", () => {
    const prefix = Buffer.from(`{"type":"join","channel":"`, "utf8")
    const suffix = Buffer.from(`"}`, "utf8")
    const bad = [
      [0xff],
      [0xfe, 0xff],
      [0xc0, 0xaf], // overlong "/"
      [0x80], // lone continuation byte
      [0xe2, 0x82], // truncated 3-byte sequence
      [0xed, 0xa0, 0x80], // UTF-8-encoded surrogate
      [0xf4, 0x90, 0x80, 0x80] // beyond U+10FFFF
    ]
    for (const bytes of bad) {
      const whole = Buffer.concat([prefix, Buffer.from(bytes), suffix])
      const arrayBuffer = whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.byteLength)
      for (const raw of [whole, new Uint8Array(whole), arrayBuffer, [prefix, Buffer.from(bytes), suffix]]) {
        expectRefused(Codec.decodeClientFrame(raw), "not_utf8")
        expectRefused(Codec.decodeServerFrame(raw), "not_utf8")
      }
    }
  })

  it("JSON that is not an object: array, number, null, string, boolean", () => {
    for (
      const text of ["[]", `[{"type":"ping"}]`, "1", "-0.5", "null", `"ping"`, `"{\\"type\\":\\"ping\\"}"`, "true"]
    ) {
      for (const [, raw] of rawForms(text)) {
        expectRefused(Codec.decodeClientFrame(raw), "not_object")
        expectRefused(Codec.decodeServerFrame(raw), "not_object")
      }
    }
  })

  it("unknown type, reported with the type it saw", () => {
    const error = expectRefused(Codec.decodeClientFrame(`{"type":"nonsense"}`), "unknown_type", "nonsense")
    assert.include(error.detail, "nonsense")
    expectRefused(Codec.decodeServerFrame(`{"type":"nonsense"}`), "unknown_type", "nonsense")
    expectRefused(Codec.decodeClientFrame(`{"type":"Ping"}`), "unknown_type", "Ping")
    expectRefused(Codec.decodeClientFrame(`{"type":""}`), "unknown_type", "")
    const long = "x".repeat(10_000)
    const longError = expectRefused(Codec.decodeClientFrame(`{"type":"${long}"}`), "unknown_type")
    assert.strictEqual(longError.frameType, "x".repeat(64))
    assert.isBelow(longError.detail.length, 200)
  })

  it("a server-only type sent to the server, and a client-only type sent to a client", () => {
    // The frame type is reported so the server can tell a known-but-misdirected frame (SPEC §2.9) from garbage.
    for (const type of ["pong", "established", "challenge", "server_info", "history", "unsubscribed", "shutdown"]) {
      expectRefused(Codec.decodeClientFrame(JSON.stringify({ type })), "unknown_type", type)
      assert.isTrue(Codec.isKnownType(type))
      assert.isFalse(Codec.isClientFrameType(type))
    }
    for (const type of ["hello", "auth", "register", "ping", "join", "read_since", "admin", "list_users"]) {
      expectRefused(Codec.decodeServerFrame(JSON.stringify({ type })), "unknown_type", type)
      assert.isTrue(Codec.isClientFrameType(type))
    }
    assert.isFalse(Codec.isKnownType("nonsense"))
  })

  it("missing or non-string type", () => {
    for (
      const text of [
        `{}`,
        `{"channel":"ops"}`,
        `{"type":1}`,
        `{"type":null}`,
        `{"type":["ping"]}`,
        `{"type":{"0":"p"}}`,
        `{"Type":"ping"}`
      ]
    ) {
      const error = expectRefused(Codec.decodeClientFrame(text), "unknown_type")
      assert.isUndefined(error.frameType, text)
      expectRefused(Codec.decodeServerFrame(text), "unknown_type")
    }
  })

  const invalidClient: ReadonlyArray<unknown> = [
    { type: "hello", session: "s" },
    { type: "hello", protocol_version: "1", session: "s" },
    { type: "hello", protocol_version: -1, session: "s" },
    { type: "hello", protocol_version: 1.5, session: "s" },
    { type: "hello", protocol_version: 2 ** 32, session: "s" },
    { type: "hello", protocol_version: 1 },
    { type: "hello", protocol_version: 1, session: 7 },
    { type: "hello", protocol_version: 1, session: "s", host: 80 },
    { type: "hello", protocol_version: 1, session: "s", client: "robot" },
    { type: "register", username: "u", machine: "m" },
    { type: "register", username: ["u"], machine: "m", pubkey: PUBKEY },
    { type: "auth", pubkey: PUBKEY },
    { type: "auth", signature: SIGNATURE },
    { type: "auth", pubkey: 42, signature: SIGNATURE },
    { type: "join" },
    { type: "join", channel: 5 },
    { type: "join", channel: null },
    { type: "join", channel: "c", token: 1 },
    { type: "leave" },
    { type: "who", channel: false },
    { type: "admin" },
    { type: "admin", op: null },
    { type: "admin", op: "create_channel" },
    { type: "admin", op: [{ kind: "create_channel", name: "c", visibility: "public" }] },
    { type: "admin", op: { kind: "nope", name: "c" } },
    { type: "admin", op: { name: "c", visibility: "public" } },
    { type: "admin", op: { kind: "create_channel", name: "c" } },
    { type: "admin", op: { kind: "create_channel", name: "c", visibility: "secret" } },
    { type: "admin", op: { kind: "create_channel", name: "c", visibility: "Public" } },
    { type: "admin", op: { kind: "rename_channel", name: "c" } },
    { type: "admin", op: { kind: "invite_create", channel: "c", uses: -1 } },
    { type: "admin", op: { kind: "invite_create", channel: "c", uses: 2 ** 32 } },
    { type: "admin", op: { kind: "invite_create", channel: "c", uses: 1.5 } },
    { type: "admin", op: { kind: "invite_create", channel: "c", uses: "3" } },
    { type: "admin", op: { kind: "invite_create", channel: "c", expires_in_secs: -1 } },
    { type: "admin", op: { kind: "invite_create", channel: "c", expires_in_secs: 0.5 } },
    { type: "admin", op: { kind: "kick", channel: "c" } },
    { type: "admin", op: { kind: "machine_add", name: "m" } },
    { type: "admin", op: { kind: "user_remove" } },
    { type: "channel_msg", channel: "c" },
    { type: "channel_msg", payload: { kind: "plain", text: "t" } },
    { type: "channel_msg", channel: "c", payload: "t" },
    { type: "channel_msg", channel: "c", payload: { text: "t" } },
    { type: "channel_msg", channel: "c", payload: { kind: "plaintext", text: "t" } },
    { type: "channel_msg", channel: "c", payload: { kind: "plain" } },
    { type: "channel_msg", channel: "c", payload: { kind: "plain", text: 5 } },
    { type: "channel_msg", channel: "c", payload: { kind: "encrypted" } },
    { type: "channel_msg", channel: "c", payload: { kind: "plain", text: "t" }, reply_to: -1 },
    { type: "channel_msg", channel: "c", payload: { kind: "plain", text: "t" }, reply_to: "41" },
    { type: "whisper", payload: { kind: "plain", text: "t" } },
    { type: "whisper", target: "a/b/c", payload: { kind: "plain", text: "t" } },
    { type: "whisper", target: { user: "a", machine: "b" }, payload: { kind: "plain", text: "t" } },
    { type: "whisper", target: { user: "a", machine: "b", session: 3 }, payload: { kind: "plain", text: "t" } },
    { type: "permission_request", tool_name: "Bash", description: "d" },
    { type: "permission_request", request_id: "r", description: "d" },
    { type: "permission_request", request_id: "r", tool_name: "Bash" },
    { type: "permission_request", request_id: 5, tool_name: "Bash", description: "d" },
    { type: "permission_verdict", target: "a/b/c", request_id: "r", behavior: "allow" },
    { type: "permission_verdict", target: { user: "a", machine: "b", session: "c" }, behavior: "allow" },
    { type: "permission_verdict", target: { user: "a", machine: "b", session: "c" }, request_id: "r" },
    { type: "permission_verdict", target: { user: "a", machine: "b", session: "c" }, request_id: "r", behavior: "yes" },
    { type: "read_since" },
    { type: "read_since", channel: "c", since_seq: -1 },
    { type: "read_since", channel: "c", since_seq: 1.5 },
    { type: "read_since", channel: "c", since_seq: "0" },
    { type: "read_since", channel: "c", since_ms: "0" },
    { type: "read_since", channel: "c", since_ms: 9e15 },
    // scroll-back: `before_seq` names a message, so it is an integer from 1 to 2^53 - 1
    { type: "read_since", channel: "c", before_seq: 0 },
    { type: "read_since", channel: "c", before_seq: -1 },
    { type: "read_since", channel: "c", before_seq: 1.5 },
    { type: "read_since", channel: "c", before_seq: "10" },
    { type: "read_since", channel: "c", before_seq: true },
    { type: "read_since", channel: "c", before_seq: [5] },
    { type: "read_since", channel: "c", before_seq: 2 ** 53 },
    { type: "list_channels", id: 7 },
    { type: "ping", id: "" },
    { type: "ping", id: ["1"] }
  ]
  it(`missing and mistyped fields of client frames (${invalidClient.length} cases)`, () => {
    for (const input of invalidClient) {
      const text = JSON.stringify(input)
      const type = (input as { type: string }).type
      for (const [, raw] of rawForms(text)) {
        const error = expectRefused(Codec.decodeClientFrame(raw), "invalid", type)
        assert.include(error.detail, `invalid \`${type}\` frame`, text)
      }
    }
  })

  const invalidServer: ReadonlyArray<unknown> = [
    { type: "challenge" },
    { type: "challenge", nonce: 5 },
    { type: "established", path: { user: "a", machine: "b" } },
    { type: "established", path: "a/b/c" },
    { type: "server_info" },
    { type: "server_info", admin: "true" },
    { type: "joined" },
    { type: "ack", seq: -1 },
    { type: "ack", detail: 3 },
    { type: "presence", sessions: [{ user: "a" }] },
    { type: "presence" },
    { type: "error" },
    { type: "error", error: { kind: "nope", message: "m" } },
    { type: "error", error: { kind: "not_found" } },
    { type: "error", error: { kind: "version_mismatch", ours: 1 } },
    { type: "error", error: { kind: "rate_limited", message: "m" } },
    { type: "error", error: { kind: "rate_limited", message: "m", retry_after_ms: -5 } },
    { type: "error", error: { kind: "too_large", message: "m" } },
    { type: "error", error: "internal error" },
    { type: "channel_list", channels: [{ name: "c", visibility: "secret", member: true }] },
    { type: "channel_list", channels: [{ name: "c", visibility: "public" }] },
    { type: "invite_token" },
    { type: "machine_list", machines: [{ name: "m", pubkey: PUBKEY }] },
    { type: "user_list", users: [1] },
    { type: "invite_list", invites: [{ token: "t", uses_remaining: -1 }] },
    { type: "history", channel: "c", messages: [{ seq: 1 }] },
    { type: "history", channel: "c", messages: [], more: "yes" },
    { type: "channel_msg", channel: "c", from: aaron, payload: { kind: "plain", text: "t" }, seq: 1 },
    { type: "channel_msg", channel: "c", from: aaron, payload: { kind: "plain", text: "t" }, origin: "human" },
    {
      type: "channel_msg",
      channel: "c",
      from: aaron,
      payload: { kind: "plain", text: "t" },
      seq: 1,
      origin: "robot"
    },
    { type: "whisper", target: aaron, payload: { kind: "plain", text: "t" } },
    { type: "permission_request", from: aaron, request_id: "r", tool_name: "Bash" },
    { type: "permission_request", request_id: "r", tool_name: "Bash", description: "d" },
    { type: "permission_verdict", from: aaron, request_id: "r", behavior: "maybe" },
    { type: "permission_verdict", from: aaron, behavior: "allow" },
    { type: "unsubscribed", channel: "c", reason: "left" },
    { type: "unsubscribed", reason: "kicked" },
    { type: "shutdown" }
  ]
  it(`missing and mistyped fields of server frames (${invalidServer.length} cases)`, () => {
    for (const input of invalidServer) {
      const text = JSON.stringify(input)
      const type = (input as { type: string }).type
      for (const [, raw] of rawForms(text)) {
        expectRefused(Codec.decodeServerFrame(raw), "invalid", type)
      }
    }
  })

  it("oversize input is refused before parsing", () => {
    // Not JSON at all, yet the reason is too_large: the cap is checked first.
    const huge = "x".repeat(Limits.DEFAULT_MAX_FRAME_BYTES + 1)
    for (const [, raw] of rawForms(huge)) {
      expectRefused(Codec.decodeClientFrame(raw), "too_large")
      expectRefused(Codec.decodeServerFrame(raw), "too_large")
    }
    // A huge string over a small cap: refused by size, and the detail names both numbers.
    const bigString = `{"type":"join","channel":"${"c".repeat(10 * 1024 * 1024)}"}`
    const error = expectRefused(Codec.decodeClientFrame(bigString, 64), "too_large")
    assert.include(error.detail, `frame of ${bigString.length} bytes`)
    expectRefused(Codec.decodeClientFrame(`{${"x".repeat(100)}`, 64), "too_large")
    assert.include(error.detail, "64-byte cap")
    // Invalid UTF-8 beyond the cap is still too_large, not not_utf8.
    expectRefused(Codec.decodeClientFrame(Buffer.alloc(1000, 0xff), 999), "too_large")
  })

  it("the cap counts UTF-8 bytes and is inclusive", () => {
    const frame = `{"type":"join","channel":"${"é".repeat(20)}"}` // 20 characters, 40 bytes
    const bytes = Buffer.byteLength(frame, "utf8")
    assert.strictEqual(bytes, frame.length + 20)
    for (const [, raw] of rawForms(frame)) {
      expectRight(Codec.decodeClientFrame(raw, bytes))
      expectRefused(Codec.decodeClientFrame(raw, bytes - 1), "too_large")
    }
    const atDefault = `{"type":"join","channel":"${"c".repeat(Limits.DEFAULT_MAX_FRAME_BYTES - 28)}"}`
    assert.strictEqual(Buffer.byteLength(atDefault), Limits.DEFAULT_MAX_FRAME_BYTES)
    expectRight(Codec.decodeClientFrame(atDefault))
    expectRefused(Codec.decodeClientFrame(atDefault + " "), "too_large")
  })

  it("invalid base64url in every bytes field", () => {
    for (const bad of ["a+b/", "AAA=", "AAAAAA==", "A", "AAAAA", "a b", "é", " AAAA", "AAAA\n"]) {
      expectRefused(
        Codec.decodeClientFrame(JSON.stringify({ type: "auth", pubkey: bad, signature: SIGNATURE })),
        "invalid",
        "auth"
      )
      expectRefused(
        Codec.decodeClientFrame(JSON.stringify({ type: "auth", pubkey: PUBKEY, signature: bad })),
        "invalid",
        "auth"
      )
      expectRefused(
        Codec.decodeClientFrame(JSON.stringify({ type: "register", username: "u", machine: "m", pubkey: bad })),
        "invalid",
        "register"
      )
      expectRefused(
        Codec.decodeClientFrame(JSON.stringify({ type: "admin", op: { kind: "machine_add", name: "m", pubkey: bad } })),
        "invalid",
        "admin"
      )
      expectRefused(
        Codec.decodeClientFrame(
          JSON.stringify({ type: "channel_msg", channel: "c", payload: { kind: "encrypted", ciphertext: bad } })
        ),
        "invalid",
        "channel_msg"
      )
      expectRefused(Codec.decodeServerFrame(JSON.stringify({ type: "challenge", nonce: bad })), "invalid", "challenge")
    }
  })

  it("deep nesting is refused before parsing, wherever it is (MAX_JSON_DEPTH)", () => {
    const depth = 100_000
    const deepArray = "[".repeat(depth) + "]".repeat(depth)
    const deepObject = `{"a":`.repeat(depth) + "1" + "}".repeat(depth)
    const deepPayload = `{"type":"channel_msg","channel":"c","payload":${deepArray}}`
    const deepOp = `{"type":"admin","op":${`{"op":`.repeat(depth)}1${"}".repeat(depth)}}`
    // an unknown deep field is refused too: parsing it is the cost
    const extra = `{"type":"ping","id":"1","x":${deepArray}}`
    for (const text of [deepArray, deepObject, deepPayload, deepOp, extra]) {
      const error = expectRefused(Codec.decodeClientFrame(text), "invalid")
      assert.strictEqual(error.detail, `frame nests deeper than ${Limits.MAX_JSON_DEPTH} levels`)
    }
    // at the limit, and with brackets inside strings, frames decode as before
    const atLimit = `{"type":"ping","id":"1","x":${"[".repeat(Limits.MAX_JSON_DEPTH - 1)}${
      "]".repeat(Limits.MAX_JSON_DEPTH - 1)
    }}`
    assert.deepStrictEqual(expectRight(Codec.decodeClientFrame(atLimit)), { type: "ping", id: "1" })
    const quoted = `{"type":"ping","id":"[[[[","x":"${"[{".repeat(5000)}"}`
    assert.deepStrictEqual(expectRight(Codec.decodeClientFrame(quoted)), { type: "ping", id: "[[[[" })
  })

  it("__proto__ keys neither pollute prototypes nor smuggle fields", () => {
    expectRefused(Codec.decodeClientFrame(`{"__proto__":{"type":"ping"}}`), "unknown_type")
    const join = expectRight(
      Codec.decodeClientFrame(`{"type":"join","channel":"c","__proto__":{"token":"t","id":"x"}}`)
    )
    assert.deepStrictEqual(join, { type: "join", channel: "c", token: null })
    assert.strictEqual(Object.getPrototypeOf(join), Object.prototype)
    expectRight(Codec.decodeClientFrame(`{"type":"ping","__proto__":{"polluted":true}}`))
    assert.isUndefined((({}) as Record<string, unknown>).polluted)
    expectRefused(
      Codec.decodeClientFrame(`{"type":"admin","op":{"__proto__":{"kind":"user_remove","username":"root"}}}`),
      "invalid",
      "admin"
    )
    expectRefused(
      Codec.decodeServerFrame(`{"type":"established","path":{"__proto__":{"user":"a","machine":"b","session":"c"}}}`),
      "invalid",
      "established"
    )
  })

  it("NaN-ish numbers", () => {
    for (
      const text of [
        `{"type":"read_since","channel":"c","since_ms":NaN}`,
        `{"type":"read_since","channel":"c","since_ms":Infinity}`,
        `{"type":"read_since","channel":"c","since_ms":-Infinity}`
      ]
    ) {
      expectRefused(Codec.decodeClientFrame(text), "not_json")
    }
    for (const value of ["1e400", "-1e400", `"NaN"`, `"Infinity"`, "-0.5"]) {
      expectRefused(
        Codec.decodeClientFrame(`{"type":"hello","protocol_version":${value},"session":"s"}`),
        "invalid",
        "hello"
      )
      expectRefused(Codec.decodeServerFrame(`{"type":"ack","detail":null,"seq":${value}}`), "invalid", "ack")
    }
    for (const value of ["1e400", "-1e400", `"NaN"`, "1e16"]) {
      expectRefused(
        Codec.decodeClientFrame(`{"type":"read_since","channel":"c","since_ms":${value}}`),
        "invalid",
        "read_since"
      )
      expectRefused(
        Codec.decodeClientFrame(`{"type":"read_since","channel":"c","since_seq":${value}}`),
        "invalid",
        "read_since"
      )
    }
    // Large but finite expiries are the handler's business, not the codec's (SPEC §2.13).
    const far = expectRight(
      Codec.decodeClientFrame(`{"type":"admin","op":{"kind":"invite_create","channel":"c","expires_in_secs":1e17}}`)
    )
    assert.deepStrictEqual(far, {
      type: "admin",
      op: { kind: "invite_create", channel: "c", uses: null, expires_in_secs: 1e17 }
    })
    expectRefused(
      Codec.decodeClientFrame(`{"type":"admin","op":{"kind":"invite_create","channel":"c","expires_in_secs":1e400}}`),
      "invalid",
      "admin"
    )
    // Negative since_ms is accepted (SPEC §2.11).
    expectRight(Codec.decodeClientFrame(`{"type":"read_since","channel":"c","since_ms":-5}`))
  })

  it("request ids are 1–64 characters (D-2)", () => {
    const ok = "i".repeat(Limits.REQUEST_ID_MAX_LENGTH)
    assert.deepStrictEqual(expectRight(Codec.decodeClientFrame(`{"type":"ping","id":"${ok}"}`)), {
      type: "ping",
      id: ok
    })
    expectRefused(Codec.decodeClientFrame(`{"type":"ping","id":"${ok}x"}`), "invalid", "ping")
    expectRefused(
      Codec.decodeClientFrame(`{"type":"join","id":"${"x".repeat(1000)}","channel":"c"}`),
      "invalid",
      "join"
    )
    expectRefused(Codec.decodeClientFrame(`{"type":"ping","id":""}`), "invalid", "ping")
    expectRefused(Codec.decodeClientFrame(`{"type":"ping","id":7}`), "invalid", "ping")
    expectRefused(Codec.decodeServerFrame(`{"type":"pong","id":"${ok}x"}`), "invalid", "pong")
  })

  it("the detail of a parse failure stays short even when the offending value is huge", () => {
    const error = expectRefused(
      Codec.decodeClientFrame(JSON.stringify({ type: "join", channel: ["x".repeat(200_000)] })),
      "invalid",
      "join"
    )
    assert.isAtMost(error.detail.length, 1025)
  })

  it("never throws on arbitrary input (fuzz)", () => {
    const validTexts = fc.oneof(anyClientFrame.map(Codec.encodeFrame), anyServerFrame.map(Codec.encodeFrame))
    // Valid frames with one character changed, removed or duplicated.
    const mutated = fc.tuple(validTexts, fc.nat(), fc.string({ maxLength: 3 })).map(([text, at, insert]) => {
      const i = at % (text.length + 1)
      return text.slice(0, i) + insert + text.slice(i + (at % 2))
    })
    const inputs = fc.oneof(
      fc.json(),
      fc.anything().map((value) => JSON.stringify(value) ?? "undefined"),
      fc.string(),
      fc.uint8Array().map((bytes) => Buffer.from(bytes)),
      mutated,
      mutated.map((text) => Buffer.from(text, "utf8"))
    )
    fc.assert(
      fc.property(inputs, (raw) => {
        const decoders: ReadonlyArray<
          (raw: Codec.RawMessage) => Either.Either<{ readonly type: string }, Codec.FrameDecodeError>
        > = [Codec.decodeClientFrame, Codec.decodeServerFrame]
        for (const decode of decoders) {
          const decoded = decode(raw)
          if (Either.isLeft(decoded)) {
            assert.instanceOf(decoded.left, Codec.FrameDecodeError)
            assert.include(
              ["too_large", "not_utf8", "not_json", "not_object", "unknown_type", "invalid"],
              decoded.left.reason
            )
          } else {
            assert.isString(decoded.right.type)
          }
        }
      }),
      { seed: SEED, numRuns: 200 }
    )
  })

  it.effect("the Effect variants fail in the error channel", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Codec.decodeClientFrameEffect(`{"type":"nonsense"}`))
      assert.strictEqual(error._tag, "FrameDecodeError")
      assert.strictEqual(error.reason, "unknown_type")
      const tooBig = yield* Effect.flip(Codec.decodeServerFrameEffect(`{"type":"pong"}`, 3))
      assert.strictEqual(tooBig.reason, "too_large")
      const pong = yield* Codec.decodeServerFrameEffect(Buffer.from(`{"type":"pong","id":"1"}`))
      assert.deepStrictEqual(pong, { type: "pong", id: "1" })
    }))
})
