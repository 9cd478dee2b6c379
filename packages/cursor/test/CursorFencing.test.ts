import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import * as SqlClient from "@effect/sql/SqlClient"
import { describe, expect, layer } from "@effect/vitest"
import { Processes, TestDatabase } from "@keel/testkit"
import { Duration, Effect, Option, Schedule } from "effect"

const child = fileURLToPath(new URL("./fixtures/fenced-child.ts", import.meta.url))

/** Backends a second process can open at the same time (PGlite and the Turso engine cannot). */
const multiProcess = (kind: TestDatabase.Kind): boolean =>
  kind === "sqlite" || kind === "libsql" || kind === "postgres"

/** The stored position of the children's peer, read straight from the table. */
const stored = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<{
    position: string
  }>`SELECT position FROM keel_cursors WHERE namespace = ${"fenced-children"} AND peer = ${"shared"}`
  return Option.fromNullable(rows[0]?.position)
})

const lines = (file: string): ReadonlyArray<string> =>
  existsSync(file)
    ? readFileSync(file, "utf8")
        .split("\n")
        .filter((line) => line.length > 0)
    : []

/** Waits until `check` holds, bounded. */
const until = (what: string, check: () => boolean) =>
  Effect.repeat(Effect.sync(check), {
    until: (done) => done,
    schedule: Schedule.spaced(Duration.millis(10))
  }).pipe(
    Effect.timeoutFail({ duration: Duration.seconds(60), onTimeout: () => `timed out waiting for ${what}` })
  )

const zombieBase = 1_000_000_000

for (const kind of TestDatabase.kinds.filter(multiProcess))
  describe(`Cursor fencing across processes [${kind}]`, () => {
    layer(TestDatabase.layer(kind), { timeout: 180_000, excludeTestServices: true })((it) => {
      it.effect(
        "a fenced zombie writer cannot move a cursor after a successor took the fence, even once the successor is SIGKILLed",
        () =>
          Effect.scoped(
            Effect.gen(function* () {
              const { dsn, dir } = yield* TestDatabase.TestDatabase
              const zombieReport = join(dir, "zombie.log")
              const successorReport = join(dir, "successor.log")
              // The first writer takes the fence, flushes once, then freezes (a GC pause, a stopped VM).
              const zombie = yield* Processes.spawn({
                script: child,
                args: [dsn],
                env: {
                  FENCED_REPORT: zombieReport,
                  FENCED_BASE: String(zombieBase),
                  FENCED_STRIDE: "1000",
                  FENCED_PAUSE: "1"
                }
              })
              yield* until("the first writer to pause", () => zombie.stdout().includes("paused"))
              expect(yield* stored).toEqual(Option.some(String(zombieBase)))
              // A successor takes the fence over, resumes where the zombie's flush left off and advances
              // one by one. The zombie has gone on in memory by 1,000 a step: without the fence its
              // next flush would win the monotonic write and make the successor skip the difference.
              const successor = yield* Processes.spawn({
                script: child,
                args: [dsn],
                env: { FENCED_REPORT: successorReport, FENCED_BASE: "0" }
              })
              yield* until(
                "the successor to flush",
                () => lines(successorReport).filter((line) => line.startsWith("flushed")).length >= 3
              )
              yield* successor.kill("SIGKILL")
              const exited = yield* successor.exited
              expect(exited.signal).toBe("SIGKILL")
              const afterSuccessor = yield* stored
              const successorFlushed = lines(successorReport)
                .filter((line) => line.startsWith("flushed"))
                .map((line) => Number(line.split(" ")[1]))
              expect(successorFlushed.at(-1)).toBeGreaterThan(zombieBase)
              const kept = Number(Option.getOrElse(afterSuccessor, () => "0"))
              expect(kept).toBeGreaterThanOrEqual(successorFlushed.at(-1) ?? 0)
              expect(kept).toBeLessThan(zombieBase + 1000)
              // The zombie wakes up and keeps writing: every flush is refused with Fenced.
              yield* zombie.kill("SIGUSR2")
              yield* until(
                "the zombie to be refused three times",
                () => lines(zombieReport).filter((line) => line.startsWith("fenced")).length >= 3
              )
              const zombieLines = lines(zombieReport)
              expect(zombieLines.filter((line) => line.startsWith("flushed"))).toEqual([
                `flushed ${zombieBase}`
              ])
              expect(zombieLines.filter((line) => line.startsWith("failed"))).toEqual([])
              expect(yield* stored).toEqual(afterSuccessor)
              yield* zombie.kill("SIGKILL")
              yield* zombie.exited
              expect(yield* stored).toEqual(afterSuccessor)
            })
          ),
        { timeout: 180_000 }
      )
    })
  })
