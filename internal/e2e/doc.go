// Package e2e holds tests that run the real backlot binary as a separate
// process (built once per test binary, without -race) against real
// clients: the acceptance checks of `backlot serve`, the webhook crash
// tests, the examples, and a headless chromium driven through chromedp.
// It has no non-test code.
package e2e
