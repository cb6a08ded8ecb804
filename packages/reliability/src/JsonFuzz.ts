/**
 * Seeded schema-wrong JSON messages for an authenticated session (BENCH-AND-RELIABILITY §6.3
 * "wrong types / schema"): wrong field types, missing fields, unknown `type`, 1 MB strings,
 * 100 000-deep nesting, `__proto__` / `constructor` keys, numbers as strings, NaN/Infinity,
 * duplicate keys, invalid names, binary messages.
 *
 * @since 0.1.0
 */
import type { Prng } from "./Prng.js"

/** @since 0.1.0 @category models */
export interface JsonCase {
  readonly name: string
  /** Text to send as one message (or bytes for a binary message). */
  readonly data: string | Buffer
}

const clientTypes = [
  "join",
  "leave",
  "who",
  "admin",
  "channel_msg",
  "whisper",
  "list_channels",
  "list_machines",
  "list_users",
  "read_since",
  "ping"
]
const serverTypes = ["pong", "ack", "joined", "error", "history", "presence", "challenge", "established"]

const wrongValues: ReadonlyArray<unknown> = [
  5,
  -1,
  1.5,
  "5",
  "",
  true,
  null,
  [],
  {},
  [1, 2],
  { kind: "plain" },
  "x".repeat(300),
  1e308,
  -0
]

const deep = (depth: number) => "[".repeat(depth) + "]".repeat(depth)
const deepObject = (depth: number) => "{\"a\":".repeat(depth) + "1" + "}".repeat(depth)

const validish = (rng: Prng, type: string): Record<string, unknown> => {
  const channel = rng.pick(["fz", "probe", "nope", "", "a/b", "x".repeat(70)])
  switch (type) {
    case "join":
      return { type, channel, token: rng.pick([null, "tok", ""]) }
    case "leave":
      return { type, channel }
    case "who":
      return { type, channel: rng.pick([null, channel]) }
    case "channel_msg":
      return { type, channel, payload: { kind: "plain", text: "hi" }, reply_to: null }
    case "whisper":
      return {
        type,
        target: { user: rng.pick(["ghost", "fz-owner"]), machine: "box", session: "s1" },
        payload: { kind: "plain", text: "psst" }
      }
    case "read_since":
      return { type, channel, since_seq: 0 }
    case "admin":
      return {
        type,
        op: rng.pick([
          { kind: "create_channel", name: channel, visibility: "public" },
          { kind: "acl_add", channel, user: "someone" },
          { kind: "invite_create", channel, uses: 1, expires_in_secs: null },
          { kind: "kick", channel, target: "x/y/z" },
          { kind: "user_remove", username: "fz-owner" },
          { kind: "machine_add", name: "m", pubkey: "AAAA" },
          { kind: "rename_channel", name: channel, new_name: "renamed" }
        ])
      }
    default:
      return { type }
  }
}

/**
 * One case. The server must answer every case with a reply (usually `error`) or, for undecodable
 * ones, a `malformed_frame` error followed by a 1008 close — never a crash or a state change.
 *
 * @since 0.1.0
 * @category generators
 */
export const next = (rng: Prng, heavy: boolean): JsonCase => {
  const type = rng.pick(clientTypes)
  const base = validish(rng, type)
  const keys = Object.keys(base).filter((k) => k !== "type")
  const kind = heavy ? rng.int(14, 15) : rng.int(0, 13)
  switch (kind) {
    case 0: {
      if (keys.length === 0) return { name: "unknown field only", data: JSON.stringify({ ...base, zzz: 1 }) }
      const key = rng.pick(keys)
      return { name: `wrong type for ${type}.${key}`, data: JSON.stringify({ ...base, [key]: rng.pick(wrongValues) }) }
    }
    case 1: {
      if (keys.length === 0) return { name: "missing type", data: JSON.stringify({ t: type }) }
      const key = rng.pick(keys)
      const copy: Record<string, unknown> = { ...base }
      delete copy[key]
      return { name: `missing ${type}.${key}`, data: JSON.stringify(copy) }
    }
    case 2:
      return {
        name: "unknown type",
        data: JSON.stringify({ ...base, type: rng.pick(["subscribe", "JOIN", "join ", "", "__proto__", "toString"]) })
      }
    case 3:
      return { name: "server frame type from a client", data: JSON.stringify({ type: rng.pick(serverTypes) }) }
    case 4:
      return {
        name: "__proto__ key",
        data: `{"__proto__":{"type":"list_users","admin":true},${JSON.stringify(base).slice(1)}`
      }
    case 5:
      return {
        name: "constructor / prototype keys",
        data: JSON.stringify({ ...base, constructor: { prototype: { admin: true } }, prototype: null })
      }
    case 6: {
      const key = keys.length > 0 ? rng.pick(keys) : "channel"
      return {
        name: "NaN / Infinity literal",
        data: `{"type":"${type}","${key}":${rng.pick(["NaN", "Infinity", "-Infinity", "undefined", "0x10"])}}`
      }
    }
    case 7: {
      const key = keys.length > 0 ? rng.pick(keys) : "channel"
      return { name: "number as string", data: JSON.stringify({ ...base, [key]: String(rng.int(0, 99)) }) }
    }
    case 8:
      return {
        name: "duplicate keys",
        data: `{"type":"join","channel":"probe-evil","token":null,"type":"${type}","channel":"fz"}`
      }
    case 9:
      return {
        name: "not JSON",
        data: rng.pick([
          "",
          "{",
          "}",
          "[]",
          "null",
          "42",
          "\"join\"",
          "{'type':'ping'}",
          "{\"type\":\"ping\"",
          "\u0000"
        ])
      }
    case 10:
      return { name: "binary JSON", data: Buffer.from(JSON.stringify(base)) }
    case 11:
      return {
        name: "invalid names",
        data: JSON.stringify({
          type: "admin",
          op: {
            kind: rng.pick(["create_channel", "rename_channel"]),
            name: rng.pick(["", "a/b", "a b", "x".repeat(65), "\u200badmin", "tab\there", "nul\u0000"]),
            new_name: rng.pick(["", "a/b", "\u202e", "ok"]),
            visibility: rng.pick(["public", "secret", "PUBLIC"])
          }
        })
      }
    case 12:
      return {
        name: "out-of-range numbers",
        data: JSON.stringify(
          rng.pick([
            { type: "read_since", channel: "fz", since_seq: -1 },
            { type: "read_since", channel: "fz", since_seq: 0, since_ms: 0 },
            { type: "read_since", channel: "fz" },
            { type: "admin", op: { kind: "invite_create", channel: "fz", uses: 2 ** 32, expires_in_secs: null } },
            { type: "admin", op: { kind: "invite_create", channel: "fz", uses: 1, expires_in_secs: 1e17 } },
            { type: "admin", op: { kind: "invite_create", channel: "fz", uses: 0, expires_in_secs: 1 } },
            { type: "channel_msg", channel: "fz", payload: { kind: "plain", text: "x" }, reply_to: 2 ** 60 },
            { type: "channel_msg", id: "x".repeat(65), channel: "fz", payload: { kind: "plain", text: "x" } }
          ])
        )
      }
    case 13:
      return {
        name: "request id abuse",
        data: JSON.stringify({ ...base, id: rng.pick(["", 5, null, ["a"], "x".repeat(64)]) })
      }
    case 14:
      return {
        name: "1 MB string",
        data: JSON.stringify({ ...validish(rng, "join"), channel: "x".repeat(1_000_000) })
      }
    default:
      return {
        name: "100 000-deep nesting",
        data: rng.chance(0.5)
          ? `{"type":"ping","x":${deep(100_000)}}`
          : `{"type":"join","channel":${deepObject(100_000)},"token":null}`
      }
  }
}
