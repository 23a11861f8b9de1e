// Package mapping is certsync's pure core: it decodes certificate values read
// from the directory (DER or PKCS#7 SignedData), applies the validation
// policy, selects what to publish, renders the cloud binding strings and
// computes the difference between what is wanted and what was published.
//
// mapping performs no I/O and reads no clock: callers pass the time in. It
// must never import ldapsrc, cloudsink, state, agent or any network package.
package mapping
