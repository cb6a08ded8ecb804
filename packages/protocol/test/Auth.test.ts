import { Auth, Base64Url, Errors, Limits } from "@conclave/protocol"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"

const hex = (s: string) => new Uint8Array(Buffer.from(s, "hex"))
const toHex = (bytes: Uint8Array) => Buffer.from(bytes).toString("hex")

const keyPair = (seed: Uint8Array): Auth.KeyPair => {
  const result = Auth.keyPairFromSeed(seed)
  if (Either.isLeft(result)) assert.fail(result.left.message)
  return result.right
}

const expectOk = (result: Either.Either<void, Auth.BadSignature | Auth.MalformedKey>) => {
  if (Either.isLeft(result)) assert.fail(`expected the signature to verify, got ${result.left.message}`)
}

const expectBadSignature = (result: Either.Either<void, Auth.BadSignature | Auth.MalformedKey>, why: string) => {
  if (Either.isRight(result)) assert.fail(`${why}: expected BadSignature, verified`)
  assert.instanceOf(result.left, Auth.BadSignature, why)
  assert.strictEqual(result.left._tag, "BadSignature", why)
  assert.strictEqual(result.left.message, Errors.Messages.badSignature)
}

const expectMalformed = (result: Either.Either<void, Auth.BadSignature | Auth.MalformedKey>, message: string) => {
  if (Either.isRight(result)) assert.fail("expected MalformedKey, verified")
  assert.instanceOf(result.left, Auth.MalformedKey)
  assert.strictEqual(result.left._tag, "MalformedKey")
  assert.strictEqual(result.left.message, message)
}

const flipBit = (bytes: Uint8Array, bit: number): Uint8Array => {
  const copy = new Uint8Array(bytes)
  copy[bit >> 3] ^= 1 << (bit & 7)
  return copy
}

const alice = keyPair(Auth.generateSeed())
const mallory = keyPair(Auth.generateSeed())
const nonce = Auth.randomNonce()
const message = Auth.authMessage("conclave.example.com", "razel", nonce)
const signature = Auth.sign(alice.privateKey, message)

describe("Auth.authMessage (D-3)", () => {
  it("is exactly conclave-auth-v1\\n<host>\\n<handle>\\n<base64url(nonce)> in UTF-8", () => {
    const fixed = Uint8Array.from({ length: 32 }, (_, i) => i)
    const bytes = Auth.authMessage("conclave.example.com", "razel", fixed)
    assert.strictEqual(
      Buffer.from(bytes).toString("utf8"),
      "conclave-auth-v1\nconclave.example.com\nrazel\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    )
    assert.strictEqual(Auth.AUTH_CONTEXT, "conclave-auth-v1")
    // The nonce may be given as bytes or as its base64url text: same message.
    assert.deepStrictEqual(Auth.authMessage("conclave.example.com", "razel", Base64Url.encode(fixed)), bytes)
    // Non-ASCII handles are signed as UTF-8.
    assert.deepStrictEqual(
      Buffer.from(Auth.authMessage("h:1", "Zoë", "AA")),
      Buffer.from("conclave-auth-v1\nh:1\nZo\u00c3\u00ab\nAA", "latin1")
    )
  })
})

describe("Auth.sign / Auth.verify", () => {
  it("a signature over authMessage(host, handle, nonce) verifies (S-006)", () => {
    assert.strictEqual(signature.length, Limits.SIGNATURE_BYTES)
    assert.strictEqual(alice.publicKey.length, Limits.PUBLIC_KEY_BYTES)
    expectOk(Auth.verify(alice.publicKey, message, signature))
  })

  it("does not verify for another host, handle or nonce", () => {
    expectBadSignature(
      Auth.verify(alice.publicKey, Auth.authMessage("evil.example.com", "razel", nonce), signature),
      "other host"
    )
    expectBadSignature(
      Auth.verify(alice.publicKey, Auth.authMessage("conclave.example.com:4390", "razel", nonce), signature),
      "other port"
    )
    expectBadSignature(
      Auth.verify(alice.publicKey, Auth.authMessage("conclave.example.com", "razel-2", nonce), signature),
      "other handle"
    )
    expectBadSignature(
      Auth.verify(alice.publicKey, Auth.authMessage("conclave.example.com", "razel", Auth.randomNonce()), signature),
      "other nonce"
    )
    // The reference signed the raw nonce bytes only (SPEC §2.6 step 6); D-3 no longer accepts that.
    expectBadSignature(Auth.verify(alice.publicKey, message, Auth.sign(alice.privateKey, nonce)), "raw nonce")
  })

  it("does not verify under a wrong key (S-007)", () => {
    expectBadSignature(Auth.verify(mallory.publicKey, message, signature), "wrong key")
    expectBadSignature(
      Auth.verify(alice.publicKey, message, Auth.sign(mallory.privateKey, message)),
      "signed by someone else"
    )
  })

  it("verifying again under a key seen before (cached) still checks the signature and the key", () => {
    for (let round = 0; round < 3; round++) {
      expectOk(Auth.verify(alice.publicKey, message, signature))
      expectBadSignature(Auth.verify(mallory.publicKey, message, signature), `wrong key, round ${round}`)
      const flipped = Uint8Array.from(signature)
      flipped[round] = flipped[round]! ^ 1
      expectBadSignature(Auth.verify(alice.publicKey, message, flipped), `tampered signature, round ${round}`)
    }
    // the caller's buffer may be reused for another key: the cache keys on the bytes, not the array
    const shared = Uint8Array.from(alice.publicKey)
    expectOk(Auth.verify(shared, message, signature))
    shared.set(mallory.publicKey)
    expectBadSignature(Auth.verify(shared, message, signature), "same array, other key")
    expectOk(Auth.verify(shared, message, Auth.sign(mallory.privateKey, message)))
  })

  it("keeps verifying correctly past the key cache's bound", () => {
    const pairs = Array.from({ length: 1_100 }, () => keyPair(Auth.generateSeed()))
    for (const pair of pairs) expectOk(Auth.verify(pair.publicKey, message, Auth.sign(pair.privateKey, message)))
    expectOk(Auth.verify(alice.publicKey, message, signature))
    const first = pairs[0]!
    expectOk(Auth.verify(first.publicKey, message, Auth.sign(first.privateKey, message)))
    expectBadSignature(Auth.verify(first.publicKey, message, signature), "evicted key, foreign signature")
  })

  it("rejects any single bit flipped in the message or the signature (S-008)", () => {
    for (let bit = 0; bit < message.length * 8; bit += 7) {
      expectBadSignature(Auth.verify(alice.publicKey, flipBit(message, bit), signature), `message bit ${bit}`)
    }
    for (let bit = 0; bit < signature.length * 8; bit += 3) {
      expectBadSignature(Auth.verify(alice.publicKey, message, flipBit(signature, bit)), `signature bit ${bit}`)
    }
    for (let bit = 0; bit < alice.publicKey.length * 8; bit += 5) {
      expectBadSignature(Auth.verify(flipBit(alice.publicKey, bit), message, signature), `public key bit ${bit}`)
    }
  })

  it("rejects a 32-byte public key that is not a curve point without throwing", () => {
    expectBadSignature(Auth.verify(new Uint8Array(32).fill(0xff), message, signature), "not a point")
    expectBadSignature(Auth.verify(new Uint8Array(32), message, signature), "all zero")
  })

  it("wrong lengths are MalformedKey, not BadSignature (S-009, S-044)", () => {
    const keyMessage = "malformed key or signature: public key must be 32 bytes"
    const sigMessage = "malformed key or signature: signature must be 64 bytes"
    expectMalformed(Auth.verify(alice.publicKey.subarray(0, 8), message, signature), keyMessage)
    expectMalformed(Auth.verify(alice.publicKey.subarray(0, 31), message, signature), keyMessage)
    expectMalformed(Auth.verify(new Uint8Array(33), message, signature), keyMessage)
    expectMalformed(Auth.verify(new Uint8Array(0), message, signature), keyMessage)
    expectMalformed(Auth.verify(alice.publicKey, message, signature.subarray(0, 63)), sigMessage)
    expectMalformed(Auth.verify(alice.publicKey, message, new Uint8Array(65)), sigMessage)
    expectMalformed(Auth.verify(alice.publicKey, message, new Uint8Array(0)), sigMessage)
  })
})

describe("RFC 8032 Ed25519 test vectors", () => {
  it("TEST 1 (empty message) signs and verifies through keyPairFromSeed / sign / verify", () => {
    const pair = keyPair(hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"))
    assert.strictEqual(toHex(pair.publicKey), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    const sig = Auth.sign(pair.privateKey, new Uint8Array(0))
    assert.strictEqual(
      toHex(sig),
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    expectOk(Auth.verify(pair.publicKey, new Uint8Array(0), sig))
    expectBadSignature(Auth.verify(pair.publicKey, new Uint8Array([0]), sig), "different message")
  })

  it("TEST 2 (one-byte message 0x72)", () => {
    const pair = keyPair(hex("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb"))
    assert.strictEqual(toHex(pair.publicKey), "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    const sig = Auth.sign(pair.privateKey, new Uint8Array([0x72]))
    assert.strictEqual(
      toHex(sig),
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
    )
    expectOk(Auth.verify(pair.publicKey, new Uint8Array([0x72]), sig))
  })

  it("the worked example of docs/PROTOCOL.md", () => {
    const seed = Base64Url.decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
    assert.isDefined(seed)
    const pair = keyPair(seed!)
    assert.strictEqual(Base64Url.encode(pair.publicKey), "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
    const docMessage = Auth.authMessage(
      "conclave.example.com",
      "razel",
      "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    )
    const docSignature = "YF0b_a_NHzsUcweIa7fTKAEgd3guR5ZGHX_bz7pICjwZf_tQ-7gtywo8ch7swB9L0faRHMkLusJ1TDEHpfHSBA"
    assert.strictEqual(Base64Url.encode(Auth.sign(pair.privateKey, docMessage)), docSignature)
    expectOk(Auth.verify(pair.publicKey, docMessage, Base64Url.decode(docSignature)!))
  })
})

describe("keys and randomness", () => {
  it("keyPairFromSeed refuses a seed that is not 32 bytes", () => {
    for (const length of [0, 31, 33, 64]) {
      const result = Auth.keyPairFromSeed(new Uint8Array(length))
      assert.isTrue(Either.isLeft(result))
      if (Either.isLeft(result)) {
        assert.strictEqual(result.left._tag, "MalformedKey")
        assert.include(result.left.message, "seed must be 32 bytes")
      }
    }
  })

  it("keyPairFromSeed is deterministic and leaves the seed untouched", () => {
    const seed = Auth.generateSeed()
    const copy = new Uint8Array(seed)
    assert.deepStrictEqual(keyPair(seed).publicKey, keyPair(seed).publicKey)
    assert.deepStrictEqual(seed, copy)
  })

  it("generateSeed and randomNonce are 32 fresh bytes (S-011)", () => {
    assert.strictEqual(Auth.generateSeed().length, Limits.SEED_BYTES)
    assert.strictEqual(Auth.randomNonce().length, Limits.NONCE_BYTES)
    assert.notDeepEqual(Auth.randomNonce(), Auth.randomNonce())
    assert.notDeepEqual(Auth.generateSeed(), Auth.generateSeed())
  })

  it("nonces stay distinct and independent across pool refills", () => {
    const nonces = Array.from({ length: 1000 }, () => Auth.randomNonce())
    const seen = new Set(nonces.map((n) => Buffer.from(n).toString("hex")))
    assert.strictEqual(seen.size, nonces.length)
    for (const n of nonces) assert.isFalse(n.every((b) => b === 0), "never a zeroed slot of the pool")
    // a handed-out nonce is a copy: changing it changes no later nonce
    const first = nonces[0]!
    first.fill(7)
    assert.isFalse(Auth.randomNonce().every((b) => b === 7))
  })

  it("randomToken is 32 characters of the base64url alphabet (24 bytes) and differs between calls", () => {
    const tokens = Array.from({ length: 200 }, () => Auth.randomToken())
    for (const token of tokens) {
      assert.match(token, /^[A-Za-z0-9_-]{32}$/)
      assert.strictEqual(Base64Url.decode(token)?.length, Limits.TOKEN_BYTES)
    }
    assert.strictEqual(new Set(tokens).size, tokens.length)
  })
})

describe("Auth.authorityOf (the host D-3 signs)", () => {
  const cases: ReadonlyArray<readonly [string, string | undefined]> = [
    ["ws://conclave.example.com", "conclave.example.com"],
    ["wss://conclave.example.com/", "conclave.example.com"],
    ["WSS://Conclave.Example.COM/some/path?via=alias", "conclave.example.com"],
    ["ws://Example.com:80", "example.com"],
    ["wss://example.com:443", "example.com"],
    ["ws://example.com:443", "example.com:443"],
    ["wss://example.com:80", "example.com:80"],
    ["ws://127.0.0.1:4390", "127.0.0.1:4390"],
    ["ws://localhost:4390/", "localhost:4390"],
    ["ws://[::1]:4390", "[::1]:4390"],
    ["http://example.com:80", "example.com"],
    ["https://example.com:443", "example.com"],
    ["ws://user:secret@example.com:4390", "example.com:4390"],
    ["not a url", undefined],
    ["", undefined],
    ["example.com:4390", undefined], // no scheme: parses as scheme `example.com:` with no authority
    ["file:///tmp/socket", undefined]
  ]
  it("lowercases, drops default ports and keeps others", () => {
    for (const [url, expected] of cases) {
      assert.strictEqual(Auth.authorityOf(url), expected, url)
    }
  })
})
