//go:build !windows

package winsvc

import (
	"context"
	"errors"
)

// ErrNotWindows is what the service entry points return elsewhere.
var ErrNotWindows = errors.New("winsvc: Windows services exist only on Windows (on Linux, use the systemd unit: README, \"Running as a service\")")

// IsService is false: only Windows has a service control manager.
func IsService() (bool, error) { return false, nil }

// Run needs Windows.
func Run(string, func(context.Context, *Session) error) error { return ErrNotWindows }

// Install needs Windows.
func Install(Config) error { return ErrNotWindows }

// Uninstall needs Windows.
func Uninstall(string) error { return ErrNotWindows }

// Start needs Windows.
func Start(string) error { return ErrNotWindows }

// Stop needs Windows.
func Stop(string) error { return ErrNotWindows }
