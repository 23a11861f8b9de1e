// Package graphtest is an HTTPS emulator of the slice of Microsoft Entra ID
// and Microsoft Graph that certsync uses: the OpenID configuration and
// token endpoints (client secret and certificate client assertions), user
// reads with $select/$filter/$top and paging, user updates of
// authorizationInfo.certificateUserIds, and JSON $batch. It is strict on
// purpose: what it does not support it refuses with Graph's error shape
// instead of ignoring, so a client that works against it does not lean on
// leniency the real service lacks. Fault knobs (429 with Retry-After, other
// statuses, latency) drive the retry paths. Other services (exotest's
// Exchange Online) mount on the same server and authority with Mount; each
// access token remembers its resource, and Graph refuses tokens issued for
// another service.
//
// It serves tests and `certsync demo`, never the agent's own code paths. It
// imports mapping/pkitest for its TLS certificates and must never import
// cloudsink itself, ldapsrc, state or agent.
package graphtest
