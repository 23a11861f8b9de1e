//go:build !linux

package ldaptest

import (
	"context"
	"errors"
	"net"
	"os/exec"
)

var errNoNetns = errors.New("network namespaces need Linux: the Samba harness runs only there")

func addNetns(string) error { return errNoNetns }

func delNetns(string) error { return errNoNetns }

func netnsCommand(string, string, ...string) *exec.Cmd { return exec.Command("false") }

func dialInNetns(context.Context, string, string) (net.Conn, error) { return nil, errNoNetns }
