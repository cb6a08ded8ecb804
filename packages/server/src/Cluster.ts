/**
 * What the nodes of one deployment tell each other over the `Broker` (DECISIONS D-42): presence
 * (which sessions a node holds and which channels they are subscribed to, renewed as a lease every
 * heartbeat interval) and the live-state changes an admin op makes on the node it reaches —
 * supersede, kick, ban, rename, delete, user and machine removal — so they reach the affected
 * session wherever it is.
 *
 * Presence is a lease carried by the broker, not a store table: it needs no durability (a node that
 * missed everything rebuilds its view of the others from their next lease, one interval later), it
 * keeps the handshake and `join` free of store writes, and the single-node default runs the very
 * same code (its broker simply has no other node). A node's view of another node's sessions expires
 * `LEASE_INTERVALS` heartbeat intervals after that node's last lease, so a dead node's sessions
 * leave `who` within three intervals.
 *
 * Every control message names the hub instance that sent it (a random id per hub, so two servers in
 * one process — or two nodes misconfigured with one `--node-id` — never take each other's messages
 * for their own) and that instance's node name, for logs.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** Heartbeat intervals after a node's last lease at which its sessions leave presence (< 3, D-42). @since 0.1.0 @category constants */
export const LEASE_INTERVALS = 2.5

const Path = Schema.String
const Channel = Schema.String
const Reason = Schema.Literal("kicked", "banned", "removed", "deleted", "renamed")

/**
 * About how many bytes of sessions one lease message carries at most, well under NATS's default
 * `max_payload` (1 MiB), so a node with many sessions still renews its lease.
 *
 * @since 0.1.0
 * @category constants
 */
export const LEASE_PART_BYTES = 128 * 1024

/**
 * A node's lease as messages: its sessions in parts of about `LEASE_PART_BYTES` each (always at
 * least one message, so an empty node renews too).
 *
 * @since 0.1.0
 * @category constructors
 */
export const leaseParts = (sessions: Iterable<LeasedSession>): Array<Op> => {
  const parts: Array<Op> = []
  let part: Array<LeasedSession> = []
  let bytes = 0
  for (const session of sessions) {
    let size = session.path.length + 24
    for (const channel of session.channels) size += channel.length + 3
    if (part.length > 0 && bytes + size > LEASE_PART_BYTES) {
      parts.push({ op: "lease", sessions: part, continued: parts.length > 0 })
      part = []
      bytes = 0
    }
    part.push(session)
    bytes += size
  }
  parts.push({ op: "lease", sessions: part, continued: parts.length > 0 })
  return parts
}

/** One session in a lease: its rendered path and its channel subscriptions. @since 0.1.0 @category models */
export const LeasedSession = Schema.Struct({
  path: Path,
  channels: Schema.Array(Channel),
  /** A web console session (receives relayed permission requests); absent from older nodes. */
  console: Schema.optional(Schema.Boolean)
})

/** @since 0.1.0 @category models */
export type LeasedSession = typeof LeasedSession.Type

/**
 * A control message: the operation (`op`) and its arguments.
 *
 * - `lease`: every session the node holds now; replaces what others knew of it and renews it (a
 *   large lease comes in parts: the first replaces, the `continued` ones add).
 * - `attach` / `detach`: a session established / gone (`at`: epoch ms of the attach, which decides
 *   between two nodes attaching one path at once: the later attach wins, ties by instance id).
 * - `join` / `leave`: a subscription made / ended.
 * - `gone`: the node is shutting down; forget its sessions now.
 * - the rest replay an admin op's change of live state on every other node.
 *
 * @since 0.1.0
 * @category models
 */
export const Op = Schema.Union(
  Schema.Struct({
    op: Schema.Literal("lease"),
    sessions: Schema.Array(LeasedSession),
    /** A further part of the same lease (a large lease is sent in parts, each under `LEASE_PART_BYTES`). */
    continued: Schema.Boolean
  }),
  Schema.Struct({
    op: Schema.Literal("attach"),
    path: Path,
    at: Schema.Number,
    console: Schema.optional(Schema.Boolean)
  }),
  Schema.Struct({ op: Schema.Literal("detach"), path: Path }),
  Schema.Struct({ op: Schema.Literal("join"), path: Path, channel: Channel }),
  Schema.Struct({ op: Schema.Literal("leave"), path: Path, channel: Channel }),
  Schema.Struct({ op: Schema.Literal("gone") }),
  Schema.Struct({ op: Schema.Literal("unsubscribe_path"), channel: Channel, path: Path, reason: Reason }),
  Schema.Struct({ op: Schema.Literal("unsubscribe_user"), channel: Channel, user: Schema.String, reason: Reason }),
  Schema.Struct({ op: Schema.Literal("drop_channel"), channel: Channel }),
  Schema.Struct({ op: Schema.Literal("rename_channel"), from: Channel, to: Channel }),
  Schema.Struct({ op: Schema.Literal("add_ban"), channel: Channel, user: Schema.String }),
  Schema.Struct({ op: Schema.Literal("remove_ban"), channel: Channel, user: Schema.String }),
  Schema.Struct({
    op: Schema.Literal("kill_user"),
    user: Schema.String,
    machine: Schema.NullOr(Schema.String),
    reason: Schema.String
  })
)

/** @since 0.1.0 @category models */
export type Op = typeof Op.Type

const presenceOps: ReadonlySet<Op["op"]> = new Set(["lease", "attach", "detach", "join", "leave", "gone"])

/** Whether the message is about the sender's own presence (not a change of live state everywhere). @since 0.1.0 @category predicates */
export const isPresence = (op: Op): boolean => presenceOps.has(op.op)

/** A control message as it travels: the sending hub instance, its node name and the operation. @since 0.1.0 @category models */
export const Control = Schema.Struct({
  _tag: Schema.Literal("Control"),
  instance: Schema.String,
  node: Schema.String,
  body: Op
})

/** @since 0.1.0 @category models */
export type Control = typeof Control.Type
