// Package cloudsink is the only package that speaks HTTP to the Microsoft
// cloud. It turns the agent's lookups and updates into Microsoft Graph calls
// ($batch) and Exchange Online admin API calls (InvokeCommand: Get-Mailbox,
// Set-Mailbox), throttle-aware, and reports a result per user. It builds the azidentity credential too, so that every
// cloud target shares one token source, and Diagnose checks that credential,
// its permissions and a read per target for `certsync doctor`.
//
// cloudsink must never import ldapsrc, state or agent. Test emulators live in
// its sub-packages (graphtest, exotest) and never in production code paths.
package cloudsink
