/**
 * The queue's store on SQL: SQLite, libSQL, PGlite and PostgreSQL. Every statement is here or in
 * `internal/sqlAdmin.ts`; every value is a bind parameter, and the only SQL text that varies is
 * chosen once, per dialect, when the store is made.
 *
 * How each write runs, and what a failure means:
 * - Short writes are plans (`@keel/sql` `Plan`): on SQLite (better-sqlite3) BEGIN IMMEDIATE, the
 *   statements and COMMIT run as one synchronous step of the driver; elsewhere statement by
 *   statement in one transaction. Inside the caller's transaction every operation joins it (a
 *   savepoint) and is never retried: only the caller can re-run its transaction.
 * - A single unkeyed send and a single settlement outside the caller's transaction go through the
 *   group committer: callers of the same event-loop turn share one transaction, a savepoint each.
 *   On PostgreSQL they are one autocommit statement each instead (atomic on its own): never re-run,
 *   and a failure that may come after it ran is `CommitOutcomeUnknown`.
 * - A transaction is re-run only when its failure proves it rolled back (`Retry.plan`,
 *   `Retry.grouped`); a send whose every message is keyed (in `ignore` mode) is re-run after any
 *   failure (`Retry.keyed`).
 * - Database failures become `QueueStoreError { operation }` here, once (`Failure.refail`).
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Backend from "@keel/sql/Backend"
import * as DbError from "@keel/sql/DbError"
import * as Done from "@keel/sql/Done"
import * as Failure from "@keel/sql/Failure"
import * as GroupCommit from "@keel/sql/GroupCommit"
import * as Retry from "@keel/sql/Retry"
import * as Transaction from "@keel/sql/Transaction"
import type { Scope } from "effect"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import * as Admin from "./internal/sqlAdmin.js"
import * as Events from "./internal/sqlEvents.js"
import * as Leases from "./internal/sqlLeases.js"
import * as Messages from "./internal/sqlMessages.js"
import * as Statements from "./internal/sqlStatements.js"
import { QueueStoreError } from "./QueueError.js"
import * as QueueStore from "./QueueStore.js"

/** Options of the SQL store. */
export interface Options {
  /** Signal consumers on send (LISTEN/NOTIFY on PostgreSQL, in-process elsewhere). Default true. */
  readonly notify?: boolean | undefined
}

/** True while the caller has a transaction open: then every statement joins it. */
const callerTransaction: Effect.Effect<boolean> = Effect.contextWith(
  (context: Context.Context<never>) =>
    Option.isSome(Context.getOption(context, Transaction.Active)) ||
    Option.isSome(Context.getOption(context, SqlClient.TransactionConnection))
)

/** A batch's answers, one success per item (a failure of the whole statement fails every item). */
const answers = <A, E>(
  effect: Effect.Effect<ReadonlyArray<A>, E>
): Effect.Effect<ReadonlyArray<Exit.Exit<A, E>>, E> =>
  Effect.map(effect, (each) => each.map((one) => Exit.succeed(one)))

/** The first of a group's answers: a group of one's own. */
const first = <A>(answers: ReadonlyArray<A>): A | undefined => answers[0]

/** The store boundary: database failures become `QueueStoreError { operation }`. */
const refail = (operation: string) => Failure.refail((cause) => new QueueStoreError({ operation, cause }))

/** Builds the store over the `SqlClient` and `Backend` in context, for the life of the scope. */
export const make = (
  options: Options = {}
): Effect.Effect<QueueStore.Store, never, SqlClient.SqlClient | Backend.Backend | Scope.Scope> =>
  Effect.gen(function* () {
    const sql = (yield* SqlClient.SqlClient).withoutTransforms()
    const backend = yield* Backend.Backend
    const committer = yield* GroupCommit.make(backend)
    const notify = options.notify ?? true
    const notifyInSql = notify && backend.kind === "postgres"
    const statements = Statements.make(sql, backend, { notifyInSql })
    const admin = Admin.make(sql, backend, statements)
    // The event log's triggers exist only once a queue records events; after an upgrade, create
    // them now if one already does. A store that cannot tell yet leaves it to the first queue
    // that turns events on.
    yield* Effect.ignore(admin.ensureEventTriggers)
    const leases = Leases.make(sql, statements)
    const messages = Messages.make(sql, statements, { notifyInSql })
    const pg = backend.dialect === "pg"
    const plan = Transaction.planOn(backend)

    /** In-process wake-up after a write, where the database does not deliver one (all but PostgreSQL). */
    const channels = new Map<number, string>()
    const channelOf = (queueId: number): string => {
      let channel = channels.get(queueId)
      if (channel === undefined) {
        channel = Statements.channel(queueId)
        if (channels.size > 10_000) channels.clear()
        channels.set(queueId, channel)
      }
      return channel
    }
    const signal = (queueId: number, payload: string): Effect.Effect<void> => {
      if (!notify || notifyInSql) return Effect.void
      const channel = channelOf(queueId)
      return backend.notifications.listening(channel)
        ? Effect.ignore(backend.notifications.notify(channel, payload))
        : Effect.void
    }

    // ---- sends ------------------------------------------------------------------------------

    /** Consumers of `name` woken once a send stored something. */
    const signalled =
      (name: string) =>
      <E>(
        sent: Effect.Effect<QueueStore.Sent | undefined, E>
      ): Effect.Effect<QueueStore.Sent | undefined, E> =>
        Effect.tap(sent, (stored) => (stored === undefined ? Effect.void : signal(stored.queueId, name)))

    // Single unkeyed sends of one event-loop turn are one write per group: on PostgreSQL one
    // autocommit statement, elsewhere one plan (one multi-row INSERT), re-run only when it provably
    // rolled back. A group of one is the plain single statement. Single acknowledgements likewise
    // on PostgreSQL. On better-sqlite3 a send that runs at once (not grouped) is one synchronous
    // step of the caller: BEGIN IMMEDIATE, the INSERT, COMMIT (`Retry.planNow`, `sendNow`).
    const planNow = Retry.planNow(backend)
    const sendTurn = yield* GroupCommit.batcher(
      (items: ReadonlyArray<Statements.Single>) =>
        answers(
          pg
            ? Effect.mapError(statements.insertMany(items), Transaction.autocommitFailure)
            : Retry.run(Retry.plan(statements.insertManyPlan(items), backend))
        ),
      {
        now:
          planNow &&
          ((item: Statements.Single) => {
            const sent = planNow(statements.insertManyPlan([item]))
            return sent && (Done.isDone(sent) ? Exit.map(sent, first) : Effect.map(sent, first))
          })
      }
    )
    const ackTurn = (action: "Delete" | "Archive") =>
      GroupCommit.batcher(
        (
          items: ReadonlyArray<{
            readonly name: string
            readonly held: QueueStore.HeldLease
            readonly now: number
          }>
        ) => answers(Effect.mapError(leases.ackMany(action, items), DbError.classify))
      )
    const deleteTurn = yield* ackTurn("Delete")
    const archiveTurn = yield* ackTurn("Archive")

    const send: QueueStore.Store["send"] = (name, messages, now) =>
      Effect.flatMap(callerTransaction, (joined) => {
        const first = messages[0]
        if (joined) return plan(statements.sendPlan(name, messages, now))
        if (messages.length === 1 && first !== undefined && first.dedupKey === undefined) {
          return sendTurn({ name, message: first, now })
        }
        if (
          messages.length > 0 &&
          messages.every((message) => message.dedupKey !== undefined && message.dedupMode === "ignore")
        ) {
          // Insert-or-ignore on (queue, key), then select by key: re-running it cannot duplicate.
          // (A replacing send is not re-run: its message may have been leased in between.)
          return Retry.run(
            Retry.keyed({
              key: `${name}:${first?.dedupKey ?? ""}`,
              write: plan(statements.sendPlan(name, messages, now)),
              read: plan(statements.keyedPlan(name, messages), { begin: "lazy" })
            })
          )
        }
        return Retry.run(Retry.plan(statements.sendPlan(name, messages, now), backend))
      }).pipe(signalled(name), refail("send"))

    const signalNow = notify && !notifyInSql ? backend.notifications.notifyNow : undefined
    const refailSend = Failure.refailOne((cause) => new QueueStoreError({ operation: "send", cause }))
    const sendNow: QueueStore.Store["sendNow"] =
      planNow &&
      ((name, message, now) => {
        if (message.dedupKey !== undefined) return undefined
        const sent = sendTurn.now({ name, message, now })
        if (sent === undefined) return undefined
        if (!Done.isDone(sent)) return sent.pipe(signalled(name), refail("send"))
        if (Exit.isFailure(sent)) return Exit.mapError(sent, refailSend)
        const stored = sent.value
        if (stored !== undefined) {
          if (signalNow === undefined) return Effect.as(signal(stored.queueId, name), stored)
          signalNow(channelOf(stored.queueId), name)
        }
        return Exit.succeed(stored)
      })

    // ---- leases -----------------------------------------------------------------------------

    const leaseInPlan = (name: string, request: QueueStore.LeaseRequest) =>
      Retry.run(Retry.plan(leases.leasePlan(name, request), backend, { begin: "lazy" }))

    const lease: QueueStore.Store["lease"] = (name, request) =>
      Effect.flatMap(
        callerTransaction,
        (joined): Effect.Effect<QueueStore.Leases | undefined, SqlError | Failure.Cause> =>
          pg && !joined
            ? Effect.flatMap(leases.leaseAlone(name, request), (taken) =>
                taken === "limited" ? leaseInPlan(name, request) : Effect.succeed(taken)
              )
            : leaseInPlan(name, request)
      ).pipe(refail("lease"))

    const settleAlone = (
      name: string,
      request: QueueStore.SettleRequest
    ): Effect.Effect<QueueStore.Settled | undefined, SqlError | Failure.Cause> => {
      const [held] = request.leases
      const { settlement } = request
      if (pg && held !== undefined && (settlement._tag === "Delete" || settlement._tag === "Archive")) {
        return (settlement._tag === "Delete" ? deleteTurn : archiveTurn)({ name, held, now: request.now })
      }
      return pg
        ? Retry.run(Retry.plan(leases.settlePlan(name, request), backend))
        : Retry.run(Retry.grouped(committer, leases.settlePlan(name, request)))
    }

    const settle: QueueStore.Store["settle"] = (name, request) =>
      Effect.flatMap(
        callerTransaction,
        (joined): Effect.Effect<QueueStore.Settled | undefined, SqlError | Failure.Cause> => {
          if (joined) return plan(leases.settlePlan(name, request))
          if (request.leases.length === 1) return settleAlone(name, request)
          return Retry.run(Retry.plan(leases.settlePlan(name, request), backend))
        }
      ).pipe(
        Effect.tap((settled) => {
          const { settlement } = request
          return settled !== undefined &&
            settlement._tag === "Release" &&
            settlement.delayMs === 0 &&
            settled.dead.length < request.leases.length - settled.lost.length
            ? signal(settled.queueId, name)
            : Effect.void
        }),
        refail(`settle:${request.settlement._tag.toLowerCase()}`)
      )

    const wakeups: QueueStore.Store["wakeups"] = (name) =>
      Effect.map(Retry.run(Retry.read(admin.queueId(name))).pipe(refail("listen")), (id) =>
        id === undefined
          ? undefined
          : Stream.mapError(
              Stream.map(
                backend.notifications.listen(Statements.channel(id)),
                (payload): QueueStore.Wakeup => (payload === Messages.cancelPayload ? "cancel" : "send")
              ),
              (cause) => new QueueStoreError({ operation: "listen", cause })
            )
      )

    const requeueDead: QueueStore.Store["requeueDead"] = (name, selection, now) =>
      Effect.tap(admin.requeueDead(name, selection, now), (moved) =>
        moved === undefined || moved.ids.length === 0 ? Effect.void : signal(moved.queueId, name)
      ).pipe(
        Effect.map((moved) => moved?.ids),
        refail("requeueDead")
      )

    // ---- one message by id ----------------------------------------------------------------------

    const cancel: QueueStore.Store["cancel"] = (name, id, now) =>
      Retry.run(Retry.plan(messages.cancelPlan(name, id, now), backend)).pipe(
        Effect.tap((done) =>
          done?.outcome === "cancelledLeased" ? signal(done.queueId, Messages.cancelPayload) : Effect.void
        ),
        Effect.map((done) => done?.outcome),
        refail("cancel")
      )

    const update: QueueStore.Store["update"] = (name, id, change, now) =>
      Retry.run(Retry.plan(messages.updatePlan(name, id, change, now), backend)).pipe(
        Effect.tap((done) =>
          done?.outcome === "updated" && change.availableAt !== undefined && change.availableAt <= now
            ? signal(done.queueId, name)
            : Effect.void
        ),
        Effect.map((done) => done?.outcome),
        refail("update")
      )

    const lostLeases: QueueStore.Store["lostLeases"] = (name, held) =>
      Retry.run(Retry.read(plan(messages.lostLeasesPlan(name, held), { begin: "lazy" }))).pipe(
        refail("lostLeases")
      )

    const listMessages: QueueStore.Store["listMessages"] = (name, query) =>
      Retry.run(Retry.read(plan(messages.listPlan(name, query), { begin: "lazy" }))).pipe(
        refail("listMessages")
      )

    const getMessage: QueueStore.Store["getMessage"] = (name, id, now) =>
      Retry.run(Retry.read(plan(messages.getPlan(name, id, now), { begin: "lazy" }))).pipe(
        refail("getMessage")
      )

    const setProgress: QueueStore.Store["setProgress"] = (name, lease, progress) =>
      Retry.run(Retry.plan(messages.progressPlan(name, lease, progress), backend)).pipe(refail("setProgress"))

    return {
      ...admin.operations,
      ...Events.make(sql, backend),
      getMessage,
      listMessages,
      setProgress,
      cancel,
      update,
      lostLeases,
      send,
      sendNow,
      lease,
      settle,
      requeueDead,
      wakeups
    }
  })

/** The store as a layer over the `SqlClient` and `Backend` in context. */
export const layer = (
  options: Options = {}
): Layer.Layer<QueueStore.QueueStore, never, SqlClient.SqlClient | Backend.Backend> =>
  Layer.scoped(QueueStore.QueueStore, make(options))
