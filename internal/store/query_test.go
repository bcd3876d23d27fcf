package store

import (
	"slices"
	"strconv"
	"testing"
)

func TestConsoleJobConds(t *testing.T) {
	t.Parallel()
	question := func(int) string { return "?" }
	dollar := func(n int) string { return "$" + strconv.Itoa(n) }
	tests := []struct {
		name      string
		f         ConsoleJobFilter
		ph        Placeholder
		before    []any
		wantWhere string
		wantLimit string
		wantArgs  []any
	}{
		{"none", ConsoleJobFilter{}, dollar, nil, "", "$1", []any{7}},
		{"none after an argument", ConsoleJobFilter{}, dollar, []any{99}, "", "$2", []any{99, 7}},
		{"all, dollar", ConsoleJobFilter{State: "failed", Kind: "k", Queue: "q", DedupePrefix: "a_%", BeforeID: 5}, dollar, []any{99},
			` WHERE state = $2 AND ` + IndexedStatesSQL + ` AND kind = $3 AND queue = $4 AND dedupe_key LIKE $5 ESCAPE '\' AND id < $6`, "$7",
			[]any{99, "failed", "k", "q", `a\_\%%`, int64(5), 7}},
		{"running", ConsoleJobFilter{State: "running"}, question, nil,
			` WHERE state = ? AND state = 'running'`, "?", []any{"running", 7}},
		{"completed", ConsoleJobFilter{State: "completed"}, question, nil, ` WHERE state = ? AND state <> 'running'`, "?", []any{"completed", 7}},
		{"some, question", ConsoleJobFilter{Kind: "k", BeforeID: 5}, question, nil,
			` WHERE kind = ? AND id < ?`, "?", []any{"k", int64(5), 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := ConsoleJobConds(tt.f, tt.ph, tt.before...)
			if got := c.Where(); got != tt.wantWhere {
				t.Errorf("Where() = %q, want %q", got, tt.wantWhere)
			}
			if got := c.Arg(7); got != tt.wantLimit {
				t.Errorf("Arg() = %q, want %q", got, tt.wantLimit)
			}
			if !slices.Equal(c.Args(), tt.wantArgs) {
				t.Errorf("Args() = %#v, want %#v", c.Args(), tt.wantArgs)
			}
		})
	}
}

func TestConnectionCondsAndLimits(t *testing.T) {
	t.Parallel()
	c := NewConds(func(n int) string { return "$" + strconv.Itoa(n) })
	c.Add("(scope, name) > (%s, %s)", "s", "n")
	ConnectionConds(c, ConnectionFilter{Name: "acme", State: "active"})
	if got, want := c.Where(), " WHERE (scope, name) > ($1, $2) AND name = $3 AND state = $4"; got != want {
		t.Errorf("Where() = %q, want %q", got, want)
	}
	for _, tt := range []struct{ limit, job, conn int }{{0, 100, ConsolePageDefault}, {-1, 100, ConsolePageDefault}, {7, 7, 7}} {
		if got := (JobFilter{Limit: tt.limit}).PageLimit(); got != tt.job {
			t.Errorf("JobFilter{Limit: %d}.PageLimit() = %d, want %d", tt.limit, got, tt.job)
		}
		if got := (ConnectionFilter{Limit: tt.limit}).PageLimit(); got != tt.conn {
			t.Errorf("ConnectionFilter{Limit: %d}.PageLimit() = %d, want %d", tt.limit, got, tt.conn)
		}
	}
}
