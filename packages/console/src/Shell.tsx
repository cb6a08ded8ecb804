/**
 * The signed-in console: top bar, banners, relayed permission requests, the channel and whisper
 * list (Alt+↑ / Alt+↓ move through it) and the open view.
 */
import { useEffect, useMemo, useRef, useState } from "preact/hooks"
import { ChannelView } from "./ChannelView.js"
import { CreateChannel, NewWhisper } from "./forms.js"
import { type ConsoleState, pathKey } from "./state.js"
import { WhisperView } from "./WhisperView.js"

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

export const Shell = (props: { readonly state: ConsoleState; readonly onSignOut: () => void }) => {
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
