// Package metrics gives the agent's passes to Prometheus and answers
// /healthz: one Metrics per process, with its own registry (nothing
// global), fed by agent.RunnerConfig.Observe and the cloud sinks' retry
// waits, served by Serve when `certsync run --metrics-listen` asks.
//
// metrics imports agent only; only the command imports metrics.
package metrics
