// Package agent runs certsync's pass and polling loop: it reads users from
// the source, has mapping decide what each should have in the cloud, diffs
// against the state, guards against mass deletion, applies the changes
// through the cloud sinks and records what the cloud confirmed, with the
// directory's change-tracking watermark in the same state transaction.
// It decides when an incremental pass must read everything instead
// (configuration changed, fullInterval, a certificate's validity ended,
// new CRLs), and keeps the CRLs between passes.
//
// Nothing else orchestrates. agent declares the small interfaces it
// consumes (Source, Store) and takes cloudsink.Sink as is; it must never be
// imported by ldapsrc, cloudsink, state or mapping.
package agent
