package winsvc

import (
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

type event struct {
	kind string
	id   uint32
	msg  string
}

// fakeEventLog records what would go to the Event Log.
type fakeEventLog struct {
	events []event
	err    error
}

func (f *fakeEventLog) add(kind string, id uint32, msg string) error {
	f.events = append(f.events, event{kind, id, msg})
	return f.err
}
func (f *fakeEventLog) Info(id uint32, msg string) error    { return f.add("info", id, msg) }
func (f *fakeEventLog) Warning(id uint32, msg string) error { return f.add("warning", id, msg) }
func (f *fakeEventLog) Error(id uint32, msg string) error   { return f.add("error", id, msg) }

// TestEventCore: the Event Log gets what the file gets, at the file's
// levels, one event per entry, typed by level, with the fields.
func TestEventCore(t *testing.T) {
	ev := &fakeEventLog{}
	fileCore, file := observer.New(zapcore.InfoLevel)
	log := Tee(zap.New(fileCore), ev).With(zap.String("source", "contoso"))

	log.Debug("not at info level")
	log.Info("pass finished", zap.Int("users", 12), zap.Duration("took", 1500*time.Millisecond))
	log.Warn("service manager watchdog off")
	log.Error("pass failed", zap.Error(errors.New("ldaps://dc01: connection refused")))

	want := []event{
		{"info", EventInfo, `pass finished  {"source": "contoso", "users": 12, "took": "1.5s"}`},
		{"warning", EventWarning, `service manager watchdog off  {"source": "contoso"}`},
		{"error", EventError, `pass failed  {"source": "contoso", "error": "ldaps://dc01: connection refused"}`},
	}
	if len(ev.events) != len(want) {
		t.Fatalf("events %+v, want %+v", ev.events, want)
	}
	for i := range want {
		if ev.events[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, ev.events[i], want[i])
		}
	}
	if file.Len() != 3 {
		t.Errorf("the file got %d entries, want the same 3", file.Len())
	}

	// A failing Event Log is an error zap reports; the file still gets
	// the entry.
	ev.err = errors.New("event log full")
	log.Info("still logged")
	if file.Len() != 4 {
		t.Errorf("the file got %d entries after the Event Log failed, want 4", file.Len())
	}
}
