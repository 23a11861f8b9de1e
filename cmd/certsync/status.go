package main

import (
	"errors"
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
	return report.WriteStatus(out, format, report.NewStatus(cfg.State.Path, s))
}
