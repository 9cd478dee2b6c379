/**
 * @keel/testkit: the backend matrix, fault injection and child processes for Keel's tests.
 * The first three live in `@keel/sql`'s own test support (its tests need them, and `@keel/sql`
 * never depends on this package); they are re-exported here for every other package's tests.
 */
export * as Bundle from "@keel/sql/test/Bundle"
export * as Faults from "@keel/sql/test/Faults"
export * as Processes from "@keel/sql/test/Processes"
export * as TestDatabase from "@keel/sql/test/TestDatabase"
export * as Files from "./Files.js"
export * as PrivatePostgres from "./PrivatePostgres.js"
export * as Seed from "./Seed.js"
export * as Tmpfs from "./Tmpfs.js"
