/**
 * A channel: its header, the loop-guard banner, the virtualized message list with threads and
 * scroll-back, who is online, the composer and (for admins) moderation. Bodies are text nodes.
 */
import { Component } from "preact"
import { useEffect, useMemo, useState } from "preact/hooks"
import { AdminPanel } from "./AdminPanel.js"
import { excerpt, OriginBadge, time } from "./common.js"
import { Composer } from "./forms.js"
import { MessageList } from "./MessageList.js"
import {
  agentStreak,
  type ChannelState,
  type ConsoleState,
  DEFAULT_LOOP_LIMIT,
  findMessage,
  type Message,
  pathKey
} from "./state.js"

/** D-12's loop guard, computed from the channel's messages: a banner once bridges have stopped acting. */
const LoopBanner = (props: { readonly channel: ChannelState }) => {
  const streak = agentStreak(props.channel)
  if (streak < DEFAULT_LOOP_LIMIT) return null
  return (
    <div class="banner banner-warn loop-banner" role="status">
      Agents have posted {streak}{" "}
      messages in a row without a human; bridges with the default loop limit have stopped acting on this channel — a
      human message resets it.
    </div>
  )
}

const seqOf = (m: Message) => m.seq

export const ChannelView = (props: { readonly state: ConsoleState; readonly channel: ChannelState }) => {
  const { channel, state } = props
  const [replyTo, setReplyTo] = useState<Message | undefined>(undefined)
  const [thread, setThread] = useState<number | undefined>(undefined)
  useEffect(() => {
    setReplyTo(undefined)
    setThread(undefined)
  }, [channel.name])
  // stable across renders, so that unchanged rows are not rendered again
  const actions = useMemo(() => ({
    reply: (m: Message) => setReplyTo(m),
    thread: (m: Message) => setThread(m.replyTo ?? m.seq)
  }), [])
  const shown = thread === undefined
    ? channel.messages
    : channel.messages.filter((m) => m.seq === thread || m.replyTo === thread)
  return (
    <section class="channel" aria-label={`#${channel.name}`}>
      <header class="channel-header">
        <h1>#{channel.name}</h1>
        <span class="visibility">{channel.visibility}</span>
        {thread !== undefined
          ? <button class="link" onClick={() => setThread(undefined)}>← back to #{channel.name}</button>
          : null}
      </header>
      {channel.problem !== undefined ? <div class="banner banner-error" role="alert">{channel.problem}</div> : null}
      <LoopBanner channel={channel} />
      <div class="channel-body">
        <MessageList
          key={`${channel.name}:${thread ?? ""}`}
          messages={shown}
          keyOf={seqOf}
          older={thread === undefined
            ? { more: channel.older, loading: channel.loadingOlder, load: () => void state.loadOlder(channel.name) }
            : undefined}
          newer={thread === undefined
            ? { more: channel.newer, loading: channel.loadingNewest, load: () => void state.loadNewest(channel.name) }
            : undefined}
          render={(m) => (
            <MessageRow
              message={m}
              parent={m.replyTo === null ? undefined : findMessage(channel, m.replyTo)}
              replies={channel.replyCounts.get(m.seq) ?? 0}
              actions={actions}
            />
          )}
        />
        <Presence state={state} channel={channel} />
      </div>
      <Composer
        placeholder={`Message #${channel.name}`}
        replyTo={replyTo ?? (thread === undefined ? undefined : findMessage(channel, thread))}
        onCancelReply={() => setReplyTo(undefined)}
        disabled={!channel.joined}
        send={(text, reply) => state.post(channel.name, text, reply?.seq ?? null).then(() => setReplyTo(undefined))}
      />
      {state.admin ? <AdminPanel state={state} channel={channel.name} /> : null}
    </section>
  )
}

interface RowActions {
  readonly reply: (m: Message) => void
  readonly thread: (m: Message) => void
}

interface RowProps {
  readonly message: Message
  readonly parent: Message | undefined
  readonly replies: number
  readonly actions: RowActions
}

/** A message row; rendered again only when its message, its parent or its reply count changes. */
class MessageRow extends Component<RowProps> {
  override shouldComponentUpdate(next: RowProps): boolean {
    const now = this.props
    return next.message !== now.message || next.parent !== now.parent || next.replies !== now.replies ||
      next.actions !== now.actions
  }

  override render() {
    const { actions, message: m, parent, replies } = this.props
    const t = time(m.ts)
    return (
      <li class={`message origin-${m.origin}`} data-seq={m.seq}>
        <div class="meta">
          <span class="from">{m.fromKey}</span>
          <OriginBadge origin={m.origin} />
          <time dateTime={t.full} title={t.full}>{t.short}</time>
          <span class="seq">#{m.seq}</span>
        </div>
        {m.replyTo !== null
          ? (
            <button class="quote" onClick={() => actions.thread(m)}>
              ↪ reply to #{m.replyTo}
              {parent !== undefined ? `: ${excerpt(parent.text)}` : ""}
            </button>
          )
          : null}
        <div class={`body ${m.encrypted ? "encrypted" : ""}`}>{m.text}</div>
        <div class="actions">
          <button class="link" onClick={() => actions.reply(m)}>reply</button>
          {replies > 0
            ? (
              <button class="link" onClick={() => actions.thread(m)}>
                {replies} {replies === 1 ? "reply" : "replies"}
              </button>
            )
            : null}
        </div>
      </li>
    )
  }
}

const Presence = (props: { readonly state: ConsoleState; readonly channel: ChannelState }) => (
  <aside class="presence" aria-label="online in this channel">
    <h2>Online ({props.channel.presence.length})</h2>
    <ul>
      {props.channel.presence.map((p) => (
        <li key={pathKey(p)}>
          <button
            class="link"
            title="whisper to this session"
            onClick={() => props.state.select({ kind: "whisper", key: props.state.thread(p).key })}
          >
            {pathKey(p)}
          </button>
        </li>
      ))}
    </ul>
  </aside>
)
