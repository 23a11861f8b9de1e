package main

import "github.com/certsync/certsync/agent/report"

// The end-to-end tests decode the binary's JSON report with the types
// that write it.
type (
	jsonReport   = report.JSON
	jsonHead     = report.Head
	jsonUser     = report.User
	jsonTarget   = report.Target
	jsonRejected = report.Rejected
)

const (
	statusUnchanged = report.StatusUnchanged
	statusPlanned   = report.StatusPlanned
	statusApplied   = report.StatusApplied
	statusFailed    = report.StatusFailed
	statusSkipped   = report.StatusSkipped
)

// The status tests decode `status --output json` with its types.
type (
	statusReport = report.Status
	statusSource = report.StatusSource
)
