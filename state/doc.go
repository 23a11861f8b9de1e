// Package state is certsync's memory between passes: per directory anchor,
// which values certsync published to each cloud target and to which cloud
// account (ownership, so that it only ever removes what it wrote itself),
// the last per-user problem, the summary of the last pass and a small
// generic meta area (change-tracking watermarks).
//
// It is the only package that opens the bbolt state file. It keeps its own
// versioned record encoding (JSON in bbolt buckets, a schema version key),
// separate from the types of the rest of certsync, so that the file format
// changes only on purpose. bbolt's file lock keeps two writers apart and is
// always taken with a timeout; LockAgent adds an agent-lifetime lock for the
// time between passes, when the agent has closed the database.
//
// state must never import ldapsrc, cloudsink, agent, cmd or any network
// package; of certsync's packages it may import mapping only (it needs none
// today).
package state
