/**
 * Reading a channel's history (issue 18): the newest page when a channel is first joined, the gap
 * by seq after a reconnection, older pages as the reader scrolls back (`read_since` with
 * `before_seq`), the newest page again on the way back to the live end; and where live messages
 * go. What is held stays one run of consecutive seqs within the bound (`messages.ts`).
 */
import type * as Frames from "@conclave/protocol/Frames"
import {
  type ChannelState,
  dropNewest,
  dropOldest,
  fromHistory,
  insert,
  type Message,
  NEWEST,
  replaceAll,
  unreadOf
} from "./messages.js"
import type { Reply } from "./wire.js"

type Outgoing = { readonly type: Frames.Request["type"] } & Record<string, unknown>

/** What history reading needs from the console's state. */
export interface HistoryHost {
  readonly request: (frame: Outgoing) => Promise<Reply>
  /** The channel is open and the page visible (messages there are read as they come). */
  readonly isViewing: (channel: string) => boolean
  readonly isMine: (message: Message) => boolean
  /** The last seq read in this browser. */
  readonly lastRead: (channel: string) => number
  readonly markRead: (channel: ChannelState) => void
  readonly fail: (what: string, error: unknown) => void
  readonly changed: () => void
}

export class ChannelHistory {
  constructor(private readonly host: HistoryHost) {}

  private page(channel: string, from: { readonly since_seq: number } | { readonly before_seq: number }) {
    return this.host.request({ type: "read_since", channel, ...from }).then((reply) =>
      reply.type === "history" ? reply : undefined
    )
  }

  /** Hold the newest page of `channel` (a fresh run); false when the reply was not a page. */
  private async newest(channel: ChannelState): Promise<boolean> {
    const page = await this.page(channel.name, { before_seq: NEWEST })
    if (page === undefined) return false
    const messages = page.messages.map(fromHistory)
    // deliveries that came in while the page was on its way may be newer than its last row: kept
    const last = messages[messages.length - 1]?.seq ?? 0
    const later = channel.newer ? [] : channel.messages.filter((m) => m.seq > last)
    replaceAll(channel, [...messages, ...later])
    channel.older = page.more
    channel.newer = false
    channel.lastSeq = Math.max(channel.lastSeq, last)
    return true
  }

  /**
   * After a join: the first time only the newest page (older pages are read as the reader scrolls
   * back), with the unread count of the messages since the last one read; after a reconnection,
   * the gap filled by seq from the last one held; scrolled back with the live end dropped, nothing
   * (returning to it reads the newest page).
   */
  async fill(channel: ChannelState): Promise<void> {
    if (!channel.loaded) {
      const lastRead = this.host.lastRead(channel.name)
      if (!(await this.newest(channel))) return
      if (!this.host.isViewing(channel.name)) {
        channel.unread = unreadOf(channel.messages, channel.older, lastRead, this.host.isMine)
      }
      channel.loaded = true
    } else if (!channel.newer) {
      await this.fillForward(channel)
    }
    if (this.host.isViewing(channel.name)) this.host.markRead(channel)
  }

  /** Read forward by seq from the last message held to the live end (gap fill). */
  private async fillForward(channel: ChannelState): Promise<void> {
    for (;;) {
      const from = channel.messages[channel.messages.length - 1]?.seq ?? channel.lastSeq
      const page = await this.page(channel.name, { since_seq: from })
      if (page === undefined) return
      for (const m of page.messages) this.append(channel, fromHistory(m))
      if (!page.more || page.messages.length === 0) return
    }
  }

  /**
   * Scroll-back: read the page before the first message held and put it in front. Past the bound,
   * the newest rows are dropped (the live end is then read again on the way back).
   */
  async loadOlder(channel: ChannelState): Promise<void> {
    if (!channel.older || channel.loadingOlder || !channel.joined) return
    const first = channel.messages[0]
    channel.loadingOlder = true
    this.host.changed()
    try {
      const page = await this.page(channel.name, { before_seq: first?.seq ?? NEWEST })
      // a page that no longer joins what is held (the run was replaced meanwhile) is dropped
      if (page === undefined || channel.messages[0] !== first) return
      for (const m of page.messages) insert(channel, fromHistory(m))
      channel.older = page.more
      dropNewest(channel)
    } catch (error) {
      this.host.fail("could not load older messages", error)
    } finally {
      channel.loadingOlder = false
      this.host.changed()
    }
  }

  /** Back to the live end after scrolling back past the bound: the newest page again, then the gap. */
  async loadNewest(channel: ChannelState): Promise<void> {
    if (!channel.newer || channel.loadingNewest || !channel.joined) return
    channel.loadingNewest = true
    this.host.changed()
    try {
      if (!(await this.newest(channel))) return
      // deliveries while the page was on its way were only counted: read them
      await this.fillForward(channel)
      if (this.host.isViewing(channel.name)) this.host.markRead(channel)
    } catch (error) {
      this.host.fail("could not load the newest messages", error)
    } finally {
      channel.loadingNewest = false
      this.host.changed()
    }
  }

  /**
   * A message at the live end (a delivery, a gap-fill row, an own post), inserted in seq order (one
   * already held is skipped); past the bound the oldest rows go. While the live end is not held
   * (scrolled back past the bound), it is only counted.
   */
  append(channel: ChannelState, message: Message): void {
    if (channel.newer) {
      if (message.seq <= channel.lastSeq) return
    } else {
      if (!insert(channel, message)) return
      dropOldest(channel)
    }
    channel.lastSeq = Math.max(channel.lastSeq, message.seq)
    if (!this.host.isMine(message) && !this.host.isViewing(channel.name)) channel.unread++
  }
}
