// Package pkitest generates throwaway PKIs: root and intermediate CAs,
// end-entity certificates with the properties certsync's policy looks at,
// TLS server certificates for the test servers, PKCS#7 blobs like the ones
// Outlook writes, and base and delta CRLs like the ones ADCS publishes. It
// is used by tests, the harnesses and `certsync demo`; never by the agent's
// own code paths.
//
// pkitest must never import certsync's other packages.
package pkitest
