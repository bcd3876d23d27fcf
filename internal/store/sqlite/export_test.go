package sqlite

// JobsFrom is jobsFrom, for the plan test.
var JobsFrom = jobsFrom

// ClaimDueSQL is the claim of due jobs of one kind.
var ClaimDueSQL = chunkSQL(chunkClaimDue, 1)
