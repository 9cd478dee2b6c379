import { describe, expect, it } from "@effect/vitest"
import { DbError } from "@keel/sql"

const driverError = (code: string, message = "driver error") => Object.assign(new Error(message), { code })

describe("DbError.classify: can the statement have run?", () => {
  it.each([
    "ECONNREFUSED",
    "ENOTFOUND",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "EAI_AGAIN",
    "57P03",
    "08001",
    "08004",
    "53300"
  ])("%s happens before anything is sent: Unavailable", (code) => {
    expect(DbError.classify(driverError(code))._tag).toBe("Unavailable")
  })

  it.each(["ECONNRESET", "EPIPE", "ETIMEDOUT", "57P01", "57P02", "08006", "08003"])(
    "%s can end a connection with a statement in flight: ConnectionLost",
    (code) => {
      expect(DbError.classify(driverError(code))._tag).toBe("ConnectionLost")
    }
  )

  it("finds the code in the cause chain of an SqlError-like wrapper, and keeps no secret in the message", () => {
    const inner = driverError(
      "ECONNREFUSED",
      "connect ECONNREFUSED 127.0.0.1:5432 postgres://keel:hunter2@db/x"
    )
    const classified = DbError.classify({ message: "Failed to connect", cause: inner })
    expect(classified._tag).toBe("Unavailable")
    expect(classified.message).not.toContain("hunter2")
    expect(DbError.isTransient(classified)).toBe(false)
  })
})

describe("DbError.commitNeverApplied: may a failed COMMIT be called rolled back?", () => {
  it("yes when SQLite could not write the commit record (disk full), no for anything else", () => {
    expect(DbError.commitNeverApplied(DbError.classify(driverError("SQLITE_FULL")))).toBe(true)
    for (const code of ["SQLITE_BUSY", "SQLITE_IOERR_WRITE", "SQLITE_CORRUPT", "ECONNRESET", "40001"]) {
      expect(DbError.commitNeverApplied(DbError.classify(driverError(code))), code).toBe(false)
    }
  })
})
