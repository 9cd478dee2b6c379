import * as SqlClient from "@effect/sql/SqlClient"
import type { Row } from "@effect/sql/SqlConnection"
import type * as Statement from "@effect/sql/Statement"
import { expect, layer } from "@effect/vitest"
import { Backend, DbError, Retry, Transaction } from "@keel/sql"
import BetterSqlite3 from "better-sqlite3"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Option, Ref, Stream } from "effect"
import * as TestDatabase from "./support/TestDatabase.js"

/** Rows of `table` whose columns equal the given values (all rows when none are given). */
const countRows = (
  table: "items" | "parents" | "children" | "strict_children",
  where: Record<string, string | number> = {}
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const conditions = Object.entries(where).map(([column, value]) => sql`${sql(column)} = ${value}`)
    const rows = yield* sql<{
      n: number
    }>`SELECT COUNT(*) AS n FROM ${sql(table)} WHERE ${sql.and(conditions)}`
    return Number(rows[0]?.n ?? 0)
  })

const setup = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  yield* sql`CREATE TABLE items (id INTEGER PRIMARY KEY, tag TEXT NOT NULL)`
  yield* sql`CREATE TABLE parents (id INTEGER PRIMARY KEY)`
  yield* sql`CREATE TABLE children (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED
  )`
  yield* sql`CREATE TABLE strict_children (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER NOT NULL REFERENCES parents (id)
  )`
  yield* sql`CREATE TABLE counter (id INTEGER PRIMARY KEY, value INTEGER NOT NULL)`
  yield* sql`INSERT INTO counter (id, value) VALUES (1, 0)`
})

TestDatabase.describeEach("Transaction", (kind) => {
  layer(TestDatabase.layer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("set up tables", () => setup)

    it.effect("foreign keys are enforced: an orphan row is a typed ForeignKeyViolation", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const error = yield* DbError.refine(
          sql`INSERT INTO strict_children (id, parent_id) VALUES (1, 999)`
        ).pipe(Effect.flip)
        expect(error._tag).toBe("ForeignKeyViolation")
      })
    )

    it.effect("a unique violation is a typed UniqueViolation", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* sql`INSERT INTO items (id, tag) VALUES (100, 'unique')`
        const error = yield* DbError.refine(sql`INSERT INTO items (id, tag) VALUES (100, 'again')`).pipe(
          Effect.flip
        )
        expect(error._tag).toBe("UniqueViolation")
      })
    )

    it.effect("a committed transaction keeps every write; a failed body keeps none", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* Transaction.immediate(
          Effect.zipRight(
            sql`INSERT INTO items (id, tag) VALUES (1, 'commit')`,
            sql`INSERT INTO items (id, tag) VALUES (2, 'commit')`
          )
        )
        const failed = yield* Transaction.immediate(
          Effect.zipRight(
            sql`INSERT INTO items (id, tag) VALUES (3, 'rollback')`,
            Effect.fail("boom" as const)
          )
        ).pipe(Effect.flip)
        expect(failed).toBe("boom")
        expect(yield* countRows("items", { tag: "commit" })).toBe(2)
        expect(yield* countRows("items", { tag: "rollback" })).toBe(0)
      })
    )

    it.effect("interruption mid-transaction rolls back and the client stays usable", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const inserted = yield* Deferred.make<void>()
        const fiber = yield* Effect.fork(
          Transaction.immediate(
            Effect.gen(function* () {
              yield* sql`INSERT INTO items (id, tag) VALUES (10, 'interrupted')`
              yield* Deferred.succeed(inserted, undefined)
              return yield* Effect.never
            })
          )
        )
        yield* Deferred.await(inserted)
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        expect(yield* countRows("items", { tag: "interrupted" })).toBe(0)
        yield* Transaction.immediate(sql`INSERT INTO items (id, tag) VALUES (11, 'after-interrupt')`)
        expect(yield* countRows("items", { tag: "after-interrupt" })).toBe(1)
      })
    )

    // A COMMIT rejected by a deferred foreign key, for a body of statements and for one statement
    // (`single`, which on SQLite runs BEGIN, the statement and COMMIT in one step of the driver).
    const committers: ReadonlyArray<
      readonly [
        string,
        (statement: Statement.Statement<Row>) => Effect.Effect<unknown, unknown, Backend.Backend>,
        number
      ]
    > = [
      ["Transaction.immediate", (statement) => Transaction.immediate(statement), 1],
      ["Transaction.single", (statement) => Transaction.single(statement), 3]
    ]
    for (const [name, commit, id] of committers) {
      it.effect(
        `${name}: a failed COMMIT (deferred foreign key) is a typed CommitRejected and the next write is not lost`,
        () =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const error = yield* commit(sql`INSERT INTO children (id, parent_id) VALUES (${id}, 404)`).pipe(
              Effect.flip
            )
            expect(error).toMatchObject({ _tag: "CommitRejected", reason: { _tag: "ForeignKeyViolation" } })
            // The hazard: after a failed COMMIT the stock client stays inside the dead transaction,
            // so this plain write would join it and vanish with the next rollback.
            yield* sql`INSERT INTO parents (id) VALUES (${100 + id})`
            yield* Transaction.immediate(
              Effect.zipRight(
                sql`INSERT INTO items (id, tag) VALUES (${20 + id}, 'doomed')`,
                Effect.fail("later")
              )
            ).pipe(Effect.ignore)
            expect(yield* countRows("parents", { id: 100 + id })).toBe(1)
            expect(yield* countRows("children", { id })).toBe(0)
          })
      )
    }

    it.effect("the client's own withTransaction reports a failed COMMIT as an error, not a defect", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const exit = yield* Effect.exit(
          sql.withTransaction(sql`INSERT INTO children (id, parent_id) VALUES (2, 405)`)
        )
        expect(Exit.isFailure(exit) && Option.isSome(Cause.failureOption(exit.cause))).toBe(true)
        const failure = Exit.isFailure(exit) ? Cause.failureOption(exit.cause) : Option.none()
        expect(Option.map(failure, (error) => error._tag)).toEqual(Option.some("SqlError"))
        expect(yield* countRows("children")).toBe(0)
      })
    )

    it.effect("nested transactions are savepoints: an inner failure undoes only the inner writes", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* Transaction.immediate(
          Effect.gen(function* () {
            yield* sql`INSERT INTO items (id, tag) VALUES (30, 'outer')`
            const inner = yield* Transaction.immediate(
              Effect.zipRight(
                sql`INSERT INTO items (id, tag) VALUES (31, 'inner')`,
                Effect.fail("inner" as const)
              )
            ).pipe(Effect.flip)
            expect(inner).toBe("inner")
            yield* Transaction.immediate(sql`INSERT INTO items (id, tag) VALUES (32, 'inner-ok')`)
            const active = yield* Transaction.Active
            expect(active.depth).toBe(0)
          })
        )
        expect((yield* countRows("items", { id: 30 })) + (yield* countRows("items", { id: 32 }))).toBe(2)
        expect(yield* countRows("items", { id: 31 })).toBe(0)
      })
    )

    it.effect("concurrent read-modify-write transactions never interleave (no lost update)", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const backend = yield* Backend.Backend
        const inside = yield* Ref.make(0)
        const most = yield* Ref.make(0)
        const increment = Transaction.immediate(
          Effect.gen(function* () {
            yield* Transaction.lock("counter")
            const now = yield* Ref.updateAndGet(inside, (n) => n + 1)
            yield* Ref.update(most, (m) => Math.max(m, now))
            const rows = yield* sql<{ value: number }>`SELECT value FROM counter WHERE id = 1`
            yield* Effect.sleep(Duration.millis(2))
            yield* sql`UPDATE counter SET value = ${Number(rows[0]?.value) + 1} WHERE id = 1`
            yield* Ref.update(inside, (n) => n - 1)
          })
        )
        yield* Effect.all(
          Array.from({ length: 12 }, () => increment),
          { concurrency: "unbounded" }
        )
        const rows = yield* sql<{ value: number }>`SELECT value FROM counter WHERE id = 1`
        expect(Number(rows[0]?.value)).toBe(12)
        expect(yield* Ref.get(most)).toBe(1)
        expect(backend.kind).toBe(kind)
      })
    )

    // A stranger's write while another fiber's transaction is open: a plain statement, and
    // `Transaction.single` (which on SQLite may run at once on the driver, only when nobody holds
    // the session). Either must wait and commit on its own, never inside the owner's transaction.
    const strangers: ReadonlyArray<
      readonly [
        string,
        (sql: SqlClient.SqlClient, id: number) => Effect.Effect<unknown, unknown, Backend.Backend>,
        number
      ]
    > = [
      ["a plain write", (sql, id) => sql`INSERT INTO items (id, tag) VALUES (${id}, 'stranger')`, 40],
      [
        "Transaction.single",
        (sql, id) => Transaction.single(sql`INSERT INTO items (id, tag) VALUES (${id}, 'stranger')`),
        42
      ]
    ]
    for (const [name, write, id] of strangers) {
      it.effect(`${name} of another fiber never joins someone else's open transaction`, () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const inserted = yield* Deferred.make<void>()
          const finish = yield* Deferred.make<void>()
          const owner = yield* Effect.fork(
            Transaction.immediate(
              Effect.gen(function* () {
                yield* sql`INSERT INTO items (id, tag) VALUES (${id + 100}, 'owner')`
                yield* Deferred.succeed(inserted, undefined)
                yield* Deferred.await(finish)
                return yield* Effect.fail("owner rolls back" as const)
              })
            )
          )
          yield* Deferred.await(inserted)
          const stranger = yield* Effect.fork(write(sql, id))
          yield* Effect.sleep(Duration.millis(50))
          yield* Deferred.succeed(finish, undefined)
          yield* Fiber.join(owner).pipe(Effect.flip)
          yield* Fiber.join(stranger)
          expect(yield* countRows("items", { id: id + 100 })).toBe(0)
          expect(yield* countRows("items", { id })).toBe(1)
        })
      )
    }

    it.effect(
      "an independent transaction inside a transaction fails at once on a single session, commits alone elsewhere",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const backend = yield* Backend.Backend
          const started = Date.now()
          const outcome = yield* Transaction.immediate(
            Effect.zipRight(
              sql`INSERT INTO items (id, tag) VALUES (50, 'outer')`,
              Effect.either(
                Transaction.independent(sql`INSERT INTO items (id, tag) VALUES (51, 'independent')`)
              )
            ).pipe(Effect.flatMap((result) => Effect.fail(result)))
          ).pipe(Effect.flip)
          expect(Date.now() - started).toBeLessThan(5_000)
          if (backend.singleSession) {
            expect(outcome._tag === "Left" && outcome.left._tag).toBe("SessionInUse")
            expect(yield* countRows("items", { id: 51 })).toBe(0)
          } else {
            expect(outcome._tag).toBe("Right")
            expect(yield* countRows("items", { id: 51 })).toBe(1)
          }
          expect(yield* countRows("items", { id: 50 })).toBe(0)
        })
    )

    it.effect("Transaction.single commits one statement and returns its rows", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* Transaction.single(
          sql<{
            id: number
            tag: string
          }>`INSERT INTO items (id, tag) VALUES (80, 'single') RETURNING id, tag`
        )
        expect(rows.map((row) => [Number(row.id), row.tag])).toEqual([[80, "single"]])
        expect(yield* countRows("items", { id: 80 })).toBe(1)
      })
    )

    it.effect(
      "Transaction.single: a failing statement leaves nothing, is typed, and the session stays usable",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const error = yield* Transaction.single(
            sql`INSERT INTO strict_children (id, parent_id) VALUES (81, 999)`
          ).pipe(Effect.flip)
          expect(error._tag).toBe("ForeignKeyViolation")
          expect(yield* countRows("strict_children")).toBe(0)
          yield* Transaction.single(sql`INSERT INTO items (id, tag) VALUES (81, 'after-failure')`)
          expect(yield* countRows("items", { id: 81 })).toBe(1)
        })
    )

    it.effect("Transaction.single inside an open transaction joins it and rolls back with it", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        const failed = yield* Transaction.immediate(
          Effect.zipRight(
            Transaction.single(sql`INSERT INTO items (id, tag) VALUES (84, 'joined')`),
            Effect.fail("caller fails" as const)
          )
        ).pipe(Effect.flip)
        expect(failed).toBe("caller fails")
        expect(yield* countRows("items", { id: 84 })).toBe(0)
      })
    )

    it.effect(
      "Transaction.autocommitOn commits one statement, returns its rows, and joins an open transaction",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const alone = Transaction.autocommitOn(yield* Backend.Backend)
          const rows = yield* alone(
            sql<{
              id: number
              tag: string
            }>`INSERT INTO items (id, tag) VALUES (85, 'alone') RETURNING id, tag`
          )
          expect(rows.map((row) => [Number(row.id), row.tag])).toEqual([[85, "alone"]])
          expect(yield* countRows("items", { id: 85 })).toBe(1)
          const failed = yield* Transaction.immediate(
            Effect.zipRight(
              alone(sql`INSERT INTO items (id, tag) VALUES (86, 'joined')`),
              Effect.fail("caller fails" as const)
            )
          ).pipe(Effect.flip)
          expect(failed).toBe("caller fails")
          expect(yield* countRows("items", { id: 86 })).toBe(0)
        })
    )

    it.effect(
      "Transaction.autocommitOn: a failing statement leaves nothing and is typed; a retried one commits once",
      () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const backend = yield* Backend.Backend
          const error = yield* Transaction.autocommitOn(backend)(
            sql`INSERT INTO strict_children (id, parent_id) VALUES (87, 999)`
          ).pipe(Effect.flip)
          expect(error._tag).toBe("ForeignKeyViolation")
          expect(yield* countRows("strict_children")).toBe(0)
          yield* Retry.run(Retry.autocommit(sql`INSERT INTO items (id, tag) VALUES (87, 'retried')`, backend))
          expect(yield* countRows("items", { id: 87 })).toBe(1)
        })
    )

    it.effect("concurrent Transaction.single writes all commit, each exactly once", () =>
      Effect.gen(function* () {
        const sql = yield* SqlClient.SqlClient
        yield* Effect.all(
          Array.from({ length: 40 }, (_, index) =>
            index % 4 === 0
              ? Transaction.immediate(sql`INSERT INTO items (id, tag) VALUES (${1000 + index}, 'many')`)
              : Transaction.single(sql`INSERT INTO items (id, tag) VALUES (${1000 + index}, 'many')`)
          ),
          { concurrency: "unbounded" }
        )
        expect(yield* countRows("items", { tag: "many" })).toBe(40)
      })
    )

    it.effect("Transaction.lock only compiles inside a transaction, and works there", () =>
      Effect.gen(function* () {
        // @ts-expect-error Transaction.lock requires an open transaction (Transaction.Active)
        const outside: Effect.Effect<void, unknown, SqlClient.SqlClient> = Transaction.lock("key")
        expect(outside).toBeDefined()
        yield* Transaction.immediate(Transaction.lock("key"))
      })
    )

    if (kind === "sqlite") {
      it.scoped(
        "Transaction.single against another connection's write lock: a typed Busy with nothing written, and Retry.single waits it out",
        () =>
          Effect.gen(function* () {
            const sql = yield* SqlClient.SqlClient
            const info = yield* TestDatabase.TestDatabase
            const other = new BetterSqlite3(info.dsn.slice("sqlite:".length))
            yield* Effect.addFinalizer(() => Effect.sync(() => other.close()))
            other.exec("BEGIN IMMEDIATE")
            const error = yield* Transaction.single(
              sql`INSERT INTO items (id, tag) VALUES (90, 'busy')`
            ).pipe(Effect.flip)
            expect(error._tag).toBe("Busy")
            expect(yield* countRows("items", { id: 90 })).toBe(0)
            const retried = yield* Effect.fork(
              Retry.run(Retry.single(sql`INSERT INTO items (id, tag) VALUES (91, 'waited')`))
            )
            yield* Effect.sleep(Duration.millis(150))
            other.exec("ROLLBACK")
            yield* Fiber.join(retried)
            expect(yield* countRows("items", { id: 91 })).toBe(1)
          })
      )
    }

    if (kind === "sqlite" || kind === "libsql" || kind === "pglite") {
      it.effect("a fiber waiting for the session can be timed out on time", () =>
        Effect.gen(function* () {
          const holding = yield* Deferred.make<void>()
          const release = yield* Deferred.make<void>()
          const holder = yield* Effect.fork(
            Transaction.immediate(
              Effect.zipRight(Deferred.succeed(holding, undefined), Deferred.await(release))
            )
          )
          yield* Deferred.await(holding)
          const started = Date.now()
          const waited = yield* Transaction.immediate(Effect.void).pipe(
            Effect.timeoutFail({ duration: Duration.millis(100), onTimeout: () => "timed out" as const }),
            Effect.flip
          )
          const elapsed = Date.now() - started
          expect(waited).toBe("timed out")
          expect(elapsed).toBeLessThan(1_000)
          yield* Deferred.succeed(release, undefined)
          yield* Fiber.join(holder)
          yield* Transaction.immediate(Effect.void)
        })
      )
    }

    if (kind === "postgres" || kind === "pglite") {
      it.effect("committing a transaction aborted by a caught failure is a typed TransactionAborted", () =>
        Effect.gen(function* () {
          const sql = yield* SqlClient.SqlClient
          const error = yield* Transaction.immediate(
            Effect.gen(function* () {
              yield* sql`INSERT INTO items (id, tag) VALUES (60, 'aborted')`
              yield* Effect.ignore(sql`INSERT INTO items (id, tag) VALUES (60, 'duplicate')`)
            })
          ).pipe(Effect.flip)
          expect(error._tag).toBe("TransactionAborted")
          expect(yield* countRows("items", { id: 60 })).toBe(0)
        })
      )
    }
  })
})

TestDatabase.describeEach("Notifications", (kind) => {
  layer(TestDatabase.layer(kind), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("a notification reaches a listener of its channel, and only of its channel", () =>
      Effect.gen(function* () {
        const backend = yield* Backend.Backend
        const received = yield* Deferred.make<string>()
        const listener = yield* Effect.fork(
          backend.notifications
            .listen("keel_test_channel")
            .pipe(Stream.runForEach((payload) => Deferred.succeed(received, payload)))
        )
        // LISTEN is asynchronous: notify until the listener is subscribed and hears one.
        yield* backend.notifications.notify("keel_other_channel", "wrong channel")
        const heard = yield* backend.notifications
          .notify("keel_test_channel", "hello, 'quoted' $1")
          .pipe(
            Effect.zipRight(
              Deferred.await(received).pipe(Effect.timeout(Duration.millis(200)), Effect.option)
            ),
            Effect.repeat({ until: Option.isSome, times: 50 })
          )
        expect(heard).toEqual(Option.some("hello, 'quoted' $1"))
        yield* Fiber.interrupt(listener)
      })
    )

    it.effect(
      "listeners come and go: two listeners of a channel both hear it, and a later one still does",
      () =>
        Effect.gen(function* () {
          const backend = yield* Backend.Backend
          const listen = Effect.gen(function* () {
            const received = yield* Deferred.make<string>()
            const fiber = yield* Effect.fork(
              backend.notifications
                .listen("keel_test_comings")
                .pipe(Stream.runForEach((payload) => Deferred.succeed(received, payload)))
            )
            return { fiber, received }
          })
          const hear = (received: Deferred.Deferred<string>, payload: string) =>
            backend.notifications
              .notify("keel_test_comings", payload)
              .pipe(
                Effect.zipRight(
                  Deferred.await(received).pipe(Effect.timeout(Duration.millis(200)), Effect.option)
                ),
                Effect.repeat({ until: Option.isSome, times: 50 })
              )
          const first = yield* listen
          const second = yield* listen
          expect(yield* hear(first.received, "both")).toEqual(Option.some("both"))
          expect(yield* hear(second.received, "both")).toEqual(Option.some("both"))
          yield* Fiber.interrupt(first.fiber)
          yield* Fiber.interrupt(second.fiber)
          const later = yield* listen
          expect(yield* hear(later.received, "later")).toEqual(Option.some("later"))
          yield* Fiber.interrupt(later.fiber)
        })
    )
  })
})
