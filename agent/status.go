package agent

import (
	"fmt"

	"github.com/certsync/certsync/state"
)

// Status is what `certsync status` shows: the last pass, each directory's
// users and change tracking, and users with problems.
type Status struct {
	Users    int
	LastPass *state.PassSummary
	Sources  []SourceStatus
	// Unconfigured counts records of directories no longer in the
	// configuration: no read covers them, so certsync never withdraws
	// their values (put the source back, or remove them by hand).
	Unconfigured int
	Problems     []state.Record
}

// SourceStatus is one directory in Status.
type SourceStatus struct {
	Name     string
	Users    int             // state records of its users
	Tracking *TrackingStatus // nil until a pass recorded one
}

// ReadStatus reads a state file's status for the configured sources (in
// configuration order).
func ReadStatus(st *state.Store, sources []string) (Status, error) {
	var s Status
	var err error
	if s.Users, err = st.Count(); err != nil {
		return s, err
	}
	if lp, ok, err := st.LastPass(); err != nil {
		return s, err
	} else if ok {
		s.LastPass = &lp
	}
	index := map[string]int{}
	for i, name := range sources {
		index[name] = i
		s.Sources = append(s.Sources, SourceStatus{Name: name})
	}
	err = st.ForEach(func(rec state.Record) error {
		name := rec.Source
		if name == "" && len(sources) > 0 {
			name = sources[0]
		}
		if i, ok := index[name]; ok {
			s.Sources[i].Users++
		} else {
			s.Unconfigured++
		}
		return nil
	})
	if err != nil {
		return s, fmt.Errorf("agent: reading state: %w", err)
	}
	tracks, err := ReadTrackingStatus(st, sources)
	if err != nil {
		return s, err
	}
	for _, t := range tracks {
		s.Sources[index[t.Source]].Tracking = &t
	}
	if s.Problems, err = st.Problems(); err != nil {
		return s, err
	}
	return s, nil
}
