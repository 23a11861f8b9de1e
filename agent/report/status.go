package report

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/certsync/certsync/agent"
)

// Status is `certsync status --output json`: what the state file knows.
// Its names are the sync report's (usersInState, usersRead, valuesAdded,
// ...): a field that means the same has the same name in both.
type Status struct {
	StatePath    string          `json:"statePath"`
	Users        int             `json:"usersInState"`
	LastPass     *LastPass       `json:"lastPass"` // null before the first pass
	Sources      []StatusSource  `json:"sources"`
	Unconfigured int             `json:"usersOfUnconfiguredSources"`
	Problems     []StatusProblem `json:"problems"`
}

// LastPass is the summary of the last pass the state file recorded.
type LastPass struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Mode     string    `json:"mode"`
	// Result: ok, changes, partial, refused or failed.
	Result  string           `json:"result"`
	Error   string           `json:"error,omitempty"`
	Summary LastPassSummary  `json:"summary"`
	Sources []LastPassSource `json:"sources"`
}

// LastPassSummary is the part of the sync report's summary the state file
// keeps, under the same names.
type LastPassSummary struct {
	UsersRead            int `json:"usersRead"`
	UsersChanged         int `json:"usersChanged"`
	UsersUnmatched       int `json:"usersUnmatched"`
	UsersSkipped         int `json:"usersSkipped"`
	UsersFailed          int `json:"usersFailed"`
	ValuesAdded          int `json:"valuesAdded"`
	ValuesRemoved        int `json:"valuesRemoved"`
	CertificatesRejected int `json:"certificatesRejected"`
}

// LastPassSource is one directory's part of the last pass.
type LastPassSource struct {
	Name      string `json:"name"`
	Mode      string `json:"mode"`
	UsersRead int    `json:"usersRead"`
	Error     string `json:"error,omitempty"`
}

// StatusSource is one configured directory in the state file.
type StatusSource struct {
	Name     string          `json:"name"`
	Users    int             `json:"usersInState"`
	Tracking *StatusTracking `json:"tracking,omitempty"`
}

// StatusTracking is a directory's change tracking.
type StatusTracking struct {
	LastFullRead   time.Time `json:"lastFullRead"`
	Incremental    bool      `json:"incremental"` // the directory tracks changes
	CertificateDue time.Time `json:"certificateReview,omitzero"`
}

// StatusProblem is a user whose last pass had a problem.
type StatusProblem struct {
	Anchor  string    `json:"anchor"`
	Source  string    `json:"source"`
	Name    string    `json:"name"`
	DN      string    `json:"dn"`
	Problem string    `json:"problem"`
	Since   time.Time `json:"since"`
}

// NewStatus turns what agent.ReadStatus found in statePath into the report.
func NewStatus(statePath string, s agent.Status) Status {
	r := Status{StatePath: statePath, Users: s.Users, Unconfigured: s.Unconfigured, Sources: []StatusSource{}, Problems: []StatusProblem{}}
	if lp := s.LastPass; lp != nil {
		r.LastPass = &LastPass{Started: lp.Started, Finished: lp.Finished, Mode: lp.Mode, Result: lp.Result, Error: lp.Error,
			Summary: LastPassSummary{lp.UsersRead, lp.UsersChanged, lp.UsersUnmatched, lp.UsersSkipped, lp.UsersFailed, lp.ValuesAdded, lp.ValuesRemoved, lp.CertificatesRejected},
			Sources: []LastPassSource{}}
		for _, src := range lp.Sources {
			r.LastPass.Sources = append(r.LastPass.Sources, LastPassSource(src))
		}
	}
	for _, src := range s.Sources {
		ss := StatusSource{Name: src.Name, Users: src.Users}
		if tr := src.Tracking; tr != nil {
			ss.Tracking = &StatusTracking{tr.FullAt, tr.HasWatermark, tr.NextReview}
		}
		r.Sources = append(r.Sources, ss)
	}
	for _, p := range s.Problems {
		r.Problems = append(r.Problems, StatusProblem{p.Anchor, p.Source, p.Name, p.DN, p.Problem, p.ProblemAt})
	}
	return r
}

// WriteStatus writes the status in format (table or json).
func WriteStatus(out io.Writer, format string, r Status) error {
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	out = terminal{out}
	fmt.Fprintf(out, "State file: %s (%d users)\n", r.StatePath, r.Users)
	if lp := r.LastPass; lp == nil {
		fmt.Fprintln(out, "Last pass: none yet")
	} else {
		fmt.Fprintf(out, "Last pass: %s, %s mode, finished %s (took %s)\n", lp.Result, lp.Mode, lp.Finished.Format(time.RFC3339), lp.Finished.Sub(lp.Started).Round(time.Millisecond))
		if lp.Error != "" {
			fmt.Fprintf(out, "  error: %s\n", lp.Error)
		}
		s := lp.Summary
		fmt.Fprintf(out, "  %d users read, %d changed (+%d/-%d values), %d not in the cloud, %d skipped, %d failed, %d certificates rejected\n",
			s.UsersRead, s.UsersChanged, s.ValuesAdded, s.ValuesRemoved, s.UsersUnmatched, s.UsersSkipped, s.UsersFailed, s.CertificatesRejected)
	}
	for _, src := range r.Sources {
		fmt.Fprintf(out, "Directory %s: %d users\n", src.Name, src.Users)
		if tr := src.Tracking; tr != nil {
			how := "the directory offers no change tracking: every pass reads everything"
			if tr.Incremental {
				how = "passes in between read only what changed"
			}
			fmt.Fprintf(out, "  last full read: %s; %s\n", tr.LastFullRead.Format(time.RFC3339), how)
			if !tr.CertificateDue.IsZero() {
				fmt.Fprintf(out, "  next full read forced by a certificate's validity at %s\n", tr.CertificateDue.Format(time.RFC3339))
			}
		}
	}
	if r.Unconfigured > 0 {
		fmt.Fprintf(out, "Users of directories no longer configured: %d (certsync leaves their values alone)\n", r.Unconfigured)
	}
	fmt.Fprintf(out, "Users with problems: %d\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(out, "  %s (%s) since %s: %s\n", p.Name, p.DN, p.Since.Format(time.RFC3339), p.Problem)
	}
	return nil
}
