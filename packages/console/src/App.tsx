/**
 * The console's views. Every message body is rendered as a text node (never as HTML): hostile
 * bodies show literally. This file boots the console (enrollment, the stored key) and shows the
 * signed-in `Shell` or a page that says why not.
 */
import { useEffect, useState } from "preact/hooks"
import * as Keys from "./keys.js"
import { Shell } from "./Shell.js"
import { ConsoleState } from "./state.js"
import { describe, type SessionPath } from "./wire.js"

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

export type { SessionPath }
