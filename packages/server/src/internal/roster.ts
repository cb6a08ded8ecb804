/**
 * A node's view of the sessions the other nodes of its deployment hold (D-42), built from their
 * control messages (`Cluster`): per sending hub instance, its sessions with their subscriptions and
 * when its lease runs out. Read at the time of asking: an instance whose lease has run out counts
 * for nothing, whether or not the sweep has dropped it yet.
 *
 * @internal
 */
import { Names } from "@conclave/protocol"
import type { LeasedSession, Op } from "../Cluster.js"

/** A session held by another node. */
export interface RemoteSession {
  readonly path: Names.SessionPath
  readonly key: string
  readonly channels: Set<string>
  /** A web console session (it receives relayed permission requests). */
  readonly console: boolean
}

interface Peer {
  readonly node: string
  expiresAt: number
  readonly sessions: Map<string, RemoteSession>
}

const remoteSession = (key: string, channels: Iterable<string>, console: boolean): RemoteSession | undefined => {
  const path = Names.parsePath(key)
  return path === undefined ? undefined : { path, key, channels: new Set(channels), console }
}

export class Roster {
  private readonly peers = new Map<string, Peer>()

  /** `leaseMs`: how long an instance counts after its last message. */
  constructor(private readonly leaseMs: number) {}

  private peer(instance: string, node: string, now: number): Peer {
    let peer = this.peers.get(instance)
    if (peer === undefined) {
      peer = { node, expiresAt: 0, sessions: new Map() }
      this.peers.set(instance, peer)
    }
    peer.expiresAt = now + this.leaseMs
    return peer
  }

  private *live(now: number): Generator<Peer> {
    for (const peer of this.peers.values()) if (peer.expiresAt > now) yield peer
  }

  /** Take in one presence message of another instance (`lease`, `attach`, `detach`, `join`, `leave`, `gone`). */
  apply(instance: string, node: string, op: Op, now: number): void {
    switch (op.op) {
      case "lease": {
        const peer = this.peer(instance, node, now)
        if (!op.continued) peer.sessions.clear()
        for (const leased of op.sessions) this.add(peer, leased)
        return
      }
      case "attach": {
        // the path now lives on `instance`: a previous holder's entry is stale
        for (const other of this.peers.values()) other.sessions.delete(op.path)
        const session = remoteSession(op.path, [], op.console === true)
        if (session !== undefined) this.peer(instance, node, now).sessions.set(op.path, session)
        return
      }
      case "detach":
        this.peers.get(instance)?.sessions.delete(op.path)
        return
      case "join":
        this.peer(instance, node, now).sessions.get(op.path)?.channels.add(op.channel)
        return
      case "leave":
        this.peers.get(instance)?.sessions.get(op.path)?.channels.delete(op.channel)
        return
      case "gone":
        this.peers.delete(instance)
        return
      case "unsubscribe_path":
        for (const peer of this.peers.values()) peer.sessions.get(op.path)?.channels.delete(op.channel)
        return
      case "unsubscribe_user":
        for (const session of this.all()) if (session.path.user === op.user) session.channels.delete(op.channel)
        return
      case "drop_channel":
        for (const session of this.all()) session.channels.delete(op.channel)
        return
      case "rename_channel":
        for (const session of this.all()) {
          if (session.channels.delete(op.from)) session.channels.add(op.to)
        }
        return
      case "kill_user":
        for (const peer of this.peers.values()) {
          for (const [key, session] of peer.sessions) {
            if (session.path.user === op.user && (op.machine === null || session.path.machine === op.machine)) {
              peer.sessions.delete(key)
            }
          }
        }
        return
      case "add_ban":
      case "remove_ban":
        return
    }
  }

  private add(peer: Peer, leased: LeasedSession): void {
    const session = remoteSession(leased.path, leased.channels, leased.console === true)
    if (session !== undefined) peer.sessions.set(leased.path, session)
  }

  private *all(): Generator<RemoteSession> {
    for (const peer of this.peers.values()) yield* peer.sessions.values()
  }

  /** Every session other nodes hold now. */
  *sessions(now: number): Generator<RemoteSession> {
    for (const peer of this.live(now)) yield* peer.sessions.values()
  }

  /** Whether another node holds the session now. */
  has(key: string, now: number): boolean {
    for (const peer of this.live(now)) if (peer.sessions.has(key)) return true
    return false
  }

  /** Forget instances whose lease ran out; the node names of those forgotten. */
  sweep(now: number): Array<string> {
    const gone: Array<string> = []
    for (const [instance, peer] of this.peers) {
      if (peer.expiresAt <= now) {
        this.peers.delete(instance)
        gone.push(peer.node)
      }
    }
    return gone
  }

  /** How many other instances are live now. */
  size(now: number): number {
    let n = 0
    for (const _ of this.live(now)) n++
    return n
  }
}
