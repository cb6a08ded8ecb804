/**
 * The console's views. Every message body is rendered as a text node (never as HTML): hostile
 * bodies show literally.
 */
import type * as Frames from "@conclave/protocol/Frames"
import { Component } from "preact"
import { useEffect, useMemo, useRef, useState } from "preact/hooks"
import * as Keys from "./keys.js"
import { MessageList } from "./MessageList.js"
import {
  agentStreak,
  type ChannelState,
  ConsoleState,
  DEFAULT_LOOP_LIMIT,
  findMessage,
  type Message,
  parsePath,
  pathKey,
  type ThreadState,
  type WhisperMessage
} from "./state.js"
import { describe, Refused, type SessionPath } from "./wire.js"

type Boot =
  | { readonly tag: "loading" }
  | { readonly tag: "signed-out" }
  | { readonly tag: "failed"; readonly title: string; readonly detail: string }
  | {
    readonly tag: "running"
    readonly state: ConsoleState
    readonly identity: Keys.Identity
    readonly enrolling: boolean
  }

const enrollCode = (): string | undefined => {
  const match = /^#enroll=(.*)$/s.exec(location.hash)
  return match === null ? undefined : match[1]
}

const clearHash = () => history.replaceState(null, "", location.pathname + location.search)

const boot = async (): Promise<Boot> => {
  if (!("subtle" in crypto)) {
    return {
      tag: "failed",
      title: "This page needs a secure context",
      detail: "Open the console over https or on localhost."
    }
  }
  const code = enrollCode()
  if (code !== undefined) {
    if (!/^[A-Za-z0-9_-]{32}$/.test(code)) {
      clearHash()
      return {
        tag: "failed",
        title: "This enrollment link is malformed",
        detail: "Copy the whole link that `conclave console` printed, or run it again for a new one."
      }
    }
    const identity = await Keys.generate()
    return { tag: "running", state: new ConsoleState(identity, Keys.handle(), code), identity, enrolling: true }
  }
  const identity = await Keys.load()
  if (identity === undefined) return { tag: "signed-out" }
  return { tag: "running", state: new ConsoleState(identity, Keys.handle(), undefined), identity, enrolling: false }
}

const useConsole = (state: ConsoleState) => {
  const [, setVersion] = useState(0)
  useEffect(() => state.subscribe(() => setVersion((v) => v + 1)), [state])
}

export const App = () => {
  const [status, setStatus] = useState<Boot>({ tag: "loading" })
  useEffect(() => {
    boot().then(setStatus, (error: unknown) =>
      setStatus({
        tag: "failed",
        title: "The console could not start",
        detail: error instanceof Error ? error.message : String(error)
      }))
  }, [])
  switch (status.tag) {
    case "loading":
      return <Page title="conclave console" detail="Starting…" pending />
    case "signed-out":
      return (
        <Page
          title="Not signed in"
          detail="Run `conclave console` where your key lives, then open the link it prints in this browser."
        />
      )
    case "failed":
      return <Page title={status.title} detail={status.detail} />
    case "running":
      return <Running boot={status} onSignedOut={() => setStatus({ tag: "signed-out" })} />
  }
}

// `pending` marks the pages shown while something is still under way (starting, enrolling,
// connecting), so a reader (or a test) can tell them from a final answer
const Page = (props: { readonly title: string; readonly detail: string; readonly pending?: boolean }) => (
  <main class={props.pending === true ? "page page-pending" : "page"} role="main" aria-busy={props.pending === true}>
    <h1>{props.title}</h1>
    <p class="page-detail">{props.detail}</p>
  </main>
)

const Running = (
  props: { readonly boot: Extract<Boot, { tag: "running" }>; readonly onSignedOut: () => void }
) => {
  const { identity, state } = props.boot
  useConsole(state)
  const [enrolling, setEnrolling] = useState(props.boot.enrolling)
  useEffect(() => {
    state.start()
    return () => state.stop()
  }, [state])
  useEffect(() => {
    if (enrolling && state.status.tag === "open") {
      setEnrolling(false)
      clearHash()
      void Keys.save(identity)
    }
  })
  const status = state.status
  useEffect(() => {
    // the server no longer knows this key (the machine was removed elsewhere): forget it
    if (
      status.tag === "refused" && !enrolling && status.error.kind === "unauthorized" &&
      status.error.message === "unknown machine key"
    ) void Keys.forget()
  }, [status.tag])
  if (status.tag === "refused") {
    if (enrolling) clearHash()
    if (!enrolling && status.error.kind === "unauthorized" && status.error.message === "unknown machine key") {
      return (
        <Page
          title="This browser is no longer signed in"
          detail="Its machine was removed from the server. Run `conclave console` where your key lives for a new link."
        />
      )
    }
    return (
      <Page
        title={enrolling ? "This enrollment link cannot be used" : "The server refused this console"}
        detail={describe(status.error)}
      />
    )
  }
  if (status.tag !== "open" && state.me === undefined) {
    return <Page title="conclave console" detail={enrolling ? "Enrolling this browser…" : "Connecting…"} pending />
  }
  return (
    <Shell
      state={state}
      onSignOut={() => {
        void state.signOut(Keys.forget).catch(() => undefined).then(props.onSignedOut)
      }}
    />
  )
}

const Banner = (props: { readonly state: ConsoleState }) => {
  const status = props.state.status
  if (status.tag === "reconnecting") {
    return (
      <div class="banner banner-warn" role="status">
        Connection lost: reconnecting in {Math.ceil(status.inMs / 1000)} s (attempt {status.attempt})…
      </div>
    )
  }
  if (status.tag === "connecting" && status.attempt > 0) {
    return <div class="banner banner-warn" role="status">Reconnecting…</div>
  }
  if (props.state.notice !== undefined) {
    return (
      <div class="banner banner-error" role="alert">
        {props.state.notice}
        <button
          class="link"
          onClick={() => {
            props.state.notice = undefined
            props.state.changed()
          }}
        >
          dismiss
        </button>
      </div>
    )
  }
  return null
}

const Shell = (props: { readonly state: ConsoleState; readonly onSignOut: () => void }) => {
  const { state } = props
  const [menuOpen, setMenuOpen] = useState(false)
  const channels = [...state.channels.values()].sort((a, b) => a.name.localeCompare(b.name))
  const threads = [...state.threads.values()]
  const view = state.view
  const entries = useMemo(
    () => [
      ...channels.map((c) => ({ kind: "channel" as const, name: c.name })),
      ...threads.map((t) => ({ kind: "whisper" as const, key: t.key }))
    ],
    [channels, threads]
  )
  // The key handler reads the current list and view through a ref: an effect re-bound after the
  // render could leave a keypress that comes between them to the previous view.
  const current = useRef({ entries, view })
  current.current = { entries, view }
  useEffect(() => {
    // Alt+↑ / Alt+↓ move between channels and whisper threads.
    const onKey = (event: KeyboardEvent) => {
      if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return
      event.preventDefault()
      const { entries, view } = current.current
      const index = entries.findIndex((e) =>
        e.kind === view.kind &&
        (e.kind === "channel"
          ? view.kind === "channel" && view.name === e.name
          : view.kind === "whisper" && view.key === e.key)
      )
      const next = entries[(index + (event.key === "ArrowDown" ? 1 : entries.length - 1)) % entries.length]
      if (next !== undefined) state.select(next)
    }
    window.addEventListener("keydown", onKey)
    return () => window.removeEventListener("keydown", onKey)
  }, [])
  const me = state.me
  return (
    <div class={`shell ${menuOpen ? "menu-open" : ""}`}>
      <header class="topbar">
        <button class="menu-toggle" aria-label="channels" onClick={() => setMenuOpen(!menuOpen)}>☰</button>
        <span class="brand">conclave</span>
        <span class="me" title="this console's session">{me === undefined ? "" : pathKey(me)}</span>
        {state.admin ? <span class="badge badge-admin">admin</span> : null}
        <button class="signout" onClick={props.onSignOut}>Sign out</button>
      </header>
      <Banner state={state} />
      <Permissions state={state} />
      <nav class="sidebar" aria-label="channels and whispers">
        <h2>Channels</h2>
        <ul>
          {channels.map((c) => (
            <li key={c.name}>
              <button
                class={`nav-item ${view.kind === "channel" && view.name === c.name ? "active" : ""}`}
                aria-current={view.kind === "channel" && view.name === c.name ? "page" : undefined}
                onClick={() => {
                  setMenuOpen(false)
                  state.select({ kind: "channel", name: c.name })
                }}
              >
                <span class="nav-name">#{c.name}</span>
                {c.unread > 0 ? <span class="unread" aria-label={`${c.unread} unread`}>{c.unread}</span> : null}
              </button>
            </li>
          ))}
        </ul>
        {state.admin ? <CreateChannel state={state} /> : null}
        <h2>Whispers</h2>
        <ul>
          {threads.map((t) => (
            <li key={t.key}>
              <button
                class={`nav-item ${view.kind === "whisper" && view.key === t.key ? "active" : ""}`}
                onClick={() => {
                  setMenuOpen(false)
                  state.select({ kind: "whisper", key: t.key })
                }}
              >
                <span class="nav-name">{t.key}</span>
                {t.unread > 0 ? <span class="unread">{t.unread}</span> : null}
              </button>
            </li>
          ))}
        </ul>
        <NewWhisper state={state} />
      </nav>
      <main class="content" role="main">
        {view.kind === "channel" && state.channels.has(view.name)
          ? <ChannelView state={state} channel={state.channels.get(view.name)!} />
          : view.kind === "whisper" && state.threads.has(view.key)
          ? <WhisperView state={state} thread={state.threads.get(view.key)!} />
          : <p class="empty">No channel yet{state.admin ? ": create one on the left." : "."}</p>}
      </main>
    </div>
  )
}

/** Relayed permission requests of this user's sessions, each with Allow / Deny (SPEC §4.5.3). */
const Permissions = (props: { readonly state: ConsoleState }) => {
  const { state } = props
  if (state.permissions.length === 0) return null
  return (
    <section class="permissions" aria-label="permission requests">
      <h2>Permission requests</h2>
      <ul>
        {state.permissions.map((p) => (
          <li key={p.key} class="permission" data-request-id={p.requestId}>
            <div class="permission-text">
              <strong class="permission-tool">{p.toolName}</strong>
              <span class="permission-description">{p.description}</span>
              <span class="permission-from">from {pathKey(p.from)}</span>
            </div>
            <button
              class="allow"
              aria-label={`Allow ${p.toolName} for ${pathKey(p.from)}`}
              onClick={() => void state.answerPermission(p, "allow")}
            >
              Allow
            </button>
            <button
              class="deny"
              aria-label={`Deny ${p.toolName} for ${pathKey(p.from)}`}
              onClick={() => void state.answerPermission(p, "deny")}
            >
              Deny
            </button>
          </li>
        ))}
      </ul>
    </section>
  )
}

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

const errorText = (error: unknown) =>
  error instanceof Refused ? describe(error.error) : error instanceof Error ? error.message : String(error)

/**
 * A one-field form: `submit` takes the trimmed value and answers the problem to show, or a promise of
 * it; the field is cleared when there is none.
 */
const InlineForm = (props: {
  readonly label: string
  readonly placeholder: string
  readonly button: string
  readonly submit: (value: string) => string | undefined | Promise<string | undefined>
}) => {
  const [value, setValue] = useState("")
  const [problem, setProblem] = useState<string | undefined>(undefined)
  const settle = (problem: string | undefined) => {
    setProblem(problem)
    if (problem === undefined) setValue("")
  }
  return (
    <form
      class="inline-form"
      onSubmit={(event) => {
        event.preventDefault()
        if (value.trim().length === 0) return
        const outcome = props.submit(value.trim())
        if (outcome instanceof Promise) void outcome.then(settle)
        else settle(outcome)
      }}
    >
      <input
        aria-label={props.label}
        placeholder={props.placeholder}
        value={value}
        onInput={(e) => setValue(e.currentTarget.value)}
      />
      <button type="submit">{props.button}</button>
      {problem !== undefined ? <p class="form-error">{problem}</p> : null}
    </form>
  )
}

const CreateChannel = (props: { readonly state: ConsoleState }) => (
  <InlineForm
    label="new channel name"
    placeholder="new channel"
    button="Create"
    submit={(name) =>
      props.state.createChannel(name, "public").then(() => undefined, (error: unknown) => errorText(error))}
  />
)

const NewWhisper = (props: { readonly state: ConsoleState }) => (
  <InlineForm
    label="whisper to"
    placeholder="user/machine/session"
    button="Whisper"
    submit={(target) => {
      const path = parsePath(target)
      if (path === undefined) return "a whisper goes to a user/machine/session path"
      props.state.select({ kind: "whisper", key: props.state.thread(path).key })
      return undefined
    }}
  />
)

const time = (ts: number) => {
  const d = new Date(ts)
  return { short: d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }), full: d.toISOString() }
}

const OriginBadge = (props: { readonly origin: Frames.Origin }) => (
  <span class={`badge badge-${props.origin}`}>{props.origin}</span>
)

const seqOf = (m: Message) => m.seq
const whisperKey = (m: WhisperMessage) => m.key

const ChannelView = (props: { readonly state: ConsoleState; readonly channel: ChannelState }) => {
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

const excerpt = (text: string) => (text.length > 80 ? `${text.slice(0, 80)}…` : text)

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

const WhisperView = (props: { readonly state: ConsoleState; readonly thread: ThreadState }) => {
  const { state, thread } = props
  return (
    <section class="channel" aria-label={`whispers with ${thread.key}`}>
      <header class="channel-header">
        <h1>{thread.key}</h1>
        <span class="visibility">whispers</span>
      </header>
      <div class="channel-body">
        <MessageList
          key={thread.key}
          messages={thread.messages}
          keyOf={whisperKey}
          render={(m) => {
            const t = time(m.ts)
            return (
              <li class={`message origin-${m.origin} ${m.mine ? "mine" : ""}`} key={m.key}>
                <div class="meta">
                  <span class="from">{m.mine ? "you" : pathKey(m.from)}</span>
                  <OriginBadge origin={m.origin} />
                  <time dateTime={t.full} title={t.full}>{t.short}</time>
                </div>
                <div class="body">{m.text}</div>
              </li>
            )
          }}
        />
      </div>
      <Composer
        placeholder={`Whisper to ${thread.key}`}
        replyTo={undefined}
        onCancelReply={() => undefined}
        disabled={false}
        send={(text) => state.whisper(thread.peer, text)}
      />
    </section>
  )
}

const Composer = (props: {
  readonly placeholder: string
  readonly replyTo: Message | undefined
  readonly onCancelReply: () => void
  readonly disabled: boolean
  readonly send: (text: string, replyTo: Message | undefined) => Promise<void>
}) => {
  const [text, setText] = useState("")
  const [problem, setProblem] = useState<string | undefined>(undefined)
  const input = useRef<HTMLTextAreaElement>(null)
  useEffect(() => {
    if (props.replyTo !== undefined) input.current?.focus()
  }, [props.replyTo])
  const submit = () => {
    const body = text
    if (body.trim().length === 0) return
    props.send(body, props.replyTo).then(() => {
      setText("")
      setProblem(undefined)
    }, (error: unknown) => setProblem(errorText(error)))
  }
  return (
    <form
      class="composer"
      onSubmit={(event) => {
        event.preventDefault()
        submit()
      }}
    >
      {props.replyTo !== undefined
        ? (
          <div class="replying">
            Replying to #{props.replyTo.seq}: {excerpt(props.replyTo.text)}
            <button type="button" class="link" onClick={props.onCancelReply}>cancel</button>
          </div>
        )
        : null}
      {problem !== undefined ? <p class="form-error" role="alert">{problem}</p> : null}
      <div class="composer-row">
        <textarea
          ref={input}
          aria-label={props.placeholder}
          placeholder={props.placeholder}
          value={text}
          disabled={props.disabled}
          rows={2}
          onInput={(e) => setText(e.currentTarget.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.shiftKey) {
              e.preventDefault()
              submit()
            } else if (e.key === "Escape") {
              props.onCancelReply()
            }
          }}
        />
        <button type="submit" disabled={props.disabled}>Send</button>
      </div>
    </form>
  )
}

const AdminPanel = (props: { readonly state: ConsoleState; readonly channel: string }) => {
  const [target, setTarget] = useState("")
  const [result, setResult] = useState<string | undefined>(undefined)
  const run = (op: Frames.AdminOp, done: (reply: string) => string) =>
    props.state.admin_(op).then((reply) => {
      setResult(done(reply.type === "invite_token" ? reply.token : reply.type))
    }, (error: unknown) => setResult(errorText(error)))
  return (
    <details class="admin">
      <summary>Moderate #{props.channel}</summary>
      <div class="admin-row">
        <input
          aria-label="user or session path"
          placeholder="user or user/machine/session"
          value={target}
          onInput={(e) => setTarget(e.currentTarget.value)}
        />
        <button
          onClick={() => run({ kind: "kick", channel: props.channel, target: target.trim() }, () => `kicked ${target}`)}
        >
          Kick
        </button>
        <button
          onClick={() => run({ kind: "ban", channel: props.channel, user: target.trim() }, () => `banned ${target}`)}
        >
          Ban
        </button>
        <button
          onClick={() =>
            run({ kind: "unban", channel: props.channel, user: target.trim() }, () => `unbanned ${target}`)}
        >
          Unban
        </button>
        <button
          onClick={() =>
            run(
              { kind: "invite_create", channel: props.channel, uses: 1, expires_in_secs: 86_400 },
              (token) => `invite token (one use, 24 h): ${token}`
            )}
        >
          Invite
        </button>
      </div>
      {result !== undefined ? <p class="admin-result">{result}</p> : null}
    </details>
  )
}

export type { SessionPath }
