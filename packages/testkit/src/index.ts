/** @keel/testkit: the backend matrix, fault injection and child processes for Keel's tests. */
export * as Bundle from "./Bundle.js"
export * as Faults from "./Faults.js"
export * as Files from "./Files.js"
export * as PrivatePostgres from "./PrivatePostgres.js"
export * as Processes from "./Processes.js"
export * as Seed from "./Seed.js"
export * as TestDatabase from "./TestDatabase.js"
export * as Tmpfs from "./Tmpfs.js"
