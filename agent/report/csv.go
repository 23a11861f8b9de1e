package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/certsync/certsync/agent"
)

// CSVHeader names the columns of WriteCSV, one row per certificate.
var CSVHeader = []string{
	"source", "user", "dn", "anchor", "cloudId", "userStatus", "problem",
	"verdict", "code", "reason", "attributes", "subject", "serial", "sha256", "notBefore", "notAfter",
	"targets",
}

// WriteCSV writes one row per certificate of each reported user (accepted
// or rejected); a user without certificates (a departed user whose values
// are withdrawn, say) gets one row with verdict "none". The targets column
// sums up the user's changes per target ("graph.certificateUserIds:
// planned +1 -0"). Cells that a spreadsheet would take for a formula are
// prefixed with a quote.
func WriteCSV(w io.Writer, p *agent.Plan) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for up := range p.Users() {
		u := toUser(up)
		status := userStatus(up)
		targets := targetSummary(u)
		base := []string{u.Source, u.Name, u.DN, u.Anchor, u.CloudID, status, u.Problem}
		row := func(cert ...string) error {
			cells := append(append(append([]string{}, base...), cert...), targets)
			for i, c := range cells {
				cells[i] = defuse(c)
			}
			return cw.Write(cells)
		}
		for _, c := range u.Accepted {
			if err := row("accepted", "", strings.Join(c.Warnings, "; "), strings.Join(c.Attributes, " "), c.Subject, c.Serial, c.SHA256, stamp(c.NotBefore), stamp(c.NotAfter)); err != nil {
				return err
			}
		}
		for _, r := range u.Rejected {
			if err := row("rejected", r.Code, r.Reason, r.Attribute, r.Subject, r.Serial, r.SHA256, "", ""); err != nil {
				return err
			}
		}
		if len(u.Accepted)+len(u.Rejected) == 0 {
			if err := row("none", "", "", "", "", "", "", "", ""); err != nil {
				return err
			}
		}
	}
	if err := p.UsersErr(); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// userStatus is one word for a user's outcome.
func userStatus(u *agent.UserPlan) string {
	switch {
	case u.Failed():
		return "failed"
	case u.Departed:
		return "departed"
	case u.OutOfScope:
		return "out-of-scope"
	case u.Changed():
		return "changes"
	}
	for _, t := range u.Targets {
		switch {
		case t.Unmatched:
			return "unmatched"
		case t.Skipped:
			return "skipped"
		}
	}
	return "unchanged"
}

func targetSummary(u User) string {
	var parts []string
	for _, t := range u.Targets {
		s := fmt.Sprintf("%s: %s +%d -%d", t.Target, t.Status, len(t.Add), len(t.Remove))
		if t.Problem != "" {
			s += " (" + t.Problem + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// defuse keeps a spreadsheet from running a cell as a formula: subjects
// and reasons come from certificates anyone can make.
func defuse(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
