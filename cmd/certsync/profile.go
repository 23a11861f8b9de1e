package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/spf13/cobra"
)

// profileFlags adds the hidden --cpuprofile and --memprofile flags, which
// write pprof profiles of the whole command: how issue 12's figures were
// found, and how anyone can check them on their own directory
// (`go tool pprof certsync cpu.out`). The returned function ends the
// profiles; main calls it after the command, whatever it returned.
func profileFlags(root *cobra.Command) (finish func() error) {
	var cpuPath, memPath string
	var cpuFile *os.File
	f := root.PersistentFlags()
	f.StringVar(&cpuPath, "cpuprofile", "", "write a CPU profile of the command to this file")
	f.StringVar(&memPath, "memprofile", "", "write a heap profile (allocations, and what is live at the end) to this file")
	_ = f.MarkHidden("cpuprofile")
	_ = f.MarkHidden("memprofile")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if cpuPath == "" {
			return nil
		}
		var err error
		if cpuFile, err = os.Create(cpuPath); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpuFile); err != nil {
			_ = cpuFile.Close()
			return fmt.Errorf("cpu profile %s: %w", cpuPath, err)
		}
		return nil
	}
	return func() error {
		var errs []error
		if cpuFile != nil {
			pprof.StopCPUProfile()
			if err := cpuFile.Close(); err != nil {
				errs = append(errs, fmt.Errorf("cpu profile %s: %w", cpuPath, err))
			}
		}
		if memPath != "" {
			runtime.GC()
			if err := writeHeapProfile(memPath); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

func writeHeapProfile(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(out, 0); err != nil {
		_ = out.Close()
		return fmt.Errorf("heap profile %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("heap profile %s: %w", path, err)
	}
	return nil
}
