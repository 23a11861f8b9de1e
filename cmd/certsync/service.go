package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/certsync/certsync/agent/config"
	"github.com/certsync/certsync/agent/winsvc"
)

// serviceName is the Windows service's name, and its Event Log source's.
const serviceName = "certsync"

func newServiceCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "service", Args: cobra.NoArgs,
		Short: "Windows: install, uninstall, start or stop certsync as a Windows service (as Administrator)"}
	var configPath string
	install := &cobra.Command{Use: "install --config FILE", Args: cobra.NoArgs,
		Short: "Register `certsync run --config FILE` as an automatic LocalSystem service, restarted on failure, logging to the Event Log; %ProgramData%\\certsync becomes SYSTEM's and Administrators' only",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if configPath == "" {
				return errors.New("--config is required")
			}
			cfg, err := filepath.Abs(configPath)
			if err != nil {
				return err
			}
			if _, err := config.Load(cfg); err != nil {
				return err
			}
			if err := winsvc.Install(winsvc.Config{Name: serviceName, Args: []string{"run", "--config", cfg},
				Description: "Publishes directory certificates to Microsoft Entra ID and Exchange Online."}); err != nil {
				return err
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), "certsync service install: done; start it with: certsync service start")
			return err
		}}
	install.Flags().StringVar(&configPath, "config", "", "agent configuration file (required)")
	cmd.AddCommand(install)
	for use, c := range map[string]struct {
		short string
		do    func(string) error
	}{
		"uninstall": {"Stop the service, then remove it and its Event Log source (%ProgramData%\\certsync stays)", winsvc.Uninstall},
		"start":     {"Start the service and wait until it runs", winsvc.Start},
		"stop":      {"Stop the service, letting the pass in flight finish", winsvc.Stop},
	} {
		cmd.AddCommand(&cobra.Command{Use: use, Short: c.short, Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if err := c.do(serviceName); err != nil {
					return err
				}
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "certsync service %s: done\n", use)
				return err
			}})
	}
	return cmd
}
