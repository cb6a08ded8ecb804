import { Auth, Base64Url, Limits } from "@conclave/protocol"
import {
  connect,
  dial,
  errorOf,
  expectType,
  handshake,
  newIdentity,
  register,
  startServer as start
} from "@conclave/testkit"
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, TestClock, TestServices } from "effect"

// A file store completes a good `auth` in the socket's callbacks (synchronous key lookup); an
// in-memory store completes it in a fiber. Every answer must be the same.
for (const store of ["file", "memory"] as const) {
  describe(`Handshake (${store} store)`, () => {
    const startServer = (options: Parameters<typeof start>[0] = {}) => start({ ...options, store })

    it.scopedLive("register claims a name and a later auth resolves the same user/machine (S-027, S-031)", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer()
        const identity = newIdentity()
        const first = yield* connect(url, { identity, handle: "razel", register: { username: "aaron", machine: "ws" } })
        assert.deepStrictEqual(first.path, { user: "aaron", machine: "ws", session: "razel" })
        assert.isFalse(first.admin)
        const second = yield* connect(url, { identity, handle: "dotagent" })
        assert.deepStrictEqual(second.path, { user: "aaron", machine: "ws", session: "dotagent" })
        const who = yield* second.request({ type: "who", channel: null })
        assert.strictEqual(who.type, "presence")
        assert.sameDeepMembers([...(who as { sessions: ReadonlyArray<unknown> }).sessions], [first.path, second.path])
        assert.isString(first.headers[Limits.INSTANCE_ID_HEADER])
        assert.strictEqual(first.headers[Limits.INSTANCE_ID_HEADER], second.headers[Limits.INSTANCE_ID_HEADER])
      }))

    it.scopedLive("duplicate username, reused key, unknown key and bad signature are refused (S-028, S-029, S-032, S-033)", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer()
        const a = newIdentity()
        yield* connect(url, { identity: a, handle: "s", register: { username: "aaron", machine: "m" } })

        const dup = yield* dial(url)
        const e1 = errorOf(
          yield* handshake(dup, {
            identity: newIdentity(),
            handle: "s",
            register: { username: "aaron", machine: "laptop" }
          })
        )
        assert.strictEqual(e1.kind, "unauthorized")
        assert.include(e1.message, "already taken")
        yield* dup.closed

        const reuse = yield* dial(url)
        const e2 = errorOf(
          yield* handshake(reuse, { identity: a, handle: "s", register: { username: "bob", machine: "m" } })
        )
        assert.strictEqual(e2.kind, "malformed_frame")
        assert.include(e2.message, "already enrolled")

        const unknown = yield* dial(url)
        const e3 = errorOf(yield* handshake(unknown, { identity: newIdentity(), handle: "s" }))
        assert.deepStrictEqual(e3, { kind: "unauthorized", message: "unknown machine key" })

        // bob was not created by the refused registration
        const again = yield* connect(url, {
          identity: newIdentity(),
          handle: "s",
          register: { username: "bob", machine: "m" }
        })
        assert.strictEqual(again.path.user, "bob")

        const bad = yield* dial(url)
        yield* bad.send({ type: "hello", protocol_version: 1, session: "s", host: null, client: "cli" })
        const ch = yield* bad.next()
        assert.strictEqual(ch.type, "challenge")
        const sig = Auth.sign(a.privateKey, new Uint8Array(32))
        yield* bad.send({ type: "auth", pubkey: a.pubkey, signature: Base64Url.encode(sig) })
        assert.deepStrictEqual(errorOf(yield* bad.next()), {
          kind: "unauthorized",
          message: "signature verification failed"
        })
        yield* bad.closed
      }))

    it.scopedLive("failed possession proofs persist nothing (S-036, S-037)", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer()
        const attacker = newIdentity()
        const c1 = yield* dial(url)
        const e1 = errorOf(
          yield* handshake(c1, {
            identity: attacker,
            handle: "s",
            register: { username: "aaron", machine: "evil" },
            signHost: "elsewhere.example"
          })
        )
        assert.strictEqual(e1.kind, "unauthorized")

        const c2 = yield* dial(url)
        yield* c2.send({ type: "hello", protocol_version: 1, session: "s", host: null })
        const challenge = yield* c2.next()
        assert.strictEqual(challenge.type, "challenge")
        const other = newIdentity()
        const nonce = (challenge as { nonce: string }).nonce
        yield* c2.send({ type: "register", username: "aaron", machine: "evil", pubkey: attacker.pubkey })
        const host = Auth.authorityOf(url)!
        yield* c2.send({
          type: "auth",
          pubkey: other.pubkey,
          signature: Base64Url.encode(Auth.sign(other.privateKey, Auth.authMessage(host, "s", nonce)))
        })
        assert.deepStrictEqual(errorOf(yield* c2.next()), {
          kind: "unauthorized",
          message: "auth key does not match the registered key"
        })

        const owner = yield* register(url, "aaron")
        assert.strictEqual(owner.path.user, "aaron")
        const c3 = yield* dial(url)
        assert.strictEqual(
          errorOf(yield* handshake(c3, { identity: attacker, handle: "s" })).message,
          "unknown machine key"
        )
      }))

    it.scopedLive("a signature for another host is refused, and hello.host must be one the server answers as (D-3)", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ publicUrls: ["wss://conclave.example.com/"] })
        const id = newIdentity()
        const c1 = yield* dial(url)
        const e1 = errorOf(
          yield* handshake(c1, {
            identity: id,
            handle: "s",
            register: { username: "u", machine: "m" },
            host: "evil.example"
          })
        )
        assert.strictEqual(e1.kind, "unauthorized")
        assert.include(e1.message, Auth.authorityOf(url)!)
        assert.include(e1.message, "conclave.example.com")

        // A relayed signature: made for another server, replayed here.
        const c2 = yield* dial(url)
        const e2 = errorOf(
          yield* handshake(c2, {
            identity: id,
            handle: "s",
            register: { username: "u", machine: "m" },
            signHost: "other-server.example"
          })
        )
        assert.deepStrictEqual(e2, { kind: "unauthorized", message: "signature verification failed" })

        // The public URL's authority is accepted; a null host means the Host header.
        yield* connect(url, {
          identity: id,
          handle: "s",
          register: { username: "u", machine: "m" },
          host: "conclave.example.com"
        })
        const viaHeader = yield* connect(url, {
          identity: id,
          handle: "t",
          host: null,
          signHost: Auth.authorityOf(url)!
        })
        assert.strictEqual(viaHeader.path.session, "t")
      }))

    it.scopedLive("names are validated before any write (S-041, S-042, D-15)", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer()
        const id = newIdentity()
        for (
          const [handle, reg, expected] of [
            ["s/1", { username: "aaron", machine: "m" }, "invalid session handle"],
            ["", { username: "aaron", machine: "m" }, "invalid session handle"],
            ["s", { username: "", machine: "m" }, "invalid username"],
            ["s", { username: "aaron", machine: "" }, "invalid machine name"],
            ["s", { username: "a b", machine: "m" }, "invalid username"],
            ["s", { username: "x".repeat(65), machine: "m" }, "invalid username"]
          ] as const
        ) {
          const c = yield* dial(url)
          const e = errorOf(yield* handshake(c, { identity: id, handle, register: reg }))
          assert.strictEqual(e.kind, "malformed_frame")
          assert.include(e.message, expected)
          yield* c.closed
        }
        // nothing was persisted: the key is still free and aaron is still claimable
        const ok = yield* connect(url, { identity: id, handle: "s", register: { username: "aaron", machine: "m" } })
        assert.strictEqual(ok.path.user, "aaron")
      }))

    it.scopedLive("a bad handle or host is refused after the challenge, like every auth failure (SPEC §2.6 order)", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer()
        const id = newIdentity()
        const stepwise = (hello: { readonly session: string; readonly host: string }) =>
          Effect.gen(function*() {
            const c = yield* dial(url)
            yield* c.send({ type: "hello", protocol_version: 1, client: "bridge", ...hello })
            const challenge = yield* c.next()
            if (challenge.type !== "challenge") {
              return assert.fail(`expected a challenge, got ${JSON.stringify(challenge)}`)
            }
            yield* c.send({ type: "register", username: "aaron", machine: "m", pubkey: id.pubkey })
            const sig = Auth.sign(id.privateKey, Auth.authMessage(hello.host, hello.session, challenge.nonce))
            yield* c.send({ type: "auth", pubkey: id.pubkey, signature: Base64Url.encode(sig) })
            const e = errorOf(yield* c.next())
            assert.strictEqual((yield* c.closed).code, 1008)
            return e
          })
        const authority = Auth.authorityOf(url)!
        const bad = yield* stepwise({ session: "s/1", host: authority })
        assert.strictEqual(bad.kind, "malformed_frame")
        assert.include(bad.message, "invalid session handle: `s/1`")
        const elsewhere = yield* stepwise({ session: "s", host: "elsewhere.example" })
        assert.strictEqual(elsewhere.kind, "unauthorized")
        assert.include(elsewhere.message, authority)
        // neither attempt wrote anything
        const ok = yield* connect(url, { identity: id, handle: "s", register: { username: "aaron", machine: "m" } })
        assert.strictEqual(ok.path.user, "aaron")
      }))

    it.scopedLive("protocol violations during the handshake answer one error and close (S-043, S-044)", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer()
        const id = newIdentity()
        const expectClose = (frames: ReadonlyArray<Record<string, unknown> | string>, skipChallenge: boolean) =>
          Effect.gen(function*() {
            const c = yield* dial(url)
            for (const f of frames) yield* c.send(f)
            if (skipChallenge) assert.strictEqual((yield* c.next()).type, "challenge")
            const e = errorOf(yield* c.next())
            const closed = yield* c.closed
            assert.strictEqual(closed.code, 1008)
            return e
          })
        const hello = { type: "hello", protocol_version: 1, session: "s", host: null }
        assert.deepStrictEqual(yield* expectClose([{ type: "ping" }], false), {
          kind: "malformed_frame",
          message: "expected Hello"
        })
        assert.deepStrictEqual(yield* expectClose([{ ...hello, protocol_version: 2 }], false), {
          kind: "version_mismatch",
          ours: 1,
          theirs: 2
        })
        assert.deepStrictEqual(yield* expectClose([hello, { type: "join", channel: "x", token: null }], true), {
          kind: "malformed_frame",
          message: "expected Register or Auth"
        })
        assert.deepStrictEqual(
          yield* expectClose([hello, { type: "register", username: "u", machine: "m", pubkey: id.pubkey }, {
            type: "ping"
          }], true),
          { kind: "malformed_frame", message: "expected Auth after Register" }
        )
        const short = Base64Url.encode(new Uint8Array(31))
        const e1 = yield* expectClose([hello, {
          type: "auth",
          pubkey: short,
          signature: Base64Url.encode(new Uint8Array(64))
        }], true)
        assert.deepStrictEqual(e1, {
          kind: "malformed_frame",
          message: "malformed key or signature: public key must be 32 bytes"
        })
        const e2 = yield* expectClose([hello, {
          type: "auth",
          pubkey: id.pubkey,
          signature: Base64Url.encode(new Uint8Array(63))
        }], true)
        assert.deepStrictEqual(e2, {
          kind: "malformed_frame",
          message: "malformed key or signature: signature must be 64 bytes"
        })
        const e3 = yield* expectClose(["not json"], false)
        assert.strictEqual(e3.kind, "malformed_frame")
      }))

    it.scopedLive("the handshake is bounded by its deadline", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ handshakeTimeout: Duration.millis(300) })
        const c = yield* dial(url)
        assert.deepStrictEqual(errorOf(yield* c.next()), { kind: "unauthorized", message: "handshake timed out" })
        yield* c.closed
      }))

    // Time is the subject: the server's deadlines run on the TestClock, the clients' own waits on the
    // real clock (bounded, with their failure messages).
    it.scoped("each pending handshake gets its own deadline; a finished one is not cut by it", () =>
      Effect.gen(function*() {
        const live = TestServices.provideLive
        const { url } = yield* startServer({ handshakeTimeout: Duration.millis(400) })
        const session = yield* live(register(url, "aaron"))
        const early = yield* live(dial(url))
        yield* live(early.send({ type: "hello", protocol_version: 1, session: "s", host: null, client: "cli" }))
        assert.strictEqual((yield* live(early.next())).type, "challenge")
        yield* TestClock.adjust("200 millis")
        // Armed 200 ms after the first one (the server arms it when it takes the connection).
        const late = yield* live(dial(url))
        yield* TestClock.adjust("200 millis")
        assert.deepStrictEqual(errorOf(yield* live(early.next())), {
          kind: "unauthorized",
          message: "handshake timed out"
        })
        yield* live(early.closed)
        // Still running when the first one expired: it answers its hello.
        yield* live(late.send({ type: "hello", protocol_version: 1, session: "s", host: null, client: "cli" }))
        assert.strictEqual((yield* live(late.next())).type, "challenge")
        yield* TestClock.adjust("200 millis")
        assert.deepStrictEqual(errorOf(yield* live(late.next())), {
          kind: "unauthorized",
          message: "handshake timed out"
        })
        yield* live(late.closed)
        // Established before any of these deadlines: still served after all of them.
        assert.strictEqual((yield* live(session.request({ type: "who", channel: null }))).type, "presence")
        assert.isFalse(session.isClosed())
      }))

    it.scopedLive("pinned admin names cannot be squatted; admins get server_info admin=true (S-038, S-039)", () =>
      Effect.gen(function*() {
        const owner = newIdentity()
        const { url } = yield* startServer({
          admins: [{ user: "aaron", pin: owner.pubkey }, { user: "root", pin: null }]
        })
        const squat = yield* dial(url)
        const e = errorOf(
          yield* handshake(squat, {
            identity: newIdentity(),
            handle: "s",
            register: { username: "aaron", machine: "m" }
          })
        )
        assert.deepStrictEqual(e, { kind: "unauthorized", message: "username `aaron` is reserved for a different key" })
        const admin = yield* connect(url, {
          identity: owner,
          handle: "s",
          register: { username: "aaron", machine: "m" }
        })
        assert.isTrue(admin.admin)
        // the reserved check runs before the taken check (SPEC §3.15)
        const late = yield* dial(url)
        assert.deepStrictEqual(
          errorOf(
            yield* handshake(late, {
              identity: newIdentity(),
              handle: "s",
              register: { username: "aaron", machine: "x" }
            })
          ),
          { kind: "unauthorized", message: "username `aaron` is reserved for a different key" }
        )
        const users = yield* admin.request({ type: "list_users" })
        assert.deepStrictEqual(users.type === "user_list" ? [...users.users] : users, ["aaron"])
        const root = yield* register(url, "root")
        assert.isTrue(root.admin)
        const plainUser = yield* register(url, "bob")
        assert.isFalse(plainUser.admin)
        const denied = yield* plainUser.request({ type: "list_users" })
        assert.deepStrictEqual(errorOf(denied), {
          kind: "unauthorized",
          message: "not authorized: admin role required"
        })
      }))

    it.scopedLive("per-address register attempts are limited (D-10)", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ registerLimitPerMinute: 2 })
        yield* register(url, "a")
        yield* register(url, "b")
        const c = yield* dial(url)
        const e = errorOf(
          yield* handshake(c, { identity: newIdentity(), handle: "s", register: { username: "c", machine: "m" } })
        )
        assert.strictEqual(e.kind, "rate_limited")
        assert.strictEqual(e.message, "too many failed handshakes from this address")
      }))

    it.scopedLive("only failures that cost the server count; an enrolled key passes a blocked address (issue 22)", () =>
      Effect.gen(function*() {
        const { url } = yield* startServer({ registerLimitPerMinute: 3 })
        const alice = yield* register(url, "alice")
        yield* alice.close
        // register frames never followed by a checked signature cost nothing
        for (let i = 0; i < 10; i++) {
          const c = yield* dial(url)
          yield* c.send({ type: "hello", protocol_version: 1, session: "s", host: null, client: "bridge" })
          yield* c.next()
          yield* c.send({ type: "register", username: `u${i}`, machine: "m", pubkey: newIdentity().pubkey })
          yield* c.close
        }
        const bob = yield* register(url, "bob")
        yield* bob.close
        // signatures verified bad do count: the address is now over its cap (alice, bob, one forgery)
        const forger = yield* dial(url)
        const forged = errorOf(
          yield* handshake(forger, { identity: newIdentity(), handle: "s", signHost: "elsewhere:1" })
        )
        assert.strictEqual(forged.kind, "unauthorized")
        const carol = yield* dial(url)
        const refused = errorOf(
          yield* handshake(carol, {
            identity: newIdentity(),
            handle: "s",
            register: { username: "carol", machine: "m" }
          })
        )
        assert.strictEqual(refused.kind, "rate_limited")
        // alice's key is enrolled: she still gets in, by auth and by an idempotent register
        const back = yield* connect(url, { identity: alice.identity, handle: "s2" })
        expectType(yield* back.request({ type: "ping" }), "pong")
        const again = yield* connect(url, {
          identity: alice.identity,
          handle: "s3",
          register: { username: "alice", machine: "box" }
        })
        expectType(yield* again.request({ type: "ping" }), "pong")
      }))
  })
}
