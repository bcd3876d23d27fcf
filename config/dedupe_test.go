package config

import (
	"reflect"
	"testing"
)

func TestParseDedupe(t *testing.T) {
	t.Parallel()
	good := []struct {
		spec string
		want Dedupe
	}{
		{"", Dedupe{Kind: DedupeNone}},
		{"none", Dedupe{Kind: DedupeNone}},
		{"body", Dedupe{Kind: DedupeBody}},
		{"header:webhook-id", Dedupe{Kind: DedupeHeader, Header: "Webhook-Id"}},
		{"header:X-GitHub-Delivery", Dedupe{Kind: DedupeHeader, Header: "X-Github-Delivery"}},
		{"json:id", Dedupe{Kind: DedupeJSON, Path: []string{"id"}}},
		{"json:data.object.id", Dedupe{Kind: DedupeJSON, Path: []string{"data", "object", "id"}}},
	}
	for _, g := range good {
		got, err := ParseDedupe(g.spec)
		if err != nil || !reflect.DeepEqual(got, g.want) {
			t.Errorf("ParseDedupe(%q) = %+v, %v; want %+v", g.spec, got, err, g.want)
		}
	}
	for _, bad := range []string{"sha1", "header:", "header:bad name", "header:a:b", "json:", "json:a..b", "json:.a", "json:a b", "Body", "headers:x"} {
		if d, err := ParseDedupe(bad); err == nil {
			t.Errorf("ParseDedupe(%q) = %+v, want an error", bad, d)
		}
	}
	for scheme, want := range map[string]string{SchemeStandard: "header:webhook-id", SchemeStripe: "json:id", SchemeHMAC: "none", SchemeNone: "none"} {
		if got := DedupeDefault(scheme); got != want {
			t.Errorf("DedupeDefault(%s) = %q, want %q", scheme, got, want)
		}
		if _, err := ParseDedupe(DedupeDefault(scheme)); err != nil {
			t.Errorf("the default of %s does not parse: %v", scheme, err)
		}
	}
}
