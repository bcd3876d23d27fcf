package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"
	"math/big"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/backlothq/backlot/config"
)

// FuzzVerifyHeaders feeds arbitrary signature headers to every scheme: no
// panic, and nothing but the real signature is ever accepted.
func FuzzVerifyHeaders(f *testing.F) {
	f.Add("msg_1", "1614265330", vecSig, "t=1614265330,v1=00", "sha256=00", "AAAA", vecBody)
	f.Add("", "", "v1, v1,,", "t=,v1=", "sha256=", "====", "")
	f.Add("x", "-1", "v1,"+strings.Repeat("A", 200), "t=99999999999999999999,v1=zz", "sha256=zz", strings.Repeat("/", 90), "{}")
	vs := map[string]verifier{}
	for _, c := range []config.Verify{
		{Scheme: "standard", Secrets: []string{vecSecret}},
		{Scheme: "stripe", Secrets: []string{"whsec_s"}},
		{Scheme: "github", Secrets: []string{"gh"}},
		{Scheme: "shopify", Secrets: []string{"sh"}},
		{Scheme: "hmac", Secrets: []string{"hm"}, Header: "X-Sig", Encoding: "base64", Algorithm: "sha512"},
	} {
		v, err := newVerifier(c, 0)
		if err != nil {
			f.Fatal(err)
		}
		vs[c.Scheme] = v
	}
	now := time.Unix(vecTS, 0)
	f.Fuzz(func(t *testing.T, id, ts, sig, stripe, gh, b64, body string) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", sig)
		h.Set("Stripe-Signature", stripe)
		h.Set("X-Hub-Signature-256", gh)
		h.Set("X-Shopify-Hmac-Sha256", b64)
		h.Set("X-Sig", b64)
		sc := &scratch{}
		for name, v := range vs {
			o, _ := v.verify(h, []byte(body), now, sc)
			if o == outOK && name == "standard" {
				s, _ := NewStandardSigner(vecSecret)
				if !strings.Contains(sig, s.Sign(id, vecTS, []byte(body))[3:]) && ts == "1614265330" {
					t.Fatalf("standard accepted a signature that is not the real one: %q", sig)
				}
			}
		}
	})
}

// FuzzJSONLookup checks the scanner agrees with encoding/json on valid
// documents and never panics.
func FuzzJSONLookup(f *testing.F) {
	f.Add(`{"id":"x"}`, "id")
	f.Add(`{"a":{"id":12}}`, "a.id")
	f.Add(`{"a":[{"id":"q"}],"id":"\"z\""}`, "id")
	f.Fuzz(func(t *testing.T, doc, path string) {
		if !json.Valid([]byte(doc)) || path == "" {
			return
		}
		got := jsonLookup([]byte(doc), strings.Split(path, "."))
		var v any
		json.Unmarshal([]byte(doc), &v)
		for _, p := range strings.Split(path, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[p]
		}
		if s, ok := v.(string); ok && got != s {
			// Duplicate keys: encoding/json keeps the last, the scanner the first.
			if strings.Count(doc, `"`+strings.Split(path, ".")[0]+`"`) < 2 {
				t.Fatalf("jsonLookup(%q, %q) = %q, want %q", doc, path, got, s)
			}
		}
	})
}

// FuzzFormToJSON: any form that decodes becomes valid JSON.
func FuzzFormToJSON(f *testing.F) {
	f.Add("a=1&b=2&b=3")
	f.Add("x=%3Cb%3E&y=\xff")
	f.Fuzz(func(t *testing.T, form string) {
		out, err := formToJSON([]byte(form))
		if err == nil && !json.Valid(out) {
			t.Fatalf("formToJSON(%q) = %q, not JSON", form, out)
		}
	})
}

// FuzzStandardTimestamps varies the clock, the timestamp (any int64, or
// any string) and the signature, and asserts the Standard Webhooks
// verifier agrees with a reference written from the specification: a
// delivery is accepted exactly when its id, timestamp and signature are
// present, the timestamp is an integer within 5 minutes of now (computed
// without overflow), and one of the space-separated v1 signatures decodes
// to HMAC-SHA256(key, id.timestamp.body).
func FuzzStandardTimestamps(f *testing.F) {
	f.Add("msg_1", "", int64(0), vecTS, vecBody, true, "")
	f.Add("msg_1", "", int64(-9223372037), vecTS, vecBody, true, "")
	f.Add("msg_1", "", int64(301), vecTS, vecBody, true, "v1,AAAA")
	f.Add("msg_1", "", int64(-300), vecTS, "{}", true, "v1a,zz")
	f.Add("msg_1", "9223372036854775807", int64(0), int64(math.MaxInt64-10), "{}", true, "")
	f.Add("msg_1", "-9223372036854775808", int64(0), int64(math.MinInt64+10), "{}", true, "")
	f.Add("x", "+1614265330", int64(0), vecTS, vecBody, true, "")
	f.Add("", "1", int64(0), int64(1), "", false, "v1,"+vecSig[3:])
	v, err := newVerifier(config.Verify{Scheme: "standard", Secrets: []string{vecSecret}}, 0)
	if err != nil {
		f.Fatal(err)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(vecSecret, "whsec_"))
	if err != nil {
		f.Fatal(err)
	}
	tol := big.NewInt(int64(config.ToleranceDefault / time.Second))
	f.Fuzz(func(t *testing.T, id, tsRaw string, off, now int64, body string, real bool, junk string) {
		if tsRaw == "" {
			tsRaw = strconv.FormatInt(now+off, 10) // wraps like any int64 arithmetic: still an int64
		}
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + tsRaw + "." + body))
		want := mac.Sum(nil)
		sigs := junk
		if real {
			sigs = strings.TrimSpace("v1," + base64.StdEncoding.EncodeToString(want) + " " + junk)
		}
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", tsRaw)
		h.Set("webhook-signature", sigs)
		got, _ := v.verify(h, []byte(body), time.Unix(now, 0), &scratch{})

		ref := func() bool {
			// http.Header.Set keeps values as given; header() reads the first.
			id, tsRaw, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
			if id == "" || tsRaw == "" || sigs == "" {
				return false
			}
			ts, ok := new(big.Int).SetString(tsRaw, 10)
			if !ok || !ts.IsInt64() {
				return false
			}
			d := new(big.Int).Sub(ts, big.NewInt(now))
			if d.Abs(d).Cmp(tol) > 0 {
				return false
			}
			for _, tok := range strings.Split(sigs, " ") {
				s, ok := strings.CutPrefix(tok, "v1,")
				if !ok {
					continue
				}
				if b, err := base64.StdEncoding.DecodeString(s); err == nil && hmac.Equal(b, want) {
					return true
				}
			}
			return false
		}()
		if (got == outOK) != ref {
			t.Fatalf("id %q ts %q now %d sigs %q: verifier ok=%v, reference ok=%v", id, tsRaw, now, sigs, got == outOK, ref)
		}
	})
}
