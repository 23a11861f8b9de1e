package mapping

import (
	"bytes"
	"crypto/x509"
	"slices"
	"testing"
)

// fuzzSeeds are real directory values: DER leaves and CAs, degenerate and
// Outlook-style PKCS#7, and the broken shapes the tests know.
func fuzzSeeds(fx *fixture) [][]byte {
	return [][]byte{
		fx.der("alice"),
		fx.der("noSKI"),
		fx.der("inter"),
		fx.degenerate("inter", "alice", "root"),
		fx.degenerate("inter", "root"),
		fx.outlook("alice", "inter", "root"),
		fx.outlook("bob"),
		{},
		[]byte("garbage bytes"),
		fx.der("alice")[:200],
		// Real-world shapes: BER indefinite lengths, the root first and the
		// leaf in the middle, two leaves, one unparseable certificate, an
		// attribute certificate, hostile nesting.
		bagOf(true, fx.der("root"), fx.der("alice"), fx.der("inter")),
		fx.ber(fx.outlook("alice", "inter", "root")),
		bagOf(false, fx.der("bob"), fx.der("alice")),
		bagOf(true, fx.der("alice"), unparseableCert(), fx.der("inter")),
		bagOf(false, tlv(0xa1, false), fx.der("sha1Leaf")),
		tlv(tagSequence, true, []byte{tagOID, 1, 1}, tlv(tagContext0, true, nested(40))),
	}
}

// FuzzParseBag: the bag walk never panics, returns certificates that are
// slices of its input, and never more than its bound. Minimizing the
// large certificate seeds stalls short runs: pass -fuzzminimizetime=100x.
func FuzzParseBag(f *testing.F) {
	for _, s := range fuzzSeeds(newFixture(f)) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := parseBag(data)
		if err != nil && certs != nil {
			t.Fatalf("parseBag returned %d certificates with error %v", len(certs), err)
		}
		if len(certs) > maxBagCertificates {
			t.Fatalf("%d certificates, bound %d", len(certs), maxBagCertificates)
		}
		for i, c := range certs {
			if (c.Cert == nil) == (c.Err == nil) || !bytes.Contains(data, c.Raw) {
				t.Fatalf("certificate %d: cert %v, err %v, raw not from the input", i, c.Cert != nil, c.Err)
			}
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(newFixture(f)) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		certs, err := Decode(data)
		if err != nil {
			if certs != nil {
				t.Errorf("Decode returned %d certificates with error %v", len(certs), err)
			}
			return
		}
		if len(certs) == 0 {
			t.Fatal("Decode returned no certificate and no error")
		}
		if len(certs) == 1 && certs[0] != nil && slices.Equal(certs[0].Raw, data) {
			return // a DER value: returned as is, CA or not
		}
		for i, c := range certs {
			if c == nil {
				t.Fatalf("certificate %d is nil", i)
			}
			if isCA(c) {
				t.Errorf("certificate %d from PKCS#7 is a CA", i)
			}
		}
	})
}

// FuzzEvaluate takes the trusted CAs as an input too (concatenated DER):
// each fuzzing process would otherwise make its own random PKI, and no
// input built from the seeds' PKI would ever be trusted in a worker.
// Evaluate is slow enough for minimization to eat short runs: for a 30 s
// run, pass -fuzzminimizetime=100x.
func FuzzEvaluate(f *testing.F) {
	fx := newFixture(f)
	seeds := fuzzSeeds(fx)
	cas := append(append([]byte{}, fx.root.Cert.Raw...), fx.inter.Cert.Raw...)
	for i, s := range seeds {
		f.Add(s, seeds[(i+3)%len(seeds)], cas, uint8(i), uint8(i*5))
	}
	f.Add(fx.der("alice"), fx.der("bob"), fx.inter.Cert.Raw, uint8(1), uint8(7))
	now := fx.now
	f.Fuzz(func(t *testing.T, a, b, cas []byte, maxCerts, flags uint8) {
		issuing, _ := x509.ParseCertificates(cas) // nil when not certificates
		p := Policy{
			IssuingCAs:      issuing,
			RequireSKI:      flags&1 != 0,
			SkipExpired:     flags&2 != 0,
			MaxCertificates: int(maxCerts % 4),
		}
		if flags&4 != 0 {
			p.ExtKeyUsages = []x509.ExtKeyUsage{x509.ExtKeyUsageEmailProtection}
		}
		values := []RawValue{uc(a), smime(b), uc(b), smime(a)}
		ev := Evaluate(values, p, now)

		if p.MaxCertificates > 0 && len(ev.Accepted) > p.MaxCertificates {
			t.Errorf("accepted %d, above MaxCertificates %d", len(ev.Accepted), p.MaxCertificates)
		}
		accepted := map[string][]string{}
		for _, c := range ev.Accepted {
			if _, dup := accepted[c.SHA256]; dup {
				t.Errorf("certificate %s accepted twice", c.SHA256)
			}
			accepted[c.SHA256] = c.Attributes
		}
		rejected := map[rejectionKey]string{}
		for _, r := range ev.Rejected {
			k := rejectionKey{r.SHA256, r.Attribute}
			if _, dup := rejected[k]; dup {
				t.Errorf("rejection %v reported twice", k)
			}
			rejected[k] = r.Code
			if _, ok := accepted[r.SHA256]; ok {
				t.Errorf("certificate %s both accepted and rejected (%s)", r.SHA256, r.Code)
			}
		}
		// Every value ends up accepted or rejected.
		for _, v := range values {
			d, err := decodeValue(v.Data)
			if err != nil {
				if rejected[rejectionKey{sha256Hex(v.Data), v.Attribute}] != RejectMalformed {
					t.Errorf("undecodable %s value not rejected as malformed", v.Attribute)
				}
				continue
			}
			for _, b := range d.broken {
				if rejected[rejectionKey{sha256Hex(b.raw), v.Attribute}] != RejectMalformed {
					t.Errorf("unparseable certificate %d of a %s bag not rejected as malformed", b.index, v.Attribute)
				}
			}
			for _, c := range d.endEntity {
				sum := sha256Hex(c.Raw)
				if attrs, ok := accepted[sum]; ok {
					if !slices.Contains(attrs, v.Attribute) {
						t.Errorf("accepted %s does not list source %s", sum, v.Attribute)
					}
					continue
				}
				if _, ok := rejected[rejectionKey{sum, v.Attribute}]; !ok {
					t.Errorf("certificate %s from %s neither accepted nor rejected", sum, v.Attribute)
				}
			}
		}
		// A value published verbatim is an input, whole, all of whose
		// certificates were accepted.
		for _, v := range ev.Values {
			if !slices.ContainsFunc(values, func(r RawValue) bool { return r.Attribute == v.Attribute && bytes.Equal(r.Data, v.Data) }) {
				t.Errorf("value %s is not a directory value", v.SHA256)
			}
			for _, c := range v.Certificates {
				if _, ok := accepted[c]; !ok {
					t.Errorf("value %s carries certificate %s, which was not accepted", v.SHA256, c)
				}
			}
		}
	})
}
