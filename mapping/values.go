package mapping

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Value is one directory value all of whose end-entity certificates were
// accepted, kept as read: what a target that publishes values verbatim
// (Exchange's UserSMimeCertificate: Outlook reads the PKCS#7 blob back
// from the GAL, and Entra Connect copies it byte for byte) sends. A DER
// value is its certificate; a PKCS#7 is the whole blob, chain included.
type Value struct {
	Attribute string // the directory attribute it was read from
	Data      []byte // exactly as read; never re-encoded
	SHA256    string // of Data
	// Bag: Data is a PKCS#7, not one DER certificate.
	Bag bool
	// Certificates are the SHA-256 of its end-entity certificates (each in
	// Evaluation.Accepted), in value order.
	Certificates []string
	// NotBefore is the newest NotBefore of its certificates: values are
	// ordered by it, newest first, as certificates are.
	NotBefore time.Time
}

// Withheld is a directory value that is not published verbatim because a
// certificate in it failed: its accepted certificates are still published
// on their own by targets that take certificates (Graph bindings).
type Withheld struct {
	Attribute string
	SHA256    string // of the value
	Reason    string // names the certificates that failed
}

// decodeResult is one value's decoding, kept for the whole Evaluate.
type decodeResult struct {
	d   decoded
	err error
}

// brokenRejection reports a bag's certificate that does not parse.
func brokenRejection(attr string, b brokenCert) Rejection {
	return Rejection{
		Attribute: attr,
		SHA256:    sha256Hex(b.raw),
		Code:      RejectMalformed,
		Reason:    fmt.Sprintf("certificate %d of the PKCS#7 does not parse (its siblings are judged on their own): %v", b.index, b.err),
	}
}

// acceptedValues sorts the values into those published as they are (every
// end-entity certificate in ev.Accepted, after the limit) and those
// withheld, saying which certificates kept them back. Duplicate values of
// one attribute count once.
func acceptedValues(values []RawValue, decs []decodeResult, ev Evaluation, verdicts map[string]verdict) ([]Value, []Withheld) {
	accepted := make(map[string]bool, len(ev.Accepted))
	for _, c := range ev.Accepted {
		accepted[c.SHA256] = true
	}
	var out []Value
	var withheld []Withheld
	seen := map[rejectionKey]bool{}
	for i, rv := range values {
		if decs[i].err != nil {
			continue // reported as malformed
		}
		sum := sha256Hex(rv.Data)
		if k := (rejectionKey{sum, rv.Attribute}); seen[k] {
			continue
		} else {
			seen[k] = true
		}
		d := decs[i].d
		v := Value{Attribute: rv.Attribute, Data: rv.Data, SHA256: sum, Bag: d.bag}
		var failed []string
		for _, b := range d.broken {
			failed = append(failed, fmt.Sprintf("certificate %d does not parse", b.index))
		}
		for _, c := range d.endEntity {
			cs := sha256Hex(c.Raw)
			v.Certificates = append(v.Certificates, cs)
			if c.NotBefore.After(v.NotBefore) {
				v.NotBefore = c.NotBefore
			}
			if !accepted[cs] {
				why := RejectOverLimit
				if vd := verdicts[cs]; len(vd.causes) > 0 {
					why = vd.causes[0].code
				}
				failed = append(failed, fmt.Sprintf("%s serial %s: %s", c.Subject, serialHex(c), why))
			}
		}
		if len(failed) > 0 {
			withheld = append(withheld, Withheld{Attribute: rv.Attribute, SHA256: sum,
				Reason: "not published as it is, because of " + strings.Join(failed, "; ")})
			continue
		}
		out = append(out, v)
	}
	slices.SortStableFunc(out, func(a, b Value) int {
		if c := b.NotBefore.Compare(a.NotBefore); c != 0 {
			return c
		}
		return cmp.Compare(a.SHA256, b.SHA256)
	})
	return out, withheld
}
