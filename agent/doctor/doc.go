// Package doctor runs `certsync doctor`'s checks: it loads the
// configuration and asks each directory (ldapsrc.Diagnose) and the cloud
// (cloudsink.Diagnose) what would stop a pass, with the fix for each. It
// writes nothing anywhere; agent/report prints the checks.
package doctor
