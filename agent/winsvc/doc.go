// Package winsvc runs certsync as a Windows service: the service control
// manager's protocol (start pending, running, stop pending with
// checkpoints), installing and removing the service and its Event Log
// source, a zap core that writes to the Event Log, and the state
// directory under %ProgramData% with an ACL only SYSTEM and Administrators
// pass.
//
// The protocol (Handler) and the Event Log core are plain Go, built and
// tested on every platform; service_windows.go and acl_windows.go adapt
// them to golang.org/x/sys/windows. Elsewhere the entry points say they
// need Windows (service_other.go).
//
// It knows nothing of certsync's agent: the command passes in what to run.
// It must never import the rest of the module.
package winsvc
