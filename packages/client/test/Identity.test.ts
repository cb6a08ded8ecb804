import { Identity } from "@conclave/client"
import { Auth, Base64Url } from "@conclave/protocol"
import { tempDir } from "@conclave/testkit/TempDir"
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as Util from "node:util"

const RFC8032_SEED = Buffer.from("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "hex")
const RFC8032_PUBLIC = Buffer.from("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "hex")

const modeOf = (path: string) => Effect.promise(() => Fs.stat(path)).pipe(Effect.map((s) => s.mode & 0o777))
const write = (path: string, text: string | Buffer, mode = 0o600) =>
  Effect.promise(() => Fs.writeFile(path, text, { mode }))

describe("Identity", () => {
  it("fromSeed derives the RFC 8032 public key and signs verifiably", () => {
    const id = Identity.fromSeed(new Uint8Array(RFC8032_SEED))
    assert.deepStrictEqual(Buffer.from(id.publicKey), RFC8032_PUBLIC)
    assert.strictEqual(id.publicKeyText, Base64Url.encode(RFC8032_PUBLIC))
    assert.strictEqual(id.publicKeyText.length, 43)
    const message = Auth.authMessage("h", "s", Auth.randomNonce())
    const signature = id.sign(message)
    assert.strictEqual(signature.length, 64)
    assert.isTrue(Either.isRight(Auth.verify(id.publicKey, message, signature)))
  })

  it("fromSeed rejects a seed of the wrong length", () => {
    assert.throws(() => Identity.fromSeed(new Uint8Array(31)))
  })

  it("generate makes distinct identities", () => {
    assert.notStrictEqual(Identity.generate().publicKeyText, Identity.generate().publicKeyText)
  })

  it("renderings never contain the seed", () => {
    const id = Identity.fromSeed(new Uint8Array(RFC8032_SEED))
    const seedText = Base64Url.encode(RFC8032_SEED)
    for (const rendered of [String(id), JSON.stringify(id), Util.inspect(id, { showHidden: true, depth: 5 })]) {
      assert.notInclude(rendered, seedText)
      assert.include(rendered, id.publicKeyText)
      assert.include(rendered, "redacted")
    }
  })

  it.scoped("S-012 keystore round trip: save, load, sign a fresh challenge", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const id = Identity.generate()
      yield* Identity.save(dir, id)
      const loaded = yield* Identity.load(dir)
      assert.strictEqual(loaded.publicKeyText, id.publicKeyText)
      const challenge = Auth.randomNonce()
      assert.isTrue(Either.isRight(Auth.verify(id.publicKey, challenge, loaded.sign(challenge))))
      const text = yield* Effect.promise(() => Fs.readFile(Identity.keyPath(dir), "utf8"))
      assert.match(text, /^[A-Za-z0-9_-]{43}$/, "base64url seed, no trailing newline")
    }))

  it.scoped("S-013 the key file is created owner-only (0600)", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const nested = Path.join(dir, "a", "b")
      const { created } = yield* Identity.loadOrCreate(nested)
      assert.isTrue(created)
      assert.strictEqual(yield* modeOf(Identity.keyPath(nested)), 0o600)
      yield* Identity.save(dir, Identity.generate())
      assert.strictEqual(yield* modeOf(Identity.keyPath(dir)), 0o600)
    }))

  it.scoped("saving over an existing world-readable key forces 0600", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const path = Identity.keyPath(dir)
      yield* write(path, "x", 0o644)
      yield* Effect.promise(() => Fs.chmod(path, 0o644))
      const id = Identity.generate()
      yield* Identity.save(dir, id)
      assert.strictEqual(yield* modeOf(path), 0o600)
      assert.strictEqual((yield* Identity.load(dir)).publicKeyText, id.publicKeyText)
    }))

  it.scoped("loadOrCreate creates once, then loads the same key", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const first = yield* Identity.loadOrCreate(dir)
      const second = yield* Identity.loadOrCreate(dir)
      assert.isTrue(first.created)
      assert.isFalse(second.created)
      assert.strictEqual(first.identity.publicKeyText, second.identity.publicKeyText)
    }))

  it.scoped("surrounding whitespace is trimmed", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* write(Identity.keyPath(dir), `  ${Base64Url.encode(RFC8032_SEED)}\r\n\n`)
      const id = yield* Identity.load(dir)
      assert.deepStrictEqual(Buffer.from(id.publicKey), RFC8032_PUBLIC)
    }))

  it.scoped("a missing key file is KeyMissing suggesting `conclave key`", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const error = yield* Effect.flip(Identity.load(dir))
      assert.strictEqual(error._tag, "KeyMissing")
      assert.include(error.message, "conclave key")
      assert.include(error.message, Identity.keyPath(dir))
    }))

  it.scoped("a key file without a 32-byte base64url seed is KeyCorrupt", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const path = Identity.keyPath(dir)
      const cases = [
        "",
        "not a key!",
        Base64Url.encode(new Uint8Array(31)),
        Base64Url.encode(new Uint8Array(33)),
        Buffer.from(RFC8032_SEED).toString("base64"), // padded standard base64
        Buffer.from([0xff, 0xfe, 0x00])
      ]
      for (const content of cases) {
        yield* write(path, content)
        const error = yield* Effect.flip(Identity.load(dir))
        assert.strictEqual(error._tag, "KeyCorrupt", `content ${JSON.stringify(String(content))}`)
        assert.include(error.message, "keyfile does not contain a 32-byte seed")
      }
      // loadOrCreate never overwrites a corrupt key.
      const error = yield* Effect.flip(Identity.loadOrCreate(dir))
      assert.strictEqual(error._tag, "KeyCorrupt")
    }))

  it.scoped("an unreadable key path is KeyIoError", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* Effect.promise(() => Fs.mkdir(Identity.keyPath(dir)))
      const error = yield* Effect.flip(Identity.load(dir))
      assert.strictEqual(error._tag, "KeyIoError")
      const saveError = yield* Effect.flip(Identity.save(dir, Identity.generate()))
      assert.strictEqual(saveError._tag, "KeyIoError")
      assert.include(saveError.message, Identity.keyPath(dir))
    }))
})
