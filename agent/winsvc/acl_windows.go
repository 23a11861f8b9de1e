//go:build windows

package winsvc

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/windows"
)

// StateDir is %ProgramData%\certsync: the state file's default directory,
// the service's log file, and the place for agent.yaml and its secrets.
func StateDir() (string, error) {
	pd := os.Getenv("ProgramData")
	if pd == "" {
		return "", errors.New("winsvc: %ProgramData% is not set")
	}
	return filepath.Join(pd, "certsync"), nil
}

// SecureDir creates dir if needed and gives it StateDirSDDL's DACL:
// protected (nothing inherited from %ProgramData%, which lets every user
// read), full control for SYSTEM and Administrators, inherited by every
// file and folder below. Windows applies the inheritable entries to what
// is already inside.
func SecureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("winsvc: creating %s: %w", dir, err)
	}
	dacl, err := stateDirDACL()
	if err != nil {
		return err
	}
	err = windows.SetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT,
		windows.DACL_SECURITY_INFORMATION|windows.PROTECTED_DACL_SECURITY_INFORMATION, nil, nil, dacl, nil)
	if err != nil {
		return fmt.Errorf("winsvc: setting the ACL of %s: %w", dir, err)
	}
	return nil
}

// stateDirDACL parses StateDirSDDL.
func stateDirDACL() (*windows.ACL, error) {
	sd, err := windows.SecurityDescriptorFromString(StateDirSDDL)
	if err != nil {
		return nil, fmt.Errorf("winsvc: parsing %q: %w", StateDirSDDL, err)
	}
	dacl, _, err := sd.DACL()
	if err != nil {
		return nil, fmt.Errorf("winsvc: the DACL of %q: %w", StateDirSDDL, err)
	}
	return dacl, nil
}
