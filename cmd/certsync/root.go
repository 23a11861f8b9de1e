package main

import (
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// newRootCommand returns the command tree and the function that ends the
// profiles its hidden flags started.
func newRootCommand() (*cobra.Command, func() error) {
	root := &cobra.Command{
		Use:   "certsync",
		Short: "Publish users' certificates from AD/LDAP to Microsoft Entra ID",
		Long: `certsync reads userCertificate and userSMIMECertificate from an LDAP directory,
validates each certificate (Subject Key Identifier, trusted issuing CA, validity,
EKU), and publishes them to Microsoft Entra ID (certificateUserIds) through
Microsoft Graph, and to Exchange Online mailboxes (S/MIME in the global address
list), remembering what it published in a local state file.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newSyncCommand(), newRunCommand(), newStatusCommand(), newDoctorCommand(), newVersionCommand(), newServiceCommand())
	root.AddCommand(demoCommands()...)
	return root, profileFlags(root)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print certsync's version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), "certsync", buildVersion())
			return err
		},
	}
}

// version is the release's version, set by the package build
// (-ldflags "-X main.version=1.2.3"); empty in other builds.
var version string

func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return version + " (no build information)"
	}
	v := bi.Main.Version
	if version != "" {
		v = version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + bi.GoVersion
}
