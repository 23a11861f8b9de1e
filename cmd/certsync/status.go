package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/agent/config"
	"github.com/certsync/certsync/agent/report"
	"github.com/certsync/certsync/state"
)

type statusOptions struct {
	configPath, output string
}

func (o *statusOptions) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.configPath, "config", "", "agent configuration file (required)")
	fs.StringVar(&o.output, "output", "", "table or json (default: table on a terminal, json otherwise)")
}

func newStatusCommand() *cobra.Command {
	o := &statusOptions{}
	cmd := &cobra.Command{
		Use:   "status --config FILE",
		Short: "Show what the state file knows: the last pass, each directory, users with problems",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.configPath == "" {
				return errors.New("--config is required")
			}
			format, err := report.Format(o.output, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			cfg, err := config.Load(o.configPath)
			if err != nil {
				return err
			}
			return showStatus(cfg, format, cmd.OutOrStdout())
		},
	}
	o.AddFlags(cmd.Flags())
	return cmd
}

type statusReport struct {
	StatePath    string               `json:"statePath"`
	Users        int                  `json:"users"`
	LastPass     *state.PassSummary   `json:"lastPass"`
	Sources      []statusSource       `json:"sources"`
	Unconfigured int                  `json:"usersOfUnconfiguredSources"`
	Problems     []statusProblemEntry `json:"problems"`
}

type statusSource struct {
	Name     string          `json:"name"`
	Users    int             `json:"users"`
	Tracking *statusTracking `json:"tracking,omitempty"`
}

type statusTracking struct {
	LastFullRead   time.Time `json:"lastFullRead"`
	Incremental    bool      `json:"incremental"` // the directory tracks changes
	CertificateDue time.Time `json:"certificateReview,omitzero"`
}

type statusProblemEntry struct {
	Anchor  string    `json:"anchor"`
	Source  string    `json:"source"`
	Name    string    `json:"name"`
	DN      string    `json:"dn"`
	Problem string    `json:"problem"`
	Since   time.Time `json:"since"`
}

func showStatus(cfg *config.Config, format string, out io.Writer) error {
	st, err := state.Open(cfg.State.Path, state.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer st.Close()
	s, err := agent.ReadStatus(st, cfg.SourceNames())
	if err != nil {
		return err
	}
	r := statusReport{StatePath: cfg.State.Path, Users: s.Users, LastPass: s.LastPass, Unconfigured: s.Unconfigured, Sources: []statusSource{}, Problems: []statusProblemEntry{}}
	for _, src := range s.Sources {
		ss := statusSource{Name: src.Name, Users: src.Users}
		if tr := src.Tracking; tr != nil {
			ss.Tracking = &statusTracking{tr.FullAt, tr.HasWatermark, tr.NextReview}
		}
		r.Sources = append(r.Sources, ss)
	}
	for _, p := range s.Problems {
		r.Problems = append(r.Problems, statusProblemEntry{p.Anchor, p.Source, p.Name, p.DN, p.Problem, p.ProblemAt})
	}
	if format == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	fmt.Fprintf(out, "State file: %s (%d users)\n", r.StatePath, r.Users)
	if lp := r.LastPass; lp == nil {
		fmt.Fprintln(out, "Last pass: none yet")
	} else {
		fmt.Fprintf(out, "Last pass: %s, %s mode, finished %s (took %s)\n", lp.Result, lp.Mode, lp.Finished.Format(time.RFC3339), lp.Finished.Sub(lp.Started).Round(time.Millisecond))
		if lp.Error != "" {
			fmt.Fprintf(out, "  error: %s\n", lp.Error)
		}
		fmt.Fprintf(out, "  %d users read, %d changed (+%d/-%d values), %d not in the cloud, %d skipped, %d failed, %d certificates rejected\n",
			lp.UsersRead, lp.UsersChanged, lp.ValuesAdded, lp.ValuesRemoved, lp.UsersUnmatched, lp.UsersSkipped, lp.UsersFailed, lp.CertificatesRejected)
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
