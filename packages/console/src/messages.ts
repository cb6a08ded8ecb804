/**
 * A channel's messages as the console holds them: one run of consecutive seqs, in seq order, at
 * most `MAX_MESSAGES` long (the heap stays bounded). The run is the newest page at first; scrolling
 * back prepends older pages (`older` says the server has more), and live deliveries append. When
 * the run outgrows the bound, the end away from the reader is dropped: the oldest rows while the
 * reader follows the live end, the newest while they scroll back — then `newer` says so, live
 * deliveries are only counted, and returning to the live end reads the newest page again.
 */
import type * as Frames from "@conclave/protocol/Frames"
import type { SessionPath } from "./wire.js"

/** Messages held per channel or whisper thread: past it, the end away from the reader is dropped. */
export const MAX_MESSAGES = 5000

/** A `before_seq` above any channel's newest seq: it reads the newest page. */
export const NEWEST = Number.MAX_SAFE_INTEGER

export interface Message {
  readonly seq: number
  readonly from: SessionPath
  readonly fromKey: string
  /** Milliseconds since the epoch: the server's for history, arrival time for live deliveries. */
  readonly ts: number
  /** The body as text; an encrypted payload is shown as a placeholder. */
  readonly text: string
  readonly encrypted: boolean
  readonly origin: Frames.Origin
  readonly replyTo: number | null
}

export interface ChannelState {
  readonly name: string
  visibility: Frames.Visibility
  joined: boolean
  messages: Array<Message>
  /** Replies per message seq among the messages held (threads). */
  replyCounts: Map<number, number>
  /** The highest seq seen: reconnection reads from here (gap fill). */
  lastSeq: number
  unread: number
  presence: ReadonlyArray<SessionPath>
  loaded: boolean
  problem: string | undefined
  /** The server has messages older than the first one held. */
  older: boolean
  /** Messages newer than the last one held were dropped while scrolling back (or never read). */
  newer: boolean
  /** A page of older messages is on its way. */
  loadingOlder: boolean
  /** The newest page is on its way (back to the live end). */
  loadingNewest: boolean
}

export const pathKey = (p: SessionPath): string => `${p.user}/${p.machine}/${p.session}`

export const emptyChannel = (name: string, visibility: Frames.Visibility): ChannelState => ({
  name,
  visibility,
  joined: false,
  messages: [],
  replyCounts: new Map(),
  lastSeq: 0,
  unread: 0,
  presence: [],
  loaded: false,
  problem: undefined,
  older: false,
  newer: false,
  loadingOlder: false,
  loadingNewest: false
})

const bodyOf = (payload: Frames.Payload): { text: string; encrypted: boolean } =>
  payload.kind === "plain"
    ? { text: payload.text, encrypted: false }
    : { text: "[encrypted message]", encrypted: true }

/** The text of a payload as shown (an encrypted one as a placeholder). */
export const textOf = (payload: Frames.Payload): string => bodyOf(payload).text

export const fromHistory = (m: Frames.HistoryMessage): Message => ({
  seq: m.seq,
  from: m.from,
  fromKey: pathKey(m.from),
  ts: m.ts_ms,
  ...bodyOf(m.payload),
  origin: m.origin,
  replyTo: m.reply_to
})

export const fromDelivery = (m: Frames.ServerFrameOf<"channel_msg">, now: number): Message => ({
  seq: m.seq,
  from: m.from,
  fromKey: pathKey(m.from),
  ts: now,
  ...bodyOf(m.payload),
  origin: m.origin,
  replyTo: m.reply_to
})

/** The index of the first message with a seq at least `seq` (binary search: messages are in seq order). */
export const lowerBound = <M>(messages: ReadonlyArray<M>, seq: number, key: (m: M) => number): number => {
  let lo = 0
  let hi = messages.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (key(messages[mid]!) < seq) lo = mid + 1
    else hi = mid
  }
  return lo
}

const seqOf = (m: Message) => m.seq

/** The message with this seq, if held. */
export const findMessage = (channel: ChannelState, seq: number): Message | undefined => {
  const found = channel.messages[lowerBound(channel.messages, seq, seqOf)]
  return found !== undefined && found.seq === seq ? found : undefined
}

const countReply = (channel: ChannelState, message: Message, delta: 1 | -1): void => {
  if (message.replyTo === null) return
  const n = (channel.replyCounts.get(message.replyTo) ?? 0) + delta
  if (n > 0) channel.replyCounts.set(message.replyTo, n)
  else channel.replyCounts.delete(message.replyTo)
}

/** Insert in seq order; false when a message with that seq is already held. */
export const insert = (channel: ChannelState, message: Message): boolean => {
  const messages = channel.messages
  const last = messages[messages.length - 1]
  if (last === undefined || last.seq < message.seq) {
    messages.push(message)
  } else {
    const at = lowerBound(messages, message.seq, seqOf)
    if (messages[at]?.seq === message.seq) return false
    messages.splice(at, 0, message)
  }
  countReply(channel, message, 1)
  return true
}

/** Hold exactly these messages (a fresh run, e.g. the newest page). */
export const replaceAll = (channel: ChannelState, messages: ReadonlyArray<Message>): void => {
  channel.messages = []
  channel.replyCounts = new Map()
  for (const m of messages) insert(channel, m)
}

/** Past the bound, drop the oldest rows (the reader is at the live end): they can be read again. */
export const dropOldest = (channel: ChannelState): void => {
  const excess = channel.messages.length - MAX_MESSAGES
  if (excess <= 0) return
  for (const dropped of channel.messages.splice(0, excess)) countReply(channel, dropped, -1)
  channel.older = true
}

/** Past the bound, drop the newest rows (the reader is scrolling back): the live end is left. */
export const dropNewest = (channel: ChannelState): void => {
  const excess = channel.messages.length - MAX_MESSAGES
  if (excess <= 0) return
  for (const dropped of channel.messages.splice(MAX_MESSAGES, excess)) countReply(channel, dropped, -1)
  channel.newer = true
}

/**
 * Unread messages of a channel whose newest page was just read, for a reader who last read
 * `lastRead`: the page's messages after it that are not `mine`, and — when older ones remain — every
 * seq between `lastRead` and the page's first message, counted without being read (seqs are
 * consecutive per channel, D-42).
 */
export const unreadOf = (
  page: ReadonlyArray<Message>,
  more: boolean,
  lastRead: number,
  mine: (m: Message) => boolean
): number => {
  let unread = 0
  for (const m of page) if (m.seq > lastRead && !mine(m)) unread++
  const first = page[0]
  if (more && first !== undefined && first.seq - 1 > lastRead) unread += first.seq - 1 - lastRead
  return unread
}

/** D-12's default loop limit: bridges stop acting on a channel after this many agent messages in a row. */
export const DEFAULT_LOOP_LIMIT = 20

/**
 * Consecutive agent-origin messages at the end of the channel since the last human-origin one
 * (D-12's rule, computed from the messages the console holds; 0 while the live end is not held).
 */
export const agentStreak = (channel: ChannelState): number => {
  if (channel.newer) return 0
  const messages = channel.messages
  let n = 0
  for (let i = messages.length - 1; i >= 0 && messages[i]!.origin === "agent"; i--) n++
  return n
}
