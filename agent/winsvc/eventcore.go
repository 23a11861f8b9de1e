package winsvc

import (
	"strings"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// EventWriter is what the Windows Event Log takes (*eventlog.Log).
type EventWriter interface {
	Info(eventID uint32, msg string) error
	Warning(eventID uint32, msg string) error
	Error(eventID uint32, msg string) error
}

// Event IDs by level. The source is registered with EventCreate.exe as
// its message file (eventlog.InstallAsEventCreate), which takes IDs 1-1000
// and shows the message as written.
const (
	EventInfo    uint32 = 1
	EventWarning uint32 = 2
	EventError   uint32 = 3
)

// eventCore is a zapcore.Core writing each entry as one event: the
// message, then the fields as key=value (the Event Log has its own time
// and level).
type eventCore struct {
	zapcore.LevelEnabler
	w   EventWriter
	enc zapcore.Encoder
}

// NewEventCore returns a core writing entries enab lets through to w.
func NewEventCore(w EventWriter, enab zapcore.LevelEnabler) zapcore.Core {
	return &eventCore{LevelEnabler: enab, w: w, enc: zapcore.NewConsoleEncoder(zapcore.EncoderConfig{
		MessageKey:       "msg",
		ConsoleSeparator: "  ",
		EncodeDuration:   zapcore.StringDurationEncoder,
		EncodeTime:       zapcore.ISO8601TimeEncoder,
	})}
}

// Tee adds an Event Log core to log, at log's own levels.
func Tee(log *zap.Logger, w EventWriter) *zap.Logger {
	return log.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core {
		return zapcore.NewTee(c, NewEventCore(w, c))
	}))
}

func (c *eventCore) With(fields []zapcore.Field) zapcore.Core {
	enc := c.enc.Clone()
	for _, f := range fields {
		f.AddTo(enc)
	}
	return &eventCore{LevelEnabler: c.LevelEnabler, w: c.w, enc: enc}
}

func (c *eventCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *eventCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	buf, err := c.enc.EncodeEntry(zapcore.Entry{Message: e.Message}, fields)
	if err != nil {
		return err
	}
	msg := strings.TrimSuffix(buf.String(), "\n")
	buf.Free()
	switch {
	case e.Level >= zapcore.ErrorLevel:
		return c.w.Error(EventError, msg)
	case e.Level == zapcore.WarnLevel:
		return c.w.Warning(EventWarning, msg)
	default:
		return c.w.Info(EventInfo, msg)
	}
}

func (c *eventCore) Sync() error { return nil }
