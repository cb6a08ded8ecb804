/**
 * A virtualized message list: only a window of the rows is rendered (`WINDOW` at the live end, at
 * most `MAX_RENDERED` while scrolling), kept by the key of its first row so that rows put in front
 * (older pages) or dropped do not move what the reader sees. Scrolling to the top — or PageUp/Home
 * there — shows earlier rows, then asks for an older page; scrolling to the bottom — or
 * PageDown/End there — shows later rows, then returns to the live end.
 */
import { Fragment } from "preact"
import { useLayoutEffect, useRef, useState } from "preact/hooks"
import { lowerBound } from "./messages.js"

/** Rows rendered at the live end; each step of scrolling shows this many more. */
export const WINDOW = 150
/** Rows rendered at most: a step past it drops rows at the other end. */
export const MAX_RENDERED = 450

/** Rows beyond what is held: `more` when the server has them, `load` asks for them. */
export interface Beyond {
  readonly more: boolean
  readonly loading: boolean
  readonly load: () => void
}

/** `from` undefined: the window follows the live end. Else it starts at the row with that key. */
interface Window {
  readonly from: number | undefined
  readonly count: number
}

const NEAR_PX = 40

export const MessageList = <M extends object>(props: {
  readonly messages: ReadonlyArray<M>
  readonly keyOf: (m: M) => number
  readonly render: (m: M) => preact.JSX.Element
  readonly older?: Beyond | undefined
  readonly newer?: Beyond | undefined
}) => {
  const { keyOf, messages } = props
  const list = useRef<HTMLOListElement>(null)
  const [win, setWin] = useState<Window>({ from: undefined, count: WINDOW })
  // the row that stays put across a change of the window: its key and its offset from the top
  const anchor = useRef<{ readonly key: number; readonly offset: number } | undefined>(undefined)
  // the reader reached the top while an older page was on its way: show it once it is held
  const wantOlder = useRef(false)

  const n = messages.length
  let start: number
  let end: number
  if (win.from === undefined) {
    end = n
    start = Math.max(0, n - win.count)
  } else {
    start = lowerBound(messages, win.from, keyOf)
    end = Math.min(n, start + win.count)
  }
  const older = props.older
  const newer = props.newer
  const olderNote = start > 0 || older?.more === true
  const newerNote = end < n || newer?.more === true

  const rowAt = (el: HTMLOListElement, index: number): Element | undefined =>
    el.children[index - start + (olderNote ? 1 : 0)]

  /** Keep the first row in view where it is through the next change of the window. */
  const hold = (el: HTMLOListElement) => {
    const top = el.getBoundingClientRect().top
    for (let i = start; i < end; i++) {
      const box = rowAt(el, i)?.getBoundingClientRect()
      if (box !== undefined && box.bottom > top) {
        anchor.current = { key: keyOf(messages[i]!), offset: box.top - top }
        return
      }
    }
  }

  const showEarlier = (el: HTMLOListElement) => {
    if (start > 0) {
      const from = Math.max(0, start - WINDOW)
      hold(el)
      setWin({ from: keyOf(messages[from]!), count: Math.min(MAX_RENDERED, end - from) })
    } else if (older?.more === true) {
      // the rows put in front must not move the window: it stops following the live end
      if (win.from === undefined && messages[0] !== undefined) setWin({ from: keyOf(messages[0]), count: end })
      wantOlder.current = true
      if (!older.loading) older.load()
    }
  }

  const showLater = (el: HTMLOListElement) => {
    if (end < n) {
      const to = Math.min(n, end + WINDOW)
      const from = Math.max(start, to - MAX_RENDERED)
      hold(el)
      setWin({ from: keyOf(messages[from]!), count: to - from })
    } else if (newer?.more === true) {
      // back to the live end: the newest page replaces what is held, and the window follows it
      if (win.from !== undefined) setWin({ from: undefined, count: WINDOW })
      if (!newer.loading) newer.load()
    } else if (win.from !== undefined) {
      setWin({ from: undefined, count: WINDOW })
    }
  }

  useLayoutEffect(() => {
    const el = list.current
    if (el === null) return
    const held = anchor.current
    anchor.current = undefined
    if (win.from === undefined) {
      el.scrollTop = el.scrollHeight
    } else if (held !== undefined) {
      const index = lowerBound(messages, held.key, keyOf)
      const row = index >= start && index < end ? rowAt(el, index) : undefined
      if (row !== undefined) {
        el.scrollTop += row.getBoundingClientRect().top - el.getBoundingClientRect().top - held.offset
      }
    }
    if (wantOlder.current && start > 0) {
      wantOlder.current = false
      showEarlier(el)
    } else if (
      el.clientHeight > 0 && el.scrollHeight <= el.clientHeight && (start > 0 || older?.more === true) &&
      older?.loading !== true
    ) {
      // nothing to scroll: the reader cannot ask for more by scrolling
      showEarlier(el)
    }
  })

  const atTop = (el: HTMLOListElement) => el.scrollTop <= 1
  const atBottom = (el: HTMLOListElement) => el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_PX

  return (
    <ol
      class="messages"
      ref={list}
      aria-live="polite"
      tabIndex={0}
      onScroll={(event) => {
        const el = event.currentTarget
        if (atTop(el)) {
          showEarlier(el)
        } else if (atBottom(el)) {
          showLater(el)
        } else if (win.from === undefined) {
          // the reader left the live end: the window stays where they are
          setWin({ from: messages[start] === undefined ? undefined : keyOf(messages[start]!), count: end - start })
        }
      }}
      onKeyDown={(event) => {
        const el = event.currentTarget
        if ((event.key === "PageUp" || event.key === "Home") && atTop(el)) showEarlier(el)
        else if ((event.key === "PageDown" || event.key === "End") && atBottom(el)) showLater(el)
      }}
    >
      {olderNote
        ? (
          <li class="older">
            {start > 0
              ? `${start} earlier messages: scroll up to show them`
              : older?.loading === true
              ? "loading earlier messages…"
              : "earlier messages: scroll up to load them"}
          </li>
        )
        : null}
      {messages.slice(start, end).map((m) => <Fragment key={keyOf(m)}>{props.render(m)}</Fragment>)}
      {newerNote
        ? (
          <li class="newer">
            {newer?.loading === true ? "loading newer messages…" : "newer messages: scroll down to show them"}
          </li>
        )
        : null}
    </ol>
  )
}
