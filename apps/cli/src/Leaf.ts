/**
 * Leaf commands (`keel port reserve`, `keel queue send`…) take the global options next to their
 * own (`{ …, globals: Globals.options }`) and run their program through `Leaf.run`: with the
 * merged `Globals` in context, reporting their own failure — one line on stderr, secrets
 * redacted — and ending as `Failure.Reported` carrying the exit code.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Failure from "./Failure.js"
import { type GlobalOptions, Globals, merge, RootGlobals } from "./GlobalOptions.js"
import * as Output from "./Output.js"

/** Prints the failure in `cause` for the running command and fails with its exit code. */
export const report = (cause: Cause.Cause<unknown>): Effect.Effect<never, Failure.Reported, Globals> =>
  Effect.gen(function* () {
    const globals = yield* Globals
    const described = Failure.describeCause(cause)
    const secrets = Failure.secretsOf(
      Option.getOrUndefined(Option.map(globals.db, Redacted.value)),
      process.env
    )
    yield* Output.stderr(Failure.render(described, { json: globals.json, verbose: globals.verbose, secrets }))
    return yield* new Failure.Reported({ exitCode: described.exitCode })
  })

/**
 * Runs a leaf's program with `Globals` = the leaf's flags over the root's. Any failure or defect
 * is reported and becomes `Reported`; an interruption passes through untouched.
 */
export const run = <E, R>(
  leaf: GlobalOptions,
  program: Effect.Effect<void, E, R>
): Effect.Effect<void, Failure.Reported, Exclude<R, Globals> | RootGlobals> =>
  Effect.flatMap(RootGlobals, (root) => {
    const reported: Effect.Effect<void, Failure.Reported, R | Globals> = Effect.catchAllCause(
      program,
      (cause): Effect.Effect<never, Failure.Reported, Globals> =>
        Cause.isInterruptedOnly(cause)
          ? Effect.failCause(Cause.map(cause, () => new Failure.Reported({ exitCode: 130 })))
          : report(cause)
    )
    return Effect.provideService(reported, Globals, merge(root, leaf))
  })

/**
 * `run` for a program that lives in a module loaded on demand: parsing and `--help` never load
 * the services, and each command loads only its own (cold start matters for shell scripts).
 */
export const lazy = <M, E, R>(
  leaf: GlobalOptions,
  load: () => Promise<M>,
  program: (module: M) => Effect.Effect<void, E, R>
): Effect.Effect<void, Failure.Reported, Exclude<R, Globals> | RootGlobals> =>
  run(leaf, Effect.flatMap(Effect.promise(load), program))
