// Package config loads certsync's agent.yaml: Load → defaults → Validate,
// and Validate always runs. Errors name the key ("source.url: required").
// Secrets are read here from files or the environment, never from the YAML
// itself, and are held in Secret, whose String() is redacted.
//
// config imports only mapping (pure); never ldapsrc, cloudsink, state or agent: the command
// turns a Config into their options.
package config
