/**
 * Debian's Chromium (`/usr/bin/chromium`, installed by `.ci/run` when missing) driven by
 * playwright-core: no browser download. Background networking is off (Chromium would otherwise try
 * to reach Google hosts). Every page records its console errors and uncaught exceptions, so a test
 * can assert there were none.
 */
import { existsSync } from "node:fs"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"

/** Where Debian installs Chromium (override with `CHROMIUM_PATH`). */
export const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"

/** Whether the browser is installed; the suite fails with this reason when it is not. */
export const missing = (): string | undefined =>
  existsSync(executablePath) ? undefined : `no Chromium at ${executablePath} (apt-get install chromium)`

/** Launches Chromium headless, offline from everything but the servers it is pointed at. */
export const launch = (): Promise<Browser> =>
  chromium.launch({
    executablePath,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })

/** A page and the console errors and page errors it has shown so far. */
export interface Watched {
  readonly page: Page
  readonly context: BrowserContext
  readonly errors: Array<string>
}

/** A new page in its own context (own storage) of `width`×`height`, recording errors. */
export const open = async (browser: Browser, width = 1280, height = 800): Promise<Watched> => {
  const context = await browser.newContext({ viewport: { width, height } })
  const page = await context.newPage()
  const errors: Array<string> = []
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console: ${message.text()}`)
  })
  page.on("pageerror", (error) => errors.push(`page: ${error.message}`))
  return { page, context, errors }
}
