package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"

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
	f.StringVar(&memPath, "memprofile", "", "write a heap profile (allocations, and what was live when the heap was largest) to this file")
	_ = f.MarkHidden("cpuprofile")
	_ = f.MarkHidden("memprofile")
	var peak *heapPeak
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if memPath != "" {
			peak = watchHeapPeak(memPath)
		}
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
		if peak != nil {
			if err := peak.stop(); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
}

// heapPeak writes a heap profile each time the live heap grows by a
// tenth past its largest size so far: what a profile taken at the end
// cannot show is what was live at the peak.
type heapPeak struct {
	path string
	quit chan struct{}
	done chan error
}

func watchHeapPeak(path string) *heapPeak {
	h := &heapPeak{path: path, quit: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var largest uint64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-h.quit:
				if largest == 0 {
					h.done <- writeHeapProfile(h.path)
					return
				}
				h.done <- nil
				return
			case <-tick.C:
			}
			metrics.Read(sample)
			if live := sample[0].Value.Uint64(); live > largest+largest/10 {
				largest = live
				if err := writeHeapProfile(h.path); err != nil {
					h.done <- err
					return
				}
			}
		}
	}()
	return h
}

func (h *heapPeak) stop() error {
	close(h.quit)
	return <-h.done
}

func writeHeapProfile(path string) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("heap profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(out, 0); err != nil {
		_ = out.Close()
		return fmt.Errorf("heap profile %s: %w", path, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("heap profile %s: %w", path, err)
	}
	return nil
}
