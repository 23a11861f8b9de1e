package agent

import "github.com/certsync/certsync/mapping"

// CertVerdict is a target's own verdict on one certificate, for a target
// that judges certificates by a purpose of its own (the AD target: fit for
// logon) rather than by policy.extendedKeyUsages alone. A certificate the
// policy accepts may be refused by such a target, and one the policy
// refuses only for its extended key usage may be used by it.
type CertVerdict struct {
	Subject string
	Serial  string
	SHA256  string
	Verdict string // VerdictUsed, VerdictRefused or VerdictNotNeeded
	Reason  string
	// PolicyRejected: policy.extendedKeyUsages refused it (for the other
	// targets); it is among the user's rejected certificates too.
	PolicyRejected bool
}

// Verdicts of a target on a certificate.
const (
	VerdictUsed      = "used"       // the target derives values from it
	VerdictRefused   = "refused"    // unfit for the target's purpose
	VerdictNotNeeded = "not-needed" // fit, but needs no value (a SID extension binds it already)
)

// certificateJudge is a target that judges certificates itself
// (Verdicts), shown per user in reports.
type certificateJudge interface {
	Verdicts(attr, source string, ev mapping.Evaluation) []CertVerdict
}

func newCertVerdict(c mapping.Certificate) CertVerdict {
	ci := certInfo(c)
	return CertVerdict{Subject: ci.Subject, Serial: ci.Serial, SHA256: ci.SHA256}
}
