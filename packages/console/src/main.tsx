import { render } from "preact"
import { App } from "./App.js"
import "./style.css"

// A new enrollment link pasted into an open console tab changes only the fragment: start over.
window.addEventListener("hashchange", () => {
  if (location.hash.startsWith("#enroll=")) location.reload()
})

const root = document.getElementById("app")
if (root !== null) render(<App />, root)
