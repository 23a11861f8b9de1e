//go:build release

package main

import "github.com/spf13/cobra"

// demoCommands is empty in the release build: the demo needs the test
// harnesses (the in-process directory, the cloud emulators, the PKI
// generator), which the shipped binary must not link.
func demoCommands() []*cobra.Command { return nil }
