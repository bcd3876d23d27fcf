package testutil

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumNames are Debian's and Ubuntu's names for the browser.
var chromiumNames = []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "chromium", "chromium-browser"}

// Chromium returns the path of the chromium binary. When there is none the
// test is skipped, except under CI=true, where a missing browser fails it
// (SPEC 9).
func Chromium(t testing.TB) string {
	t.Helper()
	for _, n := range chromiumNames {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	err := errors.New("chromium not found (apt-get install chromium)")
	if os.Getenv("CI") == "true" {
		t.Fatal(err)
	}
	t.Skip(err.Error())
	return ""
}

// ChromiumOptions are the allocator options for a headless test browser
// with a fresh profile in dir: no sandbox (tests run as root in
// containers), no GPU, no QUIC, and none of the background traffic a
// desktop browser makes, so the only requests are the test's own.
func ChromiumOptions(path, dir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(dir),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("password-store", "basic"),
	}
}

// Browser starts a headless chromium for the test and returns a chromedp
// context for its first tab; the browser is closed at cleanup. Derive
// per-step timeouts from the returned context, never the first Run's.
func Browser(t testing.TB) context.Context {
	t.Helper()
	path := Chromium(t)
	actx, acancel := chromedp.NewExecAllocator(context.Background(), ChromiumOptions(path, t.TempDir())...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		defer ccancel()
		_ = chromedp.Cancel(cctx)
		cancel()
		acancel()
	})
	// Start the browser now, so a broken installation fails here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	return ctx
}
