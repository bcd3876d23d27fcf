package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
)

// Batches travel to SQLite as bound parameters of multi-row statements,
// prepared once for each power-of-two row count up to maxChunk. A batch is
// sent in chunks of maxChunk rows, the rest padded with NULL rows up to the
// next size, which every statement ignores. Rows used to travel as one JSON
// array read by json_each: SQLite then parsed the array, rebuilt each
// element as text and parsed it again for every column, payloads included,
// which was a third of the writer's CPU.
const (
	maxChunk   = 128 // rows per statement: ≤ 9×128 parameters, far below SQLite's limit
	numSizes   = 8   // 1, 2, 4, … maxChunk
	maxKindsIn = 64  // claims with more kinds than this filter through json_each
	numKindSz  = 7   // 1, 2, 4, … maxKindsIn
)

// Chunked statements. The ones that write say OR FAIL: a multi-row
// statement that may abort makes SQLite copy every page it changes to a
// statement journal first, so the statement alone can be undone; the
// writer undoes its whole transaction on any error instead, so it has no
// use for that copy (a tenth of the writer's time).
const (
	chunkFindKeys = iota
	chunkInsertJobs
	chunkInsertKeys
	chunkFinish
	chunkClaimLapsed
	chunkClaimDue
	numChunked
)

// sizeIndex returns the index of the smallest size (a power of two) that
// holds n rows, n ≥ 1.
func sizeIndex(n int) int {
	i := 0
	for 1<<i < n {
		i++
	}
	return i
}

// placeholders appends rows groups of cols "?" each: "(?,?),(?,?)".
func placeholders(b *strings.Builder, rows, cols int) {
	for r := 0; r < rows; r++ {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := 0; c < cols; c++ {
			if c > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	}
}

// Columns of one row in each chunked statement.
const (
	findKeyCols   = 1
	insertJobCols = 10 // id, kind, queue, payload, state, attempt, max_attempts, run_at, lease_until, dedupe_key
	insertKeyCols = 2  // key, job_id
	finishCols    = 6  // id, attempt, state, run_at, error, at
)

// chunkSQL returns the text of chunked statement k for rows rows (for the
// claims, rows is the number of kinds). Parameters are positional, in the
// order they appear in the text.
func chunkSQL(k, rows int) string {
	var b strings.Builder
	switch k {
	case chunkFindKeys:
		// NULL padding matches no key.
		b.WriteString(`SELECT key, job_id FROM backlot_job_dedupe WHERE key IN (`)
		for i := 0; i < rows; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteByte('?')
		}
		b.WriteByte(')')
	case chunkInsertJobs:
		// The first parameter is created_at; padding rows have a NULL id.
		b.WriteString(`INSERT OR FAIL INTO backlot_jobs
			(id, kind, queue, payload, state, attempt, max_attempts, run_at, lease_until, dedupe_key, created_at)
			SELECT column1, column2, column3, column4, column5, column6, column7, column8, column9, column10, ?
			FROM (VALUES `)
		placeholders(&b, rows, insertJobCols)
		b.WriteString(`) WHERE column1 IS NOT NULL`)
	case chunkInsertKeys:
		b.WriteString(`INSERT OR FAIL INTO backlot_job_dedupe (key, job_id, created_at)
			SELECT column1, column2, ? FROM (VALUES `)
		placeholders(&b, rows, insertKeyCols)
		b.WriteString(`) WHERE column1 IS NOT NULL`)
	case chunkFinish:
		// Padding rows have a NULL id, which joins nothing.
		b.WriteString(`WITH f (id, attempt, state, run_at, err, at) AS (VALUES `)
		placeholders(&b, rows, finishCols)
		b.WriteString(`) ` + finishUpdate)
	case chunkClaimLapsed, chunkClaimDue:
		q := claimLapsedSQL
		if k == chunkClaimDue {
			q = claimDueSQL
		}
		var in strings.Builder
		for i := 0; i < rows; i++ {
			if i > 0 {
				in.WriteByte(',')
			}
			in.WriteString("?" + strconv.Itoa(claimKindsParam+i))
		}
		b.WriteString(strings.Replace(q, claimKindsFilter, in.String(), 1))
	default:
		panic(fmt.Sprintf("sqlite: unknown chunked statement %d", k))
	}
	return b.String()
}

// chunkSizes returns how many sizes chunked statement k is prepared for.
func chunkSizes(k int) int {
	if k == chunkClaimLapsed || k == chunkClaimDue {
		return numKindSz
	}
	return numSizes
}

// chunkStmt binds chunked statement k for rows rows (rounded up to its
// size) to tx. Before prepareJobStmts has run it prepares on tx instead.
func (db *DB) chunkStmt(ctx context.Context, tx *sql.Tx, k, rows int) (*sql.Stmt, int, error) {
	i := sizeIndex(rows)
	var st *sql.Stmt
	ready := false
	// TryLock: see stmt (prepareJobStmts may hold mu waiting for tx's writer).
	if db.jobs.mu.TryLock() {
		st, ready = db.jobs.chunks[k][i], db.jobs.ready
		db.jobs.mu.Unlock()
	}
	if ready {
		return tx.StmtContext(ctx, st), 1 << i, nil
	}
	st, err := tx.PrepareContext(ctx, chunkSQL(k, 1<<i))
	if err != nil {
		return nil, 0, fmt.Errorf("prepare: %w", err)
	}
	return st, 1 << i, nil
}

// execChunks runs chunked statement k over n rows of cols columns each:
// rowArgs appends row i's arguments, head arguments come before every
// chunk's rows. args is scratch space, returned for reuse.
func (db *DB) execChunks(ctx context.Context, tx *sql.Tx, k, n, cols int, head []any, args []any,
	rowArgs func(args []any, i int) []any) ([]any, error) {
	for start := 0; start < n; start += maxChunk {
		rows := min(n-start, maxChunk)
		st, size, err := db.chunkStmt(ctx, tx, k, rows)
		if err != nil {
			return args, err
		}
		args = append(args[:0], head...)
		for i := start; i < start+rows; i++ {
			args = rowArgs(args, i)
		}
		for i := (size - rows) * cols; i > 0; i-- {
			args = append(args, nil)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return args, err
		}
	}
	return args, nil
}
