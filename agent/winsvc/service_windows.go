//go:build windows

package winsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// IsService reports whether the service control manager started this
// process.
func IsService() (bool, error) { return svc.IsWindowsService() }

// Run runs as the service name until the manager stops it: it secures the
// state directory, opens the log file there and the Event Log, then runs
// run under Handler's protocol. An error before the handler runs is
// returned; the agent's own failure becomes the service's exit code.
func Run(name string, run func(ctx context.Context, s *Session) error) error {
	return svc.Run(name, &windowsHandler{name: name, run: run})
}

type windowsHandler struct {
	name string
	run  func(ctx context.Context, s *Session) error
}

func (h *windowsHandler) Execute(_ []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	req := make(chan Cmd)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		defer close(req)
		for {
			select {
			case c, ok := <-r:
				if !ok {
					return
				}
				select {
				case req <- fromSvc(c.Cmd):
				case <-stop:
					return
				}
			case <-stop:
				return
			}
		}
	}()
	hd := &Handler{Run: h.session}
	code := hd.Serve(req, func(st Status) { s <- toSvc(st) })
	return code != ExitOK, code
}

// session prepares what the agent needs as a service and runs it.
func (h *windowsHandler) session(ctx context.Context, started func()) error {
	events, err := eventlog.Open(h.name)
	if err != nil {
		return fmt.Errorf("winsvc: opening the Event Log source %s: %w", h.name, err)
	}
	defer events.Close()
	dir, err := StateDir()
	if err == nil {
		err = SecureDir(dir)
	}
	if err != nil {
		_ = events.Error(EventError, err.Error())
		return err
	}
	f, err := os.OpenFile(filepath.Join(dir, "certsync.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		err = fmt.Errorf("winsvc: the log file: %w", err)
		_ = events.Error(EventError, err.Error())
		return err
	}
	defer f.Close()
	err = h.run(ctx, &Session{LogFile: f, events: events, started: started})
	if err != nil && !errors.Is(err, context.Canceled) {
		_ = events.Error(EventError, "certsync stopped: "+err.Error())
	}
	return err
}

func fromSvc(c svc.Cmd) Cmd {
	switch c {
	case svc.Interrogate:
		return CmdInterrogate
	case svc.Stop:
		return CmdStop
	case svc.Shutdown:
		return CmdShutdown
	}
	return CmdOther
}

func toSvc(s Status) svc.Status {
	out := svc.Status{CheckPoint: s.CheckPoint, WaitHint: uint32(s.WaitHint / time.Millisecond)}
	switch s.State {
	case StartPending:
		out.State = svc.StartPending
	case Running:
		out.State = svc.Running
	case StopPending:
		out.State = svc.StopPending
	}
	if s.Accepting {
		out.Accepts = svc.AcceptStop | svc.AcceptShutdown
	}
	return out
}

// Install registers this executable as the service (automatic, delayed
// start, as LocalSystem, restarted by the manager after a failure) and its
// Event Log source, and secures the state directory.
func Install(c Config) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("winsvc: this executable's path: %w", err)
	}
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("winsvc: connecting to the service control manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	if s, err := m.OpenService(c.Name); err == nil {
		s.Close()
		return fmt.Errorf("winsvc: service %s already exists (certsync service uninstall first)", c.Name)
	}
	s, err := m.CreateService(c.Name, exe, mgr.Config{
		DisplayName:      c.Name,
		Description:      c.Description,
		StartType:        mgr.StartAutomatic,
		DelayedAutoStart: true,
	}, c.Args...)
	if err != nil {
		return fmt.Errorf("winsvc: creating service %s: %w", c.Name, err)
	}
	defer s.Close()
	undo := func(err error) error { return errors.Join(err, s.Delete()) }
	restart := mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: time.Minute}
	if err := s.SetRecoveryActions([]mgr.RecoveryAction{restart, restart, restart}, uint32((24 * time.Hour).Seconds())); err != nil {
		return undo(fmt.Errorf("winsvc: recovery actions of %s: %w", c.Name, err))
	}
	// A failed pass loop exits with ExitFailed, not a crash: restart then too.
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return undo(fmt.Errorf("winsvc: recovery on failure exit codes of %s: %w", c.Name, err))
	}
	if err := eventlog.InstallAsEventCreate(c.Name, eventlog.Error|eventlog.Warning|eventlog.Info); err != nil {
		return undo(fmt.Errorf("winsvc: registering the Event Log source %s: %w", c.Name, err))
	}
	dir, err := StateDir()
	if err == nil {
		err = SecureDir(dir)
	}
	if err != nil {
		return undo(errors.Join(err, eventlog.Remove(c.Name)))
	}
	return nil
}

// Uninstall stops the service if it runs, removes it and its Event Log
// source. The state directory stays.
func Uninstall(name string) error {
	return withService(name, func(s *mgr.Service) error {
		if err := stopAndWait(s, name, time.Minute); err != nil {
			return err
		}
		if err := s.Delete(); err != nil {
			return fmt.Errorf("winsvc: deleting service %s: %w", name, err)
		}
		if err := eventlog.Remove(name); err != nil {
			return fmt.Errorf("winsvc: removing the Event Log source %s: %w", name, err)
		}
		return nil
	})
}

// Start starts the service and waits until it runs (or has stopped).
func Start(name string) error {
	return withService(name, func(s *mgr.Service) error {
		if err := s.Start(); err != nil {
			return fmt.Errorf("winsvc: starting service %s: %w", name, err)
		}
		st, err := waitWhile(s, svc.StartPending, time.Minute)
		if err != nil {
			return fmt.Errorf("winsvc: service %s: %w", name, err)
		}
		if st.State != svc.Running {
			return fmt.Errorf("winsvc: service %s stopped at start (exit code %d, service-specific %d): see the Event Log", name, st.Win32ExitCode, st.ServiceSpecificExitCode)
		}
		return nil
	})
}

// Stop asks the service to stop and waits for the pass in flight to finish.
func Stop(name string) error {
	return withService(name, func(s *mgr.Service) error { return stopAndWait(s, name, 15*time.Minute) })
}

// withService opens the service name and calls do with it.
func withService(name string, do func(*mgr.Service) error) error {
	m, err := mgr.Connect()
	if err != nil {
		return fmt.Errorf("winsvc: connecting to the service control manager (run as Administrator): %w", err)
	}
	defer m.Disconnect()
	s, err := m.OpenService(name)
	if err != nil {
		return fmt.Errorf("winsvc: service %s: %w", name, err)
	}
	defer s.Close()
	return do(s)
}

func stopAndWait(s *mgr.Service, name string, limit time.Duration) error {
	st, err := s.Query()
	if err != nil {
		return fmt.Errorf("winsvc: querying service %s: %w", name, err)
	}
	if st.State == svc.Stopped {
		return nil
	}
	if st.State != svc.StopPending {
		if _, err := s.Control(svc.Stop); err != nil && !errors.Is(err, windows.ERROR_SERVICE_NOT_ACTIVE) {
			return fmt.Errorf("winsvc: stopping service %s: %w", name, err)
		}
	}
	if _, err := waitWhile(s, svc.StopPending, limit); err != nil {
		return fmt.Errorf("winsvc: service %s: %w", name, err)
	}
	return nil
}

// waitWhile polls the service while it is in state, up to limit.
func waitWhile(s *mgr.Service, state svc.State, limit time.Duration) (svc.Status, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := s.Query()
		if err != nil || st.State != state {
			return st, err
		}
		if time.Now().After(deadline) {
			return st, fmt.Errorf("still pending (state %d) after %s", state, limit)
		}
		time.Sleep(300 * time.Millisecond)
	}
}
