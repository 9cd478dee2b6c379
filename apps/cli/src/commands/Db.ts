/**
 * `keel db migrate | status`: the schema of each package (queue, reservation, cursor), applied
 * and reported through `@keel/sql`'s `Migrations`. The programs live in `handlers/Db.ts`.
 */
import * as Command from "@effect/cli/Command"
import * as Globals from "../Globals.js"
import * as Leaf from "../Leaf.js"

const handlers = () => import("../handlers/Db.js")

const config = { globals: Globals.options }
/** `keel db migrate|status`'s parsed input. */
export type DbInput = Command.Command.ParseConfig<typeof config>

/** `keel db migrate`. */
export const migrate = Command.make("migrate", config, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.migrate(input))
).pipe(Command.withDescription("Apply every pending migration of every package; prints what was applied."))

/** `keel db status`. */
export const status = Command.make("status", config, (input) =>
  Leaf.lazy(input.globals, handlers, (run) => run.status(input))
).pipe(Command.withDescription("Applied and pending migrations per package."))

/** `keel db`. */
export const db = Command.make("db").pipe(
  Command.withDescription("The database: which one is used, its schema versions, migrations."),
  Command.withSubcommands([migrate, status])
)
