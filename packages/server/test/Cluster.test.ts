/**
 * One deployment, many nodes (D-42): three server nodes in this process, each its own server layer
 * on its own port, on one PostgreSQL database (a scratch database per test) and one NATS (a subject
 * prefix per test), with real WebSocket clients spread over the nodes.
 *
 * Presence crosses nodes as control messages, so a view of another node is eventually consistent
 * (milliseconds): where a test needs one node to know of a session on another, it waits for it with
 * a bounded poll of `who`.
 */
import { Errors, type Frames, type Names } from "@conclave/protocol"
import {
  connect,
  dial,
  errorOf,
  eventually,
  expectType,
  handshake,
  newIdentity,
  noId,
  op,
  plain,
  reconnect,
  register,
  type Session,
  startServer
} from "@conclave/testkit"
import { describeWith, NATS, relay, scratchDatabase, subjectPrefix, within } from "@conclave/testkit/Backends"
import { assert, it } from "@effect/vitest"
import { Clock, Duration, Effect, ExecutionStrategy, Exit, Option, Scope } from "effect"
import * as NatsBroker from "../src/NatsBroker.js"
import * as PgStore from "../src/PgStore.js"

interface Node {
  readonly url: string
  /** Stop the node in good order (drain, then tell the others). */
  readonly stop: Effect.Effect<void>
}

interface Deployment {
  readonly nodes: ReadonlyArray<Node>
  /** Another node, on the same database and broker (e.g. one whose NATS link goes through a relay). */
  readonly addNode: (options?: { readonly natsUrl?: string }) => Effect.Effect<Node, unknown, Scope.Scope>
}

const HEARTBEAT = Duration.millis(400)

/** `count` nodes on one scratch database and one NATS subject prefix. */
const deployment = (count: number) =>
  Effect.gen(function*() {
    const url = yield* scratchDatabase
    const prefix = subjectPrefix()
    let made = 0
    const addNode = (options: { readonly natsUrl?: string } = {}) =>
      Effect.gen(function*() {
        const scope = yield* Scope.fork(yield* Effect.scope, ExecutionStrategy.sequential)
        const running = yield* startServer({
          nodeId: `node-${++made}`,
          heartbeatInterval: HEARTBEAT,
          admins: [{ user: "root", pin: null }],
          store: PgStore.layer({ url }),
          broker: NatsBroker.layer({ url: options.natsUrl ?? NATS, prefix, reconnectWait: "100 millis" })
        }).pipe(Scope.extend(scope))
        return { url: running.url, stop: Scope.close(scope, Exit.void) } satisfies Node
      })
    const nodes: Array<Node> = []
    for (let i = 0; i < count; i++) nodes.push(yield* addNode())
    return { nodes, addNode } satisfies Deployment
  })

/** Run `effect` until `check` holds of its result (bounded poll). */
const poll = <A, E>(effect: Effect.Effect<A, E>, check: (a: A) => boolean, what: string) =>
  eventually(what, Effect.map(effect, (a) => check(a) ? Option.some(a) : Option.none()), "10 seconds", "20 millis")
    .pipe(Effect.orDie)

const keyOf = (p: Names.SessionPath) => `${p.user}/${p.machine}/${p.session}`

/** Poll `who` from `session` until `check` holds of the listed paths (bounded). */
const whoUntil = (
  session: Session,
  channel: string | null,
  check: (paths: ReadonlyArray<string>) => boolean,
  what: string
) =>
  poll(
    Effect.map(session.request({ type: "who", channel }), (reply) => expectType(reply, "presence").sessions.map(keyOf)),
    check,
    what
  )

const sees = (session: Session, others: ReadonlyArray<Session>, channel: string | null = null) =>
  whoUntil(
    session,
    channel,
    (paths) => others.every((o) => paths.includes(keyOf(o.path))),
    `${keyOf(session.path)} to see ${others.map((o) => keyOf(o.path)).join(", ")} in who ${channel ?? "(all)"}`
  )

const join = (s: Session, channel: string) =>
  Effect.map(s.request({ type: "join", channel, token: null }), (r) => expectType(r, "joined"))

const notice = (
  channel: string,
  reason: Frames.UnsubscribeReason,
  new_name: string | null = null
): Frames.ServerFrame => ({
  type: "unsubscribed",
  channel,
  reason,
  new_name
})

describeWith("Three nodes on PostgreSQL and NATS (D-42)", ["postgres", "nats"], () => {
  it.scopedLive("who and the server-wide listing cover every node; a whisper reaches its target on another node", () =>
    Effect.gen(function*() {
      const { nodes } = yield* deployment(3)
      const a = yield* register(nodes[0]!.url, "alice")
      const b = yield* register(nodes[1]!.url, "bob")
      const c = yield* register(nodes[2]!.url, "carol")
      for (const s of [a, b, c]) yield* sees(s, [a, b, c])
      const all = expectType(yield* b.request({ type: "who", channel: null }), "presence")
      assert.strictEqual(all.sessions.length, 3, "each session listed once")

      assert.deepStrictEqual(noId(yield* a.request({ type: "whisper", target: c.path, payload: plain("psst") })), {
        type: "ack",
        detail: null,
        seq: null
      })
      assert.deepStrictEqual(yield* c.next(), {
        type: "whisper",
        from: a.path,
        target: c.path,
        payload: plain("psst"),
        origin: "agent"
      })
      yield* b.expectNothingQueued()

      // subscriptions too: who of a channel lists its subscribers on every node
      yield* a.request(op({ kind: "create_channel", name: "ops", visibility: "public" }))
      yield* join(a, "ops")
      yield* join(c, "ops")
      const subs = yield* whoUntil(b, "ops", (p) => p.length === 2, "b to see both subscribers of ops")
      assert.sameMembers([...subs], [keyOf(a.path), keyOf(c.path)])

      // a session that leaves is gone from every node's who
      yield* c.close
      yield* whoUntil(a, null, (p) => !p.includes(keyOf(c.path)), "c to leave who on node 1")
      assert.strictEqual(
        errorOf(yield* a.request({ type: "whisper", target: c.path, payload: plain("x") })).kind,
        "not_found"
      )
    }))

  it.scopedLive("a console enrollment code issued through one node is redeemed on another, once (D-51)", () =>
    Effect.gen(function*() {
      const { nodes } = yield* deployment(3)
      const aaron = yield* register(nodes[0]!.url, "aaron")
      const code = expectType(yield* aaron.request({ type: "enroll_create" }), "enrollment").code
      const browser = yield* connect(nodes[1]!.url, {
        identity: newIdentity(),
        handle: "console",
        client: "console",
        enroll: code
      })
      assert.deepStrictEqual(browser.path, { user: "aaron", machine: "browser-1", session: "console" })
      // taken on node 2: node 3 (and node 1) know it is used
      for (const node of [nodes[2]!, nodes[0]!]) {
        const client = yield* dial(node.url)
        const refused = yield* handshake(client, {
          identity: newIdentity(),
          handle: "c",
          client: "console",
          enroll: code
        })
        assert.deepStrictEqual(errorOf(refused), { kind: "unauthorized", message: Errors.Messages.enrollCodeUsed })
      }
    }))

  it.scopedLive("a post on one node reaches subscribers on the others in seq order, gap-free; a client of a stopped node reconnects elsewhere and fills the gap by seq", () =>
    Effect.gen(function*() {
      const { nodes } = yield* deployment(3)
      const a = yield* register(nodes[0]!.url, "alice")
      const b = yield* register(nodes[1]!.url, "bob")
      const c = yield* register(nodes[2]!.url, "carol")
      yield* a.request(op({ kind: "create_channel", name: "ops", visibility: "public" }))
      for (const s of [a, b, c]) yield* join(s, "ops")
      const seqs: Array<number> = []
      for (let i = 1; i <= 5; i++) {
        const ack = expectType(
          yield* a.request({ type: "channel_msg", channel: "ops", payload: plain(`m${i}`), reply_to: null }),
          "ack"
        )
        seqs.push(ack.seq!)
      }
      assert.deepStrictEqual(seqs, [1, 2, 3, 4, 5], "per-channel seq, gap-free, from the shared store")
      for (const s of [b, c]) {
        for (let i = 1; i <= 5; i++) {
          const got = expectType(yield* s.next(), "channel_msg")
          assert.strictEqual(got.seq, i)
          assert.deepStrictEqual(got.payload, plain(`m${i}`))
          assert.deepStrictEqual(got.from, a.path)
        }
      }

      // c's node goes away; a goes on posting; c comes back on node 2 and reads what it missed
      yield* nodes[2]!.stop
      yield* c.closed
      for (let i = 6; i <= 8; i++) {
        yield* a.request({ type: "channel_msg", channel: "ops", payload: plain(`m${i}`), reply_to: null })
      }
      const back = yield* reconnect(nodes[1]!.url, c.identity, c.path.session)
      yield* join(back, "ops")
      const history = expectType(
        yield* back.request({ type: "read_since", channel: "ops", since_seq: 5, since_ms: null }),
        "history"
      )
      assert.deepStrictEqual(history.messages.map((m) => m.seq), [6, 7, 8])
      assert.isFalse(history.more)
    }))

  it.scopedLive("a session path connecting on another node supersedes the old session there", () =>
    Effect.gen(function*() {
      const { nodes } = yield* deployment(3)
      const first = yield* register(nodes[0]!.url, "aaron", "ws", "razel")
      const watcher = yield* register(nodes[2]!.url, "wendy")
      yield* sees(watcher, [first])
      const second = yield* reconnect(nodes[1]!.url, first.identity, "razel")
      const killed = errorOf(yield* first.next())
      assert.strictEqual(killed.kind, "unauthorized")
      assert.include(killed.message!, "superseded")
      yield* first.closed
      assert.isFalse(second.isClosed(), "the newer session stays")
      const paths = yield* whoUntil(
        watcher,
        null,
        (p) => p.filter((k) => k === keyOf(second.path)).length === 1 && p.length === 2,
        "the path listed once, on its new node"
      )
      assert.sameMembers([...paths], [keyOf(second.path), keyOf(watcher.path)])
      // the newer session is the one that gets whispers
      yield* watcher.request({ type: "whisper", target: second.path, payload: plain("hi") })
      assert.strictEqual(expectType(yield* second.next(), "whisper").payload.kind, "plain")
    }))

  it.scopedLive("kick, ban, rename and delete reach the affected session on another node (D-7)", () =>
    Effect.gen(function*() {
      const { nodes } = yield* deployment(3)
      const owner = yield* register(nodes[0]!.url, "owner")
      const u = yield* register(nodes[1]!.url, "ursula")
      yield* owner.request(op({ kind: "create_channel", name: "ops", visibility: "public" }))
      yield* sees(owner, [u])

      yield* join(u, "ops")
      expectType(yield* owner.request(op({ kind: "kick", channel: "ops", target: keyOf(u.path) })), "ack")
      assert.deepStrictEqual(yield* u.next(), notice("ops", "kicked"))
      yield* whoUntil(owner, "ops", (p) => !p.includes(keyOf(u.path)), "the kicked session to leave who ops")

      yield* join(u, "ops")
      expectType(yield* owner.request(op({ kind: "ban", channel: "ops", user: "ursula" })), "ack")
      assert.deepStrictEqual(yield* u.next(), notice("ops", "banned"))
      // the ban holds on u's node: joining there is refused
      const refused = errorOf(yield* u.request({ type: "join", channel: "ops", token: null }))
      assert.strictEqual(refused.kind, "unauthorized")
      expectType(yield* owner.request(op({ kind: "unban", channel: "ops", user: "ursula" })), "ack")
      yield* poll(
        u.request({ type: "join", channel: "ops", token: null }),
        (r) => r.type === "joined",
        "the unban to reach u's node"
      )

      expectType(yield* owner.request(op({ kind: "rename_channel", name: "ops", new_name: "ops2" })), "ack")
      assert.deepStrictEqual(yield* u.next(), notice("ops", "renamed", "ops2"))
      // the subscription moved with the channel, on u's node
      yield* owner.request({ type: "join", channel: "ops2", token: null })
      yield* owner.request({ type: "channel_msg", channel: "ops2", payload: plain("hello"), reply_to: null })
      assert.strictEqual(expectType(yield* u.next(), "channel_msg").channel, "ops2")

      expectType(yield* owner.request(op({ kind: "delete_channel", name: "ops2" })), "ack")
      assert.deepStrictEqual(yield* u.next(), notice("ops2", "deleted"))
    }))

  it.scopedLive("user_remove and machine_remove end the sessions on other nodes", () =>
    Effect.gen(function*() {
      const { nodes } = yield* deployment(3)
      const root = yield* register(nodes[0]!.url, "root")
      const victim = yield* register(nodes[1]!.url, "victim")
      const other = yield* reconnect(nodes[2]!.url, victim.identity, "s2")
      yield* sees(root, [victim, other])
      expectType(yield* root.request(op({ kind: "user_remove", username: "victim" })), "ack")
      for (const s of [victim, other]) {
        const e = errorOf(yield* s.next())
        assert.strictEqual(e.kind, "unauthorized")
        assert.include(e.message!, "removed")
        yield* s.closed
      }
      yield* whoUntil(root, null, (p) => p.length === 1, "only root left")

      const m = yield* register(nodes[1]!.url, "mallory", "laptop", "a")
      const elsewhere = yield* reconnect(nodes[2]!.url, m.identity, "b")
      const here = yield* reconnect(nodes[0]!.url, m.identity, "c")
      expectType(yield* here.request(op({ kind: "machine_remove", name: "laptop" })), "ack")
      for (const s of [m, elsewhere]) {
        assert.include(errorOf(yield* s.next()).message!, "revoked")
        yield* s.closed
      }
    }))

  it.scopedLive("a node cut off from the others leaves who within three heartbeat intervals, and comes back with its link", () =>
    Effect.gen(function*() {
      const deployed = yield* deployment(2)
      const link = yield* relay(NATS)
      const isolated = yield* deployed.addNode({ natsUrl: `nats://127.0.0.1:${link.port}` })
      const a = yield* register(deployed.nodes[0]!.url, "alice")
      const z = yield* register(isolated.url, "zed")
      yield* sees(a, [z])
      yield* link.cut
      const cutAt = yield* Clock.currentTimeMillis
      yield* whoUntil(a, null, (p) => !p.includes(keyOf(z.path)), "the cut-off node's session to leave who")
      const elapsed = (yield* Clock.currentTimeMillis) - cutAt
      const bound = 3 * Duration.toMillis(HEARTBEAT)
      assert.isAtMost(elapsed, bound + 300, `gone after ${elapsed} ms; three intervals are ${bound} ms`)
      assert.strictEqual(
        errorOf(yield* a.request({ type: "whisper", target: z.path, payload: plain("x") })).kind,
        "not_found"
      )
      yield* link.restore
      yield* sees(a, [z])
    }))

  it.scopedLive("a node stopped in good order takes its sessions out of who at once", () =>
    Effect.gen(function*() {
      const { nodes } = yield* deployment(2)
      const a = yield* register(nodes[0]!.url, "alice")
      const b = yield* register(nodes[1]!.url, "bob")
      yield* sees(a, [b])
      yield* nodes[1]!.stop
      yield* whoUntil(a, null, (p) => p.length === 1, "b to leave who once its node stopped").pipe(
        within(Duration.times(HEARTBEAT, 2), "before its lease would have run out")
      )
    }))
})
