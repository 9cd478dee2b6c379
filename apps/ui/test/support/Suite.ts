/**
 * The dashboard, driven in Chromium against a real `keel serve` on one backend with seeded data:
 * each page shows the seeded numbers, a requeued dead letter is ready again and a deleted one is
 * gone (checked through the API), a refused delete shows the API's message, the messages view
 * lists each state, pages on and cancels or retries a message, the workers page shows each
 * worker's leases, a released port is free, a message sent through the API appears without a
 * reload, a wrong token gets the login prompt, the page fits a phone and is keyboard navigable,
 * losing the server shows "connection lost", and no page logs a console error. On SQLite it saves
 * a screenshot of each page to apps/ui/screenshots/ and prints `/ui`'s first paint and the
 * assets' gzipped size.
 */
import { mkdirSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { gzipSync } from "node:zlib"
import type { TestDatabase } from "@keel/testkit"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as Browsers from "./Browser.js"
import { buildTimeoutMs, cliRoot, ensureBuilt, uiRoot } from "./Builds.js"
import { aliveWorker, deadLetters, heartbeat, type Seeded, seed } from "./Seed.js"
import { api, field, type Served, serve, token } from "./Serve.js"

/** Where the screenshots go (committed: the README shows two of them). */
export const screenshots = join(uiRoot, "screenshots")

/** The budget of the dashboard's assets, gzipped. */
export const maxGzippedBytes = 300 * 1024

/** The assets `/ui` loads, gzipped as the server sends them, in bytes. */
export const gzippedAssetBytes = (): number =>
  readdirSync(join(uiRoot, "dist"))
    .filter((name) => /\.(js|css|html)$/.test(name))
    .reduce((sum, name) => sum + gzipSync(readFileSync(join(uiRoot, "dist", name))).byteLength, 0)

/** Chromium's own line for a request answered 401: expected only where a token is refused. */
const refusedLoad = /Failed to load resource: the server responded with a status of 401/

/** Chromium's own line for a request answered 400: expected only where the API refuses an input. */
const refusedRequest = /Failed to load resource: the server responded with a status of 400/

/** Chromium's own line for a request answered 404: expected only where something was removed. */
const refusedMissing = /Failed to load resource: the server responded with a status of 404/

/** How long the page may take to show a change: a refresh (2 s) on a loaded machine, with margin. */
const settleMs = 20_000

/** `expect.poll` with time for the page's refresh cycle. */
const eventually = <T>(check: () => T | Promise<T>) =>
  expect.poll(check, { timeout: settleMs, interval: 100 })

const countOf = async (page: Page, selector: string): Promise<string> =>
  (await page.locator(selector).textContent())?.trim() ?? ""

/** The ids of the message rows the page shows, in order. */
const rowIds = (page: Page): Promise<ReadonlyArray<number>> =>
  page
    .locator("table.messages tbody tr[data-message]")
    .evaluateAll((rows) => rows.map((row) => Number(row.getAttribute("data-message"))))

/** The ids of a list answer of the API (`{ messages }`). */
const idsOf = (answer: unknown): ReadonlyArray<unknown> => {
  const messages = field(answer, "messages")
  if (!Array.isArray(messages)) throw new Error(`expected messages: ${JSON.stringify(answer)}`)
  return messages.map((message: unknown) => field(message, "id"))
}

/** Runs the suite on `kind` (the caller skips backends `KEEL_TEST_BACKENDS` leaves out). */
export const suite = (kind: TestDatabase.Kind, range: { readonly min: number; readonly max: number }) => {
  describe.sequential(`the dashboard [${kind}]`, () => {
    let server: Served
    let seeded: Seeded
    let browser: Browser
    let watched: Browsers.Watched
    const shoot = async (page: Page, name: string) => {
      if (kind !== "sqlite") return
      mkdirSync(screenshots, { recursive: true })
      await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true })
    }
    const confirm = async (page: Page, action: string) => {
      const dialog = page.getByRole("dialog")
      await eventually(() => dialog.isVisible()).toBe(true)
      await dialog.getByRole("button", { name: action, exact: true }).click()
    }

    beforeAll(async () => {
      const absent = Browsers.missing()
      if (absent !== undefined) throw new Error(absent)
      const [built] = await Promise.all([
        ensureBuilt(uiRoot),
        process.env.KEEL_UI_SERVER === "main" ? Promise.resolve("") : ensureBuilt(cliRoot)
      ])
      if (built !== "") process.stdout.write(built)
      server = await serve(kind, range)
      seeded = await seed(server)
      browser = await Browsers.launch()
      watched = await Browsers.open(browser)
    }, buildTimeoutMs + 120_000)

    afterAll(async () => {
      await browser?.close()
      await server?.stop()
    })

    it("asks for the token, then the overview shows the seeded counts of every queue, the reservations and the cursors", async () => {
      const { page } = watched
      await heartbeat(server)
      await page.goto(`${server.url}/ui`)
      const paints = await page.evaluate(() =>
        performance.getEntriesByType("paint").map((entry) => [entry.name, entry.startTime] as const)
      )
      await page.getByLabel("Token").fill(token)
      await page.getByRole("button", { name: "Sign in" }).click()
      await eventually(() => countOf(page, 'tr[data-queue="emails"] [data-count="ready"]')).toBe("3")
      expect(await countOf(page, 'tr[data-queue="emails"] [data-count="delayed"]')).toBe("1")
      expect(await countOf(page, 'tr[data-queue="emails"] [data-count="inFlight"]')).toBe("1")
      expect(await countOf(page, 'tr[data-queue="emails"] [data-count="dead"]')).toBe("0")
      expect(await countOf(page, 'tr[data-queue="payments"] [data-count="dead"]')).toBe("2")
      expect(await countOf(page, '[data-testid="reservation-count"]')).toBe("3")
      expect(await countOf(page, '[data-testid="cursor-count"]')).toBe("2")
      expect(await countOf(page, '[data-testid="workers-alive"]')).toBe("1")
      await eventually(() => page.getByRole("row", { name: /peer-a/ }).textContent()).toContain("120")
      await eventually(() => page.locator(".sparkline canvas").count()).toBe(2)
      await shoot(page, "overview")
      const firstPaint = paints.find(([name]) => name === "first-contentful-paint") ?? paints[0]
      const gzipped = gzippedAssetBytes()
      process.stdout.write(
        `[ui ${kind}] /ui first paint: ${firstPaint === undefined ? "not reported" : `${firstPaint[1].toFixed(0)} ms (${firstPaint[0]})`}; ` +
          `assets ${(gzipped / 1024).toFixed(1)} KiB gzipped\n`
      )
      expect(firstPaint).toBeDefined()
      expect(gzipped).toBeLessThan(maxGzippedBytes)
      expect(watched.errors).toEqual([])
    })

    it("shows a message sent through the API without a reload", async () => {
      const { page } = watched
      await page.evaluate(() => {
        document.body.dataset.loadedOnce = "yes"
      })
      await api(server, "POST", "/queues/emails/messages", { payload: { to: "live@example.com" } })
      await eventually(() => countOf(page, 'tr[data-queue="emails"] [data-count="ready"]')).toBe("4")
      expect(await page.evaluate(() => document.body.dataset.loadedOnce)).toBe("yes")
      expect(watched.errors).toEqual([])
    })

    it("the queue page lists the dead letters, and a requeued one is ready again", async () => {
      const { page } = watched
      await page.getByRole("link", { name: "payments" }).click()
      await page.getByRole("tab", { name: "Dead letters" }).click()
      await eventually(() => page.locator("table.messages tbody tr[data-message]").count()).toBe(2)
      expect(await countOf(page, '[data-testid="queue-counts"] [data-count="dead"]')).toBe("2")
      const first = page.locator(`tr[data-message="${seeded.dead[0]}"]`)
      expect(await first.locator("pre.payload").textContent()).toContain('"amount":')
      expect(await first.textContent()).toContain("card declined")
      await shoot(page, "dead-letters")
      await first.getByRole("button", { name: "Requeue" }).click()
      await confirm(page, "Requeue")
      await eventually(() => page.locator("table.messages tbody tr[data-message]").count()).toBe(1)
      const metrics = await api(server, "GET", "/queues/payments/metrics")
      expect(field(metrics, "depth")).toBe(1)
      expect(field(metrics, "dead")).toBe(1)
      expect(watched.errors).toEqual([])
    })

    it("the filter narrows the dead letters, and selected ones are requeued together", async () => {
      const { page } = watched
      await page.getByLabel("Filter").fill("no such payload")
      await eventually(() => page.locator("table.messages tbody tr[data-message]").count()).toBe(0)
      await page.getByLabel("Filter").fill("")
      const remaining = seeded.dead[1]
      await page.getByLabel(`select message ${remaining}`).check()
      await page.getByRole("button", { name: "Requeue selected (1)" }).click()
      await confirm(page, "Requeue")
      await expect
        .poll(async () => field(await api(server, "GET", "/queues/payments/metrics"), "dead"))
        .toBe(0)
      expect(field(await api(server, "GET", "/queues/payments/metrics"), "depth")).toBe(2)
      expect(watched.errors).toEqual([])
    })

    it("deleting the selected dead letters, or one by its own button, removes them for good (checked through the API)", async () => {
      const { page } = watched
      await api(server, "POST", "/queues/payments/purge", {})
      const [kept, selected, single] = await deadLetters(server, "payments", [
        { order: 44, amount: 10 },
        { order: 45, amount: 20 },
        { order: 46, amount: 30 }
      ])
      await eventually(() => rowIds(page)).toEqual([single, selected, kept])
      const everyShown = page.getByLabel("select every dead letter shown")
      await everyShown.check()
      expect(await page.getByRole("button", { name: "Delete selected (3)" }).isEnabled()).toBe(true)
      await everyShown.uncheck()
      expect(await page.getByRole("button", { name: "Delete selected (0)" }).isDisabled()).toBe(true)
      await page.getByLabel(`select message ${selected}`).check()
      await page.getByRole("button", { name: "Delete selected (1)" }).click()
      await confirm(page, "Delete")
      await eventually(async () => idsOf(await api(server, "GET", "/queues/payments/dead"))).toEqual([
        single,
        kept
      ])
      await eventually(() => rowIds(page)).toEqual([single, kept])
      await page.locator(`tr[data-message="${single}"]`).getByRole("button", { name: "Delete" }).click()
      await confirm(page, "Delete")
      await eventually(async () => idsOf(await api(server, "GET", "/queues/payments/dead"))).toEqual([kept])
      await eventually(() => page.locator(".notice.done").textContent()).toContain("Deleted 1 dead letter.")
      const metrics = await api(server, "GET", "/queues/payments/metrics")
      expect([field(metrics, "depth"), field(metrics, "dead")]).toEqual([0, 1])
      expect(watched.errors).toEqual([])
    })

    it("a refused delete of a dead letter shows the API's message", async () => {
      const { page } = watched
      await api(server, "POST", "/queues", { name: "scratch", maxDeliveries: 1 })
      const [doomed] = await deadLetters(server, "scratch", [{ job: 1 }])
      await page.goto(`${server.url}/ui#/queues/scratch`)
      await page.getByRole("tab", { name: "Dead letters" }).click()
      await eventually(() => rowIds(page)).toEqual([doomed])
      await api(server, "DELETE", "/queues/scratch?force=true")
      await page.locator(`tr[data-message="${doomed}"]`).getByRole("button", { name: "Delete" }).click()
      await confirm(page, "Delete")
      await eventually(() => page.locator(".notice.refused").textContent()).toContain("does not exist")
      // Chromium logs each refused request (the page's polling too); nothing else may appear.
      expect(watched.errors.filter((error) => !refusedMissing.test(error))).toEqual([])
      watched.errors.splice(0)
    })

    it("a long payload is shown pretty-printed and cut, the queue's schedules are listed, a refused change shows the API's message", async () => {
      const { page } = watched
      await page.goto(`${server.url}/ui#/queues/emails`)
      await page.getByRole("tab", { name: "Find a message" }).click()
      await page.getByLabel("Message id").fill(String(seeded.long))
      await page.getByRole("button", { name: "Find" }).click()
      const payload = page.locator(".card pre.payload")
      await eventually(() => payload.textContent()).toContain("more characters")
      expect(await payload.textContent()).toContain('  "to": "user3@example.com"')
      await page.getByRole("tab", { name: "Schedules" }).click()
      await eventually(() => page.locator('tr[data-schedule="new-year-mail"]').textContent()).toContain(
        "0 0 1 1 *"
      )
      await page.getByRole("tab", { name: "Settings" }).click()
      await page.getByLabel("Max deliveries").fill("0")
      await page.getByRole("button", { name: "Save settings" }).click()
      const alert = page.locator(".notice.refused")
      await eventually(() => alert.textContent()).toMatch(/maxDeliveries/)
      expect(field(await api(server, "GET", "/queues/emails"), "maxDeliveries")).toBe(3)
      // Chromium logs the refused request itself; nothing else may appear.
      expect(watched.errors.filter((error) => !refusedRequest.test(error))).toEqual([])
      watched.errors.splice(0)
    })

    it("the messages view lists the ready, delayed and leased messages with their payloads, pages on after the last id, and cancels or retries one", async () => {
      const { page } = watched
      await page.getByRole("tab", { name: "Messages" }).click()
      const table = page.getByRole("table", { name: "Messages" })
      // Ready: the seed's three (user1 is leased) and the one sent live.
      await eventually(() => page.locator("table.messages tbody tr[data-message]").count()).toBe(4)
      const long = page.locator(`tr[data-message="${seeded.long}"]`)
      expect(await long.locator("pre.payload").textContent()).toContain('  "to": "user3@example.com"')
      expect(await long.locator("pre.payload").textContent()).toContain("more characters")
      expect(await long.textContent()).toContain("0 of 3")
      expect(await table.textContent()).toContain("live@example.com")
      expect(await table.textContent()).not.toContain("later@example.com")
      // The previous test's refusal is still shown; the screenshot is of the list alone.
      await page.getByRole("button", { name: "Dismiss" }).click()
      await shoot(page, "queue")
      await page.getByLabel("State").selectOption("delayed")
      await eventually(() => table.getAttribute("data-state")).toBe("delayed")
      await eventually(() => page.locator("table.messages tbody tr[data-message]").count()).toBe(1)
      expect(await table.textContent()).toContain("later@example.com")
      expect(await table.getByRole("button", { name: "Retry now" }).count()).toBe(1)
      await page.getByLabel("State").selectOption("leased")
      await eventually(() => rowIds(page)).toEqual([seeded.leased])
      const leased = page.locator(`tr[data-message="${seeded.leased}"]`)
      expect(await leased.textContent()).toContain("user1@example.com")
      expect(await leased.textContent()).toContain("1 of 3")
      expect(await table.textContent()).toContain("Lease ends")

      // A page more than fits: the first page holds 20, the next continues after its last id.
      await page.getByLabel("State").selectOption("queued")
      await api(server, "POST", "/queues/emails/messages/batch", {
        messages: Array.from({ length: 20 }, (_, n) => ({ payload: { batch: n } }))
      })
      await eventually(() => page.locator("table.messages tbody tr[data-message]").count()).toBe(20)
      const first = await rowIds(page)
      const last = first[first.length - 1]
      await page.getByRole("button", { name: "Next page" }).click()
      const after = idsOf(
        await api(server, "GET", `/queues/emails/messages?state=queued&after=${last}&limit=100`)
      )
      expect(after).toHaveLength(4)
      await eventually(() => rowIds(page)).toEqual(after)
      expect(await page.getByRole("button", { name: "Next page" }).isDisabled()).toBe(true)
      await page.getByRole("button", { name: "Previous page" }).click()
      await eventually(() => rowIds(page)).toEqual(first)

      // Each listed message can be cancelled, and a delayed one made ready now.
      const user4 = page.locator("table.messages tbody tr[data-message]", { hasText: "user4@example.com" })
      const cancelled = Number(await user4.getAttribute("data-message"))
      await user4.getByRole("button", { name: "Cancel message" }).click()
      await confirm(page, "Cancel message")
      await eventually(() => rowIds(page)).not.toContain(cancelled)
      await expect(api(server, "GET", `/queues/emails/messages/${cancelled}`)).rejects.toThrow(/404/)
      await page.getByLabel("State").selectOption("delayed")
      const later = page.locator("table.messages tbody tr[data-message]", { hasText: "later@example.com" })
      await eventually(() => later.count()).toBe(1)
      const delayed = Number(await later.getAttribute("data-message"))
      await later.getByRole("button", { name: "Retry now" }).click()
      await confirm(page, "Retry now")
      await eventually(() => page.locator("table.messages tbody tr[data-message]").count()).toBe(0)
      expect(field(await api(server, "GET", `/queues/emails/messages/${delayed}`), "state")).toBe("queued")
      expect(watched.errors).toEqual([])
    })

    it("the ports page groups reservations by project, looks up a port, and releasing one frees it", async () => {
      const { page } = watched
      await page.getByRole("link", { name: "Ports" }).click()
      await eventually(() => page.locator("tr[data-port]").count()).toBe(3)
      expect(await page.getByRole("heading", { name: "alpha" }).count()).toBe(1)
      expect(await page.getByRole("heading", { name: seeded.otherPath }).count()).toBe(1)
      await page.getByLabel("Port", { exact: true }).fill(String(seeded.ports.db))
      await page.getByRole("button", { name: "Look up" }).click()
      await eventually(() => page.locator("output.answer").textContent()).toContain(seeded.otherPath)
      await shoot(page, "ports")
      await page
        .locator(`tr[data-port="${seeded.ports.web}"]`)
        .getByRole("button", { name: "Release" })
        .click()
      await confirm(page, "Release")
      await eventually(() => page.locator("tr[data-port]").count()).toBe(2)
      const held = field(await api(server, "GET", "/reservations"), "reservations")
      expect(Array.isArray(held) && held.map((reservation: unknown) => field(reservation, "port"))).toEqual(
        expect.not.arrayContaining([seeded.ports.web])
      )
      expect(watched.errors).toEqual([])
    })

    it("the cursors page shows each position and resets one after confirmation", async () => {
      const { page } = watched
      await page.getByRole("link", { name: "Cursors" }).click()
      const row = page.locator('tr[data-peer="peer-a"]')
      await eventually(() => row.textContent()).toContain("120")
      await shoot(page, "cursors")
      await row.getByLabel("new position of peer-a").fill("10")
      await row.getByRole("button", { name: "Reset" }).click()
      await confirm(page, "Reset")
      await eventually(async () => field(await api(server, "GET", "/cursors/peer-a"), "position")).toBe("10")
      expect(watched.errors).toEqual([])
    })

    it("the workers page lists the registered workers with their heartbeat age, stale ones marked", async () => {
      const { page } = watched
      await heartbeat(server)
      await page.getByRole("link", { name: "Workers" }).click()
      const alive = page.locator('tr[data-worker="worker-mail-1"]')
      const silent = page.locator('tr[data-worker="worker-mail-2"]')
      await eventually(() => alive.textContent()).toContain("mail-host")
      expect(await alive.textContent()).toContain("4242")
      expect(await alive.textContent()).not.toContain("stale")
      expect(await silent.textContent()).toContain("stale")
      expect(await silent.getAttribute("class")).toBe("stale")
      // The alive worker holds the lease the seed took with its id; each has its own timeout.
      expect(await countOf(page, `tr[data-worker="${aliveWorker}"] [data-count="inFlight"]`)).toBe("1")
      expect(await countOf(page, 'tr[data-worker="worker-mail-2"] [data-count="inFlight"]')).toBe("0")
      expect(await alive.locator("[data-timeout]").textContent()).toBe("1 h")
      expect(await silent.locator("[data-timeout]").textContent()).toBe("30 s")
      await shoot(page, "workers")
      expect(watched.errors).toEqual([])
    })

    it("can be used with the keyboard alone", async () => {
      const { page } = watched
      await page.goto(`${server.url}/ui#/`)
      await page.reload()
      await eventually(() => page.locator("tr[data-queue]").count()).toBe(2)
      // Skip link, then the navigation in order: Overview, Workers.
      await page.keyboard.press("Tab")
      await page.keyboard.press("Tab")
      await page.keyboard.press("Tab")
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe("Workers")
      await page.keyboard.press("Enter")
      await eventually(() => page.evaluate(() => window.location.hash)).toBe("#/workers")
      expect(watched.errors).toEqual([])
    })

    it("fits a 390-pixel-wide phone screen", async () => {
      const phone = await Browsers.open(browser, 390, 844)
      await phone.page.addInitScript((saved) => window.localStorage.setItem("keel.token", saved), token)
      await phone.page.goto(`${server.url}/ui`)
      await eventually(() => phone.page.locator("tr[data-queue]").count()).toBe(2)
      expect(await phone.page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390)
      await shoot(phone.page, "overview-phone")
      expect(phone.errors).toEqual([])
      await phone.context.close()
    })

    it("a wrong token gets the login prompt, saying it was refused", async () => {
      const wrong = await Browsers.open(browser)
      await wrong.page.addInitScript(() => window.localStorage.setItem("keel.token", "not-the-token-at-all"))
      await wrong.page.goto(`${server.url}/ui`)
      await eventually(() => wrong.page.getByRole("alert").textContent()).toContain("The token was refused.")
      expect(await wrong.page.getByLabel("Token").isVisible()).toBe(true)
      await wrong.page.getByLabel("Token").fill("still-not-the-token")
      await wrong.page.getByRole("button", { name: "Sign in" }).click()
      await eventually(() => wrong.page.getByRole("alert").textContent()).toContain("The token was refused.")
      await shoot(wrong.page, "login")
      expect(wrong.errors.filter((error) => !refusedLoad.test(error))).toEqual([])
      await wrong.context.close()
    })

    it("says the connection is lost when the server stops answering", async () => {
      const { page } = watched
      await page.goto(`${server.url}/ui#/`)
      await eventually(() => page.locator("tr[data-queue]").count()).toBe(2)
      await server.stop()
      await expect.poll(() => page.locator(".banner").textContent()).toContain("Connection lost")
    })
  })
}
