// The console's model of a channel's messages (issue 18): one run of consecutive seqs within a
// bound, reply counts of what is held, and the unread count of a channel opened on its newest page.
import { assert, describe, it } from "@effect/vitest"
import {
  agentStreak,
  type ChannelState,
  dropNewest,
  dropOldest,
  emptyChannel,
  findMessage,
  insert,
  MAX_MESSAGES,
  type Message,
  replaceAll,
  unreadOf
} from "../src/messages.js"

const me = { user: "aaron", machine: "browser-1", session: "console-abcdef" }
const other = { user: "bob", machine: "box", session: "agent" }

const message = (seq: number, extra: Partial<Message> = {}): Message => ({
  seq,
  from: other,
  fromKey: "bob/box/agent",
  ts: seq,
  text: `m${seq}`,
  encrypted: false,
  origin: "agent",
  replyTo: null,
  ...extra
})

const seqs = (channel: ChannelState) => channel.messages.map((m) => m.seq)
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => message(from + i))

describe("a channel's messages", () => {
  it("insert keeps seq order and skips a seq already held", () => {
    const channel = emptyChannel("ops", "public")
    for (const seq of [5, 7, 6, 1, 7]) insert(channel, message(seq))
    assert.deepStrictEqual(seqs(channel), [1, 5, 6, 7])
    assert.isFalse(insert(channel, message(6)))
    assert.strictEqual(findMessage(channel, 6)?.text, "m6")
    assert.isUndefined(findMessage(channel, 4))
  })

  it("reply counts are the replies held: they follow rows put in front and rows dropped", () => {
    const channel = emptyChannel("ops", "public")
    replaceAll(channel, [message(10, { replyTo: 3 }), message(11, { replyTo: 3 }), message(12, { replyTo: 10 })])
    assert.strictEqual(channel.replyCounts.get(3), 2)
    // an older page with the parent comes in front: the count stands, nothing counted twice
    for (const m of range(1, 9)) insert(channel, m)
    assert.strictEqual(channel.replyCounts.get(3), 2)
    assert.strictEqual(channel.replyCounts.get(10), 1)
    replaceAll(channel, [message(11, { replyTo: 3 })])
    assert.deepStrictEqual([...channel.replyCounts], [[3, 1]])
  })

  it("past the bound: the oldest go at the live end (older again), the newest while scrolling back (newer)", () => {
    const live = emptyChannel("ops", "public")
    replaceAll(live, range(1, MAX_MESSAGES))
    insert(live, message(MAX_MESSAGES + 1, { replyTo: 1 }))
    dropOldest(live)
    assert.strictEqual(live.messages.length, MAX_MESSAGES)
    assert.deepStrictEqual([seqs(live)[0], seqs(live).at(-1)], [2, MAX_MESSAGES + 1])
    assert.isTrue(live.older)
    assert.isFalse(live.newer)

    const back = emptyChannel("ops", "public")
    replaceAll(back, range(501, MAX_MESSAGES + 500))
    for (const m of range(1, 500)) insert(back, m)
    dropNewest(back)
    assert.strictEqual(back.messages.length, MAX_MESSAGES)
    assert.deepStrictEqual([seqs(back)[0], seqs(back).at(-1)], [1, MAX_MESSAGES])
    assert.isTrue(back.newer)
    // the loop guard cannot be judged without the live end
    assert.strictEqual(agentStreak(back), 0)
    assert.strictEqual(agentStreak(live), MAX_MESSAGES)
  })

  it("unread of a channel opened on its newest page: the page's after the last read, and the seqs before it", () => {
    const page = range(1001, 1500)
    const mine = (m: Message) => m.fromKey === `${me.user}/${me.machine}/${me.session}`
    // never read: every seq up to the newest
    assert.strictEqual(unreadOf(page, true, 0, mine), 1500)
    // read up to 1 200: only the page's after it
    assert.strictEqual(unreadOf(page, true, 1200, mine), 300)
    // read up to 700, before the page: the seqs between count too, without being read
    assert.strictEqual(unreadOf(page, true, 700, mine), 800)
    // the whole channel is in the page: nothing before it is counted
    assert.strictEqual(unreadOf(range(1, 10), false, 0, mine), 10)
    // own messages in the page are not unread
    const own = [...range(1, 3), message(4, { from: me, fromKey: "aaron/browser-1/console-abcdef" })]
    assert.strictEqual(unreadOf(own, false, 0, mine), 3)
    assert.strictEqual(unreadOf([], false, 5, mine), 0)
  })
})
