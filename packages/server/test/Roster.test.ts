/**
 * A node's view of the other nodes' sessions (D-42): leases and their expiry, attach moving a path,
 * live-state changes, a large lease in parts, and control messages that do not decode.
 */
import { assert, describe, it } from "@effect/vitest"
import { Either, Schema } from "effect"
import * as Cluster from "../src/Cluster.js"
import { Roster } from "../src/internal/roster.js"

const keys = (roster: Roster, now: number) => [...roster.sessions(now)].map((s) => s.key).sort()
const lease = (...sessions: Array<[string, Array<string>]>): Cluster.Op => ({
  op: "lease",
  sessions: sessions.map(([path, channels]) => ({ path, channels })),
  continued: false
})

describe("Roster", () => {
  it("a lease counts until leaseMs after it arrived, then its sessions are gone and the sweep names the node", () => {
    const roster = new Roster(1000)
    roster.apply("i1", "node-1", lease(["a/m/s", ["ops"]], ["b/m/s", []]), 0)
    assert.deepStrictEqual(keys(roster, 999), ["a/m/s", "b/m/s"])
    assert.isTrue(roster.has("a/m/s", 999))
    assert.deepStrictEqual(keys(roster, 1000), [])
    assert.isFalse(roster.has("a/m/s", 1000))
    assert.deepStrictEqual(roster.sweep(1000), ["node-1"])
    assert.strictEqual(roster.size(0), 0)
  })

  it("a new lease replaces the node's sessions and renews it", () => {
    const roster = new Roster(1000)
    roster.apply("i1", "node-1", lease(["a/m/s", []]), 0)
    roster.apply("i1", "node-1", lease(["b/m/s", []]), 900)
    assert.deepStrictEqual(keys(roster, 1500), ["b/m/s"])
  })

  it("attach moves a path to the node that attached it; detach and gone remove", () => {
    const roster = new Roster(1000)
    roster.apply("i1", "node-1", lease(["a/m/s", ["ops"]]), 0)
    roster.apply("i2", "node-2", { op: "attach", path: "a/m/s", at: 5 }, 10)
    assert.deepStrictEqual(keys(roster, 20), ["a/m/s"], "listed once, on node 2")
    roster.apply("i1", "node-1", { op: "detach", path: "a/m/s" }, 30)
    assert.isTrue(roster.has("a/m/s", 40), "node 1's detach does not remove node 2's session")
    roster.apply("i2", "node-2", { op: "join", path: "a/m/s", channel: "dev" }, 50)
    assert.isTrue([...roster.sessions(60)][0]!.channels.has("dev"))
    roster.apply("i2", "node-2", { op: "gone" }, 70)
    assert.deepStrictEqual(keys(roster, 80), [])
  })

  it("live-state changes apply to every node's sessions", () => {
    const roster = new Roster(1000)
    roster.apply("i1", "node-1", lease(["u/m/a", ["ops", "dev"]], ["v/m/b", ["ops"]]), 0)
    roster.apply("i2", "node-2", lease(["u/n/c", ["ops"]]), 0)
    const channelsOf = (key: string) => [...[...roster.sessions(1)].find((s) => s.key === key)!.channels].sort()
    roster.apply("i3", "node-3", { op: "unsubscribe_user", channel: "ops", user: "u", reason: "banned" }, 1)
    assert.deepStrictEqual(channelsOf("u/m/a"), ["dev"])
    assert.deepStrictEqual(channelsOf("u/n/c"), [])
    assert.deepStrictEqual(channelsOf("v/m/b"), ["ops"])
    roster.apply("i3", "node-3", { op: "rename_channel", from: "ops", to: "ops2" }, 1)
    assert.deepStrictEqual(channelsOf("v/m/b"), ["ops2"])
    roster.apply("i3", "node-3", { op: "drop_channel", channel: "dev" }, 1)
    assert.deepStrictEqual(channelsOf("u/m/a"), [])
    roster.apply("i3", "node-3", { op: "kill_user", user: "u", machine: "m", reason: "machine key revoked" }, 1)
    assert.deepStrictEqual(keys(roster, 1), ["u/n/c", "v/m/b"])
  })

  it("a session path that is not user/machine/session is ignored", () => {
    const roster = new Roster(1000)
    roster.apply("i1", "node-1", lease(["not-a-path", []], ["a/m/s", []]), 0)
    roster.apply("i1", "node-1", { op: "attach", path: "a//s", at: 1 }, 0)
    assert.deepStrictEqual(keys(roster, 1), ["a/m/s"])
  })

  it("a large lease goes in parts under LEASE_PART_BYTES that rebuild the whole node", () => {
    const sessions = Array.from({ length: 5000 }, (_, i) => ({
      path: `user${i}/machine/session`,
      channels: Array.from({ length: 10 }, (_, c) => `channel-${c}`)
    }))
    const parts = Cluster.leaseParts(sessions)
    assert.isAbove(parts.length, 1)
    parts.forEach((part, i) => {
      assert.strictEqual(part.op, "lease")
      if (part.op !== "lease") return
      assert.strictEqual(part.continued, i > 0)
      assert.isAtMost(JSON.stringify(part).length, Cluster.LEASE_PART_BYTES * 1.1)
    })
    const roster = new Roster(1000)
    roster.apply("i1", "node-1", lease(["stale/m/s", []]), 0)
    for (const part of parts) roster.apply("i1", "node-1", part, 0)
    assert.strictEqual([...roster.sessions(1)].length, 5000, "the stale session is replaced")
    assert.deepStrictEqual(Cluster.leaseParts([]), [{ op: "lease", sessions: [], continued: false }])
  })

  it("control messages that do not match the schema do not decode", () => {
    const decode = Schema.decodeUnknownEither(Cluster.Control)
    const ok = { _tag: "Control", instance: "i", node: "n", body: { op: "gone" } }
    assert.isTrue(Either.isRight(decode(ok)))
    for (
      const bad of [
        { ...ok, body: { op: "explode" } },
        { ...ok, body: { op: "attach", path: "a/m/s" } },
        { ...ok, body: { op: "lease", sessions: [{ path: 1, channels: [] }], continued: false } },
        { ...ok, body: { op: "unsubscribe_user", channel: "c", user: "u", reason: "because" } },
        { ...ok, instance: 7 },
        { _tag: "Control", node: "n", body: { op: "gone" } }
      ]
    ) assert.isTrue(Either.isLeft(decode(bad)), JSON.stringify(bad))
  })
})
