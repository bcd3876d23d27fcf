package store

import (
	"context"

	"github.com/backlothq/backlot/jobs"
)

// CountCap is where the console's counts stop: a count of more is shown
// as "10,000+", so counting never walks a whole big table.
const CountCap = 10000

// ConsoleStore is what the admin console reads beyond the job engine's
// own queries: pages of jobs with their payloads cut short, capped counts
// from indexed queries, the distinct job kinds, and connections without
// their ciphertext.
type ConsoleStore interface {
	// ListJobSummaries returns jobs matching f newest first (keyset paging
	// by f.BeforeID), their payloads cut to at most PayloadMax bytes
	// (PayloadCut set on the ones cut). Never reads more than Limit rows.
	ListJobSummaries(ctx context.Context, f ConsoleJobFilter) ([]JobSummary, error)
	// CountJobsCapped counts jobs matching f, stopping at limit+1: a result
	// above limit means "more than limit".
	CountJobsCapped(ctx context.Context, f ConsoleJobFilter, limit int) (int64, error)
	// JobKinds returns up to limit distinct job kinds in name order, by an
	// index skip-scan (one probe per kind, not one per job).
	JobKinds(ctx context.Context, limit int) ([]string, error)
	// ListConnectionSummaries returns connections in (scope, name) order
	// after the given key, without their ciphertext.
	ListConnectionSummaries(ctx context.Context, f ConnectionFilter) ([]Connection, error)
}

// ConsoleJobFilter selects jobs for the console. Zero fields do not filter.
type ConsoleJobFilter struct {
	State jobs.State
	Kind  string
	Queue string
	// DedupePrefix keeps jobs whose dedupe key starts with it (a webhook
	// endpoint's deliveries: "webhook:<path>:").
	DedupePrefix string
	// BeforeID pages: only jobs with id < BeforeID.
	BeforeID int64
	// Limit bounds a page; default 50.
	Limit int
	// PayloadMax cuts payloads; default 2048 bytes.
	PayloadMax int
}

// JobSummary is a job as a list shows it.
type JobSummary struct {
	*jobs.Job
	// PayloadCut is set when Payload holds only the first PayloadMax bytes.
	PayloadCut bool
}

// ConnectionFilter pages connections.
type ConnectionFilter struct {
	// Name keeps one connection's rows; State one state.
	Name  string
	State string
	// AfterScope and AfterName page: rows after (AfterScope, AfterName).
	AfterScope, AfterName string
	// Limit defaults to 50.
	Limit int
}

// Defaults of ConsoleJobFilter.
const (
	ConsolePageDefault       = 50
	ConsolePayloadMaxDefault = 2048
)

// WithDefaults fills in Limit and PayloadMax.
func (f ConsoleJobFilter) WithDefaults() ConsoleJobFilter {
	if f.Limit <= 0 {
		f.Limit = ConsolePageDefault
	}
	if f.PayloadMax <= 0 {
		f.PayloadMax = ConsolePayloadMaxDefault
	}
	return f
}

// CutPayload cuts p to at most n bytes at a UTF-8 boundary and reports
// whether it cut.
func CutPayload(p []byte, n int) ([]byte, bool) {
	if len(p) <= n {
		return p, false
	}
	i := n
	for i > 0 && p[i]&0xC0 == 0x80 { // continuation byte: back up to a rune start
		i--
	}
	return p[:i], true
}

// EscapeLike escapes a LIKE pattern's wildcards with backslash (both
// backends take ESCAPE '\').
func EscapeLike(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\', '%', '_':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
