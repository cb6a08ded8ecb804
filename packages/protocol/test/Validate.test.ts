import { Codec, Errors, type Frames, Validate } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"

const KEY_32 = Buffer.alloc(32, 1).toString("base64url")

// D-15: 1–64 characters, no `/`, no whitespace, no control characters (zero-width and bidi included).
const invalidNames: ReadonlyArray<readonly [string, string]> = [
  ["empty", ""],
  ["slash", "a/b"],
  ["only a slash", "/"],
  ["trailing slash", "a/"],
  ["space", "a b"],
  ["leading space", " a"],
  ["tab", "a\tb"],
  ["newline", "a\nb"],
  ["carriage return", "a\r"],
  ["NUL", "a\u0000b"],
  ["escape", "\u001b[31m"],
  ["DEL", "a\u007f"],
  ["C1 control", "a\u0085"],
  ["no-break space", "a\u00a0b"],
  ["ideographic space", "a\u3000b"],
  ["line separator", "a\u2028b"],
  ["paragraph separator", "a\u2029b"],
  ["zero-width space", "a\u200bb"],
  ["zero-width non-joiner", "a\u200cb"],
  ["zero-width joiner", "a\u200db"],
  ["word joiner", "a\u2060b"],
  ["byte order mark", "\ufeffaaron"],
  ["soft hyphen", "aa\u00adron"],
  ["right-to-left override", "a\u202eb"],
  ["lone high surrogate", "a\ud800"],
  ["lone low surrogate", "\udc00a"],
  ["65 characters", "x".repeat(65)],
  ["65 astral characters", "😀".repeat(65)]
]

const validNames: ReadonlyArray<string> = [
  "a",
  "aaron",
  "sno-box",
  "repo.name",
  "a_b",
  "cli-812",
  "Zoë",
  "日本語",
  "😀",
  "x".repeat(64),
  "😀".repeat(64) // 64 characters, 128 UTF-16 code units
]

const decodeClient = (frame: unknown): Frames.ClientFrame => {
  const decoded = Codec.decodeClientFrame(JSON.stringify(frame))
  if (Either.isLeft(decoded)) assert.fail(decoded.left.detail)
  return decoded.right
}

const expectInvalid = (frame: unknown, startsWith: string): Validate.InvalidFrame => {
  const result = Validate.validateClientFrame(decodeClient(frame))
  if (Either.isRight(result)) assert.fail(`expected InvalidFrame for ${JSON.stringify(frame)}`)
  assert.instanceOf(result.left, Validate.InvalidFrame)
  assert.strictEqual(result.left._tag, "InvalidFrame")
  assert.isTrue(result.left.detail.startsWith(startsWith), `${result.left.detail} should start with ${startsWith}`)
  assert.strictEqual(result.left.message, result.left.detail)
  return result.left
}

const expectValid = (frame: unknown) => {
  const decoded = decodeClient(frame)
  const result = Validate.validateClientFrame(decoded)
  if (Either.isLeft(result)) assert.fail(`${JSON.stringify(frame)} refused: ${result.left.detail}`)
  assert.strictEqual(result.right, decoded)
}

/** Every place a name is about to be created, with the message the refusal starts with. */
const namePlaces: ReadonlyArray<readonly [string, (name: string) => unknown, (name: string) => string]> = [
  [
    "register username",
    (name) => ({ type: "register", username: name, machine: "m", pubkey: KEY_32 }),
    Errors.Messages.invalidUsername
  ],
  [
    "register machine",
    (name) => ({ type: "register", username: "u", machine: name, pubkey: KEY_32 }),
    Errors.Messages.invalidMachine
  ],
  [
    "hello session handle",
    (name) => ({ type: "hello", protocol_version: 1, session: name }),
    Errors.Messages.invalidHandle
  ],
  [
    "create_channel name",
    (name) => ({ type: "admin", op: { kind: "create_channel", name, visibility: "public" } }),
    Errors.Messages.invalidChannel
  ],
  [
    "rename_channel new_name",
    (name) => ({ type: "admin", op: { kind: "rename_channel", name: "old", new_name: name } }),
    Errors.Messages.invalidChannel
  ],
  [
    "acl_add user",
    (name) => ({ type: "admin", op: { kind: "acl_add", channel: "c", user: name } }),
    Errors.Messages.invalidUsername
  ],
  [
    "machine_add name",
    (name) => ({ type: "admin", op: { kind: "machine_add", name, pubkey: KEY_32 } }),
    Errors.Messages.invalidMachine
  ]
]

describe("Validate names (D-15)", () => {
  for (const [place, make, message] of namePlaces) {
    describe(place, () => {
      it("refuses every invalid name with InvalidFrame", () => {
        for (const [why, name] of invalidNames) {
          const error = expectInvalid(make(name), message(name))
          // channel names say why; the other texts are fixed by SPEC §2.6
          if (message === Errors.Messages.invalidChannel) assert.include(error.detail, "(must ", why)
          else assert.strictEqual(error.detail, message(name), why)
        }
      })
      it("accepts valid names", () => {
        for (const name of validNames) expectValid(make(name))
      })
    })
  }

  it("says what is wrong", () => {
    const make = namePlaces[0][1]
    assert.strictEqual(expectInvalid(make(""), "invalid username").detail, "invalid username: ``")
    assert.strictEqual(expectInvalid(make("a/b"), "invalid username").detail, "invalid username: `a/b`")
    const channel = namePlaces.find(([place]) => place.startsWith("create_channel"))![1]
    assert.include(expectInvalid(channel("a b"), "invalid channel name").detail, "whitespace or control")
    assert.include(expectInvalid(channel("x".repeat(65)), "invalid channel name").detail, "at most 64 characters")
  })

  it("checks the username before the machine name", () => {
    expectInvalid({ type: "register", username: "a b", machine: "c/d", pubkey: KEY_32 }, "invalid username: `a b`")
  })

  it("lets existing odd names be referred to (only names about to be created are checked)", () => {
    const odd = "old name"
    for (
      const frame of [
        { type: "join", channel: odd },
        { type: "leave", channel: odd },
        { type: "who", channel: odd },
        { type: "read_since", channel: odd, since_seq: 0 },
        { type: "channel_msg", channel: odd, payload: { kind: "plain", text: "t" } },
        { type: "admin", op: { kind: "delete_channel", name: odd } },
        { type: "admin", op: { kind: "rename_channel", name: odd, new_name: "new-name" } },
        { type: "admin", op: { kind: "set_visibility", name: odd, visibility: "private" } },
        { type: "admin", op: { kind: "acl_remove", channel: odd, user: odd } },
        { type: "admin", op: { kind: "kick", channel: odd, target: "a/b/c d" } },
        { type: "admin", op: { kind: "ban", channel: odd, user: odd } },
        { type: "admin", op: { kind: "unban", channel: odd, user: odd } },
        { type: "admin", op: { kind: "user_remove", username: odd } },
        { type: "admin", op: { kind: "machine_remove", name: odd } },
        { type: "admin", op: { kind: "acl_list", channel: odd } },
        { type: "admin", op: { kind: "ban_list", channel: odd } },
        { type: "admin", op: { kind: "invite_list", channel: odd } },
        { type: "admin", op: { kind: "invite_create", channel: odd, uses: 1 } },
        { type: "admin", op: { kind: "invite_revoke", token: odd } }
      ]
    ) {
      expectValid(frame)
    }
  })

  it("adminOpProblem agrees with validateClientFrame", () => {
    assert.isUndefined(Validate.adminOpProblem({ kind: "create_channel", name: "ops", visibility: "public" }))
    const problem = Validate.adminOpProblem({ kind: "create_channel", name: "o ps", visibility: "public" })
    assert.instanceOf(problem, Validate.InvalidFrame)
    assert.strictEqual(problem?.detail.startsWith("invalid channel name: `o ps`"), true)
  })
})

describe("Validate key lengths (D-15: public keys are exactly 32 bytes, machine_add included)", () => {
  const machineAdd = (pubkey: string) => ({ type: "admin", op: { kind: "machine_add", name: "laptop", pubkey } })
  it("refuses keys that are not 32 bytes with InvalidFrame", () => {
    for (const length of [0, 1, 8, 31, 33, 64]) {
      const key = Buffer.alloc(length, 5).toString("base64url")
      const error = expectInvalid(machineAdd(key), "malformed key or signature")
      assert.strictEqual(error.detail, "malformed key or signature: public key must be 32 bytes")
    }
  })
  it("refuses a 32-byte key whose text is not canonical base64url", () => {
    // 43 characters decode to 32 bytes only if the last character's low 2 bits are zero.
    const nonCanonical = KEY_32.slice(0, 42) + "B"
    assert.strictEqual(Buffer.from(nonCanonical, "base64url").length, 32)
    expectInvalid(machineAdd(nonCanonical), "malformed key or signature")
  })
  it("accepts a 32-byte key", () => {
    expectValid(machineAdd(KEY_32))
  })
  it("checks the machine name before the key", () => {
    expectInvalid({ type: "admin", op: { kind: "machine_add", name: "a/b", pubkey: "AA" } }, "invalid machine name")
  })
})

describe("Validate read_since (D-4: exactly one of since_seq / since_ms / before_seq)", () => {
  it("refuses neither and both", () => {
    const neither = expectInvalid({ type: "read_since", channel: "c" }, "read_since takes exactly one of")
    assert.include(neither.detail, "`since_seq`")
    assert.include(neither.detail, "`before_seq`")
    expectInvalid({ type: "read_since", channel: "c", since_seq: null, since_ms: null }, "read_since takes exactly one")
    expectInvalid(
      { type: "read_since", channel: "c", since_seq: null, since_ms: null, before_seq: null },
      "read_since takes exactly one"
    )
    expectInvalid({ type: "read_since", channel: "c", since_seq: 0, since_ms: 0 }, "read_since takes exactly one")
    expectInvalid({ type: "read_since", channel: "c", since_seq: 5, since_ms: 1795000000000 }, "read_since takes")
  })
  it("refuses before_seq with since_seq or since_ms (a page reads one way)", () => {
    expectInvalid({ type: "read_since", channel: "c", since_seq: 0, before_seq: 10 }, "read_since takes exactly one")
    expectInvalid({ type: "read_since", channel: "c", since_ms: 0, before_seq: 10 }, "read_since takes exactly one")
    expectInvalid({ type: "read_since", channel: "c", since_seq: 1, since_ms: 0, before_seq: 10 }, "read_since takes")
  })
  it("accepts before_seq alone", () => {
    expectValid({ type: "read_since", channel: "c", before_seq: 1 })
    expectValid({ type: "read_since", channel: "c", since_seq: null, since_ms: null, before_seq: 500 })
    expectValid({ type: "read_since", channel: "c", before_seq: Number.MAX_SAFE_INTEGER })
  })
  it("accepts exactly one", () => {
    expectValid({ type: "read_since", channel: "c", since_seq: 0 })
    expectValid({ type: "read_since", channel: "c", since_seq: 41, since_ms: null })
    expectValid({ type: "read_since", channel: "c", since_ms: 0 })
    expectValid({ type: "read_since", channel: "c", since_ms: -5 })
    expectValid({ type: "read_since", id: "9", channel: "c", since_seq: null, since_ms: 1795000000000 })
  })
})

describe("Validate permission relay frames (request_id 1 to 64 characters)", () => {
  const target = { user: "a", machine: "b", session: "c" }
  it("refuses an empty or overlong request_id and an empty tool_name", () => {
    expectInvalid(
      { type: "permission_request", request_id: "", tool_name: "Bash", description: "d" },
      "`request_id` must be 1 to 64"
    )
    expectInvalid(
      { type: "permission_request", request_id: "x".repeat(65), tool_name: "Bash", description: "d" },
      "`request_id` must be 1 to 64"
    )
    expectInvalid(
      { type: "permission_request", request_id: "r", tool_name: "", description: "d" },
      "`tool_name` must not be empty"
    )
    expectInvalid(
      { type: "permission_verdict", target, request_id: "", behavior: "allow" },
      "`request_id` must be 1 to 64"
    )
    expectInvalid(
      { type: "permission_verdict", target, request_id: "y".repeat(65), behavior: "deny" },
      "`request_id` must be 1 to 64"
    )
  })
  it("accepts well-formed ones", () => {
    expectValid({ type: "permission_request", request_id: "abcde", tool_name: "Bash", description: "" })
    expectValid({ type: "permission_verdict", target, request_id: "x".repeat(64), behavior: "deny" })
  })
})

describe("Validate passes other frames through unchanged", () => {
  it("returns the same frame object", () => {
    for (
      const frame of [
        { type: "ping", id: "1" },
        { type: "list_channels" },
        { type: "list_machines" },
        { type: "list_users" },
        { type: "auth", pubkey: KEY_32, signature: Buffer.alloc(64).toString("base64url") },
        { type: "whisper", target: { user: "a", machine: "b", session: "c" }, payload: { kind: "plain", text: "t" } }
      ]
    ) {
      expectValid(frame)
    }
  })
})
