/**
 * Replayed and forged signatures (BENCH-AND-RELIABILITY §6.3, DECISIONS D-3): a captured `auth`
 * replayed on a new connection, another connection's nonce, another host, another handle, bit
 * flips, non-canonical S, small-order public keys, an expired challenge, and the RFC 8032 vectors.
 */
import { Auth, Base64Url } from "@conclave/protocol"
import * as Kit from "@conclave/testkit"
import { afterAll, assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Either } from "effect"
import * as HealthProbe from "../src/HealthProbe.js"
import * as Prng from "../src/Prng.js"
import * as Profile from "../src/Profile.js"
import * as Report from "../src/Report.js"

const rows: Array<Report.Row> = []
const L = (1n << 252n) + 27742317777372353535851937790883648493n

const hex = (s: string) => Buffer.from(s, "hex")

// RFC 8032 §7.1 TEST 1–3: secret key, public key, message, signature.
const vectors = [
  [
    "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    "",
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
  ],
  [
    "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    "72",
    "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"
  ],
  [
    "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    "af82",
    "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"
  ]
] as const

const smallOrder = [
  "0100000000000000000000000000000000000000000000000000000000000000",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
  "0100000000000000000000000000000000000000000000000000000000000080"
]
// Signatures that verify for ANY message under the key above them (R = identity or the point itself, S = 0).
const universal = [
  "0100000000000000000000000000000000000000000000000000000000000000" + "00".repeat(32),
  "0100000000000000000000000000000000000000000000000000000000000000" + "00".repeat(32),
  "00".repeat(64),
  "0100000000000000000000000000000000000000000000000000000000000000" + "00".repeat(32)
]

const withNonCanonicalS = (sig: Uint8Array): Uint8Array => {
  const s = BigInt(`0x${Buffer.from(sig.subarray(32)).reverse().toString("hex")}`) + L
  const bytes = Buffer.from(s.toString(16).padStart(64, "0"), "hex").reverse()
  return new Uint8Array(Buffer.concat([Buffer.from(sig.subarray(0, 32)), bytes]))
}

describe("signatures", () => {
  it("RFC 8032 vectors verify; any modification does not; small-order keys never verify", () => {
    let verified = 0
    let accepted = 0
    for (const [secret, publicKey, message, signature] of vectors) {
      const pair = Either.getOrThrow(Auth.keyPairFromSeed(hex(secret)))
      assert.strictEqual(Buffer.from(pair.publicKey).toString("hex"), publicKey)
      assert.strictEqual(Buffer.from(Auth.sign(pair.privateKey, hex(message))).toString("hex"), signature)
      if (Either.isRight(Auth.verify(hex(publicKey), hex(message), hex(signature)))) verified++
      const flipped = hex(signature)
      flipped[5] = flipped[5]! ^ 1
      for (
        const forged of [
          Auth.verify(hex(publicKey), hex(message), flipped),
          Auth.verify(hex(publicKey), Buffer.from("x"), hex(signature)),
          Auth.verify(hex(publicKey), hex(message), withNonCanonicalS(hex(signature)))
        ]
      ) if (Either.isRight(forged)) accepted++
    }
    smallOrder.forEach((key, i) => {
      if (Either.isRight(Auth.verify(hex(key), Buffer.from("anything"), hex(universal[i]!)))) accepted++
      assert.isTrue(Auth.isSmallOrder(hex(key)))
    })
    rows.push({
      test: "RFC 8032 vectors, non-canonical S, small-order keys (primitive)",
      figure:
        `${verified}/${vectors.length} vectors verify; flipped bit, other message, S + L and ${smallOrder.length} ` +
        `small-order keys with universal signatures: ${accepted} of ${vectors.length * 3 + smallOrder.length} accepted`,
      target: "0 accepted",
      checks: [Report.equals("vectors verified", verified, vectors.length), Report.equals("accepted", accepted, 0)]
    })
    assert.strictEqual(verified, vectors.length)
    assert.strictEqual(accepted, 0)
  })

  it.live("replayed and forged signatures are never accepted", () =>
    Effect.scoped(Effect.gen(function*() {
      const server = yield* Kit.startServer({
        ...Kit.noLimits,
        maxPendingPerIp: 0,
        handshakeTimeout: Duration.millis(1500)
      })
      const probe = yield* HealthProbe.start(server.url)
      const victim = Kit.newIdentity()
      yield* Effect.scoped(Kit.connect(server.url, {
        identity: victim,
        handle: "v0",
        register: { username: "victim", machine: "laptop" }
      }))
      const host = new URL(server.url).host
      const n = Profile.count(60, 10_000)
      const base = Prng.make(Profile.seed ^ 0x3003)
      const accepted: Array<string> = []
      const tally = new Map<string, number>()
      const nonces = new Set<string>()
      let connections = 0

      /** hello → challenge → (register?) → auth(build(nonce)); returns the first frame after auth. */
      const attempt = (
        name: string,
        build: (nonce: string) => { readonly pubkey: string; readonly signature: string },
        options: { readonly handle?: string; readonly helloHost?: string; readonly register?: string } = {}
      ) =>
        Effect.scoped(Effect.gen(function*() {
          tally.set(name, (tally.get(name) ?? 0) + 1)
          const c = yield* Kit.dial(server.url)
          yield* c.send({
            type: "hello",
            protocol_version: 1,
            session: options.handle ?? "v1",
            host: options.helloHost ?? host
          })
          const challenge = yield* c.next()
          if (challenge.type !== "challenge") return challenge
          connections++
          if (nonces.has(challenge.nonce)) accepted.push(`${name}: nonce reused by the server`)
          nonces.add(challenge.nonce)
          const auth = build(challenge.nonce)
          if (options.register !== undefined) {
            yield* c.send({ type: "register", username: options.register, machine: "m", pubkey: auth.pubkey })
          }
          yield* c.send({ type: "auth", ...auth })
          const reply = yield* c.next()
          if (reply.type === "established") accepted.push(name)
          return reply
        }))

      const sign = (nonce: string, signHost = host, handle = "v1", identity = victim) =>
        Base64Url.encode(Auth.sign(identity.privateKey, Auth.authMessage(signHost, handle, nonce)))

      // A valid attempt works (the harness itself is right).
      const good = yield* attempt("control", (nonce) => ({ pubkey: victim.pubkey, signature: sign(nonce) }))
      assert.strictEqual(good.type, "established")
      accepted.length = 0
      tally.clear()

      yield* Effect.forEach(Array.from({ length: n }, (_, i) => i), (i) =>
        Effect.gen(function*() {
          const rng = base.fork(i)
          let captured: { readonly pubkey: string; readonly signature: string } | undefined
          const kind = i % 9
          if (kind === 0) {
            // Capture a valid auth for one connection, replay it on a new one.
            yield* Effect.scoped(Effect.gen(function*() {
              const c = yield* Kit.dial(server.url)
              yield* c.send({ type: "hello", protocol_version: 1, session: "v1", host })
              const ch = yield* c.next()
              if (ch.type === "challenge") captured = { pubkey: victim.pubkey, signature: sign(ch.nonce) }
            }))
            yield* attempt("replayed auth frame", () => captured!)
          } else if (kind === 1) {
            // Sign another live connection's nonce.
            yield* Effect.scoped(Effect.gen(function*() {
              const other = yield* Kit.dial(server.url)
              yield* other.send({ type: "hello", protocol_version: 1, session: "v1", host })
              const ch = yield* other.next()
              const foreign = ch.type === "challenge" ? ch.nonce : "AAAA"
              yield* attempt("another connection's nonce", () => ({ pubkey: victim.pubkey, signature: sign(foreign) }))
            }))
          } else if (kind === 2) {
            yield* attempt("signed for another host", (nonce) => ({
              pubkey: victim.pubkey,
              signature: sign(nonce, "evil.example:4390")
            }))
          } else if (kind === 3) {
            const reply = yield* attempt(
              "hello for another host",
              (nonce) => ({ pubkey: victim.pubkey, signature: sign(nonce, "evil.example") }),
              { helloHost: "evil.example" }
            )
            if (reply.type !== "error") accepted.push("hello for another host: no refusal")
          } else if (kind === 4) {
            yield* attempt("signed for another handle", (nonce) => ({
              pubkey: victim.pubkey,
              signature: sign(nonce, host, "other-handle")
            }))
          } else if (kind === 5) {
            yield* attempt("bit-flipped signature", (nonce) => {
              const sig = Base64Url.decode(sign(nonce))!
              const bit = rng.int(0, 511)
              sig[bit >> 3] = sig[bit >> 3]! ^ (1 << (bit & 7))
              return { pubkey: victim.pubkey, signature: Base64Url.encode(sig) }
            })
          } else if (kind === 6) {
            yield* attempt("non-canonical S (S + L)", (nonce) => ({
              pubkey: victim.pubkey,
              signature: Base64Url.encode(withNonCanonicalS(Base64Url.decode(sign(nonce))!))
            }))
          } else if (kind === 7) {
            const j = rng.int(0, smallOrder.length - 1)
            yield* attempt("small-order key with a universal signature (register)", () => ({
              pubkey: Base64Url.encode(hex(smallOrder[j]!)),
              signature: Base64Url.encode(hex(universal[j]!))
            }), { register: `weak${i}` })
          } else {
            // An expired challenge: answer correctly but after the handshake deadline.
            if (i % 27 === 8) {
              yield* Effect.scoped(Effect.gen(function*() {
                tally.set("expired challenge", (tally.get("expired challenge") ?? 0) + 1)
                const c = yield* Kit.dial(server.url)
                yield* c.send({ type: "hello", protocol_version: 1, session: "v1", host })
                const ch = yield* c.next()
                // The deadline (1.5 s) passes: the server says so before the answer goes out.
                const expired = yield* c.next("4 seconds").pipe(Effect.either)
                const said = expired._tag === "Right" && expired.right.type === "error"
                  ? expired.right.error
                  : undefined
                if (said?.kind !== "unauthorized" || said.message !== "handshake timed out") {
                  accepted.push("expired challenge: no deadline error")
                }
                if (ch.type === "challenge") {
                  yield* c.send({ type: "auth", pubkey: victim.pubkey, signature: sign(ch.nonce) })
                }
                const reply = yield* c.next("3 seconds").pipe(Effect.either)
                if (reply._tag === "Right" && reply.right.type === "established") {
                  accepted.push("expired challenge")
                }
              }))
            } else {
              yield* attempt("random signature", () => ({
                pubkey: victim.pubkey,
                signature: Base64Url.encode(rng.bytes(64))
              }))
            }
          }
        }), { concurrency: Profile.count(1, 8), discard: true })
      const tried = [...tally.values()].reduce((a, b) => a + b, 0)
      const result = yield* probe.stop
      rows.push({
        test: "replayed / forged signatures",
        figure: `${tried} tried (${
          [...tally.entries()].map(([k, v]) => `${k} ${v}`).join(", ")
        }), ${accepted.length} accepted, ${nonces.size} distinct challenges for ${connections} connections; ${
          HealthProbe.describe(result)
        }`,
        target: "10 000 tried, 0 accepted; every challenge single-use, expiring ≤ 10 s",
        checks: [
          Report.atLeast("tried", tried, 10_000),
          Report.equals("accepted", accepted.length, 0),
          Report.equals("challenges reused", connections - nonces.size, 0),
          Report.equals("probe lost", result.lost, 0)
        ]
      })
      assert.deepStrictEqual(accepted, [])
      assert.strictEqual(result.lost, 0, HealthProbe.describe(result))
    })), 900_000)

  afterAll(() => Effect.runPromise(Report.record("signatures", "Replayed and forged signatures", rows)))
})
