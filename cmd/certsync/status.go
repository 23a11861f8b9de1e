package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/certsync/certsync/agent"
	"github.com/certsync/certsync/cmd/certsync/config"
	"github.com/certsync/certsync/state"
)

func newStatusCommand() *cobra.Command {
	var configPath, output string
	cmd := &cobra.Command{
		Use:   "status --config FILE",
		Short: "Show what the state file knows: the last pass and users with problems",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required")
			}
			format, err := outputFormat(output, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			cfg, err := config.Load(configPath)
			if err != nil {
				return err
			}
			return showStatus(cfg.State.Path, format, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "agent configuration file (required)")
	cmd.Flags().StringVar(&output, "output", "", "table or json (default: table on a terminal, json otherwise)")
	return cmd
}

type statusReport struct {
	StatePath string               `json:"statePath"`
	Users     int                  `json:"users"`
	LastPass  *state.PassSummary   `json:"lastPass"`
	Tracking  *statusTracking      `json:"tracking,omitempty"`
	Problems  []statusProblemEntry `json:"problems"`
}

type statusTracking struct {
	LastFullRead   time.Time `json:"lastFullRead"`
	Incremental    bool      `json:"incremental"` // the directory tracks changes
	CertificateDue time.Time `json:"certificateReview,omitzero"`
}

type statusProblemEntry struct {
	Anchor  string    `json:"anchor"`
	Name    string    `json:"name"`
	DN      string    `json:"dn"`
	Problem string    `json:"problem"`
	Since   time.Time `json:"since"`
}

func showStatus(path, format string, out io.Writer) error {
	st, err := state.Open(path, state.Options{ReadOnly: true, Timeout: 10 * time.Second})
	if err != nil {
		return err
	}
	defer st.Close()
	r := statusReport{StatePath: path, Problems: []statusProblemEntry{}}
	if r.Users, err = st.Count(); err != nil {
		return err
	}
	if lp, ok, err := st.LastPass(); err != nil {
		return err
	} else if ok {
		r.LastPass = &lp
	}
	if ts, ok, err := agent.ReadTrackingStatus(st); err != nil {
		return err
	} else if ok {
		r.Tracking = &statusTracking{ts.FullAt, ts.HasWatermark, ts.NextReview}
	}
	probs, err := st.Problems()
	if err != nil {
		return err
	}
	for _, p := range probs {
		r.Problems = append(r.Problems, statusProblemEntry{p.Anchor, p.Name, p.DN, p.Problem, p.ProblemAt})
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
		fmt.Fprintf(out, "  %d users read, %d changed (+%d/-%d values), %d not in the cloud, %d failed, %d certificates rejected\n",
			lp.UsersRead, lp.UsersChanged, lp.ValuesAdded, lp.ValuesRemoved, lp.UsersUnmatched, lp.UsersFailed, lp.CertificatesRejected)
	}
	if tr := r.Tracking; tr != nil {
		how := "the directory offers no change tracking: every pass reads everything"
		if tr.Incremental {
			how = "passes in between read only what changed"
		}
		fmt.Fprintf(out, "Last full read: %s; %s\n", tr.LastFullRead.Format(time.RFC3339), how)
		if !tr.CertificateDue.IsZero() {
			fmt.Fprintf(out, "  next full read forced by a certificate's validity at %s\n", tr.CertificateDue.Format(time.RFC3339))
		}
	}
	fmt.Fprintf(out, "Users with problems: %d\n", len(r.Problems))
	for _, p := range r.Problems {
		fmt.Fprintf(out, "  %s (%s) since %s: %s\n", p.Name, p.DN, p.Since.Format(time.RFC3339), p.Problem)
	}
	return nil
}
