/**
 * The conversation tools (SPEC §4.7, §4.12, D-12, D-24): joining and leaving, discovery, history,
 * permissions, sending and whispering, `whoami` and `inbox`.
 *
 * @since 0.1.0
 */
import { Permission } from "@conclave/client"
import { Limits, Names } from "@conclave/protocol"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import * as Injection from "./Injection.js"
import * as LoopGuard from "./LoopGuard.js"
import { ToolError } from "./ToolError.js"
import { ackText, decode, type Handler, type Kit, request, resolveServer } from "./ToolKit.js"

const renderPolicyLine = (kit: Kit, defaultLevel: Permission.Level) =>
  `Default level: ${defaultLevel}; loop guard: ${
    kit.guard.limit === 0 ? "off" : `${kit.guard.limit} consecutive agent messages`
  }`

/** @since 0.1.0 @category handlers */
export const make = (kit: Kit): Readonly<Record<string, Handler>> => {
  const { guard, links, policy, watermarks } = kit

  const whoami = Effect.gen(function*() {
    const handle = yield* links.handle
    const current = yield* policy.current
    const lines = [
      `Handle: ${handle} (${kit.explicitHandle ? "explicit --as" : "defaulted from the working directory"})`,
      renderPolicyLine(kit, current.default_permission)
    ]
    for (const s of yield* links.all) {
      if (s.disabled !== undefined) {
        lines.push(`${s.url}: disabled (the same server as ${s.disabled})`)
        continue
      }
      // Before the first connect, the path this session will have (D-24).
      const path = s.path === undefined
        ? `${s.registration.username}/${s.registration.machine}/${handle} (not yet connected)`
        : Names.renderPath(s.path)
      lines.push(
        `${s.url}: ${path}; link ${s.generation === undefined ? "down" : "up"}; server admin: ${s.admin ? "yes" : "no"}`
      )
      if (s.generation === undefined && s.lastError !== undefined) lines.push(`  not connected: ${s.lastError}`)
      lines.push(`  whispers: ${Permission.resolve(current, s.url, Permission.whisper)}`)
      if (s.joined.length === 0) lines.push("  no joined channels")
      for (const c of s.joined) {
        const tripped = (yield* guard.isTripped(LoopGuard.channelKey(s.url, c))) ? " (loop guard tripped)" : ""
        lines.push(`  #${c}: ${Permission.resolve(current, s.url, Permission.channel(c))}${tripped}`)
      }
    }
    return lines.join("\n")
  })

  const resetGuards = (url: string, prefix: string, scopeOf: (key: string) => string) =>
    Effect.gen(function*() {
      const reset: Array<string> = []
      for (const key of yield* guard.tripped) {
        if (!key.startsWith(prefix)) continue
        if ((yield* guard.reset(key)) !== "reset") continue
        const scope = scopeOf(key)
        reset.push(scope)
        yield* kit.delivery.notice(Injection.Notices.loopReset(url, scope, "set_perm was called"))
      }
      return reset
    })

  return {
    join_channel: (raw) =>
      Effect.gen(function*() {
        const s = yield* resolveServer(kit, raw)
        const args = yield* decode("join_channel", raw)
        const reply = yield* request(
          kit,
          s,
          { type: "join", channel: args.channel, token: args.token ?? null },
          "joined"
        )
        yield* links.joined(s.url, reply.channel)
        if (args.perm !== undefined) yield* policy.setOverride(s.url, reply.channel, args.perm)
        return `joined ${reply.channel}`
      }),
    leave_channel: (raw) =>
      Effect.gen(function*() {
        const s = yield* resolveServer(kit, raw)
        const { channel } = yield* decode("leave_channel", raw)
        yield* links.left(s.url, channel)
        yield* kit.announce
        const reply = yield* request(kit, s, { type: "leave", channel }, "ack", "invite_token")
        return ackText(reply, `left ${channel}`)
      }),
    list_channels: (raw) =>
      Effect.gen(function*() {
        const s = yield* resolveServer(kit, raw)
        const reply = yield* request(kit, s, { type: "list_channels" }, "channel_list")
        if (reply.channels.length === 0) return "no channels visible"
        return reply.channels.map((c) => `${c.name} (${c.visibility}${c.member ? ", member" : ""})`).join("\n")
      }),
    who: (raw) =>
      Effect.gen(function*() {
        const s = yield* resolveServer(kit, raw)
        const { channel } = yield* decode("who", raw)
        const reply = yield* request(kit, s, { type: "who", channel: channel ?? null }, "presence")
        const scope = reply.channel === null ? "server-wide" : `#${reply.channel}`
        return reply.sessions.length === 0
          ? `${scope}: nobody online`
          : `${scope}: ${reply.sessions.map(Names.renderPath).join(", ")}`
      }),
    catch_up: (raw) =>
      Effect.gen(function*() {
        const s = yield* resolveServer(kit, raw)
        const { channel, since } = yield* decode("catch_up", raw)
        const key = LoopGuard.channelKey(s.url, channel)
        const gap = yield* watermarks.gapFrom(key)
        const usedGap = since === undefined && gap !== undefined
        const reply = yield* request(
          kit,
          s,
          since !== undefined
            ? {
              type: "read_since",
              channel,
              since_seq: null,
              since_ms: Math.max(-Limits.MAX_DATE_MS, (yield* Clock.currentTimeMillis) - since * 1000),
              before_seq: null
            }
            : {
              type: "read_since",
              channel,
              since_seq: gap ?? (yield* watermarks.lastSeen(key)) ?? 0,
              since_ms: null,
              before_seq: null
            },
          "history"
        )
        const newest = reply.messages.reduce((n, m) => Math.max(n, m.seq), -1)
        if (newest >= 0) yield* watermarks.raise(key, newest)
        if (usedGap) yield* watermarks.setGap(key, reply.more && newest >= 0 ? newest : undefined)
        return Injection.renderHistory(channel, reply.messages, reply.more)
      }),
    submit_permission: (raw) =>
      Effect.gen(function*() {
        const { decision, request_id } = yield* decode("submit_permission", raw)
        const behavior = decision ?? "deny"
        yield* kit.outbound.permissionVerdict(request_id, behavior)
        return `permission verdict \`${behavior}\` sent`
      }),
    set_perm: (raw) =>
      Effect.gen(function*() {
        const { channel, level, whisper } = yield* decode("set_perm", raw)
        const scoped = whisper === true || (channel !== undefined && channel.length > 0)
        if (!scoped) {
          yield* policy.setDefault(level)
          return "permission updated"
        }
        const s = yield* resolveServer(kit, raw)
        let reset: ReadonlyArray<string>
        if (whisper === true) {
          yield* policy.setOverride(s.url, null, level)
          const prefix = LoopGuard.peerKey(s.url, "")
          reset = yield* resetGuards(s.url, prefix, (key) => `whispers with ${key.slice(prefix.length)}`)
        } else {
          yield* policy.setOverride(s.url, channel!, level)
          const wasTripped = (yield* guard.reset(LoopGuard.channelKey(s.url, channel!))) === "reset"
          if (wasTripped) {
            yield* kit.delivery.notice(Injection.Notices.loopReset(s.url, `#${channel}`, "set_perm was called"))
          }
          reset = wasTripped ? [`#${channel}`] : []
        }
        return reset.length === 0
          ? "permission updated"
          : `permission updated; the loop guard for ${reset.join(", ")} was reset`
      }),
    send_channel: (raw) =>
      Effect.gen(function*() {
        const s = yield* resolveServer(kit, raw)
        const { channel, reply_to, text } = yield* decode("send_channel", raw)
        const mayEmit = Permission.mayEmit(yield* policy.level(s.url, Permission.channel(channel)))
        if (!mayEmit && !s.joined.includes(channel)) {
          // A channel not joined reads as the default level: "not joined" is the fix (issue 23, item 7).
          return yield* new ToolError({
            text: `not joined: this session has not joined #${channel} on \`${s.url}\` (so permission denied: ` +
              `\`${channel}\` on \`${s.url}\` is below \`converse\`); call join_channel ` +
              `{"channel": "${channel}", "perm": "converse"} first`
          })
        }
        if (!mayEmit) {
          return yield* new ToolError({
            text: `permission denied: \`${channel}\` on \`${s.url}\` is below \`converse\``
          })
        }
        const key = LoopGuard.channelKey(s.url, channel)
        if (yield* guard.isTripped(key)) {
          return yield* new ToolError({
            text: `loop guard: #${channel} on \`${s.url}\` has had ${yield* guard.count(key)} consecutive agent ` +
              `messages with no human message, so sending there is paused to stop an agent-to-agent loop. It resets ` +
              `when a human posts in #${channel}, or when set_perm is called for #${channel}.`
          })
        }
        yield* request(kit, s, {
          type: "channel_msg",
          channel,
          payload: { kind: "plain", text },
          reply_to: reply_to ?? null
        }, "ack")
        if ((yield* guard.agent(key)) === "tripped") {
          yield* kit.delivery.notice(Injection.Notices.loopTripped(s.url, `#${channel}`, guard.limit))
          return `sent to ${channel} (loop guard tripped: ${guard.limit} consecutive agent messages in #${channel}; ` +
            `further sends are refused until a human posts there or set_perm is called for it)`
        }
        return `sent to ${channel}`
      }),
    whisper: (raw) =>
      Effect.gen(function*() {
        const s = yield* resolveServer(kit, raw)
        const { target: path, text } = yield* decode("whisper", raw)
        const target = String(raw["target"])
        if (!Permission.mayEmit(yield* policy.level(s.url, Permission.whisper))) {
          return yield* new ToolError({ text: `permission denied: whispers on \`${s.url}\` are below \`converse\`` })
        }
        // Keyed by the canonical path text, as inbound whispers are (`from` rendered).
        const key = LoopGuard.peerKey(s.url, Names.renderPath(path))
        if (yield* guard.isTripped(key)) {
          return yield* new ToolError({
            text: `loop guard: ${yield* guard.count(key)} consecutive agent whispers with ${target} and no human ` +
              `one, so whispering to it is paused. It resets when a human whispers from ${target}, or when ` +
              `set_perm is called for whispers.`
          })
        }
        yield* request(kit, s, { type: "whisper", target: path, payload: { kind: "plain", text } }, "ack")
        if ((yield* guard.agent(key)) === "tripped") {
          yield* kit.delivery.notice(Injection.Notices.loopTripped(s.url, `whispers with ${target}`, guard.limit))
          return `whisper sent (loop guard tripped: ${guard.limit} consecutive agent whispers with ${target})`
        }
        return "whisper sent"
      }),
    whoami: () => whoami,
    inbox: () => kit.inbox.drain
  }
}
