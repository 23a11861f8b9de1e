package winsvc

import (
	"io"

	"go.uber.org/zap"
)

// Session is what a run under the service control manager gets: where to
// log (a file in the state directory, as the service has no console), the
// Event Log, and how to say the agent started.
type Session struct {
	LogFile io.Writer // non-nil
	events  EventWriter
	started func()
}

// Logger adds the Event Log to log, at log's levels; a nil session (not a
// service) returns log.
func (s *Session) Logger(log *zap.Logger) *zap.Logger {
	if s == nil {
		return log
	}
	return Tee(log, s.events)
}

// Started tells the service control manager the agent runs; a nil session
// does nothing.
func (s *Session) Started() {
	if s != nil {
		s.started()
	}
}
