package checksum

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

const userA = "5f9a3f2e-1c2b-4d5e-8f70-123456789abc"
const userB = "0b2c4d6e-8f10-4a2b-9c3d-fedcba987654"

// TestCanonicalRFC8785 checks the canonicaliser against the examples of
// RFC 8785 (section 3.2.2's sample, section 3.2.3's sorting sample, and
// the structures and arrays of the reference implementation's test data).
func TestCanonicalRFC8785(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{
			name: "values (RFC 8785 section 3.2.2)",
			in: `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`,
			want: `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`,
		},
		{
			name: "sorting by UTF-16 code units (RFC 8785 section 3.2.3)",
			in: `{
  "\u20ac": "Euro Sign",
  "\r": "Carriage Return",
  "\u000a": "Newline",
  "1": "One",
  "\u0080": "Control\u007f",
  "\ud83d\ude02": "Smiley",
  "\u00f6": "Latin Small Letter O With Diaeresis",
  "\ufb33": "Hebrew Letter Dalet With Dagesh",
  "</script>": "Browser Challenge"
}`,
			want: "{\"\\n\":\"Newline\",\"\\r\":\"Carriage Return\",\"1\":\"One\",\"</script>\":\"Browser Challenge\"," +
				"\"\u0080\":\"Control\u007f\",\"ö\":\"Latin Small Letter O With Diaeresis\",\"€\":\"Euro Sign\"," +
				"\"😂\":\"Smiley\",\"\ufb33\":\"Hebrew Letter Dalet With Dagesh\"}",
		},
		{
			name: "nested structures",
			in: `{
  "1": {"f": {"f": "hi","F": 5} ,"\n": 56.0},
  "10": { },
  "": "empty",
  "a": { },
  "111": [ {"e": "yes","E": "no" } ],
  "A": { }
}`,
			want: `{"":"empty","1":{"\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{"E":"no","e":"yes"}],"A":{},"a":{}}`,
		},
		{
			name: "arrays",
			in:   "[\n  56,\n  {\n    \"d\": true,\n    \"10\": null,\n    \"1\": [ ]\n  }\n]\n",
			want: `[56,{"1":[],"10":null,"d":true}]`,
		},
		{
			name: "locale is ignored",
			in:   `{"peach":"1","p\u00e9ch\u00e9":"2","p\u00eache":"3","sin":"4"}`,
			want: `{"peach":"1","péché":"2","pêche":"3","sin":"4"}`,
		},
		{name: "literal", in: "  true ", want: "true"},
		{name: "string", in: `"this is a test string 1235"`, want: `"this is a test string 1235"`},
		// Number serialisation (RFC 8785 section 3.2.2.3 and appendix B).
		{name: "negative zero", in: `-0`, want: `0`},
		{name: "1E30", in: `1E30`, want: `1e+30`},
		{name: "4.50", in: `4.50`, want: `4.5`},
		{name: "2e-3", in: `2e-3`, want: `0.002`},
		{name: "1e-27", in: `0.000000000000000000000000001`, want: `1e-27`},
		{name: "1e21", in: `1e21`, want: `1e+21`},
		{name: "1e20 is written out", in: `1e20`, want: `100000000000000000000`},
		{name: "0.000001 stays decimal", in: `1e-6`, want: `0.000001`},
		{name: "1e-7 becomes exponent", in: `0.0000001`, want: `1e-7`},
		{name: "2^53", in: `9007199254740992`, want: `9007199254740992`},
		{name: "appendix B 295147905179352830000", in: `295147905179352830000`, want: `295147905179352830000`},
		{name: "smallest denormal", in: `5e-324`, want: `5e-324`},
		{name: "largest double", in: `1.7976931348623157e308`, want: `1.7976931348623157e+308`},
		{name: "56.0", in: `56.0`, want: `56`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Canonical(json.RawMessage(tt.in))
			if err != nil {
				t.Fatalf("Canonical: %v", err)
			}
			if string(got) != tt.want {
				t.Fatalf("Canonical =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestCanonicalRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		value any
	}{
		{"duplicate key", json.RawMessage(`{"a":1,"a":2}`)},
		{"not JSON", json.RawMessage(`{"a":`)},
		{"trailing data", json.RawMessage(`{} {}`)},
		{"nil raw", json.RawMessage(nil)},
		{"unencodable Go value", make(chan int)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, err := Canonical(tt.value); err == nil {
				t.Fatalf("Canonical = %s, want an error", got)
			}
		})
	}
}

// TestSumIgnoresSerialisation: the same value written in other ways (key
// order, number format, escapes, whitespace, Go structs) has one checksum.
func TestSumIgnoresSerialisation(t *testing.T) {
	t.Parallel()
	type result struct {
		Status string  `json:"status"`
		Score  float64 `json:"score"`
		Ref    string  `json:"ref"`
	}
	forms := []any{
		json.RawMessage(`{"ref":"é-1","score":4.5,"status":"APPROVED_VERIFIED"}`),
		json.RawMessage(`{ "status" : "APPROVED_VERIFIED", "score": 4.50, "ref": "\u00e9-1" }`),
		json.RawMessage(`{"score":45e-1,"ref":"\u00E9-1","status":"APPROVED_VERIFIED"}`),
		[]byte(`{"status":"APPROVED_VERIFIED","ref":"é-1","score":0.45E1}`),
		map[string]any{"status": "APPROVED_VERIFIED", "score": 4.5, "ref": "é-1"},
		result{Status: "APPROVED_VERIFIED", Score: 4.5, Ref: "é-1"},
	}
	want, err := Sum(testKey, userA, forms[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 64 || strings.ToLower(want) != want {
		t.Fatalf("Sum = %q, want 64 lower-case hex digits", want)
	}
	for i, f := range forms[1:] {
		got, err := Sum(testKey, userA, f)
		if err != nil {
			t.Fatalf("form %d: %v", i+1, err)
		}
		if got != want {
			t.Fatalf("form %d: Sum = %s, want %s", i+1, got, want)
		}
	}
	// Different user, different key or different value: different sum.
	for name, f := range map[string]func() (string, error){
		"other user":  func() (string, error) { return Sum(testKey, userB, forms[0]) },
		"other key":   func() (string, error) { return Sum([]byte("another key"), userA, forms[0]) },
		"other value": func() (string, error) { return Sum(testKey, userA, json.RawMessage(`{"status":"DENIED_FRAUD"}`)) },
	} {
		got, err := f()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got == want {
			t.Fatalf("%s: same checksum as the original", name)
		}
	}
	// Without a separator between user id and value, user "u" with 12 and
	// user "u1" with 2 would hash the same bytes.
	s1, err1 := Sum(testKey, "u", json.RawMessage(`12`))
	s2, err2 := Sum(testKey, "u1", json.RawMessage(`2`))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if s1 == s2 {
		t.Fatal(`user "u" with 12 and user "u1" with 2 share a checksum`)
	}
}

func TestSumRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		key    []byte
		userID string
		value  any
	}{
		{"empty key", nil, userA, 1},
		{"empty user", testKey, "", 1},
		{"zero byte in user", testKey, "a\x00b", 1},
		{"bad JSON", testKey, userA, json.RawMessage(`{`)},
		{"unencodable func", testKey, userA, []any{func() {}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, err := Sum(tt.key, tt.userID, tt.value); err == nil {
				t.Fatalf("Sum = %s, want an error", got)
			}
		})
	}
}

// stored turns Seal's fields into what a Marketplace API read returns.
func stored(t testing.TB, fields map[string]any) map[string]json.RawMessage {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSealVerify(t *testing.T) {
	t.Parallel()
	value := map[string]any{"status": "APPROVED_VERIFIED", "scan": "7f3c", "at": 1702416920, "score": 4.5}
	fields, err := Seal(testKey, userA, "idVerification", value)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fields["idVerificationChecksum"].(string); !ok || len(fields) != 2 {
		t.Fatalf("Seal = %v, want the value and idVerificationChecksum", fields)
	}
	good := stored(t, fields)
	sum := good["idVerificationChecksum"]

	with := func(changes map[string]string) map[string]json.RawMessage {
		pd := map[string]json.RawMessage{"other": json.RawMessage(`"kept"`)}
		for k, v := range good {
			pd[k] = v
		}
		for k, v := range changes {
			if v == "" {
				delete(pd, k)
			} else {
				pd[k] = json.RawMessage(v)
			}
		}
		return pd
	}
	tests := []struct {
		name        string
		key         []byte
		user        string
		privateData map[string]json.RawMessage
		want        Status
	}{
		{"as sealed", testKey, userA, with(nil), Valid},
		{"re-serialised by the platform", testKey, userA, with(map[string]string{
			"idVerification": `{ "score": 4.50, "status": "APPROVED_VERIFIED", "scan": "\u0037f3c", "at": 1.70241692E9 }`,
		}), Valid},
		{"edited value", testKey, userA, with(map[string]string{
			"idVerification": `{"at":1702416920,"scan":"7f3c","score":4.5,"status":"DENIED_FRAUD"}`,
		}), Tampered},
		{"extra field", testKey, userA, with(map[string]string{
			"idVerification": `{"admin":true,"at":1702416920,"scan":"7f3c","score":4.5,"status":"APPROVED_VERIFIED"}`,
		}), Tampered},
		{"another user's sealed value", testKey, userB, with(nil), Tampered},
		{"other key", []byte("rotated"), userA, with(nil), Tampered},
		{"checksum removed", testKey, userA, with(map[string]string{"idVerificationChecksum": ""}), Tampered},
		{"checksum not a string", testKey, userA, with(map[string]string{"idVerificationChecksum": `123`}), Tampered},
		{"checksum not hex", testKey, userA, with(map[string]string{"idVerificationChecksum": `"zz"`}), Tampered},
		{"checksum truncated", testKey, userA, with(map[string]string{"idVerificationChecksum": string(sum[:20]) + `"`}), Tampered},
		{"value not JSON", testKey, userA, with(map[string]string{"idVerification": `{"at":`}), Tampered},
		{"value removed", testKey, userA, with(map[string]string{"idVerification": ""}), Missing},
		{"nothing there", testKey, userA, map[string]json.RawMessage{}, Missing},
		{"nil privateData", testKey, userA, nil, Missing},
		{"empty key", nil, userA, with(nil), Tampered},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v, st := Verify(tt.key, tt.user, "idVerification", tt.privateData)
			if st != tt.want {
				t.Fatalf("Verify = %v, want %v", st, tt.want)
			}
			if (st == Valid) != (v != nil) {
				t.Fatalf("Verify returned value %s with status %v; want a value exactly when valid", v, st)
			}
			if st == Valid && !bytes.Equal(v, tt.privateData["idVerification"]) {
				t.Fatalf("value = %s, want %s", v, tt.privateData["idVerification"])
			}
		})
	}
}

func TestSealRefuses(t *testing.T) {
	t.Parallel()
	if _, err := Seal(testKey, userA, "", 1); err == nil {
		t.Fatal("Seal with an empty name succeeded")
	}
	if _, err := Seal(testKey, userA, "x", json.RawMessage(`{"a":1,"a":1}`)); err == nil {
		t.Fatal("Seal of a value with a duplicate key succeeded")
	}
	if _, err := Seal(nil, userA, "x", 1); err == nil {
		t.Fatal("Seal with no key succeeded")
	}
}

func TestStatusString(t *testing.T) {
	t.Parallel()
	for st, want := range map[Status]string{Valid: "valid", Missing: "missing", Tampered: "tampered", Status(9): "Status(9)"} {
		if st.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(st), st.String(), want)
		}
	}
}

// FuzzSealVerify: whatever JSON is sealed verifies, in any serialisation
// with the same canonical form, and a one-byte change that changes the
// canonical form (or breaks the JSON) is reported as tampered.
func FuzzSealVerify(f *testing.F) {
	for _, s := range []string{
		`{"status":"APPROVED_VERIFIED","score":4.50}`,
		`[1e30, 2e-3, "\u00e9", null, true]`,
		`{"b":{"a":[{},[]]},"a":"x"}`,
		`"plain"`,
		`0`,
		` {"a" : 1} `,
	} {
		f.Add([]byte(s), uint(3), byte('1'))
	}
	f.Fuzz(func(t *testing.T, data []byte, pos uint, b byte) {
		canon, err := Canonical(json.RawMessage(data))
		if err != nil {
			return
		}
		fields, err := Seal(testKey, userA, "v", json.RawMessage(data))
		if err != nil {
			t.Fatalf("Seal of canonicalisable %q: %v", data, err)
		}
		pd := stored(t, fields)
		if _, st := Verify(testKey, userA, "v", pd); st != Valid {
			t.Fatalf("Verify(Seal(%q)) = %v", data, st)
		}
		// The value as the user sent it, not only as Seal wrote it.
		pd["v"] = json.RawMessage(data)
		if _, st := Verify(testKey, userA, "v", pd); st != Valid {
			t.Fatalf("Verify of original serialisation %q = %v", data, st)
		}
		if _, st := Verify(testKey, userB, "v", pd); st != Tampered {
			t.Fatalf("Verify for another user = %v", st)
		}

		mutated := bytes.Clone(data)
		mutated[pos%uint(len(mutated))] = b
		pd["v"] = json.RawMessage(mutated)
		_, st := Verify(testKey, userA, "v", pd)
		mcanon, err := Canonical(json.RawMessage(mutated))
		switch {
		case err != nil || !bytes.Equal(mcanon, canon):
			if st != Tampered {
				t.Fatalf("mutated %q -> %q (canonical %q -> %q): Verify = %v, want tampered", data, mutated, canon, mcanon, st)
			}
		default:
			if st != Valid {
				t.Fatalf("mutated %q -> %q keeps canonical form %q: Verify = %v, want valid", data, mutated, canon, st)
			}
		}
	})
}
