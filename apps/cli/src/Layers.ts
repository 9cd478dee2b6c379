/**
 * The layers a command provides for itself, so each opens only what it uses: `keel port reserve`
 * builds the database and the reservation registry, nothing else, and `--help` builds nothing.
 * Every layer reads the DSN from the merged global options (`--db`, `KEEL_DB`, the default file).
 * Each lives in a module of `layers/` that imports only its own service, so that a bundle of one
 * command (the fast path, see `scripts/build.mjs`) leaves the others' services out.
 */
export { cursors } from "./layers/Cursors.js"
export { database, dsn } from "./layers/Database.js"
export { queue, schedules } from "./layers/Queue.js"
export { reservations } from "./layers/Reservations.js"
