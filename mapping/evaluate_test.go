package mapping

import (
	"crypto/x509"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/certsync/certsync/mapping/pkitest"
)

func TestEvaluate(t *testing.T) {
	fx := newFixture(t)
	trustAll := func(fx *fixture) Policy {
		return Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert, fx.inter.Cert}}
	}
	strict := func(fx *fixture) Policy {
		p := trustAll(fx)
		p.RequireSKI, p.SkipExpired = true, true
		p.ExtKeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection, x509.ExtKeyUsageClientAuth}
		p.MaxCertificates = 15
		return p
	}
	tests := []struct {
		name   string
		values func(fx *fixture) []RawValue
		policy func(fx *fixture) Policy
		// accepted: "name:attr+attr" in order; rejected: "attr:name:code" in order
		accepted, rejected []string
		// reasons: rejection "attr:name" -> substrings of its Reason, in order
		reasons map[string][]string
		// exact: rejection "attr:name" -> its whole Reason
		exact map[string]string
	}{
		{
			name:     "valid DER",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("alice"))} },
			policy:   strict,
			accepted: []string{"alice:userCertificate"},
		},
		{
			name:     "valid in degenerate PKCS#7, chain not published",
			values:   func(fx *fixture) []RawValue { return []RawValue{smime(fx.degenerate("inter", "alice", "root"))} },
			policy:   strict,
			accepted: []string{"alice:userSMIMECertificate"},
		},
		{
			name:     "valid in Outlook signed PKCS#7 with chain",
			values:   func(fx *fixture) []RawValue { return []RawValue{smime(fx.outlook("alice", "inter", "root"))} },
			policy:   strict,
			accepted: []string{"alice:userSMIMECertificate"},
		},
		{
			name:     "CA certificate as DER value",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("inter"))} },
			policy:   trustAll,
			rejected: []string{"userCertificate:inter:ca-certificate"},
			exact:    map[string]string{"userCertificate:inter": "is a CA certificate, not an end-entity certificate"},
		},
		{
			name: "garbage, empty and CA-only PKCS#7 are malformed",
			values: func(fx *fixture) []RawValue {
				return []RawValue{
					uc(fx.blob("garbage", []byte("garbage bytes"))),
					smime(fx.blob("empty", []byte{})),
					smime(fx.blob("caOnly", fx.degenerate("inter", "root"))),
				}
			},
			policy: strict,
			rejected: []string{
				"userCertificate:garbage:malformed",
				"userSMIMECertificate:empty:malformed",
				"userSMIMECertificate:caOnly:malformed",
			},
			reasons: map[string][]string{
				"userCertificate:garbage":     {"not a DER certificate (x509: ", ") nor PKCS#7 SignedData ("},
				"userSMIMECertificate:empty":  {"empty value"},
				"userSMIMECertificate:caOnly": {"PKCS#7 SignedData holds no end-entity certificate"},
			},
		},
		{
			name:     "no SKI rejected when required",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("noSKI"))} },
			policy:   strict,
			rejected: []string{"userCertificate:noSKI:no-ski"},
			exact:    map[string]string{"userCertificate:noSKI": "has no subject key identifier (policy.requireSKI)"},
		},
		{
			name:     "no SKI accepted when not required",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("noSKI"))} },
			policy:   trustAll,
			accepted: []string{"noSKI:userCertificate"},
		},
		{
			name:     "foreign issuer",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("foreignLeaf"))} },
			policy:   strict,
			rejected: []string{"userCertificate:foreignLeaf:untrusted"},
			exact:    map[string]string{"userCertificate:foreignLeaf": "not issued by a trusted issuing CA (issuer CN=Foreign,O=certsync test): x509: certificate signed by unknown authority"},
		},
		{
			name:     "intermediate's leaf untrusted when only the root is listed",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("alice"))} },
			policy:   func(fx *fixture) Policy { return Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert}} },
			rejected: []string{"userCertificate:alice:untrusted"},
			reasons: map[string][]string{"userCertificate:alice": {
				"not issued by a trusted issuing CA (issuer CN=Issuing,O=certsync test): x509: "}},
		},
		{
			name:     "intermediate's leaf trusted through the listed intermediate",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("alice")), uc(fx.der("rootLeaf"))} },
			policy:   trustAll,
			accepted: []string{"alice:userCertificate", "rootLeaf:userCertificate"},
		},
		{
			name:   "trusting the intermediate alone",
			values: func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("alice")), uc(fx.der("rootLeaf"))} },
			policy: func(fx *fixture) Policy {
				return Policy{IssuingCAs: []*x509.Certificate{fx.inter.Cert}}
			},
			accepted: []string{"alice:userCertificate"},
			rejected: []string{"userCertificate:rootLeaf:untrusted"},
			reasons:  map[string][]string{"userCertificate:rootLeaf": {"(issuer CN=Root,O=certsync test)"}},
		},
		{
			name:     "no issuing CAs trusts nothing (never the system roots)",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("alice"))} },
			policy:   func(fx *fixture) Policy { return Policy{} },
			rejected: []string{"userCertificate:alice:untrusted"},
		},
		{
			name:     "the bag's intermediate leads to the trusted root",
			values:   func(fx *fixture) []RawValue { return []RawValue{smime(fx.outlook("alice", "inter", "root"))} },
			policy:   func(fx *fixture) Policy { return Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert}} },
			accepted: []string{"alice:userSMIMECertificate"},
		},
		{
			name: "a bag's intermediate serves the user's DER values too",
			values: func(fx *fixture) []RawValue {
				return []RawValue{uc(fx.der("bob")), smime(fx.outlook("alice", "inter"))}
			},
			policy:   func(fx *fixture) Policy { return Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert}} },
			accepted: []string{"alice:userSMIMECertificate", "bob:userCertificate"},
		},
		{
			name:     "a bag's own root does not make its leaf trusted",
			values:   func(fx *fixture) []RawValue { return []RawValue{smime(fx.degenerate("foreignLeaf", "foreign"))} },
			policy:   func(fx *fixture) Policy { return Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert}} },
			rejected: []string{"userSMIMECertificate:foreignLeaf:untrusted"},
		},
		{
			name:     "without the bag, the intermediate is missing",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("alice"))} },
			policy:   func(fx *fixture) Policy { return Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert}} },
			rejected: []string{"userCertificate:alice:untrusted"},
		},
		{
			name: "a SHA-1 signature has its own code",
			values: func(fx *fixture) []RawValue {
				return []RawValue{uc(fx.der("sha1Leaf")), smime(fx.degenerate("sha1Leaf", "inter"))}
			},
			policy:   func(fx *fixture) Policy { return Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert}} },
			rejected: []string{"userCertificate:sha1Leaf:sha1-signature", "userSMIMECertificate:sha1Leaf:sha1-signature"},
			reasons: map[string][]string{"userCertificate:sha1Leaf": {
				"its chain to a trusted issuing CA holds a SHA-1 signature (ECDSA-SHA1, on CN=sha1Leaf", "by CN=Issuing", "re-issue with SHA-256"}},
		},
		{
			name:     "a SHA-1 leaf of a stranger is untrusted",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("sha1Leaf"))} },
			policy:   func(fx *fixture) Policy { return Policy{IssuingCAs: []*x509.Certificate{fx.foreign.Cert}} },
			rejected: []string{"userCertificate:sha1Leaf:untrusted"},
		},
		{
			name: "an unparseable certificate of a bag is reported alone",
			values: func(fx *fixture) []RawValue {
				return []RawValue{smime(fx.blob("bag", bagOf(true, fx.der("alice"), fx.blob("broken", unparseableCert()), fx.der("inter"))))}
			},
			policy:   trustAll,
			accepted: []string{"alice:userSMIMECertificate"},
			rejected: []string{"userSMIMECertificate:broken:malformed"},
			reasons:  map[string][]string{"userSMIMECertificate:broken": {"certificate 2 of the PKCS#7 does not parse (its siblings are judged on their own): x509: "}},
		},
		{
			name:     "expired and not yet valid rejected with SkipExpired",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("expired")), uc(fx.der("future"))} },
			policy:   strict,
			rejected: []string{"userCertificate:expired:expired", "userCertificate:future:not-yet-valid"},
			exact: map[string]string{
				"userCertificate:expired": "expired on " + fx.cert("expired").NotAfter.UTC().Format(time.RFC3339) + " (policy.skipExpired)",
				"userCertificate:future":  "not valid before " + fx.cert("future").NotBefore.UTC().Format(time.RFC3339) + " (policy.skipExpired)",
			},
		},
		{
			name:     "expired and not yet valid accepted without SkipExpired",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("expired")), uc(fx.der("future"))} },
			policy:   trustAll,
			accepted: []string{"future:userCertificate", "expired:userCertificate"},
		},
		{
			name:     "expired but allowed still needs a trusted signature",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("allWrong"))} },
			policy:   trustAll,
			rejected: []string{"userCertificate:allWrong:untrusted"},
		},
		{
			name: "EKU missing, wrong, any",
			values: func(fx *fixture) []RawValue {
				return []RawValue{uc(fx.der("noEKU")), uc(fx.der("serverOnly")), uc(fx.der("anyEKU"))}
			},
			policy:   strict,
			accepted: []string{"anyEKU:userCertificate"},
			rejected: []string{"userCertificate:noEKU:eku", "userCertificate:serverOnly:eku"},
			exact: map[string]string{
				"userCertificate:noEKU":      "has no extended key usage; policy requires one of emailProtection, clientAuth",
				"userCertificate:serverOnly": "extended key usage serverAuth has none of emailProtection, clientAuth (policy.extendedKeyUsages)",
			},
		},
		{
			name: "EKU not checked when the policy names none",
			values: func(fx *fixture) []RawValue {
				return []RawValue{uc(fx.der("noEKU")), uc(fx.der("serverOnly"))}
			},
			policy:   trustAll,
			accepted: []string{"noEKU:userCertificate", "serverOnly:userCertificate"},
		},
		{
			name: "duplicates across attributes and encodings count once",
			values: func(fx *fixture) []RawValue {
				return []RawValue{
					uc(fx.der("alice")),
					smime(fx.outlook("alice", "inter")),
					uc(fx.der("alice")),
					smime(fx.degenerate("bob", "alice")),
					uc(fx.der("foreignLeaf")),
					smime(fx.der("foreignLeaf")),
					uc(fx.der("foreignLeaf")),
					uc(fx.blob("garbage", []byte{1, 2, 3})),
					uc(fx.blob("garbage", []byte{1, 2, 3})),
					smime(fx.blob("garbage", []byte{1, 2, 3})),
				}
			},
			policy:   strict,
			accepted: []string{"alice:userCertificate+userSMIMECertificate", "bob:userSMIMECertificate"},
			rejected: []string{
				"userCertificate:foreignLeaf:untrusted",
				"userSMIMECertificate:foreignLeaf:untrusted",
				"userCertificate:garbage:malformed",
				"userSMIMECertificate:garbage:malformed",
			},
		},
		{
			name: "more than MaxCertificates keeps the newest",
			values: func(fx *fixture) []RawValue {
				return []RawValue{
					uc(fx.der("older")), smime(fx.der("older")),
					uc(fx.der("bob")), uc(fx.der("alice")),
					uc(fx.der("foreignLeaf")),
				}
			},
			policy: func(fx *fixture) Policy {
				p := strict(fx)
				p.MaxCertificates = 2
				return p
			},
			accepted: []string{"alice:userCertificate", "bob:userCertificate"},
			rejected: []string{
				"userCertificate:foreignLeaf:untrusted",
				"userCertificate:older:over-limit",
				"userSMIMECertificate:older:over-limit",
			},
			exact: map[string]string{
				"userCertificate:older":      "valid, but only the 2 newest certificates are published (policy.maxCertificates)",
				"userSMIMECertificate:older": "valid, but only the 2 newest certificates are published (policy.maxCertificates)",
			},
		},
		{
			name:     "every cause is reported, the first is the code",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("allWrong"))} },
			policy:   strict,
			rejected: []string{"userCertificate:allWrong:untrusted"},
			reasons: map[string][]string{"userCertificate:allWrong": {
				"not issued by a trusted issuing CA (issuer CN=Foreign,O=certsync test): x509: ",
				"; expired on ",
				"; has no subject key identifier",
				"; has no extended key usage; policy requires one of emailProtection, clientAuth",
			}},
		},
		{
			name:     "CA value with other causes keeps ca-certificate as the code",
			values:   func(fx *fixture) []RawValue { return []RawValue{uc(fx.der("foreign"))} },
			policy:   strict,
			rejected: []string{"userCertificate:foreign:ca-certificate"},
			reasons: map[string][]string{"userCertificate:foreign": {
				"is a CA certificate", "; not issued by a trusted issuing CA (issuer CN=Foreign", "; has no extended key usage"}},
		},
		{
			name:   "no values",
			values: func(fx *fixture) []RawValue { return nil },
			policy: strict,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			values := tt.values(fx)
			ev := Evaluate(values, tt.policy(fx), fx.now)

			var accepted, rejected []string
			for _, c := range ev.Accepted {
				if c.SHA256 != sha256Hex(c.Cert.Raw) {
					t.Errorf("accepted %s: SHA256 %s is not the DER's", fx.name(c.SHA256), c.SHA256)
				}
				accepted = append(accepted, fx.name(c.SHA256)+":"+strings.Join(c.Attributes, "+"))
			}
			for _, r := range ev.Rejected {
				checkRejectionFields(t, fx, r)
				rejected = append(rejected, r.Attribute+":"+fx.name(r.SHA256)+":"+r.Code)
			}
			if !slices.Equal(accepted, tt.accepted) {
				t.Errorf("accepted = %q, want %q", accepted, tt.accepted)
			}
			if !slices.Equal(rejected, tt.rejected) {
				t.Errorf("rejected = %q, want %q", rejected, tt.rejected)
			}
			if (ev.Accepted == nil) != (len(tt.accepted) == 0) || (ev.Rejected == nil) != (len(tt.rejected) == 0) {
				t.Errorf("empty results must be nil: accepted %#v, rejected %#v", ev.Accepted, ev.Rejected)
			}
			// Rejections are unique by attribute and certificate.
			reasonOf := func(key string) (string, bool) {
				for _, r := range ev.Rejected {
					if r.Attribute+":"+fx.name(r.SHA256) == key {
						return r.Reason, true
					}
				}
				t.Errorf("no rejection %s to check the reason of", key)
				return "", false
			}
			for key, parts := range tt.reasons {
				if reason, ok := reasonOf(key); ok {
					assertInOrder(t, reason, parts)
				}
			}
			for key, want := range tt.exact {
				if reason, ok := reasonOf(key); ok && reason != want {
					t.Errorf("%s: reason %q, want %q", key, reason, want)
				}
			}
		})
	}
}

// checkRejectionFields checks what every rejection must carry: the
// certificate's identity, or only the raw value's hash when undecodable.
func checkRejectionFields(t *testing.T, fx *fixture, r Rejection) {
	t.Helper()
	if r.Reason == "" {
		t.Errorf("rejection %s has no reason", fx.name(r.SHA256))
	}
	if r.Code == RejectMalformed {
		if r.Subject != "" || r.Serial != "" {
			t.Errorf("malformed %s names subject %q serial %q", fx.name(r.SHA256), r.Subject, r.Serial)
		}
		return
	}
	var c *x509.Certificate
	for _, fc := range fx.certs {
		if sha256Hex(fc.Raw) == r.SHA256 {
			c = fc
		}
	}
	if c == nil {
		t.Errorf("rejection %s: SHA256 is no fixture certificate", r.SHA256)
		return
	}
	if r.Subject != c.Subject.String() {
		t.Errorf("rejection subject %q, want %q", r.Subject, c.Subject.String())
	}
	if want := fmt.Sprintf("%X", c.SerialNumber); r.Serial != want || strings.ToUpper(r.Serial) != r.Serial {
		t.Errorf("rejection serial %q, want %q", r.Serial, want)
	}
}

func TestEvaluateTiesOrderBySHA256(t *testing.T) {
	fx := newFixture(t)
	nb := fx.now.Add(-20 * time.Minute)
	var values []RawValue
	for i := 0; i < 4; i++ {
		c, _, err := fx.inter.Issue(pkitest.LeafOptions{CommonName: fmt.Sprintf("twin%d", i), NotBefore: nb})
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, uc(c.Raw))
	}
	ev := Evaluate(values, Policy{IssuingCAs: []*x509.Certificate{fx.inter.Cert}}, fx.now)
	if len(ev.Accepted) != 4 {
		t.Fatalf("accepted %d, want 4 (rejected %+v)", len(ev.Accepted), ev.Rejected)
	}
	if !slices.IsSortedFunc(ev.Accepted, func(a, b Certificate) int { return strings.Compare(a.SHA256, b.SHA256) }) {
		t.Errorf("same NotBefore not ordered by SHA256: %v", ev.Accepted)
	}
}

func TestParseExtKeyUsage(t *testing.T) {
	tests := []struct {
		in      string
		want    x509.ExtKeyUsage
		wantErr bool
	}{
		{in: "emailProtection", want: x509.ExtKeyUsageEmailProtection},
		{in: "CLIENTAUTH", want: x509.ExtKeyUsageClientAuth},
		{in: " any ", want: x509.ExtKeyUsageAny},
		{in: "smartcardLogon", wantErr: true},
		{in: "", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseExtKeyUsage(tt.in)
		if (err != nil) != tt.wantErr || (!tt.wantErr && got != tt.want) {
			t.Errorf("ParseExtKeyUsage(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
		if !tt.wantErr && !strings.EqualFold(ExtKeyUsageName(got), strings.TrimSpace(tt.in)) {
			t.Errorf("ExtKeyUsageName(%v) = %q, want %q", got, ExtKeyUsageName(got), tt.in)
		}
	}
	if got := ExtKeyUsageName(x509.ExtKeyUsage(999)); got != "ExtKeyUsage(999)" {
		t.Errorf("ExtKeyUsageName(999) = %q", got)
	}
}

// Values are published verbatim only when every end-entity certificate of
// them passed; the others are withheld with the failing certificates named.
func TestEvaluateValues(t *testing.T) {
	fx := newFixture(t)
	trustRoot := Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert}}
	good := fx.blob("goodBag", fx.ber(fx.outlook("alice", "inter", "root")))
	mixed := fx.blob("mixedBag", fx.degenerate("bob", "foreignLeaf", "inter"))
	broken := fx.blob("brokenBag", bagOf(true, fx.der("alice"), unparseableCert(), fx.der("inter")))
	tests := []struct {
		name     string
		values   []RawValue
		policy   Policy
		want     []string // "attr:name" of Values, in order
		withheld []string // "attr:name" of Withheld
		reasons  []string // substrings of the first Withheld's Reason
	}{
		{name: "an Outlook bag whole", values: []RawValue{smime(good)}, policy: trustRoot, want: []string{"userSMIMECertificate:goodBag"}},
		{name: "DER stays DER, newest first", values: []RawValue{uc(fx.der("bob")), smime(good)}, policy: trustRoot,
			want: []string{"userSMIMECertificate:goodBag", "userCertificate:bob"}},
		{name: "a bag with a failing leaf is withheld", values: []RawValue{smime(mixed)}, policy: trustRoot,
			withheld: []string{"userSMIMECertificate:mixedBag"}, reasons: []string{"not published as it is, because of CN=foreignLeaf", ": untrusted"}},
		{name: "a bag with an unparseable certificate is withheld", values: []RawValue{smime(broken)}, policy: trustRoot,
			withheld: []string{"userSMIMECertificate:brokenBag"}, reasons: []string{"certificate 2 does not parse"}},
		{name: "the same value twice counts once", values: []RawValue{smime(good), smime(good)}, policy: trustRoot,
			want: []string{"userSMIMECertificate:goodBag"}},
		{name: "a bag beyond the limit is withheld", values: []RawValue{uc(fx.der("alice")), smime(fx.blob("bobBag", fx.degenerate("bob")))},
			policy: Policy{IssuingCAs: []*x509.Certificate{fx.root.Cert, fx.inter.Cert}, MaxCertificates: 1}, want: []string{"userCertificate:alice"},
			withheld: []string{"userSMIMECertificate:bobBag"}, reasons: []string{"CN=bob", "over-limit"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := Evaluate(tt.values, tt.policy, fx.now)
			var got, withheld []string
			for _, v := range ev.Values {
				got = append(got, v.Attribute+":"+fx.name(v.SHA256))
				if v.SHA256 != sha256Hex(v.Data) || len(v.Certificates) == 0 {
					t.Errorf("value %s: SHA256 or certificates wrong", fx.name(v.SHA256))
				}
				if !slices.ContainsFunc(tt.values, func(r RawValue) bool { return string(r.Data) == string(v.Data) }) {
					t.Errorf("value %s is not byte-identical to a directory value", fx.name(v.SHA256))
				}
			}
			for _, w := range ev.Withheld {
				withheld = append(withheld, w.Attribute+":"+fx.name(w.SHA256))
			}
			if !slices.Equal(got, tt.want) || !slices.Equal(withheld, tt.withheld) {
				t.Fatalf("values %q withheld %q, want %q and %q", got, withheld, tt.want, tt.withheld)
			}
			if len(tt.reasons) > 0 {
				assertInOrder(t, ev.Withheld[0].Reason, tt.reasons)
			}
		})
	}
}
