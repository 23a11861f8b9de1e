// Package faulttest puts a fault-injecting HTTPS front before the cloud
// emulators (graphtest, with exotest mounted on it) without touching
// their insides: a share of the Graph and Exchange calls answer 429 with
// Retry-After, 503, or are carried out and then have their connection
// cut (the client cannot know the write landed); every call may be
// delayed. The front also keeps a log of the writes the emulators
// applied (the whole collection each one set), so campaigns can prove
// that nothing was written twice.
//
// It serves tests only. It imports mapping/pkitest for its TLS
// certificate and must never be imported by the agent's code paths.
package faulttest
