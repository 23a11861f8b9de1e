package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"github.com/certsync/certsync/mapping"
)

// Reclaiming (PlanOptions.Reclaim) is the way back after a state file
// was lost and none of its backups can be restored: certsync no longer
// knows which cloud values it published, so none would ever be withdrawn.
//
// What is safe to take back: exactly the values certsync itself derives
// from certificates that sit on the same user's directory entry now,
// accepted or not (a revoked, expired or untrusted certificate still in
// userCertificate included: its binding is the one that must be able to
// leave), and only for users the state has nothing about in that target.
// A value certsync would derive from a certificate of this very user is
// one certsync would publish, or would have published; owning it means
// withdrawing it when the certificate goes or is rejected, which is what
// certsync would have done had the state survived. Values derived from
// nothing in the directory (hand-added bindings, another user's
// certificates, a certificate already removed from the entry) stay
// unowned: there is no telling who put them there. Reclaimed values
// not wanted now are removed in the same pass, under the deletion limit.

// derivable is every end-entity certificate the user's directory values
// hold, each as if accepted, for the targets to turn into values.
func derivable(values []mapping.RawValue) mapping.Evaluation {
	var ev mapping.Evaluation
	index := map[string]int{}
	for _, v := range values {
		certs, err := mapping.Decode(v.Data)
		if err != nil {
			continue
		}
		for _, c := range certs {
			if c.BasicConstraintsValid && c.IsCA {
				continue
			}
			sum := sha256.Sum256(c.Raw)
			key := hex.EncodeToString(sum[:])
			if i, ok := index[key]; ok {
				if !slices.Contains(ev.Accepted[i].Attributes, v.Attribute) {
					ev.Accepted[i].Attributes = append(ev.Accepted[i].Attributes, v.Attribute)
				}
				continue
			}
			index[key] = len(ev.Accepted)
			ev.Accepted = append(ev.Accepted, mapping.Certificate{Cert: c, SHA256: key, Attributes: []string{v.Attribute}})
		}
	}
	return ev
}

// reclaimable is, per attribute of the plan (in a.attrs order), what
// reclaiming may take back for a user whose record holds rec's targets.
func (a *Agent) reclaimable(source string, values []mapping.RawValue, hasValues func(attr string) bool) [][]string {
	out := make([][]string, len(a.attrs))
	var ev *mapping.Evaluation
	for i, at := range a.attrs {
		if hasValues(at.name) {
			continue
		}
		if ev == nil {
			e := derivable(values)
			ev = &e
		}
		out[i] = a.targets[at.target].Want(at.name, source, *ev)
	}
	return out
}
