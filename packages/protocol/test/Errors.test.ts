import { Codec, Errors, type Frames, Limits } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"

describe("Errors.render (SPEC §2.5, D-8)", () => {
  it("renders every kind exactly", () => {
    const cases: ReadonlyArray<readonly [Frames.ProtocolError, string]> = [
      [{ kind: "version_mismatch", ours: 1, theirs: 999 }, "incompatible protocol version: ours=1, theirs=999"],
      [{ kind: "malformed_frame", message: "expected Hello" }, "malformed frame: expected Hello"],
      [{ kind: "unauthorized", message: "unknown machine key" }, "unauthorized: unknown machine key"],
      [{ kind: "not_found", message: "channel `ops` not found" }, "not found: channel `ops` not found"],
      [{ kind: "internal", message: "disk I/O error" }, "internal error: disk I/O error"],
      [{ kind: "conflict", message: "channel `ops` already exists" }, "conflict: channel `ops` already exists"],
      [
        { kind: "rate_limited", message: "rate limit: 20 messages burst, 2/s", retry_after_ms: 480 },
        "rate limited: rate limit: 20 messages burst, 2/s (retry after 480 ms)"
      ],
      [
        { kind: "too_large", message: "message body exceeds 65536 bytes", limit: 65536 },
        "too large: message body exceeds 65536 bytes"
      ]
    ]
    for (const [error, rendered] of cases) {
      assert.strictEqual(Errors.render(error), rendered)
    }
    // Every member of the ProtocolError union is covered above.
    const kinds = new Set(cases.map(([error]) => error.kind))
    assert.strictEqual(kinds.size, 8)
  })
})

describe("constructors", () => {
  it("build the wire shapes", () => {
    assert.deepStrictEqual(Errors.versionMismatch(999), {
      kind: "version_mismatch",
      ours: Limits.PROTOCOL_VERSION,
      theirs: 999
    })
    assert.strictEqual(Errors.render(Errors.versionMismatch(2)), "incompatible protocol version: ours=1, theirs=2")
    assert.deepStrictEqual(Errors.malformed("m"), { kind: "malformed_frame", message: "m" })
    assert.deepStrictEqual(Errors.unauthorized("m"), { kind: "unauthorized", message: "m" })
    assert.deepStrictEqual(Errors.notFound("m"), { kind: "not_found", message: "m" })
    assert.deepStrictEqual(Errors.internal("m"), { kind: "internal", message: "m" })
    assert.deepStrictEqual(Errors.conflict("m"), { kind: "conflict", message: "m" })
    assert.deepStrictEqual(Errors.tooLarge("m", 65536), { kind: "too_large", message: "m", limit: 65536 })
  })

  it("rateLimited rounds the wait up to whole milliseconds and never goes negative", () => {
    assert.deepStrictEqual(Errors.rateLimited("m", 479.2), { kind: "rate_limited", message: "m", retry_after_ms: 480 })
    assert.deepStrictEqual(Errors.rateLimited("m", -3), { kind: "rate_limited", message: "m", retry_after_ms: 0 })
    assert.deepStrictEqual(Errors.rateLimited("m", 0), { kind: "rate_limited", message: "m", retry_after_ms: 0 })
  })

  it("every constructed error is a valid error frame", () => {
    const errors = [
      Errors.versionMismatch(2),
      Errors.malformed("m"),
      Errors.unauthorized("m"),
      Errors.notFound("m"),
      Errors.internal("m"),
      Errors.conflict("m"),
      Errors.rateLimited("m", 12.5),
      Errors.tooLarge("m", 10)
    ]
    for (const error of errors) {
      const text = Codec.encodeFrame({ type: "error", id: "1", error })
      assert.deepStrictEqual(Codec.decodeServerFrame(text), Either.right({ type: "error", id: "1", error }))
    }
  })
})

describe("error-kind mappings (S-018)", () => {
  it("puts each domain error on the right wire kind with the spec's message", () => {
    const bad = Errors.unauthorized(Errors.Messages.badSignature)
    assert.strictEqual(Errors.render(bad), "unauthorized: signature verification failed")
    const malformedKey = Errors.malformed("malformed key or signature: public key must be 32 bytes")
    assert.strictEqual(malformedKey.kind, "malformed_frame")
    assert.strictEqual(
      Errors.render(Errors.unauthorized(Errors.Messages.adminRequired)),
      "unauthorized: not authorized: admin role required"
    )
    assert.strictEqual(
      Errors.render(Errors.notFound(Errors.Messages.channelNotFound("ops"))),
      "not found: channel `ops` not found"
    )
    assert.strictEqual(Errors.Messages.notAMember("ops"), "not a member of channel `ops`")
    assert.strictEqual(Errors.Messages.keyAlreadyEnrolled, "malformed key or signature: public key is already enrolled")
  })

  it("keeps the exact texts of SPEC §2.5, §2.6 and D-16", () => {
    const M = Errors.Messages
    assert.strictEqual(M.expectedHello, "expected Hello")
    assert.strictEqual(M.expectedRegisterOrAuth, "expected Register or Auth")
    assert.strictEqual(M.expectedAuthAfterRegister, "expected Auth after Register")
    assert.strictEqual(M.authKeyMismatch, "auth key does not match the registered key")
    assert.strictEqual(M.unknownKey, "unknown machine key")
    assert.strictEqual(M.handshakeTimedOut, "handshake timed out")
    assert.strictEqual(M.unexpectedFrame, "unexpected frame from client")
    assert.strictEqual(M.usernameTaken("aaron"), "username `aaron` is already taken")
    assert.strictEqual(M.usernameReserved("aaron"), "username `aaron` is reserved for a different key")
    assert.strictEqual(M.banned("ops"), "you are banned from channel `ops`")
    assert.strictEqual(M.notOnline("ghost/box/sess"), "session `ghost/box/sess` is not online")
    assert.strictEqual(M.invalidUsername("a/b"), "invalid username: `a/b`")
    assert.strictEqual(M.invalidMachine("m/n"), "invalid machine name: `m/n`")
    assert.strictEqual(M.invalidHandle("s/1"), "invalid session handle: `s/1`")
    assert.strictEqual(M.channelExists("ops"), "channel `ops` already exists")
  })

  it("kill reasons are non-empty and distinct", () => {
    const reasons = Object.values(Errors.KillReasons)
    assert.strictEqual(new Set(reasons).size, reasons.length)
    for (const reason of reasons) assert.isAbove(reason.length, 0)
  })
})

describe("ProtocolFailure", () => {
  it("carries a wire error, renders it as its message and survives a Schema round trip", () => {
    const failure = new Errors.ProtocolFailure({ error: Errors.notFound("channel `ops` not found") })
    assert.strictEqual(failure._tag, "ProtocolFailure")
    assert.strictEqual(failure.message, "not found: channel `ops` not found")
    const encoded = Schema.encodeSync(Errors.ProtocolFailure)(failure)
    const decoded = Schema.decodeUnknownSync(Errors.ProtocolFailure)(JSON.parse(JSON.stringify(encoded)))
    assert.instanceOf(decoded, Errors.ProtocolFailure)
    assert.deepStrictEqual(decoded.error, failure.error)
  })
})
