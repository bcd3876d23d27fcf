package main

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

func TestDevCommandRefuses(t *testing.T) {
	t.Parallel()
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	port := strconv.Itoa(hold.Addr().(*net.TCPAddr).Port)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"port taken", []string{"dev", "--port", port}, 1, "port " + port + " for the backlot"},
		{"port out of range", []string{"dev", "--port", "70000"}, 1, "port 70000"},
		{"not a number", []string{"dev", "--port", "x"}, 2, "invalid argument"},
		{"arguments", []string{"dev", "extra"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(tt.args, "--dir", t.TempDir())
			code, _, stderr := cli(t, args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d (%s)", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q lacks %q", stderr, tt.want)
			}
			checkPrefixed(t, stderr)
		})
	}
}

func TestDevHelp(t *testing.T) {
	t.Parallel()
	code, out, _ := cli(t, "dev", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"backlot dev [flags]", "--port", "--reset", "--reset-secrets", "--dir"} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}
