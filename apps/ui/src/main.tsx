/**
 * The dashboard's entry: navigation between the pages (by the URL's hash, so `/ui` is one file and
 * a reload keeps the page), the login prompt shown whenever the server refuses the token, and the
 * "connection lost" banner while the server cannot be reached.
 */
import "uplot/dist/uPlot.min.css"
import "./style.css"
import { render } from "preact"
import { useEffect, useState } from "preact/hooks"
import { authenticate, call } from "./Api.js"
import * as Connection from "./Connection.js"
import { Cursors } from "./pages/Cursors.js"
import { Overview } from "./pages/Overview.js"
import { Ports } from "./pages/Ports.js"
import { Queue } from "./pages/Queue.js"
import { Workers } from "./pages/Workers.js"
import { ConfirmDialog, clearNotice, NoticeLine } from "./Ui.js"

type Route =
  | { readonly page: "overview" }
  | { readonly page: "queue"; readonly name: string }
  | { readonly page: "workers" }
  | { readonly page: "ports" }
  | { readonly page: "cursors" }

/** The page a hash names; the overview for anything else. */
export const routeOf = (hash: string): Route => {
  const parts = hash.replace(/^#\/?/, "").split("/")
  switch (parts[0]) {
    case "queues":
      return parts[1] === undefined || parts[1] === ""
        ? { page: "overview" }
        : { page: "queue", name: decodeURIComponent(parts[1]) }
    case "workers":
      return { page: "workers" }
    case "ports":
      return { page: "ports" }
    case "cursors":
      return { page: "cursors" }
    default:
      return { page: "overview" }
  }
}

const links: ReadonlyArray<readonly [Route["page"], string, string]> = [
  ["overview", "#/", "Overview"],
  ["workers", "#/workers", "Workers"],
  ["ports", "#/ports", "Ports"],
  ["cursors", "#/cursors", "Cursors"]
]

const Page = ({ route }: { readonly route: Route }) => {
  switch (route.page) {
    case "queue":
      return <Queue key={route.name} name={route.name} />
    case "workers":
      return <Workers />
    case "ports":
      return <Ports />
    case "cursors":
      return <Cursors />
    default:
      return <Overview />
  }
}

/** Asks for the server's token (KEEL_TOKEN); checks it with one request before showing the pages. */
const Login = ({ refused }: { readonly refused: boolean }) => {
  const [token, setToken] = useState("")
  const [checking, setChecking] = useState(false)
  const [message, setMessage] = useState<string | undefined>(
    refused && Connection.token() !== null ? "The token was refused." : undefined
  )
  return (
    <main class="login">
      <form
        aria-labelledby="login-title"
        onSubmit={async (event) => {
          event.preventDefault()
          setChecking(true)
          authenticate(token.trim())
          const outcome = await call((client) => client.dashboard.overview())
          setChecking(false)
          if (!outcome.ok) setMessage(outcome.message)
        }}
      >
        <h1 id="login-title">Keel</h1>
        <p>This server needs its token (KEEL_TOKEN).</p>
        <label>
          Token{" "}
          <input
            type="password"
            name="token"
            autocomplete="current-password"
            value={token}
            onInput={(e) => setToken(e.currentTarget.value)}
            autofocus
          />
        </label>
        <button type="submit" disabled={checking || token.trim() === ""}>
          Sign in
        </button>
        {message !== undefined && (
          <p class="error" role="alert">
            {message}
          </p>
        )}
      </form>
    </main>
  )
}

const App = () => {
  const [route, setRoute] = useState(routeOf(window.location.hash))
  const [connection, setConnection] = useState(Connection.current())
  useEffect(() => {
    const onHash = () => {
      clearNotice()
      setRoute(routeOf(window.location.hash))
    }
    window.addEventListener("hashchange", onHash)
    const unsubscribe = Connection.subscribe(setConnection)
    return () => {
      window.removeEventListener("hashchange", onHash)
      unsubscribe()
    }
  }, [])
  useEffect(() => {
    document.title = route.page === "queue" ? `${route.name} · Keel` : "Keel"
  }, [route])
  if (connection === "unauthorized") return <Login refused={true} />
  const active = route.page === "queue" ? "overview" : route.page
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header>
        <nav aria-label="Pages">
          <strong class="brand">Keel</strong>
          {links.map(([page, href, label]) => (
            <a key={page} href={href} aria-current={active === page ? "page" : undefined}>
              {label}
            </a>
          ))}
        </nav>
        {Connection.token() !== null && (
          <button
            type="button"
            class="link"
            onClick={() => {
              authenticate(null)
              Connection.report("unauthorized")
            }}
          >
            Sign out
          </button>
        )}
      </header>
      {connection === "lost" && (
        <div class="banner" role="alert">
          Connection lost: the server does not answer. Retrying…
        </div>
      )}
      <NoticeLine />
      <main id="main" tabIndex={-1}>
        <Page route={route} />
      </main>
      <ConfirmDialog />
    </>
  )
}

/** Whether the server needs a token (`/ui/auth.json`); without a saved one the login comes first. */
const needsToken = async (): Promise<boolean> => {
  try {
    const response = await fetch("/ui/auth.json")
    const auth: unknown = await response.json()
    return typeof auth === "object" && auth !== null && "token" in auth && auth.token === true
  } catch {
    return false
  }
}

const start = async () => {
  const root = document.getElementById("app")
  if (root === null) return
  if (Connection.token() === null && (await needsToken())) Connection.report("unauthorized")
  root.textContent = ""
  render(<App />, root)
}

void start()
